//! Finite reads against a real in-memory single node (no network): paging and counts, not
//! found, the stream positions EventStoreDB reports, `$all` filters and bad positions.

use bytes::Bytes;
use stele_cluster::{AppendOutcome, Node};
use stele_core::{ContentType, DeleteKind, ExpectedRevision, ProposedEvent};
use uuid::Uuid;

use super::*;
use crate::filter::{FilterField, FilterSpec};

async fn node() -> Node {
    crate::test_node().await
}

fn name(stream: &str) -> StreamName {
    StreamName::new(stream).unwrap()
}

/// Appends `n` events; the position of the last.
async fn append(node: &Node, stream: &str, n: usize) -> u64 {
    let events = (0..n)
        .map(|_| ProposedEvent {
            id: Uuid::new_v4(),
            event_type: "E".into(),
            content_type: ContentType::Json,
            custom_metadata: Bytes::new(),
            data: Bytes::from_static(b"{}"),
        })
        .collect();
    match node
        .append(name(stream), ExpectedRevision::Any, events, true)
        .await
        .expect("the append succeeds")
    {
        AppendOutcome::Success {
            position: Some(position),
            ..
        } => position.0,
        other => panic!("appended, got {other:?}"),
    }
}

/// What a test sees of a step: events as (stream, revision), or the report.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Events(Vec<(String, u64)>),
    NotFound,
    First(u64),
    Last(u64),
}

async fn read_all_steps(
    node: &Node,
    target: ReadTarget,
    count: u64,
    report_positions: bool,
) -> Result<Vec<Seen>, CatchUpError> {
    let mut read = Read::start(
        node.clone(),
        ReadRequest {
            target,
            count,
            resolve_links: false,
            link_targets: None,
            report_positions,
            prepare: Arc::new(|event: &RecordedEvent, _| {
                (event.record.stream.to_string(), event.revision.0)
            }),
        },
    )
    .await?;
    let mut seen = Vec::new();
    while let Some(steps) = read.next().await? {
        for step in steps {
            seen.push(match step {
                ReadStep::Events(events) => Seen::Events(events),
                ReadStep::StreamNotFound => Seen::NotFound,
                ReadStep::FirstStreamPosition(p) => Seen::First(p),
                ReadStep::LastStreamPosition(p) => Seen::Last(p),
            });
        }
    }
    Ok(seen)
}

fn stream(stream_name: &str, start: StreamStart, direction: Direction) -> ReadTarget {
    ReadTarget::Stream {
        stream: name(stream_name),
        start,
        direction,
    }
}

fn revisions(seen: &[Seen]) -> Vec<u64> {
    seen.iter()
        .flat_map(|s| match s {
            Seen::Events(events) => events.iter().map(|e| e.1).collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// A read longer than a page is paged without a repeat or a gap, stops at its count, and
/// backwards reads go from the end down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_page_through_a_stream_up_to_their_count() {
    let node = node().await;
    append(&node, "s", 1200).await;
    let all = read_all_steps(
        &node,
        stream("s", StreamStart::Start, Direction::Forwards),
        5000,
        false,
    )
    .await
    .unwrap();
    assert_eq!(revisions(&all), (0..1200).collect::<Vec<_>>());
    assert_eq!(all.len(), 3, "pages of {READ_PAGE_EVENTS}");

    let some = read_all_steps(
        &node,
        stream("s", StreamStart::Revision(10), Direction::Forwards),
        3,
        false,
    )
    .await
    .unwrap();
    assert_eq!(revisions(&some), vec![10, 11, 12]);

    let back = read_all_steps(
        &node,
        stream("s", StreamStart::End, Direction::Backwards),
        2,
        false,
    )
    .await
    .unwrap();
    assert_eq!(revisions(&back), vec![1199, 1198]);
}

/// A stream that never existed, or was soft-deleted, answers not-found once; a tombstoned one
/// fails with stream-deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_deleted_streams() {
    let node = node().await;
    let missing = read_all_steps(
        &node,
        stream("nope", StreamStart::Start, Direction::Forwards),
        10,
        true,
    )
    .await
    .unwrap();
    assert_eq!(missing, vec![Seen::NotFound]);

    append(&node, "gone", 2).await;
    node.delete(name("gone"), ExpectedRevision::Any, DeleteKind::Hard, true)
        .await
        .unwrap();
    let gone = read_all_steps(
        &node,
        stream("gone", StreamStart::Start, Direction::Forwards),
        10,
        false,
    )
    .await;
    assert_eq!(
        gone.unwrap_err(),
        CatchUpError::Read(ReadError::StreamDeleted(name("gone")))
    );
}

/// With positions reported (EventStoreDB's compatibility): a completed read says the last
/// revision; a forwards read past the end says where the stream continues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_first_and_last_stream_positions_when_asked() {
    let node = node().await;
    append(&node, "s", 3).await;
    let whole = read_all_steps(
        &node,
        stream("s", StreamStart::Start, Direction::Forwards),
        10,
        true,
    )
    .await
    .unwrap();
    assert_eq!(
        whole,
        vec![
            Seen::Events(vec![("s".into(), 0), ("s".into(), 1), ("s".into(), 2)]),
            Seen::Last(2)
        ]
    );
    let past = read_all_steps(
        &node,
        stream("s", StreamStart::Revision(7), Direction::Forwards),
        10,
        true,
    )
    .await
    .unwrap();
    assert_eq!(past, vec![Seen::First(3), Seen::Last(2)]);
    let unreported = read_all_steps(
        &node,
        stream("s", StreamStart::Revision(7), Direction::Forwards),
        10,
        false,
    )
    .await
    .unwrap();
    assert!(unreported.is_empty());
}

/// A filtered `$all` read counts only what passes; a position the log never gave out fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_all_reads_count_what_passes_and_refuse_bad_positions() {
    let node = node().await;
    append(&node, "drop-1", 5).await;
    let kept = append(&node, "keep-1", 2).await;
    append(&node, "drop-2", 5).await;
    let filter = EventFilter::from_spec(FilterSpec {
        on: FilterField::StreamName,
        regex: String::new(),
        prefixes: vec!["keep".into()],
    })
    .unwrap();
    let target = ReadTarget::All {
        start: AllStart::Start,
        direction: Direction::Forwards,
        filter: Some(Arc::new(filter)),
    };
    let seen = read_all_steps(&node, target, 1, false).await.unwrap();
    assert_eq!(seen, vec![Seen::Events(vec![("keep-1".into(), 0)])]);

    let bad = ReadTarget::All {
        start: AllStart::Position(kept + 1),
        direction: Direction::Forwards,
        filter: None,
    };
    assert_eq!(
        read_all_steps(&node, bad, 10, false).await.unwrap_err(),
        CatchUpError::Read(ReadError::InvalidPosition)
    );
}
