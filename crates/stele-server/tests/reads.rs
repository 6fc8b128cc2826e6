//! Reads through the official client: one stream forwards and backwards from start, end
//! and a revision, with counts; a missing stream; `$all` in both directions
//! (PROTOCOL.md §4).

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use kurrentdb::{
    AppendToStreamOptions, Client, Error, Position, ReadAllOptions, ReadStreamOptions,
    RecordedEvent, StreamPosition, StreamState,
};
use uuid::Uuid;

/// Appends events 0..count to `stream`, one append each, and returns their ids.
async fn seed(client: &Client, stream: &str, count: u64) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for n in 0..count {
        let id = Uuid::new_v4();
        client
            .append_to_stream(
                stream,
                &AppendToStreamOptions::default(),
                json_event_with_id("counted", n, id),
            )
            .await
            .expect("seeding the stream");
        ids.push(id);
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_reads_forwards_and_backwards_from_start_end_and_revisions() {
    let (_node, client) = start_in_memory().await;
    let before = SystemTime::now() - Duration::from_secs(60);
    let ids = seed(&client, "ten", 10).await;
    let after = SystemTime::now() + Duration::from_secs(60);

    let all = read_stream(&client, "ten", &ReadStreamOptions::default())
        .await
        .expect("reading forwards from the start");
    assert_eq!(revisions(&all), (0..10).collect::<Vec<_>>());
    assert_eq!(common::ids(&all), ids);
    for (n, event) in all.iter().enumerate() {
        assert_eq!(event.stream_id(), "ten");
        assert_eq!(event.event_type, "counted");
        assert!(event.is_json, "content-type application/json comes back");
        assert_eq!(body_n(event), n as u64);
        let created = SystemTime::from(event.created);
        assert!(
            before <= created && created <= after,
            "`created` is the append time in .NET ticks since the Unix epoch, got {:?}",
            event.created
        );
    }
    for pair in all.windows(2) {
        assert!(pair[0].position < pair[1].position);
    }

    let cases: Vec<(&str, ReadStreamOptions, Vec<u64>)> = vec![
        (
            "forwards from start, 3",
            ReadStreamOptions::default()
                .position(StreamPosition::Start)
                .max_count(3),
            vec![0, 1, 2],
        ),
        (
            "forwards from revision 4, 3",
            ReadStreamOptions::default()
                .forwards()
                .position(StreamPosition::Position(4))
                .max_count(3),
            vec![4, 5, 6],
        ),
        (
            "forwards from revision 8, 10",
            ReadStreamOptions::default()
                .forwards()
                .position(StreamPosition::Position(8))
                .max_count(10),
            vec![8, 9],
        ),
        (
            "forwards from revision 9 to the end",
            ReadStreamOptions::default()
                .forwards()
                .position(StreamPosition::Position(9)),
            vec![9],
        ),
        (
            "forwards from past the end",
            ReadStreamOptions::default()
                .forwards()
                .position(StreamPosition::Position(20)),
            vec![],
        ),
        (
            "backwards from end, 3",
            ReadStreamOptions::default()
                .position(StreamPosition::End)
                .max_count(3),
            vec![9, 8, 7],
        ),
        (
            "backwards from end, all",
            ReadStreamOptions::default().position(StreamPosition::End),
            (0..10).rev().collect(),
        ),
        (
            "backwards from revision 5, 3",
            ReadStreamOptions::default()
                .position(StreamPosition::Position(5))
                .backwards()
                .max_count(3),
            vec![5, 4, 3],
        ),
        (
            "backwards from revision 1, 10",
            ReadStreamOptions::default()
                .position(StreamPosition::Position(1))
                .backwards()
                .max_count(10),
            vec![1, 0],
        ),
        (
            "backwards from start",
            ReadStreamOptions::default()
                .position(StreamPosition::Start)
                .backwards(),
            vec![0],
        ),
    ];
    for (name, options, expected) in cases {
        let events = read_stream(&client, "ten", &options)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(revisions(&events), expected, "{name}");
        for event in &events {
            let original = &all[event.revision as usize];
            assert_eq!(event.id, original.id, "{name}: same event at each revision");
            assert_eq!(event.position, original.position, "{name}: same position");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reading_a_missing_stream_is_not_found() {
    let (_node, client) = start_in_memory().await;
    // Something else exists, so the log is not empty.
    seed(&client, "present", 1).await;

    for options in [
        ReadStreamOptions::default(),
        ReadStreamOptions::default().position(StreamPosition::End),
        ReadStreamOptions::default().position(StreamPosition::Position(3)),
    ] {
        let result = read_stream(&client, "absent", &options).await;
        assert!(
            matches!(result, Err(Error::ResourceNotFound)),
            "expected ResourceNotFound, got {result:?}"
        );
    }
    // The connection is still good after a not-found read.
    let present = read_stream(&client, "present", &ReadStreamOptions::default())
        .await
        .expect("reading an existing stream after a not-found");
    assert_eq!(present.len(), 1);
}

/// A compact identity for comparing `$all` reads.
fn key(event: &RecordedEvent) -> (String, u64, Uuid, Position) {
    (
        event.stream_id().to_string(),
        event.revision,
        event.id,
        event.position,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn all_reads_forwards_and_backwards_in_append_order() {
    let (_node, client) = start_in_memory().await;
    // Interleaved appends to three streams, the last one with two events.
    let plan: Vec<(&str, usize)> = vec![("a", 1), ("b", 1), ("a", 1), ("c", 1), ("b", 1), ("c", 2)];
    let mut appended: Vec<(String, u64, Uuid)> = Vec::new();
    let mut acks = Vec::new();
    let mut next_revision = std::collections::HashMap::<&str, u64>::new();
    for (stream, count) in plan {
        let events: Vec<_> = (0..count)
            .map(|n| {
                let id = Uuid::new_v4();
                let revision = next_revision.entry(stream).or_insert(0);
                appended.push((stream.to_string(), *revision, id));
                *revision += 1;
                json_event_with_id("mixed", n as u64, id)
            })
            .collect();
        let ack = client
            .append_to_stream(
                stream,
                &AppendToStreamOptions::default().stream_state(StreamState::Any),
                events,
            )
            .await
            .expect("appending");
        acks.push(ack.position);
    }

    let forwards = user_events(
        read_all(&client, &ReadAllOptions::default())
            .await
            .expect("reading $all forwards"),
    );
    let seen: Vec<(String, u64, Uuid)> = forwards
        .iter()
        .map(|e| (e.stream_id().to_string(), e.revision, e.id))
        .collect();
    assert_eq!(
        seen, appended,
        "$all holds every event once, in append order"
    );
    for pair in forwards.windows(2) {
        assert!(
            pair[0].position < pair[1].position,
            "$all positions increase: {:?} then {:?}",
            pair[0].position,
            pair[1].position
        );
    }
    // Each append acknowledged the position of its last event.
    let last_of_each_append = [0usize, 1, 2, 3, 4, 6];
    for (ack, index) in acks.iter().zip(last_of_each_append) {
        assert_eq!(*ack, forwards[index].position);
    }
    // Positions in $all are those of the stream reads.
    for stream in ["a", "b", "c"] {
        let by_stream = read_stream(&client, stream, &ReadStreamOptions::default())
            .await
            .expect("reading a stream");
        let from_all: Vec<_> = forwards
            .iter()
            .filter(|e| e.stream_id() == stream)
            .map(key)
            .collect();
        assert_eq!(by_stream.iter().map(key).collect::<Vec<_>>(), from_all);
    }

    let backwards = user_events(
        read_all(
            &client,
            &ReadAllOptions::default().position(StreamPosition::End),
        )
        .await
        .expect("reading $all backwards"),
    );
    let mut reversed: Vec<_> = forwards.iter().map(key).collect();
    reversed.reverse();
    assert_eq!(backwards.iter().map(key).collect::<Vec<_>>(), reversed);

    // Forwards from a position includes the event at that position.
    let from_third = read_all(
        &client,
        &ReadAllOptions::default()
            .position(StreamPosition::Position(forwards[2].position))
            .max_count(2),
    )
    .await
    .expect("reading $all from a position");
    assert_eq!(from_third.len(), 2, "max_count bounds a $all read");
    assert_eq!(key(&from_third[0]), key(&forwards[2]));
    assert!(from_third[1].position > forwards[2].position);

    let first_three = read_all(&client, &ReadAllOptions::default().max_count(3))
        .await
        .expect("reading three events of $all");
    assert_eq!(first_three.len(), 3);

    let last_two = read_all(
        &client,
        &ReadAllOptions::default()
            .position(StreamPosition::End)
            .max_count(2),
    )
    .await
    .expect("reading the last two events of $all");
    assert_eq!(
        last_two.iter().map(key).collect::<Vec<_>>(),
        reversed[..2].to_vec(),
        "backwards from the end starts at the newest event"
    );
}
