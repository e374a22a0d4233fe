# bench/lib.sh - what the bench scripts share; sourced (`. bench/lib.sh`), never run.
# Figures on this 2-core machine move with whatever else runs on it: every bench prints the load
# average beside its figures, alternates the setups it compares and reports medians and spread.
# The scripts that start servers keep their pids in the array `pids` (killed by their cleanup).

# now: wall clock in seconds with nanoseconds; since T0: seconds since T0, one decimal.
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# load_avg: the 1-minute load average.
load_avg() { cut -d' ' -f1 /proc/loadavg; }

# free_port: a free loopback port (node is needed by the tests anyway).
free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})' \
    2>/dev/null || echo $((20000 + RANDOM % 20000))
}

# wait_http URL [TRIES]: polls URL every 50 ms until it answers (TRIES, default 200); exits the
# script when it never does.
wait_http() {
  local i
  for i in $(seq "${2:-200}"); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done
  echo "no answer from $1" >&2
  exit 1
}

# start_upstream DIR PORT: the same upstream for every bench, nginx with one worker answering
# {"ok":true} on 127.0.0.1:PORT; its pid goes into pids, its own in DIR/nginx.pid.
start_upstream() {
  mkdir -p "$1"
  cat > "$1/nginx.conf" <<CONF
worker_processes 1;
daemon off;
error_log $1/error.log warn;
pid $1/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$2; location / { default_type application/json; return 200 '{"ok":true}'; } }
}
CONF
  nginx -p "$1" -c "$1/nginx.conf" & pids+=($!)
}

# start_nginx_proxy DIR PORT UPSTREAM_PORT: nginx proxy_pass (one worker per core, upstream
# keep-alive) on 127.0.0.1:PORT in front of the upstream, for "tollgate beside nginx".
start_nginx_proxy() {
  mkdir -p "$1"
  cat > "$1/nginx.conf" <<CONF
worker_processes $(nproc);
daemon off;
error_log $1/error.log warn;
pid $1/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream api { server 127.0.0.1:$3; keepalive 64; }
  server {
    listen 127.0.0.1:$2;
    location / { proxy_pass http://api; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
  nginx -p "$1" -c "$1/nginx.conf" & pids+=($!)
}

# wrk output: ms LATENCY turns wrk's "850.00us", "1.23ms", "1.02s", "2.00m" into milliseconds;
# rps_of, p50_of, p99_of (ms), reqs_of and non2xx_of read one wrk --latency output file.
ms() {
  awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    printf "%.3f", (u == "us" ? n / 1000 : u == "ms" ? n : u == "s" ? n * 1000 : u == "m" ? n * 60000 : n) }'
}
rps_of() { awk '/Requests\/sec/ {print $2}' "$1"; }
p50_of() { ms "$(awk '$1 == "50%" {print $2}' "$1")"; }
p99_of() { ms "$(awk '$1 == "99%" {print $2}' "$1")"; }
reqs_of() { awk '/requests in/ {print $1}' "$1"; }
non2xx_of() { awk '/Non-2xx/ {print $NF}' "$1" | tail -1; }

# median / spread: of the numbers on stdin, one a line ("min..max"); col N: the Nth column.
# "n/a" anywhere (a figure an older binary cannot give): the median is n/a
median() { sort -g | awk '$1 == "n/a" { na = 1 } { v[NR] = $1 } END { if (na) print "n/a"; else if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
spread() { sort -g | awk '{ v[NR] = $1 } END { printf "%s..%s", v[1], v[NR] }'; }
col() { awk -v c="$1" 'NF { print $c }'; }

# summary N...: "median (min..max; n: v1, v2, ...)" of its arguments.
summary() {
  printf '%s (%s; %d: %s)\n' "$(printf '%s\n' "$@" | median)" "$(printf '%s\n' "$@" | spread)" "$#" \
    "$(echo "$*" | sed 's/ /, /g')"
}

# thread_cpu_ticks PID: "TID NAME TICKS" for each thread of process PID, its CPU time so far in
# clock ticks (user + system; the fields after the parenthesised name, which may hold spaces;
# spaces in the name become _). A thread that ends meanwhile is skipped.
thread_cpu_ticks() {
  local t
  for t in /proc/"$1"/task/*; do
    { echo -n "${t##*/} $(tr ' ' _ < "$t/comm") "; sed 's/.*) //' "$t/stat" | awk '{ print $12 + $13 }'; } 2>/dev/null || true
  done
}
