#!/usr/bin/env bash
# bench/admin_abuse.sh - is the admin port responsive while it is abused? Starts tollgate (and
# the demo upstream) on loopback, has 64 connections hammer POST /v1/signup and POST /v1/login,
# and measures GET /healthz and GET /v1/plans meanwhile (median, p99, max). Goal: p99 < 50 ms.
#   bench/admin_abuse.sh                  the build in build/
#   BEFORE=/path/to/old/tollgate bench/admin_abuse.sh    also the old binary first, same run
# Env: CONNS (64), DURATION (10 seconds), AFTER_YAML (extra configuration for the new build only,
# e.g. 'portal: {signup: {per_address: 100000/hour, global: 100000/hour}}' to hash every sign-up).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s all
run() { # $1 label, $2 tollgate binary
  local dir port ad up
  dir=$(mktemp -d /tmp/tollgate-bench-admin.XXXXXX)
  read -r port ad up < <(node -e 'const n=require("net");const ps=[];let k=0;for(let i=0;i<3;i++){const s=n.createServer();s.listen(0,"127.0.0.1",()=>{ps.push(s);if(++k===3){console.log(ps.map(x=>x.address().port).join(" "));ps.forEach(x=>x.close());}});}')
  cat >"$dir/tollgate.yaml" <<YAML
server: {listen: "127.0.0.1:$port", admin_listen: "127.0.0.1:$ad", workers: 2}
upstream: {url: "http://127.0.0.1:$up"}
storage: {database: "sqlite:$dir/tollgate.db"}
admin: {token: "bench-admin-token-0123456789"}
keys: {secret: "bench-key-secret-0123456789abcdef0123"}
plans:
  free: {price: "0", rate_limit: 10/min, included: {api_calls: 1000}, on_quota: block}
${3:-}
YAML
  "$2" serve -c "$dir/tollgate.yaml" >"$dir/log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$ad/healthz" >/dev/null && break; sleep 0.05; done
  echo "== $1 ($2)"
  # The abusive client runs at a lower priority than the server and the probe: on this one
  # machine it stands for attackers elsewhere, and must not starve what it measures.
  nice -n 10 node bench/admin_abuse.mjs "http://127.0.0.1:$ad" hammer &
  local hammer=$!
  node bench/admin_abuse.mjs "http://127.0.0.1:$ad" probe
  wait "$hammer"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}
if [ -n "${BEFORE:-}" ]; then run BEFORE "$BEFORE"; fi
run AFTER build/tollgate "${AFTER_YAML:-}"
