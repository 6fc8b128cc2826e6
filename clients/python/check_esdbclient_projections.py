#!/usr/bin/env python3
"""Drives projections of a running Stele node (started with RunProjections All and the
standard projections) with the official Python client esdbclient: the client suite's
test_projection_example step by step (create with emit and tracking, duplicate refused,
track without emit refused, disable, update, enable, state, the result stream with
$causedBy, the emitted stream, reset running and stopped, delete refused while running,
delete with every flag, NotFound afterwards, result stream kept, emitted stream gone), and
$et-<type> read with resolved links equal to a filtered $all read.
Usage: check_esdbclient_projections.py PORT. Exits non-zero on the first deviation."""
import json, sys, time, uuid
from esdbclient import EventStoreDBClient as EsdbClient, NewEvent, StreamState
from esdbclient.exceptions import (AlreadyExists, ExceptionThrownByHandler, NotFound,
                                   OperationFailed)

port = sys.argv[1]
c = EsdbClient(uri=f"esdb://127.0.0.1:{port}?Tls=false")
run = str(uuid.uuid4()).replace("-", "")[:8]
WAIT = 20.0


def eventually(what, check):
    deadline = time.time() + WAIT
    while True:
        value = check()
        if value:
            return value
        if time.time() > deadline:
            print(f"FAIL: {what}: not within {WAIT} s"); sys.exit(1)
        time.sleep(0.05)


def expect(what, ok):
    if not ok:
        print(f"FAIL: {what}"); sys.exit(1)


def raises(what, exception, call):
    try:
        call()
    except exception:
        return
    except Exception as e:  # noqa: BLE001
        print(f"FAIL: {what}: {type(e).__name__}: {e}"); sys.exit(1)
    print(f"FAIL: {what}: no {exception.__name__}"); sys.exit(1)


def events(stream):
    try:
        return list(c.get_stream(stream))
    except NotFound:
        return None


name = f"example-{run}"
app = f"app-{run}"
emitted = f"emitted-{run}"
query = """fromStream('%s').when({
  $init: function() { return {count: 0, list: [null, "2.10", true]}; },
  SomethingHappened: function(state, event) {
    state.count += 1;
    emit('%s', 'Emitted', {count: state.count});
  }
}).outputState()""" % (app, emitted)

# 1. Create (emit + track), duplicates and track-without-emit refused, then disable.
c.create_projection(name=name, query=query, emit_enabled=True, track_emitted_streams=True)
raises("duplicate", AlreadyExists,
       lambda: c.create_projection(name=name, query=query, emit_enabled=True))
raises("track without emit", ExceptionThrownByHandler,
       lambda: c.create_projection(name=f"other-{run}", query=query, emit_enabled=False,
                                   track_emitted_streams=True))
raises("unknown name", NotFound, lambda: c.get_projection_statistics(name=f"none-{run}"))
c.disable_projection(name=name)
# 2. Update with emit off, then on.
c.update_projection(name=name, query=query, emit_enabled=False)
c.update_projection(name=name, query=query, emit_enabled=True)
# 3. Statistics name, enable.
expect("statistics name", c.get_projection_statistics(name=name).name == name)
c.enable_projection(name=name)
# 4. Three events, two handled.
c.append_to_stream(app, current_version=StreamState.NO_STREAM, events=[
    NewEvent(type="SomethingHappened", data=b"{}"),
    NewEvent(type="SomethingElse", data=b"{}"),
    NewEvent(type="SomethingHappened", data=b"{}"),
])
eventually("two processed",
           lambda: c.get_projection_statistics(name=name).events_processed_after_restart >= 2)
# 5. State.
state = c.get_projection_state(name=name).value
expect(f"state count {state}", state["count"] == 2)
expect(f"state list {state}", state["list"] == [None, "2.10", True])
# 6. Result stream.
results = eventually("two results", lambda: (lambda r: r if r and len(r) == 2 else None)(
    events(f"$projections-{name}-result")))
source = events(app)
for i, (result, cause) in enumerate(zip(results, [source[0], source[2]])):
    expect("Result type", result.type == "Result")
    expect("Result data", json.loads(result.data)["count"] == i + 1)
    expect("$causedBy", json.loads(result.metadata)["$causedBy"] == str(cause.id))
# 7. Emitted stream.
eventually("two emitted", lambda: (events(emitted) or []).__len__() == 2)
tracked = events(f"$projections-{name}-emittedstreams")
expect("tracked", tracked and tracked[0].type == "$StreamTracked")
# 8-9. Running; reset while running.
expect("running", c.get_projection_statistics(name=name).status == "Running")
c.reset_projection(name=name)
eventually("running again", lambda: c.get_projection_statistics(name=name).status == "Running")
eventually("reprocessed",
           lambda: c.get_projection_statistics(name=name).events_processed_after_restart > 0)
eventually("count again", lambda: "count" in c.get_projection_state(name=name).value)
# 10. Delete while running refused.
raises("delete while running", OperationFailed,
       lambda: c.delete_projection(name=name, delete_emitted_streams=True,
                                   delete_state_stream=True, delete_checkpoint_stream=True))
# 11. Disable keeps the state.
c.disable_projection(name=name)
expect("stopped", c.get_projection_statistics(name=name).status == "Stopped")
expect("state kept", "count" in c.get_projection_state(name=name).value)
# 12. Reset while stopped.
c.reset_projection(name=name)
s = c.get_projection_statistics(name=name)
expect(f"stopped after reset: {s.status}", s.status == "Stopped")
expect("nothing processed", s.events_processed_after_restart == 0)
expect("no state", "count" not in c.get_projection_state(name=name).value)
# 13. Enable: counts to 2.
c.enable_projection(name=name)
eventually("running", lambda: c.get_projection_statistics(name=name).status == "Running")
eventually("count 2", lambda: c.get_projection_state(name=name).value.get("count") == 2)
# 14. Disable, delete with every flag, then NotFound.
c.disable_projection(name=name)
c.delete_projection(name=name, delete_emitted_streams=True, delete_state_stream=True,
                    delete_checkpoint_stream=True)
time.sleep(1)
for call in (c.get_projection_statistics, c.get_projection_state, c.enable_projection,
             c.disable_projection):
    raises(f"{call.__name__} after delete", NotFound, lambda: call(name=name))
# 15. The result stream stays; the emitted stream is gone.
expect("result stream kept", len(events(f"$projections-{name}-result") or []) == 2)
expect("emitted stream gone", events(emitted) is None)

# $et-<type> with resolved links = $all filtered on the type (the standard projections run).
event_type = f"Typed{run}"
for i in range(3):
    c.append_to_stream(f"typed-{run}-{i}", current_version=StreamState.ANY,
                       events=[NewEvent(type=event_type, data=b"{}")])
expected_ids = [e.id for e in c.read_all(filter_include=[event_type])]
eventually("$et- links", lambda: [e.id for e in (lambda: list(
    c.get_stream(f"$et-{event_type}", resolve_links=True)))()] == expected_ids
           if events(f"$et-{event_type}") else False)
print("esdbclient projections: ok")
