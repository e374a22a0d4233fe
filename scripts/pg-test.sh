#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests (issue 12).
#   scripts/pg-test.sh start DIR   initdb a cluster in DIR/data, start it on a free loopback port,
#                                  wait until it accepts connections and print its URL on stdout:
#                                  postgresql://tollgate@127.0.0.1:PORT/postgres
#   scripts/pg-test.sh stop DIR    stop that server (nothing to do when it is not running)
#
# PostgreSQL refuses to run as root, so as root the server runs as the unprivileged OS user
# tgtest (created when missing, without a home or a shell) and DIR is chowned to it; as any
# other user it runs as that user. The cluster is for tests only: role tollgate is its superuser,
# the server listens on 127.0.0.1 and nowhere else (no Unix socket), pg_hba trusts 127.0.0.1 only,
# and fsync is off (a crash of the machine may lose the test data, which is thrown away anyway).
# The binaries come from TG_PG_BIN, else pg_config --bindir, else Debian's
# /usr/lib/postgresql/15/bin.
set -euo pipefail

usage() {
  echo "usage: $0 start DIR | stop DIR" >&2
  exit 2
}
[ $# -eq 2 ] || usage
cmd=$1
dir=$2
[ -n "$dir" ] || usage

bindir=${TG_PG_BIN:-}
if [ -z "$bindir" ]; then
  bindir=$(pg_config --bindir 2>/dev/null || true)
  [ -x "$bindir/pg_ctl" ] || bindir=/usr/lib/postgresql/15/bin
fi
for b in initdb pg_ctl pg_isready; do
  [ -x "$bindir/$b" ] || { echo "pg-test: $bindir/$b not found (apt-get install postgresql, or set TG_PG_BIN)" >&2; exit 1; }
done

# as_pg CMD...: runs CMD as the server's OS user, from a directory that user can read.
if [ "$(id -u)" -eq 0 ]; then
  pguser=tgtest
  as_pg() { (cd "$dir" && runuser -u "$pguser" -- "$@"); }
else
  pguser=$(id -un)
  as_pg() { (cd "$dir" && "$@"); }
fi

ensure_user() {
  [ "$(id -u)" -eq 0 ] || return 0
  id "$pguser" >/dev/null 2>&1 && return 0
  # another pg-test.sh may create it at the same moment: re-check before failing
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$pguser" 2>/dev/null ||
    id "$pguser" >/dev/null 2>&1 || { echo "pg-test: cannot create the OS user $pguser" >&2; exit 1; }
}

# port_in_use PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
  ensure_user
  mkdir -p "$dir"
  [ "$(id -u)" -ne 0 ] || chown "$pguser:" "$dir"
  chmod 700 "$dir"
  if ! as_pg test -w "$dir"; then
    echo "pg-test: $pguser cannot write $dir (a parent directory is not searchable by it?)" >&2
    exit 1
  fi
  if [ -f "$dir/data/postmaster.pid" ]; then
    echo "pg-test: a server already uses $dir/data (scripts/pg-test.sh stop $dir first)" >&2
    exit 1
  fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    rm -rf "$dir/data"
    as_pg "$bindir/initdb" -D "$dir/data" -U tollgate --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
      --no-instructions >"$dir/initdb.log" 2>&1 || { echo "pg-test: initdb failed:" >&2; cat "$dir/initdb.log" >&2; exit 1; }
    # trust on 127.0.0.1 only: no local-socket entry, no ::1, nothing beyond loopback
    printf '# pg-test.sh: loopback TCP only, tests only\nhost all all 127.0.0.1/32 trust\n' >"$dir/data/pg_hba.conf"
    [ "$(id -u)" -ne 0 ] || chown "$pguser:" "$dir/data/pg_hba.conf"
  fi
  # A free port: one nobody answers on, then the server's own bind decides (another process may
  # take the port between the check and the start; the next attempt takes another one).
  # A restart on the same DIR takes the port it had, if it is still free: clients that were
  # connected (a test stopping and starting PostgreSQL under running gateways) reconnect to it.
  local attempt port last=""
  [ -f "$dir/last-port" ] && last=$(cat "$dir/last-port")
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    [ "$attempt" -eq 1 ] && [ -n "$last" ] && port=$last
    port_in_use "$port" && continue
    rm -f "$dir/server.log"
    if as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -s \
      -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='' \
          -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 \
          -c shared_buffers=64MB -c log_min_messages=warning -c log_line_prefix='%m [%p] '" \
      start >/dev/null 2>>"$dir/pg_ctl.log"; then
      echo "$port" >"$dir/port"
      # pg_ctl -w only waited for the postmaster; wait for it to accept connections (bounded)
      local i
      for i in $(seq 1 300); do
        if "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -U tollgate -d postgres -t 1; then
          echo "postgresql://tollgate@127.0.0.1:$port/postgres"
          return 0
        fi
        [ -f "$dir/data/postmaster.pid" ] || break # the server died
        sleep 0.1 # poll interval of the bounded wait, not a synchronisation
      done
      echo "pg-test: the server on port $port did not accept connections:" >&2
      tail -n 20 "$dir/server.log" >&2 || true
      as_pg "$bindir/pg_ctl" -D "$dir/data" -m immediate -s stop >/dev/null 2>&1 || true
      exit 1
    fi
    # the bind may have lost a race for the port: try another; any other failure repeats below
    grep -q "could not bind\|Address already in use" "$dir/server.log" 2>/dev/null || break
  done
  echo "pg-test: could not start PostgreSQL in $dir/data:" >&2
  tail -n 20 "$dir/server.log" "$dir/pg_ctl.log" >&2 2>/dev/null || true
  exit 1
}

stop() {
  [ -d "$dir/data" ] || return 0
  [ -f "$dir/data/postmaster.pid" ] || return 0
  # fast: roll back open transactions and disconnect the tests' sessions, then shut down cleanly
  as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 -s stop >/dev/null ||
    { echo "pg-test: could not stop the server in $dir/data" >&2; exit 1; }
  mv -f "$dir/port" "$dir/last-port" 2>/dev/null || true
}

case $cmd in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
