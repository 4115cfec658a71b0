#!/usr/bin/env bash
# A throwaway PostgreSQL server for the distributed-study tests (ctest fixture tune_postgres).
#   postgres_fixture.sh start DIR   initdb in DIR/data, start on 127.0.0.1 and a free port,
#                                   create database "study", write its URL to DIR/url
#   postgres_fixture.sh stop DIR    stop the server (immediately) and remove DIR
# If the server cannot be started, `start` writes why to DIR/skip_reason and exits 0: the
# tests then skip, saying so, rather than fail for a missing server or pass without one.
# As root, the server runs as the unprivileged user `nobody` (PostgreSQL refuses root), in a
# folder under /tmp that nobody can reach whatever the build folder's parents allow (a clone
# under /root is not); DIR/server names it.
set -uo pipefail

action="${1:?usage: postgres_fixture.sh start|stop DIR}"
dir="${2:?usage: postgres_fixture.sh start|stop DIR}"
bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"

as_server_user() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi
}

skip() {
  echo "$1" >"$dir/skip_reason"
  echo "postgres_fixture: $1" >&2
  exit 0
}

case "$action" in
  start)
    rm -rf "$dir"
    mkdir -p "$dir"
    [ -n "$bin" ] && [ -x "$bin/initdb" ] ||
      skip "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); scripts/dev.sh setup installs it"
    server="$dir"
    if [ "$(id -u)" -eq 0 ]; then
      server="$(mktemp -d /tmp/bachlab-postgres.XXXXXX)" || skip "cannot make a server folder under /tmp"
      chown nobody "$server"
    fi
    echo "$server" >"$dir/server"
    port="$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    as_server_user "$bin/initdb" -D "$server/data" -A trust -U bachlab --no-sync >"$dir/initdb.log" 2>&1 ||
      skip "initdb failed: $(tail -3 "$dir/initdb.log" | tr '\n' ' ')"
    as_server_user "$bin/pg_ctl" -D "$server/data" -l "$server/server.log" -w -t 30 \
      -o "-h 127.0.0.1 -p $port -k $server -c fsync=off -c max_connections=200" start >/dev/null 2>&1 ||
      skip "pg_ctl start failed: $(tail -3 "$server/server.log" 2>/dev/null | tr '\n' ' ')"
    as_server_user "$bin/createdb" -h 127.0.0.1 -p "$port" -U bachlab study ||
      skip "createdb failed on 127.0.0.1:$port"
    as_server_user "$bin/createdb" -h 127.0.0.1 -p "$port" -U bachlab bench || true
    echo "postgresql://bachlab@127.0.0.1:$port/study" >"$dir/url"
    echo "postgres_fixture: server on 127.0.0.1:$port in $dir"
    ;;
  stop)
    server="$(cat "$dir/server" 2>/dev/null || echo "$dir")"
    if [ -f "$server/data/postmaster.pid" ]; then
      as_server_user "$bin/pg_ctl" -D "$server/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    fi
    case "$server" in /tmp/bachlab-postgres.*) rm -rf "$server" ;; esac
    rm -rf "$dir"
    ;;
  *)
    echo "usage: postgres_fixture.sh start|stop DIR" >&2
    exit 2
    ;;
esac
