#!/usr/bin/env bash
# bench/access_log.sh - what the access log costs: the same load (bench/gateway.sh's: wrk, 1,000
# keys, metering batched, an nginx upstream) through three setups in alternating rounds:
#   base  BASE_BIN (the build before the access log, e.g. main's build/tollgate)
#   off   TOLLGATE_BIN without access_log
#   on    TOLLGATE_BIN with access_log: {path: FILE} (every call written)
# Prints each round, then per setup the median and the spread (min-max) of requests/s, p50, p99
# and server CPU per request. Env: BASE_BIN (required), DURATION (10s), ROUNDS (5), CONNS (64),
# KEYS (1000), TG_WORKERS.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-64}
KEYS=${KEYS:-1000}
TG=${TOLLGATE_BIN:-build/tollgate}
BASE=${BASE_BIN:?BASE_BIN: the tollgate binary to compare with}

work=$(mktemp -d /tmp/tollgate-bench-al.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
UP=$(port); GW=$(port); AD=$(port)
mkdir -p "$work/up"
cat > "$work/up/nginx.conf" <<CONF
worker_processes 1;
daemon off;
error_log $work/up/error.log warn;
pid $work/up/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP; location / { default_type application/json; return 200 '{"ok":true}'; } }
}
CONF
nginx -p "$work/up" -c "$work/up/nginx.conf" & pids+=($!)
wait_http() { for _ in $(seq 1200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done
  echo "no answer from $1" >&2; tail -5 "$work/tollgate.log" >&2 2>/dev/null; exit 1; }
wait_http "http://127.0.0.1:$UP/"

cat > "$work/keys.lua" <<'LUA'
local keys = {}
for line in io.lines(os.getenv("KEYS_FILE")) do keys[#keys + 1] = line end
local i = 0
request = function()
  i = i % #keys + 1
  return wrk.format("GET", "/v1/basic/x", { ["Authorization"] = "Bearer " .. keys[i] })
end
LUA

start() { # bin access_log_line
  cat > "$work/tollgate.yaml" <<CONF
server: {listen: "127.0.0.1:$GW", admin_listen: "127.0.0.1:$AD", workers: ${TG_WORKERS:-$(nproc)}}
upstream: {url: "http://127.0.0.1:$UP", timeout_ms: 30000}
storage: {database: "sqlite:$work/tollgate.db"}
admin: {token: "bench-admin-token-0123456789"}
keys: {secret: "bench-key-secret-0123456789abcdef0123"}
metering: {durability: batched, flush_ms: 5}
$2
plans:
  bench: {price: "99", rate_limit: 1000000/sec, burst: 1000000, included: {api_calls: 1000000000}, on_quota: block,
          endpoints: ["/v1/*"]}
CONF
  "$1" serve -c "$work/tollgate.yaml" 2>>"$work/tollgate.log" & TGPID=$!
  wait_http "http://127.0.0.1:$AD/healthz"
}
stop() { kill -TERM "$TGPID"; wait "$TGPID" || true; }

start "$BASE" ""
for i in $(seq "$KEYS"); do
  id=$(curl -s -H "Authorization: Bearer bench-admin-token-0123456789" -H "content-type: application/json" -d "{\"email\":\"c$i@bench.test\",\"plan\":\"bench\"}" \
    "http://127.0.0.1:$AD/v1/admin/customers" | sed -E 's/.*"id":"([^"]+)".*/\1/')
  curl -s -H "Authorization: Bearer bench-admin-token-0123456789" -H "content-type: application/json" -d '{}' \
    "http://127.0.0.1:$AD/v1/admin/customers/$id/keys" | sed -E 's/.*"secret":"([^"]+)".*/\1/' >> "$work/keys.txt"
  echo >> "$work/keys.txt"
done
sed -i '/^$/d' "$work/keys.txt"
stop

ms() { awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
  printf "%.3f", (u == "us" ? n / 1000 : u == "ms" ? n : u == "s" ? n * 1000 : n) }'; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A R
run() { # name bin access_log_line
  start "$2" "$3"
  KEYS_FILE=$work/keys.txt wrk -t1 -c"$CONNS" -d2s -s "$work/keys.lua" "http://127.0.0.1:$GW/" >/dev/null 2>&1 || true
  local t0 t1; t0=$(ticks "$TGPID")
  KEYS_FILE=$work/keys.txt wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$work/keys.lua" "http://127.0.0.1:$GW/" > "$work/$1.out"
  t1=$(ticks "$TGPID")
  stop
  local rps p50 p99 n cpu
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/$1.out")
  p50=$(ms "$(awk '$1 == "50%" {print $2}' "$work/$1.out")")
  p99=$(ms "$(awk '$1 == "99%" {print $2}' "$work/$1.out")")
  n=$(awk '/requests in/ {print $1}' "$work/$1.out")
  cpu=$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="$n" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
  grep -q Non-2xx "$work/$1.out" && echo "warning: $1 had non-2xx answers" >&2
  printf "  %-4s %10s req/s  p50 %7s ms  p99 %7s ms  %6s us CPU/req\n" "$1" "$rps" "$p50" "$p99" "$cpu"
  R[$1]+="$rps $p50 $p99 $cpu"$'\n'
}
for r in $(seq "$ROUNDS"); do
  echo "round $r of $ROUNDS:"
  run base "$BASE" ""
  run off "$TG" ""
  run on "$TG" "access_log: {path: \"$work/access.log\"}"
  echo "  access log: $(wc -l < "$work/access.log") lines, $(du -h "$work/access.log" | cut -f1)"
  rm -f "$work/access.log"
done
echo "median [min-max] over $ROUNDS rounds:"
for s in base off on; do
  printf "  %-4s" "$s"
  for col in 1 2 3 4; do
    printf "  %s" "$(printf "%s" "${R[$s]}" | awk -v c=$col 'NF { print $c }' | sort -g |
      awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%s [%s-%s]", m, v[1], v[NR] }')"
  done
  echo "   (req/s, p50 ms, p99 ms, us CPU/req)"
done
