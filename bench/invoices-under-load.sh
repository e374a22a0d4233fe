#!/usr/bin/env bash
# bench/invoices-under-load.sh - the gateway's latency while a big invoice run closes a month, in
# one process and one run: tollgate serves wrk's requests while its admin thread closes CUSTOMERS
# customers' month (the same period closer as bench/invoices.sh, in slices between admin jobs).
#   1. the data: CUSTOMERS customers with usage, anchored now, in tollgate's SQLite file, or with
#      --backend postgres in a throwaway PostgreSQL (scripts/pg-test.sh; the closer then uses
#      billing.close_connections, default 2) (build/bench-invoices --populate, which prints the
#      pricing code's own total)
#   2. tollgate serve --test-clock on it, KEYS load customers with keys, upstream nginx (1 worker)
#   3. wrk for DURATION: p50/p99 without the close
#   4. POST /v1/admin/clock +32 days: the next tick (within 10 s) starts the close; wrk runs in
#      WINDOW-long windows until every invoice is there: p99 of each window during the close,
#      and meanwhile the admin API's answer time (GET /v1/admin/customers, twice a second: the
#      probe runs through steps 3-5 so that its own CPU weighs on every window alike)
#   5. wrk for DURATION again after the close; the sum of the invoices against the expected total
# Prints the figures and the server's peak RSS before and after the close.
#   bench/invoices-under-load.sh [--backend sqlite|postgres] [CUSTOMERS]
# Env: CUSTOMERS (default 100000), BACKEND (sqlite), PG_NICE (PostgreSQL's nice value, or idle for
# SCHED_IDLE, and its session's autogroup's nice value where autogroups apply: 19 stands in for a
# server on a machine of its own, as in production; unset: the same priority as the gateway),
# KEYS (100), CONNS (32), DURATION (10s),
# WINDOW (5s), AFTER_WINDOWS (1) and AFTER_GAP (20: seconds between them), TOLLGATE_BIN (build/tollgate), CLOSE_CONNECTIONS (billing.close_connections; unset:
# its default), RATE (requests/s offered: each of the CONNS connections waits CONNS/RATE between its
# answer and its next request, so the gateway runs below its capacity, with CPU to spare, as a
# production gateway does; unset: as fast as the answers come, which saturates both cores and then
# measures how much CPU the close takes from the gateway rather than how it disturbs it),
# PG_CPUS and GATEWAY_CPUS (taskset CPU lists: PostgreSQL's server on the first, everything else
# (wrk, nginx, tollgate with its closer) on the second, standing in for a database on a machine of
# its own with one that shares nothing but the memory and the last-level cache), CLOSER_CPUS (a
# CPU list, billing.close_cpus: the period closer's threads keep to those CPUs (with PG_CPUS, the
# database's, as a deployment with the database elsewhere would put them off the gateway's core);
# each closing window prints where they may run). The window without the close waits for the
# thresholds notifier's start-up catch-up to end (below).
# Also prints the CPU time the closer's threads took (user + system, from /proc: what the close
# costs the gateway's machine).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${GATEWAY_CPUS:-}" ] && [ -z "${TG_BENCH_PINNED:-}" ]; then
  TG_BENCH_PINNED=1 exec taskset -c "$GATEWAY_CPUS" "$0" "$@" # every process started below inherits it
fi
. bench/lib.sh
CUSTOMERS=${CUSTOMERS:-100000}
BACKEND=${BACKEND:-sqlite}
while [ $# -gt 0 ]; do
  case $1 in
    --backend) BACKEND=$2; shift 2 ;;
    [0-9]*) CUSTOMERS=$1; shift ;;
    *) echo "usage: $0 [--backend sqlite|postgres] [CUSTOMERS]" >&2; exit 2 ;;
  esac
done
case $BACKEND in sqlite|postgres) ;; *) echo "unknown backend $BACKEND" >&2; exit 2 ;; esac
KEYS=${KEYS:-100}
CONNS=${CONNS:-32}
DURATION=${DURATION:-10s}
WINDOW=${WINDOW:-5s}
TG=${TOLLGATE_BIN:-build/tollgate}
command -v wrk >/dev/null && command -v nginx >/dev/null && command -v sqlite3 >/dev/null || scripts/install-deps.sh
make -s build/tollgate build/bench-invoices

work=$(mktemp -d /tmp/tollgate-bench-invload.XXXXXX)
chmod 711 "$work" # PostgreSQL runs as another user when we are root (scripts/pg-test.sh)
pids=()
pg_dir=""
cleanup() {
  local rc=$?
  # a failed run shows what the server said
  [ "$rc" -eq 0 ] || [ ! -s "$work/tollgate.log" ] || { echo "tollgate's log:"; tail -20 "$work/tollgate.log"; } >&2
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  # tollgate's stop drains its queues; the thresholds notifier's start-up backlog (a crossing per
  # populated customer over a threshold, a transaction each) can take minutes: 20 s, then KILL
  # (the figures are printed and the sum checked by then)
  for _ in $(seq 200); do kill -0 "${TGPID:-0}" 2>/dev/null || break; sleep 0.1; done
  [ -z "${TGPID:-}" ] || kill -9 "$TGPID" 2>/dev/null || true
  wait 2>/dev/null || true
  [ -z "$pg_dir" ] || scripts/pg-test.sh stop "$pg_dir" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
UP=$(free_port); GW=$(free_port); AD=$(free_port)
TOKEN=bench-admin-token-0123456789
admin() { curl -s -H "Authorization: Bearer $TOKEN" -H "content-type: application/json" "$@"; }
start_upstream "$work/up" "$UP"

if [ "$BACKEND" = postgres ]; then
  pg_dir=$work/pg
  db=$(scripts/pg-test.sh start "$pg_dir")
  if [ -n "${PG_CPUS:-}" ]; then
    pm=$(head -1 "$pg_dir/data/postmaster.pid") # its backends, forked later, inherit the CPUs
    for p in $pm $(pgrep -P "$pm"); do taskset -a -c -p "$PG_CPUS" "$p" >/dev/null; done
  fi
  pg_prio=""
  if [ -n "${PG_NICE:-}" ]; then
    # PostgreSQL on its own machine, as in production, stood in for by the lowest CPU priority
    # on this one: its backends (forked later from the postmaster) inherit the nice value.
    pm=$(head -1 "$pg_dir/data/postmaster.pid")
    if [ "$PG_NICE" = idle ]; then
      for p in $pm $(pgrep -P "$pm"); do chrt -i -p 0 "$p"; done
    else
      renice -n "$PG_NICE" -p "$pm" $(pgrep -P "$pm") >/dev/null
    fi
    pg_prio=" (PostgreSQL at $([ "$PG_NICE" = idle ] && echo SCHED_IDLE || echo "nice $PG_NICE")"
    # A nice value only orders threads within one scheduling group. With autogroups (Linux's
    # sched_autogroup_enabled, and the processes in the root cpu cgroup) each session is a group
    # of its own, weighted alike whatever its members' nice values; pg_ctl starts the postmaster
    # in a new session, so renicing it alone changes nothing against tollgate. The group's own
    # nice value (/proc/PID/autogroup, shared by the whole session) is what weighs there.
    if [ "$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null)" = 1 ] &&
       [ "$(cut -d' ' -f1 "/proc/$pm/autogroup")" != "$(cut -d' ' -f1 /proc/self/autogroup)" ]; then
      ag=$([ "$PG_NICE" = idle ] && echo 19 || echo "$PG_NICE")
      echo "$ag" > "/proc/$pm/autogroup"
      pg_prio="$pg_prio, its session's autogroup at nice $ag"
    fi
    pg_prio="$pg_prio)"
  fi
  sql() { psql -qtA -v ON_ERROR_STOP=1 "$db" -c "$1"; }
else
  db=sqlite:$work/tollgate.db
  sql() { sqlite3 "$work/tollgate.db" "PRAGMA busy_timeout=5000; $1" | tail -1; }
fi
anchor=$(date +%s)
t0=$(date +%s.%N)
expected=$(build/bench-invoices --populate "$CUSTOMERS" "$db" "$anchor")
echo "populated $CUSTOMERS customers in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s; expected sum of their invoices: $expected usd"

billing_yaml="" log_dir=""
[ "$BACKEND" = sqlite ] || log_dir=", log_dir: \"$work/meterlog\"" # required with PostgreSQL
billing_keys=()
[ -z "${CLOSE_CONNECTIONS:-}" ] || billing_keys+=("close_connections: $CLOSE_CONNECTIONS")
[ -z "${CLOSER_CPUS:-}" ] || billing_keys+=("close_cpus: \"$CLOSER_CPUS\"")
billing_yaml=
[ ${#billing_keys[@]} -eq 0 ] || billing_yaml="billing: {$(IFS=,; echo "${billing_keys[*]}")}"
# The plans of tools/bench-invoices.c (the expected total is priced with them) and one for the load.
cat > "$work/tollgate.yaml" <<CONF
server: {listen: "127.0.0.1:$GW", admin_listen: "127.0.0.1:$AD", workers: ${TG_WORKERS:-$(nproc)}}
upstream: {url: "http://127.0.0.1:$UP", timeout_ms: 30000}
storage: {database: "$db"}
$billing_yaml
admin: {token: "$TOKEN"}
keys: {secret: "bench-key-secret-0123456789abcdef0123"}
metering: {durability: batched, flush_ms: 5$log_dir}
plans:
  free: {price: "0", included: {api_calls: 1000}}
  starter: {price: "49", included: {api_calls: 50000}, charges: [{metric: api_calls, model: per_unit, unit_price: "0.001"}]}
  pro: {price: "199", included: {api_calls: 500000}, charges: [{metric: api_calls, model: per_unit, unit_price: "0.0005"},
        {metric: images, model: graduated, tiers: [{up_to: 1000, unit_price: "0"}, {up_to: inf, unit_price: "0.002"}]}]}
  enterprise: {price: "999", included: {api_calls: 5000000}, charges: [{metric: api_calls, model: per_unit, unit_price: "0.0002"}]}
  load: {price: "0", rate_limit: 1000000/sec, burst: 1000000, included: {api_calls: 1000000000}, on_quota: block,
         endpoints: ["/v1/*"]}
CONF
t0=$(date +%s.%N)
"$TG" serve --test-clock -c "$work/tollgate.yaml" 2>"$work/tollgate.log" & TGPID=$!
pids+=("$TGPID")
wait_http "http://127.0.0.1:$AD/healthz" 600
echo "tollgate up in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
# closer_tids: the thread ids of the closer's threads (the closer and, during a run, its pool's:
# all named tg-billing)
closer_tids() {
  local t
  for t in /proc/"$TGPID"/task/*; do
    [ "$(cat "$t/comm" 2>/dev/null)" = tg-billing ] && echo "${t##*/}"
  done
  return 0
}
# closer_cpus_now: "TID:CPUS ..." of the closer's threads, from their Cpus_allowed_list
closer_cpus_now() {
  local t
  for t in $(closer_tids); do
    echo -n "$t:$(awk '/Cpus_allowed_list/ { print $2 }' "/proc/$TGPID/task/$t/status" 2>/dev/null) "
  done
}
if [ -n "${CLOSER_CPUS:-}" ]; then # billing.close_cpus: the closer keeps itself there as it starts
  echo "closer thread(s) on CPUs (billing.close_cpus: $CLOSER_CPUS): $(closer_cpus_now)"
fi
# cpu_threads: "TID NAME TICKS" for each of tollgate's threads (bench/lib.sh)
cpu_threads() { thread_cpu_ticks "$TGPID"; }
# workers_waits: "NS RUNS" summed over the gateway's event-loop threads (tg-gw-*), from
# /proc/PID/task/TID/schedstat: the time they spent runnable but waiting for a CPU, and how many
# times they got one. Their difference between two snapshots over RUNS is the mean wait for a
# CPU each time a worker had work (a request or an upstream answer arrived): how long a
# background thread (the closer) kept a woken worker from its core.
workers_waits() {
  local t
  for t in /proc/"$TGPID"/task/*; do
    case $(cat "$t/comm" 2>/dev/null) in tg-gw-*) cat "$t/schedstat" 2>/dev/null ;; esac
  done | awk '{ w += $2; r += $3 } END { printf "%.0f %.0f\n", w, r }' # not %d: mawk caps it at 2^31-1 (2.1 s of ns)
}
# waited A B: "X us per run (N runs)" between two workers_waits snapshots
waited() { awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); r = y[2] - x[2];
  printf "%.1f us per run (%d runs)", (r > 0 ? (y[1] - x[1]) / r / 1000 : 0), r }'; }
cpu_process() { sed 's/.*) //' "/proc/$TGPID/stat" | awk '{ print $12 + $13 }'; } # live and ended threads
# busiest BEFORE AFTER: the threads that took CPU between two cpu_threads snapshots, by name, the
# busiest first ("tg-gw-0 1.28 s, ..."): what ran beside the gateway's workers in a window
busiest() {
  awk -v hz="$(getconf CLK_TCK)" '
    FNR == NR { before[$1] = $3; next }
    { by[$2] += $3 - ($1 in before ? before[$1] : 0) }
    END { for (n in by) if (by[n] > 0) printf "%.2f %s\n", by[n] / hz, n }' "$1" "$2" |
    sort -rn | head -"${3:-6}" | awk '{ printf "%s%s %s s", (NR > 1 ? ", " : ""), $2, $1 }'
}
for i in $(seq "$KEYS"); do
  # (a failing curl in these pipelines would end the script in silence under set -e and pipefail)
  id=$(admin -d "{\"email\":\"k$i@load.test\",\"plan\":\"load\"}" "http://127.0.0.1:$AD/v1/admin/customers" |
    sed -E 's/.*"id":"([^"]+)".*/\1/') || { echo "could not create load customer $i" >&2; exit 1; }
  key=$(admin -d '{}' "http://127.0.0.1:$AD/v1/admin/customers/$id/keys" | sed -E 's/.*"secret":"([^"]+)".*/\1/') ||
    { echo "could not create key $i" >&2; exit 1; }
  case $key in tg_live_*) echo "$key" >> "$work/keys.txt" ;; *) echo "could not create key $i: $key" >&2; exit 1 ;; esac
done
cat > "$work/keys.lua" <<'LUA'
local pause = tonumber(os.getenv("PAUSE_MS") or "0")
if pause > 0 then delay = function() return pause end end
local keys = {}
for line in io.lines(os.getenv("KEYS_FILE")) do keys[#keys + 1] = line end
local i = 0
request = function()
  i = i % #keys + 1
  return wrk.format("GET", "/v1/basic/x", { ["Authorization"] = "Bearer " .. keys[i] })
end
LUA
PAUSE_MS=0
[ -z "${RATE:-}" ] || PAUSE_MS=$(( (CONNS * 1000 + RATE / 2) / RATE ))
export PAUSE_MS
wrk_run() { # duration out
  KEYS_FILE=$work/keys.txt wrk -t1 -c"$CONNS" -d"$1" --latency -s "$work/keys.lua" "http://127.0.0.1:$GW/v1/basic/x" > "$2"
  grep -q 'Requests/sec' "$2" || { echo "wrk failed:"; cat "$2"; exit 1; }
  if grep -q "Non-2xx" "$2"; then echo "warning: non-2xx answers: $(grep Non-2xx "$2")"; fi
}
fig() { echo "$(rps_of "$1") $(p50_of "$1") $(p99_of "$1")"; } # out -> "requests/s p50 p99" (ms)
hwm() { awk '/VmHWM/ { printf "%.1f MiB", $2 / 1024 }' "/proc/$TGPID/status"; }
count() { sql "SELECT COUNT(*) FROM invoices"; }
total=$((CUSTOMERS + KEYS))

# The thresholds notifier (tg-thresholds, nice 19) starts with a catch-up: a decision, each in a
# transaction, for every populated customer over a threshold, 6-9 s of CPU on the gateway's core
# over the first minute or so (measured in stop 29). The window without the close waits until it
# is done, so that it measures the gateway beside an idle notifier, as the windows during and
# after the close do. Done: the thread's CPU time unchanged for 3 s (at most 5 minutes).
notifier_ticks() {
  local t
  for t in /proc/"$TGPID"/task/*; do
    [ "$(cat "$t/comm" 2>/dev/null)" = tg-thresholds ] && sed 's/.*) //' "$t/stat" | awk '{ print $12 + $13 }'
  done
  return 0
}
last=; same=0; waited=0
while [ "$waited" -lt 300 ]; do
  now=$(notifier_ticks)
  if [ "$now" = "$last" ]; then same=$((same + 1)); [ "$same" -ge 3 ] && break; else same=0; last=$now; fi
  sleep 1; waited=$((waited + 1))
done
echo "thresholds notifier's start-up catch-up: done after ${waited} s here (${last:-no thread} ticks)"
KEYS_FILE=$work/keys.txt wrk -t1 -c"$CONNS" -d2s -s "$work/keys.lua" "http://127.0.0.1:$GW/v1/basic/x" >/dev/null # warm up
# The admin API's answer time, twice a second, through every phase: its own CPU (a curl a half
# second) then weighs on the windows without the close as much as on those during it. Only the
# answers during the close are reported.
( while :; do
    curl -s -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$AD/v1/admin/customers?limit=1" >> "$work/admin.times" || true
    sleep 0.5
  done ) & probe=$!
pids+=("$probe")
cpu_threads > "$work/cpu.b0"; ww0=$(workers_waits)
wrk_run "$DURATION" "$work/before.out"
cpu_threads > "$work/cpu.b1"; ww1=$(workers_waits); waited_b=$(waited "$ww0" "$ww1")
read -r rps_b p50_b p99_b <<< "$(fig "$work/before.out")"
hwm_before=$(hwm)
load_b=$(load_avg)
echo "without the close:  $rps_b requests/s, p50 $p50_b ms, p99 $p99_b ms (server peak RSS so far $hwm_before; load $load_b)"
echo "  CPU in that window: $(busiest "$work/cpu.b0" "$work/cpu.b1")"
echo "  the workers waited for a CPU: $waited_b"

# The closer's CPU: the pool's threads end with the run, and an ended thread's ticks are then
# only in the process's total; so the closer's share is the process's ticks less those of its
# other threads, each of which lives through the close (checked).
cpu_p0=$(cpu_process); cpu_threads > "$work/cpu.before"
admin -d "{\"advance_seconds\": $((32 * 86400))}" "http://127.0.0.1:$AD/v1/admin/clock" >/dev/null
: > "$work/admin.times" # the probe's answers during the close
t_adv=$(date +%s.%N)
during=() waits_during=() n=0 t_first="" t_done=""
c0=$(count)
while :; do
  n=$((n + 1))
  ww0=$(workers_waits)
  wrk_run "$WINDOW" "$work/w$n.out"
  ww1=$(workers_waits)
  c1=$(count)
  read -r rps p50 p99 <<< "$(fig "$work/w$n.out")"
  state="waiting for the tick"
  if [ "$c1" -gt "$c0" ]; then
    state="closing ($c1 of $total invoices; closer threads TID:CPUs $(closer_cpus_now | sed 's/ $//'))"; during+=("$rps $p50 $p99"); [ -n "$t_first" ] || t_first=$(date +%s.%N)
    waits_during+=("$(waited "$ww0" "$ww1")")
  fi
  echo "  window $n: $rps requests/s, p50 $p50 ms, p99 $p99 ms  [$state; load $(load_avg)]; the workers waited for a CPU: $(waited "$ww0" "$ww1")"
  c0=$c1
  if [ "$c1" -ge "$total" ]; then
    t_done=$(date +%s.%N); load_d=$(load_avg)
    # the pool's threads end a moment after the last commit
    for _ in $(seq 100); do [ "$(closer_tids | wc -l)" -le 1 ] && break; sleep 0.1; done
    cpu_p1=$(cpu_process); cpu_threads > "$work/cpu.after"
    break
  fi
  [ "$n" -lt 200 ] || { echo "the close did not finish"; exit 1; }
done
cp "$work/admin.times" "$work/admin.during"
cpu_threads > "$work/cpu.a0"; ww0=$(workers_waits)
wrk_run "$DURATION" "$work/after.out"
cpu_threads > "$work/cpu.a1"; ww1=$(workers_waits); waited_a=$(waited "$ww0" "$ww1")
read -r rps_a p50_a p99_a <<< "$(fig "$work/after.out")"
echo "after the close:    $rps_a requests/s, p50 $p50_a ms, p99 $p99_a ms (server peak RSS $(hwm))"
echo "  CPU in that window: $(busiest "$work/cpu.a0" "$work/cpu.a1")"
echo "  the workers waited for a CPU: $waited_a"
# AFTER_WINDOWS > 1: more windows after the close, each after a pause of AFTER_GAP seconds (does
# a difference from the window without the close fade?)
for ((k = 2; k <= ${AFTER_WINDOWS:-1}; k++)); do
  sleep "${AFTER_GAP:-20}"
  cpu_threads > "$work/cpu.a0"
  wrk_run "$DURATION" "$work/after$k.out"
  cpu_threads > "$work/cpu.a1"
  read -r rps_k p50_k p99_k <<< "$(fig "$work/after$k.out")"
  echo "after the close, window $k: $rps_k requests/s, p50 $p50_k ms, p99 $p99_k ms; CPU: $(busiest "$work/cpu.a0" "$work/cpu.a1")"
done
kill "$probe" 2>/dev/null || true; wait "$probe" 2>/dev/null || true

hz=$(getconf CLK_TCK)
closer_cpu=$(awk -v p0="$cpu_p0" -v p1="$cpu_p1" -v hz="$hz" -v n="$total" '
  FNR == NR { before[$1] = $3; name[$1] = $2; next }
  $2 != "tg-billing" { other += $3 - ($1 in before ? before[$1] : 0); seen[$1] = 1 }
  END {
    for (t in before) if (name[t] != "tg-billing" && !(t in seen)) lost = lost " " t "(" name[t] ")"
    c = (p1 - p0 - other) / hz
    printf "%.2f s, %.1f us per invoice", c, c * 1e6 / n
    if (lost != "") printf " (upper bound: threads ended during the close:%s)", lost
  }' "$work/cpu.before" "$work/cpu.after")
tg_cpu=$(awk -v p0="$cpu_p0" -v p1="$cpu_p1" -v hz="$hz" 'BEGIN { printf "%.2f", (p1 - p0) / hz }')
# the other threads' CPU over the close, by name, the busiest first: what else ran beside the
# gateway's workers (the thresholds notifier works through the populated customers' crossings
# at start, at nice 19 like the closer, for minutes)
others_cpu=$(busiest "$work/cpu.before" <(grep -v ' tg-billing ' "$work/cpu.after"))
col() { for r in "${during[@]}"; do echo "$r" | awk -v c="$1" '{ print $c }'; done; }
# totals are in nano-units (10^-9 of the currency): every invoice total is a whole number of cents
bench_total="SELECT SUM(total) AS s FROM invoices WHERE customer_id IN (SELECT id FROM customers WHERE email LIKE '%@bench.test')"
if [ "$BACKEND" = postgres ]; then
  got=$(sql "SELECT div(s, 1000000000) || '.' || lpad((div(s, 10000000) % 100)::text, 2, '0') FROM ($bench_total) t")
else
  got=$(sql "SELECT printf('%d.%02d', s / 1000000000, s / 10000000 % 100) FROM ($bench_total)")
fi
admin_max=$(sort -g "$work/admin.during" | tail -1); admin_med=$(median < "$work/admin.during")
echo
echo "$BACKEND, $CUSTOMERS customers (+ $KEYS load customers), wrk -t1 -c$CONNS$([ "$PAUSE_MS" = 0 ] || echo " pausing $PAUSE_MS ms between a connection's requests (RATE=$RATE)"), $(nproc --all) cores$([ -z "${GATEWAY_CPUS:-}" ] || echo " (all but PostgreSQL on CPUs $GATEWAY_CPUS)")$([ -z "${PG_CPUS:-}" ] || echo " (PostgreSQL on CPUs $PG_CPUS)")$([ -z "${CLOSER_CPUS:-}" ] || echo " (the closer on CPUs $CLOSER_CPUS)")${pg_prio:-}, upstream nginx 1 worker"
echo "close: $total invoices in about $(awk -v a="$t_adv" -v b="$t_done" 'BEGIN { printf "%.0f", b - a }') s after the clock moved (the tick starts it within 10 s)"
echo "closer's CPU (user + system, its threads tg-billing): $closer_cpu; tollgate's whole process meanwhile $tg_cpu s"
echo "tollgate's other threads over the close (CPU): $others_cpu"
echo "gateway p99: without the close $p99_b ms; during it, median of ${#during[@]} windows $(col 3 | median) ms, worst $(col 3 | sort -g | tail -1) ms; after it $p99_a ms"
echo "the gateway's workers waited for a CPU: without the close $waited_b; during it $(IFS=';'; echo "${waits_during[*]}" | sed 's/;/, /g'); after it $waited_a"
echo "gateway requests/s: without $rps_b; during (median) $(col 1 | median); after $rps_a"
echo "admin API answer times during the close, slowest five (ms): $(sort -g "$work/admin.during" | tail -5 | awk '{ printf "%.1f ", $1 * 1000 }')"
echo "admin API during the close: median $(awk -v s="$admin_med" 'BEGIN { printf "%.1f", s * 1000 }') ms, worst $(awk -v s="$admin_max" 'BEGIN { printf "%.1f", s * 1000 }') ms"
echo "server peak RSS: before the close $hwm_before, after it $(hwm)"
echo "load average (1 min, the machine is shared): before the close $load_b, at its end $load_d, after it $(load_avg)"
echo "sum of the invoices: $got usd (expected $expected): $([ "$got" = "$expected" ] && echo exact || echo MISMATCH)"
[ "$got" = "$expected" ]
