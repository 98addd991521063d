#!/usr/bin/env bash
# The PostgreSQL TPC-B baseline for BENCHMARKS.md: a private cluster in a temporary folder, on a
# free port, run by a non-root user; `pgbench -i -s 10`, then `pgbench -c 8 -j 2 -T 20`; prints
# the tps and removes the cluster. Nothing outside the temporary folder is touched.
#
#   scripts/pgbench.sh                 # as root: installs Debian's postgresql if it is missing
#   PGBENCH_SECONDS=5 scripts/pgbench.sh
set -euo pipefail

SCALE=${PGBENCH_SCALE:-10}
CLIENTS=${PGBENCH_CLIENTS:-8}
THREADS=${PGBENCH_THREADS:-2}
SECONDS_TO_RUN=${PGBENCH_SECONDS:-20}

# The server binaries: Debian keeps them under /usr/lib/postgresql/<major>/bin.
find_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pgbench" ]]; then
        echo "$dir"
    fi
}

BIN=$(find_bin)
if [[ -z "$BIN" ]]; then
    if [[ $(id -u) -eq 0 ]]; then
        echo "installing PostgreSQL from Debian's packages" >&2
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
        BIN=$(find_bin)
    else
        echo "PostgreSQL is not installed; as root run:" >&2
        echo "  apt-get update && apt-get install -y postgresql" >&2
        exit 1
    fi
fi
[[ -n "$BIN" ]] || { echo "no initdb/pgbench found after installing" >&2; exit 1; }

# PostgreSQL refuses to run as root: use the `postgres` user when we are root.
if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    as_user() { runuser -u postgres -- "$@"; }
else
    as_user() { "$@"; }
fi

DIR=$(mktemp -d /tmp/interbank-pgbench.XXXXXX)
chmod 755 "$DIR"
[[ $(id -u) -eq 0 ]] && chown postgres "$DIR"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

cleanup() {
    as_user "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap cleanup EXIT

as_user "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust >"$DIR/initdb.log"
# Durable like the banks (fsync and synchronous_commit stay on, the defaults); only local sockets
# in the private folder and one TCP port on 127.0.0.1.
as_user "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w \
    -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1" start >/dev/null

psql_env=(env PGHOST="$DIR" PGPORT="$PORT" PGUSER=postgres)
as_user "${psql_env[@]}" "$BIN/createdb" bench
echo "pgbench -i -s $SCALE (PostgreSQL $("$BIN/postgres" --version | awk '{print $3}'), port $PORT)" >&2
as_user "${psql_env[@]}" "$BIN/pgbench" -i -s "$SCALE" -q bench >"$DIR/init.log" 2>&1
echo "pgbench -c $CLIENTS -j $THREADS -T $SECONDS_TO_RUN (TPC-B-like)" >&2
as_user "${psql_env[@]}" "$BIN/pgbench" -c "$CLIENTS" -j "$THREADS" -T "$SECONDS_TO_RUN" bench \
    | tee "$DIR/run.log"
TPS=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$DIR/run.log" | tail -n 1)
echo "pgbench TPC-B tps: $TPS"
