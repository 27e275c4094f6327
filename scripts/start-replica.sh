#!/usr/bin/env bash
# A real PostgreSQL streaming replica of the local primary (127.0.0.1:5432, user postgres), for tests and
# local development of DATABASE_READ_URL:
#
#   bash scripts/start-replica.sh start      # prints replica_port: P, replica_url: postgres://postgres@127.0.0.1:P,
#                                            # replica_dir: D (append /<database> to the URL)
#   bash scripts/start-replica.sh stop D     # stops that replica and removes D
#
# `start` takes a base backup (`pg_basebackup -R`: the whole cluster, streaming its WAL) into a new temporary
# directory and runs a second `postgres` there in hot standby, on a port it picks by trying: a random port is
# tried, and if that server cannot bind it, another, so no port is picked free and lost before it is bound.
# No replication slot is made: a replica left behind never makes the primary keep WAL.
#
# The primary must accept replication connections from 127.0.0.1 (wal_level replica or logical, the
# default, and max_wal_senders > 0). If its pg_hba.conf has no entry for them, `start` adds one line
# at the top, `host replication all 127.0.0.1/32 trust` (like the trust the tests already rely on for
# 127.0.0.1), marked with a comment so it is added once, and reloads the primary's configuration; that
# needs write access to the file (root, or the postgres user). Run as root, the replica runs as postgres.
set -euo pipefail

PRIMARY_HOST=127.0.0.1
PRIMARY_PORT=5432
PRIMARY_USER=postgres
MARKER='# added by scripts/start-replica.sh: replication connections from loopback'

primary_sql() {
  psql -qtAX "host=$PRIMARY_HOST port=$PRIMARY_PORT user=$PRIMARY_USER dbname=postgres" -c "$1"
}

# Runs a command as the user the replica's files and server belong to.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

replication_allowed() {
  psql -qtAX "host=$PRIMARY_HOST port=$PRIMARY_PORT user=$PRIMARY_USER dbname=postgres replication=true" \
    -c IDENTIFY_SYSTEM >/dev/null 2>&1
}

ensure_primary_allows_replication() {
  local wal_level senders hba
  wal_level=$(primary_sql "show wal_level")
  senders=$(primary_sql "show max_wal_senders")
  if [ "$wal_level" = minimal ] || [ "$senders" = 0 ]; then
    echo "the primary cannot stream to a replica (wal_level=$wal_level, max_wal_senders=$senders):" >&2
    echo "set wal_level = replica and max_wal_senders = 10 in its postgresql.conf and restart it" >&2
    exit 1
  fi
  replication_allowed && return 0
  hba=$(primary_sql "show hba_file")
  if ! grep -qF "$MARKER" "$hba"; then
    echo "allowing replication connections from 127.0.0.1 in $hba" >&2
    # First match wins in pg_hba.conf, so the line goes first.
    { printf '%s\nhost replication all 127.0.0.1/32 trust\n' "$MARKER"; cat "$hba"; } >"$hba.tmp"
    chown --reference="$hba" "$hba.tmp" 2>/dev/null || true
    chmod --reference="$hba" "$hba.tmp"
    mv "$hba.tmp" "$hba"
  fi
  primary_sql "select pg_reload_conf()" >/dev/null
  for _ in $(seq 1 50); do
    replication_allowed && return 0
    sleep 0.1
  done
  echo "the primary still refuses replication connections from 127.0.0.1 (see $hba)" >&2
  exit 1
}

start() {
  ensure_primary_allows_replication
  # The replica's binaries must be the primary's major version.
  local major bin dir data port log
  major=$(($(primary_sql "show server_version_num") / 10000))
  bin=/usr/lib/postgresql/$major/bin
  [ -x "$bin/postgres" ] || bin=$(pg_config --bindir)
  dir=$(mktemp -d "${TMPDIR:-/tmp}/pg-replica.XXXXXX")
  chmod 700 "$dir"
  touch "$dir/.start-replica"
  [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$dir"
  data=$dir/data
  log=$dir/postgres.log
  as_owner "$bin/pg_basebackup" -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$PRIMARY_USER" -D "$data" \
    -R -X stream --checkpoint=fast --no-sync >&2
  # Debian keeps the primary's configuration outside its data directory: the replica gets its own. A hot
  # standby needs these settings at least as high as the primary's.
  local settings=""
  for name in max_connections max_worker_processes max_wal_senders max_prepared_transactions \
    max_locks_per_transaction; do
    settings+="$name = $(primary_sql "show $name")"$'\n'
  done
  as_owner tee "$data/postgresql.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
hot_standby = on
shared_buffers = 32MB
fsync = off
$settings
EOF
  as_owner tee "$data/pg_hba.conf" >/dev/null <<EOF
local all all trust
host all all 127.0.0.1/32 trust
EOF
  as_owner touch "$data/pg_ident.conf"
  for _ in $(seq 1 20); do
    port=$((20000 + RANDOM % 40000))
    if as_owner "$bin/pg_ctl" -D "$data" -l "$log" -w -t 120 -o "-p $port" start >/dev/null 2>&1; then
      echo "replica_port: $port"
      echo "replica_url: postgres://postgres@127.0.0.1:$port"
      echo "replica_dir: $dir"
      return 0
    fi
    # Another process holds the port: try another. Any other failure is the caller's to see.
    if ! grep -qE "could not bind|could not create any TCP/IP sockets|Address already in use" "$log"; then
      cat "$log" >&2
      rm -rf "$dir"
      echo "the replica did not start" >&2
      exit 1
    fi
    : >"$log"
  done
  rm -rf "$dir"
  echo "no free port found for the replica" >&2
  exit 1
}

stop() {
  local dir=${1:?usage: $0 stop DIR}
  # Only a directory this script made is ever removed.
  [ -e "$dir/.start-replica" ] || { echo "$dir is not a replica started by $0" >&2; exit 1; }
  if [ -f "$dir/data/postmaster.pid" ]; then
    local bin
    bin=/usr/lib/postgresql/$(cat "$dir/data/PG_VERSION")/bin
    [ -x "$bin/pg_ctl" ] || bin=$(pg_config --bindir)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  *) echo "usage: $0 start | stop DIR" >&2; exit 2 ;;
esac
