//! The projection API (PROTOCOL-OPS.md §2) on QuickJS: definitions, handlers, results,
//! emits, and the client suites' examples (§1.5). Limits are in `tests_sandbox.rs`.

use super::*;
use crate::query::QuerySource;

/// An event owned by a test; [`TestEvent::input`] borrows it as the handler's input.
pub(super) struct TestEvent {
    pub stream: String,
    pub number: u64,
    pub event_type: String,
    pub id: String,
    pub is_json: bool,
    pub body: String,
    pub metadata: String,
    pub link_metadata: Option<String>,
    pub category: Option<String>,
}

pub(super) fn event(stream: &str, number: u64, event_type: &str, body: &str) -> TestEvent {
    TestEvent {
        stream: stream.to_owned(),
        number,
        event_type: event_type.to_owned(),
        id: format!("00000000-0000-0000-0000-{number:012}"),
        is_json: true,
        body: body.to_owned(),
        metadata: String::new(),
        link_metadata: None,
        category: None,
    }
}

impl TestEvent {
    pub fn input(&self) -> EventInput<'_> {
        EventInput {
            stream_id: &self.stream,
            sequence_number: self.number,
            event_type: &self.event_type,
            event_id: &self.id,
            is_json: self.is_json,
            body_raw: &self.body,
            metadata_raw: &self.metadata,
            link_metadata_raw: self.link_metadata.as_deref(),
            category: self.category.as_deref(),
        }
    }
}

pub(super) fn compile(query: &str) -> JsProjection {
    match JsProjection::compile(query, true, Limits::default()) {
        Ok(p) => p,
        Err(e) => panic!("{query}: {e}"),
    }
}

fn compile_err(query: &str) -> JsError {
    match JsProjection::compile(query, true, Limits::default()) {
        Ok(_) => panic!("{query} compiled"),
        Err(e) => e,
    }
}

/// What the processor does with one event: key, create the partition, handle. Returns the
/// partition and the emits (`None` when skipped or unhandled).
pub(super) fn feed(p: &mut JsProjection, e: &TestEvent) -> (Option<String>, Option<Vec<Emitted>>) {
    let input = e.input();
    let Some(key) = p.partition_key(&input).expect("partition key") else {
        return (None, None);
    };
    let mut emitted = Vec::new();
    if !p.has_partition(&key) {
        emitted = p.init_partition(&key, Some(&input)).expect("init");
    }
    let outcome = p.process(&key, &input).expect("process");
    let outcome = outcome.map(|mut more| {
        emitted.append(&mut more);
        emitted
    });
    (Some(key), outcome)
}

fn state(p: &mut JsProjection, partition: &str) -> String {
    p.state_json(partition)
        .expect("state")
        .expect("partition held")
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("JSON")
}

// --- Definitions ----------------------------------------------------------------------------

#[test]
fn sources() {
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let cases: &[(&str, QuerySource)] = &[
        ("fromAll()", QuerySource::All),
        ("fromStream('a')", QuerySource::Streams(names(&["a"]))),
        (
            "fromStreams('a', 'b')",
            QuerySource::Streams(names(&["a", "b"])),
        ),
        (
            "fromStreams(['a', 'b'])",
            QuerySource::Streams(names(&["a", "b"])),
        ),
        ("fromCategory('c')", QuerySource::Categories(names(&["c"]))),
        (
            "fromCategory('a', 'b')",
            QuerySource::Categories(names(&["a", "b"])),
        ),
        (
            "fromCategory(['a', 'b'])",
            QuerySource::Categories(names(&["a", "b"])),
        ),
        (
            "fromCategories('a', 'b')",
            QuerySource::Categories(names(&["a", "b"])),
        ),
        (
            "fromCategories(['a'])",
            QuerySource::Categories(names(&["a"])),
        ),
    ];
    for (query, source) in cases {
        let p = compile(&format!("{query}.when({{$any: function(s, e) {{}}}})"));
        assert_eq!(&p.definition().source, source, "{query}");
        assert_eq!(p.definition().handled_types, None);
    }
}

#[test]
fn definition_flags() {
    let d = compile("fromAll().when({})").definition().clone();
    assert_eq!(
        d,
        QueryDefinition {
            handled_types: Some(vec![]),
            ..QueryDefinition::default()
        }
    );

    let d = compile("fromCategory('c').foreachStream().when({a: function(){}, b: function(){}})")
        .definition()
        .clone();
    assert!(d.by_stream && !d.partitioned);
    let mut types = d.handled_types.expect("types");
    types.sort();
    assert_eq!(types, ["a", "b"]);

    let d = compile(
        "fromAll().partitionBy(function(e){ return e.streamId }).when({$any: function(){}})",
    )
    .definition()
    .clone();
    assert!(d.partitioned && !d.by_stream);

    let d = compile("fromAll().foreachStream().when({$created: function(){}, $deleted: function(){}, x: function(){}})")
        .definition()
        .clone();
    assert!(d.handles_created && d.handles_deleted);
    assert_eq!(d.handled_types, Some(vec!["x".to_owned()]));

    let d = compile("fromAll().when({$initShared: function(){ return {} }, $any: function(){}})")
        .definition()
        .clone();
    assert!(d.bi_state);
}

#[test]
fn output_definitions() {
    assert!(!compile("fromAll().when({})").definition().output_state);
    assert!(
        compile("fromAll().when({}).outputState()")
            .definition()
            .output_state
    );
    assert!(compile("fromAll().outputState()").definition().output_state);
    assert!(
        compile("fromAll().when({}).transformBy(function(s){ return s })")
            .definition()
            .output_state
    );
    assert!(
        compile("fromAll().when({}).filterBy(function(s){ return true })")
            .definition()
            .output_state
    );
    assert!(
        compile("fromAll().when({}).$defines_state_transform()")
            .definition()
            .output_state
    );
    let d = compile("fromAll().when({}).outputState().outputTo('out', 'out-{0}')")
        .definition()
        .clone();
    assert_eq!(d.result_stream.as_deref(), Some("out"));
    assert_eq!(d.partition_result_pattern.as_deref(), Some("out-{0}"));
    let d = compile("fromAll().when({}).outputTo('out')")
        .definition()
        .clone();
    assert_eq!(d.result_stream.as_deref(), Some("out"));
    assert_eq!(d.partition_result_pattern, None);
    assert!(!d.output_state);
}

#[test]
fn calls_out_of_order_are_not_functions() {
    for query in [
        "fromStream('a').foreachStream()",
        "fromStreams('a', 'b').foreachStream()",
        "fromAll().foreachStream().partitionBy(function(e){})",
        "fromAll().partitionBy(function(e){}).outputState()",
        "fromAll().when({}).when({})",
        "fromAll().when({}).partitionBy(function(e){})",
        "fromAll().outputState().outputState()",
        "fromAll().outputState().when({})",
        "fromAll().when({}).outputTo('x').outputState()",
        "fromAll().when({}).transformBy(function(s){}).when({})",
    ] {
        match compile_err(query) {
            JsError::Compile(m) => assert!(m.contains("not a function"), "{query}: {m}"),
            other => panic!("{query}: {other}"),
        }
    }
}

#[test]
fn options_each_key_and_unknown() {
    let d = compile(
        "options({$includeLinks: true, reorderEvents: true, processingLag: 1200, resultStreamName: 'res', biState: true});
         fromStreams('a', 'b').when({$any: function(){}})",
    )
    .definition()
    .clone();
    assert!(d.include_links && d.reorder_events && d.bi_state);
    assert_eq!(d.processing_lag_ms, 1200);
    assert_eq!(d.result_stream.as_deref(), Some("res"));

    let d = compile("options({}); fromAll().when({})")
        .definition()
        .clone();
    assert!(!d.include_links && !d.reorder_events && !d.bi_state);
    assert_eq!(d.processing_lag_ms, 500);

    let e = compile_err("options({$includeLinks: true, colour: 'red'}); fromAll().when({})");
    assert!(
        matches!(&e, JsError::Compile(m) if m.contains("Unrecognized option: colour")),
        "{e}"
    );
}

#[test]
fn invalid_queries() {
    assert!(matches!(compile_err(""), JsError::Compile(m) if m.contains("empty")));
    assert!(matches!(compile_err("  \n "), JsError::Compile(_)));
    let e = compile_err("var x = 1;");
    assert!(
        matches!(&e, JsError::Compile(m) if m.contains("no source")),
        "{e}"
    );
    let e = compile_err("fromAll().when({$any: function(s, e) {");
    assert!(
        matches!(&e, JsError::Compile(m) if m.contains("SyntaxError")),
        "{e}"
    );
    let e = compile_err("fromAll(); fromStream('a')");
    assert!(
        matches!(&e, JsError::Compile(m) if m.contains("already defined")),
        "{e}"
    );
    let e = compile_err("fromAll().when({x: 3})");
    assert!(
        matches!(&e, JsError::Compile(m) if m.contains("expects a function")),
        "{e}"
    );
    let e = compile_err("fromAll().when({$initShared: function(){}, $deleted: function(){}})");
    assert!(
        matches!(&e, JsError::Compile(m) if m.contains("$deleted")),
        "{e}"
    );
    // The message names where the error was thrown.
    let e = compile_err("fromAll();\nthrow new Error('bad query');");
    assert!(
        matches!(&e, JsError::Compile(m) if m.contains("Error: bad query") && m.contains("query:2")),
        "{e}"
    );
}

#[test]
fn legacy_on_event_and_on_any() {
    let mut p = compile("fromAll(); on_event('a', function(s, e) { s.a = (s.a || 0) + 1; });");
    assert_eq!(p.definition().handled_types, Some(vec!["a".to_owned()]));
    feed(&mut p, &event("s", 0, "a", "{}"));
    assert_eq!(feed(&mut p, &event("s", 1, "b", "{}")).1, None);
    assert_eq!(state(&mut p, ""), r#"{"a":1}"#);

    let mut p = compile("fromAll(); on_any(function(s, e) { s.n = (s.n || 0) + 1; });");
    assert_eq!(p.definition().handled_types, None);
    feed(&mut p, &event("s", 0, "a", "{}"));
    feed(&mut p, &event("s", 1, "b", "{}"));
    assert_eq!(state(&mut p, ""), r#"{"n":2}"#);
}

// --- Handlers ---------------------------------------------------------------------------------

#[test]
fn init_any_and_typed_handlers() {
    let mut p = compile(
        "fromAll().when({
            $init: function() { return {any: 0, typed: 0} },
            $any: function(s, e) { s.any++; },
            typed: function(s, e) { s.typed++; return s; }
        })",
    );
    assert_eq!(p.definition().handled_types, None);
    feed(&mut p, &event("s", 0, "typed", "{}"));
    feed(&mut p, &event("s", 1, "other", "{}"));
    feed(&mut p, &event("s", 2, "other", "{}"));
    assert_eq!(state(&mut p, ""), r#"{"any":2,"typed":1}"#);
}

#[test]
fn state_without_init_is_an_empty_object() {
    let mut p = compile("fromAll().when({t: function(s, e) {}})");
    feed(&mut p, &event("s", 0, "t", "{}"));
    assert_eq!(state(&mut p, ""), "{}");
    // An unhandled type reaches no handler.
    assert_eq!(p.process("", &event("s", 1, "u", "{}").input()), Ok(None));
}

#[test]
fn return_value_replaces_state_unless_undefined() {
    let mut p = compile(
        "fromAll().when({
            $init: function() { return {n: 1} },
            keep: function(s) { s.n = 5; },
            replace: function(s) { return [s.n, 'x']; },
            nothing: function(s) { return null; }
        })",
    );
    feed(&mut p, &event("s", 0, "keep", "{}"));
    assert_eq!(state(&mut p, ""), r#"{"n":5}"#);
    feed(&mut p, &event("s", 1, "replace", "{}"));
    assert_eq!(state(&mut p, ""), r#"[5,"x"]"#);
    feed(&mut p, &event("s", 2, "nothing", "{}"));
    assert_eq!(state(&mut p, ""), "null");
}

#[test]
fn bi_state_pairs_partition_and_shared_state() {
    let mut p = compile(
        "fromAll().partitionBy(function(e) { return e.data.p }).when({
            $init: function() { return {count: 0} },
            $initShared: function() { return {total: 0} },
            $any: function(s, e) { s[0].count++; s[1].total++; },
            swap: function(s, e) { return [{count: 100}, {total: -1}]; }
        })",
    );
    assert!(p.definition().bi_state);
    feed(&mut p, &event("s", 0, "t", r#"{"p":"a"}"#));
    feed(&mut p, &event("s", 1, "t", r#"{"p":"b"}"#));
    feed(&mut p, &event("s", 2, "t", r#"{"p":"a"}"#));
    assert_eq!(state(&mut p, "a"), r#"{"count":2}"#);
    assert_eq!(state(&mut p, "b"), r#"{"count":1}"#);
    assert_eq!(
        p.shared_state_json().expect("shared").as_deref(),
        Some(r#"{"total":3}"#)
    );
    feed(&mut p, &event("s", 3, "swap", r#"{"p":"b"}"#));
    assert_eq!(state(&mut p, "b"), r#"{"count":100}"#);
    assert_eq!(
        p.shared_state_json().expect("shared").as_deref(),
        Some(r#"{"total":-1}"#)
    );

    p.load_shared(r#"{"total":7}"#).expect("load shared");
    feed(&mut p, &event("s", 4, "t", r#"{"p":"a"}"#));
    assert_eq!(
        p.shared_state_json().expect("shared").as_deref(),
        Some(r#"{"total":8}"#)
    );

    let mut plain = compile("fromAll().when({})");
    assert_eq!(plain.shared_state_json(), Ok(None));
}

#[test]
fn created_runs_once_per_new_partition() {
    let mut p = compile(
        "fromAll().foreachStream().when({
            $init: function() { return {created: 0, seen: 0} },
            $created: function(s, e) { s.created++; s.first = e.sequenceNumber; s.p = e.partition;
                                       emit('created-' + e.streamId, 'Created', {n: e.sequenceNumber}); },
            $any: function(s, e) { s.seen++; }
        })",
    );
    let (_, emits) = feed(&mut p, &event("a", 4, "x", "{}"));
    assert_eq!(
        emits,
        Some(vec![Emitted::Event {
            stream: "created-a".into(),
            event_type: "Created".into(),
            data: r#"{"n":4}"#.into(),
            metadata: None
        }])
    );
    let (_, emits) = feed(&mut p, &event("a", 5, "x", "{}"));
    assert_eq!(emits, Some(vec![]));
    assert_eq!(
        state(&mut p, "a"),
        r#"{"created":1,"seen":2,"first":4,"p":"a"}"#
    );
    // Without an event $created isn't called.
    assert_eq!(p.init_partition("b", None), Ok(vec![]));
    assert_eq!(state(&mut p, "b"), r#"{"created":0,"seen":0}"#);
}

#[test]
fn deleted_gets_state_null_partition_and_soft_flag() {
    let mut p = compile(
        "fromAll().foreachStream().when({
            $init: function() { return {n: 0} },
            $any: function(s, e) { s.n++; },
            $deleted: function(s, e, partition, soft) {
                s.deleted = {event: e, partition: partition, soft: soft, args: arguments.length};
            }
        })",
    );
    feed(&mut p, &event("a", 0, "x", "{}"));
    assert_eq!(p.deleted("a", true), Ok(Some(vec![])));
    assert_eq!(
        json(&state(&mut p, "a")),
        json(r#"{"n":1,"deleted":{"event":null,"partition":"a","soft":true,"args":4}}"#)
    );
    assert!(matches!(
        p.deleted("missing", false),
        Err(JsError::Handler(_))
    ));

    let mut without = compile("fromAll().foreachStream().when({$any: function(s, e) {}})");
    feed(&mut without, &event("a", 0, "x", "{}"));
    assert_eq!(without.deleted("a", false), Ok(None));
}

#[test]
fn results_through_transform_and_filter() {
    let mut p = compile(
        "fromAll().when({$init: function() { return {n: 0} }, $any: function(s) { s.n++; }})
           .transformBy(function(s) { return {double: s.n * 2} })
           .filterBy(function(s) { return s.double > 2 })
           .transformBy(function(s) { return s.double })",
    );
    feed(&mut p, &event("s", 0, "x", "{}"));
    assert_eq!(p.result_json(""), Ok(Some("null".to_owned())));
    feed(&mut p, &event("s", 1, "x", "{}"));
    assert_eq!(p.result_json(""), Ok(Some("4".to_owned())));
    assert_eq!(state(&mut p, ""), r#"{"n":2}"#);
    assert_eq!(p.result_json("other"), Ok(None));

    let mut plain = compile(
        "fromAll().when({$init: function() { return {n: 1} }, $any: function() {}}).outputState()",
    );
    plain.init_partition("", None).expect("init");
    assert_eq!(plain.result_json(""), Ok(Some(r#"{"n":1}"#.to_owned())));
    // A filter that doesn't return exactly `true` filters out.
    let mut truthy =
        compile("fromAll().when({$any: function() {}}).filterBy(function(s) { return 1 })");
    truthy.init_partition("", None).expect("init");
    assert_eq!(truthy.result_json(""), Ok(Some("null".to_owned())));
}

#[test]
fn handler_throwing_is_a_handler_error() {
    let mut p = compile("fromAll().when({\n  boom: function(s, e) {\n    throw new Error('kaput ' + e.data.x);\n  }\n})");
    let e = event("s", 0, "boom", r#"{"x":42}"#);
    p.init_partition("", None).expect("init");
    match p.process("", &e.input()) {
        Err(JsError::Handler(m)) => {
            assert!(
                m.contains("'boom'") && m.contains("Error: kaput 42") && m.contains("query:3"),
                "{m}"
            );
        }
        other => panic!("{other:?}"),
    }
    // A thrown non-Error value, and a TypeError from bad code.
    let mut p = compile(
        "fromAll().when({a: function() { throw 'plain'; }, b: function(s) { s.x.y.z = 1; }})",
    );
    p.init_partition("", None).expect("init");
    let e = p.process("", &event("s", 0, "a", "{}").input());
    assert!(
        matches!(&e, Err(JsError::Handler(m)) if m.contains("\"plain\"")),
        "{e:?}"
    );
    let e = p.process("", &event("s", 1, "b", "{}").input());
    assert!(
        matches!(&e, Err(JsError::Handler(m)) if m.contains("TypeError")),
        "{e:?}"
    );
    // Not faulted: the next event is handled.
    assert_eq!(p.process("", &event("s", 2, "c", "{}").input()), Ok(None));
    // A partition not created first is an error, not a panic.
    assert!(matches!(
        p.process("nope", &event("s", 3, "a", "{}").input()),
        Err(JsError::Handler(_))
    ));
}

#[test]
fn json_events_with_an_empty_body_reach_no_handler() {
    let mut p = compile("fromAll().partitionBy(function(e) { return 'p' }).when({$any: function(s) { s.n = (s.n||0)+1 }})");
    let empty = event("s", 0, "x", "");
    assert_eq!(p.partition_key(&empty.input()), Ok(None));
    p.init_partition("p", None).expect("init");
    assert_eq!(p.process("p", &empty.input()), Ok(None));
    // A non-JSON event with an empty body is handled.
    let mut binary = event("s", 1, "x", "");
    binary.is_json = false;
    assert!(p.process("p", &binary.input()).expect("process").is_some());
    assert_eq!(state(&mut p, "p"), r#"{"n":1}"#);
}
