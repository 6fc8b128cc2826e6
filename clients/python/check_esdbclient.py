#!/usr/bin/env python3
"""Drives a running Stele node with the official Python client esdbclient: single-event
appends (Streams.Append), multi-event appends (Streams.BatchAppend), wrong-expected-version
errors, stream and $all reads (with a server-side filter), catch-up subscriptions (stream and
$all, with the client's default negative-lookahead filter, checkpoints and caught-up), soft
delete and tombstone.
Usage: check_esdbclient.py PORT. Exits non-zero on the first deviation."""
import re, sys, uuid
from esdbclient import EventStoreDBClient as EsdbClient, NewEvent, StreamState, CaughtUp, Checkpoint
from esdbclient.exceptions import WrongCurrentVersion, NotFound, StreamIsDeleted
port = sys.argv[1]
c = EsdbClient(uri=f"esdb://127.0.0.1:{port}?Tls=false")
s = "py-" + str(uuid.uuid4())
# single event -> Append
p1 = c.append_to_stream(s, current_version=StreamState.NO_STREAM, events=NewEvent(type="One", data=b'{"x":1}'))
print("append one ->", p1)
# multiple -> BatchAppend
p2 = c.append_to_stream(s, current_version=0, events=[NewEvent(type="Two", data=b"{}"), NewEvent(type="Three", data=b"{}", content_type="application/octet-stream")])
print("batch append ->", p2)
try:
    c.append_to_stream(s, current_version=0, events=[NewEvent(type="X", data=b"{}"), NewEvent(type="Y", data=b"{}")])
    print("FAIL: expected WrongCurrentVersion"); sys.exit(1)
except WrongCurrentVersion as e:
    print("batch wev ok:", repr(e))
try:
    c.append_to_stream(s, current_version=0, events=NewEvent(type="X", data=b"{}"))
    print("FAIL: expected WrongCurrentVersion"); sys.exit(1)
except WrongCurrentVersion as e:
    print("append wev ok:", repr(e))
evs = c.get_stream(s)
print("read:", [(e.type, e.stream_position, e.commit_position, e.content_type, e.recorded_at) for e in evs])
assert [e.type for e in evs] == ["One", "Two", "Three"], evs
back = c.get_stream(s, backwards=True, limit=2)
assert [e.type for e in back] == ["Three", "Two"], back
try:
    c.get_stream("nope-" + str(uuid.uuid4()))
    print("FAIL: expected NotFound"); sys.exit(1)
except NotFound:
    print("not found ok")
all_events = list(c.read_all())
print("read_all (default filter):", len(all_events), [e.type for e in all_events][-3:])
assert [e.type for e in all_events][-3:] == ["One", "Two", "Three"]
filtered = list(c.read_all(filter_include=["Tw.*"]))
print("read_all include Tw.*:", [e.type for e in filtered])
assert all(e.type.startswith("Tw") for e in filtered) and filtered
assert c.get_current_version(s) == 2

# Catch-up subscriptions: confirmation first (the client checks), history, caught-up, live.
def until_caught_up(sub):
    got = []
    for e in sub:
        if isinstance(e, CaughtUp):
            return got
        got.append(e)
sub = c.subscribe_to_stream(s, include_caught_up=True, timeout=30)
assert [e.type for e in until_caught_up(sub)] == ["One", "Two", "Three"]
c.append_to_stream(s, current_version=2, events=NewEvent(type="Four", data=b"{}"))
live = next(iter(sub))
assert (live.type, live.stream_position) == ("Four", 3), live
sub.stop()
after = c.subscribe_to_stream(s, stream_position=1, include_caught_up=True, timeout=30)
assert [e.stream_position for e in until_caught_up(after)] == [2, 3]  # exclusive start
after.stop()
print("stream subscription ok")
# $all with the default filter (a negative lookahead on the event type, excluding $-types),
# a checkpoint every event considered (window 1 x multiplier 1) and caught-up.
everything = c.subscribe_to_all(include_checkpoints=True, include_caught_up=True,
                                window_size=1, checkpoint_interval_multiplier=1, timeout=30)
seen = until_caught_up(everything)
events_seen = [e for e in seen if not isinstance(e, Checkpoint)]
checkpoints = [e.commit_position for e in seen if isinstance(e, Checkpoint)]
assert not any(e.type.startswith("$") for e in events_seen), [e.type for e in events_seen]
assert [e.type for e in events_seen][-4:] == ["One", "Two", "Three", "Four"], events_seen
assert checkpoints and checkpoints == sorted(checkpoints), checkpoints
assert checkpoints[-1] >= events_seen[-1].commit_position
everything.stop()
# From a commit position (exclusive), by stream name, with a live event.
two = [e for e in events_seen if e.type == "Two"][0]
named = c.subscribe_to_all(commit_position=two.commit_position, filter_include=[re.escape(s)],
                           filter_by_stream_name=True, include_caught_up=True, timeout=30)
assert [e.type for e in until_caught_up(named)] == ["Three", "Four"]
c.append_to_stream(s, current_version=3, events=NewEvent(type="Five", data=b"{}"))
assert next(iter(named)).type == "Five"
named.stop()
print("$all subscription ok:", len(events_seen), "events,", len(checkpoints), "checkpoints")
try:
    c.delete_stream(s, current_version=0)
    print("FAIL: expected WrongCurrentVersion"); sys.exit(1)
except WrongCurrentVersion as e:
    print("delete wev ok:", repr(e))
c.delete_stream(s, current_version=4)
try:
    c.get_stream(s); print("FAIL: expected NotFound after delete"); sys.exit(1)
except NotFound:
    print("soft deleted ok")
c.append_to_stream(s, current_version=StreamState.ANY, events=NewEvent(type="Again", data=b"{}"))
c.tombstone_stream(s, current_version=StreamState.ANY)
try:
    c.get_stream(s); print("FAIL: expected StreamIsDeleted"); sys.exit(1)
except StreamIsDeleted:
    print("tombstoned read ok")
try:
    c.append_to_stream(s, current_version=StreamState.ANY, events=[NewEvent(type="Z", data=b"{}"), NewEvent(type="Z", data=b"{}")])
    print("FAIL: expected StreamIsDeleted"); sys.exit(1)
except StreamIsDeleted:
    print("tombstoned batch append ok")
c.close()
print("ALL OK")
