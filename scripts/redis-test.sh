#!/usr/bin/env bash
# A throwaway Redis server for the tests (issue 12: limits shared across nodes).
#   scripts/redis-test.sh start DIR   start redis-server on a free loopback port with its files in
#                                     DIR, wait until it answers and print its URL on stdout:
#                                     redis://127.0.0.1:PORT/0
#   scripts/redis-test.sh stop DIR    stop that server (nothing to do when it is not running)
# The server is for tests only: it listens on 127.0.0.1 and nowhere else (no Unix socket), keeps
# nothing on disk (no RDB snapshots, no append-only file), and runs as the calling user.
# A stopped server started again on the same DIR takes the same port (tests stop and start Redis
# mid-load): `scripts/redis-test.sh start DIR` after a stop reuses DIR/port when it is free.
set -euo pipefail

usage() {
  echo "usage: $0 start DIR | stop DIR" >&2
  exit 2
}
[ $# -eq 2 ] || usage
cmd=$1
dir=$2
[ -n "$dir" ] || usage
server=${TG_REDIS_SERVER:-redis-server}
command -v "$server" >/dev/null || { echo "redis-test: $server not found (apt-get install redis-server)" >&2; exit 1; }

# port_in_use PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# answers PORT: the server on PORT replies +PONG to a PING.
answers() {
  local reply
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'PING\r\n' >&3
  IFS= read -r -t 1 reply <&3 || reply=
  exec 3<&- 3>&-
  [ "${reply%$'\r'}" = "+PONG" ]
}

running() { [ -f "$dir/redis.pid" ] && kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null; }

start() {
  mkdir -p "$dir"
  chmod 700 "$dir"
  if running; then
    echo "redis-test: a server already runs for $dir (scripts/redis-test.sh stop $dir first)" >&2
    exit 1
  fi
  local attempt port
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    if [ "$attempt" -eq 1 ] && [ -f "$dir/port" ]; then
      port=$(cat "$dir/port")
    else
      port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    fi
    port_in_use "$port" && continue
    rm -f "$dir/redis.log" "$dir/redis.pid"
    "$server" --bind 127.0.0.1 --port "$port" --unixsocket "" --save "" --appendonly no --dir "$dir" \
      --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --protected-mode yes >/dev/null ||
      continue
    local i
    for i in $(seq 1 300); do
      if answers "$port" 2>/dev/null; then
        echo "$port" >"$dir/port"
        echo "redis://127.0.0.1:$port/0"
        return 0
      fi
      grep -q "Address already in use\|Could not create server TCP" "$dir/redis.log" 2>/dev/null && break
      sleep 0.05 # poll interval of the bounded wait, not a synchronisation
    done
    running && kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
  done
  echo "redis-test: could not start redis-server in $dir:" >&2
  tail -n 20 "$dir/redis.log" >&2 2>/dev/null || true
  exit 1
}

stop() {
  running || return 0
  local pid i
  pid=$(cat "$dir/redis.pid")
  kill "$pid" 2>/dev/null || true
  for i in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$dir/redis.pid"; return 0; }
    sleep 0.05 # poll interval of the bounded wait
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/redis.pid"
}

case $cmd in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
