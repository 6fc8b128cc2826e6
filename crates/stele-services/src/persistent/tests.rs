//! The engine against a real in-memory node (a single node needs no network): byte bounds
//! on what a group reads ahead, and the order of parked messages.

use std::time::{Duration, Instant};

use bytes::Bytes;
use stele_cluster::{Node, NodeConfig};
use stele_core::{ContentType, ExpectedRevision, ProposedEvent, StreamName};
use uuid::Uuid;

use super::reader::PAGE_MAX_BYTES;
use super::*;
use crate::access::AccessControl;

/// How long a condition may take to hold.
const DEADLINE: Duration = Duration::from_secs(20);

async fn start() -> (Node, Subsystem) {
    start_with(AccessControl::insecure).await
}

/// A node and its subsystem, whose access control `access` makes.
pub(super) async fn start_with(access: impl FnOnce(Node) -> AccessControl) -> (Node, Subsystem) {
    // The shared in-process configuration, with room for the 1 MiB events these tests
    // append.
    let config = NodeConfig {
        chunk_size_bytes: 16 * 1024 * 1024,
        max_append_event_size_bytes: 1024 * 1024,
        ..stele_cluster::fuzzing::single_node_config()
    };
    let node = Node::start(config).await.expect("an in-memory node starts");
    assert!(node.wait_ready(DEADLINE).await, "the node becomes ready");
    let persistent = Subsystem::start(node.clone(), access(node.clone()));
    let deadline = Instant::now() + DEADLINE;
    while let Err(error) = persistent.list(None).await {
        assert!(
            Instant::now() < deadline,
            "the subsystem does not start: {error}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (node, persistent)
}

pub(super) async fn append(node: &Node, stream: &str, events: Vec<ProposedEvent>) {
    node.append(
        StreamName::new(stream).unwrap(),
        ExpectedRevision::Any,
        events,
        true,
    )
    .await
    .expect("the append succeeds");
}

pub(super) fn event(event_type: &str, data: Bytes) -> ProposedEvent {
    ProposedEvent {
        id: Uuid::new_v4(),
        event_type: event_type.into(),
        content_type: ContentType::Binary,
        custom_metadata: Bytes::new(),
        data,
    }
}

pub(super) async fn next(consumer: &mut Consumer) -> Box<Message> {
    match tokio::time::timeout(DEADLINE, consumer.next()).await {
        Ok(Some(Delivery::Message(message))) => message,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn definition(source: Source, group: &str, settings: Settings) -> Definition {
    Definition {
        key: GroupKey::new(source, group),
        filter: None,
        settings,
        creator: Principal::System,
    }
}

/// A group created with buffer sizes of 2^31-1 and no consumer read the whole log into
/// memory (560 MB of a 500 MB log): what it reads ahead is bounded in bytes, and so is
/// each page its reader reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_buffers_and_no_consumer_read_a_bounded_number_of_bytes() {
    const EVENT_BYTES: usize = 64 * 1024;
    const EVENTS: usize = 1600;
    let (node, persistent) = start().await;
    let payload = Bytes::from(vec![b'x'; EVENT_BYTES]);
    for _ in 0..EVENTS / 10 {
        let events = (0..10).map(|_| event("big", payload.clone())).collect();
        append(&node, "big", events).await;
    }
    let settings = Settings {
        start_from: StartFrom::Start,
        read_batch_size: i32::MAX as u32,
        history_buffer_size: i32::MAX as u32,
        live_buffer_size: i32::MAX as u32,
        ..Settings::default()
    };
    let key = GroupKey::new(Source::All, "greedy");
    persistent
        .create(definition(Source::All, "greedy", settings))
        .await
        .unwrap();

    // Wait for the reader to stop: what it has read stays the same for a while.
    let deadline = Instant::now() + DEADLINE;
    let mut last = None;
    let mut steady_since = Instant::now();
    let info = loop {
        let info = persistent.info(&key).await.unwrap();
        let now = (info.read_buffer_count, info.buffered_bytes);
        if last != Some(now) {
            last = Some(now);
            steady_since = Instant::now();
        } else if steady_since.elapsed() > Duration::from_millis(500) {
            break info;
        }
        assert!(Instant::now() < deadline, "the group never stops reading");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // One page (of at most PAGE_MAX_BYTES and one read step) may pass the bound.
    let bound = BUFFER_MAX_BYTES + PAGE_MAX_BYTES + 32 * (EVENT_BYTES + 1024);
    assert!(
        info.buffered_bytes as usize <= bound,
        "{} bytes buffered, bound {bound}",
        info.buffered_bytes
    );
    assert!(info.buffered_bytes as usize >= BUFFER_MAX_BYTES / 2);
    assert!(
        (info.read_buffer_count as usize) < EVENTS * 2 / 3,
        "read {} of {EVENTS} events",
        info.read_buffer_count
    );
}

/// Parking several messages at once wrote their links from concurrent tasks, so a replay
/// could deliver them out of order (seen: C, B, A): parks are written in the order they
/// were made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_messages_are_replayed_in_the_order_they_were_parked() {
    const MESSAGES: usize = 20;
    let (node, persistent) = start().await;
    let events = (0..MESSAGES)
        .map(|n| event("parked", Bytes::from(n.to_string())))
        .collect();
    append(&node, "to-park", events).await;
    let source = Source::Stream(StreamName::new("to-park").unwrap());
    let settings = Settings {
        start_from: StartFrom::Start,
        ..Settings::default()
    };
    let key = GroupKey::new(source.clone(), "parker");
    persistent
        .create(definition(source, "parker", settings))
        .await
        .unwrap();
    let mut consumer = persistent
        .connect(ConnectRequest {
            key: key.clone(),
            buffer_size: MESSAGES as u32,
            connection_name: String::new(),
            from: String::new(),
            username: String::new(),
        })
        .await
        .unwrap();

    let mut delivered = Vec::new();
    for _ in 0..MESSAGES {
        delivered.push(next(&mut consumer).await);
    }
    let order: Vec<Uuid> = delivered.iter().map(|m| m.ack_id()).collect();
    // Parked one by one (each nack its own command), then all replayed.
    let handle = consumer.handle();
    for id in &order {
        handle.nack(vec![*id], NackAction::Park, "test".into());
    }
    let deadline = Instant::now() + DEADLINE;
    while persistent.info(&key).await.unwrap().parked_message_count < MESSAGES as u64 {
        assert!(Instant::now() < deadline, "the messages are never parked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    persistent.replay_parked(&key, None).await.unwrap();
    let mut replayed = Vec::new();
    for _ in 0..MESSAGES {
        replayed.push(next(&mut consumer).await.ack_id());
    }
    assert_eq!(replayed, order);
}

/// A message was retried the moment its timeout passed, so a short timeout raced the
/// client's batched acknowledgement: timeouts are checked on a coarse timer, as
/// EventStoreDB's (once a second), so consecutive retries of a message that is never
/// acknowledged come a check interval apart, not a message timeout apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_timeouts_are_checked_on_a_coarse_timer() {
    let (node, persistent) = start().await;
    append(
        &node,
        "slow-ack",
        vec![event("e", Bytes::from_static(b"1"))],
    )
    .await;
    let source = Source::Stream(StreamName::new("slow-ack").unwrap());
    let settings = Settings {
        start_from: StartFrom::Start,
        message_timeout_ms: 50,
        max_retry_count: 100,
        ..Settings::default()
    };
    let key = GroupKey::new(source.clone(), "slow");
    persistent
        .create(definition(source, "slow", settings))
        .await
        .unwrap();
    let mut consumer = persistent
        .connect(ConnectRequest {
            key,
            buffer_size: 10,
            connection_name: String::new(),
            from: String::new(),
            username: String::new(),
        })
        .await
        .unwrap();
    let mut at = Vec::new();
    for _ in 0..3 {
        let message = next(&mut consumer).await;
        at.push((Instant::now(), message.retry_count));
    }
    assert_eq!(
        at.iter().map(|(_, retries)| *retries).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    let check = group::TIMEOUT_CHECK_INTERVAL;
    for pair in at.windows(2) {
        let apart = pair[1].0 - pair[0].0;
        assert!(
            apart >= check - Duration::from_millis(100),
            "retried {apart:?} after the last delivery"
        );
    }
}

/// A replay read the whole parked stream into the retry queue at once: it reads a page
/// at a time, the next once the queue is delivered, and still in parking order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_parked_stream_is_replayed_a_page_at_a_time_in_order() {
    use super::storage::REPLAY_PAGE_MESSAGES;
    let messages = REPLAY_PAGE_MESSAGES as usize + 44;
    let (node, persistent) = start().await;
    let events = (0..messages)
        .map(|n| event("parked", Bytes::from(n.to_string())))
        .collect();
    append(&node, "many-parked", events).await;
    let source = Source::Stream(StreamName::new("many-parked").unwrap());
    let settings = Settings {
        start_from: StartFrom::Start,
        ..Settings::default()
    };
    let key = GroupKey::new(source.clone(), "pages");
    persistent
        .create(definition(source, "pages", settings))
        .await
        .unwrap();
    let mut consumer = persistent
        .connect(ConnectRequest {
            key: key.clone(),
            buffer_size: 10,
            connection_name: String::new(),
            from: String::new(),
            username: String::new(),
        })
        .await
        .unwrap();
    let handle = consumer.handle();
    let mut order = Vec::new();
    for _ in 0..messages {
        let id = next(&mut consumer).await.ack_id();
        handle.nack(vec![id], NackAction::Park, "test".into());
        order.push(id);
    }
    let deadline = Instant::now() + DEADLINE;
    while persistent.info(&key).await.unwrap().parked_message_count < messages as u64 {
        assert!(Instant::now() < deadline, "the messages are never parked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    persistent.replay_parked(&key, None).await.unwrap();
    let mut replayed = Vec::new();
    let mut most_waiting = 0;
    while replayed.len() < messages {
        let id = next(&mut consumer).await.ack_id();
        handle.ack(vec![id]);
        replayed.push(id);
        let info = persistent.info(&key).await.unwrap();
        most_waiting = most_waiting.max(info.retry_buffer_count);
    }
    assert_eq!(replayed, order);
    assert!(
        most_waiting <= REPLAY_PAGE_MESSAGES,
        "{most_waiting} messages waited to be replayed at once"
    );
}

/// Settings EventStoreDB refuses (a buffer of zero events) were INVALID_ARGUMENT; its
/// create fails them through its `Fail` result (`PsError::Failed`, which gRPC answers with
/// INTERNAL: `grpc::status` tests that mapping).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_a_group_cannot_run_with_fail_as_eventstoredb_fails_them() {
    let (_node, persistent) = start().await;
    let source = Source::Stream(StreamName::new("s").unwrap());
    let settings = Settings {
        history_buffer_size: 0,
        ..Settings::default()
    };
    let error = persistent
        .create(definition(source, "zero", settings))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, PsError::Failed { stream, group, reason }
            if stream == "s" && group == "zero" && reason.contains("HistoryBufferSize")),
        "{error:?}"
    );
}
