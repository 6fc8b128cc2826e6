#!/usr/bin/env python3
"""Drives persistent subscriptions of a running Stele node with the official Python client
esdbclient: groups on a stream and on $all (with a filter), the confirmation id the client
checks, string-UUID acks and nacks (retry, park), acks of resolved links by the link's id,
the parked stream and its replay, info and lists (position strings), update, delete, and
MaximumSubscriptionsReached.
Usage: check_esdbclient_persistent.py PORT. Exits non-zero on the first deviation."""
import re, sys, time, uuid
from esdbclient import EventStoreDBClient as EsdbClient, NewEvent, StreamState
from esdbclient.exceptions import AlreadyExists, MaximumSubscriptionsReached, NotFound

port = sys.argv[1]
c = EsdbClient(uri=f"esdb://127.0.0.1:{port}?Tls=false")
run = str(uuid.uuid4())[:8]
s = f"pyps-{run}"
WAIT = 20.0


def eventually(what, check):
    """Polls check() until it returns a true value; exits after WAIT seconds."""
    deadline = time.time() + WAIT
    while True:
        value = check()
        if value:
            return value
        if time.time() > deadline:
            print(f"FAIL: {what}: not within {WAIT} s"); sys.exit(1)
        time.sleep(0.05)


def parked_ids(stream, group):
    try:
        return [e.id for e in c.get_stream(f"$persistentsubscription-{stream}::{group}-parked",
                                          resolve_links=True)]
    except NotFound:
        return []


# A stream group from the start: create, info (position strings), duplicates refused.
c.append_to_stream(s, current_version=StreamState.NO_STREAM,
                   events=[NewEvent(type="Py", data=b'{"n":%d}' % n) for n in range(5)])
c.create_subscription_to_stream("g", s, consumer_strategy="RoundRobin", max_retry_count=4,
                                min_checkpoint_count=1, max_checkpoint_count=1,
                                checkpoint_after=0.1, message_timeout=30.0)
info = c.get_subscription_info("g", s)
print("info:", info.event_source, info.group_name, info.start_from, info.consumer_strategy,
      info.max_retry_count, info.message_timeout)
assert (info.event_source, info.group_name) == (s, "g"), info
assert info.start_from == "0", info.start_from
assert info.consumer_strategy == "RoundRobin", info.consumer_strategy
assert info.max_retry_count == 4 and info.message_timeout == 30.0, info
try:
    c.create_subscription_to_stream("g", s)
    print("FAIL: expected AlreadyExists"); sys.exit(1)
except AlreadyExists:
    print("create twice -> AlreadyExists ok")

# Read: the client checks the confirmation id `<stream>::<group>`; every event once with
# retry count 0; nack retry -> again with retry count 1; nack park -> parked stream.
sub = c.read_subscription_to_stream("g", s, timeout=60)
assert sub.subscription_id == f"{s}::g", sub.subscription_id
events = iter(sub)
first = [next(events) for _ in range(5)]
assert [e.stream_position for e in first] == [0, 1, 2, 3, 4], first
assert all(e.retry_count == 0 for e in first), [e.retry_count for e in first]
sub.ack(first[0]); sub.ack(first[1])
sub.nack(first[2], action="retry")
sub.nack(first[3], action="park")
sub.ack(first[4])
again = next(events)
assert (again.stream_position, again.retry_count) == (2, 1), (again.stream_position, again.retry_count)
sub.ack(again)
print("ack, nack retry ok")
parked = eventually("the parked message in the parked stream", lambda: parked_ids(s, "g"))
assert parked == [first[3].id], (parked, first[3].id)
eventually("parked_message_count 1", lambda: c.get_subscription_info("g", s).parked_message_count == 1)
print("nack park ok")
c.replay_parked_events("g", s)
replayed = next(events)
assert (replayed.stream_position, replayed.id) == (3, first[3].id), replayed
sub.ack(replayed)
eventually("parked_message_count 0 after the replay",
           lambda: c.get_subscription_info("g", s).parked_message_count == 0)
print("replay parked ok")
# Live, and every ack counted: the checkpoint reaches the last event.
c.append_to_stream(s, current_version=4, events=NewEvent(type="Py", data=b'{"n":5}'))
live = next(events)
assert (live.stream_position, live.retry_count) == (5, 0), live
sub.ack(live)
eventually("checkpoint at 5",
           lambda: c.get_subscription_info("g", s).last_checkpointed_event_position == "5")
sub.stop()
print("live ok")

# Links: a group that resolves them; the ack carries the link's id.
links = f"pylinks-{run}"
c.append_to_stream(links, current_version=StreamState.NO_STREAM,
                   events=[NewEvent(type="$>", data=f"{n}@{s}".encode(), content_type="application/octet-stream")
                           for n in (1, 0)])
c.create_subscription_to_stream("l", links, resolve_links=True, min_checkpoint_count=1,
                                max_checkpoint_count=1, checkpoint_after=0.1)
lsub = c.read_subscription_to_stream("l", links, timeout=60)
levents = iter(lsub)
resolved = [next(levents) for _ in range(2)]
assert [(e.stream_name, e.stream_position) for e in resolved] == [(s, 1), (s, 0)], resolved
assert all(e.link is not None and e.link.stream_name == links for e in resolved), resolved
for e in resolved:
    lsub.ack(e)  # by e.ack_id, the link's id
eventually("the links' checkpoint at 1",
           lambda: c.get_subscription_info("l", links).last_checkpointed_event_position == "1")
lsub.stop()
print("resolved links acked by link id ok")

# A $all group with a filter: only matching events, confirmation id `$all::<group>`.
prefix = f"pyall-{run}-"
c.create_subscription_to_all("a", filter_include=[re.escape(prefix) + ".*"],
                             filter_by_stream_name=True, consumer_strategy="DispatchToSingle")
c.append_to_stream(prefix + "x", current_version=StreamState.ANY,
                   events=NewEvent(type="Py", data=b"{}"))
c.append_to_stream(f"pyother-{run}", current_version=StreamState.ANY,
                   events=NewEvent(type="Py", data=b"{}"))
c.append_to_stream(prefix + "y", current_version=StreamState.ANY,
                   events=NewEvent(type="Py", data=b"{}"))
asub = c.read_subscription_to_all("a", timeout=60)
assert asub.subscription_id == "$all::a", asub.subscription_id
aevents = iter(asub)
got = [next(aevents) for _ in range(2)]
assert [e.stream_name for e in got] == [prefix + "x", prefix + "y"], [e.stream_name for e in got]
for e in got:
    asub.ack(e)
asub.stop()
ainfo = c.get_subscription_info("a")
assert (ainfo.event_source, ainfo.start_from) == ("$all", "C:0/P:0"), (ainfo.event_source, ainfo.start_from)
print("$all with filter ok")

# Lists.
groups = {(i.event_source, i.group_name) for i in c.list_subscriptions()}
assert {(s, "g"), (links, "l"), ("$all", "a")} <= groups, groups
assert [(i.event_source, i.group_name) for i in c.list_subscriptions_to_stream(s)] == [(s, "g")]
print("lists ok")

# Update (the client sends the strategy as the enum here).
c.update_subscription_to_stream("g", s, max_retry_count=7, consumer_strategy="DispatchToSingle")
info = c.get_subscription_info("g", s)
assert (info.max_retry_count, info.consumer_strategy) == (7, "DispatchToSingle"), info
c.update_subscription_to_all("a", consumer_strategy="RoundRobin", max_subscriber_count=3)
ainfo = c.get_subscription_info("a")
assert (ainfo.consumer_strategy, ainfo.max_subscriber_count) == ("RoundRobin", 3), ainfo
print("update ok")

# MaximumSubscriptionsReached.
c.create_subscription_to_stream("one", s, max_subscriber_count=1)
only = c.read_subscription_to_stream("one", s, timeout=60)
try:
    extra = c.read_subscription_to_stream("one", s, timeout=60)
    next(iter(extra))
    print("FAIL: expected MaximumSubscriptionsReached"); sys.exit(1)
except MaximumSubscriptionsReached as e:
    print("max subscribers ok:", repr(e))
only.stop()

# Delete.
for group, stream in [("g", s), ("l", links), ("one", s), ("a", None)]:
    c.delete_subscription(group, stream)
    try:
        c.get_subscription_info(group, stream)
        print(f"FAIL: expected NotFound for deleted {stream}::{group}"); sys.exit(1)
    except NotFound:
        pass
try:
    c.delete_subscription("g", s)
    print("FAIL: expected NotFound deleting twice"); sys.exit(1)
except NotFound:
    pass
print("delete ok")
c.close()
print("ALL OK")
