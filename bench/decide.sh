#!/usr/bin/env bash
# bench/decide.sh - how fast the decision API answers (issue 16), beside nginx answering a static
# 204 in the same run: the floor of any HTTP answer on this machine.
#   (a) wrk -> nginx: `return 204` (one worker per core, no access log)
#   (b) wrk -> tollgate GET /v1/decide   (auth_request's call: key, endpoints, quota reservation,
#       rate limit, the reservation held; what nginx would send, with the 1,000 keys in turn)
#   (c) wrk -> tollgate POST /v1/check   (the same decision from a JSON body, JSON answer)
#   (d) wrk -> tollgate /v1/decide/envoy/v1/basic/x (Envoy's ext_authz in HTTP mode: the client's
#       method and path after path_prefix, Content-Length: 0, what tests/integration/
#       decide_envoy.test.mjs cites Envoy as sending; the call is metered at the decision)
# They run in ROUNDS alternating rounds (the machine's speed drifts, and other work on it
# falls on all of them); each round prints its figures, the summary gives medians and the load
# average. Reservations are settled by the timeout rule (decide.settle_timeout_ms: 200,
# on_timeout: release), so that cost is in tollgate's CPU figures too, as a settlement would be.
# Prints requests/s, p50, p99, server CPU per request and the share of the machine left idle.
# Env: DURATION (default 10s), ROUNDS (3), CONNS (32; CONNS=1 gives the time of one decision),
# KEYS (1000), TG_WORKERS (default nproc).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-32}
KEYS=${KEYS:-1000}
TG=${TOLLGATE_BIN:-build/tollgate}
TOKEN=bench-decide-token-0123456789
command -v wrk >/dev/null && command -v nginx >/dev/null || scripts/install-deps.sh
[ -x "$TG" ] || make -s

work=$(mktemp -d /tmp/tollgate-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"; }
trap cleanup EXIT

NG=$(free_port); GW=$(free_port); AD=$(free_port); UP=$(free_port)
mkdir -p "$work/ng"
cat > "$work/ng/nginx.conf" <<CONF
worker_processes $(nproc);
daemon off;
error_log $work/ng/error.log warn;
pid $work/ng/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$NG; location / { return 204; } }
}
CONF
nginx -p "$work/ng" -c "$work/ng/nginx.conf" & pids+=($!)
wait_http "http://127.0.0.1:$NG/"

cat > "$work/tollgate.yaml" <<CONF
server: {listen: "127.0.0.1:$GW", admin_listen: "127.0.0.1:$AD", workers: ${TG_WORKERS:-$(nproc)}}
upstream: {url: "http://127.0.0.1:$UP"}
storage: {database: "sqlite:$work/tollgate.db"}
admin: {token: "bench-admin-token-0123456789"}
keys: {secret: "bench-key-secret-0123456789abcdef0123"}
decide: {token: "$TOKEN", settle_timeout_ms: 200, on_timeout: release, max_pending: 1000000}
plans:
  bench: {price: "99", rate_limit: 1000000/sec, burst: 1000000, included: {api_calls: 1000000000}, on_quota: block,
          endpoints: ["/v1/*"]}
CONF
"$TG" serve -c "$work/tollgate.yaml" 2>"$work/tollgate.log" & TGPID=$!
pids+=("$TGPID")
wait_http "http://127.0.0.1:$AD/healthz"
for i in $(seq "$KEYS"); do
  id=$(curl -s -H "Authorization: Bearer bench-admin-token-0123456789" -H "content-type: application/json" \
    -d "{\"email\":\"c$i@bench.test\",\"plan\":\"bench\"}" "http://127.0.0.1:$AD/v1/admin/customers" |
    sed -E 's/.*"id":"([^"]+)".*/\1/')
  key=$(curl -s -H "Authorization: Bearer bench-admin-token-0123456789" -H "content-type: application/json" -d '{}' \
    "http://127.0.0.1:$AD/v1/admin/customers/$id/keys" | sed -E 's/.*"secret":"([^"]+)".*/\1/')
  case $key in tg_live_*) echo "$key" >> "$work/keys.txt" ;; *) echo "could not create key $i: $key" >&2; exit 1 ;; esac
done
echo "created $(wc -l < "$work/keys.txt") customers with keys"

# Every setup gets requests from the same kind of script (a key per request, in turn), so that
# wrk's own CPU per request, on the same 2 cores, is alike in all of them: nginx's 204 is sent
# decide's request. wrk_script NAME writes $work/NAME.lua; stdin is the body of request(), in
# which keys[i] is this request's key.
wrk_script() {
  {
    cat <<'LUA'
local keys = {}
for line in io.lines(os.getenv("KEYS_FILE")) do keys[#keys + 1] = line end
local i = 0
request = function()
  i = i % #keys + 1
LUA
    cat
    echo end
  } > "$work/$1.lua"
}
wrk_script decide <<LUA
  return wrk.format("GET", "/v1/decide", { ["Authorization"] = "Bearer " .. keys[i],
    ["X-Original-Method"] = "GET", ["X-Original-URI"] = "/v1/basic/x?q=1", ["X-Tollgate-Token"] = "$TOKEN" })
LUA
wrk_script check <<LUA
  return wrk.format("POST", "/v1/check", { ["Content-Type"] = "application/json", ["X-Tollgate-Token"] = "$TOKEN" },
    '{"key":"' .. keys[i] .. '","method":"GET","path":"/v1/basic/x"}')
LUA
wrk_script envoy <<LUA
  return wrk.format("GET", "/v1/decide/envoy/v1/basic/x?q=1", { ["Host"] = "api.example.com",
    ["Authorization"] = "Bearer " .. keys[i], ["Content-Length"] = "0", ["X-Tollgate-Token"] = "$TOKEN",
    ["X-Envoy-Internal"] = "true", ["X-Forwarded-For"] = "10.0.0.2", ["X-Envoy-Expected-Rq-Timeout-Ms"] = "250" })
LUA

cpu_ticks() { # "utime stime" of processes (all their threads) and their child processes
  local u=0 s=0 p pu ps
  for p in "$@" $(for q in "$@"; do pgrep -P "$q" || true; done); do
    [ -r /proc/$p/stat ] || continue
    read -r pu ps < <(awk '{print $14, $15}' /proc/$p/stat)
    u=$((u + pu)); s=$((s + ps))
  done
  echo "$u $s"
}
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat; } # busy idle
declare -A RPS P50 P99 CPU IDLE ALL
run_wrk() { # name url script server-pids...
  local name=$1 url=$2 script=$3; shift 3
  KEYS_FILE=$work/keys.txt wrk -t1 -c"$CONNS" -d2s -s "$script" "$url" >"$work/$name.warm" 2>&1 || true
  local s0 s1 before after
  s0=$(machine_ticks); before=$(cpu_ticks "$@")
  KEYS_FILE=$work/keys.txt wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$script" "$url" > "$work/$name.out"
  after=$(cpu_ticks "$@"); s1=$(machine_ticks)
  if ! grep -q 'Requests/sec' "$work/$name.out"; then echo "wrk failed for $name:"; cat "$work/$name.out"; exit 1; fi
  if grep -q "Non-2xx" "$work/$name.out"; then echo "warning: $name had non-2xx responses:"; grep Non-2xx "$work/$name.out"; fi
  IDLE[$name]=$(awk -v a="$s0" -v b="$s1" 'BEGIN { split(a, x, " "); split(b, y, " ")
    printf "%.1f", (y[2] - x[2]) * 100 / ((y[1] - x[1]) + (y[2] - x[2])) }')
  RPS[$name]=$(rps_of "$work/$name.out")
  P50[$name]=$(p50_of "$work/$name.out")
  P99[$name]=$(p99_of "$work/$name.out")
  local reqs hz; reqs=$(reqs_of "$work/$name.out"); hz=$(getconf CLK_TCK)
  CPU[$name]=$(awk -v t=$(( ${after% *} - ${before% *} + ${after#* } - ${before#* } )) -v hz="$hz" -v n="$reqs" \
    'BEGIN { printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0) }')
}

# The setups, in the order each round runs them: name, URL, script (wrk_script's name), server pid.
declare -A URL SCRIPT SERVER
SETUPS=""
setup() { SETUPS+="${SETUPS:+ }$1"; URL[$1]=$2; SCRIPT[$1]=$3; SERVER[$1]=$4; }
setup nginx-204 "http://127.0.0.1:$NG/v1/decide" decide "$(cat "$work/ng/nginx.pid")"
setup decide "http://127.0.0.1:$GW/v1/decide" decide "$TGPID"
setup check "http://127.0.0.1:$GW/v1/check" check "$TGPID"
setup envoy "http://127.0.0.1:$GW/v1/decide/envoy/v1/basic/x?q=1" envoy "$TGPID"
row() { printf "%-22s %12s %10s %10s %16s %8s\n" "$@"; }
echo "load average before: $(cat /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
  for n in $SETUPS; do run_wrk "$n" "${URL[$n]}" "$work/${SCRIPT[$n]}.lua" "${SERVER[$n]}"; done
  echo "round $r of $ROUNDS (load average $(load_avg)):"
  for n in $SETUPS; do
    row "  $n" "${RPS[$n]}" "${P50[$n]}ms" "${P99[$n]}ms" "${CPU[$n]} us/req" "${IDLE[$n]}%"
    ALL[$n]+="${RPS[$n]} ${P50[$n]} ${P99[$n]} ${CPU[$n]} ${IDLE[$n]}"$'\n'
  done
done

echo
echo "wrk -t1 -c$CONNS -d$DURATION, $(nproc) cores, $KEYS keys; median of $ROUNDS rounds; load average now: $(cat /proc/loadavg)"
row "setup" "requests/s" "p50" "p99" "server CPU/req" "idle"
for n in $SETUPS; do
  row "$n" "$(col 1 <<< "${ALL[$n]}" | median)" "$(col 2 <<< "${ALL[$n]}" | median)ms" \
    "$(col 3 <<< "${ALL[$n]}" | median)ms" "$(col 4 <<< "${ALL[$n]}" | median) us" "$(col 5 <<< "${ALL[$n]}" | median)%"
done
for n in decide check envoy; do
  echo "$n vs nginx's 204: throughput ratio $(awk -v a="$(col 1 <<< "${ALL[$n]}" | median)" -v b="$(col 1 <<< "${ALL[nginx-204]}" | median)" 'BEGIN { printf "%.3f", a / b }')"
done
grep -q "ERROR\|AddressSanitizer" "$work/tollgate.log" && { echo "tollgate logged errors:"; tail -20 "$work/tollgate.log"; exit 1; }
exit 0
