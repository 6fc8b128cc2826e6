//! `Streams.BatchAppend` (PROTOCOL.md §5.2): a bidirectional stream of appends, each named by
//! a correlation id. The first message of an id carries its options, later ones add events,
//! and the message with `is_final` commits. Each id gets exactly one answer, success or an
//! in-band `google.rpc.Status` with one packed `event_store.client.*` detail. Not-leader and
//! not-ready end the whole call with a status instead (the Python client reads NotLeader
//! from the call status).
//!
//! Deadlines, as EventStoreDB does them: `deadline` (field 7) is a duration relative to the
//! options' arrival, `deadline_21_10_0` (field 6) an absolute time, and either is capped at
//! [`BATCH_WRITE_TIMEOUT`] (the Rust client sends "now + 10 s since the Unix epoch" as a
//! relative duration, so the cap is what applies to it). An expired deadline answers
//! Timeout. The deadline bounds only the wait for the rest of an append's messages: once an
//! append is committed to the node it runs to its outcome, which is answered, so a write
//! the node acknowledges is never reported as timed out.
//!
//! Bounds: at most [`MAX_PENDING_BATCHES`] unfinished ids and [`MAX_IN_FLIGHT_BATCHES`]
//! writes awaiting the node per call (reading stops until one finishes), each append at
//! most the node's maximum append size, and a bounded response channel.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, Stream, StreamExt};
use stele_core::access::StreamAccess;

use crate::grpc::caller::Caller;
use futures::FutureExt;
use stele_cluster::{AppendOutcome, Node, WriteError};
use stele_core::{ExpectedRevision, ProposedEvent, StreamName};
use stele_proto::shared::{self, AllStreamPosition, StreamIdentifier};
use stele_proto::streams::batch_append_req::options::{DeadlineOption, ExpectedStreamPosition};
use stele_proto::streams::batch_append_resp::{self, success};
use stele_proto::streams::{BatchAppendReq, BatchAppendResp};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::Status;
use uuid::Uuid;

use crate::grpc::events;
use crate::grpc::status;
use crate::grpc::wire_uuid;

/// The server write timeout that caps every requested deadline (EventStoreDB's default).
pub const BATCH_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Correlation ids whose final message has not arrived yet, per call.
pub const MAX_PENDING_BATCHES: usize = 32;

/// Committed appends awaiting the node, per call.
pub const MAX_IN_FLIGHT_BATCHES: usize = 64;

/// Responses buffered towards the client.
pub const BATCH_RESPONSE_MESSAGES: usize = 64;

/// One answer on its way to the client; `last` ends the call right after it.
struct Outgoing {
    answer: Result<BatchAppendResp, Status>,
    last: bool,
}

/// The response stream of one BatchAppend call. It ends right after the answer marked last,
/// without waiting for the worker to drop its sender, so the final answer and the call's
/// trailers leave together: the Python client returns on the first answer without draining
/// the call, and a call still open when its interpreter exits makes the exit hang.
pub struct BatchAppendStream {
    rx: mpsc::Receiver<Outgoing>,
    ended: bool,
}

impl Stream for BatchAppendStream {
    type Item = Result<BatchAppendResp, Status>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if self.ended {
            return std::task::Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            std::task::Poll::Ready(Some(outgoing)) => {
                self.ended = outgoing.last;
                std::task::Poll::Ready(Some(outgoing.answer))
            }
            std::task::Poll::Ready(None) => {
                self.ended = true;
                std::task::Poll::Ready(None)
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

/// What BatchAppend needs of a node; [`Node`] in production, a fake in tests.
pub trait BatchWriter: Send + Sync + 'static {
    fn max_append_size_bytes(&self) -> u32;

    /// The returned future is spawned, so it must own what it uses.
    fn append(
        &self,
        stream: StreamName,
        expected: ExpectedRevision,
        events: Vec<ProposedEvent>,
    ) -> BoxFuture<'static, Result<AppendOutcome, WriteError>>;
}

/// A node, whether the call asked for the leader (`requires-leader`), and who calls (each
/// batch names its own stream, so each is checked).
#[derive(Clone)]
pub struct RoutedNode {
    pub node: Node,
    pub requires_leader: bool,
    pub caller: Caller,
}

impl BatchWriter for RoutedNode {
    fn max_append_size_bytes(&self) -> u32 {
        self.node.max_append_size_bytes()
    }

    fn append(
        &self,
        stream: StreamName,
        expected: ExpectedRevision,
        events: Vec<ProposedEvent>,
    ) -> BoxFuture<'static, Result<AppendOutcome, WriteError>> {
        let node = self.node.clone();
        let requires_leader = self.requires_leader;
        let caller = self.caller.clone();
        async move {
            if caller
                .may_access(stream.as_str(), StreamAccess::Write)
                .await
                .is_err()
            {
                return Err(WriteError::AccessDenied);
            }
            node.append(stream, expected, events, requires_leader).await
        }
        .boxed()
    }
}

/// Starts serving one BatchAppend call and returns its response stream.
pub fn spawn<W, S>(writer: W, requests: S) -> BatchAppendStream
where
    W: BatchWriter,
    S: Stream<Item = Result<BatchAppendReq, Status>> + Send + Unpin + 'static,
{
    let (tx, rx) = mpsc::channel(BATCH_RESPONSE_MESSAGES);
    let worker = Worker {
        max_append_size_bytes: writer.max_append_size_bytes(),
        writer,
        answers: Answers { tx },
        reading: true,
        pending: HashMap::new(),
        in_flight: FuturesUnordered::new(),
    };
    tokio::spawn(worker.run(requests));
    BatchAppendStream { rx, ended: false }
}

/// The timeout an append gets from its options: the requested deadline capped at
/// [`BATCH_WRITE_TIMEOUT`], or `None` when the deadline has already passed.
pub fn batch_timeout(option: Option<&DeadlineOption>, now: SystemTime) -> Option<Duration> {
    let requested = match option {
        Some(DeadlineOption::Deadline(duration)) => {
            if duration.seconds < 0 || (duration.seconds == 0 && duration.nanos <= 0) {
                return None;
            }
            Duration::new(
                duration.seconds as u64,
                duration.nanos.clamp(0, 999_999_999) as u32,
            )
        }
        Some(DeadlineOption::Deadline21100(timestamp)) => {
            let deadline = SystemTime::try_from(*timestamp).ok()?;
            deadline.duration_since(now).ok()?
        }
        None => Duration::MAX,
    };
    if requested.is_zero() {
        None
    } else {
        Some(requested.min(BATCH_WRITE_TIMEOUT))
    }
}

/// An append whose final message has not arrived.
struct Pending {
    correlation_id: Option<shared::Uuid>,
    stream: StreamName,
    expected: ExpectedRevision,
    events: Vec<ProposedEvent>,
    size_bytes: usize,
    deadline: Instant,
}

/// A committed append's outcome, with what its answer echoes.
struct Done {
    correlation_id: Option<shared::Uuid>,
    stream: StreamName,
    outcome: Result<AppendOutcome, WriteError>,
}

/// The call is over: the client went away, or a call status was sent.
struct CallOver;

enum Step {
    Request(Option<Result<BatchAppendReq, Status>>),
    Done(Done),
    Tick,
}

struct Worker<W> {
    writer: W,
    max_append_size_bytes: u32,
    answers: Answers,
    /// Until the client half-closes.
    reading: bool,
    pending: HashMap<Uuid, Pending>,
    in_flight: FuturesUnordered<BoxFuture<'static, Done>>,
}

/// The sending half of the response stream. Its methods take `&Answers`, never `&Worker`
/// (whose in-flight futures are not `Sync`), across an await.
struct Answers {
    tx: mpsc::Sender<Outgoing>,
}

impl Answers {
    /// Sends one answer; `Err` when the client has gone.
    async fn send(
        &self,
        correlation_id: Option<shared::Uuid>,
        stream_identifier: Option<StreamIdentifier>,
        result: batch_append_resp::Result,
        last: bool,
    ) -> Result<(), CallOver> {
        let answer = BatchAppendResp {
            correlation_id,
            stream_identifier,
            result: Some(result),
            expected_stream_position: None,
        };
        self.tx
            .send(Outgoing {
                answer: Ok(answer),
                last,
            })
            .await
            .map_err(|_| CallOver)
    }

    /// An in-band error for one correlation id, while the call goes on.
    async fn error(
        &self,
        correlation_id: Option<shared::Uuid>,
        stream_identifier: Option<StreamIdentifier>,
        error: stele_proto::google_rpc::Status,
    ) -> Result<(), CallOver> {
        self.send(
            correlation_id,
            stream_identifier,
            batch_append_resp::Result::Error(error),
            false,
        )
        .await
    }

    /// Ends the call with a status.
    async fn fail(&self, status: Status) -> CallOver {
        let _ = self
            .tx
            .send(Outgoing {
                answer: Err(status),
                last: true,
            })
            .await;
        CallOver
    }
}

impl<W: BatchWriter> Worker<W> {
    async fn run<S>(mut self, mut requests: S)
    where
        S: Stream<Item = Result<BatchAppendReq, Status>> + Unpin,
    {
        loop {
            if self.is_over() {
                return;
            }
            let next_deadline = self.pending.values().map(|p| p.deadline).min();
            let wake_at =
                next_deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let can_read = self.reading && self.in_flight.len() < MAX_IN_FLIGHT_BATCHES;
            let step = tokio::select! {
                message = requests.next(), if can_read => Step::Request(message),
                Some(done) = self.in_flight.next(), if !self.in_flight.is_empty() => Step::Done(done),
                _ = tokio::time::sleep_until(wake_at), if next_deadline.is_some() => Step::Tick,
            };
            let result = match step {
                Step::Request(Some(Ok(request))) => self.handle(request).await,
                Step::Request(Some(Err(status))) => {
                    // The request stream broke (or a message could not be decoded): end the
                    // call. Appends already committed still run to their outcome.
                    let status = status::append_request_error(status, self.max_append_size_bytes);
                    Err(self.answers.fail(status).await)
                }
                Step::Request(None) => {
                    // The client half-closed: appends it never finished cannot finish now.
                    self.reading = false;
                    self.expire(None).await
                }
                Step::Done(done) => self.finish(done).await,
                Step::Tick => self.expire(Some(Instant::now())).await,
            };
            if result.is_err() {
                return;
            }
        }
    }

    async fn handle(&mut self, request: BatchAppendReq) -> Result<(), CallOver> {
        let wire_id = request.correlation_id.clone();
        let echo_identifier = request
            .options
            .as_ref()
            .and_then(|o| o.stream_identifier.clone());
        let correlation = match wire_uuid::from_wire_opt(request.correlation_id.as_ref()) {
            Ok(id) => id,
            Err(e) => {
                return self
                    .answers
                    .error(
                        wire_id,
                        echo_identifier,
                        status::in_band_bad_request(e.to_string()),
                    )
                    .await;
            }
        };

        if let Some(options) = request.options {
            // Options on a later message of a pending id are ignored, as in EventStoreDB.
            if !self.pending.contains_key(&correlation) {
                let Some(identifier) = options.stream_identifier else {
                    return self
                        .answers
                        .error(
                            wire_id,
                            None,
                            status::in_band_bad_request("Required field StreamIdentifier not set."),
                        )
                        .await;
                };
                let Some(timeout) = batch_timeout(
                    options.deadline_option.as_ref(),
                    stele_cluster::determinism::system_now(),
                ) else {
                    return self
                        .answers
                        .error(wire_id, Some(identifier), status::in_band_timeout())
                        .await;
                };
                let stream = match StreamName::from_bytes(&identifier.stream_name) {
                    Ok(stream) => stream,
                    Err(e) => {
                        return self
                            .answers
                            .error(
                                wire_id,
                                Some(identifier),
                                status::in_band_bad_request(e.to_string()),
                            )
                            .await;
                    }
                };
                let expected = match options.expected_stream_position {
                    Some(ExpectedStreamPosition::StreamPosition(r)) => ExpectedRevision::Exact(r),
                    Some(ExpectedStreamPosition::NoStream(())) => ExpectedRevision::NoStream,
                    Some(ExpectedStreamPosition::Any(())) => ExpectedRevision::Any,
                    Some(ExpectedStreamPosition::StreamExists(())) => {
                        ExpectedRevision::StreamExists
                    }
                    None => {
                        return self
                            .answers
                            .error(
                                wire_id,
                                Some(identifier),
                                status::in_band_bad_request(
                                    "'None' is not a valid ExpectedStreamPositionOneofCase",
                                ),
                            )
                            .await;
                    }
                };
                if self.pending.len() >= MAX_PENDING_BATCHES {
                    return self.answers.error(
                            wire_id,
                            Some(identifier),
                            status::in_band_bad_request(format!(
                                "Too many unfinished appends on this call (at most {MAX_PENDING_BATCHES})."
                            )),
                        )
                        .await;
                }
                self.pending.insert(
                    correlation,
                    Pending {
                        correlation_id: wire_id.clone(),
                        stream,
                        expected,
                        events: Vec::new(),
                        size_bytes: 0,
                        deadline: Instant::now() + timeout,
                    },
                );
            }
        }

        // Messages of an id that is not pending (never opened, already answered) are
        // ignored, as in EventStoreDB.
        let Some(pending) = self.pending.get_mut(&correlation) else {
            return Ok(());
        };
        let mut failure = None;
        for message in request.proposed_messages {
            match events::proposed_event(
                message.id.as_ref(),
                &message.metadata,
                message.custom_metadata,
                message.data,
            ) {
                Ok(event) => {
                    // What the append costs in the log, as the node and classic Append count it.
                    pending.size_bytes = pending
                        .size_bytes
                        .saturating_add(event.stored_size_bytes(&pending.stream));
                    if pending.size_bytes > self.max_append_size_bytes as usize {
                        failure = Some(status::in_band_maximum_append_size_exceeded(
                            self.max_append_size_bytes,
                        ));
                        break;
                    }
                    pending.events.push(event);
                }
                Err(status) => {
                    failure = Some(status::in_band_bad_request(status.message()));
                    break;
                }
            }
        }
        if let Some(error) = failure {
            let pending = self.pending.remove(&correlation).expect("pending above");
            let identifier = events::stream_identifier(pending.stream.as_str());
            return self
                .answers
                .error(pending.correlation_id, Some(identifier), error)
                .await;
        }
        if !request.is_final {
            return Ok(());
        }

        let pending = self.pending.remove(&correlation).expect("pending above");
        let handle = tokio::spawn(self.writer.append(
            pending.stream.clone(),
            pending.expected,
            pending.events,
        ));
        let correlation_id = pending.correlation_id;
        let stream = pending.stream;
        self.in_flight.push(
            async move {
                let outcome = handle.await.unwrap_or_else(|join| {
                    Err(WriteError::Internal(format!(
                        "batch append task failed: {join}"
                    )))
                });
                Done {
                    correlation_id,
                    stream,
                    outcome,
                }
            }
            .boxed(),
        );
        Ok(())
    }

    async fn finish(&mut self, done: Done) -> Result<(), CallOver> {
        let identifier = Some(events::stream_identifier(done.stream.as_str()));
        let result = match done.outcome {
            Ok(AppendOutcome::Success {
                current_revision,
                position,
            }) => batch_append_resp::Result::Success(batch_append_resp::Success {
                current_revision_option: Some(match current_revision {
                    Some(revision) => success::CurrentRevisionOption::CurrentRevision(revision.0),
                    None => success::CurrentRevisionOption::NoStream(()),
                }),
                position_option: Some(match position {
                    Some(p) => success::PositionOption::Position(AllStreamPosition {
                        commit_position: p.0,
                        prepare_position: p.0,
                    }),
                    None => success::PositionOption::NoPosition(()),
                }),
            }),
            Ok(AppendOutcome::WrongExpectedVersion { current, expected }) => {
                batch_append_resp::Result::Error(status::in_band_wrong_expected_version(
                    current, expected,
                ))
            }
            Err(error) => match status::batch_append_error(&error) {
                Ok(in_band) => batch_append_resp::Result::Error(in_band),
                Err(call_status) => return Err(self.answers.fail(call_status).await),
            },
        };
        let last = self.is_over();
        self.answers
            .send(done.correlation_id, identifier, result, last)
            .await
    }

    /// Answers Timeout for every unfinished append whose deadline is at or before `now`, or
    /// for all of them when `now` is `None` (the client half-closed).
    async fn expire(&mut self, now: Option<Instant>) -> Result<(), CallOver> {
        let expired: Vec<Uuid> = self
            .pending
            .iter()
            .filter(|(_, p)| now.is_none_or(|now| p.deadline <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let pending = self.pending.remove(&id).expect("listed above");
            let identifier = events::stream_identifier(pending.stream.as_str());
            let last = self.is_over();
            self.answers
                .send(
                    pending.correlation_id,
                    Some(identifier),
                    batch_append_resp::Result::Error(status::in_band_timeout()),
                    last,
                )
                .await?;
        }
        Ok(())
    }

    /// The client has half-closed and every append it sent has been answered.
    fn is_over(&self) -> bool {
        !self.reading && self.pending.is_empty() && self.in_flight.is_empty()
    }
}

#[cfg(test)]
mod tests;
