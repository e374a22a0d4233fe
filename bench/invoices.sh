#!/usr/bin/env bash
# bench/invoices.sh - close a billing period into invoices for many customers with usage, through
# the server's own period closer (tg_periods_close: only the customers due, one transaction per
# batch). Prints customers/s, peak memory (RSS of the process running the closer: it must not
# grow with the customer count), and checks the sum of all invoices against the pricing code's
# own computation, to the cent.
#   bench/invoices.sh [--backend sqlite|postgres|both] [--runs N] [--connections N] [CUSTOMERS]
# Env: CUSTOMERS (default 100000), BACKEND (sqlite), RUNS (1), BENCH_INVOICES_BIN (the closer's
# build to measure, default build/bench-invoices: a bench-invoices linked with another build's
# libtollgate.a compares builds; TOLLGATE_BIN, default build/tollgate, the build whose
# `tollgate migrate` makes the PostgreSQL schema: give both to measure another build), CONNECTIONS (the closer's connections on PostgreSQL,
# billing.close_connections; default the closer's own default, 2; builds before it take none).
# With both, the backends alternate
# run by run (so that the machine's drift falls on both) and the medians are printed at the end.
#   sqlite:   build/bench-invoices stores the data through the store API in a temporary file,
#             then closes the month (one process).
#   postgres: a throwaway PostgreSQL (scripts/pg-test.sh, fsync off as in the tests) per run; the
#             schema by `tollgate migrate`, the customers and their folded usage loaded with COPY
#             from the CSV files `build/bench-invoices --csv` writes (with the expected total),
#             then `build/bench-invoices --close` runs the closer over it.
# Goal: 1,000,000 customers in under 60 s on both, with the same peak RSS as 100,000.
# bench/invoices-under-load.sh measures the gateway's p99 meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

BACKEND=${BACKEND:-sqlite}
RUNS=${RUNS:-1}
CONNECTIONS=${CONNECTIONS:-}
CUSTOMERS=${CUSTOMERS:-100000}
while [ $# -gt 0 ]; do
  case $1 in
    --backend) BACKEND=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    [0-9]*) CUSTOMERS=$1; shift ;;
    *) echo "usage: $0 [--backend sqlite|postgres|both] [--runs N] [--connections N] [CUSTOMERS]" >&2; exit 2 ;;
  esac
done
case $BACKEND in sqlite) backends=(sqlite) ;; postgres) backends=(postgres) ;; both) backends=(sqlite postgres) ;;
  *) echo "unknown backend $BACKEND" >&2; exit 2 ;; esac
make -s build/tollgate build/bench-invoices
BI=${BENCH_INVOICES_BIN:-build/bench-invoices}
TG=${TOLLGATE_BIN:-build/tollgate} # its migrate makes the schema: that build's, with BENCH_INVOICES_BIN

work=$(mktemp -d /tmp/tollgate-bench-inv.XXXXXX)
chmod 711 "$work" # PostgreSQL runs as another user when we are root (scripts/pg-test.sh)
pg_dir=""
cleanup() { [ -z "$pg_dir" ] || scripts/pg-test.sh stop "$pg_dir" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

JAN1_2026=1767225600
FEB1_2026=1769904000

# run_sqlite OUT: one run; the tool's report in OUT.
run_sqlite() { "$BI" "$CUSTOMERS" "$work" > "$1" || { cat "$1"; return 1; }; }

# pg_cpu PID: CPU seconds of process PID and of its children that have exited (utime, stime,
# cutime, cstime of /proc/PID/stat).
pg_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15 + $16 + $17) / hz }' "/proc/$1/stat"; }

# run_postgres OUT: one run on a fresh PostgreSQL; the report in OUT, with the expected sum.
run_postgres() {
  pg_dir=$work/pg
  rm -rf "$pg_dir"
  local url t0 expected
  url=$(scripts/pg-test.sh start "$pg_dir")
  cat > "$work/migrate.yaml" <<CONF
upstream: {url: "http://127.0.0.1:9"}
admin: {token: "bench-admin-token-000"}
keys: {secret: "bench-secret-0123456789abcdef012345"}
storage: {database: "$url"}
metering: {log_dir: "$work/meterlog"}
plans: {free: {price: "0"}}
CONF
  "$TG" migrate -c "$work/migrate.yaml" >/dev/null
  t0=$(now)
  expected=$(build/bench-invoices --csv "$CUSTOMERS" "$JAN1_2026" "$work")
  # the customers' change notifications (for other gateways) are for the admin API's writes, not
  # for a bulk load nobody listens to
  psql -q -v ON_ERROR_STOP=1 "$url" <<SQL
ALTER TABLE customers DISABLE TRIGGER customers_notify;
-- the schedule in a table of its own since migration 31 (customer_schedule); in customers before
SELECT to_regclass('customer_schedule') IS NOT NULL AS narrow \\gset
\\if :narrow
CREATE TEMP TABLE load(id text, email text, plan_id text, status text, created_at bigint, anchor_at bigint,
  next_period_end bigint);
\\copy load FROM '$work/customers.csv' WITH (FORMAT csv)
INSERT INTO customers(id, email, plan_id, status, created_at, anchor_at)
  SELECT id, email, plan_id, status, created_at, anchor_at FROM load;
INSERT INTO customer_schedule(customer_id, next_period_end) SELECT id, next_period_end FROM load;
DROP TABLE load;
\\else
\\copy customers(id, email, plan_id, status, created_at, anchor_at, next_period_end) FROM '$work/customers.csv' WITH (FORMAT csv)
\\endif
\copy usage_period(customer_id, period_start, plan_id, metric, units) FROM '$work/usage.csv' WITH (FORMAT csv)
ALTER TABLE customers ENABLE TRIGGER customers_notify;
ANALYZE;
SQL
  rm -f "$work/customers.csv" "$work/usage.csv"
  echo "customers loaded:     $CUSTOMERS with COPY in $(since "$t0") s" > "$1"
  # PostgreSQL's own CPU time over the close (with the second run and the check's listing): the
  # postmaster's and its children's, which include the closer's backend once it has exited
  local pm cpu0 kids i
  pm=$(head -1 "$pg_dir/data/postmaster.pid")
  kids=$(pgrep -c -P "$pm" || true)
  cpu0=$(pg_cpu "$pm")
  "$BI" --close "$CUSTOMERS" "$url" "$FEB1_2026" ${CONNECTIONS:+"$CONNECTIONS"} >> "$1"
  # the closer's backend is counted once the postmaster has reaped it (bounded wait)
  for i in $(seq 100); do [ "$(pgrep -c -P "$pm" || true)" -gt "$kids" ] || break; sleep 0.05; done
  echo "PostgreSQL's CPU:     $(awk -v a="$cpu0" -v b="$(pg_cpu "$pm")" 'BEGIN { printf "%.2f", b - a }') s (server processes, over the close, the second run and the listing)" >> "$1"
  local got
  got=$(awk '/^sum of invoices/ { print $4 }' "$1")
  sed -i "s/^sum of invoices:.*/& (expected $expected): $([ "$got" = "$expected" ] && echo exact || echo MISMATCH)/" "$1"
  scripts/pg-test.sh stop "$pg_dir" >/dev/null
  pg_dir=""
  rm -rf "$work/pg"
}

declare -A secs rss
status=0
for r in $(seq "$RUNS"); do
  for b in "${backends[@]}"; do
    out=$work/$b.$r.out
    load=$(load_avg)
    "run_$b" "$out" # (not in an || list: set -e must stop the run at its first failure)
    echo "== $b, $CUSTOMERS customers, run $r of $RUNS (load average before: $load, after: $(load_avg))"
    cat "$out"
    grep -q ': exact$' "$out" || status=1
    secs[$b]+="$(awk '/^invoices created/ { print $5 }' "$out") "
    rss[$b]+="$(awk '/^peak memory/ { print $4 }' "$out") "
  done
done
if [ "$RUNS" -gt 1 ]; then
  echo
  for b in "${backends[@]}"; do
    # shellcheck disable=SC2086
    echo "$b, $CUSTOMERS customers, $RUNS runs: close $(summary ${secs[$b]}) s; peak RSS $(summary ${rss[$b]}) MiB"
  done
fi
exit $status
