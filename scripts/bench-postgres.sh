#!/usr/bin/env bash
# `bank bench` against one bank whose ledger is PostgreSQL, with 1 and then 2 `bankd` processes
# sharing the database, for BENCHMARKS.md: a private, durable cluster (fsync and
# synchronous_commit on, the defaults) in a temporary folder on a free port, run by a non-root
# user, as scripts/pgbench.sh makes one; a fresh database per run; removed at the end.
# With 2 processes, two `bank bench` run at once, one against each process (each opens its own
# accounts), and their throughputs add up.
#
#   scripts/bench-postgres.sh                       # needs target/release/{bankd,bank}
#   BENCH_SECONDS=10 BENCH_CLIENTS=64 scripts/bench-postgres.sh
set -euo pipefail

SECONDS_TO_RUN=${BENCH_SECONDS:-10}
CLIENTS=${BENCH_CLIENTS:-64}
WORKLOAD=${BENCH_WORKLOAD:-intra}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BANKD=$ROOT/target/release/bankd
BANK=$ROOT/target/release/bank
[[ -x "$BANKD" && -x "$BANK" ]] || {
    echo "build first: cargo build --release -p node --bin bankd -p cli --bin bank" >&2
    exit 1
}
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
[[ -n "$BIN" && -x "$BIN/initdb" ]] || {
    echo "PostgreSQL is not installed; as root: apt-get update && apt-get install -y postgresql" >&2
    exit 1
}
if [[ $(id -u) -eq 0 ]]; then
    as_user() { runuser -u postgres -- "$@"; }
else
    as_user() { "$@"; }
fi
DIR=$(mktemp -d /tmp/interbank-pgbank.XXXXXX)
chmod 755 "$DIR"
[[ $(id -u) -eq 0 ]] && chown postgres "$DIR"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    as_user "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap cleanup EXIT
as_user "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust >"$DIR/initdb.log"
as_user "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w \
    -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
TOKEN=bench-operator-token-0123456789

# Starts a bankd on database $1 with data folder $2 and the bank's directory file $3; prints its
# URL. The processes of one bank share the database and the directory file.
start_bankd() {
    local log=$2.log
    mkdir -p "$2"
    BANKD_CODE=10000001 BANKD_LISTEN=127.0.0.1:0 BANKD_DATA_DIR=$2 BANKD_DATABASE_URL=$1 \
        BANKD_DIRECTORY_FILE=$3 BANKD_OPERATOR_TOKEN=$TOKEN RUST_LOG=warn \
        "$BANKD" serve >"$log" 2>"$2.err" &
    PIDS+=($!)
    for _ in $(seq 100); do
        if [[ -s "$log" ]]; then awk '{print $NF; exit}' "$log"; return; fi
        sleep 0.1
    done
    echo "bankd did not start: $(cat "$2.err")" >&2
    exit 1
}

bench() {
    "$BANK" bench --bank "$1" --operator-token "$TOKEN" --workload "$WORKLOAD" \
        --clients "$2" --duration "${SECONDS_TO_RUN}s" --accounts 1000
}

for processes in 1 2; do
    db=bench$processes
    as_user env PGHOST="$DIR" PGPORT="$PORT" PGUSER=postgres "$BIN/createdb" "$db"
    url="postgres://postgres@127.0.0.1:$PORT/$db"
    echo "== $processes bankd on one PostgreSQL database, $WORKLOAD, $CLIENTS clients in all"
    if [[ $processes -eq 1 ]]; then
        a=$(start_bankd "$url" "$DIR/bank-1a" "$DIR/directory-1.db")
        bench "$a" "$CLIENTS" | tee "$DIR/run-1.txt"
    else
        a=$(start_bankd "$url" "$DIR/bank-2a" "$DIR/directory-2.db")
        b=$(start_bankd "$url" "$DIR/bank-2b" "$DIR/directory-2.db")
        bench "$a" $((CLIENTS / 2)) >"$DIR/run-2a.txt" &
        first=$!
        bench "$b" $((CLIENTS / 2)) >"$DIR/run-2b.txt"
        wait "$first"
        cat "$DIR/run-2a.txt" "$DIR/run-2b.txt"
    fi
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    PIDS=()
    sleep 1
done
