//! Appends through the official client: every expected-revision form, conflicts and the
//! revisions they report, BatchAppend, idempotent retries and the maximum append size
//! (PROTOCOL.md §5.1, §5.2, §6).

mod common;

use common::*;
use kurrentdb::operations::Features;
use kurrentdb::{
    AppendToStreamOptions, CurrentRevision, Error, ReadAllOptions, ReadStreamOptions, StreamState,
};
use stele_testkit::TestNode;
use uuid::Uuid;

fn expecting(state: StreamState) -> AppendToStreamOptions {
    AppendToStreamOptions::default().stream_state(state)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_expected_revision_form_appends_and_reports_revision_and_position() {
    let (_node, client) = start_in_memory().await;
    let stream = "forms";

    let no_stream = client
        .append_to_stream(
            stream,
            &expecting(StreamState::NoStream),
            vec![json_event("t", 0), json_event("t", 1)],
        )
        .await
        .expect("NoStream on a new stream");
    assert_eq!(no_stream.next_expected_version, 1);

    let exact = client
        .append_to_stream(
            stream,
            &expecting(StreamState::StreamRevision(1)),
            json_event("t", 2),
        )
        .await
        .expect("Exact(1) on a stream at revision 1");
    assert_eq!(exact.next_expected_version, 2);

    let exists = client
        .append_to_stream(
            stream,
            &expecting(StreamState::StreamExists),
            json_event("t", 3),
        )
        .await
        .expect("StreamExists on an existing stream");
    assert_eq!(exists.next_expected_version, 3);

    let any = client
        .append_to_stream(stream, &expecting(StreamState::Any), json_event("t", 4))
        .await
        .expect("Any on an existing stream");
    assert_eq!(any.next_expected_version, 4);

    let any_new = client
        .append_to_stream(
            "forms-any",
            &expecting(StreamState::Any),
            json_event("t", 0),
        )
        .await
        .expect("Any on a new stream");
    assert_eq!(any_new.next_expected_version, 0);

    let events = read_stream(&client, stream, &ReadStreamOptions::default())
        .await
        .expect("reading the stream");
    assert_eq!(revisions(&events), vec![0, 1, 2, 3, 4]);
    assert_eq!(
        events.iter().map(body_n).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    // An append acknowledges the position of its last event (one position per event,
    // docs/design.md decision 5), so a client can read or subscribe from there.
    assert_eq!(no_stream.position, events[1].position);
    assert_eq!(exact.position, events[2].position);
    assert_eq!(exists.position, events[3].position);
    assert_eq!(any.position, events[4].position);
    for pair in events.windows(2) {
        assert!(
            pair[0].position < pair[1].position,
            "positions increase with revisions: {:?} then {:?}",
            pair[0].position,
            pair[1].position
        );
    }
    for event in &events {
        assert_eq!(
            event.position.commit, event.position.prepare,
            "commit and prepare positions are the same number (docs/design.md decision 5)"
        );
    }
    assert!(any.position < any_new.position);
}

/// Asserts that `result` is a WrongExpectedVersion carrying `current` and `expected`.
fn assert_wrong_expected_version<T: std::fmt::Debug>(
    result: kurrentdb::Result<T>,
    current: CurrentRevision,
    expected: StreamState,
) {
    match result {
        Err(Error::WrongExpectedVersion {
            current: got_current,
            expected: got_expected,
        }) => {
            assert_eq!(got_current, current, "current revision in the conflict");
            assert_eq!(got_expected, expected, "expected revision in the conflict");
        }
        other => panic!(
            "expected WrongExpectedVersion(current {current:?}, expected {expected:?}), got {other:?}"
        ),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn conflicts_report_current_and_expected_revisions_and_write_nothing() {
    let (_node, client) = start_in_memory().await;
    let stream = "conflicts";
    client
        .append_to_stream(
            stream,
            &expecting(StreamState::NoStream),
            vec![json_event("t", 0), json_event("t", 1)],
        )
        .await
        .expect("seeding the stream");

    assert_wrong_expected_version(
        client
            .append_to_stream(
                stream,
                &expecting(StreamState::NoStream),
                json_event("x", 9),
            )
            .await,
        CurrentRevision::Current(1),
        StreamState::NoStream,
    );
    assert_wrong_expected_version(
        client
            .append_to_stream(
                stream,
                &expecting(StreamState::StreamRevision(0)),
                json_event("x", 9),
            )
            .await,
        CurrentRevision::Current(1),
        StreamState::StreamRevision(0),
    );
    assert_wrong_expected_version(
        client
            .append_to_stream(
                stream,
                &expecting(StreamState::StreamRevision(5)),
                json_event("x", 9),
            )
            .await,
        CurrentRevision::Current(1),
        StreamState::StreamRevision(5),
    );

    // The same forms against a stream that does not exist.
    assert_wrong_expected_version(
        client
            .append_to_stream(
                "conflicts-missing",
                &expecting(StreamState::StreamExists),
                json_event("x", 9),
            )
            .await,
        CurrentRevision::NoStream,
        StreamState::StreamExists,
    );
    assert_wrong_expected_version(
        client
            .append_to_stream(
                "conflicts-missing",
                &expecting(StreamState::StreamRevision(0)),
                json_event("x", 9),
            )
            .await,
        CurrentRevision::NoStream,
        StreamState::StreamRevision(0),
    );

    let events = read_stream(&client, stream, &ReadStreamOptions::default())
        .await
        .expect("reading the stream");
    assert_eq!(revisions(&events), vec![0, 1], "a conflict writes nothing");
    assert!(
        matches!(
            read_stream(&client, "conflicts-missing", &ReadStreamOptions::default()).await,
            Err(Error::ResourceNotFound)
        ),
        "a rejected append does not create the stream"
    );
    let all = user_events(
        read_all(&client, &ReadAllOptions::default())
            .await
            .expect("reading $all"),
    );
    assert_eq!(all.len(), 2, "no rejected event reached $all");
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_append_is_advertised_and_appends() {
    let (_node, client) = start_in_memory().await;
    let info = client.server_info().await.expect("server features");
    assert!(
        info.contains_features(Features::BATCH_APPEND),
        "ServerFeatures lists batchappend (PROTOCOL.md §9)"
    );

    let batch = client
        .batch_append(&Default::default())
        .await
        .expect("opening a batch-append session");
    let first_ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    let first = batch
        .append_to_stream(
            "batch",
            StreamState::NoStream,
            first_ids
                .iter()
                .enumerate()
                .map(|(n, id)| json_event_with_id("b", n as u64, *id))
                .collect(),
        )
        .await
        .expect("first batch");
    assert_eq!(first.stream_name(), "batch");
    assert_eq!(first.current_revision(), Some(2));

    let second_id = Uuid::new_v4();
    let second = batch
        .append_to_stream(
            "batch",
            StreamState::StreamRevision(2),
            vec![json_event_with_id("b", 3, second_id)],
        )
        .await
        .expect("second batch");
    assert_eq!(second.current_revision(), Some(3));

    let other = batch
        .append_to_stream("batch-other", StreamState::Any, vec![json_event("b", 0)])
        .await
        .expect("a batch to another stream in the same session");
    assert_eq!(other.stream_name(), "batch-other");
    assert_eq!(other.current_revision(), Some(0));

    let events = read_stream(&client, "batch", &ReadStreamOptions::default())
        .await
        .expect("reading the stream");
    assert_eq!(revisions(&events), vec![0, 1, 2, 3]);
    let mut expected_ids = first_ids.clone();
    expected_ids.push(second_id);
    assert_eq!(ids(&events), expected_ids);
    assert_eq!(first.current_position(), Some(events[2].position));
    assert_eq!(second.current_position(), Some(events[3].position));

    // A conflict comes back in-band: ALREADY_EXISTS, message `WrongExpectedVersion`
    // (PROTOCOL.md §5.2). The client closes the session after an error, so this goes last.
    match batch
        .append_to_stream("batch", StreamState::NoStream, vec![json_event("b", 9)])
        .await
    {
        Err(Error::Grpc { code, message }) => {
            assert_eq!(code, tonic::Code::AlreadyExists);
            assert_eq!(message, "WrongExpectedVersion");
        }
        other => panic!("expected an in-band WrongExpectedVersion error, got {other:?}"),
    }
    let events = read_stream(&client, "batch", &ReadStreamOptions::default())
        .await
        .expect("reading the stream");
    assert_eq!(events.len(), 4, "the conflicting batch wrote nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn retrying_the_same_append_returns_the_first_result_and_writes_once() {
    let (_node, client) = start_in_memory().await;
    let stream = "idempotent";
    let batch_ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    let batch = || {
        batch_ids
            .iter()
            .enumerate()
            .map(|(n, id)| json_event_with_id("t", n as u64, *id))
            .collect::<Vec<_>>()
    };

    let first = client
        .append_to_stream(stream, &expecting(StreamState::NoStream), batch())
        .await
        .expect("first append");
    let retry = client
        .append_to_stream(stream, &expecting(StreamState::NoStream), batch())
        .await
        .expect("the retried append succeeds instead of conflicting");
    assert_eq!(retry.next_expected_version, first.next_expected_version);
    assert_eq!(retry.position, first.position);

    // The same with an exact expected revision.
    let next_id = Uuid::new_v4();
    let third = client
        .append_to_stream(
            stream,
            &expecting(StreamState::StreamRevision(2)),
            json_event_with_id("t", 3, next_id),
        )
        .await
        .expect("append after the batch");
    let third_retry = client
        .append_to_stream(
            stream,
            &expecting(StreamState::StreamRevision(2)),
            json_event_with_id("t", 3, next_id),
        )
        .await
        .expect("the retried exact append succeeds");
    assert_eq!(third_retry.next_expected_version, 3);
    assert_eq!(third_retry.position, third.position);

    let events = read_stream(&client, stream, &ReadStreamOptions::default())
        .await
        .expect("reading the stream");
    let mut expected_ids = batch_ids.clone();
    expected_ids.push(next_id);
    assert_eq!(ids(&events), expected_ids, "each event is stored once");
    assert_eq!(revisions(&events), vec![0, 1, 2, 3]);

    let all = user_events(
        read_all(&client, &ReadAllOptions::default())
            .await
            .expect("reading $all"),
    );
    assert_eq!(ids(&all), expected_ids, "$all holds each event once");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_append_over_the_maximum_append_size_is_refused() {
    const MAX_APPEND_SIZE_BYTES: u64 = 1024;
    let node = TestNode::start(in_memory().max_append_size_bytes(MAX_APPEND_SIZE_BYTES)).await;
    let client = client(&node);
    let expected_message = format!("Maximum Append Size of {MAX_APPEND_SIZE_BYTES} Exceeded.");

    let big = kurrentdb::EventData::binary("big", vec![7u8; 4096].into());
    match client
        .append_to_stream("limited", &expecting(StreamState::Any), big)
        .await
    {
        Err(Error::Grpc { code, message }) => {
            assert_eq!(code, tonic::Code::InvalidArgument);
            assert_eq!(message, expected_message);
        }
        other => panic!("expected INVALID_ARGUMENT `{expected_message}`, got {other:?}"),
    }

    // Small events whose sum is over the limit are refused as one append.
    let several: Vec<_> = (0..3)
        .map(|_| kurrentdb::EventData::binary("part", vec![1u8; 500].into()))
        .collect();
    match client
        .append_to_stream("limited", &expecting(StreamState::Any), several)
        .await
    {
        Err(Error::Grpc { code, message }) => {
            assert_eq!(code, tonic::Code::InvalidArgument);
            assert_eq!(message, expected_message);
        }
        other => panic!("expected INVALID_ARGUMENT `{expected_message}`, got {other:?}"),
    }

    // The node keeps serving, and an append under the limit works.
    let small = client
        .append_to_stream(
            "limited",
            &expecting(StreamState::NoStream),
            json_event("t", 1),
        )
        .await
        .expect("an append under the limit");
    assert_eq!(small.next_expected_version, 0);
    let events = read_stream(&client, "limited", &ReadStreamOptions::default())
        .await
        .expect("reading the stream");
    assert_eq!(events.len(), 1, "refused appends wrote nothing");
    assert_eq!(body_n(&events[0]), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_exact_appends_never_both_win() {
    const WRITERS: usize = 8;
    const ROUNDS: u64 = 10;
    let (_node, client) = start_in_memory().await;
    let stream = "contended";
    client
        .append_to_stream(
            stream,
            &expecting(StreamState::NoStream),
            json_event("t", 0),
        )
        .await
        .expect("seeding the stream");

    // Each writer appends at the revision it last saw; a loser learns the current one from
    // its WrongExpectedVersion and tries again, until the stream has its events.
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut wins = Vec::new();
                let mut current = 0u64;
                while current < ROUNDS {
                    let id = Uuid::new_v4();
                    match client
                        .append_to_stream(
                            stream,
                            &expecting(StreamState::StreamRevision(current)),
                            json_event_with_id("race", w as u64, id),
                        )
                        .await
                    {
                        Ok(result) => {
                            assert_eq!(result.next_expected_version, current + 1);
                            wins.push((current + 1, id));
                            current += 1;
                        }
                        Err(Error::WrongExpectedVersion {
                            current: CurrentRevision::Current(now),
                            expected,
                        }) => {
                            assert_eq!(expected, StreamState::StreamRevision(current));
                            assert!(now > current, "a conflict means the stream moved on");
                            current = now;
                        }
                        Err(other) => panic!("writer {w}: {other:?}"),
                    }
                }
                wins
            })
        })
        .collect();
    let mut wins = Vec::new();
    for writer in writers {
        wins.extend(writer.await.expect("a writer task"));
    }
    wins.sort();

    let events = read_stream(&client, stream, &ReadStreamOptions::default())
        .await
        .expect("reading the stream");
    let revisions_won: Vec<u64> = wins.iter().map(|(revision, _)| *revision).collect();
    assert_eq!(
        revisions_won,
        (1..events.len() as u64).collect::<Vec<_>>(),
        "exactly one writer won each revision"
    );
    for (revision, id) in &wins {
        assert_eq!(
            events[*revision as usize].id, *id,
            "the winner's event is at {revision}"
        );
    }
    assert_eq!(
        events.len() as u64,
        ROUNDS + 1,
        "nobody appends at revision {ROUNDS}, so the stream ends there"
    );
}

mod wire_level {
    //! What the official Rust client hides: the legacy WrongExpectedVersion fields and the
    //! in-band BatchAppend errors other clients (Python, Node) decode (PROTOCOL.md §5).

    use super::common::wire::*;
    use super::common::*;
    use bytes::Bytes;
    use prost::{Message, Name};
    use std::collections::HashMap;
    use stele_proto::shared;
    use stele_proto::streams::append_req::options::ExpectedStreamRevision;
    use stele_proto::streams::append_resp::wrong_expected_version::{
        CurrentRevisionOption, CurrentRevisionOption2060, ExpectedRevisionOption,
        ExpectedRevisionOption2060,
    };
    use stele_proto::streams::append_resp::{self, success};
    use stele_proto::streams::{batch_append_req, batch_append_resp, BatchAppendReq};
    use uuid::Uuid;

    fn event() -> stele_proto::streams::AppendReq {
        append_event(uuid_string(Uuid::new_v4()), "t", Bytes::from_static(b"{}"))
    }

    async fn wrong_expected_version(
        channel: &tonic::transport::Channel,
        stream: &str,
        expected: ExpectedStreamRevision,
    ) -> append_resp::WrongExpectedVersion {
        let resp = append(channel, vec![append_options(stream, expected), event()])
            .await
            .expect("a conflict is in-band: the call itself succeeds");
        match resp.result {
            Some(append_resp::Result::WrongExpectedVersion(wev)) => wev,
            other => panic!("expected an in-band WrongExpectedVersion, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn wrong_expected_version_fills_current_and_legacy_fields() {
        let (node, _client) = start_in_memory().await;
        let channel = channel(&node).await;
        let resp = append(
            &channel,
            vec![
                append_options("wev", ExpectedStreamRevision::NoStream(empty())),
                event(),
                event(),
            ],
        )
        .await
        .expect("seeding");
        match resp.result {
            Some(append_resp::Result::Success(s)) => {
                assert_eq!(
                    s.current_revision_option,
                    Some(success::CurrentRevisionOption::CurrentRevision(1))
                );
                assert!(
                    matches!(
                        s.position_option,
                        Some(success::PositionOption::Position(_))
                    ),
                    "Success carries a position: {s:?}"
                );
            }
            other => panic!("expected Success, got {other:?}"),
        }

        let wev =
            wrong_expected_version(&channel, "wev", ExpectedStreamRevision::Revision(5)).await;
        assert_eq!(
            wev.current_revision_option,
            Some(CurrentRevisionOption::CurrentRevision(1))
        );
        assert_eq!(
            wev.expected_revision_option,
            Some(ExpectedRevisionOption::ExpectedRevision(5))
        );
        assert_eq!(
            wev.current_revision_option_20_6_0,
            Some(CurrentRevisionOption2060::CurrentRevision2060(1))
        );
        assert_eq!(
            wev.expected_revision_option_20_6_0,
            Some(ExpectedRevisionOption2060::ExpectedRevision2060(5))
        );

        let wev =
            wrong_expected_version(&channel, "wev", ExpectedStreamRevision::NoStream(empty()))
                .await;
        assert_eq!(
            wev.expected_revision_option,
            Some(ExpectedRevisionOption::ExpectedNoStream(empty()))
        );
        assert_eq!(
            wev.expected_revision_option_20_6_0,
            Some(ExpectedRevisionOption2060::ExpectedRevision2060(u64::MAX)),
            "legacy expected for NoStream is u64::MAX (PROTOCOL.md §5.1)"
        );
        assert_eq!(
            wev.current_revision_option_20_6_0,
            Some(CurrentRevisionOption2060::CurrentRevision2060(1))
        );

        let wev = wrong_expected_version(
            &channel,
            "wev-missing",
            ExpectedStreamRevision::StreamExists(empty()),
        )
        .await;
        assert_eq!(
            wev.current_revision_option,
            Some(CurrentRevisionOption::CurrentNoStream(empty()))
        );
        assert_eq!(
            wev.expected_revision_option,
            Some(ExpectedRevisionOption::ExpectedStreamExists(empty()))
        );
        assert_eq!(
            wev.current_revision_option_20_6_0,
            Some(CurrentRevisionOption2060::NoStream2060(empty()))
        );
        assert_eq!(
            wev.expected_revision_option_20_6_0,
            Some(ExpectedRevisionOption2060::StreamExists2060(empty()))
        );
    }

    fn batch_request(
        correlation_id: shared::Uuid,
        stream: &str,
        expected: batch_append_req::options::ExpectedStreamPosition,
        count: usize,
    ) -> BatchAppendReq {
        BatchAppendReq {
            correlation_id: Some(correlation_id),
            options: Some(batch_append_req::Options {
                stream_identifier: stream_id(stream),
                expected_stream_position: Some(expected),
                // Relative, as the Python client sends it.
                deadline_option: Some(batch_append_req::options::DeadlineOption::Deadline(
                    prost_types::Duration {
                        seconds: 10,
                        nanos: 0,
                    },
                )),
            }),
            proposed_messages: (0..count)
                .map(|_| batch_append_req::ProposedMessage {
                    id: Some(uuid_string(Uuid::new_v4())),
                    metadata: HashMap::from([
                        ("type".to_string(), "t".to_string()),
                        ("content-type".to_string(), "application/json".to_string()),
                    ]),
                    custom_metadata: Bytes::new(),
                    data: Bytes::from_static(b"{}"),
                })
                .collect(),
            is_final: true,
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn batch_append_answers_each_correlation_id_with_in_band_errors() {
        use batch_append_req::options::ExpectedStreamPosition as Expected;
        let (node, _client) = start_in_memory().await;
        let channel = channel(&node).await;
        append(
            &channel,
            vec![
                append_options("rb-taken", ExpectedStreamRevision::NoStream(empty())),
                event(),
            ],
        )
        .await
        .expect("seeding rb-taken");
        // Two requests in one call, to different streams: the order in which a server
        // completes pipelined requests is not part of the contract.
        let ok_id = Uuid::new_v4();
        let conflict_id = Uuid::new_v4();
        let requests = vec![
            // Structured ids, as the Rust client sends them.
            batch_request(uuid_structured(ok_id), "rb", Expected::NoStream(()), 2),
            batch_request(
                uuid_structured(conflict_id),
                "rb-taken",
                Expected::NoStream(()),
                1,
            ),
        ];
        let mut responses = streams(&channel)
            .batch_append(futures::stream::iter(requests))
            .await
            .expect("BatchAppend call")
            .into_inner();
        let mut by_id = HashMap::new();
        while let Some(resp) = responses
            .message()
            .await
            .expect("the call ends OK after the client half-closes")
        {
            let id = uuid_from_wire(resp.correlation_id.as_ref().expect("correlation_id echoed"));
            let stream = if id == ok_id { "rb" } else { "rb-taken" };
            assert_eq!(resp.stream_identifier, stream_id(stream), "stream echoed");
            assert!(
                by_id.insert(id, resp).is_none(),
                "one response per correlation id"
            );
        }
        assert_eq!(by_id.len(), 2);

        match &by_id[&ok_id].result {
            Some(batch_append_resp::Result::Success(s)) => {
                assert_eq!(
                    s.current_revision_option,
                    Some(batch_append_resp::success::CurrentRevisionOption::CurrentRevision(1))
                );
                assert!(matches!(
                    s.position_option,
                    Some(batch_append_resp::success::PositionOption::Position(_))
                ));
            }
            other => panic!("expected success, got {other:?}"),
        }
        match &by_id[&conflict_id].result {
            Some(batch_append_resp::Result::Error(status)) => {
                assert_eq!(
                    status.code,
                    stele_proto::google_rpc::Code::AlreadyExists as i32
                );
                assert_eq!(status.message, "WrongExpectedVersion");
                let detail = status.details.as_ref().expect("one packed detail");
                assert_eq!(detail.type_url, shared::WrongExpectedVersion::type_url());
                let wev = shared::WrongExpectedVersion::decode(detail.value.as_slice())
                    .expect("the detail decodes as WrongExpectedVersion");
                assert_eq!(
                    wev.current_stream_revision_option,
                    Some(shared::wrong_expected_version::CurrentStreamRevisionOption::CurrentStreamRevision(0))
                );
                assert_eq!(
                    wev.expected_stream_position_option,
                    Some(shared::wrong_expected_version::ExpectedStreamPositionOption::ExpectedNoStream(()))
                );
            }
            other => panic!("expected an in-band error, got {other:?}"),
        }
    }
}
