//! Catch-up subscriptions through the official client (PROTOCOL.md §4): to a stream and to
//! `$all`, from the start, the end, or after a revision or position; confirmation, history,
//! `caught_up`, live events; filters with checkpoints; links; a stream that does not exist
//! yet; tombstones; the hand-over from history to live under concurrent writers; and a
//! subscriber too slow for the live feed.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use kurrentdb::{
    AppendToStreamOptions, Client, EventData, Position, ReadAllOptions, ResolvedEvent,
    StreamPosition, SubscribeToAllOptions, SubscribeToStreamOptions, Subscription,
    SubscriptionEvent, SubscriptionFilter, TombstoneStreamOptions,
};
use uuid::Uuid;

/// How long a test waits for the next message of a subscription.
const WAIT: Duration = Duration::from_secs(20);

async fn next(sub: &mut Subscription) -> SubscriptionEvent {
    tokio::time::timeout(WAIT, sub.next_subscription_event())
        .await
        .expect("a subscription message in time")
        .expect("the subscription goes on")
}

/// What a subscription sent, simplified for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Msg {
    /// stream, revision, position
    Event(String, u64, u64),
    CaughtUp {
        stream_revision: Option<u64>,
        position: Option<u64>,
    },
    Checkpoint(u64),
}

fn simplify(event: SubscriptionEvent) -> Msg {
    match event {
        SubscriptionEvent::EventAppeared(e) => {
            let e = e.get_original_event();
            Msg::Event(e.stream_id().to_owned(), e.revision, e.position.commit)
        }
        SubscriptionEvent::CaughtUp(Some(c)) => Msg::CaughtUp {
            stream_revision: c.stream_revision,
            position: c.position.map(|p| {
                assert_eq!(p.commit, p.prepare);
                p.commit
            }),
        },
        SubscriptionEvent::Checkpoint(p) => {
            assert_eq!(p.commit, p.prepare);
            Msg::Checkpoint(p.commit)
        }
        other => panic!("unexpected subscription message {other:?}"),
    }
}

/// Expects the confirmation, which always comes first.
async fn confirmed(sub: &mut Subscription) {
    match next(sub).await {
        SubscriptionEvent::Confirmed(id) => assert!(!id.is_empty()),
        other => panic!("expected the confirmation first, got {other:?}"),
    }
}

/// Messages up to and including the first `caught_up`.
async fn until_caught_up(sub: &mut Subscription) -> Vec<Msg> {
    let mut msgs = Vec::new();
    loop {
        let msg = simplify(next(sub).await);
        let done = matches!(msg, Msg::CaughtUp { .. });
        msgs.push(msg);
        if done {
            return msgs;
        }
    }
}

/// The next `n` events (checkpoints and further `caught_up`s skipped).
async fn events(sub: &mut Subscription, n: usize) -> Vec<(String, u64, u64)> {
    let mut out = Vec::new();
    while out.len() < n {
        if let Msg::Event(s, r, p) = simplify(next(sub).await) {
            out.push((s, r, p));
        }
    }
    out
}

fn only_events(msgs: &[Msg]) -> Vec<(String, u64, u64)> {
    msgs.iter()
        .filter_map(|m| match m {
            Msg::Event(s, r, p) => Some((s.clone(), *r, *p)),
            _ => None,
        })
        .collect()
}

/// Appends one event of `event_type` to `stream`; returns its position.
async fn append(client: &Client, stream: &str, event_type: &str, n: u64) -> u64 {
    client
        .append_to_stream(
            stream,
            &AppendToStreamOptions::default(),
            json_event(event_type, n),
        )
        .await
        .expect("appending")
        .position
        .commit
}

/// Appends `count` events to `stream`, one append each; returns their positions.
async fn seed(client: &Client, stream: &str, count: u64) -> Vec<u64> {
    let mut positions = Vec::new();
    for n in 0..count {
        positions.push(append(client, stream, "counted", n).await);
    }
    positions
}

/// Appends events with the given ids and data to `stream` through raw gRPC, expecting any
/// revision. (The official Rust client does not set TCP_NODELAY, so each of its appends
/// waits out a delayed ACK on Linux; bulk writers here use tonic's channel instead.)
async fn raw_append(channel: &tonic::transport::Channel, stream: &str, events: &[(Uuid, Bytes)]) {
    use stele_proto::streams::append_req::options::ExpectedStreamRevision;
    let mut messages = vec![wire::append_options(
        stream,
        ExpectedStreamRevision::Any(wire::empty()),
    )];
    for (id, data) in events {
        messages.push(wire::append_event(
            wire::uuid_string(*id),
            "bulk",
            data.clone(),
        ));
    }
    wire::append(channel, messages).await.expect("appending");
}

/// `(stream, revision, position)` of every user event in `$all`, read to its end.
async fn all_user_events(client: &Client) -> Vec<(String, u64, u64)> {
    user_events(
        read_all(client, &ReadAllOptions::default().forwards())
            .await
            .expect("reading $all"),
    )
    .into_iter()
    .map(|e| (e.stream_id().to_owned(), e.revision, e.position.commit))
    .collect()
}

fn stream_events(
    stream: &str,
    revisions: std::ops::Range<u64>,
    positions: &[u64],
) -> Vec<(String, u64, u64)> {
    revisions
        .map(|r| (stream.to_owned(), r, positions[r as usize]))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_subscription_from_the_start_sends_history_then_caught_up_then_live_events() {
    let (_node, client) = start_in_memory().await;
    let mut positions = seed(&client, "orders", 5).await;
    seed(&client, "other", 2).await;

    let mut sub = client
        .subscribe_to_stream(
            "orders",
            &SubscribeToStreamOptions::default().start_from(StreamPosition::Start),
        )
        .await;
    confirmed(&mut sub).await;
    let msgs = until_caught_up(&mut sub).await;
    assert_eq!(
        only_events(&msgs),
        stream_events("orders", 0..5, &positions)
    );
    assert_eq!(
        msgs.last(),
        Some(&Msg::CaughtUp {
            stream_revision: Some(4),
            position: None
        })
    );

    for n in 5..8 {
        positions.push(append(&client, "orders", "counted", n).await);
        append(&client, "other", "counted", n).await;
    }
    assert_eq!(
        events(&mut sub, 3).await,
        stream_events("orders", 5..8, &positions)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_subscription_after_a_revision_starts_after_it_and_one_from_the_end_sends_only_new_events(
) {
    let (_node, client) = start_in_memory().await;
    let mut positions = seed(&client, "s", 5).await;

    let mut after = client
        .subscribe_to_stream(
            "s",
            &SubscribeToStreamOptions::default().start_from(StreamPosition::Position(2)),
        )
        .await;
    confirmed(&mut after).await;
    let msgs = until_caught_up(&mut after).await;
    assert_eq!(only_events(&msgs), stream_events("s", 3..5, &positions));

    let mut end = client
        .subscribe_to_stream(
            "s",
            &SubscribeToStreamOptions::default().start_from(StreamPosition::End),
        )
        .await;
    confirmed(&mut end).await;
    assert_eq!(
        until_caught_up(&mut end).await,
        vec![Msg::CaughtUp {
            stream_revision: Some(4),
            position: None
        }]
    );

    for n in 5..7 {
        positions.push(append(&client, "s", "counted", n).await);
    }
    assert_eq!(
        events(&mut end, 2).await,
        stream_events("s", 5..7, &positions)
    );
    assert_eq!(
        events(&mut after, 2).await,
        stream_events("s", 5..7, &positions)
    );

    // Resuming after the last event seen gives exactly the rest.
    let mut resumed = client
        .subscribe_to_stream(
            "s",
            &SubscribeToStreamOptions::default().start_from(StreamPosition::Position(5)),
        )
        .await;
    confirmed(&mut resumed).await;
    let msgs = until_caught_up(&mut resumed).await;
    assert_eq!(only_events(&msgs), stream_events("s", 6..7, &positions));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subscription_to_a_stream_that_does_not_exist_waits_for_its_first_event() {
    let (_node, client) = start_in_memory().await;
    seed(&client, "unrelated", 3).await;
    let mut sub = client
        .subscribe_to_stream(
            "not-yet",
            &SubscribeToStreamOptions::default().start_from(StreamPosition::Start),
        )
        .await;
    confirmed(&mut sub).await;
    assert_eq!(
        until_caught_up(&mut sub).await,
        vec![Msg::CaughtUp {
            stream_revision: None,
            position: None
        }]
    );
    let position = append(&client, "not-yet", "first", 0).await;
    assert_eq!(
        events(&mut sub, 1).await,
        vec![("not-yet".to_owned(), 0, position)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tombstoned_stream_ends_its_subscriptions_with_stream_deleted() {
    let (_node, client) = start_in_memory().await;
    seed(&client, "doomed", 2).await;
    let mut live = client
        .subscribe_to_stream(
            "doomed",
            &SubscribeToStreamOptions::default().start_from(StreamPosition::Start),
        )
        .await;
    confirmed(&mut live).await;
    until_caught_up(&mut live).await;

    client
        .tombstone_stream("doomed", &TombstoneStreamOptions::default())
        .await
        .expect("tombstoning");
    let error = tokio::time::timeout(WAIT, live.next_subscription_event())
        .await
        .expect("an answer in time")
        .expect_err("the subscription ends");
    assert!(
        matches!(error, kurrentdb::Error::ResourceDeleted),
        "{error:?}"
    );

    let mut later = client
        .subscribe_to_stream(
            "doomed",
            &SubscribeToStreamOptions::default().start_from(StreamPosition::Start),
        )
        .await;
    let error = tokio::time::timeout(WAIT, async {
        loop {
            match later.next_subscription_event().await {
                Ok(SubscriptionEvent::Confirmed(_)) => continue,
                Ok(other) => panic!("expected the subscription to fail, got {other:?}"),
                Err(e) => return e,
            }
        }
    })
    .await
    .expect("an answer in time");
    assert!(
        matches!(error, kurrentdb::Error::ResourceDeleted),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_subscription_honours_max_count_and_follows_a_soft_deleted_stream() {
    let (_node, client) = start_in_memory().await;
    let mut positions = seed(&client, "capped", 5).await;
    client
        .set_stream_metadata(
            "capped",
            &AppendToStreamOptions::default(),
            &kurrentdb::StreamMetadata::builder().max_count(2).build(),
        )
        .await
        .expect("setting metadata");
    let mut sub = client
        .subscribe_to_stream(
            "capped",
            &SubscribeToStreamOptions::default().start_from(StreamPosition::Start),
        )
        .await;
    confirmed(&mut sub).await;
    let msgs = until_caught_up(&mut sub).await;
    assert_eq!(
        only_events(&msgs),
        stream_events("capped", 3..5, &positions)
    );
    positions.push(append(&client, "capped", "counted", 5).await);
    assert_eq!(
        events(&mut sub, 1).await,
        stream_events("capped", 5..6, &positions)
    );

    // A soft-deleted stream is waited for, and continues at the next revision.
    client
        .delete_stream("capped", &kurrentdb::DeleteStreamOptions::default())
        .await
        .expect("deleting");
    let mut after_delete = client
        .subscribe_to_stream(
            "capped",
            &SubscribeToStreamOptions::default().start_from(StreamPosition::Start),
        )
        .await;
    confirmed(&mut after_delete).await;
    assert!(only_events(&until_caught_up(&mut after_delete).await).is_empty());
    positions.push(append(&client, "capped", "counted", 6).await);
    let expected = stream_events("capped", 6..7, &positions);
    assert_eq!(events(&mut after_delete, 1).await, expected);
    assert_eq!(events(&mut sub, 1).await, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn all_subscriptions_from_the_start_a_position_and_the_end() {
    let (_node, client) = start_in_memory().await;
    let a = seed(&client, "a", 3).await;
    let b = seed(&client, "b", 3).await;
    let history = all_user_events(&client).await;
    assert_eq!(history.len(), 6);

    let mut start = client
        .subscribe_to_all(&SubscribeToAllOptions::default())
        .await;
    confirmed(&mut start).await;
    let msgs = until_caught_up(&mut start).await;
    let got = only_events(&msgs);
    assert_eq!(
        got.iter()
            .filter(|(s, _, _)| !s.starts_with('$'))
            .cloned()
            .collect::<Vec<_>>(),
        history
    );
    let last = *b.last().unwrap();
    assert_eq!(
        msgs.last(),
        Some(&Msg::CaughtUp {
            stream_revision: None,
            position: Some(last)
        })
    );

    let mut after = client
        .subscribe_to_all(
            &SubscribeToAllOptions::default().position(StreamPosition::Position(Position {
                commit: a[2],
                prepare: a[2],
            })),
        )
        .await;
    confirmed(&mut after).await;
    let msgs = until_caught_up(&mut after).await;
    assert_eq!(only_events(&msgs), stream_events("b", 0..3, &b));

    let mut end = client
        .subscribe_to_all(&SubscribeToAllOptions::default().position(StreamPosition::End))
        .await;
    confirmed(&mut end).await;
    assert_eq!(
        until_caught_up(&mut end).await,
        vec![Msg::CaughtUp {
            stream_revision: None,
            position: Some(last)
        }]
    );

    let c = vec![append(&client, "c", "counted", 0).await];
    let expected = stream_events("c", 0..1, &c);
    assert_eq!(events(&mut end, 1).await, expected);
    assert_eq!(events(&mut after, 1).await, expected);
    let mut from_start = events(&mut start, 1).await;
    from_start.retain(|(s, _, _)| !s.starts_with('$'));
    assert_eq!(from_start, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_all_subscription_at_a_position_the_log_never_gave_fails() {
    let (_node, client) = start_in_memory().await;
    let positions = seed(&client, "a", 3).await;
    let bad = positions[1] + 1;
    let mut sub = client
        .subscribe_to_all(
            &SubscribeToAllOptions::default().position(StreamPosition::Position(Position {
                commit: bad,
                prepare: bad,
            })),
        )
        .await;
    let error = tokio::time::timeout(WAIT, sub.next_subscription_event())
        .await
        .expect("an answer in time")
        .expect_err("an invalid position fails the subscription");
    assert!(
        matches!(
            &error,
            kurrentdb::Error::Grpc { code, .. } if *code == tonic::Code::InvalidArgument
        ),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn filtered_all_subscriptions_send_matching_events_and_checkpoints_at_resumable_positions() {
    let (_node, client) = start_in_memory().await;
    // 30 events: every third in an `orders-` stream, the others in `noise-`.
    let mut all = Vec::new();
    for n in 0..30u64 {
        let (stream, event_type) = if n % 3 == 0 {
            (format!("orders-{n}"), "OrderPlaced")
        } else {
            (format!("noise-{n}"), "$system-like")
        };
        all.push((
            stream.clone(),
            append(&client, &stream, event_type, n).await,
        ));
    }
    let orders: Vec<(String, u64, u64)> = all
        .iter()
        .filter(|(s, _)| s.starts_with("orders-"))
        .map(|(s, p)| (s.clone(), 0, *p))
        .collect();

    // By stream-name prefix, window 4 × multiplier 1 (the Rust client's): a checkpoint every
    // four events considered.
    let mut by_prefix = client
        .subscribe_to_all(
            &SubscribeToAllOptions::default().filter(
                SubscriptionFilter::on_stream_name()
                    .add_prefix("orders-")
                    .max(4),
            ),
        )
        .await;
    confirmed(&mut by_prefix).await;
    let msgs = until_caught_up(&mut by_prefix).await;
    assert_eq!(only_events(&msgs), orders);
    let checkpoints: Vec<u64> = msgs
        .iter()
        .filter_map(|m| match m {
            Msg::Checkpoint(p) => Some(*p),
            _ => None,
        })
        .collect();
    let every_position: Vec<u64> = all.iter().map(|(_, p)| *p).collect();
    // 30 events considered in $all (user events only here), one every 4 → 7, plus the one
    // on going live at the last event.
    assert!(
        checkpoints.len() >= 7,
        "checkpoints every 4 events considered: {checkpoints:?}"
    );
    assert!(
        checkpoints.windows(2).all(|w| w[0] < w[1]),
        "{checkpoints:?}"
    );
    assert_eq!(checkpoints.last(), every_position.last());
    for p in &checkpoints {
        assert!(
            every_position.contains(p),
            "a checkpoint is an event's position, to resume from: {p}"
        );
    }
    // The checkpoint before caught_up, at the end.
    assert!(matches!(
        &msgs[msgs.len() - 2..],
        [Msg::Checkpoint(_), Msg::CaughtUp { .. }]
    ));

    // Resuming at a checkpoint gives the matching events after it.
    let resume_at = checkpoints[2];
    let mut resumed = client
        .subscribe_to_all(
            &SubscribeToAllOptions::default()
                .position(StreamPosition::Position(Position {
                    commit: resume_at,
                    prepare: resume_at,
                }))
                .filter(SubscriptionFilter::on_stream_name().add_prefix("orders-")),
        )
        .await;
    confirmed(&mut resumed).await;
    let msgs = until_caught_up(&mut resumed).await;
    let expected: Vec<_> = orders
        .iter()
        .filter(|(_, _, p)| *p > resume_at)
        .cloned()
        .collect();
    assert_eq!(only_events(&msgs), expected);

    // By event type with a negative lookahead (the Python client's default exclusion).
    let mut by_regex = client
        .subscribe_to_all(&SubscribeToAllOptions::default().filter(
            SubscriptionFilter::on_event_type().regex(r"^(?!(\$.+$|PersistentConfig\d+$))"),
        ))
        .await;
    confirmed(&mut by_regex).await;
    let msgs = until_caught_up(&mut by_regex).await;
    assert_eq!(only_events(&msgs), orders);

    // Live events pass the same filters; checkpoints keep coming while only noise arrives.
    let live_order = append(&client, "orders-live", "OrderPlaced", 99).await;
    for n in 0..8 {
        append(&client, &format!("noise-live-{n}"), "$system-like", n).await;
    }
    let live_order2 = append(&client, "orders-live", "OrderPlaced", 100).await;
    let mut live_msgs = Vec::new();
    while !matches!(live_msgs.last(), Some(Msg::Event(_, 1, _))) {
        live_msgs.push(simplify(next(&mut by_prefix).await));
    }
    assert_eq!(
        only_events(&live_msgs),
        vec![
            ("orders-live".to_owned(), 0, live_order),
            ("orders-live".to_owned(), 1, live_order2)
        ]
    );
    assert!(
        live_msgs
            .iter()
            .filter(|m| matches!(m, Msg::Checkpoint(_)))
            .count()
            >= 2,
        "live checkpoints every 4 events considered: {live_msgs:?}"
    );
    assert_eq!(
        events(&mut by_regex, 2).await,
        vec![
            ("orders-live".to_owned(), 0, live_order),
            ("orders-live".to_owned(), 1, live_order2)
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn links_are_resolved_when_asked() {
    let (_node, client) = start_in_memory().await;
    let target = seed(&client, "target-1", 2).await;
    let link = |data: &str| EventData::binary("$>", Bytes::from(data.to_owned()));
    let links = vec![
        link("1@target-1"),
        link("0@missing-stream"),
        link("0@target-1"),
    ];
    client
        .append_to_stream("links", &AppendToStreamOptions::default(), links)
        .await
        .expect("appending links");

    let mut resolving = client
        .subscribe_to_stream(
            "links",
            &SubscribeToStreamOptions::default()
                .start_from(StreamPosition::Start)
                .resolve_link_tos(),
        )
        .await;
    confirmed(&mut resolving).await;
    let mut got: Vec<ResolvedEvent> = Vec::new();
    while got.len() < 3 {
        if let SubscriptionEvent::EventAppeared(e) = next(&mut resolving).await {
            got.push(e);
        }
    }
    let first = got[0].event.as_ref().expect("resolved");
    assert_eq!((first.stream_id(), first.revision), ("target-1", 1));
    assert_eq!(first.position.commit, target[1]);
    assert_eq!(got[0].link.as_ref().expect("the link").revision, 0);
    assert!(got[1].event.is_none(), "an unresolvable link has no event");
    assert_eq!(got[1].link.as_ref().expect("the link").revision, 1);
    assert_eq!(got[2].event.as_ref().unwrap().revision, 0);

    // Live links too; and without resolve_links, links come as they are.
    client
        .append_to_stream(
            "links",
            &AppendToStreamOptions::default(),
            link("0@target-1"),
        )
        .await
        .expect("appending a link");
    loop {
        if let SubscriptionEvent::EventAppeared(e) = next(&mut resolving).await {
            assert_eq!(e.link.as_ref().unwrap().revision, 3);
            assert_eq!(e.event.as_ref().unwrap().stream_id(), "target-1");
            break;
        }
    }
    // Finite reads resolve links the same way.
    let mut read = client
        .read_stream(
            "links",
            &kurrentdb::ReadStreamOptions::default().resolve_link_tos(),
        )
        .await
        .expect("reading links");
    let mut resolved = Vec::new();
    while let Some(e) = read.next().await.expect("a read event") {
        resolved.push((
            e.event
                .as_ref()
                .map(|t| (t.stream_id().to_owned(), t.revision)),
            e.link.as_ref().map(|l| l.revision),
            e.commit_position == e.link.as_ref().map(|l| l.position.commit),
        ));
    }
    assert_eq!(resolved.len(), 4);
    assert_eq!(resolved[0].0, Some(("target-1".to_owned(), 1)));
    assert_eq!(resolved[1].0, None);
    assert_eq!(
        resolved.iter().map(|r| r.1).collect::<Vec<_>>(),
        vec![Some(0), Some(1), Some(2), Some(3)]
    );
    assert!(
        resolved.iter().all(|r| r.2),
        "the position of a resolved event is the link's"
    );

    let mut plain = client
        .subscribe_to_stream(
            "links",
            &SubscribeToStreamOptions::default().start_from(StreamPosition::Start),
        )
        .await;
    confirmed(&mut plain).await;
    if let SubscriptionEvent::EventAppeared(e) = next(&mut plain).await {
        assert!(e.link.is_none());
        assert_eq!(e.event.unwrap().event_type, "$>");
    } else {
        panic!("expected an event");
    }
}

/// Four writers append while a `$all` subscription from the start moves from history to
/// live; afterwards what it delivered equals a read of `$all`: no gap, no duplicate, same
/// order.
#[tokio::test(flavor = "multi_thread")]
async fn the_hand_over_from_history_to_live_has_no_gap_and_no_duplicate() {
    let (node, client) = start_in_memory().await;
    // History to catch up with first, then writers while the subscription runs.
    const SEEDED: u64 = 2_000;
    const PER_WRITER: u64 = 1_000;
    let channel = wire::channel(&node).await;
    let data = Bytes::from_static(b"{}");
    for w in 0..4 {
        let events: Vec<(Uuid, Bytes)> = (0..SEEDED)
            .map(|_| (Uuid::new_v4(), data.clone()))
            .collect();
        for chunk in events.chunks(100) {
            raw_append(&channel, &format!("writer-{w}"), chunk).await;
        }
    }
    let mut writers = Vec::new();
    for w in 0..4 {
        // Each writer on its own connection.
        let channel = wire::channel(&node).await;
        let data = data.clone();
        writers.push(tokio::spawn(async move {
            let stream = format!("writer-{w}");
            for n in 0..PER_WRITER {
                // One to three events per append, so entries and batches differ.
                let events: Vec<(Uuid, Bytes)> = (0..=(n % 3))
                    .map(|_| (Uuid::new_v4(), data.clone()))
                    .collect();
                raw_append(&channel, &stream, &events).await;
            }
        }));
    }
    // Subscribe while the writers are at it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut sub = client
        .subscribe_to_all(&SubscribeToAllOptions::default())
        .await;
    confirmed(&mut sub).await;
    let per_writer_events: u64 = (0..PER_WRITER).map(|n| n % 3 + 1).sum();
    let total = (4 * (SEEDED + per_writer_events)) as usize;
    // The client's `next_subscription_event` must not be cancelled (it would resubscribe):
    // a task pumps the subscription into a channel.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let pump = tokio::spawn(async move {
        loop {
            let msg = simplify(
                sub.next_subscription_event()
                    .await
                    .expect("subscription goes on"),
            );
            if tx.send(msg).is_err() {
                return;
            }
        }
    });
    let mut delivered: Vec<(String, u64, u64)> = Vec::new();
    let mut caught_up = 0;
    let mut first_caught_up = None;
    let collect = async {
        // Until every writer is done and every event came, then a little longer (to catch
        // duplicates).
        let mut quiet_after = None;
        loop {
            let msg = tokio::select! {
                m = rx.recv() => Some(m.expect("the subscription goes on")),
                _ = tokio::time::sleep(Duration::from_millis(100)) => None,
            };
            match msg {
                Some(Msg::Event(s, r, p)) if !s.starts_with('$') => delivered.push((s, r, p)),
                Some(Msg::CaughtUp { .. }) => {
                    caught_up += 1;
                    first_caught_up.get_or_insert(delivered.len());
                }
                _ => {}
            }
            let done = delivered.len() >= total && writers.iter().all(|w| w.is_finished());
            match quiet_after {
                None if done => {
                    quiet_after = Some(tokio::time::Instant::now() + Duration::from_millis(300))
                }
                Some(at) if tokio::time::Instant::now() >= at => break,
                _ => {}
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(180), collect)
        .await
        .is_err()
    {
        panic!(
            "the subscription delivered {} of {total} events in time",
            delivered.len()
        );
    }
    pump.abort();
    for w in writers {
        w.await.expect("writer");
    }
    assert!(caught_up >= 1, "caught_up was sent");
    let live_from = first_caught_up.expect("caught up");
    assert!(
        live_from < total,
        "the subscription went live while the writers were at it (caught up after \
         {live_from} of {total} events)"
    );
    let expected = all_user_events(&client).await;
    assert_eq!(expected.len(), total);
    if delivered != expected {
        let first_difference = delivered
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(delivered.len().min(expected.len()));
        panic!(
            "delivered {} events, $all has {}; first difference at {first_difference}: \
             delivered {:?}, expected {:?}",
            delivered.len(),
            expected.len(),
            delivered.get(first_difference),
            expected.get(first_difference)
        );
    }
}

/// A subscriber that does not read while many events are appended falls behind the live
/// feed; it then catches up from the log and still receives every event, in order.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_subscriber_falls_back_to_the_log_and_misses_nothing() {
    let node = stele_testkit::TestNode::start(in_memory().arg("--log-level").arg("Debug")).await;
    let client = common::client(&node);
    let mut sub = client
        .subscribe_to_all(&SubscribeToAllOptions::default().position(StreamPosition::End))
        .await;
    confirmed(&mut sub).await;
    assert!(matches!(
        until_caught_up(&mut sub).await.as_slice(),
        [Msg::CaughtUp { .. }]
    ));
    // Another subscriber that keeps up, to show the slow one holds nobody back.
    let mut brisk = client
        .subscribe_to_stream(
            "slow-0",
            &SubscribeToStreamOptions::default().start_from(StreamPosition::Start),
        )
        .await;
    confirmed(&mut brisk).await;
    until_caught_up(&mut brisk).await;

    // 12,000 events of 1 KiB in 1,500 appends (more batches than the live feed holds), while
    // `sub` is not read.
    const APPENDS: u64 = 1_500;
    const PER_APPEND: u64 = 8;
    let channel = wire::channel(&node).await;
    let payload = Bytes::from(vec![b'x'; 1024]);
    let mut ids = Vec::new();
    let mut brisk_seen = 0;
    for n in 0..APPENDS {
        let batch: Vec<(Uuid, Bytes)> = (0..PER_APPEND)
            .map(|_| (Uuid::new_v4(), payload.clone()))
            .collect();
        ids.extend(batch.iter().map(|(id, _)| *id));
        raw_append(&channel, &format!("slow-{}", n % 4), &batch).await;
        // The brisk subscriber reads as it goes.
        if n % 4 == 0 {
            brisk_seen += events(&mut brisk, PER_APPEND as usize).await.len();
        }
    }
    assert_eq!(brisk_seen as u64, APPENDS / 4 * PER_APPEND);

    let mut got = Vec::new();
    while got.len() < ids.len() {
        if let SubscriptionEvent::EventAppeared(e) = next(&mut sub).await {
            let e = e.get_original_event();
            if !e.stream_id().starts_with('$') {
                got.push(e.id);
            }
        }
    }
    assert_eq!(got.len(), ids.len());
    assert!(got == ids, "every event once, in append order");
    let log = std::fs::read_to_string(node.log_path()).expect("reading the node log");
    assert!(
        log.contains("fell behind the live feed"),
        "the subscriber was slower than the live feed holds (the fallback was exercised)"
    );
}

/// Subscriptions are served by followers and read-only replicas too (every node applies the
/// log and feeds its own subscribers), and go on across a leader failover; a client that
/// resumes on another node from the last position it saw gets exactly the rest (positions
/// are the same on every node).
#[tokio::test(flavor = "multi_thread")]
async fn followers_and_replicas_serve_subscriptions_across_a_leader_failover() {
    use stele_testkit::{ClusterOptions, TestCluster};
    const ELECTION: Duration = Duration::from_secs(30);

    let mut cluster = TestCluster::start(ClusterOptions::new(STELE).read_only_replicas(1)).await;
    let replica = 3;
    cluster
        .wait_for_state(replica, "ReadOnlyReplica", ELECTION)
        .await;
    let leader = cluster.wait_for_leader(&[], ELECTION).await;
    let follower = cluster.voters().find(|&k| k != leader).expect("a follower");
    let connection = cluster.connection_string();
    let append_one = |n: u64| {
        let connection = connection.clone();
        async move {
            // A fresh client for each attempt (kurrentdb 1.2 stays on a node that failed), the
            // same event id (a retry of an append that did happen is idempotent).
            let id = Uuid::new_v4();
            let deadline = tokio::time::Instant::now() + ELECTION;
            loop {
                let writer = stele_testkit::client::connect(&connection).expect("a client");
                let options = AppendToStreamOptions::default().deadline(Duration::from_secs(5));
                match writer
                    .append_to_stream("replicated", &options, json_event_with_id("counted", n, id))
                    .await
                {
                    Ok(result) => return result.position.commit,
                    Err(e) if tokio::time::Instant::now() < deadline => {
                        eprintln!("append {n} failed ({e}); retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => panic!("append {n}: {e}"),
                }
            }
        }
    };
    let mut positions = Vec::new();
    for n in 0..3 {
        positions.push(append_one(n).await);
    }

    let filter = || SubscriptionFilter::on_stream_name().add_prefix("replicated");
    let mut subs = Vec::new();
    for k in [follower, replica] {
        let client =
            stele_testkit::client::connect(&cluster.node_connection_string(k)).expect("a client");
        let mut sub = client
            .subscribe_to_all(&SubscribeToAllOptions::default().filter(filter()))
            .await;
        confirmed(&mut sub).await;
        subs.push((k, client, sub));
    }
    let expected = |positions: &[u64]| -> Vec<(String, u64, u64)> {
        positions
            .iter()
            .enumerate()
            .map(|(r, p)| ("replicated".to_owned(), r as u64, *p))
            .collect()
    };
    for (k, _, sub) in &mut subs {
        let got = events(sub, 3).await;
        assert_eq!(got, expected(&positions), "history on node {k}");
    }

    // The leader goes; the subscriptions on the others go on.
    cluster.kill(leader);
    let new_leader = cluster.wait_for_leader(&[leader], ELECTION).await;
    assert_ne!(new_leader, leader);
    for n in 3..6 {
        positions.push(append_one(n).await);
    }
    for (k, _, sub) in &mut subs {
        let got = events(sub, 3).await;
        assert_eq!(got, expected(&positions)[3..].to_vec(), "live on node {k}");
    }

    // Resuming on another node after the last position seen elsewhere: exactly the rest.
    let other = cluster
        .voters()
        .find(|&k| k != leader && k != follower)
        .expect("the third voter");
    let client =
        stele_testkit::client::connect(&cluster.node_connection_string(other)).expect("a client");
    let at = positions[4];
    let mut resumed = client
        .subscribe_to_all(
            &SubscribeToAllOptions::default()
                .position(StreamPosition::Position(Position {
                    commit: at,
                    prepare: at,
                }))
                .filter(filter()),
        )
        .await;
    confirmed(&mut resumed).await;
    assert_eq!(
        events(&mut resumed, 1).await,
        expected(&positions)[5..].to_vec()
    );
}

/// Figures, not a check: catch-up throughput over `$all` from the start and live delivery
/// lag under 32 writers, against the release binary on disk. Run with
/// `cargo build --release -p stele-server && cargo test -p stele-server --test subscriptions
/// -- --ignored --nocapture figures`; `FIGURES_EVENTS` sets the history size (default
/// 1,000,000).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement: run by hand with the release binary"]
async fn figures_catch_up_throughput_and_live_lag() {
    let (node, events) = common::figures_node(1_000_000).await;
    let client = common::client(&node);

    // History: `events` events of ~100 bytes in appends of 1,000 from four connections.
    let started = std::time::Instant::now();
    let data = Bytes::from(vec![b'x'; 100]);
    let mut loaders = Vec::new();
    for w in 0..4u64 {
        let channel = wire::channel(&node).await;
        let data = data.clone();
        loaders.push(tokio::spawn(async move {
            let mut n = w * 1000;
            while n < events {
                let batch: Vec<(Uuid, Bytes)> =
                    (0..1000).map(|_| (Uuid::new_v4(), data.clone())).collect();
                raw_append(&channel, &format!("history-{}", n / 1000 % 64), &batch).await;
                n += 4000;
            }
        }));
    }
    for loader in loaders {
        loader.await.expect("loader");
    }
    eprintln!("loaded {events} events in {:?}", started.elapsed());

    // Catch-up through raw gRPC: the client does not decode, it only looks at each
    // message's first byte (the `content` field's tag: 0x0a an event, 0x42 caught_up), so the
    // figure is the server's.
    let channel = wire::channel(&node).await;
    let mut req = wire::read_stream_req("x", true);
    {
        use stele_proto::streams::read_req::options::{self, all_options::AllOption};
        let o = req.options.as_mut().unwrap();
        o.stream_option = Some(options::StreamOption::All(options::AllOptions {
            all_option: Some(AllOption::Start(wire::empty())),
        }));
        o.count_option = Some(options::CountOption::Subscription(
            options::SubscriptionOptions {},
        ));
    }
    for _ in 0..2 {
        let started = std::time::Instant::now();
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.expect("ready");
        let mut stream = grpc
            .server_streaming(
                tonic::Request::new(Bytes::from(prost::Message::encode_to_vec(&req))),
                tonic::codegen::http::uri::PathAndQuery::from_static(
                    "/event_store.client.streams.Streams/Read",
                ),
                wire::RawCodec,
            )
            .await
            .expect("subscribing")
            .into_inner();
        let mut received = 0u64;
        while let Some(message) = stream.message().await.expect("a message") {
            match message.first() {
                Some(0x0a) => received += 1,
                Some(0x42) => break,
                _ => {}
            }
        }
        let elapsed = started.elapsed();
        eprintln!(
            "catch-up (raw gRPC client, no decoding): {received} events in {elapsed:?}: {:.0} events/s",
            received as f64 / elapsed.as_secs_f64()
        );
    }

    // Catch-up through the official client.
    let started = std::time::Instant::now();
    let mut sub = client
        .subscribe_to_all(&SubscribeToAllOptions::default())
        .await;
    let mut received = 0u64;
    loop {
        match sub.next_subscription_event().await.expect("subscription") {
            SubscriptionEvent::EventAppeared(_) => received += 1,
            SubscriptionEvent::CaughtUp(_) => break,
            _ => {}
        }
    }
    let elapsed = started.elapsed();
    eprintln!(
        "catch-up (kurrentdb client): {received} events in {elapsed:?}: {:.0} events/s",
        received as f64 / elapsed.as_secs_f64()
    );

    // Live lag: 32 writers (raw gRPC, one event per append) for 10 s; the subscriber (the
    // official client) notes when each event arrives, the writers when each was acknowledged.
    let mut live = client
        .subscribe_to_all(&SubscribeToAllOptions::default().position(StreamPosition::End))
        .await;
    confirmed(&mut live).await;
    until_caught_up(&mut live).await;
    let arrivals = tokio::spawn(async move {
        let mut arrivals = std::collections::HashMap::new();
        loop {
            let next =
                tokio::time::timeout(Duration::from_secs(3), live.next_subscription_event()).await;
            match next {
                Ok(Ok(SubscriptionEvent::EventAppeared(e))) => {
                    arrivals.insert(e.get_original_event().id, std::time::Instant::now());
                }
                Ok(Ok(_)) => {}
                _ => return arrivals,
            }
        }
    });
    let mut writers = Vec::new();
    let until = std::time::Instant::now() + Duration::from_secs(10);
    for w in 0..32 {
        let channel = wire::channel(&node).await;
        let data = data.clone();
        writers.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            while std::time::Instant::now() < until {
                let id = Uuid::new_v4();
                let sent = std::time::Instant::now();
                raw_append(&channel, &format!("live-{w}"), &[(id, data.clone())]).await;
                acks.push((id, sent, std::time::Instant::now()));
            }
            acks
        }));
    }
    let mut acks = Vec::new();
    for w in writers {
        acks.extend(w.await.expect("writer"));
    }
    let arrivals = arrivals.await.expect("subscriber");
    let mut from_ack = Vec::new();
    let mut from_send = Vec::new();
    let mut missing = 0;
    for (id, sent, acked) in &acks {
        match arrivals.get(id) {
            Some(at) => {
                from_ack.push(at.saturating_duration_since(*acked));
                from_send.push(at.saturating_duration_since(*sent));
            }
            None => missing += 1,
        }
    }
    from_ack.sort();
    from_send.sort();
    let pct = |v: &[Duration], p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)];
    eprintln!(
        "live: {} appends by 32 writers ({:.0}/s), {missing} not delivered; \
         ack → delivered p50 {:?} p99 {:?} max {:?}; append sent → delivered p50 {:?} p99 {:?}",
        acks.len(),
        acks.len() as f64 / 10.0,
        pct(&from_ack, 0.5),
        pct(&from_ack, 0.99),
        from_ack.last().unwrap(),
        pct(&from_send, 0.5),
        pct(&from_send, 0.99),
    );
    assert_eq!(missing, 0);
}
