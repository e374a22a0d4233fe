#!/usr/bin/env bash
# bench/decide.sh - the decision endpoints (a proxy in front of the upstream asks tollgate about
# each call) beside nginx answering a static 204, in one run, on the same machine.
#   nginx-204: wrk -> nginx `return 204` (one worker per core): the floor of an HTTP round trip
#   envoy:     wrk -> tollgate /v1/decide/envoy/v1/basic/x, the request Envoy's HTTP ext_authz
#              client sends (the client's method and path after path_prefix, Authorization,
#              Content-Length: 0, the service token): key lookup, plan, quota reservation, rate
#              limit and metering, answered from memory; each request with one of KEYS keys
# Every setup gets the same requests from the same wrk script (the headers are sent to nginx too,
# which ignores them), so the client's own CPU per request weighs the same in all of them.
# Setups run in ROUNDS alternating rounds (the machine's speed drifts over minutes, and other jobs
# share its 2 cores); each round prints its figures, the summary the median and spread of each
# setup's requests/s and p99, the ratio to nginx of the same round, the load average before and
# after, and the share of the machine left idle during each run.
#
# Adding an endpoint is one line in SETUPS below: name, server (nginx | tollgate), method, path,
# and extra headers ("-" for none; "Name:value;Name:value", no spaces), e.g. nginx's auth_request
# subrequest to GET /v1/decide:
#   "nginx-authreq tollgate GET /v1/decide X-Original-Method:GET;X-Original-URI:/v1/basic/x"
# Each round runs every setup at each concurrency of CONNS: 64 connections measure throughput
# (and p99 under a full queue), 1 connection the time of one decision (p50 and p99 in
# microseconds: the round trip over loopback plus the decision).
# Env: DURATION (default 5s), ROUNDS (5), CONNS ("64 1"), KEYS (200), DURABILITY (batched;
# strict or process hold each allow answer until its usage is committed), TG_WORKERS (cores).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-64 1}
KEYS=${KEYS:-200}
DURABILITY=${DURABILITY:-batched}
TG=${TOLLGATE_BIN:-build/tollgate}
TOKEN=bench-decide-token-0123456789
ADMIN=bench-admin-token-0123456789
command -v wrk >/dev/null && command -v nginx >/dev/null || scripts/install-deps.sh
[ -x "$TG" ] || make -s

SETUPS=(
  "nginx-204 nginx GET /v1/basic/x -"
  "envoy tollgate GET /v1/decide/envoy/v1/basic/x -"
)

work=$(mktemp -d /tmp/tollgate-bench-decide.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

NG=$(free_port); GW=$(free_port); AD=$(free_port)
mkdir -p "$work/nginx"
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes $(nproc);
daemon off;
error_log $work/nginx/error.log warn;
pid $work/nginx/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$NG; location / { return 204; } }
}
CONF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" & pids+=($!)

# The upstream is never called by a decision; tollgate only needs its address.
cat > "$work/tollgate.yaml" <<CONF
server: {listen: "127.0.0.1:$GW", admin_listen: "127.0.0.1:$AD", workers: ${TG_WORKERS:-$(nproc)}}
upstream: {url: "http://127.0.0.1:9"}
storage: {database: "sqlite:$work/tollgate.db"}
admin: {token: "$ADMIN"}
keys: {secret: "bench-key-secret-0123456789abcdef0123"}
metering: {durability: $DURABILITY, flush_ms: 5}
decide: {token: "$TOKEN"}
plans:
  bench: {price: "99", rate_limit: 1000000/sec, burst: 1000000, included: {api_calls: 1000000000}, on_quota: block,
          endpoints: ["/v1/*"]}
CONF
"$TG" serve -c "$work/tollgate.yaml" 2>"$work/tollgate.log" & TGPID=$!
pids+=("$TGPID")
wait_http "http://127.0.0.1:$AD/healthz"
wait_http "http://127.0.0.1:$NG/"

for i in $(seq "$KEYS"); do
  id=$(curl -s -H "Authorization: Bearer $ADMIN" -H "content-type: application/json" -d "{\"email\":\"c$i@bench.test\",\"plan\":\"bench\"}" \
    "http://127.0.0.1:$AD/v1/admin/customers" | sed -E 's/.*"id":"([^"]+)".*/\1/')
  key=$(curl -s -H "Authorization: Bearer $ADMIN" -H "content-type: application/json" -d '{}' \
    "http://127.0.0.1:$AD/v1/admin/customers/$id/keys" | sed -E 's/.*"secret":"([^"]+)".*/\1/')
  case $key in tg_live_*) echo "$key" >> "$work/keys.txt" ;; *) echo "could not create key $i: $key" >&2; exit 1 ;; esac
done
echo "created $(wc -l < "$work/keys.txt") customers with keys"

# What Envoy's ext_authz HTTP client sends (tests/integration/decide_envoy.test.mjs cites where).
cat > "$work/decide.lua" <<'LUA'
local keys = {}
for line in io.lines(os.getenv("KEYS_FILE")) do keys[#keys + 1] = line end
local method, path, extra = os.getenv("REQ_METHOD"), os.getenv("REQ_PATH"), os.getenv("REQ_EXTRA")
local i = 0
request = function()
  i = i % #keys + 1
  local h = { ["Host"] = "api.example.com", ["Authorization"] = "Bearer " .. keys[i], ["Content-Length"] = "0",
              ["X-Tollgate-Token"] = os.getenv("DECIDE_TOKEN"), ["X-Envoy-Internal"] = "true",
              ["X-Forwarded-For"] = "10.0.0.2", ["X-Envoy-Expected-Rq-Timeout-Ms"] = "250" }
  if extra ~= "-" then
    for item in extra:gmatch("[^;]+") do
      local c = item:find(":")
      h[item:sub(1, c - 1)] = item:sub(c + 1)
    end
  end
  return wrk.format(method, path, h)
end
LUA

machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat; } # busy idle
declare -A RPS P50 P99 IDLE ALL
run_wrk() { # name server method path extra conns
  local name=$1 conns=$6 port url s0 s1
  port=$([ "$2" = nginx ] && echo "$NG" || echo "$GW")
  url="http://127.0.0.1:$port"
  local envs=(KEYS_FILE="$work/keys.txt" REQ_METHOD="$3" REQ_PATH="$4" REQ_EXTRA="$5" DECIDE_TOKEN="$TOKEN")
  env "${envs[@]}" wrk -t1 -c"$conns" -d1s -s "$work/decide.lua" "$url" >"$work/$name.warm" 2>&1 || true
  s0=$(machine_ticks)
  env "${envs[@]}" wrk -t1 -c"$conns" -d"$DURATION" --latency -s "$work/decide.lua" "$url" >"$work/$name.out"
  s1=$(machine_ticks)
  if ! grep -q 'Requests/sec' "$work/$name.out"; then echo "wrk failed for $name:"; cat "$work/$name.out"; exit 1; fi
  if grep -q "Non-2xx" "$work/$name.out"; then echo "warning: $name had non-2xx answers: $(non2xx_of "$work/$name.out")"; fi
  RPS[$name]=$(rps_of "$work/$name.out")
  P50[$name]=$(p50_of "$work/$name.out")
  P99[$name]=$(p99_of "$work/$name.out")
  IDLE[$name]=$(awk -v a="$s0" -v b="$s1" 'BEGIN { split(a, x, " "); split(b, y, " ")
    printf "%.1f", (y[2] - x[2]) * 100 / ((y[1] - x[1]) + (y[2] - x[2])) }')
  cat "$work/$name.warm" "$work/$name.out" >> "$work/$name.all"
}

load_before=$(load_avg)
names=()
for s in "${SETUPS[@]}"; do names+=("${s%% *}"); done
for r in $(seq "$ROUNDS"); do
  # alternate the order too, so that no setup always runs first in a round
  order=("${SETUPS[@]}")
  if [ $((r % 2)) -eq 0 ]; then order=(); for ((k = ${#SETUPS[@]} - 1; k >= 0; k--)); do order+=("${SETUPS[$k]}"); done; fi
  for c in $CONNS; do
    echo "round $r of $ROUNDS, $c connections (load $(load_avg)):"
    for s in "${order[@]}"; do
      read -r name server method path extra <<< "$s"
      run_wrk "$name" "$server" "$method" "$path" "$extra" "$c"
    done
    for n in "${names[@]}"; do
      ratio=$(awk -v a="${RPS[$n]}" -v b="${RPS[nginx-204]}" 'BEGIN { printf "%.3f", a / b }')
      printf "  %-14s %10s req/s  p50 %7s ms  p99 %7s ms  (%s of nginx-204's req/s; machine idle %s%%)\n" \
        "$n" "${RPS[$n]}" "${P50[$n]}" "${P99[$n]}" "$ratio" "${IDLE[$n]}"
      ALL[$n c$c]+="${RPS[$n]} ${P50[$n]} ${P99[$n]} $ratio ${IDLE[$n]}"$'\n'
    done
  done
done
load_after=$(load_avg)
kill -TERM "$TGPID"; wait "$TGPID" || true # stopping stores everything metered

echo
echo "wrk -t1 -d$DURATION, $(nproc) cores, $KEYS keys, metering $DURABILITY; median (min..max; rounds) of $ROUNDS rounds"
echo "load average (1 min) before: $load_before, after: $load_after; other jobs share this machine: see the idle share"
for c in $CONNS; do
  for n in "${names[@]}"; do
    echo "$n, $c connections:"
    echo "  requests/s:          $(summary $(col 1 <<< "${ALL[$n c$c]}"))"
    echo "  p50 ms:              $(summary $(col 2 <<< "${ALL[$n c$c]}"))"
    echo "  p99 ms:              $(summary $(col 3 <<< "${ALL[$n c$c]}"))"
    echo "  ratio to nginx-204:  $(summary $(col 4 <<< "${ALL[$n c$c]}"))"
    echo "  machine idle %:      $(summary $(col 5 <<< "${ALL[$n c$c]}"))"
  done
done
# Every allowed decision is metered once: the 2xx answers wrk counted (warm-ups included) against
# the stored usage; requests in flight when a wrk run stops (up to CONNS a run) may be answered
# and metered uncounted.
rows=$(sqlite3 "$work/tollgate.db" "SELECT SUM(units) FROM usage_period" 2>/dev/null || echo "?")
answered=0 runs=0
for n in "${names[@]}"; do
  [[ $(printf '%s\n' "${SETUPS[@]}" | awk -v n="$n" '$1 == n {print $2}') == tollgate ]] || continue
  answered=$((answered + $(awk '/requests in/ {s += $1} /Non-2xx/ {s -= $NF} END {print s + 0}' "$work/$n.all")))
  runs=$((runs + 2 * ROUNDS * $(wc -w <<< "$CONNS")))
done
maxc=$(printf '%s\n' $CONNS | sort -n | tail -1)
echo "decisions metered: $rows; 2xx decisions counted by wrk: $answered"
if [ "$rows" != "?" ] && { [ "$rows" -lt "$answered" ] || [ "$rows" -gt $((answered + runs * maxc)) ]; }; then
  echo "METERING MISMATCH: $rows metered, $answered answered (+ at most $((runs * maxc)) in flight)"
  exit 1
fi
