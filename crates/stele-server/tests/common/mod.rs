//! Helpers shared by the black-box tests: start a node, connect the official client, make
//! events, collect reads. Each test file uses only some of them.
#![allow(dead_code)]

pub mod wire;

use kurrentdb::{
    Client, ClientSettings, EventData, ReadAllOptions, ReadStreamOptions, RecordedEvent,
    ResolvedEvent,
};
use stele_testkit::{NodeOptions, TestNode};
use uuid::Uuid;

/// The binary under test.
pub const STELE: &str = env!("CARGO_BIN_EXE_stele");

/// For the ignored `figures` measurements: a node of the release binary on disk (build it
/// first with `cargo build --release -p stele-server`) and the number of events to measure
/// over, `FIGURES_EVENTS` or `default_events`.
pub async fn figures_node(default_events: u64) -> (TestNode, u64) {
    let binary = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/release/stele");
    let events = std::env::var("FIGURES_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_events);
    (
        TestNode::start(NodeOptions::persistent(binary)).await,
        events,
    )
}

/// Options for an in-memory node (`--mem-db`).
pub fn in_memory() -> NodeOptions {
    NodeOptions::in_memory(STELE)
}

/// Options for a node on disk (`--db <tempdir>`).
pub fn persistent() -> NodeOptions {
    NodeOptions::persistent(STELE)
}

/// Starts an in-memory node and connects a client to it.
pub async fn start_in_memory() -> (TestNode, Client) {
    let node = TestNode::start(in_memory()).await;
    let client = client(&node);
    (node, client)
}

/// A client for `node` (single node, no TLS, no discovery).
pub fn client(node: &TestNode) -> Client {
    let settings: ClientSettings = node
        .connection_string()
        .parse()
        .expect("parsing the connection string");
    Client::new(settings).expect("creating the client")
}

/// A JSON event of type `event_type` with body `{"n": n}` and a fresh id.
pub fn json_event(event_type: &str, n: u64) -> EventData {
    json_event_with_id(event_type, n, Uuid::new_v4())
}

/// A JSON event of type `event_type` with body `{"n": n}` and the given id.
pub fn json_event_with_id(event_type: &str, n: u64, id: Uuid) -> EventData {
    EventData::json(event_type, &serde_json::json!({ "n": n }))
        .expect("serialising an event body")
        .id(id)
}

/// The `n` of a body written by [`json_event`].
pub fn body_n(event: &RecordedEvent) -> u64 {
    let body: serde_json::Value = event.as_json().expect("event body is JSON");
    body["n"].as_u64().expect("event body has a numeric n")
}

fn into_recorded(resolved: ResolvedEvent) -> RecordedEvent {
    let ResolvedEvent { event, link, .. } = resolved;
    link.or(event).expect("a read event carries an event")
}

/// Reads `stream` with `options` to the end of the read.
pub async fn read_stream(
    client: &Client,
    stream: &str,
    options: &ReadStreamOptions,
) -> kurrentdb::Result<Vec<RecordedEvent>> {
    let mut read = client.read_stream(stream, options).await?;
    let mut events = Vec::new();
    while let Some(event) = read.next().await? {
        events.push(into_recorded(event));
    }
    Ok(events)
}

/// Reads `$all` with `options` to the end of the read.
pub async fn read_all(
    client: &Client,
    options: &ReadAllOptions,
) -> kurrentdb::Result<Vec<RecordedEvent>> {
    let mut read = client.read_all(options).await?;
    let mut events = Vec::new();
    while let Some(event) = read.next().await? {
        events.push(into_recorded(event));
    }
    Ok(events)
}

/// Events of user streams only: a server may keep system streams (`$...`) in `$all`.
pub fn user_events(events: Vec<RecordedEvent>) -> Vec<RecordedEvent> {
    events
        .into_iter()
        .filter(|e| !e.stream_id().starts_with('$'))
        .collect()
}

/// Revisions of `events`, in order.
pub fn revisions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.revision).collect()
}

/// Ids of `events`, in order.
pub fn ids(events: &[RecordedEvent]) -> Vec<Uuid> {
    events.iter().map(|e| e.id).collect()
}
