#!/usr/bin/env bash
# bench/gateway.sh - throughput and latency of tollgate against nginx, in one run, same upstream.
#   (a) wrk -> upstream                       (direct)
#   (b) wrk -> nginx proxy_pass -> upstream   (one worker per core, upstream keepalive)
#   (c) wrk -> tollgate -> upstream           (auth + rate limit + quota + metering, 1,000 keys),
#       once per metering durability: batched, process and strict
# The upstream is nginx with one worker answering a small JSON body. Nothing is pinned.
# Every setup gets the same requests from the same wrk script (each with one of the 1,000 keys in
# an Authorization header, which nginx and the upstream ignore): on 2 shared cores the client's
# own CPU per request is part of every figure, so it must be the same in all of them.
# (b) and (c) run in ROUNDS alternating rounds, so that the machine's drift in speed (a third,
# over minutes, on this VM) falls on both; each round prints its figures and ratios, and the
# summary gives the median of each setup and of each ratio.
# Prints requests/s, p50, p99 and server CPU time per request, and (c)/(b); for tollgate also the
# calls per metering-log append (strict pays one durable append per group: bench/durable_append.sh
# measures its cost; process one buffered write per event-loop iteration), and for every setup the
# share of the machine left idle. MODES (default "batched process strict") picks the modes.
# Env: DURATION (default 10s), ROUNDS (5), CONNS (64), KEYS (1000), PERF_DIR (a directory: each
# tollgate window is also recorded there with perf record -g, for perf report; its sampling costs
# some throughput, so the figures of such a run are not comparable), TG_WORKERS, CLUSTER_REDIS (a
# redis:// URL: tollgate runs as one node of a cluster sharing its limits there, cluster.redis).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-64}
KEYS=${KEYS:-1000}
TG=${TOLLGATE_BIN:-build/tollgate}
command -v wrk >/dev/null && command -v nginx >/dev/null || scripts/install-deps.sh
[ -x "$TG" ] || make -s

work=$(mktemp -d /tmp/tollgate-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

UP=$(free_port); NG=$(free_port); GW=$(free_port); AD=$(free_port)
start_upstream "$work/up" "$UP"
start_nginx_proxy "$work/proxy" "$NG" "$UP"

cpu_ticks() { # "utime stime" of processes (all their threads) and their child processes
  local u=0 s=0 p pu ps
  for p in "$@" $(for q in "$@"; do pgrep -P "$q" || true; done); do
    [ -r /proc/$p/stat ] || continue
    read -r pu ps < <(awk '{print $14, $15}' /proc/$p/stat)
    u=$((u + pu)); s=$((s + ps))
  done
  echo "$u $s"
}

# thread_ticks PID: "NAME TICKS" (user + system) for each thread of tollgate, the event-loop
# workers (tg-gw-N) as one "workers"
thread_ticks() { thread_cpu_ticks "$1" | awk '{ n = $2; sub(/^tg-gw-[0-9]+$/, "workers", n); print n, $3 }'; }
# per_thread BEFORE AFTER CALLS: "workers 14.1, tg-meter 1.2, ..." µs of CPU per call by thread,
# the busiest first (where tollgate's CPU per call goes beside the workers)
per_thread() {
  awk -v hz="$(getconf CLK_TCK)" -v n="$3" '
    FNR == NR { before[$1] += $2; next }
    { after[$1] += $2 }
    END { for (t in after) { d = after[t] - before[t]; if (d > 0) printf "%.2f %s\n", d / hz * 1e6 / n, t } }' \
    <(echo "$1") <(echo "$2") | sort -rn | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $2, $1 }'
}

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

declare -A RPS P50 P99 CPU USR SYS IDLE PERAPP THREADS
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat; } # busy idle
appends() { # "records appends" so far: the metering log's appends (each a group of calls)
  curl -s -H "Authorization: Bearer bench-admin-token-0123456789" "http://127.0.0.1:$AD/metrics" |
    awk '/^tollgate_metering_records_total\{stage="committed"\}/ { r = $2 } /^tollgate_metering_commits_total/ { c = $2 } END { print r + 0, c + 0 }'
}
run_wrk() { # name url server-pids...
  local name=$1 url=$2; shift 2
  local script=(-s "$work/keys.lua") before after
  # What the setup before left dirty (strict's database writes, a stopped tollgate's last store)
  # is written back now, not during this setup's window: each one starts from a clean disk.
  sync
  KEYS_FILE=$work/keys.txt wrk -t1 -c"$CONNS" -d2s "${script[@]}" "$url" >"$work/$name.warm" 2>&1 || true # warm up
  local m0 m1 s0 s1
  [[ $name == tollgate-* ]] && m0=$(appends)
  local th0="" th1=""
  [[ $name == tollgate-* ]] && th0=$(thread_ticks "$1")
  s0=$(machine_ticks); before=$(cpu_ticks "$@")
  local perf_pid=""
  if [ -n "${PERF_DIR:-}" ] && [[ $name == tollgate-* ]]; then # a profile of tollgate over the window
    perf record -q -F 999 -g -p "$1" -o "$PERF_DIR/$name.$(date +%s).data" -- sleep "${DURATION%s}" 2>/dev/null & perf_pid=$!
  fi
  KEYS_FILE=$work/keys.txt wrk -t1 -c"$CONNS" -d"$DURATION" --latency "${script[@]}" "$url" > "$work/$name.out"
  [ -z "$perf_pid" ] || wait "$perf_pid" || true
  after=$(cpu_ticks "$@"); s1=$(machine_ticks)
  [[ $name == tollgate-* ]] && th1=$(thread_ticks "$1")
  IDLE[$name]=$(awk -v a="$s0" -v b="$s1" 'BEGIN { split(a, x, " "); split(b, y, " ")
    printf "%.1f", (y[2] - x[2]) * 100 / ((y[1] - x[1]) + (y[2] - x[2])) }')
  if [[ $name == tollgate-* ]]; then
    m1=$(appends)
    PERAPP[$name]=$(awk -v a="$m0" -v b="$m1" 'BEGIN { split(a, x, " "); split(b, y, " ")
      printf "%.1f", (y[2] > x[2] ? (y[1] - x[1]) / (y[2] - x[2]) : 0) }')
  fi
  [ -n "${BENCH_DEBUG:-}" ] && echo "debug $name pids=$* before=$before after=$after" >&2
  if ! grep -q 'Requests/sec' "$work/$name.out"; then echo "wrk failed for $name:"; cat "$work/$name.out"; exit 1; fi
  RPS[$name]=$(rps_of "$work/$name.out")
  P50[$name]=$(awk '$1 == "50%" {print $2}' "$work/$name.out")
  P99[$name]=$(awk '$1 == "99%" {print $2}' "$work/$name.out")
  local reqs; reqs=$(reqs_of "$work/$name.out")
  local hz; hz=$(getconf CLK_TCK)
  local du=$(( ${after% *} - ${before% *} )) ds=$(( ${after#* } - ${before#* } ))
  per_req() { awk -v t="$1" -v hz="$hz" -v n="$reqs" 'BEGIN { printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0) }'; }
  CPU[$name]=$(per_req $((du + ds))); USR[$name]=$(per_req "$du"); SYS[$name]=$(per_req "$ds")
  [[ $name == tollgate-* ]] && THREADS[$name]=$(per_thread "$th0" "$th1" "$reqs")
  if grep -q "Non-2xx" "$work/$name.out"; then echo "warning: $name had non-2xx responses:"; grep Non-2xx "$work/$name.out"; fi
}

cluster_line=
[ -z "${CLUSTER_REDIS:-}" ] || cluster_line="cluster: {redis: \"$CLUSTER_REDIS\", node_id: bench-gw}"
start_tollgate() { # durability
  cat > "$work/tollgate.yaml" <<CONF
server: {listen: "127.0.0.1:$GW", admin_listen: "127.0.0.1:$AD", workers: ${TG_WORKERS:-$(nproc)}}
upstream: {url: "http://127.0.0.1:$UP", timeout_ms: 30000}
storage: {database: "sqlite:$work/tollgate.db"}
admin: {token: "bench-admin-token-0123456789"}
keys: {secret: "bench-key-secret-0123456789abcdef0123"}
metering: {durability: $1, flush_ms: 5}
$cluster_line
plans:
  bench: {price: "99", rate_limit: 1000000/sec, burst: 1000000, included: {api_calls: 1000000000}, on_quota: block,
          endpoints: ["/v1/*"]}
CONF
  "$TG" serve -c "$work/tollgate.yaml" 2>"$work/tollgate-$1.log" & TGPID=$!
  pids+=("$TGPID")
  wait_http "http://127.0.0.1:$AD/healthz"
}

start_tollgate batched
if [ ! -s "$work/keys.txt" ]; then
  for i in $(seq "$KEYS"); do
    id=$(curl -s -H "Authorization: Bearer bench-admin-token-0123456789" -H "content-type: application/json" -d "{\"email\":\"c$i@bench.test\",\"plan\":\"bench\"}" \
      "http://127.0.0.1:$AD/v1/admin/customers" | sed -E 's/.*"id":"([^"]+)".*/\1/')
    key=$(curl -s -H "Authorization: Bearer bench-admin-token-0123456789" -H "content-type: application/json" -d '{}' \
      "http://127.0.0.1:$AD/v1/admin/customers/$id/keys" | sed -E 's/.*"secret":"([^"]+)".*/\1/')
    case $key in tg_live_*) echo "$key" >> "$work/keys.txt" ;; *) echo "could not create key $i: $key" >&2; exit 1 ;; esac
  done
fi
echo "created $(wc -l < "$work/keys.txt") customers with keys"

up_pid=$(cat "$work/up/nginx.pid"); ng_pid=$(cat "$work/proxy/nginx.pid")
kill -TERM "$TGPID"; wait "$TGPID" || true
MODES=${MODES:-batched process strict}
SETUPS="nginx"; for mode in $MODES; do SETUPS+=" tollgate-$mode"; done
declare -A ALL
run_wrk direct "http://127.0.0.1:$UP/v1/basic/x" "$up_pid"
ALL[direct]="${RPS[direct]} ${P50[direct]} ${P99[direct]} ${CPU[direct]} ${USR[direct]} ${SYS[direct]}"
row() { printf "%-18s %12s %10s %10s %13s us %18s\n" "$1" "$2" "$3" "$4" "$5" "($6 + $7)"; }
ratios() { # name: "throughput ratio, p99 difference" against nginx of the same round
  awk -v c="${RPS[$1]}" -v b="${RPS[nginx]}" -v pc="$(ms "${P99[$1]}")" -v pb="$(ms "${P99[nginx]}")" \
    'BEGIN { printf "%.3f %+.3f\n", c / b, pc - pb }'
}
for r in $(seq "$ROUNDS"); do
  run_wrk nginx "http://127.0.0.1:$NG/v1/basic/x" "$ng_pid"
  for mode in $MODES; do
    start_tollgate "$mode"
    run_wrk "tollgate-$mode" "http://127.0.0.1:$GW/v1/basic/x" "$TGPID"
    mv "$work/tollgate-$mode.out" "$work/tollgate-$mode.$r.out"; mv "$work/tollgate-$mode.warm" "$work/tollgate-$mode.$r.warm"
    kill -TERM "$TGPID"; wait "$TGPID" || true # stopping stores everything metered
  done
  echo "round $r of $ROUNDS:"
  for n in $SETUPS; do
    row "  $n" "${RPS[$n]}" "${P50[$n]}" "${P99[$n]}" "${CPU[$n]}" "${USR[$n]}" "${SYS[$n]}"
    ALL[$n]+="${RPS[$n]} ${P50[$n]} ${P99[$n]} ${CPU[$n]} ${USR[$n]} ${SYS[$n]}"$'\n'
  done
  for mode in $MODES; do
    n=tollgate-$mode
    read -r ratio dp99 < <(ratios "$n")
    echo "  $n vs nginx: throughput ratio $ratio, p99 $dp99 ms; ${PERAPP[$n]} calls per metering-log append"
    echo "    its CPU per call by thread (user + kernel, µs): ${THREADS[$n]}"
    ALL[$n-ratio]+="$ratio $dp99 ${PERAPP[$n]}"$'\n'
  done
  echo "  machine idle: $(for n in $SETUPS; do printf '%s %s%%, ' "${n#tollgate-}" "${IDLE[$n]}"; done | sed 's/, $//')"
  for n in $SETUPS; do ALL[$n-idle]+="${IDLE[$n]}"$'\n'; done
done
rows=$(sqlite3 "$work/tollgate.db" "SELECT SUM(units) FROM usage_period" 2>/dev/null || echo "?")
# Every 2xx answer wrk counted must be metered; requests still in flight when a wrk run stops (up
# to CONNS per run) may be answered and metered without wrk counting them.
answered=$(cat "$work"/tollgate-*.warm "$work"/tollgate-*.out |
  awk '/requests in/ {s += $1} /Non-2xx/ {s -= $NF} END {print s + 0}')
runs=$(ls "$work"/tollgate-*.out | wc -l)

echo
echo "wrk -t1 -c$CONNS -d$DURATION, $(nproc) cores, upstream: nginx 1 worker; tollgate: $KEYS keys; median of $ROUNDS rounds"
printf "%-18s %12s %10s %10s %16s %18s\n" "setup" "requests/s" "p50" "p99" "server CPU/req" "(user + kernel)"
read -r d_rps d_p50 d_p99 d_cpu d_usr d_sys <<< "${ALL[direct]}"
row direct "$d_rps" "$d_p50" "$d_p99" "$d_cpu" "$d_usr" "$d_sys"
for n in $SETUPS; do
  m=()
  for c in 1 4 5 6; do m+=("$(col $c <<< "${ALL[$n]}" | median)"); done
  p50=$(for v in $(col 2 <<< "${ALL[$n]}"); do ms "$v"; echo; done | median)
  p99=$(for v in $(col 3 <<< "${ALL[$n]}"); do ms "$v"; echo; done | median)
  row "$n" "${m[0]}" "${p50}ms" "${p99}ms" "${m[1]}" "${m[2]}" "${m[3]}"
done
for mode in $MODES; do
  n=tollgate-$mode
  echo "$n vs nginx: throughput ratio $(col 1 <<< "${ALL[$n-ratio]}" | median) (rounds: $(col 1 <<< "${ALL[$n-ratio]}" | paste -sd' ')), p99 $(col 2 <<< "${ALL[$n-ratio]}" | median) ms (rounds: $(col 2 <<< "${ALL[$n-ratio]}" | paste -sd' '))"
done
echo "calls per metering-log append (median): $(for mode in $MODES; do printf '%s %s, ' "$mode" "$(col 3 <<< "${ALL[tollgate-$mode-ratio]}" | median)"; done | sed 's/, $//')"
echo "machine idle during the runs (median): $(for n in $SETUPS; do printf '%s %s%%, ' "${n#tollgate-}" "$(col 1 <<< "${ALL[$n-idle]}" | median)"; done | sed 's/, $//')"
echo "calls metered (all tollgate runs, warm-ups included): $rows; 2xx answers counted by wrk: $answered"
if [ "$rows" != "?" ] && { [ "$rows" -lt "$answered" ] || [ "$rows" -gt $((answered + 2 * runs * CONNS)) ]; }; then
  echo "METERING MISMATCH: $rows metered, $answered answered (+ at most $((2 * runs * CONNS)) in flight)"
  exit 1
fi
