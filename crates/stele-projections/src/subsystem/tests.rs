//! The subsystem against a real in-memory single node: the system projections, the client
//! suites' step-by-step scenario, faults and budgets, and exactly-once writes across stops.

use std::time::Duration;

use bytes::Bytes;
use stele_cluster::{Direction, Node, StreamReadRequest, StreamReadResult, StreamStart};
use stele_core::access::Principal;
use stele_core::{ContentType, ExpectedRevision, ProposedEvent, RecordedEvent, StreamName};
use stele_services::access::AccessControl;

use super::*;
use crate::api::{CreateMode, CreateRequest, DeleteRequest, Selector, Statistics, UpdateRequest};

const WAIT: Duration = Duration::from_secs(20);

async fn start(start_standard: bool) -> (Node, Projections) {
    let node = Node::start(stele_cluster::fuzzing::single_node_config())
        .await
        .expect("an in-memory node starts");
    assert!(node.wait_ready(WAIT).await, "the node becomes ready");
    let config = Config {
        run: RunProjections::All,
        start_standard_projections: start_standard,
        ..Config::default()
    };
    let projections =
        Projections::start(node.clone(), AccessControl::insecure(node.clone()), config);
    (node, projections)
}

fn event(event_type: &str, data: &str) -> ProposedEvent {
    ProposedEvent {
        id: stele_cluster::determinism::new_uuid(),
        event_type: event_type.to_owned(),
        content_type: ContentType::Json,
        custom_metadata: Bytes::new(),
        data: Bytes::from(data.to_owned()),
    }
}

async fn append(node: &Node, stream: &str, events: Vec<ProposedEvent>) {
    node.append(
        StreamName::new(stream).unwrap(),
        ExpectedRevision::Any,
        events,
        true,
    )
    .await
    .expect("the append succeeds");
}

fn read(node: &Node, stream: &str) -> Option<Vec<RecordedEvent>> {
    match node.read_stream(&StreamReadRequest {
        stream: StreamName::new(stream).unwrap(),
        start: StreamStart::Start,
        direction: Direction::Forwards,
        max_count: 100_000,
    }) {
        Ok(StreamReadResult::Events(events)) => Some(events),
        _ => None,
    }
}

fn count(node: &Node, stream: &str) -> usize {
    read(node, stream).map_or(0, |e| e.len())
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn stats(projections: &Projections, name: &str) -> Statistics {
    projections
        .statistics(Selector::Name(name.to_owned()))
        .await
        .unwrap()
        .remove(0)
}

async fn wait_status(projections: &Projections, name: &str, status: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = stats(projections, name).await;
        if s.status == status {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}: status {:?} ({}), waiting for {status}",
            s.status,
            s.state_reason
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn continuous(name: &str, query: &str, emit: bool, track: bool) -> CreateRequest {
    CreateRequest {
        mode: CreateMode::Continuous {
            name: name.to_owned(),
            emit_enabled: emit,
            track_emitted_streams: track,
        },
        query: query.to_owned(),
    }
}

#[tokio::test]
async fn a_fresh_database_holds_the_system_projections_and_they_link_by_category_and_type() {
    let (node, projections) = start(true).await;
    for i in 0..10 {
        append(
            &node,
            &format!("order-{}", i % 3),
            vec![event("OrderPlaced", "{}")],
        )
        .await;
        append(&node, "shopping-cart-1", vec![event("Added", "{}")]).await;
    }
    let listed = projections.statistics(Selector::All).await.unwrap();
    let names: Vec<&str> = listed.iter().map(|s| s.name.as_str()).collect();
    for (name, _) in crate::native::SYSTEM_PROJECTIONS {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let registry = read(&node, names::REGISTRY_STREAM).unwrap();
    assert_eq!(registry[0].record.event_type, names::INITIALIZED);
    wait_for("$ce-order", || count(&node, "$ce-order") == 10).await;
    wait_for("$ce-shopping", || count(&node, "$ce-shopping") == 10).await;
    wait_for("$et-OrderPlaced", || count(&node, "$et-OrderPlaced") == 10).await;
    wait_for("$streams", || count(&node, "$streams") == 4).await;
    wait_for("$category-order", || count(&node, "$category-order") == 3).await;
    let links = read(&node, "$ce-order").unwrap();
    assert_eq!(links[0].record.event_type, "$>");
    assert_eq!(&links[0].record.data[..], b"0@order-0");
    assert_eq!(stats(&projections, "$by_category").await.status, "Running");
    // Deleting a system projection is refused.
    projections.disable("$by_category", true).await.unwrap();
    let refused = projections
        .delete(DeleteRequest {
            name: "$by_category".into(),
            delete_emitted_streams: false,
            delete_state_stream: false,
            delete_checkpoint_stream: false,
        })
        .await;
    assert!(
        matches!(refused, Err(ProjectionError::OperationFailed(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn system_projections_stay_stopped_without_start_standard_projections() {
    let (node, projections) = start(false).await;
    append(&node, "order-1", vec![event("OrderPlaced", "{}")]).await;
    wait_status(&projections, "$by_category", "Stopped").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&node, "$ce-order"), 0);
    projections.enable("$by_category").await.unwrap();
    wait_for("$ce-order", || count(&node, "$ce-order") == 1).await;
}

/// PROTOCOL-OPS.md §1.5 `test_projection_example`, step by step.
#[tokio::test]
async fn the_client_suites_projection_example() {
    let (node, projections) = start(false).await;
    let stream = "app-1";
    let emitted = "emitted-app-1";
    let query = format!(
        r#"fromStream('{stream}').when({{
            $init: function() {{ return {{count: 0, list: [null, "2.10", true]}}; }},
            SomethingHappened: function(s, e) {{
                s.count += 1;
                emit('{emitted}', 'Emitted', {{n: s.count}});
            }}
        }}).outputState()"#
    );
    let admin = Principal::System;
    // 1–3: create with emit and tracking, disable, update twice, enable.
    let name = projections
        .create(continuous("example", &query, true, true), &admin)
        .await
        .unwrap();
    let duplicate = projections
        .create(continuous("example", &query, true, true), &admin)
        .await;
    assert_eq!(duplicate, Err(ProjectionError::Conflict("example".into())));
    let track_without_emit = projections
        .create(continuous("other", &query, false, true), &admin)
        .await;
    assert!(matches!(
        track_without_emit,
        Err(ProjectionError::InvalidRequest(_))
    ));
    projections.disable(&name, true).await.unwrap();
    for emit in [false, true] {
        projections
            .update(
                UpdateRequest {
                    name: name.clone(),
                    query: query.clone(),
                    emit_enabled: Some(emit),
                },
                &admin,
            )
            .await
            .unwrap();
    }
    assert_eq!(stats(&projections, &name).await.name, name);
    projections.enable(&name).await.unwrap();
    // 4: three events, two handled.
    append(
        &node,
        stream,
        vec![
            event("SomethingHappened", "{}"),
            event("SomethingElse", "{}"),
            event("SomethingHappened", "{}"),
        ],
    )
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while stats(&projections, &name)
        .await
        .events_processed_after_restart
        < 2
    {
        assert!(tokio::time::Instant::now() < deadline, "processing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // 5: the state.
    let state: serde_json::Value =
        serde_json::from_str(&projections.state(&name, "").await.unwrap()).unwrap();
    assert_eq!(state["count"], 2);
    assert_eq!(state["list"], serde_json::json!([null, "2.10", true]));
    // 6: the result stream: two Results caused by the two handled events.
    let results_stream = format!("$projections-{name}-result");
    wait_for("two results", || count(&node, &results_stream) == 2).await;
    let results = read(&node, &results_stream).unwrap();
    let source = read(&node, stream).unwrap();
    for (result, (i, cause)) in results.iter().zip([(1, &source[0]), (2, &source[2])]) {
        assert_eq!(result.record.event_type, "Result");
        let data: serde_json::Value = serde_json::from_slice(&result.record.data).unwrap();
        assert_eq!(data["count"], i);
        let metadata: serde_json::Value =
            serde_json::from_slice(&result.record.custom_metadata).unwrap();
        assert_eq!(metadata["$causedBy"], cause.record.id.to_string());
    }
    // 7: the emitted stream, tracked.
    wait_for("two emitted", || count(&node, emitted) == 2).await;
    let tracked = read(&node, &format!("$projections-{name}-emittedstreams")).unwrap();
    assert_eq!(tracked[0].record.event_type, "$StreamTracked");
    assert_eq!(&tracked[0].record.data[..], emitted.as_bytes());
    // 8–9: running; reset while running starts over and runs again.
    assert_eq!(stats(&projections, &name).await.status, "Running");
    projections.reset(&name).await.unwrap();
    wait_status(&projections, &name, "Running").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while stats(&projections, &name)
        .await
        .events_processed_after_restart
        == 0
    {
        assert!(tokio::time::Instant::now() < deadline, "reprocessing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_for("count again", || count(&node, &results_stream) == 2).await;
    // 10: delete while running is refused.
    let refused = projections
        .delete(DeleteRequest {
            name: name.clone(),
            delete_emitted_streams: true,
            delete_state_stream: true,
            delete_checkpoint_stream: true,
        })
        .await;
    assert!(
        matches!(refused, Err(ProjectionError::OperationFailed(_))),
        "{refused:?}"
    );
    // 11: disable keeps the state.
    projections.disable(&name, true).await.unwrap();
    assert_eq!(stats(&projections, &name).await.status, "Stopped");
    assert!(projections
        .state(&name, "")
        .await
        .unwrap()
        .contains("count"));
    // 12: reset while stopped: stopped, nothing processed, no state.
    projections.reset(&name).await.unwrap();
    let s = stats(&projections, &name).await;
    assert_eq!(s.status, "Stopped");
    assert_eq!(s.events_processed_after_restart, 0);
    assert!(!projections
        .state(&name, "")
        .await
        .unwrap()
        .contains("count"));
    // 13: enable counts to 2 again.
    projections.enable(&name).await.unwrap();
    wait_status(&projections, &name, "Running").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let state = projections.state(&name, "").await.unwrap();
        if state.contains(r#""count":2"#) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "state {state}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // 14: disable, delete with every flag, gone.
    projections.disable(&name, true).await.unwrap();
    projections
        .delete(DeleteRequest {
            name: name.clone(),
            delete_emitted_streams: true,
            delete_state_stream: true,
            delete_checkpoint_stream: true,
        })
        .await
        .unwrap();
    let gone = ProjectionError::NotFound(name.clone());
    assert_eq!(projections.state(&name, "").await, Err(gone.clone()));
    assert_eq!(projections.enable(&name).await, Err(gone.clone()));
    assert_eq!(
        projections.statistics(Selector::Name(name.clone())).await,
        Err(gone)
    );
    // 15: the result stream stays, the emitted stream is gone.
    assert_eq!(count(&node, &results_stream), 2);
    assert!(
        read(&node, emitted).is_none(),
        "the emitted stream is deleted"
    );
}

#[tokio::test]
async fn a_projection_that_throws_or_runs_away_faults_and_the_others_keep_running() {
    let (node, projections) = start(false).await;
    let admin = Principal::System;
    let throws = r#"fromStream('s').when({ $any: function(s, e) { throw new Error('boom'); } })"#;
    let runaway = r#"fromStream('s').when({ $any: function(s, e) { while (true) {} } })"#;
    let counter = r#"fromStream('s').when({ $init: function() { return 0; }, $any: function(s) { return s + 1; } })"#;
    for (name, query) in [
        ("throws", throws),
        ("runaway", runaway),
        ("counter", counter),
    ] {
        projections
            .create(continuous(name, query, false, false), &admin)
            .await
            .unwrap();
    }
    projections
        .create(continuous("broken", "fromStream(", false, false), &admin)
        .await
        .unwrap();
    append(
        &node,
        "s",
        vec![event("t", "{}"), event("t", "{}"), event("t", "{}")],
    )
    .await;
    wait_status(&projections, "throws", "Faulted (Enabled)").await;
    wait_status(&projections, "runaway", "Faulted (Enabled)").await;
    wait_status(&projections, "broken", "Faulted (Enabled)").await;
    assert!(stats(&projections, "throws")
        .await
        .state_reason
        .contains("boom"));
    let deadline = tokio::time::Instant::now() + WAIT;
    while projections.state("counter", "").await.unwrap() != "3" {
        assert!(tokio::time::Instant::now() < deadline, "the counter counts");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An abort leaves the checkpoint behind what was written; the next run goes over those
/// events again and writes none of their links twice.
#[tokio::test]
async fn links_are_written_once_across_aborts_and_restarts() {
    let (node, projections) = start(true).await;
    let admin = Principal::System;
    for round in 0..4 {
        for i in 0..50 {
            append(&node, &format!("cat-{}", i % 5), vec![event("E", "{}")]).await;
        }
        wait_for("links", || count(&node, "$ce-cat") == 50 * (round + 1)).await;
        match round {
            0 => projections.disable("$by_category", false).await.unwrap(),
            1 => projections.restart_subsystem().await.unwrap(),
            _ => projections.disable("$by_category", true).await.unwrap(),
        }
        projections.enable("$by_category").await.unwrap();
        let _ = &admin;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let links = read(&node, "$ce-cat").unwrap();
    assert_eq!(links.len(), 200);
    let mut targets: Vec<Bytes> = links.iter().map(|l| l.record.data.clone()).collect();
    targets.sort();
    targets.dedup();
    assert_eq!(targets.len(), 200, "no link twice");
}

#[tokio::test]
async fn partitioned_state_per_partition_and_category_sources() {
    let (node, projections) = start(true).await;
    let admin = Principal::System;
    projections
        .create(
            continuous(
                "by-partition",
                r#"fromAll().partitionBy(function(e) { return e.data.partition; })
                   .when({ $init: function() { return {count: 0}; },
                           $any: function(s, e) { s.count += 1; } })"#,
                false,
                false,
            ),
            &admin,
        )
        .await
        .unwrap();
    projections
        .create(
            continuous(
                "cats",
                r#"fromCategory('cat').foreachStream().when({
                     $init: function() { return {naps: 0, snacks: 0}; },
                     napped: function(s) { s.naps += 1; },
                     snacked: function(s) { s.snacks += 1; } })"#,
                false,
                false,
            ),
            &admin,
        )
        .await
        .unwrap();
    for p in [1, 2, 3, 3] {
        append(
            &node,
            "parts",
            vec![event("p", &format!(r#"{{"partition":{p}}}"#))],
        )
        .await;
    }
    for t in ["napped", "napped", "snacked", "napped", "snacked"] {
        append(&node, "cat-MrWhiskers", vec![event(t, "{}")]).await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let three = projections.state("by-partition", "3").await.unwrap();
        let cat = projections.state("cats", "cat-MrWhiskers").await.unwrap();
        if three == r#"{"count":2}"# && cat == r#"{"naps":3,"snacks":2}"# {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "states {three} {cat}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        projections.state("by-partition", "1").await.unwrap(),
        r#"{"count":1}"#
    );
    // Stopped with a checkpoint, the partitions' states are read from the log.
    projections.disable("by-partition", true).await.unwrap();
    assert_eq!(
        projections.state("by-partition", "3").await.unwrap(),
        r#"{"count":2}"#
    );
    projections.enable("by-partition").await.unwrap();
    append(&node, "parts", vec![event("p", r#"{"partition":3}"#)]).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while projections.state("by-partition", "3").await.unwrap() != r#"{"count":3}"# {
        assert!(
            tokio::time::Instant::now() < deadline,
            "resumed from the checkpoint"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn only_admins_and_ops_create_continuous_projections() {
    let (_node, projections) = start(false).await;
    let user = Principal::User {
        name: "u".into(),
        groups: vec![],
    };
    let refused = projections
        .create(continuous("p", "fromAll()", false, false), &user)
        .await;
    assert_eq!(refused, Err(ProjectionError::NotAuthorized));
    let ops = Principal::User {
        name: "o".into(),
        groups: vec!["$ops".into()],
    };
    projections
        .create(continuous("p", "fromAll()", false, false), &ops)
        .await
        .unwrap();
}
