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

#[tokio::test(flavor = "multi_thread")]
async fn event_content_round_trips() {
    let (_node, client) = start_in_memory().await;
    let binary_id = Uuid::new_v4();
    let json_id = Uuid::new_v4();
    let binary = kurrentdb::EventData::binary("bin-type", vec![0u8, 1, 2, 255].into())
        .id(binary_id)
        .metadata(vec![9u8, 8, 7].into());
    let json = kurrentdb::EventData::json("json-type", &serde_json::json!({"k": "v"}))
        .expect("a JSON body")
        .id(json_id)
        .metadata_as_json(&serde_json::json!({"correlation": "c-1"}))
        .expect("JSON metadata");
    client
        .append_to_stream(
            "content",
            &AppendToStreamOptions::default(),
            vec![binary, json],
        )
        .await
        .expect("appending");

    let events = read_stream(&client, "content", &ReadStreamOptions::default())
        .await
        .expect("reading");
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].id, binary_id);
    assert_eq!(events[0].event_type, "bin-type");
    assert!(!events[0].is_json, "application/octet-stream is not JSON");
    assert_eq!(&events[0].data[..], &[0u8, 1, 2, 255]);
    assert_eq!(&events[0].custom_metadata[..], &[9u8, 8, 7]);
    assert_eq!(events[1].id, json_id);
    assert_eq!(events[1].event_type, "json-type");
    assert!(events[1].is_json);
    assert_eq!(
        events[1].as_json::<serde_json::Value>().expect("JSON body"),
        serde_json::json!({"k": "v"})
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&events[1].custom_metadata).expect("JSON custom metadata");
    assert_eq!(metadata, serde_json::json!({"correlation": "c-1"}));
}

mod wire_level {
    //! What the official Rust client hides on reads (PROTOCOL.md §3, §4.2).

    use super::common::wire::*;
    use super::common::*;
    use bytes::Bytes;
    use std::collections::BTreeSet;
    use stele_proto::streams::append_req::options::ExpectedStreamRevision;
    use stele_proto::streams::read_resp::{read_event, Content};
    use uuid::Uuid;

    #[tokio::test(flavor = "multi_thread")]
    async fn a_missing_stream_is_one_stream_not_found_then_a_normal_end() {
        let (node, _client) = start_in_memory().await;
        let channel = channel(&node).await;
        let messages = read(&channel, read_stream_req("nowhere", true))
            .await
            .expect("the call ends OK");
        let contents: Vec<_> = messages.into_iter().map(|m| m.content).collect();
        assert_eq!(contents.len(), 1, "exactly one message: {contents:?}");
        match &contents[0] {
            Some(Content::StreamNotFound(not_found)) => {
                assert_eq!(not_found.stream_identifier, stream_id("nowhere"));
            }
            other => panic!("expected stream_not_found, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn recorded_events_carry_exactly_the_documented_metadata_and_position() {
        let (node, _client) = start_in_memory().await;
        let channel = channel(&node).await;
        let id = Uuid::new_v4();
        append(
            &channel,
            vec![
                append_options("meta", ExpectedStreamRevision::NoStream(empty())),
                append_event(
                    uuid_string(id),
                    "the-type",
                    Bytes::from_static(b"{\"a\":1}"),
                ),
            ],
        )
        .await
        .expect("appending");

        let messages = read(&channel, read_stream_req("meta", true))
            .await
            .expect("reading");
        let events: Vec<_> = messages
            .into_iter()
            .filter_map(|m| match m.content {
                Some(Content::Event(e)) => Some(e),
                // R asks for compatibility 1, this request does not; skip nothing else.
                Some(Content::FirstStreamPosition(_))
                | Some(Content::LastStreamPosition(_))
                | Some(Content::LastAllStreamPosition(_)) => None,
                other => panic!("unexpected message in a stream read: {other:?}"),
            })
            .collect();
        assert_eq!(events.len(), 1);
        let read_event = &events[0];
        assert!(read_event.link.is_none());
        let event = read_event.event.as_ref().expect("event is set");
        assert_eq!(uuid_from_wire(event.id.as_ref().expect("id")), id);
        assert_eq!(event.stream_identifier, stream_id("meta"));
        assert_eq!(event.stream_revision, 0);
        assert_eq!(event.commit_position, event.prepare_position);
        assert_eq!(
            read_event.position,
            Some(read_event::Position::CommitPosition(event.commit_position)),
            "the commit_position oneof is set (the Python client reads it)"
        );
        let keys: BTreeSet<&str> = event.metadata.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from(["content-type", "created", "type"]),
            "reads return exactly three metadata keys (§3)"
        );
        assert_eq!(event.metadata["type"], "the-type");
        assert_eq!(event.metadata["content-type"], "application/json");
        let created: i64 = event.metadata["created"]
            .parse()
            .expect("created is decimal ticks");
        let now_ticks = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as i64
            / 100;
        assert!(
            (now_ticks - created).abs() < 600 * 10_000_000,
            "created is .NET ticks since the Unix epoch, about now: {created} vs {now_ticks}"
        );
        assert_eq!(&event.data[..], b"{\"a\":1}");
        assert!(event.custom_metadata.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_stream_reads_completely_in_both_directions() {
    const EVENTS: u64 = 3000;
    const PER_APPEND: u64 = 500;
    let (_node, client) = start_in_memory().await;
    for first in (0..EVENTS).step_by(PER_APPEND as usize) {
        client
            .append_to_stream(
                "long",
                &AppendToStreamOptions::default(),
                (first..first + PER_APPEND)
                    .map(|n| json_event("long", n))
                    .collect::<Vec<_>>(),
            )
            .await
            .expect("appending a batch");
    }
    let forwards = read_stream(&client, "long", &ReadStreamOptions::default())
        .await
        .expect("reading forwards");
    assert_eq!(revisions(&forwards), (0..EVENTS).collect::<Vec<_>>());
    assert_eq!(
        forwards.iter().map(body_n).collect::<Vec<_>>(),
        (0..EVENTS).collect::<Vec<_>>()
    );
    let backwards = read_stream(
        &client,
        "long",
        &ReadStreamOptions::default().position(StreamPosition::End),
    )
    .await
    .expect("reading backwards");
    assert_eq!(revisions(&backwards), (0..EVENTS).rev().collect::<Vec<_>>());
    let middle = read_stream(
        &client,
        "long",
        &ReadStreamOptions::default()
            .forwards()
            .position(StreamPosition::Position(1234))
            .max_count(1000),
    )
    .await
    .expect("reading a window");
    assert_eq!(revisions(&middle), (1234..2234).collect::<Vec<_>>());
    let all = user_events(
        read_all(&client, &ReadAllOptions::default())
            .await
            .expect("reading $all"),
    );
    assert_eq!(all.len() as u64, EVENTS);
    let all_backwards = user_events(
        read_all(
            &client,
            &ReadAllOptions::default().position(StreamPosition::End),
        )
        .await
        .expect("reading $all backwards"),
    );
    assert_eq!(all_backwards.len() as u64, EVENTS);
    assert_eq!(all_backwards[0].id, forwards[EVENTS as usize - 1].id);
}

#[tokio::test(flavor = "multi_thread")]
async fn reading_all_from_a_position_that_is_not_an_event_is_invalid_argument() {
    let (_node, client) = start_in_memory().await;
    seed(&client, "positions", 3).await;
    let events = read_stream(&client, "positions", &ReadStreamOptions::default())
        .await
        .expect("reading");
    let inside = events[1].position.commit + 1;
    assert!(
        inside < events[2].position.commit,
        "positions are byte offsets"
    );
    let mut wrong = Vec::new();
    for position in [
        Position {
            commit: inside,
            prepare: inside,
        },
        Position {
            commit: events[1].position.commit,
            prepare: inside,
        },
    ] {
        let result = read_all(
            &client,
            &ReadAllOptions::default()
                .forwards()
                .position(StreamPosition::Position(position)),
        )
        .await;
        match result {
            Err(Error::Grpc { code, message })
                if code == tonic::Code::InvalidArgument
                    && message == "Trying to read from an invalid position." => {}
            other => wrong.push(format!("from {position}: got {other:?}")),
        }
    }
    assert!(
        wrong.is_empty(),
        "reading $all from inside an event's record is INVALID_ARGUMENT `Trying to read from \
         an invalid position.` (PROTOCOL.md §6):\n{}",
        wrong.join("\n")
    );
    // Event positions themselves are fine.
    let from_second = read_all(
        &client,
        &ReadAllOptions::default()
            .forwards()
            .position(StreamPosition::Position(events[1].position))
            .max_count(1),
    )
    .await
    .expect("reading from an event's position");
    assert_eq!(from_second[0].id, events[1].id);
}
