//! In-process tests of a single node: the real log, index and consensus engine, no network.

#![allow(
    clippy::disallowed_methods,
    reason = "tests may use the clock, random ids and threads"
)]

use std::time::Duration;

use bytes::Bytes;
use stele_cluster::{
    AllReadRequest, AllStart, AppendOutcome, DeleteOutcome, Direction, Node, NodeConfig, ReadError,
    StreamReadRequest, StreamReadResult, StreamStart, WriteError,
};
use stele_core::{
    ContentType, DeleteKind, ExpectedRevision, LogPosition, ProposedEvent, StreamName,
    StreamRevision,
};

fn config(dir: Option<&std::path::Path>) -> NodeConfig {
    NodeConfig {
        db_dir: dir.map(|d| d.to_path_buf()),
        ..stele_cluster::fuzzing::single_node_config()
    }
}

async fn start(dir: Option<&std::path::Path>) -> Node {
    // A node stopped in this process releases its index only when openraft's state machine
    // task ends, a moment after `shutdown` returns; a restarted process has no such wait.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let node = loop {
        match Node::start(config(dir)).await {
            Ok(node) => break node,
            Err(e)
                if format!("{e:?}").contains("DatabaseAlreadyOpen")
                    && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("node does not start: {e}"),
        }
    };
    assert!(
        node.wait_ready(Duration::from_secs(10)).await,
        "node becomes ready"
    );
    node
}

fn event(n: u8) -> ProposedEvent {
    ProposedEvent {
        id: uuid::Uuid::new_v4(),
        event_type: format!("type-{n}"),
        content_type: ContentType::Json,
        custom_metadata: Bytes::new(),
        data: Bytes::from(format!("{{\"n\":{n}}}")),
    }
}

fn stream(name: &str) -> StreamName {
    StreamName::new(name).unwrap()
}

fn read(node: &Node, name: &str, start: StreamStart, direction: Direction) -> StreamReadResult {
    node.read_stream(&StreamReadRequest {
        stream: stream(name),
        start,
        direction,
        max_count: u64::MAX,
    })
    .unwrap()
}

fn revisions(result: StreamReadResult) -> Vec<u64> {
    match result {
        StreamReadResult::Events(events) => events.iter().map(|e| e.revision.0).collect(),
        StreamReadResult::NotFound => panic!("stream not found"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn appends_check_expected_revisions_and_reads_see_them() {
    let node = start(None).await;
    let s = stream("orders");
    let first = node
        .append(
            s.clone(),
            ExpectedRevision::NoStream,
            vec![event(0), event(1)],
            false,
        )
        .await
        .unwrap();
    let AppendOutcome::Success {
        current_revision: Some(StreamRevision(1)),
        position: Some(p1),
    } = first
    else {
        panic!("unexpected {first:?}")
    };
    let conflict = node
        .append(s.clone(), ExpectedRevision::NoStream, vec![event(2)], false)
        .await
        .unwrap();
    assert_eq!(
        conflict,
        AppendOutcome::WrongExpectedVersion {
            current: Some(StreamRevision(1)),
            expected: ExpectedRevision::NoStream
        }
    );
    let second = node
        .append(s.clone(), ExpectedRevision::Exact(1), vec![event(2)], false)
        .await
        .unwrap();
    let AppendOutcome::Success {
        position: Some(p2), ..
    } = second
    else {
        panic!("unexpected {second:?}")
    };
    assert!(p2 > p1);
    assert_eq!(
        revisions(read(
            &node,
            "orders",
            StreamStart::Start,
            Direction::Forwards
        )),
        vec![0, 1, 2]
    );
    assert_eq!(
        revisions(read(
            &node,
            "orders",
            StreamStart::End,
            Direction::Backwards
        )),
        vec![2, 1, 0]
    );
    assert!(matches!(
        read(&node, "missing", StreamStart::Start, Direction::Forwards),
        StreamReadResult::NotFound
    ));
    let all = node
        .read_all(
            &AllReadRequest {
                start: AllStart::Start,
                direction: Direction::Forwards,
                max_count: 100,
            },
            &|_| true,
        )
        .unwrap();
    let positions: Vec<LogPosition> = all.iter().map(|e| e.position).collect();
    assert_eq!(positions.len(), 3);
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(positions[2], p2);
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotent_retry_writes_once() {
    let node = start(None).await;
    let s = stream("idem");
    let events = vec![event(0), event(1)];
    let a = node
        .append(s.clone(), ExpectedRevision::NoStream, events.clone(), false)
        .await
        .unwrap();
    let b = node
        .append(s.clone(), ExpectedRevision::NoStream, events, false)
        .await
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(
        revisions(read(&node, "idem", StreamStart::Start, Direction::Forwards)),
        vec![0, 1]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn soft_delete_then_append_continues_and_tombstone_is_final() {
    let node = start(None).await;
    let s = stream("del");
    node.append(
        s.clone(),
        ExpectedRevision::Any,
        vec![event(0), event(1)],
        false,
    )
    .await
    .unwrap();
    let deleted = node
        .delete(
            s.clone(),
            ExpectedRevision::Exact(1),
            DeleteKind::Soft,
            false,
        )
        .await
        .unwrap();
    assert!(matches!(deleted, DeleteOutcome::Deleted { .. }));
    assert!(matches!(
        read(&node, "del", StreamStart::Start, Direction::Forwards),
        StreamReadResult::NotFound
    ));
    node.append(s.clone(), ExpectedRevision::NoStream, vec![event(2)], false)
        .await
        .unwrap();
    assert_eq!(
        revisions(read(&node, "del", StreamStart::Start, Direction::Forwards)),
        vec![2]
    );
    node.delete(s.clone(), ExpectedRevision::Any, DeleteKind::Hard, false)
        .await
        .unwrap();
    assert!(matches!(
        node.append(s.clone(), ExpectedRevision::Any, vec![event(3)], false)
            .await,
        Err(WriteError::StreamDeleted(_))
    ));
    assert!(matches!(
        node.read_stream(&StreamReadRequest {
            stream: s.clone(),
            start: StreamStart::Start,
            direction: Direction::Forwards,
            max_count: 10
        }),
        Err(ReadError::StreamDeleted(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_max_count_and_truncate_before_shape_reads() {
    let node = start(None).await;
    let s = stream("meta");
    node.append(
        s.clone(),
        ExpectedRevision::Any,
        (0..5).map(event).collect(),
        false,
    )
    .await
    .unwrap();
    let metadata = ProposedEvent {
        id: uuid::Uuid::new_v4(),
        event_type: "$metadata".into(),
        content_type: ContentType::Json,
        custom_metadata: Bytes::new(),
        data: Bytes::from_static(br#"{"$maxCount":2}"#),
    };
    node.append(
        s.metadata_stream(),
        ExpectedRevision::Any,
        vec![metadata],
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        revisions(read(&node, "meta", StreamStart::Start, Direction::Forwards)),
        vec![3, 4]
    );
    let metadata = ProposedEvent {
        id: uuid::Uuid::new_v4(),
        event_type: "$metadata".into(),
        content_type: ContentType::Json,
        custom_metadata: Bytes::new(),
        data: Bytes::from_static(br#"{"$tb":1}"#),
    };
    node.append(
        s.metadata_stream(),
        ExpectedRevision::Any,
        vec![metadata],
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        revisions(read(&node, "meta", StreamStart::Start, Direction::Forwards)),
        vec![1, 2, 3, 4]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_keeps_every_acknowledged_event_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged = Vec::new();
    {
        let node = start(Some(dir.path())).await;
        for i in 0..50u8 {
            let outcome = node
                .append(
                    stream(&format!("s-{}", i % 5)),
                    ExpectedRevision::Any,
                    vec![event(i)],
                    false,
                )
                .await
                .unwrap();
            acknowledged.push(outcome);
        }
        node.shutdown().await;
    }
    let node = start(Some(dir.path())).await;
    let all = node
        .read_all(
            &AllReadRequest {
                start: AllStart::Start,
                direction: Direction::Forwards,
                max_count: 1000,
            },
            &|_| true,
        )
        .unwrap();
    assert_eq!(all.len(), 50);
    for (event, ack) in all.iter().zip(&acknowledged) {
        let AppendOutcome::Success {
            position: Some(p), ..
        } = ack
        else {
            panic!("unexpected {ack:?}")
        };
        assert_eq!(event.position, *p);
    }
    // Writes continue after the restart.
    let next = node
        .append(
            stream("s-0"),
            ExpectedRevision::Exact(9),
            vec![event(99)],
            false,
        )
        .await
        .unwrap();
    assert!(matches!(
        next,
        AppendOutcome::Success {
            current_revision: Some(StreamRevision(10)),
            ..
        }
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn too_large_appends_are_refused() {
    let mut c = config(None);
    c.max_append_size_bytes = 100;
    let node = Node::start(c).await.unwrap();
    assert!(node.wait_ready(Duration::from_secs(10)).await);
    let mut big = event(0);
    big.data = Bytes::from(vec![b'x'; 200]);
    assert_eq!(
        node.append(stream("big"), ExpectedRevision::Any, vec![big], false)
            .await,
        Err(WriteError::MaximumAppendSizeExceeded { max_bytes: 100 })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn events_over_the_maximum_event_size_are_refused() {
    let mut c = config(None);
    c.max_append_event_size_bytes = 100;
    let node = Node::start(c).await.unwrap();
    assert!(node.wait_ready(Duration::from_secs(10)).await);
    let mut big = event(0);
    big.data = Bytes::from(vec![b'x'; 200]);
    let id = big.id;
    let size = big.size_bytes() as u32;
    assert_eq!(
        node.append(
            stream("big"),
            ExpectedRevision::Any,
            vec![event(1), big],
            false
        )
        .await,
        Err(WriteError::MaximumAppendEventSizeExceeded {
            event_id: id,
            size_bytes: size,
            max_bytes: 100
        })
    );
}

/// Issue 11, item 5: writes a peer forwarded over the internal port skipped the client API's
/// checks. An append to `$all`, to the empty stream name (the event landed in the stream its
/// record named) and a 20 MB event were all applied, and every `$all` read from the start
/// failed after that. The leader now checks every command as it checks a client's.
#[tokio::test(flavor = "multi_thread")]
async fn forwarded_writes_are_checked_like_client_writes() {
    use stele_core::{Command, EventRecord};
    let node = start(None).await;
    let smuggled = |name: &str| -> StreamName { serde_json::from_value(name.into()).unwrap() };
    let record = |stream: StreamName, data_bytes: usize| EventRecord {
        stream,
        id: uuid::Uuid::new_v4(),
        event_type: "t".into(),
        content_type: ContentType::Binary,
        created_ticks: 0,
        custom_metadata: Bytes::new(),
        data: Bytes::from(vec![0u8; data_bytes]),
    };
    let append = |stream: StreamName, events: Vec<EventRecord>| Command::Append {
        stream,
        expected: ExpectedRevision::Any,
        events,
    };
    let hostile = [
        append(smuggled("$all"), vec![record(smuggled("$all"), 1)]),
        append(smuggled(""), vec![record(stream("victim"), 1)]),
        append(stream("mine"), vec![record(stream("victim"), 1)]),
        append(stream("big"), vec![record(stream("big"), 20 * 1024 * 1024)]),
        append(smuggled(&"n".repeat(5000)), vec![]),
    ];
    for command in hostile {
        let shown = command.to_string();
        let answer = stele_cluster::fuzzing::forward(&node, command).await;
        assert!(answer.is_err(), "{shown} was applied: {answer:?}");
    }
    // Nothing of it reached the log, and the node still serves.
    assert!(
        matches!(
            read(&node, "victim", StreamStart::Start, Direction::Forwards),
            StreamReadResult::NotFound
        ),
        "no event landed in another stream"
    );
    let ok = stele_cluster::fuzzing::forward(
        &node,
        append(stream("fine"), vec![record(stream("fine"), 10)]),
    )
    .await;
    assert!(ok.is_ok(), "{ok:?}");
    let all = node
        .read_all(
            &AllReadRequest {
                start: AllStart::Start,
                direction: Direction::Forwards,
                max_count: u64::MAX,
            },
            &|_| true,
        )
        .expect("reading $all from the start");
    assert!(all
        .iter()
        .all(|e| e.record.stream.as_str() == "fine" || e.record.stream.is_system()));
}
