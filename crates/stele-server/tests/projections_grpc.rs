//! The Projections service end to end: EventStoreDB's client suites' `test_projection_example`
//! (PROTOCOL-OPS.md §1.5) through the official Rust client (`kurrentdb`'s
//! `ProjectionClient`) against a real node run with `--run-projections All`.
//!
//! The creation goes through our generated client, not `kurrentdb`'s: the Rust client's
//! own proto numbers `Continuous.track_emitted_streams` 2, which is `emit_enabled` on
//! EventStoreDB's wire (its `track_emitted_streams` is 3), so it cannot ask for tracking,
//! and the step list needs a tracked projection (deleting with `delete_emitted_streams`
//! removes tracked streams only).

mod common;

use std::time::{Duration, Instant};

use common::*;
use kurrentdb::{
    AppendToStreamOptions, ClientSettings, CreateProjectionOptions, DeleteProjectionOptions,
    GenericProjectionOptions, GetStateProjectionOptions, ProjectionClient, ProjectionStatus,
    ReadStreamOptions, UpdateProjectionOptions,
};
use serde_json::{json, Value};
use stele_proto::projections::create_req::options::{Continuous, Mode};
use stele_proto::projections::projections_client::ProjectionsClient;
use stele_proto::projections::{create_req, CreateReq};
use stele_testkit::TestNode;
use uuid::Uuid;

/// How long a projection may take to catch up with what the test wrote.
const CATCH_UP: Duration = Duration::from_secs(20);

async fn start_node() -> TestNode {
    TestNode::start(in_memory().arg("--run-projections").arg("All")).await
}

fn projection_client(node: &TestNode) -> ProjectionClient {
    let settings: ClientSettings = node
        .connection_string()
        .parse()
        .expect("parsing the connection string");
    ProjectionClient::new(settings).expect("creating the projection client")
}

fn generic() -> GenericProjectionOptions {
    GenericProjectionOptions::default()
}

async fn status(client: &ProjectionClient, name: &str) -> kurrentdb::Result<ProjectionStatus> {
    client
        .get_status(name, &generic())
        .await?
        .ok_or(kurrentdb::Error::ResourceNotFound)
}

async fn state(client: &ProjectionClient, name: &str) -> kurrentdb::Result<Value> {
    let state = client
        .get_state::<_, Value>(name, &GetStateProjectionOptions::default())
        .await?;
    Ok(state.expect("the state is JSON"))
}

/// Waits until `done` holds for the projection's statistics.
async fn wait_until(
    client: &ProjectionClient,
    name: &str,
    what: &str,
    done: impl Fn(&ProjectionStatus) -> bool,
) -> ProjectionStatus {
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let s = status(client, name).await.expect("statistics");
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "waiting for {what}: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn is_not_found<T: std::fmt::Debug>(result: kurrentdb::Result<T>) -> bool {
    matches!(result, Err(kurrentdb::Error::ResourceNotFound))
}

/// A continuous projection with emit and tracking on, created over the wire as the Python
/// and Node clients create it.
async fn create_tracked(node: &TestNode, name: &str, query: &str) {
    let mut client = ProjectionsClient::new(wire::channel(node).await);
    client
        .create(CreateReq {
            options: Some(create_req::Options {
                mode: Some(Mode::Continuous(Continuous {
                    name: name.into(),
                    emit_enabled: true,
                    track_emitted_streams: true,
                })),
                query: query.into(),
                engine_version: 1,
            }),
        })
        .await
        .expect("creating the projection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_projection_example() {
    let node = start_node().await;
    let streams = client(&node);
    let projections = projection_client(&node);
    let suffix = Uuid::new_v4().simple().to_string();
    let name = format!("projection-{suffix}");
    let source = format!("app-{suffix}");
    let emitted = format!("emitted-{suffix}");
    let result_stream = format!("$projections-{name}-result");
    let query = format!(
        r#"fromStream('{source}').when({{
  $init: function () {{ return {{ count: 0, list: [null, "2.10", true] }}; }},
  SomethingHappened: function (s, e) {{
    s.count += 1;
    emit('{emitted}', 'Emitted', {{ count: s.count }});
    return s;
  }}
}}).outputState()"#
    );

    // 1. Create (emit + track), then disable.
    create_tracked(&node, &name, &query).await;
    projections.disable(&name, &generic()).await.unwrap();

    // 2. Update with emit false, then with emit true.
    let update = |emit| UpdateProjectionOptions::default().emit(emit);
    projections
        .update(&name, query.clone(), &update(false))
        .await
        .unwrap();
    projections
        .update(&name, query.clone(), &update(true))
        .await
        .unwrap();

    // 3. The statistics name it; enable.
    assert_eq!(status(&projections, &name).await.unwrap().name, name);
    projections.enable(&name, &generic()).await.unwrap();

    // 4. Three events, two of them SomethingHappened.
    let events = [
        json_event("SomethingHappened", 1),
        json_event("SomethingElse", 2),
        json_event("SomethingHappened", 3),
    ];
    streams
        .append_to_stream(
            source.as_str(),
            &AppendToStreamOptions::default(),
            events.to_vec(),
        )
        .await
        .unwrap();
    wait_until(&projections, &name, "two events processed", |s| {
        s.events_processed_after_restart >= 2
    })
    .await;

    // 5. The state.
    let s = state(&projections, &name).await.unwrap();
    // State travels as google.protobuf.Value: numbers are doubles.
    assert_eq!(s["count"].as_f64(), Some(2.0), "{s}");
    assert_eq!(s["list"], json!([null, "2.10", true]), "{s}");

    // 6. The result stream: two `Result` events, caused by the triggering events.
    let source_events = read_stream(&streams, &source, &ReadStreamOptions::default())
        .await
        .unwrap();
    let happened: Vec<Uuid> = source_events
        .iter()
        .filter(|e| e.event_type == "SomethingHappened")
        .map(|e| e.id)
        .collect();
    let results = read_stream(&streams, &result_stream, &ReadStreamOptions::default())
        .await
        .unwrap();
    assert_eq!(results.len(), 2);
    for (k, event) in results.iter().enumerate() {
        assert_eq!(event.event_type, "Result");
        let data: Value = event.as_json().unwrap();
        assert_eq!(data["count"], k as u64 + 1, "{data}");
        let metadata: Value = serde_json::from_slice(&event.custom_metadata).unwrap();
        assert_eq!(metadata["$causedBy"], happened[k].to_string(), "{metadata}");
    }

    // 7. The emitted stream.
    let emitted_events = read_stream(&streams, &emitted, &ReadStreamOptions::default())
        .await
        .unwrap();
    assert_eq!(emitted_events.len(), 2);

    // 8. Running.
    assert_eq!(status(&projections, &name).await.unwrap().status, "Running");

    // 9. Reset while running: it runs again from the start.
    projections.reset(&name, &generic()).await.unwrap();
    let s = wait_until(&projections, &name, "reprocessing after the reset", |s| {
        s.events_processed_after_restart > 0
    })
    .await;
    assert_eq!(s.status, "Running");
    assert!(state(&projections, &name)
        .await
        .unwrap()
        .get("count")
        .is_some());

    // 10. Delete while running fails (OperationFailed).
    let deleted = projections
        .delete(&name, &DeleteProjectionOptions::default())
        .await;
    match deleted {
        Err(kurrentdb::Error::ServerError(message)) => {
            assert!(message.contains("OperationFailed"), "{message}")
        }
        other => panic!("deleting a running projection: {other:?}"),
    }

    // 11. Disable: Stopped, the state kept.
    projections.disable(&name, &generic()).await.unwrap();
    let s = wait_until(&projections, &name, "Stopped", |s| s.status == "Stopped").await;
    assert_eq!(s.status, "Stopped");
    assert!(state(&projections, &name)
        .await
        .unwrap()
        .get("count")
        .is_some());

    // 12. Reset while stopped: still Stopped, nothing processed, the state gone.
    projections.reset(&name, &generic()).await.unwrap();
    let s = status(&projections, &name).await.unwrap();
    assert_eq!(s.status, "Stopped");
    assert_eq!(s.events_processed_after_restart, 0);
    assert!(state(&projections, &name)
        .await
        .unwrap()
        .get("count")
        .is_none());

    // 13. Enable: Running, and the count again 2.
    projections.enable(&name, &generic()).await.unwrap();
    wait_until(&projections, &name, "Running with both events", |s| {
        s.status == "Running" && s.events_processed_after_restart >= 2
    })
    .await;
    assert_eq!(
        state(&projections, &name).await.unwrap()["count"].as_f64(),
        Some(2.0)
    );

    // 14. Disable, delete with every flag: Deleting/Stopped or gone, then gone.
    projections.disable(&name, &generic()).await.unwrap();
    wait_until(&projections, &name, "Stopped", |s| s.status == "Stopped").await;
    let everything = DeleteProjectionOptions::default()
        .delete_emitted_streams(true)
        .delete_state_stream(true)
        .delete_checkpoint_stream(true);
    projections.delete(&name, &everything).await.unwrap();
    match status(&projections, &name).await {
        Ok(s) => assert_eq!(s.status, "Deleting/Stopped"),
        Err(kurrentdb::Error::ResourceNotFound) => {}
        Err(e) => panic!("statistics after the delete: {e:?}"),
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(is_not_found(status(&projections, &name).await));
    assert!(is_not_found(state(&projections, &name).await));
    assert!(is_not_found(projections.enable(&name, &generic()).await));
    assert!(is_not_found(projections.disable(&name, &generic()).await));

    // 15. The result stream stays; the emitted stream is gone.
    let results = read_stream(&streams, &result_stream, &ReadStreamOptions::default())
        .await
        .unwrap();
    assert_eq!(results.len(), 2);
    let emitted_after = read_stream(&streams, &emitted, &ReadStreamOptions::default()).await;
    assert!(
        matches!(emitted_after, Err(kurrentdb::Error::ResourceNotFound)),
        "{emitted_after:?}"
    );
}

/// Create through the Rust client itself: its `emit(true)` is an Update after the Create,
/// and the projection runs and emits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_clients_own_create_runs_a_projection() {
    let node = start_node().await;
    let streams = client(&node);
    let projections = projection_client(&node);
    let suffix = Uuid::new_v4().simple().to_string();
    let name = format!("counter-{suffix}");
    let source = format!("app-{suffix}");
    let query = format!(
        "fromStream('{source}').when({{$init: function () {{ return {{count: 0}}; }}, \
         $any: function (s, e) {{ s.count += 1; return s; }}}})"
    );
    projections
        .create(&name, query, &CreateProjectionOptions::default().emit(true))
        .await
        .unwrap();
    streams
        .append_to_stream(
            source.as_str(),
            &AppendToStreamOptions::default(),
            vec![json_event("A", 1), json_event("B", 2)],
        )
        .await
        .unwrap();
    wait_until(&projections, &name, "two events processed", |s| {
        s.events_processed_after_restart >= 2
    })
    .await;
    assert_eq!(
        state(&projections, &name).await.unwrap()["count"].as_f64(),
        Some(2.0)
    );
    let listed: Vec<ProjectionStatus> = {
        use futures::TryStreamExt;
        projections
            .list(&generic())
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    };
    assert!(listed.iter().any(|s| s.name == name));
    // Unknown names are NOT_FOUND on every call.
    assert!(is_not_found(
        status(&projections, "no-such-projection").await
    ));
    assert!(is_not_found(
        projections.reset("no-such-projection", &generic()).await
    ));
}
