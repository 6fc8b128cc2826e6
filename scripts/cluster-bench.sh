#!/usr/bin/env bash
# Three-node cluster figures on this machine (issue 3): starts three release nodes on
# 127.0.0.1-3, runs `stele bench` against the leader for the standard load points, then
# measures the failover gap (SIGKILL the leader -> first acknowledged write through the
# Python client esdbclient with a gossip-seed connection string).
#
# Usage: scripts/cluster-bench.sh [DIR]   (DIR holds the data; default /tmp/stele-cluster-bench)
# SECURE=1: secure nodes (certificates from `stele certs`, TLS on every port, the bench as
# admin over https) — scripts/tls-cost.sh runs both and compares.
# Needs: target/release/stele (cargo build --release -p stele-server), and for the failover
# gap the venv scripts/python-client-check.sh creates (target/python-venv).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/target/release/stele
DIR=${1:-/tmp/stele-cluster-bench}
DURATION=${DURATION:-8}
PORT=21300
INT=11300
SEEDS=127.0.0.1:$PORT,127.0.0.2:$PORT,127.0.0.3:$PORT
SECURE=${SECURE:-0}
SCHEME=http; CURL=(curl -s); BENCH_SECURITY=(); SECURITY=(--insecure)
pids=()
start_node() { # k
  local k=$1
  if [ "$SECURE" = 1 ]; then
    SECURITY=(--certificate-file "$DIR/certs/node$k/node.crt" --certificate-private-key-file "$DIR/certs/node$k/node.key"
              --trusted-root-certificates-path "$DIR/certs/ca")
  fi
  "$BIN" "${SECURITY[@]}" --node-ip 127.0.0.$k --int-ip 127.0.0.$k --http-port $PORT --int-tcp-port $INT \
    --db "$DIR/n$k" --cluster-size 3 --discover-via-dns false --gossip-seed $SEEDS \
    --log-level warning >> "$DIR/n$k.log" 2>&1 &
  pids[$k]=$!
}
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
rm -rf "$DIR"; mkdir -p "$DIR"
if [ "$SECURE" = 1 ]; then
  "$BIN" certs create-ca -out "$DIR/certs/ca" >/dev/null
  for k in 1 2 3; do
    "$BIN" certs create-node -ca-certificate "$DIR/certs/ca/ca.crt" -ca-key "$DIR/certs/ca/ca.key" \
      -out "$DIR/certs/node$k" -ip-addresses 127.0.0.$k -dns-names localhost >/dev/null
  done
  SCHEME=https; CURL=(curl -s --cacert "$DIR/certs/ca/ca.crt")
  BENCH_SECURITY=(--tls-ca-file "$DIR/certs/ca/ca.crt" --username admin --password changeit)
fi
for k in 1 2 3; do start_node $k; done
leader() {
  for k in 1 2 3; do
    "${CURL[@]}" $SCHEME://127.0.0.$k:$PORT/gossip 2>/dev/null | python3 -c '
import json, sys
for m in json.load(sys.stdin)["members"]:
    if m["state"] == "Leader" and m["isAlive"]:
        print(m["httpEndPointIp"]); sys.exit(0)
sys.exit(1)' && return 0
  done
}
wait_healthy() {
  for _ in $(seq 1 300); do
    ok=0; for k in 1 2 3; do [ "$("${CURL[@]}" -o /dev/null -w '%{http_code}' $SCHEME://127.0.0.$k:$PORT/health/live)" = 204 ] && ok=$((ok+1)); done
    [ $ok = 3 ] && return 0; sleep 0.2
  done; echo "cluster not healthy" >&2; return 1
}
wait_healthy
L=$(leader); echo "leader: $L"
# The followers' /stats too: CPU microseconds per acknowledged event on every node.
FOLLOWERS=()
for k in 1 2 3; do [ "127.0.0.$k" != "$L" ] && FOLLOWERS+=(--node-stats "$SCHEME://127.0.0.$k:$PORT"); done
for point in "1 1" "32 1" "1 100" "32 100"; do
  set -- $point
  echo "== $1 writers, batch $2"
  "$BIN" bench --url $SCHEME://$L:$PORT "${BENCH_SECURITY[@]}" "${FOLLOWERS[@]}" --writers $1 --batch $2 --duration $DURATION --event-size 256 | grep -E "events/s|appends/s|latency|p50|p99|errors|node CPU" || true
done
PY=$ROOT/target/python-venv/bin/python
if [ -x "$PY" ] && [ "$SECURE" != 1 ]; then
  echo "== failover gap (SIGKILL the leader under one writer)"
  for k in 1 2 3; do [ "127.0.0.$k" = "$L" ] && victim=$k; done
  "$PY" - "$SEEDS" "${pids[$victim]}" <<'PYEOF'
import os, signal, sys, time, uuid
from esdbclient import EventStoreDBClient, NewEvent, StreamState
seeds, victim = sys.argv[1], int(sys.argv[2])
client = EventStoreDBClient(uri=f"esdb://{seeds}?Tls=false&GossipTimeout=1")
stream = "failover-" + str(uuid.uuid4())
for _ in range(50):
    client.append_to_stream(stream, current_version=StreamState.ANY, events=[NewEvent(type="T", data=b"x")])
killed = time.monotonic(); os.kill(victim, signal.SIGKILL)
errors = 0
while True:
    try:
        client.append_to_stream(stream, current_version=StreamState.ANY, events=[NewEvent(type="T", data=b"x")])
        break
    except Exception:
        errors += 1; time.sleep(0.05)
print(f"failover gap: {time.monotonic() - killed:.3f} s (SIGKILL of the leader -> first acknowledged append; {errors} failed attempts in between)", flush=True)
# The client's channel threads keep the interpreter from exiting while they retry the
# killed node: leave at once.
os._exit(0)
PYEOF
fi
