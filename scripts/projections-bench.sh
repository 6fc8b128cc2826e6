#!/usr/bin/env bash
# Projections throughput on this machine (issue 14's figures): loads a release node with
# `stele bench` (32 writers x 100 events, 256-byte events, on disk), then times
#   1. $by_category and $by_event_type catching up over everything written, together;
#   2. a user JavaScript projection counting per partition (100 partitions) over `$all`;
#   3. the lag between an append's acknowledgement and its $ce- link being readable, for
#      appends made one at a time while 32 writers keep the node busy.
# Usage: [BIN=path/to/stele] scripts/projections-bench.sh [LOAD_SECS]. Run when nothing else is building.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-8}
# BIN=target/debug/stele measures a debug build (opt-level 1) without the release build.
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet -p stele-server
  BIN=target/release/stele
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dir=$(mktemp -d "$PWD/target/projections-bench-XXXX")
"$BIN" --insecure --db "$dir/db" --node-ip 127.0.0.1 --http-port "$port" --log-level warning \
  --run-projections All >"$dir/node.log" 2>&1 &
node=$!
trap 'kill "$node" 2>/dev/null || true; wait "$node" 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 200); do
  curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health/live" 2>/dev/null | grep -q 204 && break
  sleep 0.1
done
echo "== load: 32 writers x 100 events for $SECS s"
"$BIN" bench --url "http://127.0.0.1:$port" --writers 32 --batch 100 --streams 1000 \
  --duration "$SECS" --warmup 0 | grep -E 'events/s|appends/s' || true
python3 - "$port" <<'PY'
import json, sys, time, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"

def call(method, path, body=None):
    req = urllib.request.Request(base + path, data=body, method=method)
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()

def stats(name):
    return json.loads(call("GET", f"/projection/{name}"))

def wait_caught_up(names):
    started = time.time()
    while True:
        done = [stats(n) for n in names]
        if all(s["progress"] >= 100.0 for s in done):
            return time.time() - started, done
        time.sleep(0.05)

for n in ("$by_category", "$by_event_type"):
    call("POST", f"/projection/{n}/command/enable")
elapsed, done = wait_caught_up(["$by_category", "$by_event_type"])
events = done[0]["eventsProcessedAfterRestart"]
print(f"$by_category + $by_event_type: {events} events in {elapsed:.2f} s = {events / elapsed:,.0f} events/s")

query = b"""fromAll().partitionBy(function(e) { return '' + (e.sequenceNumber % 100); })
.when({ $init: function() { return {count: 0}; }, $any: function(s, e) { s.count += 1; } })"""
call("POST", "/projections/continuous?name=counter&emit=false", query)
elapsed, done = wait_caught_up(["counter"])
events = done[0]["eventsProcessedAfterRestart"]
print(f"user projection, 100 partitions: {events} events in {elapsed:.2f} s = {events / elapsed:,.0f} events/s")
PY
echo "== lag from acknowledgement to \$ce- link, under 32 writers"
"$BIN" bench --url "http://127.0.0.1:$port" --writers 32 --batch 1 --duration 12 --warmup 0 >/dev/null &
load=$!
py=python3
[ -x target/python-venv/bin/python ] && py=target/python-venv/bin/python
"$py" - "$port" <<'PY'
import json, sys, time, urllib.request, uuid
base = f"http://127.0.0.1:{sys.argv[1]}"
# Appends and reads go through the official Python client (run with its virtualenv's python).
try:
    from esdbclient import EventStoreDBClient, NewEvent, StreamState
except ImportError:
    print("esdbclient not installed (scripts/python-client-check.sh installs it under target/python-venv)")
    sys.exit(0)
c = EventStoreDBClient(uri=f"esdb://127.0.0.1:{sys.argv[1]}?Tls=false")
lags = []
time.sleep(1)
for i in range(200):
    stream = f"lag{uuid.uuid4().hex[:8]}-{i}"
    c.append_to_stream(stream, current_version=StreamState.NO_STREAM, events=[NewEvent(type="L", data=b"{}")])
    acked = time.perf_counter()
    category = stream.split("-")[0]
    while True:
        try:
            if list(c.get_stream(f"$ce-{category}")):
                break
        except Exception:
            pass
        time.sleep(0.0005)
    lags.append((time.perf_counter() - acked) * 1000)
lags.sort()
print(f"lag ms: p50 {lags[len(lags)//2]:.1f}, p99 {lags[int(len(lags)*0.99)]:.1f}, max {lags[-1]:.1f} (200 appends)")
PY
wait "$load" 2>/dev/null || true
