//! Bad input over raw gRPC: each request gets the status PROTOCOL.md §4–§6 documents, and
//! the node keeps serving afterwards. Bad input from outside is INVALID_ARGUMENT with a
//! message a user can act on; UNKNOWN, INTERNAL and UNAVAILABLE would make the Rust client
//! tear down its channel and rediscover (§6), so they are wrong answers here.

mod common;

use std::collections::HashMap;

use bytes::Bytes;
use common::wire::*;
use common::*;
use kurrentdb::{AppendToStreamOptions, Client, ReadStreamOptions, StreamState};
use prost::Message;
use stele_proto::shared;
use stele_proto::streams::append_req::options::ExpectedStreamRevision;
use stele_proto::streams::{append_req, read_req, AppendReq, ReadReq};
use stele_testkit::TestNode;
use tonic::{Code, Status};
use uuid::Uuid;

const APPEND: &str = "/event_store.client.streams.Streams/Append";
const READ: &str = "/event_store.client.streams.Streams/Read";
const DELETE: &str = "/event_store.client.streams.Streams/Delete";

/// Protobuf that does not decode: field 1 (length-delimited) claims 5 bytes, 1 follows.
fn malformed() -> Bytes {
    Bytes::from_static(&[0x0a, 0x05, 0x01])
}

fn assert_invalid_argument<T: std::fmt::Debug>(what: &str, result: Result<T, Status>) -> Status {
    match result {
        Err(status) => {
            assert_eq!(
                status.code(),
                Code::InvalidArgument,
                "{what}: expected INVALID_ARGUMENT, got {:?} `{}` (trailers {:?})",
                status.code(),
                status.message(),
                status.metadata()
            );
            assert!(
                !status.message().is_empty(),
                "{what}: the status says what is wrong"
            );
            status
        }
        Ok(answer) => panic!("{what}: expected INVALID_ARGUMENT, got an answer: {answer:?}"),
    }
}

/// `None` if `result` is INVALID_ARGUMENT, else a line saying what came instead.
fn not_invalid_argument<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, Status>,
) -> Option<String> {
    match result {
        Err(status) if status.code() == Code::InvalidArgument => None,
        Err(status) => Some(format!(
            "{what}: got {:?} `{}`",
            status.code(),
            status.message()
        )),
        Ok(answer) => Some(format!("{what}: got an answer: {answer:?}")),
    }
}

/// The node still appends and reads, through the official client and a fresh stream.
async fn assert_still_serving(client: &Client, stream: &str) {
    let written = client
        .append_to_stream(
            stream,
            &AppendToStreamOptions::default().stream_state(StreamState::NoStream),
            json_event("t", 42),
        )
        .await
        .unwrap_or_else(|e| panic!("appending to {stream} after bad input: {e:?}"));
    assert_eq!(written.next_expected_version, 0);
    let events = read_stream(client, stream, &ReadStreamOptions::default())
        .await
        .unwrap_or_else(|e| panic!("reading {stream} after bad input: {e:?}"));
    assert_eq!(events.len(), 1);
    assert_eq!(body_n(&events[0]), 42);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_protobuf_is_invalid_argument() {
    let (node, client) = start_in_memory().await;
    let channel = channel(&node).await;
    // Every method is tried before asserting, so one run names every wrong answer.
    let mut wrong = Vec::new();

    wrong.extend(not_invalid_argument(
        "Append with undecodable bytes",
        raw_client_streaming(&channel, APPEND, vec![malformed()]).await,
    ));
    assert_still_serving(&client, "after-malformed-append").await;

    let options = append_options("raw", ExpectedStreamRevision::Any(empty())).encode_to_vec();
    wrong.extend(not_invalid_argument(
        "Append with good options, then undecodable bytes",
        raw_client_streaming(&channel, APPEND, vec![options.into(), malformed()]).await,
    ));
    assert_still_serving(&client, "after-malformed-event").await;

    wrong.extend(not_invalid_argument(
        "Read with undecodable bytes",
        raw_server_streaming(&channel, READ, malformed()).await,
    ));
    wrong.extend(not_invalid_argument(
        "Delete with undecodable bytes",
        raw_unary(&channel, DELETE, malformed()).await,
    ));
    assert_still_serving(&client, "after-malformed-read").await;
    assert!(
        matches!(
            read_stream(&client, "raw", &ReadStreamOptions::default()).await,
            Err(kurrentdb::Error::ResourceNotFound)
        ),
        "a rejected append wrote nothing"
    );
    assert!(
        wrong.is_empty(),
        "malformed protobuf must be INVALID_ARGUMENT:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_append_that_does_not_start_with_options_is_invalid_argument() {
    let (node, client) = start_in_memory().await;
    let channel = channel(&node).await;

    assert_invalid_argument(
        "Append starting with an event",
        append(
            &channel,
            vec![
                append_event(uuid_string(Uuid::new_v4()), "t", Bytes::from_static(b"{}")),
                append_options("no-options", ExpectedStreamRevision::Any(empty())),
            ],
        )
        .await,
    );
    assert_invalid_argument(
        "Append with options twice",
        append(
            &channel,
            vec![
                append_options("twice", ExpectedStreamRevision::Any(empty())),
                append_options("twice", ExpectedStreamRevision::Any(empty())),
            ],
        )
        .await,
    );
    assert_invalid_argument(
        "Append with an empty first message",
        append(&channel, vec![AppendReq { content: None }]).await,
    );
    assert_still_serving(&client, "after-no-options").await;
    for stream in ["no-options", "twice"] {
        assert!(
            matches!(
                read_stream(&client, stream, &ReadStreamOptions::default()).await,
                Err(kurrentdb::Error::ResourceNotFound)
            ),
            "a rejected append to {stream} wrote nothing"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_event_id_is_invalid_argument() {
    let (node, client) = start_in_memory().await;
    let channel = channel(&node).await;

    let bad_ids = [
        (
            "a UUID string that is not a UUID",
            Some(shared::Uuid {
                value: Some(shared::uuid::Value::String("not-a-uuid".into())),
            }),
        ),
        ("a UUID with no value", Some(shared::Uuid { value: None })),
        ("no id at all", None),
    ];
    for (what, id) in bad_ids {
        let mut event = append_event(uuid_string(Uuid::new_v4()), "t", Bytes::from_static(b"{}"));
        if let Some(append_req::Content::ProposedMessage(message)) = event.content.as_mut() {
            message.id = id;
        }
        assert_invalid_argument(
            what,
            append(
                &channel,
                vec![
                    append_options("bad-id", ExpectedStreamRevision::Any(empty())),
                    event,
                ],
            )
            .await,
        );
    }
    assert!(
        matches!(
            read_stream(&client, "bad-id", &ReadStreamOptions::default()).await,
            Err(kurrentdb::Error::ResourceNotFound)
        ),
        "rejected appends wrote nothing"
    );

    // Both valid forms are accepted, and a read gives the id back in the form asked for.
    let string_id = Uuid::new_v4();
    let structured_id = Uuid::new_v4();
    append(
        &channel,
        vec![
            append_options("good-ids", ExpectedStreamRevision::NoStream(empty())),
            append_event(uuid_string(string_id), "t", Bytes::from_static(b"{}")),
            append_event(
                uuid_structured(structured_id),
                "t",
                Bytes::from_static(b"{}"),
            ),
        ],
    )
    .await
    .expect("an append with a string id and a structured id");
    for string_uuids in [true, false] {
        let events: Vec<_> = read(&channel, read_stream_req("good-ids", string_uuids))
            .await
            .expect("reading good-ids")
            .into_iter()
            .filter_map(|m| match m.content {
                Some(stele_proto::streams::read_resp::Content::Event(e)) => e.event,
                _ => None,
            })
            .collect();
        assert_eq!(events.len(), 2);
        for (event, expected) in events.iter().zip([string_id, structured_id]) {
            let id = event.id.as_ref().expect("a recorded event has an id");
            match (&id.value, string_uuids) {
                (Some(shared::uuid::Value::String(_)), true)
                | (Some(shared::uuid::Value::Structured(_)), false) => {}
                other => panic!("ids come in the form asked for (PROTOCOL.md §3), got {other:?}"),
            }
            assert_eq!(uuid_from_wire(id), expected);
        }
    }
    assert_still_serving(&client, "after-bad-ids").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_stream_name_is_invalid_argument() {
    let (node, client) = start_in_memory().await;
    let channel = channel(&node).await;

    assert_invalid_argument(
        "Append to an empty stream name",
        append(
            &channel,
            vec![
                append_options("", ExpectedStreamRevision::Any(empty())),
                append_event(uuid_string(Uuid::new_v4()), "t", Bytes::from_static(b"{}")),
            ],
        )
        .await,
    );
    assert_invalid_argument(
        "Append with no stream identifier",
        append(
            &channel,
            vec![
                AppendReq {
                    content: Some(append_req::Content::Options(append_req::Options {
                        stream_identifier: None,
                        expected_stream_revision: Some(ExpectedStreamRevision::Any(empty())),
                    })),
                },
                append_event(uuid_string(Uuid::new_v4()), "t", Bytes::from_static(b"{}")),
            ],
        )
        .await,
    );
    assert_invalid_argument(
        "Read of an empty stream name",
        read(&channel, read_stream_req("", true)).await,
    );
    assert_still_serving(&client, "after-empty-name").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_required_metadata_is_invalid_argument_with_its_trailers() {
    let (node, client) = start_in_memory().await;
    let channel = channel(&node).await;

    for (missing, present) in [("type", "content-type"), ("content-type", "type")] {
        let value = if present == "type" {
            "t"
        } else {
            "application/json"
        };
        let status = assert_invalid_argument(
            &format!("an event without `{missing}`"),
            append(
                &channel,
                vec![
                    append_options("no-metadata", ExpectedStreamRevision::Any(empty())),
                    append_event_with_metadata(
                        uuid_string(Uuid::new_v4()),
                        HashMap::from([(present.to_string(), value.to_string())]),
                        Bytes::from_static(b"{}"),
                    ),
                ],
            )
            .await,
        );
        assert_eq!(
            status.message(),
            format!("Required Metadata Property '{missing}' is missing")
        );
        assert_eq!(
            trailer(&status, "exception"),
            Some("missing-required-metadata-property")
        );
        assert_eq!(
            trailer(&status, "required-metadata-properties"),
            Some("type,content-type")
        );
    }
    assert_still_serving(&client, "after-missing-metadata").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_read_options_are_invalid_argument() {
    let (node, client) = start_in_memory().await;
    let channel = channel(&node).await;
    client
        .append_to_stream(
            "readable",
            &AppendToStreamOptions::default(),
            json_event("t", 0),
        )
        .await
        .expect("seeding a stream");

    let mut no_uuid_option = read_stream_req("readable", true);
    no_uuid_option
        .options
        .as_mut()
        .expect("options")
        .uuid_option = None;
    assert_invalid_argument(
        "Read without uuid_option (required, §4.1)",
        read(&channel, no_uuid_option).await,
    );

    let mut backwards_subscription = read_stream_req("readable", true);
    {
        let options = backwards_subscription.options.as_mut().expect("options");
        options.read_direction = read_req::options::ReadDirection::Backwards as i32;
        options.count_option = Some(read_req::options::CountOption::Subscription(
            read_req::options::SubscriptionOptions {},
        ));
    }
    assert_invalid_argument(
        "a backwards stream subscription (not an accepted combination, §4.1)",
        read(&channel, backwards_subscription).await,
    );

    assert_invalid_argument(
        "Read without options",
        read(&channel, ReadReq { options: None }).await,
    );
    assert_still_serving(&client, "after-bad-reads").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_over_the_maximum_event_size_is_invalid_argument_with_its_trailers() {
    const MAX_EVENT_BYTES: u64 = 1024;
    // The append as a whole stays under --max-append-size (default 1 MiB); only the event
    // limit is crossed.
    let node = TestNode::start(
        in_memory()
            .arg("--max-append-event-size")
            .arg(MAX_EVENT_BYTES.to_string()),
    )
    .await;
    let client = client(&node);
    let channel = channel(&node).await;
    let id = Uuid::new_v4();

    let status = assert_invalid_argument(
        "an event over --max-append-event-size",
        append(
            &channel,
            vec![
                append_options("big-event", ExpectedStreamRevision::Any(empty())),
                append_event(uuid_string(id), "t", Bytes::from(vec![b'x'; 4096])),
            ],
        )
        .await,
    );
    assert!(
        status
            .message()
            .starts_with(&format!("Event with Id: {id}, Size: ")),
        "message names the event: `{}`",
        status.message()
    );
    assert!(
        status.message().ends_with(&format!(
            ", exceeds Maximum Append Event Size of {MAX_EVENT_BYTES}."
        )),
        "message names the limit: `{}`",
        status.message()
    );
    assert_eq!(
        trailer(&status, "exception"),
        Some("maximum-append-event-size-exceeded")
    );
    assert_eq!(trailer(&status, "event-id"), Some(id.to_string().as_str()));
    assert_eq!(
        trailer(&status, "maximum-append-event-size"),
        Some(MAX_EVENT_BYTES.to_string().as_str())
    );
    let proposed: u64 = trailer(&status, "proposed-append-event-size")
        .expect("proposed-append-event-size trailer")
        .parse()
        .expect("a number");
    assert!(
        proposed >= 4096,
        "the proposed size counts the data: {proposed}"
    );

    assert!(
        matches!(
            read_stream(&client, "big-event", &ReadStreamOptions::default()).await,
            Err(kurrentdb::Error::ResourceNotFound)
        ),
        "the refused event was not written"
    );
    assert_still_serving(&client, "after-big-event").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_bigger_than_a_grpc_message_default_gets_a_size_error() {
    // 17 MiB: over tonic's 4 MiB default message limit and over the 16 MiB an event may
    // have (PROTOCOL.md §1). With default options the answer is one of the documented size
    // errors (§6), not a transport-level RESOURCE_EXHAUSTED or OUT_OF_RANGE.
    let (node, client) = start_in_memory().await;
    let channel = channel(&node).await;
    let status = assert_invalid_argument(
        "a 17 MiB event",
        append(
            &channel,
            vec![
                append_options("huge", ExpectedStreamRevision::Any(empty())),
                append_event(
                    uuid_string(Uuid::new_v4()),
                    "t",
                    Bytes::from(vec![b'x'; 17 * 1024 * 1024]),
                ),
            ],
        )
        .await,
    );
    let exception = trailer(&status, "exception");
    assert!(
        matches!(
            exception,
            Some("maximum-append-size-exceeded") | Some("maximum-append-event-size-exceeded")
        ),
        "a size error (§6), got exception {exception:?}: `{}`",
        status.message()
    );
    assert!(
        matches!(
            read_stream(&client, "huge", &ReadStreamOptions::default()).await,
            Err(kurrentdb::Error::ResourceNotFound)
        ),
        "the refused event was not written"
    );
    assert_still_serving(&client, "after-huge-event").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_append_over_the_maximum_append_size_carries_its_trailers() {
    let node = TestNode::start(in_memory().max_append_size_bytes(1024)).await;
    let client = client(&node);
    let channel = channel(&node).await;

    let status = assert_invalid_argument(
        "an append over --max-append-size",
        append(
            &channel,
            vec![
                append_options("limited", ExpectedStreamRevision::Any(empty())),
                append_event(
                    uuid_string(Uuid::new_v4()),
                    "t",
                    Bytes::from(vec![b'1'; 2048]),
                ),
            ],
        )
        .await,
    );
    assert_eq!(status.message(), "Maximum Append Size of 1024 Exceeded.");
    assert_eq!(
        trailer(&status, "exception"),
        Some("maximum-append-size-exceeded")
    );
    assert_eq!(trailer(&status, "maximum-append-size"), Some("1024"));
    assert_still_serving(&client, "after-too-big").await;
}
