//! BatchAppend calls against a fake writer: answers per correlation id, deadlines, bounds
//! and the call status.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use prost::Message;
use stele_core::{LogPosition, StreamRevision};
use stele_proto::google_rpc;
use stele_proto::streams::batch_append_req::{Options, ProposedMessage};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use super::*;

type Call = (String, ExpectedRevision, usize);

#[derive(Clone)]
struct FakeWriter {
    max_bytes: u32,
    outcomes: Arc<Mutex<VecDeque<Result<AppendOutcome, WriteError>>>>,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl FakeWriter {
    fn new(outcomes: Vec<Result<AppendOutcome, WriteError>>) -> Self {
        FakeWriter {
            max_bytes: 1024,
            outcomes: Arc::new(Mutex::new(outcomes.into())),
            calls: Arc::default(),
        }
    }
}

impl BatchWriter for FakeWriter {
    fn max_append_size_bytes(&self) -> u32 {
        self.max_bytes
    }

    fn append(
        &self,
        stream: StreamName,
        expected: ExpectedRevision,
        events: Vec<ProposedEvent>,
    ) -> BoxFuture<'static, Result<AppendOutcome, WriteError>> {
        self.calls
            .lock()
            .unwrap()
            .push((stream.as_str().to_owned(), expected, events.len()));
        let outcome = self
            .outcomes
            .lock()
            .unwrap()
            .pop_front()
            .expect("an outcome for every append");
        async move { outcome }.boxed()
    }
}

fn success(revision: u64, position: u64) -> Result<AppendOutcome, WriteError> {
    Ok(AppendOutcome::Success {
        current_revision: Some(StreamRevision(revision)),
        position: Some(LogPosition(position)),
    })
}

fn message(event_type: Option<&str>, data: &'static [u8]) -> ProposedMessage {
    let mut metadata = HashMap::new();
    if let Some(t) = event_type {
        metadata.insert("type".to_owned(), t.to_owned());
    }
    metadata.insert("content-type".to_owned(), "application/json".to_owned());
    ProposedMessage {
        id: Some(wire_uuid::to_string_form(Uuid::new_v4())),
        metadata,
        custom_metadata: Bytes::new(),
        data: Bytes::from_static(data),
    }
}

fn options(stream: &str) -> Options {
    Options {
        stream_identifier: Some(events::stream_identifier(stream)),
        expected_stream_position: Some(ExpectedStreamPosition::Any(())),
        deadline_option: Some(DeadlineOption::Deadline(prost_types::Duration {
            seconds: 10,
            nanos: 0,
        })),
    }
}

fn request(
    id: Uuid,
    options: Option<Options>,
    messages: Vec<ProposedMessage>,
    is_final: bool,
) -> BatchAppendReq {
    BatchAppendReq {
        correlation_id: Some(wire_uuid::to_structured(id)),
        options,
        proposed_messages: messages,
        is_final,
    }
}

/// Runs a call over `requests` (then half-closes) and collects every answer.
async fn run_call(
    writer: FakeWriter,
    requests: Vec<BatchAppendReq>,
) -> Vec<Result<BatchAppendResp, Status>> {
    let stream = tokio_stream::iter(requests.into_iter().map(Ok));
    spawn(writer, stream).collect().await
}

fn error_of(resp: &BatchAppendResp) -> &google_rpc::Status {
    match &resp.result {
        Some(batch_append_resp::Result::Error(e)) => e,
        other => panic!("expected an in-band error, got {other:?}"),
    }
}

#[test]
fn deadlines_are_capped_and_expired_ones_refused() {
    let now = SystemTime::now();
    let relative = |seconds, nanos| {
        Some(DeadlineOption::Deadline(prost_types::Duration {
            seconds,
            nanos,
        }))
    };
    // The Rust client's "now + 10 s since the epoch", read as relative: capped.
    assert_eq!(
        batch_timeout(relative(1_900_000_000, 0).as_ref(), now),
        Some(BATCH_WRITE_TIMEOUT)
    );
    assert_eq!(
        batch_timeout(relative(0, 500_000_000).as_ref(), now),
        Some(Duration::from_millis(500))
    );
    assert_eq!(batch_timeout(relative(0, 0).as_ref(), now), None);
    assert_eq!(batch_timeout(relative(-1, 0).as_ref(), now), None);
    assert_eq!(batch_timeout(None, now), Some(BATCH_WRITE_TIMEOUT));

    let absolute = |t: SystemTime| Some(DeadlineOption::Deadline21100(t.into()));
    assert_eq!(
        batch_timeout(absolute(now + Duration::from_secs(1)).as_ref(), now),
        Some(Duration::from_secs(1))
    );
    assert_eq!(
        batch_timeout(absolute(now + Duration::from_secs(60)).as_ref(), now),
        Some(BATCH_WRITE_TIMEOUT)
    );
    assert_eq!(
        batch_timeout(absolute(now - Duration::from_secs(1)).as_ref(), now),
        None
    );
}

#[tokio::test]
async fn single_final_message_commits_and_answers_success() {
    let writer = FakeWriter::new(vec![success(2, 777)]);
    let id = Uuid::new_v4();
    let answers = run_call(
        writer.clone(),
        vec![request(
            id,
            Some(options("orders")),
            vec![message(Some("A"), b"1"), message(Some("B"), b"2")],
            true,
        )],
    )
    .await;
    assert_eq!(answers.len(), 1);
    let resp = answers[0].as_ref().unwrap();
    assert_eq!(resp.correlation_id, Some(wire_uuid::to_structured(id)));
    assert_eq!(
        resp.stream_identifier
            .as_ref()
            .unwrap()
            .stream_name
            .as_ref(),
        b"orders"
    );
    let Some(batch_append_resp::Result::Success(s)) = &resp.result else {
        panic!("expected success, got {resp:?}");
    };
    assert_eq!(
        s.current_revision_option,
        Some(success::CurrentRevisionOption::CurrentRevision(2))
    );
    assert_eq!(
        s.position_option,
        Some(success::PositionOption::Position(AllStreamPosition {
            commit_position: 777,
            prepare_position: 777,
        }))
    );
    assert_eq!(
        writer.calls.lock().unwrap().as_slice(),
        &[("orders".to_owned(), ExpectedRevision::Any, 2)]
    );
}

#[tokio::test]
async fn chunks_of_one_id_are_committed_together() {
    let writer = FakeWriter::new(vec![success(2, 1)]);
    let id = Uuid::new_v4();
    let answers = run_call(
        writer.clone(),
        vec![
            request(
                id,
                Some(options("s")),
                vec![message(Some("A"), b"1")],
                false,
            ),
            request(id, None, vec![message(Some("B"), b"2")], false),
            request(id, None, vec![message(Some("C"), b"3")], true),
        ],
    )
    .await;
    assert_eq!(answers.len(), 1);
    assert_eq!(
        writer.calls.lock().unwrap().as_slice(),
        &[("s".to_owned(), ExpectedRevision::Any, 3)]
    );
}

#[tokio::test]
async fn wrong_expected_version_is_in_band_already_exists() {
    let writer = FakeWriter::new(vec![Ok(AppendOutcome::WrongExpectedVersion {
        current: Some(StreamRevision(4)),
        expected: ExpectedRevision::NoStream,
    })]);
    let answers = run_call(
        writer,
        vec![request(
            Uuid::new_v4(),
            Some(options("s")),
            vec![message(Some("A"), b"1")],
            true,
        )],
    )
    .await;
    let error = error_of(answers[0].as_ref().unwrap());
    assert_eq!(error.code, google_rpc::Code::AlreadyExists as i32);
    let detail = error.details.as_ref().unwrap();
    assert_eq!(
        detail.type_url,
        "type.googleapis.com/event_store.client.WrongExpectedVersion"
    );
    let wev = shared::WrongExpectedVersion::decode(detail.value.as_slice()).unwrap();
    assert_eq!(
        wev.current_stream_revision_option,
        Some(shared::wrong_expected_version::CurrentStreamRevisionOption::CurrentStreamRevision(4))
    );
    assert_eq!(
        wev.expected_stream_position_option,
        Some(shared::wrong_expected_version::ExpectedStreamPositionOption::ExpectedNoStream(()))
    );
}

#[tokio::test]
async fn not_leader_ends_the_call_with_a_status() {
    let writer = FakeWriter::new(vec![Err(WriteError::NotLeader {
        leader: Some(("leader.local".into(), 2113)),
    })]);
    let answers = run_call(
        writer,
        vec![request(
            Uuid::new_v4(),
            Some(options("s")),
            vec![message(Some("A"), b"1")],
            true,
        )],
    )
    .await;
    assert_eq!(answers.len(), 1);
    let status = answers[0].as_ref().unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), "Leader info available");
    assert_eq!(
        status.metadata().get("leader-endpoint-host").unwrap(),
        "leader.local"
    );
}

#[tokio::test]
async fn stream_deleted_is_in_band_not_found() {
    let writer = FakeWriter::new(vec![Err(WriteError::StreamDeleted(
        StreamName::new("s").unwrap(),
    ))]);
    let answers = run_call(
        writer,
        vec![request(
            Uuid::new_v4(),
            Some(options("s")),
            vec![message(Some("A"), b"1")],
            true,
        )],
    )
    .await;
    let error = error_of(answers[0].as_ref().unwrap());
    assert_eq!(error.code, google_rpc::Code::NotFound as i32);
    assert_eq!(error.message, "StreamDeleted");
}

#[tokio::test]
async fn bad_requests_answer_in_band_without_writing() {
    let writer = FakeWriter::new(vec![]);
    let mut no_expected = options("s");
    no_expected.expected_stream_position = None;
    let mut no_stream = options("s");
    no_stream.stream_identifier = None;
    let answers = run_call(
        writer.clone(),
        vec![
            request(
                Uuid::new_v4(),
                Some(options("s")),
                vec![message(None, b"1")],
                true,
            ),
            request(
                Uuid::new_v4(),
                Some(no_expected),
                vec![message(Some("A"), b"1")],
                true,
            ),
            request(
                Uuid::new_v4(),
                Some(no_stream),
                vec![message(Some("A"), b"1")],
                true,
            ),
            request(
                Uuid::new_v4(),
                Some(options("")),
                vec![message(Some("A"), b"1")],
                true,
            ),
        ],
    )
    .await;
    assert_eq!(answers.len(), 4);
    for answer in &answers {
        let error = error_of(answer.as_ref().unwrap());
        assert_eq!(error.code, google_rpc::Code::InvalidArgument as i32);
        assert_eq!(error.message, "BadRequest");
    }
    let first = shared::BadRequest::decode(
        error_of(answers[0].as_ref().unwrap())
            .details
            .as_ref()
            .unwrap()
            .value
            .as_slice(),
    )
    .unwrap();
    assert_eq!(
        first.message,
        "Required Metadata Property 'type' is missing"
    );
    assert!(writer.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn too_large_appends_answer_maximum_append_size_exceeded() {
    let mut writer = FakeWriter::new(vec![]);
    writer.max_bytes = 8;
    let answers = run_call(
        writer.clone(),
        vec![request(
            Uuid::new_v4(),
            Some(options("s")),
            vec![message(Some("A"), b"12345"), message(Some("B"), b"12345")],
            true,
        )],
    )
    .await;
    let error = error_of(answers[0].as_ref().unwrap());
    assert_eq!(error.code, google_rpc::Code::InvalidArgument as i32);
    assert_eq!(error.message, "MaximumAppendSizeExceeded");
    let detail =
        shared::MaximumAppendSizeExceeded::decode(error.details.as_ref().unwrap().value.as_slice())
            .unwrap();
    assert_eq!(detail.max_append_size, 8);
    assert!(writer.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn expired_deadline_answers_timeout() {
    let writer = FakeWriter::new(vec![]);
    let mut expired = options("s");
    expired.deadline_option = Some(DeadlineOption::Deadline(prost_types::Duration {
        seconds: 0,
        nanos: 0,
    }));
    let answers = run_call(
        writer,
        vec![request(
            Uuid::new_v4(),
            Some(expired),
            vec![message(Some("A"), b"1")],
            true,
        )],
    )
    .await;
    let error = error_of(answers[0].as_ref().unwrap());
    assert_eq!(error.code, google_rpc::Code::DeadlineExceeded as i32);
    assert_eq!(error.message, "Timeout");
}

#[tokio::test(start_paused = true)]
async fn unfinished_append_times_out_at_its_deadline() {
    let writer = FakeWriter::new(vec![]);
    let (tx, rx) = mpsc::channel(4);
    let mut answers = spawn(writer, ReceiverStream::new(rx));
    let id = Uuid::new_v4();
    let mut short = options("s");
    short.deadline_option = Some(DeadlineOption::Deadline(prost_types::Duration {
        seconds: 0,
        nanos: 300_000_000,
    }));
    tx.send(Ok(request(
        id,
        Some(short),
        vec![message(Some("A"), b"1")],
        false,
    )))
    .await
    .unwrap();
    let started = Instant::now();
    let answer = answers.next().await.unwrap().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(answer.correlation_id, Some(wire_uuid::to_structured(id)));
    assert_eq!(
        error_of(&answer).code,
        google_rpc::Code::DeadlineExceeded as i32
    );
    drop(tx);
    assert!(
        answers.next().await.is_none(),
        "one answer per correlation id"
    );
}

#[tokio::test]
async fn half_close_times_out_unfinished_appends_and_ends_the_call() {
    let writer = FakeWriter::new(vec![success(0, 1)]);
    let answers = run_call(
        writer,
        vec![
            request(
                Uuid::new_v4(),
                Some(options("a")),
                vec![message(Some("A"), b"1")],
                false,
            ),
            request(
                Uuid::new_v4(),
                Some(options("b")),
                vec![message(Some("B"), b"1")],
                true,
            ),
        ],
    )
    .await;
    assert_eq!(answers.len(), 2);
    let mut codes: Vec<Option<i32>> = answers
        .iter()
        .map(|a| match &a.as_ref().unwrap().result {
            Some(batch_append_resp::Result::Error(e)) => Some(e.code),
            _ => None,
        })
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        vec![None, Some(google_rpc::Code::DeadlineExceeded as i32)]
    );
}

/// The Python client returns on the first answer without draining the call; the call
/// must end with the answer marked last, not whenever the worker lets go of its sender.
#[tokio::test]
async fn the_stream_ends_with_the_last_answer() {
    let (tx, rx) = mpsc::channel(4);
    let mut stream = BatchAppendStream { rx, ended: false };
    tx.send(Outgoing {
        answer: Ok(BatchAppendResp::default()),
        last: true,
    })
    .await
    .unwrap();
    assert!(stream.next().await.is_some());
    assert!(
        stream.next().await.is_none(),
        "ended although the sender lives"
    );
    drop(tx);
}

#[tokio::test]
async fn messages_for_unknown_ids_are_ignored() {
    let writer = FakeWriter::new(vec![]);
    let answers = run_call(
        writer.clone(),
        vec![request(
            Uuid::new_v4(),
            None,
            vec![message(Some("A"), b"1")],
            true,
        )],
    )
    .await;
    assert!(answers.is_empty());
    assert!(writer.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn string_correlation_ids_are_echoed_as_sent() {
    let writer = FakeWriter::new(vec![success(0, 5)]);
    let id = Uuid::new_v4();
    let mut req = request(id, Some(options("s")), vec![message(Some("A"), b"1")], true);
    req.correlation_id = Some(wire_uuid::to_string_form(id));
    let answers = run_call(writer, vec![req]).await;
    assert_eq!(
        answers[0].as_ref().unwrap().correlation_id,
        Some(wire_uuid::to_string_form(id))
    );
}
