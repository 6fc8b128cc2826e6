#!/usr/bin/env bash
# One writer's append latency through each official client with its DEFAULT connection
# settings (issue 18, item 1): esdbclient (Python), @kurrent/kurrentdb-client and
# @eventstore/db-client (Node), and `stele bench` with Nagle on and with TCP_NODELAY (the
# same HTTP/2 stack as the official Rust client, kurrentdb; its own figure comes from
# `cargo test -p stele-server --test client_latency -- --ignored --nocapture`).
#
# Usage: scripts/client-latency.sh [mem|disk] [BINARY] [SECS]
#   mem (default): a --mem-db node; disk: a node with its database under target/.
#   BINARY: the stele binary (default target/release/stele). SECS: per client (default 10).
# Installs the Python client into target/python-venv and the Node clients into
# target/node-clients on first use. Every step is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-mem}
BIN=${2:-target/release/stele}
SECS=${3:-10}

venv=target/python-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r clients/python/requirements.txt
fi
node_clients=$PWD/target/node-clients
if [ ! -d "$node_clients/node_modules/@eventstore/db-client" ]; then
  mkdir -p "$node_clients"
  [ -f "$node_clients/package.json" ] || echo '{"private": true}' > "$node_clients/package.json"
  timeout 300 npm install --silent --prefix "$node_clients" \
    @kurrent/kurrentdb-client@1.3.1 @eventstore/db-client@6.2.1
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dir=$(mktemp -d "$PWD/target/client-latency-XXXX")
db_args=(--mem-db)
[ "$MODE" = disk ] && db_args=(--db "$dir/db")
"$BIN" --insecure "${db_args[@]}" --http-port "$port" --log-level warning >"$dir/node.log" 2>&1 &
node=$!
trap 'kill "$node" 2>/dev/null || true; wait "$node" 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 200); do
  curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health/live" 2>/dev/null | grep -q 204 && break
  sleep 0.1
done

echo "== $BIN, $MODE, one writer, $SECS s per client"
limit=$((SECS * 3 + 60))
timeout "$limit" "$venv/bin/python" clients/python/latency_esdbclient.py "$port" "$SECS"
for package in @kurrent/kurrentdb-client @eventstore/db-client; do
  NODE_CLIENTS=$node_clients timeout "$limit" node clients/node/latency.mjs "$port" "$SECS" "$package" \
    2> >(grep -v "'esdb' protocol is deprecated" >&2)
done
for nodelay in false true; do
  echo "-- stele bench --client-nodelay $nodelay"
  timeout "$limit" "$BIN" bench --url "http://127.0.0.1:$port" --writers 1 --batch 1 \
    --duration "$SECS" --client-nodelay "$nodelay" | grep -E 'appends/s|latency ms|node CPU'
done
