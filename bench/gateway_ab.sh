#!/usr/bin/env bash
# bench/gateway_ab.sh A B - two tollgate binaries (e.g. a base commit's build and this one) in
# alternating rounds, with bench/gateway.sh's setup: nginx as the upstream, 1,000 keys on a plan
# with a finite allowance (included api_calls 1e9, on_quota block: every call runs the usage
# threshold check and crosses nothing), metering DURABILITY. Prints per run: requests/s, p99, p50
# and the server's CPU time per request (user + kernel), then the medians of each binary.
# Env: ROUNDS (8), DURATION (8s), CONNS (64), DURABILITY (batched; or process, strict).
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: bench/gateway_ab.sh TOLLGATE_A TOLLGATE_B" >&2; exit 2; }
A=$1 B=$2 ROUNDS=${ROUNDS:-8} DURATION=${DURATION:-8s} CONNS=${CONNS:-64} DURABILITY=${DURABILITY:-batched}
work=$(mktemp -d /tmp/tollgate-ab.XXXXXX); mkdir -p $work/up
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
UP=$(port); GW=$(port); AD=$(port)
cat > $work/up/nginx.conf <<CONF
worker_processes 1;
daemon off;
error_log $work/up/error.log warn;
pid $work/up/nginx.pid;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP; location / { default_type application/json; return 200 '{"ok":true}'; } } }
CONF
nginx -p $work/up -c $work/up/nginx.conf & pids+=($!)
wait_http() { for _ in $(seq 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done; echo "no answer from $1" >&2; exit 1; }
wait_http http://127.0.0.1:$UP/
conf() { # db
cat > $work/t.yaml <<CONF
server: {listen: "127.0.0.1:$GW", admin_listen: "127.0.0.1:$AD", workers: 2}
upstream: {url: "http://127.0.0.1:$UP", timeout_ms: 30000}
storage: {database: "sqlite:$1"}
admin: {token: "bench-admin-token-0123456789"}
keys: {secret: "bench-key-secret-0123456789abcdef0123"}
metering: {durability: $DURABILITY, flush_ms: 5}
plans:
  bench: {price: "99", rate_limit: 1000000/sec, burst: 1000000, included: {api_calls: 1000000000}, on_quota: block,
          endpoints: ["/v1/*"]}
CONF
}
start() { conf "$2"; "$1" serve -c $work/t.yaml 2>>$work/tg.log & TGPID=$!; wait_http http://127.0.0.1:$AD/healthz; }
stop() { kill -TERM $TGPID; wait $TGPID || true; }
# customers and keys, once, with A; B gets a copy of the database (same key secret)
start "$A" $work/a.db
for i in $(seq 1000); do
  id=$(curl -s -H "Authorization: Bearer bench-admin-token-0123456789" -H "content-type: application/json" -d "{\"email\":\"c$i@bench.test\",\"plan\":\"bench\"}" \
    http://127.0.0.1:$AD/v1/admin/customers | sed -E 's/.*"id":"([^"]+)".*/\1/')
  curl -s -H "Authorization: Bearer bench-admin-token-0123456789" -H "content-type: application/json" -d '{}' \
    http://127.0.0.1:$AD/v1/admin/customers/$id/keys | sed -E 's/.*"secret":"([^"]+)".*/\1/' >> $work/keys.txt; echo >> $work/keys.txt
done
stop
cp $work/a.db $work/b.db
cat > $work/keys.lua <<'LUA'
local keys = {}
for line in io.lines(os.getenv("KEYS_FILE")) do keys[#keys + 1] = line end
local i = 0
request = function()
  i = i % #keys + 1
  return wrk.format("GET", "/v1/basic/x", { ["Authorization"] = "Bearer " .. keys[i] })
end
LUA
one() { # name bin db
  start "$2" "$3"
  KEYS_FILE=$work/keys.txt wrk -t1 -c$CONNS -d2s -s $work/keys.lua http://127.0.0.1:$GW/v1/basic/x >/dev/null 2>&1 || true
  local u0 s0 u1 s1
  read -r u0 s0 < <(awk '{print $14, $15}' /proc/$TGPID/stat)
  KEYS_FILE=$work/keys.txt wrk -t1 -c$CONNS -d$DURATION --latency -s $work/keys.lua http://127.0.0.1:$GW/v1/basic/x > $work/out
  read -r u1 s1 < <(awk '{print $14, $15}' /proc/$TGPID/stat)
  local reqs; reqs=$(awk '/requests in/ {print $1}' $work/out)
  per_req() { awk -v t="$1" -v hz=$(getconf CLK_TCK) -v n="$reqs" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }'; }
  CPUREQ="$(per_req $((u1 - u0 + s1 - s0)))us/req ($(per_req $((u1 - u0))) + $(per_req $((s1 - s0))))"
  stop
  grep -q Non-2xx $work/out && { echo "non-2xx in $1"; grep Non-2xx $work/out; }
  echo "$1 $(awk '/Requests\/sec/ {print $2}' $work/out) $(awk '$1 == "99%" {print $2}' $work/out) $(awk '$1 == "50%" {print $2}' $work/out) ${CPUREQ}" | tee -a $work/rows
}
for r in $(seq $ROUNDS); do
  if [ $((r % 2)) = 1 ]; then one base "$A" $work/a.db; one branch "$B" $work/b.db
  else one branch "$B" $work/b.db; one base "$A" $work/a.db; fi
done
echo "medians ($DURABILITY, $ROUNDS rounds each): name requests/s, CPU us/req, user us/req, kernel us/req"
for n in base branch; do
  med() { sort -n | awk '{v[NR] = $1} END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
  rows=$(grep "^$n " $work/rows)
  echo "$n $(awk '{print $2}' <<< "$rows" | med) $(awk '{sub("us/req", "", $5); print $5}' <<< "$rows" | med) $(awk '{gsub("[(]", "", $6); print $6}' <<< "$rows" | med) $(awk '{gsub("[)]", "", $8); print $8}' <<< "$rows" | med)"
done
