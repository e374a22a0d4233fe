#!/usr/bin/env bash
# bench/callpath_instructions.sh - instructions a proxied call costs the server, counted by
# valgrind's callgrind: repeatable on a busy machine, where CPU time is not (and `perf stat`
# counters are not available on this VM).
#   tollgate: `serve` with one worker, metering durability process (MODE), one key;
#   nginx:    proxy_pass with upstream keep-alive, one worker (master_process off), as in
#             bench/gateway.sh;
# both in front of the same upstream (bench/lib.sh's nginx answering {"ok":true}). Each server runs
# under `valgrind --tool=callgrind`, gets WARMUP calls, then its counters are zeroed
# (callgrind_control --zero), it gets exactly N calls over CONNS keep-alive connections from a
# small node client (the same requests for both, each with an Authorization header nginx
# ignores), and its counters are dumped. Prints instructions per call (total Ir / N, every thread
# of the process) and the top functions (callgrind_annotate) of each.
# Env: N (20000), WARMUP (500), CONNS (4), MODE (process), TOLLGATE_BIN (build/tollgate; run twice
# with two binaries to compare them), WITH_NGINX (1: also measure nginx; 0: not), TOP (15 functions),
# OUT (directory kept for the callgrind files; default a temporary one removed at exit).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
N=${N:-20000}; WARMUP=${WARMUP:-500}; CONNS=${CONNS:-4}; MODE=${MODE:-process}
TG=${TOLLGATE_BIN:-build/tollgate}; WITH_NGINX=${WITH_NGINX:-1}; TOP=${TOP:-15}
command -v valgrind >/dev/null && command -v callgrind_control >/dev/null || { echo "needs valgrind" >&2; exit 1; }
[ -x "$TG" ] || make -s

work=$(mktemp -d /tmp/tollgate-callpath.XXXXXX)
out=${OUT:-$work}; mkdir -p "$out"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# client URL COUNT KEY: exactly COUNT GETs over CONNS keep-alive connections; fails on any non-2xx.
cat > "$work/client.mjs" <<'JS'
import http from "node:http";
const [url, count, key] = [process.argv[2], Number(process.argv[3]), process.argv[4]];
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(process.env.CONNS) });
let sent = 0, bad = 0;
const one = () => new Promise((resolve, reject) => {
  http.get(url, { agent, headers: { authorization: `Bearer ${key}` } }, (res) => {
    if (res.statusCode < 200 || res.statusCode > 299) bad++;
    res.resume(); res.on("end", resolve);
  }).on("error", reject);
});
const lane = async () => { while (sent < count) { sent++; await one(); } };
await Promise.all(Array.from({ length: Number(process.env.CONNS) }, lane));
agent.destroy();
if (bad) { console.error(`${bad} non-2xx answers`); process.exit(1); }
JS
client() { CONNS=$CONNS node "$work/client.mjs" "$@"; }

# measure NAME PID URL KEY: warm up, zero, N calls, dump; prints Ir per call and the top functions.
measure() {
  local name=$1 pid=$2 url=$3 key=$4 file
  client "$url" "$WARMUP" "$key"
  callgrind_control --zero "$pid" >/dev/null 2>&1
  client "$url" "$N" "$key"
  callgrind_control --dump="$name" "$pid" >/dev/null 2>&1
  file=$(ls -t "$out/$name.callgrind".* | head -1)
  local ir; ir=$(awk '/^summary:/ { print $2 }' "$file")
  [ -n "$ir" ] || ir=$(awk '/^totals:/ { print $2 }' "$file")
  printf '%-10s %8d instructions per call (%s over %d calls)\n' "$name" $((ir / N)) "$ir" "$N" | tee -a "$work/summary"
  echo "top $TOP functions of $name by their own instructions (Ir over the N calls, share):" >> "$work/tops"
  # (callgrind_annotate also lists the threads' entry points, at 100%: left out)
  callgrind_annotate --inclusive=no --threshold=100 "$file" 2>/dev/null |
    awk '/file:function/ { on = 1; next } on && /^ *[0-9,]+ \(/ && !/\(100.0%\)/ && shown++ < top' top="$TOP" >> "$work/tops"
}

UP=$(free_port); GW=$(free_port); AD=$(free_port); NG=$(free_port)
start_upstream "$work/up" "$UP"
wait_http "http://127.0.0.1:$UP/"

cat > "$work/tollgate.yaml" <<CONF
server: {listen: "127.0.0.1:$GW", admin_listen: "127.0.0.1:$AD", workers: 1}
upstream: {url: "http://127.0.0.1:$UP", timeout_ms: 30000}
storage: {database: "sqlite:$work/tollgate.db"}
admin: {token: "bench-admin-token-0123456789"}
keys: {secret: "bench-key-secret-0123456789abcdef0123"}
metering: {durability: $MODE, flush_ms: 5}
plans:
  bench: {price: "99", rate_limit: 1000000/sec, burst: 1000000, included: {api_calls: 1000000000}, on_quota: block,
          endpoints: ["/v1/*"]}
CONF
valgrind --tool=callgrind --callgrind-out-file="$out/tollgate.callgrind.%p" \
  "$TG" serve -c "$work/tollgate.yaml" 2>"$work/tollgate.log" & TGPID=$!; pids+=("$TGPID")
wait_http "http://127.0.0.1:$AD/healthz" 1200
admin=(-s -H "Authorization: Bearer bench-admin-token-0123456789" -H "content-type: application/json")
id=$(curl "${admin[@]}" -d '{"email":"c1@bench.test","plan":"bench"}' "http://127.0.0.1:$AD/v1/admin/customers" |
  sed -E 's/.*"id":"([^"]+)".*/\1/')
key=$(curl "${admin[@]}" -d '{}' "http://127.0.0.1:$AD/v1/admin/customers/$id/keys" | sed -E 's/.*"secret":"([^"]+)".*/\1/')
case $key in tg_live_*) ;; *) echo "could not create a key: $key" >&2; exit 1 ;; esac

echo "N=$N calls over $CONNS keep-alive connections after $WARMUP warm-up calls; load average $(load_avg)"
measure tollgate "$TGPID" "http://127.0.0.1:$GW/v1/basic/x" "$key"
kill -TERM "$TGPID"; wait "$TGPID" || true

if [ "$WITH_NGINX" = 1 ]; then
  mkdir -p "$work/proxy"
  cat > "$work/proxy/nginx.conf" <<CONF
master_process off;
daemon off;
worker_processes 1;
error_log $work/proxy/error.log warn;
pid $work/proxy/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream api { server 127.0.0.1:$UP; keepalive 64; }
  server {
    listen 127.0.0.1:$NG;
    location / { proxy_pass http://api; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
  valgrind --tool=callgrind --callgrind-out-file="$out/nginx.callgrind.%p" \
    nginx -p "$work/proxy" -c "$work/proxy/nginx.conf" 2>"$work/nginx.log" & NGPID=$!; pids+=("$NGPID")
  wait_http "http://127.0.0.1:$NG/" 1200
  measure nginx "$NGPID" "http://127.0.0.1:$NG/v1/basic/x" "$key"
fi
echo
cat "$work/tops"
echo
cat "$work/summary"
echo "load average at the end: $(load_avg)"
