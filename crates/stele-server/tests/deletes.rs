//! Soft deletes and tombstones through the official client (PROTOCOL.md §5.3, §6).

mod common;

use common::*;
use kurrentdb::{
    AppendToStreamOptions, DeleteStreamOptions, Error, ReadStreamOptions, StreamMetadata,
    StreamMetadataResult, StreamPosition, StreamState, TombstoneStreamOptions,
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

/// The metadata of `stream` as the official client reads it, with the metadata stream's
/// revision.
async fn metadata_of(client: &kurrentdb::Client, stream: &str) -> (StreamMetadata, u64) {
    match client
        .get_stream_metadata(
            stream,
            &ReadStreamOptions::default().position(StreamPosition::End),
        )
        .await
        .expect("reading the metadata")
    {
        StreamMetadataResult::Success(versioned) => {
            (versioned.metadata().clone(), versioned.version())
        }
        other => panic!("expected metadata for {stream}, got {other:?}"),
    }
}

/// Issue 11, item 10: a soft delete was invisible in the stream's metadata. EventStoreDB
/// records it there as `$tb` = Int64.MaxValue (a new `$$stream` event, every other key kept),
/// and the append that recreates the stream records `$tb` = its first revision.
#[tokio::test(flavor = "multi_thread")]
async fn a_soft_delete_is_recorded_as_tb_in_the_metadata_and_a_recreation_moves_it() {
    let (_node, client) = start_in_memory().await;
    let stream = "soft-meta";
    client
        .append_to_stream(
            stream,
            &expecting(StreamState::NoStream),
            vec![json_event("t", 0), json_event("t", 1), json_event("t", 2)],
        )
        .await
        .expect("seeding the stream");
    let set = StreamMetadata::builder()
        .max_count(50)
        .insert_custom_property("owner", "billing")
        .build();
    client
        .set_stream_metadata(stream, &AppendToStreamOptions::default(), &set)
        .await
        .expect("setting metadata");

    client
        .delete_stream(
            stream,
            &DeleteStreamOptions::default().stream_state(StreamState::StreamRevision(2)),
        )
        .await
        .expect("soft delete");
    let (deleted, version) = metadata_of(&client, stream).await;
    assert_eq!(
        version, 1,
        "the soft delete wrote the second metadata event"
    );
    assert_eq!(deleted.truncate_before, Some(i64::MAX as u64));
    assert_eq!(deleted.max_count, Some(50), "other keys are kept");
    assert_eq!(
        deleted.custom_properties.get("owner"),
        Some(&serde_json::json!("billing"))
    );

    let again = client
        .append_to_stream(stream, &expecting(StreamState::Any), json_event("t", 3))
        .await
        .expect("appending after the soft delete");
    assert_eq!(again.next_expected_version, 3);
    let (recreated, version) = metadata_of(&client, stream).await;
    assert_eq!(version, 2, "the recreation wrote the third metadata event");
    assert_eq!(recreated.truncate_before, Some(3));
    assert_eq!(recreated.max_count, Some(50));
    let events = read_stream(&client, stream, &ReadStreamOptions::default())
        .await
        .expect("reading the recreated stream");
    assert_eq!(revisions(&events), vec![3]);

    // Later appends leave the metadata alone.
    client
        .append_to_stream(stream, &expecting(StreamState::Any), json_event("t", 4))
        .await
        .expect("appending again");
    assert_eq!(metadata_of(&client, stream).await.1, 2);
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

/// Issue 11, item 10: a soft-deleted stream refused a later delete or tombstone naming its
/// last revision, which EventStoreDB accepts (a soft delete only truncates the stream); and a
/// stream that never existed must answer WrongExpectedVersion for `StreamExists` or a revision.
#[tokio::test(flavor = "multi_thread")]
async fn deletes_of_missing_and_soft_deleted_streams_answer_as_eventstoredb() {
    let (_node, client) = start_in_memory().await;
    for state in [StreamState::StreamExists, StreamState::StreamRevision(0)] {
        let delete = client
            .delete_stream(
                "never-written",
                &DeleteStreamOptions::default().stream_state(state),
            )
            .await;
        assert!(
            matches!(&delete, Err(Error::Grpc { code, message })
                if *code == tonic::Code::FailedPrecondition
                    && message.contains("WrongExpectedVersion")),
            "deleting a stream that never existed with {state:?}: {delete:?}"
        );
        let tombstone = client
            .tombstone_stream(
                "never-written",
                &TombstoneStreamOptions::default().stream_state(state),
            )
            .await;
        assert!(
            tombstone.is_err(),
            "tombstoning a stream that never existed with {state:?}: {tombstone:?}"
        );
    }

    let stream = "soft-then-more";
    client
        .append_to_stream(
            stream,
            &expecting(StreamState::NoStream),
            vec![json_event("t", 0), json_event("t", 1), json_event("t", 2)],
        )
        .await
        .expect("seeding the stream");
    let revision_2 = || DeleteStreamOptions::default().stream_state(StreamState::StreamRevision(2));
    client
        .delete_stream(stream, &revision_2())
        .await
        .expect("soft delete at revision 2");
    client
        .delete_stream(stream, &revision_2())
        .await
        .expect("a second soft delete at the same revision");
    client
        .tombstone_stream(
            stream,
            &TombstoneStreamOptions::default().stream_state(StreamState::StreamRevision(2)),
        )
        .await
        .expect("a tombstone at the last revision after a soft delete");
    let read = read_stream(&client, stream, &ReadStreamOptions::default()).await;
    assert!(matches!(read, Err(Error::ResourceDeleted)), "{read:?}");
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

mod wire_level {
    //! The statuses and trailers other clients decode (PROTOCOL.md §5.3, §6).

    use super::common::wire::*;
    use super::common::*;
    use bytes::Bytes;
    use stele_proto::streams::append_req::options::ExpectedStreamRevision;
    use stele_proto::streams::{delete_req, DeleteReq};
    use tonic::Code;
    use uuid::Uuid;

    fn event() -> stele_proto::streams::AppendReq {
        append_event(uuid_string(Uuid::new_v4()), "t", Bytes::from_static(b"{}"))
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_tombstoned_stream_is_failed_precondition_with_stream_deleted_trailers() {
        let (node, client) = start_in_memory().await;
        let channel = channel(&node).await;
        client
            .append_to_stream("grave", &Default::default(), json_event("t", 0))
            .await
            .expect("seeding");
        client
            .tombstone_stream("grave", &Default::default())
            .await
            .expect("tombstone");

        let read_status = read(&channel, read_stream_req("grave", true))
            .await
            .expect_err("reading a tombstoned stream fails");
        let append_status = append(
            &channel,
            vec![
                append_options("grave", ExpectedStreamRevision::Any(empty())),
                event(),
            ],
        )
        .await
        .expect_err("appending to a tombstoned stream fails");
        let delete_status = streams(&channel)
            .delete(DeleteReq {
                options: Some(delete_req::Options {
                    stream_identifier: stream_id("grave"),
                    expected_stream_revision: Some(
                        delete_req::options::ExpectedStreamRevision::Any(empty()),
                    ),
                }),
            })
            .await
            .expect_err("deleting a tombstoned stream fails");
        for (what, status) in [
            ("read", read_status),
            ("append", append_status),
            ("delete", delete_status),
        ] {
            assert_eq!(
                status.code(),
                Code::FailedPrecondition,
                "{what}: {status:?}"
            );
            assert_eq!(
                status.message(),
                "Event stream 'grave' is deleted.",
                "{what}: the Python client looks for `is deleted`"
            );
            assert_eq!(
                trailer(&status, "exception"),
                Some("stream-deleted"),
                "{what}"
            );
            assert_eq!(trailer(&status, "stream-name"), Some("grave"), "{what}");
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_delete_conflict_carries_wrong_expected_version_trailers() {
        let (node, _client) = start_in_memory().await;
        let channel = channel(&node).await;
        append(
            &channel,
            vec![
                append_options("dc", ExpectedStreamRevision::NoStream(empty())),
                event(),
                event(),
                event(),
            ],
        )
        .await
        .expect("seeding");
        let status = streams(&channel)
            .delete(DeleteReq {
                options: Some(delete_req::Options {
                    stream_identifier: stream_id("dc"),
                    expected_stream_revision: Some(
                        delete_req::options::ExpectedStreamRevision::Revision(5),
                    ),
                }),
            })
            .await
            .expect_err("a delete at the wrong revision fails");
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(
            status.message(),
            "Delete failed due to WrongExpectedVersion. Stream: dc, Expected version: 5, Actual version: 2"
        );
        assert_eq!(
            trailer(&status, "exception"),
            Some("wrong-expected-version")
        );
        assert_eq!(trailer(&status, "stream-name"), Some("dc"));
        assert_eq!(trailer(&status, "expected-version"), Some("5"));
        assert_eq!(trailer(&status, "actual-version"), Some("2"));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_soft_deleted_stream_reads_as_one_stream_not_found() {
        let (node, client) = start_in_memory().await;
        let channel = channel(&node).await;
        client
            .append_to_stream("gone", &Default::default(), json_event("t", 0))
            .await
            .expect("seeding");
        client
            .delete_stream("gone", &Default::default())
            .await
            .expect("soft delete");
        let messages = read(&channel, read_stream_req("gone", true))
            .await
            .expect("the call ends OK");
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(
            matches!(
                messages[0].content,
                Some(stele_proto::streams::read_resp::Content::StreamNotFound(_))
            ),
            "{messages:?}"
        );
    }
}
