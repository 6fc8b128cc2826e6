//! Emits, the event object, partitions and states, and the client suites' examples
//! (PROTOCOL-OPS.md §1.5).

use super::tests::{compile, event, feed};
use super::*;

fn state(p: &mut JsProjection, partition: &str) -> String {
    p.state_json(partition)
        .expect("state")
        .expect("partition held")
}

// --- Emits ------------------------------------------------------------------------------------

#[test]
fn emit_link_to_and_link_stream_to() {
    let mut p = compile(
        "fromAll().when({$any: function(s, e) {
            emit('out-' + e.streamId, 'Seen', {n: e.sequenceNumber, t: e.eventType});
            emit('out', 'WithMeta', {}, {$correlationId: 'c1', n: 2, nested: {a: [1]}});
            linkTo('links', e);
            linkTo('links', e, {why: 'because'});
            linkStreamTo('streams', e.streamId);
            linkStreamTo('streams', 'other', {k: 'v'});
            copyTo('ignored', e);
        }})",
    );
    let (_, emits) = feed(&mut p, &event("orders-1", 7, "Placed", "{}"));
    let expected = vec![
        Emitted::Event {
            stream: "out-orders-1".into(),
            event_type: "Seen".into(),
            data: r#"{"n":7,"t":"Placed"}"#.into(),
            metadata: None,
        },
        Emitted::Event {
            stream: "out".into(),
            event_type: "WithMeta".into(),
            data: "{}".into(),
            metadata: Some(r#"{"$correlationId":"c1","n":2,"nested":{"a":[1]}}"#.into()),
        },
        Emitted::Link {
            stream: "links".into(),
            target_stream: "orders-1".into(),
            target_revision: 7,
            metadata: None,
        },
        Emitted::Link {
            stream: "links".into(),
            target_stream: "orders-1".into(),
            target_revision: 7,
            metadata: Some(r#"{"why":"because"}"#.into()),
        },
        Emitted::StreamLink {
            stream: "streams".into(),
            linked_stream: "orders-1".into(),
            metadata: None,
        },
        Emitted::StreamLink {
            stream: "streams".into(),
            linked_stream: "other".into(),
            metadata: Some(r#"{"k":"v"}"#.into()),
        },
    ];
    assert_eq!(emits, Some(expected));
    // Emits don't leak into the next call.
    let mut q =
        compile("fromAll().when({a: function(s, e) { emit('x', 'y', {}); }, b: function() {}})");
    q.init_partition("", None).expect("init");
    assert_eq!(
        q.process("", &event("s", 0, "a", "{}").input())
            .expect("a")
            .map(|v| v.len()),
        Some(1)
    );
    assert_eq!(
        q.process("", &event("s", 1, "b", "{}").input()),
        Ok(Some(vec![]))
    );
}

#[test]
fn emit_checks_its_arguments() {
    let mut p = compile(
        "fromAll().when({
            str: function() { emit('s', 't', 'not an object'); },
            nostream: function() { emit('', 't', {}); },
            badlink: function() { linkTo('s', {streamId: 'x'}); }
        })",
    );
    p.init_partition("", None).expect("init");
    for (n, t) in ["str", "nostream", "badlink"].iter().enumerate() {
        let e = p.process("", &event("s", n as u64, t, "{}").input());
        assert!(
            matches!(&e, Err(JsError::Handler(m)) if m.contains("TypeError")),
            "{t}: {e:?}"
        );
    }
}

#[test]
fn emitting_without_emit_enabled_is_not_allowed() {
    for call in [
        "emit('s', 't', {})",
        "linkTo('s', e)",
        "linkStreamTo('s', 'o')",
    ] {
        let query = format!("fromAll().when({{$any: function(s, e) {{ {call}; }}}})");
        let mut p = JsProjection::compile(&query, false, Limits::default()).expect("compiles");
        p.init_partition("", None).expect("init");
        match p.process("", &event("s", 0, "x", "{}").input()) {
            Err(JsError::NotAllowed(m)) => {
                assert!(
                    m.contains("'emit' is not allowed by the projection/configuration/mode"),
                    "{m}"
                )
            }
            other => panic!("{call}: {other:?}"),
        }
    }
    // Compiling (and handlers that don't emit) is fine.
    let mut p = JsProjection::compile(
        "fromAll().when({$any: function(s) { s.ok = true }})",
        false,
        Limits::default(),
    )
    .expect("compiles");
    feed(&mut p, &event("s", 0, "x", "{}"));
    assert_eq!(state(&mut p, ""), r#"{"ok":true}"#);
}

#[test]
fn log_takes_any_values() {
    let mut p = compile("fromAll().when({$any: function(s, e) { log('seen', e.sequenceNumber, {a: 1}, undefined, e); }})");
    assert!(feed(&mut p, &event("s", 0, "x", "{}")).1.is_some());
}

// --- The event object -------------------------------------------------------------------------

#[test]
fn event_object_properties() {
    let mut p = compile(
        "fromAll().when({$any: function(s, e) {
            return {streamId: e.streamId, sequenceNumber: e.sequenceNumber, eventType: e.eventType,
                    eventId: e.eventId, isJson: e.isJson, bodyRaw: e.bodyRaw, body: e.body,
                    same: e.body === e.data, metadataRaw: e.metadataRaw, metadata: e.metadata,
                    linkMetadataRaw: e.linkMetadataRaw, linkMetadata: e.linkMetadata,
                    partition: e.partition, category: e.category};
        }})",
    );
    let mut e = event("cat-1", 3, "Napped", r#"{"a":[1,"x"]}"#);
    e.metadata = r#"{"m":true}"#.into();
    e.link_metadata = Some(r#"{"$o":"x"}"#.into());
    e.category = Some("cat".into());
    p.init_partition("part", None).expect("init");
    p.process("part", &e.input()).expect("process");
    let got: serde_json::Value = serde_json::from_str(&state(&mut p, "part")).expect("JSON");
    let want = serde_json::json!({
        "streamId": "cat-1", "sequenceNumber": 3, "eventType": "Napped",
        "eventId": "00000000-0000-0000-0000-000000000003", "isJson": true,
        "bodyRaw": r#"{"a":[1,"x"]}"#, "body": {"a": [1, "x"]}, "same": true,
        "metadataRaw": r#"{"m":true}"#, "metadata": {"m": true},
        "linkMetadataRaw": r#"{"$o":"x"}"#, "linkMetadata": {"$o": "x"},
        "partition": "part", "category": "cat"
    });
    assert_eq!(got, want);
}

#[test]
fn event_bodies_that_are_not_json() {
    let mut p = compile(
        "fromAll().when({$any: function(s, e) {
            return {body: e.body === undefined, data: e.data === undefined, raw: e.bodyRaw,
                    meta: e.metadata === undefined, link: e.linkMetadataRaw === undefined};
        }})",
    );
    p.init_partition("", None).expect("init");
    let mut binary = event("s", 0, "x", "{\"a\":1}");
    binary.is_json = false;
    p.process("", &binary.input()).expect("binary");
    assert_eq!(
        state(&mut p, ""),
        r#"{"body":true,"data":true,"raw":"{\"a\":1}","meta":true,"link":true}"#
    );
    let mut broken = event("s", 1, "x", "{not json");
    broken.metadata = "also not".into();
    p.process("", &broken.input()).expect("broken");
    assert_eq!(
        state(&mut p, ""),
        r#"{"body":true,"data":true,"raw":"{not json","meta":true,"link":true}"#
    );
}

#[test]
fn event_body_can_be_assigned() {
    // As in EventStoreDB, `body` and `data` are two properties: assigning one keeps the other.
    let mut p = compile(
        "fromAll().when({$any: function(s, e) { e.body = {x: 1}; return [e.body, e.data]; }})",
    );
    feed(&mut p, &event("s", 0, "x", r#"{"y":2}"#));
    assert_eq!(state(&mut p, ""), r#"[{"x":1},{"y":2}]"#);
    // JSON.stringify of an event gives its parsed parts too.
    let mut p = compile("fromAll().when({$any: function(s, e) { var j = JSON.parse(JSON.stringify(e)); return [j.body, j.data, j.metadata, j.streamId]; }})");
    let mut e = event("s", 0, "x", r#"{"y":2}"#);
    e.metadata = r#"{"m":1}"#.into();
    feed(&mut p, &e);
    assert_eq!(state(&mut p, ""), r#"[{"y":2},{"y":2},{"m":1},"s"]"#);
}

// --- Partitions and states --------------------------------------------------------------------

#[test]
fn partition_by_numeric_keys() {
    // KT: partitionBy(e => e.data.partition) over 4 events → "1": 1, "2": 1, "3": 2.
    let mut p = compile(
        "fromAll().partitionBy(e => e.data.partition).when({$init() { return {count: 0} }, $any(s, e) { s.count++ }})",
    );
    for (n, key) in [1, 2, 3, 3].iter().enumerate() {
        let (partition, _) = feed(
            &mut p,
            &event("s", n as u64, "x", &format!(r#"{{"partition":{key}}}"#)),
        );
        assert_eq!(partition, Some(key.to_string()));
    }
    assert_eq!(state(&mut p, "1"), r#"{"count":1}"#);
    assert_eq!(state(&mut p, "2"), r#"{"count":1}"#);
    assert_eq!(state(&mut p, "3"), r#"{"count":2}"#);
    assert_eq!(
        p.partition_key(&event("s", 9, "x", r#"{"partition":2.5}"#).input()),
        Ok(Some("2.5".into()))
    );
    assert_eq!(
        p.partition_key(&event("s", 9, "x", r#"{"partition":null}"#).input()),
        Ok(None)
    );
    assert_eq!(
        p.partition_key(&event("s", 9, "x", r#"{}"#).input()),
        Ok(None)
    );
    assert_eq!(
        p.partition_key(&event("s", 9, "x", r#"{"partition":"k"}"#).input()),
        Ok(Some("k".into()))
    );
}

#[test]
fn partition_keys_without_partition_by() {
    let mut all = compile("fromAll().when({$any: function() {}})");
    assert_eq!(
        all.partition_key(&event("s-1", 0, "x", "{}").input()),
        Ok(Some(String::new()))
    );
    let mut each = compile("fromAll().foreachStream().when({$any: function() {}})");
    assert_eq!(
        each.partition_key(&event("s-1", 0, "x", "{}").input()),
        Ok(Some("s-1".into()))
    );
}

#[test]
fn states_load_drop_and_reset() {
    let mut p =
        compile("fromAll().foreachStream().when({$init() { return {n: 0} }, $any(s) { s.n++ }})");
    assert!(!p.has_partition("a"));
    assert_eq!(p.state_json("a"), Ok(None));
    feed(&mut p, &event("a", 0, "x", "{}"));
    assert!(p.has_partition("a"));
    p.load_partition("b", r#"{"n":41}"#).expect("load");
    feed(&mut p, &event("b", 0, "x", "{}"));
    assert_eq!(state(&mut p, "b"), r#"{"n":42}"#);
    p.load_partition("u", "").expect("load undefined");
    assert_eq!(state(&mut p, "u"), "");
    assert!(matches!(
        p.load_partition("c", "{broken"),
        Err(JsError::Handler(_))
    ));

    p.drop_partition("a");
    assert!(!p.has_partition("a") && p.has_partition("b"));
    assert_eq!(p.state_json("a"), Ok(None));
    feed(&mut p, &event("a", 1, "x", "{}"));
    assert_eq!(state(&mut p, "a"), r#"{"n":1}"#);

    p.reset();
    assert!(!p.has_partition("a") && !p.has_partition("b"));
    feed(&mut p, &event("b", 1, "x", "{}"));
    assert_eq!(state(&mut p, "b"), r#"{"n":1}"#);
    assert!(p.memory_used() > 0);
}

#[test]
fn states_round_trip_through_json() {
    let mut p = compile("fromAll().when({$init() { return {count: 0, list: [null, '2.10', true]} }, $any(s) { s.count++ }})");
    p.init_partition("", None).expect("init");
    let text = state(&mut p, "");
    let mut q = compile("fromAll().when({$any(s) { s.count++ }})");
    q.load_partition("", &text).expect("load");
    feed(&mut q, &event("s", 0, "x", "{}"));
    assert_eq!(
        state(&mut q, ""),
        r#"{"count":1,"list":[null,"2.10",true]}"#
    );
}

// --- PROTOCOL-OPS.md §1.5 examples --------------------------------------------------------------

#[test]
fn example_counting_with_emit_and_list() {
    let query = r#"
        fromStream('app-1')
        .when({
            $init: function() { return { count: 0, list: [null, "2.10", true] }; },
            SomethingHappened: function(s, e) {
                s.count += 1;
                emit('emitted-app-1', 'SomethingElseHappened', { from: e.eventId });
            }
        })
        .outputState();"#;
    let mut p = compile(query);
    assert_eq!(
        p.definition().source,
        crate::query::QuerySource::Streams(vec!["app-1".into()])
    );
    assert!(p.definition().output_state);
    let mut emitted = 0;
    for (n, t) in ["SomethingHappened", "Other", "SomethingHappened"]
        .iter()
        .enumerate()
    {
        if let (_, Some(emits)) = feed(&mut p, &event("app-1", n as u64, t, "{}")) {
            emitted += emits.len();
        }
    }
    assert_eq!(emitted, 2);
    let state: serde_json::Value = serde_json::from_str(&state(&mut p, "")).expect("JSON");
    assert_eq!(
        state,
        serde_json::json!({"count": 2, "list": [null, "2.10", true]})
    );
}

#[test]
fn example_bare_number_state() {
    let mut p = compile("fromStream('s').when({$init(){return 0}, t(s){return s+1}})");
    for n in 0..3 {
        feed(&mut p, &event("s", n, "t", "{}"));
    }
    assert_eq!(state(&mut p, ""), "3");
    assert_eq!(p.result_json(""), Ok(Some("3".into())));
}

#[test]
fn example_cats_per_stream() {
    let mut p = compile(
        "fromCategory('cat').foreachStream().when({$init(){return {naps:0,snacks:0}}, napped(s){s.naps++}, snacked(s){s.snacks++}})",
    );
    assert!(p.definition().by_stream);
    let events = [
        ("cat-MrWhiskers", "napped"),
        ("cat-Tom", "napped"),
        ("cat-MrWhiskers", "snacked"),
        ("cat-MrWhiskers", "napped"),
        ("cat-MrWhiskers", "purred"),
        ("cat-MrWhiskers", "snacked"),
        ("cat-MrWhiskers", "napped"),
    ];
    for (n, (stream, t)) in events.iter().enumerate() {
        let mut e = event(stream, n as u64, t, r#"{"catName":"x"}"#);
        e.category = Some("cat".into());
        feed(&mut p, &e);
    }
    assert_eq!(state(&mut p, "cat-MrWhiskers"), r#"{"naps":3,"snacks":2}"#);
    assert_eq!(state(&mut p, "cat-Tom"), r#"{"naps":1,"snacks":0}"#);
}
