#!/usr/bin/env bash
# The memory of one bank holding a million accounts, for BENCHMARKS.md: seeds a ledger with
# 1,000,000 accounts (examples/million.rs, straight through the store), starts a real `bankd` on
# it, makes random transfers spread over all of them over HTTP, and prints the bank's resident
# memory (VmRSS) and its peak (VmHWM). Everything lives in a temporary folder, removed at the end.
#
#   scripts/million.sh
#   MILLION_ACCOUNTS=100000 MILLION_TRANSFERS=20000 scripts/million.sh
set -euo pipefail

ACCOUNTS=${MILLION_ACCOUNTS:-1000000}
TRANSFERS=${MILLION_TRANSFERS:-100000}

cd "$(dirname "$0")/.."
cargo build --release -q -p node --bin bankd
cargo build --release -q -p cli --example million
DIR=$(mktemp -d)
BANKD_PID=
cleanup() {
    if [[ -n "$BANKD_PID" ]]; then
        kill "$BANKD_PID" 2>/dev/null || true
        wait "$BANKD_PID" 2>/dev/null || true
    fi
    rm -rf "$DIR"
}
trap cleanup EXIT

TOKEN=$(target/release/examples/million seed "$DIR/ledger.db" "$ACCOUNTS")
echo "ledger: $(du -sh "$DIR" | cut -f1) on disk for $ACCOUNTS accounts" >&2

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BANKD_CODE=10000001 BANKD_DATA_DIR="$DIR" BANKD_LISTEN="127.0.0.1:$PORT" \
    BANKD_OPERATOR_TOKEN=million-operator-token RUST_LOG=warn \
    target/release/bankd serve &
BANKD_PID=$!
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break
    sleep 0.1
done
memory() { grep -E '^(VmRSS|VmHWM)' "/proc/$BANKD_PID/status" | tr -s ' \t' ' ' | paste -sd ' '; }
echo "bankd after start-up: $(memory)"
target/release/examples/million load "http://127.0.0.1:$PORT" "$TOKEN" "$ACCOUNTS" "$TRANSFERS"
echo "bankd after $TRANSFERS transfers over $ACCOUNTS accounts: $(memory)"
