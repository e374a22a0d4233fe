#!/usr/bin/env bash
# bench/events.sh - POST /v1/events (issue 16): batches of BATCH events (default 1,000) with 1 %
# repeated ids, TOTAL events in all (default 10,000,000), events/s and p99 per batch, beside a
# reference in the same run:
#   (a) wrk -> nginx that reads each body and discards it (the HTTP ceiling for these bodies)
#   (b) wrk -> tollgate, durable before the answer (DURABILITY: strict by default, or process)
#   (c) the durable-append ceiling: bench-durable-append with BATCH rows per append (one append
#       carries at most one batch here, so its appends/s x BATCH bounds events/s in strict mode)
# The same Lua script makes the bodies for (a) and (b): each batch has BATCH - BATCH/100 new ids
# and BATCH/100 ids of the batch before (duplicates, counted once). The answer's counts are
# checked: the usage stored must be exactly the distinct events (each has value 1). Each line
# also gives the server's CPU per event (user + system, all its threads: for tollgate the
# metering log's writer and the store's applier too) while wrk sends, which moves less than
# events/s when other work shares the machine. The store's applier lags behind the answers (the
# usage is safe in the metering log meanwhile), so tollgate's CPU is also given up to the moment
# every answered event is in the store ("stored": the exactly-once check reads the usage API,
# which waits for the applier), with how long after the run that took: what the rate costs in all.
# nginx gets the whole DURATION (40s); tollgate sends for DURATION or until TOTAL events are sent,
# and wrk then idles out the duration (it cannot end early), so reaching TOTAL reports a lower
# bound, marked '>='.
# The dedup index is sized at start for TOTAL ids (events.index_keys), so that the run measures
# ingest and not the index's rebuilds (each one holds every claim while it writes the new file;
# sized for the default 10,000,000 the index is a 512 MiB file in the run's temporary directory);
# INDEX_KEYS=0 leaves it to grow (needed for a tollgate built before that directive).
# Env: TOTAL, BATCH, DURATION, CONNS (4), CUSTOMERS (100), DURABILITY (strict), INDEX_KEYS (TOTAL),
# TOLLGATE_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
TOTAL=${TOTAL:-10000000}
BATCH=${BATCH:-1000}
CONNS=${CONNS:-4}
CUSTOMERS=${CUSTOMERS:-100}
DURABILITY=${DURABILITY:-strict}
DURATION=${DURATION:-40s}
INDEX_KEYS=${INDEX_KEYS:-$TOTAL}
TG=${TOLLGATE_BIN:-build/tollgate}
command -v wrk >/dev/null && command -v nginx >/dev/null || scripts/install-deps.sh
[ -x "$TG" ] && [ -x build/bench-durable-append ] || make -s all
BATCHES=$((TOTAL / BATCH))

work=$(mktemp -d /tmp/tollgate-bench-events.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

NG=$(free_port); GW=$(free_port); AD=$(free_port); UP=$(free_port)
mkdir -p "$work/sink"
# "return" answers before reading the body; proxying to a closed location forces nginx to read it
# whole into memory and discard it, as tollgate must read it.
cat > "$work/sink/nginx.conf" <<CONF
worker_processes 1;
daemon off;
error_log $work/sink/error.log warn;
pid $work/sink/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_max_body_size 64m;
  client_body_buffer_size 4m;
  server { listen 127.0.0.1:$NG;
    location / { client_body_in_single_buffer on; proxy_pass http://127.0.0.1:$UP/sink; }
  }
  server { listen 127.0.0.1:$UP; location /sink { default_type application/json; return 200 '{"ok":true}'; } }
}
CONF
nginx -p "$work/sink" -c "$work/sink/nginx.conf" & NGPID=$!; pids+=("$NGPID")

cat > "$work/tollgate.yaml" <<CONF
server: {listen: "127.0.0.1:$GW", admin_listen: "127.0.0.1:$AD", workers: $(nproc)}
upstream: {url: "http://127.0.0.1:$UP", timeout_ms: 30000}
storage: {database: "sqlite:$work/tollgate.db"}
admin: {token: "bench-admin-token-0123456789"}
keys: {secret: "bench-key-secret-0123456789abcdef0123"}
metering: {durability: $DURABILITY, flush_ms: 5}
events:
  max_batch: $BATCH
$([ "$INDEX_KEYS" != 0 ] && echo "  index_keys: $INDEX_KEYS")
  tokens: [{name: bench, token: "bench-ingest-token-0123456789"}]
plans:
  bench: {price: "99", rate_limit: 1000000/sec, burst: 1000000, included: {tokens: 1000000000000},
          charges: [{metric: tokens, model: per_unit, unit_price: "0.000001"}]}
CONF
"$TG" serve -c "$work/tollgate.yaml" 2>"$work/tollgate.log" & TGPID=$!; pids+=("$TGPID")
wait_http "http://127.0.0.1:$AD/healthz"
wait_http "http://127.0.0.1:$NG/" 
for i in $(seq "$CUSTOMERS"); do
  curl -s -H "Authorization: Bearer bench-admin-token-0123456789" -H "content-type: application/json" \
    -d "{\"email\":\"c$i@bench.test\",\"plan\":\"bench\"}" "http://127.0.0.1:$AD/v1/admin/customers" |
    sed -E 's/.*"id":"([^"]+)".*/\1/' >> "$work/customers.txt"
  echo >> "$work/customers.txt" # the answer has no newline of its own
  grep -qE '^cus_[0-9a-z]+$' <(tail -n 1 "$work/customers.txt") || { echo "could not create customer $i"; exit 1; }
done

cat > "$work/events.lua" <<'LUA'
-- Each batch: the last BATCH/100 events of the batch before (duplicates: same customer and id),
-- then new events with consecutive ids, their customers in turn. The new events are written by
-- one string.format per batch from a format cached per (first customer, count): building each
-- event as a Lua string of its own cost the client 0.55 us an event, more than a third of what
-- this machine has left for the server at 1,000,000 events/s.
local customers = {}
for line in io.lines(os.getenv("CUSTOMERS_FILE")) do customers[#customers + 1] = line end
local batch = tonumber(os.getenv("BATCH"))
local limit = tonumber(os.getenv("BATCHES"))
local conns = tonumber(os.getenv("CONNS"))
local repeats = math.floor(batch / 100)
local ts = os.date("!%Y-%m-%dT%H:%M:%SZ")
local prefix = os.getenv("PREFIX") .. "-"
local seq, answered = 0, 0
local prev = nil
local formats, seqs = {}, {}
local function event(s)
  return '{"id":"' .. prefix .. s .. '","customer":"' .. customers[s % #customers + 1] ..
         '","metric":"tokens","value":1,"timestamp":"' .. ts .. '"}'
end
-- the format of count events whose first has sequence number first
local function format_of(first, count)
  local at = first % #customers
  local f = formats[at * (batch + 1) + count]
  if f == nil then
    local parts = {}
    for k = 0, count - 1 do
      parts[k + 1] = '{"id":"' .. prefix .. '%d","customer":"' .. customers[(first + k) % #customers + 1] ..
                     '","metric":"tokens","value":1,"timestamp":"' .. ts .. '"}'
    end
    f = table.concat(parts, ",")
    formats[at * (batch + 1) + count] = f
  end
  return f
end
request = function()
  local fresh = prev and batch - repeats or batch
  local formatted = fresh - repeats -- the last repeats new events are kept as strings for the next batch
  for k = 1, formatted do seqs[k] = seq + k end
  local body = string.format(format_of(seq + 1, formatted), unpack(seqs, 1, formatted))
  seq = seq + formatted
  local tail = {}
  for k = 1, repeats do seq = seq + 1; tail[k] = event(seq) end
  -- the request in one concatenation: every string this long is a mapping of its own for LuaJIT
  local dupes = prev and repeats > 0 and table.concat(prev, ",") .. "," or ""
  local last = repeats > 0 and table.concat(tail, ",") or ""
  local sep = formatted > 0 and repeats > 0 and "," or ""
  prev = tail
  local length = 13 + #dupes + #body + #sep + #last
  return table.concat({"POST /v1/events HTTP/1.1\r\nHost: ", wrk.host, ":", wrk.port,
    "\r\nAuthorization: Bearer bench-ingest-token-0123456789\r\nContent-Type: application/json\r\nContent-Length: ",
    length, "\r\n\r\n{\"events\":[", dupes, body, sep, last, "]}"})
end
response = function(status, headers, body)
  answered = answered + 1
  if answered >= limit / conns then wrk.thread:stop() end
end
LUA
# each wrk connection runs its own Lua state in one thread here: -t1 -c1 per process, CONNS processes
# cpu_ticks PID: user + system CPU of PID and its children alive now (nginx's worker), in clock
# ticks; the difference over a run, per event, is what a machine shared with other work does not
# change much, unlike events/s.
cpu_ticks() {
  local p t=0
  for p in "$1" $(pgrep -P "$1" || true); do
    t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}
run() { # name url batches pid
  local name=$1 url=$2 limit=$3 pid=$4 i cpu0
  cpu0=$(cpu_ticks "$pid")
  for i in $(seq "$CONNS"); do
    PREFIX=$name$i CUSTOMERS_FILE=$work/customers.txt BATCH=$BATCH BATCHES=$((limit / CONNS)) CONNS=1 \
      /usr/bin/time -f "%U %S" -o "$work/$name.$i.cpu" \
      wrk -t1 -c1 -d"$DURATION" --timeout 30s --latency -s "$work/events.lua" "$url" > "$work/$name.$i.out" 2>&1 & w[$i]=$!
  done
  for i in $(seq "$CONNS"); do wait "${w[$i]}" || { echo "wrk failed ($name):"; cat "$work/$name.$i.out"; exit 1; }; done
  local cpu=$(($(cpu_ticks "$pid") - cpu0)) reqs=0 p99=0 client=0
  for i in $(seq "$CONNS"); do
    reqs=$((reqs + $(reqs_of "$work/$name.$i.out")))
    client=$(awk -v a="$client" '{ print a + $1 + $2 }' "$work/$name.$i.cpu")
    p99=$(awk -v a="$p99" -v b="$(ms "$(awk '$1 == "99%" {print $2}' "$work/$name.$i.out")")" 'BEGIN { print (b > a ? b : a) }')
  done
  local secs; secs=$(awk -v d="$DURATION" 'BEGIN { n = d + 0; u = d; sub(/^[0-9.]+/, "", u); print (u == "m" ? n * 60 : n) }')
  awk -v n="$name" -v r="$reqs" -v b="$BATCH" -v t="$secs" -v p="$p99" -v l="$(load_avg)" -v all="$limit" \
    -v c="$cpu" -v hz="$(getconf CLK_TCK)" -v w="$client" \
    'BEGIN { printf "%-16s %8d batches %s%10.0f events/s   p99/batch %8.2f ms   CPU %6.2f us/event   client %5.2f us/event   load %s\n",
             n, r, (r >= all ? ">=" : "  "), r * b / t, p, (r > 0 ? c / hz * 1e6 / (r * b) : 0), (r > 0 ? w * 1e6 / (r * b) : 0), l }'
}
echo "events: $TOTAL in batches of $BATCH over $CONNS connections, $CUSTOMERS customers, durability $DURABILITY, index_keys $INDEX_KEYS; $(nproc) cores, load $(load_avg)"
run nginx-discard "http://127.0.0.1:$NG/v1/events" 1000000000 "$NGPID" # the reference: the whole DURATION
tg_cpu0=$(cpu_ticks "$TGPID")
run tollgate "http://127.0.0.1:$GW/v1/events" "$BATCHES" "$TGPID"
sent_at=$(date +%s.%N)
# Exactly once: every event has value 1, so the tokens stored are the distinct events counted.
# Each connection's first batch has no repeats; a batch still in flight when wrk stopped may have
# been counted too, hence a range.
reqs=0; for i in $(seq "$CONNS"); do reqs=$((reqs + $(reqs_of "$work/tollgate.$i.out"))); done
rep=$((BATCH / 100)); lo=$((reqs * (BATCH - rep) + CONNS * rep)); hi=$((lo + CONNS * BATCH))
# the usage API waits for the applier (tg_meter_flush) before it reads the store
stored=$(AD=$AD node -e '
  const ids = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean);
  (async () => { let t = 0;
    for (const c of ids) {
      const r = await fetch(`http://127.0.0.1:${process.env.AD}/v1/admin/customers/${c}/usage`,
        { headers: { authorization: "Bearer bench-admin-token-0123456789" } });
      const m = (await r.json()).metrics.find((x) => x.metric === "tokens"); t += m ? m.used : 0;
    }
    console.log(t); })();' "$work/customers.txt")
stored_at=$(date +%s.%N)
awk -v c="$(($(cpu_ticks "$TGPID") - tg_cpu0))" -v hz="$(getconf CLK_TCK)" -v n="$((reqs * BATCH))" \
  -v lag="$(awk -v a="$sent_at" -v b="$stored_at" 'BEGIN { print b - a }')" \
  'BEGIN { printf "tollgate stored   every answered event in the store %.1f s after the run   CPU %6.2f us/event including storing\n",
           lag, (n > 0 ? c / hz * 1e6 / n : 0) }'
echo "exactly once: $stored tokens stored for $reqs answered batches (distinct events sent: $lo to $hi)"
[ "$stored" -ge "$lo" ] && [ "$stored" -le "$hi" ] || { echo "MISMATCH: events lost or counted twice"; exit 1; }
echo "durable-append ceiling ($BATCH rows per append, fdatasync each, in $work):"
build/bench-durable-append "$work" 2000 "$BATCH" | sed 's/^/  /'
