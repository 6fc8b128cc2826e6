//! Soft deletes and tombstones through the official client (PROTOCOL.md §5.3, §6).

mod common;

use common::*;
use kurrentdb::{
    AppendToStreamOptions, DeleteStreamOptions, Error, ReadStreamOptions, StreamPosition,
    StreamState, TombstoneStreamOptions,
};

fn expecting(state: StreamState) -> AppendToStreamOptions {
    AppendToStreamOptions::default().stream_state(state)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_soft_deleted_stream_reads_as_missing_and_continues_its_revisions() {
    let (_node, client) = start_in_memory().await;
    let stream = "soft";
    let last = client
        .append_to_stream(
            stream,
            &expecting(StreamState::NoStream),
            vec![json_event("t", 0), json_event("t", 1), json_event("t", 2)],
        )
        .await
        .expect("seeding the stream");
    assert_eq!(last.next_expected_version, 2);

    let deleted_at = client
        .delete_stream(
            stream,
            &DeleteStreamOptions::default().stream_state(StreamState::StreamRevision(2)),
        )
        .await
        .expect("soft delete")
        .expect("a delete reports its position");
    assert!(
        deleted_at > last.position,
        "the delete comes after the events"
    );

    for options in [
        ReadStreamOptions::default(),
        ReadStreamOptions::default().position(StreamPosition::End),
    ] {
        let read = read_stream(&client, stream, &options).await;
        assert!(
            matches!(read, Err(Error::ResourceNotFound)),
            "a soft-deleted stream reads as not found, got {read:?}"
        );
    }

    let again = client
        .append_to_stream(stream, &expecting(StreamState::Any), json_event("t", 3))
        .await
        .expect("appending after a soft delete");
    assert_eq!(
        again.next_expected_version, 3,
        "revisions continue after the last one before the delete"
    );
    let events = read_stream(&client, stream, &ReadStreamOptions::default())
        .await
        .expect("reading the recreated stream");
    assert_eq!(
        revisions(&events),
        vec![3],
        "events before the delete stay hidden"
    );
    assert_eq!(body_n(&events[0]), 3);
    let backwards = read_stream(
        &client,
        stream,
        &ReadStreamOptions::default().position(StreamPosition::End),
    )
    .await
    .expect("reading the recreated stream backwards");
    assert_eq!(revisions(&backwards), vec![3]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_soft_deleted_stream_accepts_no_stream_and_continues() {
    let (_node, client) = start_in_memory().await;
    let stream = "soft-nostream";
    client
        .append_to_stream(
            stream,
            &expecting(StreamState::NoStream),
            vec![json_event("t", 0), json_event("t", 1)],
        )
        .await
        .expect("seeding the stream");
    client
        .delete_stream(stream, &DeleteStreamOptions::default())
        .await
        .expect("soft delete");

    let again = client
        .append_to_stream(
            stream,
            &expecting(StreamState::NoStream),
            json_event("t", 2),
        )
        .await
        .expect("NoStream holds for a soft-deleted stream with nothing after the delete");
    assert_eq!(again.next_expected_version, 2);
    let events = read_stream(&client, stream, &ReadStreamOptions::default())
        .await
        .expect("reading the recreated stream");
    assert_eq!(revisions(&events), vec![2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delete_with_the_wrong_expected_revision_is_refused() {
    let (_node, client) = start_in_memory().await;
    let stream = "delete-conflict";
    client
        .append_to_stream(
            stream,
            &expecting(StreamState::NoStream),
            vec![json_event("t", 0), json_event("t", 1), json_event("t", 2)],
        )
        .await
        .expect("seeding the stream");

    match client
        .delete_stream(
            stream,
            &DeleteStreamOptions::default().stream_state(StreamState::StreamRevision(5)),
        )
        .await
    {
        // A status error, not in-band (PROTOCOL.md §5.3).
        Err(Error::Grpc { code, message }) => {
            assert_eq!(code, tonic::Code::FailedPrecondition);
            assert_eq!(
                message,
                "Delete failed due to WrongExpectedVersion. Stream: delete-conflict, \
                 Expected version: 5, Actual version: 2"
            );
        }
        other => panic!("expected FAILED_PRECONDITION WrongExpectedVersion, got {other:?}"),
    }
    let events = read_stream(&client, stream, &ReadStreamOptions::default())
        .await
        .expect("the stream is still there");
    assert_eq!(revisions(&events), vec![0, 1, 2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tombstoned_stream_refuses_reads_appends_and_deletes() {
    let (_node, client) = start_in_memory().await;
    let stream = "tomb";
    client
        .append_to_stream(
            stream,
            &expecting(StreamState::NoStream),
            vec![json_event("t", 0), json_event("t", 1)],
        )
        .await
        .expect("seeding the stream");
    client
        .tombstone_stream(
            stream,
            &TombstoneStreamOptions::default().stream_state(StreamState::StreamRevision(1)),
        )
        .await
        .expect("tombstone")
        .expect("a tombstone reports its position");

    for options in [
        ReadStreamOptions::default(),
        ReadStreamOptions::default().position(StreamPosition::End),
    ] {
        let read = read_stream(&client, stream, &options).await;
        assert!(
            matches!(read, Err(Error::ResourceDeleted)),
            "reading a tombstoned stream: expected ResourceDeleted, got {read:?}"
        );
    }
    for state in [
        StreamState::Any,
        StreamState::NoStream,
        StreamState::StreamExists,
        StreamState::StreamRevision(1),
    ] {
        let append = client
            .append_to_stream(stream, &expecting(state), json_event("t", 9))
            .await;
        assert!(
            matches!(append, Err(Error::ResourceDeleted)),
            "appending with {state:?} to a tombstoned stream: expected ResourceDeleted, got {append:?}"
        );
    }
    let delete = client
        .delete_stream(stream, &DeleteStreamOptions::default())
        .await;
    assert!(
        matches!(delete, Err(Error::ResourceDeleted)),
        "soft-deleting a tombstoned stream: expected ResourceDeleted, got {delete:?}"
    );
    let tombstone = client
        .tombstone_stream(stream, &TombstoneStreamOptions::default())
        .await;
    assert!(
        matches!(tombstone, Err(Error::ResourceDeleted)),
        "tombstoning twice: expected ResourceDeleted, got {tombstone:?}"
    );

    // Other streams are unaffected.
    let other = client
        .append_to_stream(
            "not-tomb",
            &expecting(StreamState::NoStream),
            json_event("t", 0),
        )
        .await
        .expect("appending to another stream");
    assert_eq!(other.next_expected_version, 0);
}
