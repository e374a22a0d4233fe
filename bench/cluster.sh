#!/usr/bin/env bash
# bench/cluster.sh - three tollgate nodes on one PostgreSQL and one Redis, on this machine, against
# the same upstream as one tollgate on SQLite and as nginx, in one run (issue 12).
#   nginx     wrk -> nginx proxy_pass -> upstream
#   single    wrk -> tollgate (SQLite, local limits) -> upstream
#   cluster   3 x wrk (CONNS/3 connections each) -> 3 tollgate nodes (PostgreSQL + Redis) -> upstream
# Per round: requests/s (the cluster's is the sum of its three nodes), p99 (the cluster's: the
# worst of its nodes), and for the cluster the Redis commands and PostgreSQL transactions per
# proxied call (from Redis' INFO and pg_stat_database; the nodes' round trips from their
# /metrics). Then a hot key: one customer with a rate
# limit of HOT_RATE/s hammered through all three nodes for HOT_SECONDS; prints the calls allowed
# against the limit's allowance (burst + rate x seconds) and the bound of the README.
# Everything runs on the same 2 cores, so three nodes share the CPU that one node has alone: the
# aggregate figure shows what the coordination costs, not what three machines would do.
# Env: DURATION (10s), ROUNDS (3), CONNS (48), KEYS (300), HOT_RATE (200), HOT_SECONDS (10).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-48}
KEYS=${KEYS:-300}
HOT_RATE=${HOT_RATE:-200}
HOT_SECONDS=${HOT_SECONDS:-10}
TG=${TOLLGATE_BIN:-build/tollgate}
TOKEN=bench-admin-token-0123456789
command -v wrk >/dev/null && command -v nginx >/dev/null && command -v redis-server >/dev/null || scripts/install-deps.sh
[ -x "$TG" ] || make -s

work=$(mktemp -d /tmp/tollgate-bench-cluster.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/redis-test.sh stop "$work/redis" >/dev/null 2>&1 || true
  scripts/pg-test.sh stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

UP=$(free_port); NG=$(free_port)
mkdir -p "$work/pg" "$work/redis"
start_upstream "$work/up" "$UP"
start_nginx_proxy "$work/proxy" "$NG" "$UP"
PGURL=$(scripts/pg-test.sh start "$work/pg")
REDIS=$(scripts/redis-test.sh start "$work/redis")
REDIS_PORT=${REDIS##*:}; REDIS_PORT=${REDIS_PORT%%/*}
psql "$PGURL" -qXc "CREATE DATABASE bench" >/dev/null
DB=${PGURL%/*}/bench

wait_http "http://127.0.0.1:$UP/"
wait_http "http://127.0.0.1:$NG/"

cat > "$work/keys.lua" <<'LUA'
local keys = {}
for line in io.lines(os.getenv("KEYS_FILE")) do keys[#keys + 1] = line end
local i = 0
request = function()
  i = i % #keys + 1
  return wrk.format("GET", "/v1/basic/x", { ["Authorization"] = "Bearer " .. keys[i] })
end
LUA

PLANS="plans:
  bench: {price: \"99\", rate_limit: 1000000/sec, burst: 1000000, included: {api_calls: 1000000000}, on_quota: block,
          endpoints: [\"/v1/*\"]}
  hot: {price: \"1\", rate_limit: $HOT_RATE/sec, burst: $HOT_RATE, included: {api_calls: 1000000000}, on_quota: block,
        endpoints: [\"/v1/*\"]}"

# start_node NAME DATABASE [cluster-line]: a tollgate with its admin port on $AD_<NAME>
declare -A GWP ADP PID
start_node() {
  local name=$1 db=$2 cluster=${3:-}
  [ -n "${GWP[$name]:-}" ] || { GWP[$name]=$(free_port); ADP[$name]=$(free_port); }
  mkdir -p "$work/$name"
  cat > "$work/$name/tollgate.yaml" <<CONF
server: {listen: "127.0.0.1:${GWP[$name]}", admin_listen: "127.0.0.1:${ADP[$name]}", workers: ${TG_WORKERS:-$(nproc)}}
upstream: {url: "http://127.0.0.1:$UP", timeout_ms: 30000}
storage: {database: "$db"}
admin: {token: "$TOKEN"}
keys: {secret: "bench-key-secret-0123456789abcdef0123"}
metering: {durability: batched, flush_ms: 5, log_dir: "$work/$name/metering"}
metrics: {open: true}
$cluster
$PLANS
CONF
  "$TG" serve -c "$work/$name/tollgate.yaml" 2>>"$work/$name.log" & PID[$name]=$!
  pids+=("${PID[$name]}")
  wait_http "http://127.0.0.1:${ADP[$name]}/healthz"
}
stop_node() { kill -TERM "${PID[$1]}"; wait "${PID[$1]}" || true; }
make_keys() { # admin-port plan count file
  for i in $(seq "$3"); do
    id=$(curl -s -H "Authorization: Bearer $TOKEN" -H "content-type: application/json" -d "{\"email\":\"$2$i-$RANDOM@bench.test\",\"plan\":\"$2\"}" \
      "http://127.0.0.1:$1/v1/admin/customers" | sed -E 's/.*"id":"([^"]+)".*/\1/')
    key=$(curl -s -H "Authorization: Bearer $TOKEN" -H "content-type: application/json" -d '{}' \
      "http://127.0.0.1:$1/v1/admin/customers/$id/keys" | sed -E 's/.*"secret":"([^"]+)".*/\1/')
    case $key in tg_live_*) echo "$key" >> "$4" ;; *) echo "could not create key $i: $key" >&2; exit 1 ;; esac
  done
}

redis_cmds() { redis-cli -p "$REDIS_PORT" INFO stats | awk -F: '/^total_commands_processed/ {print $2 + 0}'; }
# INFO commandstats as "name calls" lines (commands run inside scripts are counted under their own
# names, and in total_commands_processed, beside the EVALSHA that ran them)
redis_cmdstats() { redis-cli -p "$REDIS_PORT" INFO commandstats | sed -nE 's/^cmdstat_([^:]+):calls=([0-9]+).*/\1 \2/p'; }
# the nodes' own count of Redis round trips (a pipeline is one); empty for a binary without it
redis_trips() {
  local sum=0 v
  for n in $CLUSTER_NODES; do
    v=$(curl -s "http://127.0.0.1:${ADP[$n]}/metrics" | awk '/^tollgate_cluster_redis_round_trips_total / {print $2}')
    [ -n "$v" ] || { echo ""; return; }
    sum=$((sum + v))
  done
  echo "$sum"
}
pg_xacts() { psql "$DB" -qAtXc "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'bench'"; }

CLUSTER_NODES="n1 n2 n3"
cluster_line() { echo "cluster: {redis: \"$REDIS\", node_id: \"bench-$1\"}"; }

# keys: single node on its own SQLite file; the cluster's on node n1 (every node sees them)
start_node single "sqlite:$work/single/tollgate.db"
make_keys "${ADP[single]}" bench "$KEYS" "$work/single.keys"
stop_node single
for n in $CLUSTER_NODES; do start_node "$n" "$DB" "$(cluster_line "$n")"; done
make_keys "${ADP[n1]}" bench "$KEYS" "$work/cluster.keys"
make_keys "${ADP[n1]}" hot 1 "$work/hot.keys"
echo "created $KEYS customers with keys on each side"

declare -A ALL
for r in $(seq "$ROUNDS"); do
  KEYS_FILE=$work/single.keys wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$work/keys.lua" "http://127.0.0.1:$NG/v1/basic/x" > "$work/nginx.out"
  nginx_rps=$(rps_of "$work/nginx.out"); nginx_p99=$(p99_of "$work/nginx.out")

  for n in $CLUSTER_NODES; do stop_node "$n"; done
  start_node single "sqlite:$work/single/tollgate.db"
  KEYS_FILE=$work/single.keys wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$work/keys.lua" "http://127.0.0.1:${GWP[single]}/v1/basic/x" > "$work/single.out"
  single_rps=$(rps_of "$work/single.out"); single_p99=$(p99_of "$work/single.out")
  stop_node single

  for n in $CLUSTER_NODES; do start_node "$n" "$DB" "$(cluster_line "$n")"; done
  c0=$(redis_cmds); x0=$(pg_xacts); s0=$(redis_cmdstats); t0=$(redis_trips)
  for n in $CLUSTER_NODES; do
    KEYS_FILE=$work/cluster.keys wrk -t1 -c$((CONNS / 3)) -d"$DURATION" --latency -s "$work/keys.lua" "http://127.0.0.1:${GWP[$n]}/v1/basic/x" > "$work/$n.out" &
  done
  for n in $CLUSTER_NODES; do while ! grep -q 'Requests/sec' "$work/$n.out" 2>/dev/null; do sleep 0.1; done; done
  c1=$(redis_cmds); x1=$(pg_xacts); s1=$(redis_cmdstats); t1=$(redis_trips)
  cl_rps=0; cl_p99=0; cl_reqs=0
  for n in $CLUSTER_NODES; do
    cl_rps=$(awk -v a="$cl_rps" -v b="$(rps_of "$work/$n.out")" 'BEGIN { printf "%.2f", a + b }')
    cl_p99=$(awk -v a="$cl_p99" -v b="$(p99_of "$work/$n.out")" 'BEGIN { print (b > a ? b : a) }')
    cl_reqs=$((cl_reqs + $(reqs_of "$work/$n.out")))
  done
  per_redis=$(awk -v d=$((c1 - c0)) -v n="$cl_reqs" 'BEGIN { printf "%.4f", d / n }')
  per_pg=$(awk -v d=$((x1 - x0)) -v n="$cl_reqs" 'BEGIN { printf "%.4f", d / n }')
  echo "round $r of $ROUNDS:"
  printf "  %-22s %12s req/s  p99 %8s ms\n" nginx "$nginx_rps" "$nginx_p99" "tollgate (1, SQLite)" "$single_rps" "$single_p99" \
    "tollgate (3, PG+Redis)" "$cl_rps" "$cl_p99"
  per_trip=n/a
  [ -n "$t0" ] && [ -n "$t1" ] && per_trip=$(awk -v d=$((t1 - t0)) -v n="$cl_reqs" 'BEGIN { printf "%.4f", d / n }')
  echo "  cluster: $per_redis Redis commands, $per_trip Redis round trips and $per_pg PostgreSQL transactions per proxied call"
  echo "  Redis commands per proxied call by name: $(awk -v n="$cl_reqs" 'NR == FNR { a[$1] = $2; next }
    { d = $2 - a[$1]; if (d > 0) printf "%s %.4f  ", $1, d / n }' <(echo "$s0") <(echo "$s1"))"
  ALL[nginx]+="$nginx_rps $nginx_p99"$'\n'; ALL[single]+="$single_rps $single_p99"$'\n'
  ALL[cluster]+="$cl_rps $cl_p99 $per_redis $per_pg $per_trip"$'\n'
done

# the hot key: HOT_SECONDS of calls through all three nodes at once
hc0=$(redis_cmds); ht0=$(redis_trips)
for n in $CLUSTER_NODES; do
  KEYS_FILE=$work/hot.keys wrk -t1 -c8 -d"${HOT_SECONDS}s" -s "$work/keys.lua" "http://127.0.0.1:${GWP[$n]}/v1/basic/x" > "$work/hot-$n.out" &
done
for n in $CLUSTER_NODES; do while ! grep -q 'Requests/sec' "$work/hot-$n.out" 2>/dev/null; do sleep 0.1; done; done
hc1=$(redis_cmds); ht1=$(redis_trips)
allowed=0; hot_calls=0
for n in $CLUSTER_NODES; do
  allowed=$((allowed + $(reqs_of "$work/hot-$n.out") - $(non2xx_of "$work/hot-$n.out" || echo 0)))
  hot_calls=$((hot_calls + $(reqs_of "$work/hot-$n.out")))
done
hot_trips=n/a
[ -n "$ht0" ] && [ -n "$ht1" ] && hot_trips=$((ht1 - ht0))
allowance=$((HOT_RATE + HOT_RATE * HOT_SECONDS))

echo
echo "$(nproc) cores, upstream nginx 1 worker, $CONNS connections in all, $KEYS keys, median of $ROUNDS rounds (min..max)"
for s in nginx single cluster; do
  printf "%-10s %12s req/s (%s)   p99 %8s ms (%s)\n" "$s" "$(col 1 <<< "${ALL[$s]}" | median)" "$(col 1 <<< "${ALL[$s]}" | spread)" \
    "$(col 2 <<< "${ALL[$s]}" | median)" "$(col 2 <<< "${ALL[$s]}" | spread)"
done
echo "cluster per proxied call: $(col 3 <<< "${ALL[cluster]}" | median) Redis commands ($(col 3 <<< "${ALL[cluster]}" | spread)), $(col 5 <<< "${ALL[cluster]}" | median) Redis round trips, $(col 4 <<< "${ALL[cluster]}" | median) PostgreSQL transactions"
echo "hot key ($HOT_RATE/s, burst $HOT_RATE, ${HOT_SECONDS}s, 3 nodes): $allowed calls allowed of an allowance of $allowance ($(awk -v a="$allowed" -v b="$allowance" 'BEGIN { printf "%.3f", a / b }')x)"
echo "hot key's Redis cost: $((hc1 - hc0)) commands and $hot_trips round trips for $hot_calls calls ($allowed allowed)"
