//! The engine against a real in-memory single node (no network): history into live without a
//! gap or a duplicate, filters, links, falling behind the live feed, tombstones, bad starts.

use std::time::Duration;

use bytes::Bytes;
use stele_cluster::{AppendOutcome, Node, LIVE_FEED_BATCHES};
use stele_core::{ContentType, DeleteKind, ExpectedRevision, ProposedEvent, StreamName};
use uuid::Uuid;

use super::*;
use crate::filter::{FilterField, FilterSpec};

/// How long one step may take.
const DEADLINE: Duration = Duration::from_secs(20);

/// What the tests prepare each event into: its stream, revision, and what a link resolved to.
type Seen = (String, u64, Option<String>);

async fn node() -> Node {
    crate::test_node().await
}

fn name(stream: &str) -> StreamName {
    StreamName::new(stream).unwrap()
}

/// Appends; the position of the last event appended.
async fn append(node: &Node, stream: &str, events: Vec<ProposedEvent>) -> u64 {
    let outcome = node
        .append(name(stream), ExpectedRevision::Any, events, true)
        .await
        .expect("the append succeeds");
    match outcome {
        AppendOutcome::Success {
            position: Some(position),
            ..
        } => position.0,
        other => panic!("appended, got {other:?}"),
    }
}

fn events(n: usize) -> Vec<ProposedEvent> {
    (0..n)
        .map(|_| event("E", Bytes::from_static(b"{}")))
        .collect()
}

fn event(event_type: &str, data: Bytes) -> ProposedEvent {
    ProposedEvent {
        id: Uuid::new_v4(),
        event_type: event_type.into(),
        content_type: ContentType::Json,
        custom_metadata: Bytes::new(),
        data,
    }
}

async fn start(
    node: &Node,
    target: Target,
    begin: Begin,
    page_events: usize,
) -> Result<CatchUp<Seen>, CatchUpError> {
    CatchUp::start(
        node.clone(),
        CatchUpRequest {
            target,
            begin,
            resolve_links: true,
            link_targets: None,
            page_events,
            prepare: Arc::new(|event: &RecordedEvent, resolution| {
                let resolved = match resolution {
                    Resolution::AsIs => None,
                    Resolution::Target(target) => Some(target.record.stream.to_string()),
                    Resolution::Unresolved => Some("unresolved".to_owned()),
                };
                (event.record.stream.to_string(), event.revision.0, resolved)
            }),
        },
    )
    .await
}

async fn engine(node: &Node, target: Target, begin: Begin, page_events: usize) -> CatchUp<Seen> {
    start(node, target, begin, page_events)
        .await
        .expect("the engine starts")
}

async fn step(engine: &mut CatchUp<Seen>) -> Result<Step<Seen>, CatchUpError> {
    tokio::time::timeout(DEADLINE, engine.next())
        .await
        .expect("a step in time")
}

/// Pulls until `CaughtUp`; the events given on the way (with their prepared forms).
async fn until_caught_up(engine: &mut CatchUp<Seen>) -> (Vec<Item<Seen>>, Option<u64>, usize) {
    let mut items = Vec::new();
    let mut fell_behind = 0;
    loop {
        match step(engine).await.expect("no error") {
            Step::Events(page) => items.extend(page),
            Step::CaughtUp { last } => return (items, last, fell_behind),
            Step::FellBehind { .. } => fell_behind += 1,
        }
    }
}

/// Pulls events until `n` were given.
async fn live_events(engine: &mut CatchUp<Seen>, n: usize) -> Vec<Item<Seen>> {
    let mut items = Vec::new();
    while items.len() < n {
        match step(engine).await.expect("no error") {
            Step::Events(page) => items.extend(page),
            other => panic!("only events while live, got {other:?}"),
        }
    }
    items
}

fn revisions(items: &[Item<Seen>]) -> Vec<u64> {
    items.iter().map(|item| item.revision).collect()
}

/// A stream subscriber must get every event once, in order, across the hand-over from the
/// log to the live feed, and none of another stream's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_goes_from_history_to_live_without_gap_or_duplicate() {
    let node = node().await;
    append(&node, "s", events(5)).await;
    append(&node, "other", events(3)).await;
    let mut engine = engine(&node, Target::Stream(name("s")), Begin::Start, 2).await;
    let (history, last, _) = until_caught_up(&mut engine).await;
    assert_eq!(revisions(&history), vec![0, 1, 2, 3, 4]);
    assert_eq!(last, Some(4));
    assert!(engine.is_live());

    append(&node, "other", events(2)).await;
    append(&node, "s", events(3)).await;
    let live = live_events(&mut engine, 3).await;
    assert_eq!(revisions(&live), vec![5, 6, 7]);
    assert!(live
        .iter()
        .all(|item| item.prepared.as_ref().unwrap().0 == "s"));
}

/// A live batch bigger than a page must be split: a step never holds more than
/// `page_events` (persistent subscriptions bound their pages by it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_batch_larger_than_a_page_is_given_a_page_at_a_time() {
    let node = node().await;
    let mut engine = engine(&node, Target::All { filter: None }, Begin::End, 2).await;
    let (history, last, _) = until_caught_up(&mut engine).await;
    assert!(history.is_empty(), "from the end: no history");
    assert_eq!(last, None, "a new node's `$all` is empty");
    append(&node, "s", events(5)).await;
    let mut sizes = Vec::new();
    let mut given = Vec::new();
    while given.len() < 5 {
        let Step::Events(page) = step(&mut engine).await.unwrap() else {
            panic!("events")
        };
        sizes.push(page.len());
        given.extend(page);
    }
    assert_eq!(sizes, vec![2, 2, 1]);
    assert_eq!(revisions(&given), vec![0, 1, 2, 3, 4]);
}

/// `$all` through a filter gives every event considered, the refused ones without their
/// prepared form (callers count them for checkpoints), and says where it caught up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_all_gives_refused_events_without_their_prepared_form() {
    let node = node().await;
    append(&node, "keep-1", events(2)).await;
    let last_position = append(&node, "drop-1", events(1)).await;
    let filter = EventFilter::from_spec(FilterSpec {
        on: FilterField::StreamName,
        regex: String::new(),
        prefixes: vec!["keep".to_owned()],
    })
    .unwrap();
    let mut engine = engine(
        &node,
        Target::All {
            filter: Some(Arc::new(filter)),
        },
        Begin::Start,
        1024,
    )
    .await;
    let (history, last, _) = until_caught_up(&mut engine).await;
    let kept: Vec<_> = history
        .iter()
        .filter_map(|item| item.prepared.as_ref().map(|p| p.0.clone()))
        .collect();
    assert_eq!(kept, vec!["keep-1", "keep-1"]);
    assert!(history
        .iter()
        .any(|item| item.prepared.is_none() && item.position == last_position));
    assert_eq!(
        last,
        Some(last_position),
        "caught up at the last considered"
    );
    let positions: Vec<u64> = history.iter().map(|item| item.position).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "in order, once");
}

/// A reader that stops pulling while more batches are published than the live feed holds
/// must be told it fell behind, then get every missed event once, in order, from the log,
/// and catch up again — and then stay live: the batches still queued for it when it went
/// back to the log once made it fall behind again at the very next append.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_falls_behind_reads_the_log_and_catches_up_again() {
    let node = node().await;
    let mut engine = engine(&node, Target::Stream(name("s")), Begin::Start, 1024).await;
    let (history, last, _) = until_caught_up(&mut engine).await;
    assert!(history.is_empty() && last.is_none(), "no stream yet: waits");
    let appends = LIVE_FEED_BATCHES + 50;
    for _ in 0..appends {
        append(&node, "s", events(1)).await;
    }
    let (missed, _, fell_behind) = until_caught_up(&mut engine).await;
    assert_eq!(fell_behind, 1);
    assert_eq!(revisions(&missed), (0..appends as u64).collect::<Vec<_>>());
    append(&node, "s", events(1)).await;
    assert_eq!(
        revisions(&live_events(&mut engine, 1).await),
        vec![appends as u64]
    );
}

/// A stream tombstoned while it is followed ends the engine with stream-deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tombstone_ends_a_stream_reader() {
    let node = node().await;
    append(&node, "s", events(1)).await;
    let mut engine = engine(&node, Target::Stream(name("s")), Begin::Start, 8).await;
    until_caught_up(&mut engine).await;
    node.delete(name("s"), ExpectedRevision::Any, DeleteKind::Hard, true)
        .await
        .unwrap();
    let ended = step(&mut engine).await;
    assert_eq!(
        ended.unwrap_err(),
        CatchUpError::Read(ReadError::StreamDeleted(name("s")))
    );
    // And a reader that starts after the tombstone ends at once.
    let mut late = engine_at(&node, "s").await;
    assert!(matches!(
        step(&mut late).await,
        Err(CatchUpError::Read(ReadError::StreamDeleted(_)))
    ));
}

async fn engine_at(node: &Node, stream: &str) -> CatchUp<Seen> {
    engine(node, Target::Stream(name(stream)), Begin::Start, 8).await
}

/// Links are resolved when asked, in history and live alike; a link to nothing is given as
/// unresolved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_are_resolved_in_history_and_live() {
    let node = node().await;
    append(&node, "target", events(1)).await;
    append(
        &node,
        "links",
        vec![event(
            crate::links::LINK_EVENT_TYPE,
            Bytes::from_static(b"0@target"),
        )],
    )
    .await;
    let mut engine = engine_at(&node, "links").await;
    let (history, _, _) = until_caught_up(&mut engine).await;
    assert_eq!(
        history[0].prepared.as_ref().unwrap().2.as_deref(),
        Some("target")
    );
    append(
        &node,
        "links",
        vec![event(
            crate::links::LINK_EVENT_TYPE,
            Bytes::from_static(b"9@target"),
        )],
    )
    .await;
    let live = live_events(&mut engine, 1).await;
    assert_eq!(
        live[0].prepared.as_ref().unwrap().2.as_deref(),
        Some("unresolved")
    );
}

/// A `$all` position the log never gave out (inside a record) fails, as a read from it does;
/// `After` and `At` start on either side of a real position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_after_or_at_a_position_and_refuses_one_the_log_never_gave_out() {
    let node = node().await;
    let first = append(&node, "a", events(1)).await;
    let second = append(&node, "b", events(1)).await;
    let bad = start(
        &node,
        Target::All { filter: None },
        Begin::After(first + 1),
        8,
    )
    .await;
    assert_eq!(
        bad.err(),
        Some(CatchUpError::Read(ReadError::InvalidPosition))
    );

    let mut after = engine(&node, Target::All { filter: None }, Begin::After(first), 8).await;
    let (items, _, _) = until_caught_up(&mut after).await;
    assert_eq!(items.first().map(|item| item.position), Some(second));

    let mut at = engine(&node, Target::All { filter: None }, Begin::At(first), 8).await;
    let (items, _, _) = until_caught_up(&mut at).await;
    assert_eq!(items.first().map(|item| item.position), Some(first));

    let mut at_stream = engine(&node, Target::Stream(name("a")), Begin::At(1), 8).await;
    let (items, last, _) = until_caught_up(&mut at_stream).await;
    assert!(items.is_empty());
    assert_eq!(last, Some(0));
}

/// `next()` must be cancel-safe: a caller that gives up on a step (a timeout, as the
/// simulation's subscribers use; here a step polled once and dropped) and asks again must still get every event once, in order,
/// through history pages read ahead and live batches alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_abandoned_at_any_await_lose_and_repeat_nothing() {
    let node = node().await;
    for _ in 0..20 {
        append(&node, "s", events(50)).await;
    }
    let mut engine = engine(&node, Target::All { filter: None }, Begin::Start, 16).await;
    let mut positions = Vec::new();
    let mut abandoned = 0;
    let writer = {
        let node = node.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                append(&node, "s", events(25)).await;
            }
        })
    };
    let mut round = 0u64;
    while positions.len() < 1500 {
        round += 1;
        // Every other step is polled once and abandoned if it is not ready (a history page
        // on the blocking pool, a wait for live events); the next call must go on.
        let step = if round.is_multiple_of(2) {
            tokio::select! {
                biased;
                step = engine.next() => Some(step),
                () = std::future::ready(()) => None,
            }
        } else {
            Some(step(&mut engine).await)
        };
        match step {
            None => {
                abandoned += 1;
                tokio::task::yield_now().await;
            }
            Some(Ok(Step::Events(items))) => positions.extend(items.iter().map(|i| i.position)),
            Some(Ok(_)) => {}
            Some(Err(error)) => panic!("{error}"),
        }
    }
    writer.await.unwrap();
    assert!(abandoned > 0, "some steps were abandoned");
    assert_eq!(positions.len(), 1500);
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "in order, once");
}
