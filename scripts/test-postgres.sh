#!/usr/bin/env bash
# Starts (or stops) a throwaway PostgreSQL 15 cluster for Plinth's tests, on loopback only,
# and prints the connection URL the tests read from PLINTH_TEST_PG.
#
#   scripts/test-postgres.sh start   # prints PLINTH_TEST_PG=postgres://…
#   scripts/test-postgres.sh stop
#
# The cluster lives in $PLINTH_PG_DIR (default /tmp/plinth-test-pg), is owned by the
# `postgres` user (initdb refuses root), trusts loopback connections (it is never reachable
# from elsewhere) and uses the C locale, so text sorts and compares bytewise as on SQLite.
# fsync is off: a test cluster holds nothing worth keeping across a power loss.
set -euo pipefail
bin=/usr/lib/postgresql/15/bin
dir=${PLINTH_PG_DIR:-/tmp/plinth-test-pg}
port=${PLINTH_PG_PORT:-54329}
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case "${1:-start}" in
  start)
    if [ ! -x "$bin/initdb" ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null
    fi
    if [ ! -f "$dir/PG_VERSION" ]; then
      mkdir -p "$dir"
      [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
      as_owner "$bin/initdb" -D "$dir" -U postgres --auth=trust --locale=C --encoding=UTF8 >/dev/null
    fi
    if ! as_owner "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
      as_owner "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w start -o \
        "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400 -c shared_buffers=128MB" >/dev/null
    fi
    echo "PLINTH_TEST_PG=postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    if [ -f "$dir/PG_VERSION" ]; then as_owner "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null || true; fi
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
