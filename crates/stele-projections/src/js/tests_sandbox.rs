//! The sandbox: time budgets, the memory limit and the stack limit fault a projection
//! without harming the process; and a throughput bench (`--ignored`).

// Real time, as the budgets are.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use super::tests::{compile, event, feed};
use super::*;

/// Runs `query`'s handler for one event; the error it gives and how long it took.
fn handler_error(query: &str) -> (JsError, Duration) {
    let mut p = compile(query);
    p.init_partition("", None).expect("init");
    let started = Instant::now();
    let e = p
        .process("", &event("s", 0, "x", "{}").input())
        .expect_err("the handler fails");
    let took = started.elapsed();
    // Faulted: every later call gives the same error.
    if e.is_fatal() {
        assert_eq!(
            p.process("", &event("s", 1, "x", "{}").input()),
            Err(e.clone())
        );
        assert_eq!(p.state_json(""), Err(e.clone()));
    }
    (e, took)
}

/// A new projection works after another one failed.
fn fresh_projection_works() {
    let mut p = compile("fromAll().when({$init() { return {n: 0} }, $any(s) { s.n++ }})");
    feed(&mut p, &event("s", 0, "x", "{}"));
    assert_eq!(p.state_json(""), Ok(Some(r#"{"n":1}"#.into())));
}

#[test]
fn endless_loop_in_a_handler_times_out() {
    let (e, took) = handler_error("fromAll().when({x: function(s, e) { while (true) {} }})");
    assert!(
        matches!(&e, JsError::TimedOut(m) if m.contains("'x'") && m.contains("250 ms")),
        "{e}"
    );
    assert!(took < Duration::from_secs(1), "{took:?}");
    // Catching doesn't help: the interrupt is uncatchable.
    let (e, _) = handler_error(
        "fromAll().when({x: function() { for (;;) { try { while (true) {} } catch (err) {} } }})",
    );
    assert!(matches!(e, JsError::TimedOut(_)), "{e}");
    fresh_projection_works();
}

#[test]
fn endless_loop_while_compiling_times_out() {
    let started = Instant::now();
    let e = JsProjection::compile("fromAll(); while (true) {}", true, Limits::default())
        .expect_err("times out");
    assert!(
        matches!(&e, JsError::TimedOut(m) if m.contains("compiling") && m.contains("500 ms")),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    fresh_projection_works();
}

#[test]
fn a_custom_timeout_applies() {
    let limits = Limits {
        execution_timeout: Duration::from_millis(20),
        ..Limits::default()
    };
    let mut p = JsProjection::compile(
        "fromAll().when({x: function() { while (true) {} }})",
        true,
        limits,
    )
    .expect("compiles");
    p.init_partition("", None).expect("init");
    let started = Instant::now();
    let e = p.process("", &event("s", 0, "x", "{}").input());
    assert!(
        matches!(&e, Err(JsError::TimedOut(m)) if m.contains("20 ms")),
        "{e:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(500));
}

/// Runs `body` as a handler with a long time budget, so the memory limit stops it.
fn memory_error(body: &str) -> (JsError, Duration) {
    let limits = Limits {
        execution_timeout: Duration::from_secs(10),
        ..Limits::default()
    };
    let mut p = JsProjection::compile(
        &format!("fromAll().when({{x: function(s, e) {{ {body} }}}})"),
        true,
        limits,
    )
    .expect("compiles");
    p.init_partition("", None).expect("init");
    let started = Instant::now();
    let e = p
        .process("", &event("s", 0, "x", "{}").input())
        .expect_err("fails");
    let took = started.elapsed();
    assert_eq!(p.state_json(""), Err(e.clone()), "faulted");
    (e, took)
}

#[test]
fn memory_exhaustion_in_a_handler() {
    // With the default limits, whichever comes first (the budget in an unoptimized build,
    // the 64 MiB in an optimized one) stops it within the second.
    let (e, took) = handler_error(
        "fromAll().when({x: function(s, e) { var a = []; while (true) a.push(new Array(1e6)); }})",
    );
    assert!(
        matches!(&e, JsError::OutOfMemory(m) | JsError::TimedOut(m) if m.contains("'x'")),
        "{e}"
    );
    assert!(took < Duration::from_secs(1), "{took:?}");
    // With a long budget, the memory limit stops it.
    for body in [
        "var a = []; while (true) a.push(new Array(1e6));",
        "var a = []; while (true) a.push(new Array(1e6).fill(0));",
        // Small objects: QuickJS can't even allocate the error (it throws null).
        "var a = []; while (true) a.push([1, 2, 3, 4, 5, 6, 7, 8]);",
        "var a = []; for (var i = 0; ; i++) a.push('x'.repeat(1 << 20) + i);",
        "s.a = []; for (var i = 0; ; i++) s.a.push({i: i, t: 'v' + i});",
    ] {
        let (e, took) = memory_error(body);
        assert!(
            matches!(&e, JsError::OutOfMemory(m) if m.contains("'x'")),
            "{body}: {e}"
        );
        assert!(took < Duration::from_secs(3), "{body}: {took:?}");
        println!("{body}: {e} after {took:?}");
    }
    fresh_projection_works();
}

#[test]
fn memory_exhaustion_while_compiling() {
    let limits = Limits {
        memory_bytes: 8 * 1024 * 1024,
        ..Limits::default()
    };
    let e = JsProjection::compile(
        "fromAll(); var a = []; while (true) a.push(new Array(1e6));",
        true,
        limits,
    )
    .expect_err("out of memory");
    assert!(matches!(e, JsError::OutOfMemory(_)), "{e}");
    fresh_projection_works();
}

#[test]
fn deep_recursion_is_an_error() {
    let (e, _) = handler_error(
        "fromAll().when({x: function() { function f(n) { return f(n + 1) + 1; } return f(0); }})",
    );
    assert!(
        matches!(&e, JsError::Handler(m) if m.contains("RangeError")),
        "{e}"
    );
    fresh_projection_works();
}

/// `cargo test -p stele-projections --release --lib js -- --ignored --nocapture`
#[test]
#[ignore = "a benchmark: run in release with --ignored --nocapture"]
fn bench_counting_projection() {
    const EVENTS: u64 = 1_000_000;
    let mut p = compile(
        "fromAll().partitionBy(e => e.data.p).when({$init(){return {count:0}}, $any(s,e){s.count++}})",
    );
    let streams: Vec<String> = (0..100).map(|i| format!("stream-{i}")).collect();
    let bodies: Vec<String> = (0..100)
        .map(|i| format!(r#"{{"p":"p{i}","value":{i},"name":"event {i}"}}"#))
        .collect();
    let ids: Vec<String> = (0..1000)
        .map(|i| format!("9f1c7a52-0d5e-4b9c-a1f2-{i:012}"))
        .collect();
    let started = Instant::now();
    for n in 0..EVENTS {
        let i = (n % 100) as usize;
        let input = EventInput {
            stream_id: &streams[i],
            sequence_number: n / 100,
            event_type: "Counted",
            event_id: &ids[(n % 1000) as usize],
            is_json: true,
            body_raw: &bodies[i],
            metadata_raw: "",
            link_metadata_raw: None,
            category: None,
        };
        let Some(key) = p.partition_key(&input).expect("key") else {
            continue;
        };
        if !p.has_partition(&key) {
            p.init_partition(&key, Some(&input)).expect("init");
        }
        p.process(&key, &input).expect("process");
    }
    let took = started.elapsed();
    let total: u64 = (0..100)
        .map(|i| {
            let s = p
                .state_json(&format!("p{i}"))
                .expect("state")
                .expect("held");
            serde_json::from_str::<serde_json::Value>(&s).expect("JSON")["count"]
                .as_u64()
                .expect("count")
        })
        .sum();
    assert_eq!(total, EVENTS);
    println!(
        "counting projection, 100 partitions: {EVENTS} events in {took:?} = {:.0} events/s; runtime memory {} bytes",
        EVENTS as f64 / took.as_secs_f64(),
        p.memory_used()
    );
}
