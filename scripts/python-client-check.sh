#!/usr/bin/env bash
# Runs clients/python/check_esdbclient.py (the official Python client, esdbclient) against a
# fresh in-memory node built from this tree, then clients/python/check_esdbclient_cluster.py
# against a three-node `stele dev-cluster`. Installs the client into a virtualenv under
# target/ on first use. Every step is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/python-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r clients/python/requirements.txt
fi

cargo build --quiet -p stele-server
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
target/debug/stele --insecure --mem-db --node-ip 127.0.0.1 --http-port "$port" \
  --run-projections All --start-standard-projections true >"$log" 2>&1 &
node=$!
trap 'kill "$node" 2>/dev/null || true; rm -f "$log"' EXIT

# Wait (at most 20 s) for /health/live to answer 204; plain Python, no curl needed.
python3 - "$port" <<'PY'
import sys, time, urllib.request, urllib.error
deadline = time.time() + 20
while time.time() < deadline:
    try:
        if urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health/live", timeout=1).status == 204:
            sys.exit(0)
    except (urllib.error.URLError, ConnectionError, OSError):
        pass
    time.sleep(0.1)
sys.exit("the node did not become ready")
PY

if ! timeout 120 "$venv/bin/python" clients/python/check_esdbclient.py "$port"; then
  echo "== node log"; tail -50 "$log"
  exit 1
fi
timeout 120 "$venv/bin/python" clients/python/check_esdbclient_persistent.py "$port" || { echo "== node log"; tail -50 "$log"; exit 1; }
timeout 120 "$venv/bin/python" clients/python/check_esdbclient_projections.py "$port" || { echo "== node log"; tail -50 "$log"; exit 1; }

# The same client against a three-node cluster (stele dev-cluster on 127.0.0.1-3).
base_http=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base_int=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cluster_dir=$(mktemp -d)
cluster_log=$(mktemp)
target/debug/stele dev-cluster --nodes 3 --dir "$cluster_dir" --base-http-port "$base_http" --base-int-port "$base_int" >"$cluster_log" 2>&1 &
cluster=$!
trap 'kill "$node" 2>/dev/null || true; kill "$cluster" 2>/dev/null || true; wait "$cluster" 2>/dev/null || true; rm -rf "$log" "$cluster_log" "$cluster_dir"' EXIT
connection=""
for _ in $(seq 1 600); do
  connection=$(grep -o 'Connection string: esdb://[^ ]*' "$cluster_log" | sed 's/Connection string: //' || true)
  [ -n "$connection" ] && break
  if ! kill -0 "$cluster" 2>/dev/null; then break; fi
  sleep 0.1
done
if [ -z "$connection" ]; then
  echo "== the cluster did not become ready"; tail -50 "$cluster_log"; exit 1
fi
if ! timeout 120 "$venv/bin/python" clients/python/check_esdbclient_cluster.py "$connection"; then
  echo "== cluster log"; tail -80 "$cluster_log"
  exit 1
fi

# Secure nodes (issue 13): a `--dev` node (self-signed localhost certificate) and a
# `dev-cluster --secure` (a CA and node certificates made at start).
kill "$cluster" 2>/dev/null || true; wait "$cluster" 2>/dev/null || true
dev_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dev_log=$(mktemp)
target/debug/stele --dev --mem-db --node-ip 127.0.0.1 --http-port "$dev_port" >"$dev_log" 2>&1 &
dev=$!
secure_http=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
secure_int=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
secure_log=$(mktemp)
target/debug/stele dev-cluster --secure --mem-db --nodes 3 --base-http-port "$secure_http" --base-int-port "$secure_int" >"$secure_log" 2>&1 &
secure=$!
trap 'kill "$node" "$dev" "$secure" 2>/dev/null || true; wait "$secure" 2>/dev/null || true; rm -rf "$log" "$cluster_log" "$cluster_dir" "$dev_log" "$secure_log"' EXIT
secure_connection=""
for _ in $(seq 1 600); do
  secure_connection=$(grep -o 'Connection string: esdb://[^ ]*' "$secure_log" | sed 's/Connection string: //' || true)
  [ -n "$secure_connection" ] && break
  if ! kill -0 "$secure" 2>/dev/null; then break; fi
  sleep 0.1
done
if [ -z "$secure_connection" ]; then
  echo "== the secure cluster did not become ready"; tail -50 "$secure_log"; exit 1
fi
if ! timeout 180 "$venv/bin/python" clients/python/check_esdbclient_secure.py "$dev_port" "$secure_connection"; then
  echo "== dev node log"; tail -40 "$dev_log"
  echo "== secure cluster log"; tail -80 "$secure_log"
  exit 1
fi
