#!/usr/bin/env bash
# Runs the test suites and prints one closing line: "tests: N passed, M failed".
# The security tests (tests/security/, one or more per OWASP API Security Top 10 category) run
# with the integration tests, on the release build and on the ASan build.
#   scripts/run-tests.sh            unit (ASan+UBSan binaries) then integration
#   scripts/run-tests.sh unit|integration|e2e|fuzz
# Unit tests are the cmocka binaries in build/asan/tests/ (and, for the threaded modules, the
# ThreadSanitizer builds in build/tsan/tests/), with a PostgreSQL started by scripts/pg-test.sh
# (TG_TEST_PG_URL) for the tests of the PostgreSQL schema. Integration tests (node's test
# runner) start the real build/tollgate, then again the sanitized build/asan/tollgate.
# Store backends: the tests' stores are SQLite files unless TG_TEST_BACKEND=postgres (then each
# gets a fresh database on the PostgreSQL this script starts; tests/support/tmpstore.h,
# tests/integration/harness.mjs). TG_TEST_BOTH_BACKENDS=1 adds a second pass on PostgreSQL: the
# unit tests that take a store from tmpstore.h, and the integration suite on the release build.
set -uo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
passed=0
failed=0
mkdir -p build/test-logs

# Throwaway servers for the tests, on loopback: PostgreSQL (scripts/pg-test.sh) and Redis
# (scripts/redis-test.sh), each started once per run by the suites that use it and stopped when
# this script exits, however it exits. A TG_TEST_PG_URL given by the caller is used as it is
# (nothing started, nothing stopped). Failing to start is a failure, not a skip.
pg_dir=""
redis_dir=""
stop_pg() {
  [ -n "$pg_dir" ] || return 0
  scripts/pg-test.sh stop "$pg_dir" >/dev/null || echo "warning: PostgreSQL in $pg_dir did not stop" >&2
  rm -rf "$pg_dir"
  pg_dir=""
}
stop_redis() { [ -z "$redis_dir" ] || { scripts/redis-test.sh stop "$redis_dir"; rm -rf "$redis_dir"; redis_dir=; }; }
stop_servers() { stop_pg; stop_redis; }
trap stop_servers EXIT
trap 'exit 130' INT TERM # exit, so that the EXIT trap stops the servers
start_pg() {
  [ -z "${TG_TEST_PG_URL:-}" ] || return 0
  pg_dir=$(mktemp -d /tmp/tg-pg.XXXXXX)
  local url
  if url=$(scripts/pg-test.sh start "$pg_dir"); then
    export TG_TEST_PG_URL=$url
    echo "PostgreSQL for the tests: $url"
  else
    echo "FAIL could not start PostgreSQL with scripts/pg-test.sh (apt-get install postgresql?)"
    failed=$((failed + 1))
  fi
}
# The tests of shared limits talk to a real Redis.
start_redis() {
  [ -z "$redis_dir" ] || return 0
  redis_dir=$(mktemp -d "${TMPDIR:-/tmp}/tg-redis.XXXXXX")
  if TG_TEST_REDIS_URL=$(scripts/redis-test.sh start "$redis_dir"); then
    export TG_TEST_REDIS_URL TG_TEST_REDIS_DIR=$redis_dir
  else
    echo "FAIL could not start redis-server for the shared-limit tests"
    failed=$((failed + 1))
  fi
}

both_backends() { [ "${TG_TEST_BOTH_BACKENDS:-1}" = 1 ]; }
pg_wanted() { both_backends || [[ ${TG_TEST_BACKEND:-} == postgres* ]]; }

# run_unit [postgres]: every unit test binary; with "postgres", those whose source takes its
# store from tests/support/tmpstore.h (or reads TG_TEST_BACKEND), on PostgreSQL.
run_unit() {
  local backend=${1:-} bin log p f n=0 suffix="" env=()
  if [ -n "$backend" ]; then suffix=-$backend; env=(TG_TEST_BACKEND="$backend"); fi
  start_redis
  for bin in build/asan/tests/test_* build/tsan/tests/test_*; do
    [ -x "$bin" ] || continue
    if [ -n "$backend" ]; then
      grep -qE 'tmpstore\.h|TG_TEST_BACKEND' "tests/unit/$(basename "$bin").c" 2>/dev/null || continue
    fi
    n=$((n + 1))
    log=build/test-logs/$(basename "$(dirname "$(dirname "$bin")")")-$(basename "$bin")$suffix.log
    env "${env[@]}" ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      TSAN_OPTIONS=halt_on_error=1:suppressions=$PWD/tests/tsan.supp timeout 300 "$bin" >"$log" 2>&1
    local rc=$?
    p=$(grep -Eo '\[  PASSED  \] [0-9]+' "$log" | awk '{s+=$4} END {print s+0}')
    f=$(grep -Eo '\[  FAILED  \] [0-9]+ test' "$log" | awk '{s+=$4} END {print s+0}')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi # crashed or sanitizer report
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$rc" -ne 0 ]; then echo "FAIL $bin$suffix (exit $rc):"; tail -n 40 "$log"; else echo "ok   $bin$suffix: $p passed"; fi
  done
  if [ "$n" -eq 0 ]; then # a missing build must not look like a clean run
    echo "FAIL no unit test binaries in build/asan/tests (make SANITIZE=address,undefined unit-bins)"
    failed=$((failed + 1))
  fi
}

# ASan's quarantine keeps freed chunks out of reuse (256 MB by default); streaming a large body
# frees and reallocates socket buffers as it goes, so the 50 MB test's anonymous-memory bound
# measured mostly the quarantine, passing or failing by timing. A 32 MB quarantine keeps that
# bound meaningful (the release-build pass checks the tight one).
# run_integration BIN LABEL [FILES] [BACKEND]: BACKEND postgres runs the stacks on PostgreSQL.
run_integration() {
  local bin=$1 label=$2 files=${3:-tests/integration/ tests/security/ tests/stripe/ tests/openapi/} log=build/test-logs/integration-$2.log
  local env=()
  [ -z "${4:-}" ] || env=(TG_TEST_BACKEND="$4")
  # the demo upstream of the same build when there is one, so the ASan pass checks it too
  local upstream=${bin%/tollgate}/demo-upstream
  [ -x "$upstream" ] || upstream=build/demo-upstream
  echo "integration tests against $bin (upstream $upstream)"
  env "${env[@]}" TOLLGATE_BIN=$bin DEMO_UPSTREAM_BIN=$upstream \
    ASAN_OPTIONS=detect_leaks=1:quarantine_size_mb=32 LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp \
    TSAN_OPTIONS=halt_on_error=1:suppressions=$PWD/tests/tsan.supp \
    timeout 900 node --test --test-reporter=tap $files >"$log" 2>&1
  local rc=$? p f
  p=$(grep -E '^# pass ' "$log" | awk '{print $3}' | tail -n1)
  f=$(grep -E '^# fail ' "$log" | awk '{print $3}' | tail -n1)
  p=${p:-0}; f=${f:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p)); failed=$((failed + f))
  if [ "$rc" -ne 0 ]; then
    echo "FAIL integration ($label):"
    grep -E '^not ok|error:|expected|actual|Error|exited unexpectedly|Sanitizer|runtime error' "$log" | head -n 80
    echo "(full log: $log)"
  else
    echo "ok   integration ($label): $p passed"
  fi
}

# Each fuzz target runs for FUZZ_SECONDS (default 20) from its committed corpus
# (tests/fuzz/corpus/NAME: seeds, and every input that once failed, so each run replays them),
# with new inputs kept in build/fuzz/work/NAME. A failing input is written next to the log.
run_fuzz() {
  local bin name log n=0
  for bin in build/fuzz/fuzz_*; do
    [ -x "$bin" ] || continue
    n=$((n + 1))
    name=${bin#build/fuzz/fuzz_}
    log=build/test-logs/fuzz-$name.log
    mkdir -p "build/fuzz/work/$name" "tests/fuzz/corpus/$name"
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      timeout 300 "$bin" -max_total_time="${FUZZ_SECONDS:-20}" -timeout=10 -max_len=16384 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="build/test-logs/fuzz-$name-" \
      "build/fuzz/work/$name" "tests/fuzz/corpus/$name" >"$log" 2>&1
    local rc=$?
    if [ "$rc" -ne 0 ]; then
      failed=$((failed + 1))
      echo "FAIL $bin (exit $rc):"; grep -E 'ERROR|SUMMARY|Test unit written|runtime error' "$log" | head -n 20
      echo "(full log: $log)"
    else
      passed=$((passed + 1))
      echo "ok   $bin: $(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$') inputs, no failure"
    fi
  done
  if [ "$n" -eq 0 ]; then
    echo "FAIL no fuzz targets in build/fuzz (make fuzz-bins)"
    failed=$((failed + 1))
  fi
}

run_e2e() {
  local log=build/test-logs/e2e.log
  echo "browser tests (chromium)"
  TOLLGATE_BIN=build/tollgate DEMO_UPSTREAM_BIN=build/demo-upstream timeout 600 \
    node --test --test-reporter=tap tests/e2e/ >"$log" 2>&1
  local rc=$? p f
  p=$(grep -E '^# pass ' "$log" | awk '{print $3}' | tail -n1); f=$(grep -E '^# fail ' "$log" | awk '{print $3}' | tail -n1)
  p=${p:-0}; f=${f:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p)); failed=$((failed + f))
  if [ "$rc" -ne 0 ]; then echo "FAIL e2e:"; grep -E '^not ok|error:|expected|actual|Error' "$log" | head -n 40; else echo "ok   e2e: $p passed"; fi
}

case $what in
  unit)
    start_pg
    run_unit
    if both_backends; then run_unit postgres; fi
    ;;
  integration)
    if pg_wanted; then start_pg; fi
    run_integration build/tollgate release
    if both_backends; then run_integration build/tollgate release-postgres "" postgres; fi
    run_integration build/tollgate cluster tests/cluster/
    ;;
  all)
    start_pg
    run_unit
    if both_backends; then run_unit postgres; fi
    run_integration build/tollgate release
    if both_backends; then run_integration build/tollgate release-postgres "" postgres; fi
    # several gateways on one PostgreSQL and one Redis (the test starts its own servers)
    run_integration build/tollgate cluster tests/cluster/
    run_integration build/asan/tollgate asan
    run_integration build/tsan/tollgate tsan "tests/integration/concurrency.test.mjs tests/integration/cluster.test.mjs tests/integration/reload.test.mjs tests/integration/billing_thread.test.mjs tests/integration/decide_nginx.test.mjs tests/integration/decide_envoy.test.mjs"
    run_e2e
    run_fuzz
    ;;
  e2e) run_e2e ;;
  fuzz) run_fuzz ;;
  *) echo "usage: $0 [unit|integration|e2e|fuzz|all]" >&2; exit 2 ;;
esac
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
