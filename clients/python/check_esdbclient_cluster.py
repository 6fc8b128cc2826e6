#!/usr/bin/env python3
"""Drives a running three-node Stele cluster with the official Python client esdbclient:
gossip discovery of the leader, appends through the leader, reads served by each node,
NodeIsNotLeader (with the leader's address) from a follower, and the client following it.
Usage: check_esdbclient_cluster.py CONNECTION_STRING (esdb://h1:p1,h2:p2,h3:p3?tls=false).
Exits non-zero on the first deviation."""
import sys, time, uuid
from urllib.parse import urlparse
from esdbclient import EventStoreDBClient as EsdbClient, NewEvent, StreamState
from esdbclient.exceptions import NodeIsNotLeader

uri = sys.argv[1]
hosts = urlparse(uri.replace("esdb://", "http://", 1)).netloc.split(",")
cluster = EsdbClient(uri=uri.replace("tls=false", "Tls=false"))

members = cluster.read_gossip()
states = sorted(m.state.replace("NODE_STATE_", "").title() for m in members)
print("gossip:", [(m.address, m.port, m.state) for m in members])
assert len(members) == 3, members
assert states.count("Leader") == 1 and states.count("Follower") == 2, states
leader = next(f"{m.address}:{m.port}" for m in members if m.state.endswith("LEADER"))
followers = [f"{m.address}:{m.port}" for m in members if m.state.endswith("FOLLOWER")]

stream = "py-cluster-" + str(uuid.uuid4())
for i in range(10):
    cluster.append_to_stream(stream, current_version=i - 1 if i else StreamState.NO_STREAM,
                             events=NewEvent(type="Clustered", data=b'{"n":%d}' % i))
print("10 appends through the discovered leader", leader)

# Every node serves the reads itself (NodePreference=follower: no requires-leader).
for host in hosts:
    node = EsdbClient(uri=f"esdb://{host}?Tls=false&NodePreference=follower")
    deadline = time.time() + 10
    while True:
        got = [e.type for e in node.get_stream(stream)]
        if len(got) == 10:
            break
        if time.time() > deadline:
            sys.exit(f"FAIL: {host} has {len(got)} of 10 events")
        time.sleep(0.1)
    print(host, "serves the 10 events")

# A follower refuses a write that requires the leader, naming the leader.
follower = EsdbClient(uri=f"esdb://{followers[0]}?Tls=false")
try:
    follower.append_to_stream(stream, current_version=9, events=NewEvent(type="X", data=b"{}"))
    sys.exit("FAIL: a follower acknowledged a write that required the leader")
except NodeIsNotLeader as e:
    print("follower answered NodeIsNotLeader:", repr(e)[:120])

# With the follower listed first among the seeds, the client still ends up on the leader.
seeds = ",".join(followers + [leader])
reordered = EsdbClient(uri=f"esdb://{seeds}?Tls=false")
reordered.append_to_stream(stream, current_version=9, events=NewEvent(type="Last", data=b"{}"))
assert [e.type for e in cluster.get_stream(stream)][-1] == "Last"
print("cluster check passed")
