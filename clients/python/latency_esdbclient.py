#!/usr/bin/env python3
"""One writer through the official Python client (esdbclient) with its default settings:
single-event appends (Streams.Append) of 256 bytes, one at a time, for SECS seconds after a
short warm-up. Prints appends/s and the p50/p99 latency.
Usage: latency_esdbclient.py PORT [SECS]."""
import sys, time, uuid
from esdbclient import EventStoreDBClient, NewEvent, StreamState

port = sys.argv[1]
secs = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
client = EventStoreDBClient(uri=f"esdb://127.0.0.1:{port}?Tls=false")
stream = "latency-py-" + str(uuid.uuid4())
data = b"x" * 256


def append():
    client.append_to_stream(stream, current_version=StreamState.ANY,
                            events=NewEvent(type="latency", data=data, content_type="application/octet-stream"))


for _ in range(20):
    append()
latencies = []
started = time.perf_counter()
while time.perf_counter() - started < secs:
    t = time.perf_counter()
    append()
    latencies.append(time.perf_counter() - t)
elapsed = time.perf_counter() - started
latencies.sort()


def quantile(q):
    return latencies[max(0, min(len(latencies) - 1, int(len(latencies) * q + 0.999999) - 1))] * 1e3


print(f"esdbclient (Python), defaults, 1 writer: {len(latencies)} appends in {elapsed:.1f} s = "
      f"{len(latencies) / elapsed:.0f}/s, p50 {quantile(0.5):.2f} ms, p99 {quantile(0.99):.2f} ms")
