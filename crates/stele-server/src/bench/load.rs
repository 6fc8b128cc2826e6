//! The writers of `stele bench`: one task each, one append in flight each, appending back to
//! back through `Streams.Append` or `Streams.BatchAppend` until the end of the window.
//!
//! What it owns: building the requests (PROTOCOL.md §5.1, §5.2), telling success from every
//! kind of failure (a gRPC status, an in-band wrong expected version or BatchAppend error, a
//! malformed answer, a client-side timeout), and the per-writer latency histograms. What it
//! does not own: deciding what the figures mean ([`super::report`]).

use std::collections::{BTreeMap, HashMap};
use std::error::Error as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures::channel::mpsc;
use futures::SinkExt;
use hdrhistogram::Histogram;
use stele_proto::google_rpc;
use stele_proto::shared::{self, StreamIdentifier};
use stele_proto::streams::streams_client::StreamsClient;
use stele_proto::streams::{
    append_req, append_resp, batch_append_req, batch_append_resp, AppendReq, BatchAppendReq,
    BatchAppendResp,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::transport::Channel;

use super::{Api, Options};

/// The first errors are printed as they happen; the rest are only counted.
const ERRORS_PRINTED_MAX: usize = 10;
/// After a failure a writer waits this long before its next append, so that a node that
/// refuses everything yields a count that can be read rather than millions of errors.
const PAUSE_AFTER_FAILURE: Duration = Duration::from_millis(10);
/// Writers still running this long after the window and the append timeout are abandoned
/// and reported as hung.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// Latencies are recorded in microseconds, up to an hour, to three significant digits.
const LATENCY_US_MAX: u64 = 3_600_000_000;
/// The event type every appended event carries.
const EVENT_TYPE: &str = "stele-bench";

/// What every writer does, and when.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub writers: u32,
    pub batch: u32,
    pub event_size_bytes: usize,
    pub streams: u32,
    pub api: Api,
    /// When the writers start.
    pub started: Instant,
    /// Appends completing from here on are measured...
    pub window_start: Instant,
    /// ...up to here; no append starts after it.
    pub window_end: Instant,
    /// How long one append may take.
    pub timeout: Duration,
    /// The `authorization` header every call carries (a secure node).
    pub authorization: Option<Authorization>,
}

impl Plan {
    pub fn new(options: &Options) -> Plan {
        let started = Instant::now();
        let window_start = started + Duration::from_secs_f64(options.warmup_secs);
        Plan {
            writers: options.writers,
            batch: options.batch,
            event_size_bytes: options.event_size_bytes,
            streams: options.streams(),
            api: options.api,
            started,
            window_start,
            window_end: window_start + Duration::from_secs_f64(options.duration_secs),
            timeout: Duration::from_secs_f64(options.timeout_secs),
            authorization: options.authorization().and_then(|value| value.parse().ok()),
        }
    }
}

/// An `authorization` header value.
type Authorization = tonic::metadata::MetadataValue<tonic::metadata::Ascii>;

/// `message` as a request with the plan's credentials.
fn authorized<T>(message: T, authorization: Option<&Authorization>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", value.clone());
    }
    request
}

/// The writers while they run.
pub(super) struct Running {
    plan: Plan,
    handles: Vec<JoinHandle<WriterTally>>,
    errors: Arc<ErrorLog>,
}

/// What the writers saw, merged.
#[derive(Debug)]
pub(super) struct Outcome {
    /// Latency of each append completed in the window, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Failed appends completed in the window.
    pub errors_measured: u64,
    /// Failed appends over the whole run, by kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Writers that had not returned by the end of the grace period, or panicked.
    pub writers_hung: u32,
    /// From the end of the window until every writer returned (or was abandoned).
    pub drain: Duration,
}

/// Starts one task per writer; writer `i` uses `channels[i % channels.len()]`.
pub(super) fn start(plan: Plan, channels: Vec<Channel>) -> Running {
    assert!(!channels.is_empty(), "at least one channel");
    let errors = Arc::new(ErrorLog::new(plan.started));
    let handles = (0..plan.writers)
        .map(|index| {
            let channel = channels[index as usize % channels.len()].clone();
            tokio::spawn(write(index, channel, plan.clone(), errors.clone()))
        })
        .collect();
    Running {
        plan,
        handles,
        errors,
    }
}

impl Running {
    /// Waits for every writer to return, for at most the append timeout plus a grace period
    /// after the window; writers still running then are aborted and counted as hung.
    pub async fn finish(self) -> Outcome {
        let deadline = self.plan.window_end + self.plan.timeout + STOP_GRACE;
        let mut latency_us = new_histogram();
        let mut errors_measured = 0;
        let mut writers_hung = 0;
        for (index, mut handle) in self.handles.into_iter().enumerate() {
            match tokio::time::timeout_at(deadline, &mut handle).await {
                Ok(Ok(tally)) => {
                    latency_us
                        .add(&tally.latency_us)
                        .expect("histograms with the same bounds");
                    errors_measured += tally.errors_measured;
                }
                Ok(Err(error)) => {
                    eprintln!("stele bench: writer {index} failed: {error}");
                    writers_hung += 1;
                }
                Err(_) => {
                    handle.abort();
                    writers_hung += 1;
                }
            }
        }
        if writers_hung > 0 {
            eprintln!(
                "stele bench: {writers_hung} writers had not returned {:.1}s after the window \
                 (append timeout {:.1}s): the node left their appends unanswered",
                (self.plan.timeout + STOP_GRACE).as_secs_f64(),
                self.plan.timeout.as_secs_f64()
            );
        }
        Outcome {
            latency_us,
            errors_measured,
            errors_by_kind: self.errors.counts(),
            writers_hung,
            drain: Instant::now().saturating_duration_since(self.plan.window_end),
        }
    }
}

/// One writer's own figures, merged at the end.
struct WriterTally {
    latency_us: Histogram<u64>,
    errors_measured: u64,
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid histogram bounds")
}

/// One writer: appends back to back until the end of the window.
async fn write(index: u32, channel: Channel, plan: Plan, errors: Arc<ErrorLog>) -> WriterTally {
    let mut client = StreamsClient::new(channel);
    let mut events = Events::new(index, plan.event_size_bytes);
    let mut batch_call: Option<BatchCall> = None;
    let mut tally = WriterTally {
        latency_us: new_histogram(),
        errors_measured: 0,
    };
    let mut appends_started: u64 = 0;
    while Instant::now() < plan.window_end {
        let stream = format!(
            "bench-{}",
            (u64::from(index) + appends_started) % u64::from(plan.streams)
        );
        appends_started += 1;
        let started = Instant::now();
        let attempt = async {
            match plan.api {
                Api::Append => {
                    append(
                        &mut client,
                        &stream,
                        &mut events,
                        plan.batch,
                        plan.authorization.as_ref(),
                    )
                    .await
                }
                Api::BatchAppend => {
                    batch_append(
                        &mut client,
                        &mut batch_call,
                        &stream,
                        &mut events,
                        plan.batch,
                        plan.authorization.as_ref(),
                    )
                    .await
                }
            }
        };
        let result = match tokio::time::timeout(plan.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Timeout(plan.timeout)),
        };
        let done = Instant::now();
        let measured = done >= plan.window_start && done <= plan.window_end;
        match result {
            Ok(()) => {
                if measured {
                    let micros =
                        u64::try_from(done.duration_since(started).as_micros()).unwrap_or(u64::MAX);
                    tally.latency_us.saturating_record(micros.max(1));
                }
            }
            Err(failure) => {
                // Whatever went wrong, the next BatchAppend starts on a fresh call: a late
                // answer on the old one would be taken for the next append's.
                batch_call = None;
                errors.record(index, &stream, &failure);
                if measured {
                    tally.errors_measured += 1;
                }
                let resume = (Instant::now() + PAUSE_AFTER_FAILURE).min(plan.window_end);
                tokio::time::sleep_until(resume).await;
            }
        }
    }
    tally
}

/// One append through `Streams.Append`: options, then one proposed message per event.
async fn append(
    client: &mut StreamsClient<Channel>,
    stream: &str,
    events: &mut Events,
    batch: u32,
    authorization: Option<&Authorization>,
) -> Result<(), Failure> {
    use append_req::options::ExpectedStreamRevision;
    let options = AppendReq {
        content: Some(append_req::Content::Options(append_req::Options {
            stream_identifier: Some(stream_identifier(stream)),
            expected_stream_revision: Some(ExpectedStreamRevision::Any(shared::Empty {})),
        })),
    };
    let mut requests = Vec::with_capacity(batch as usize + 1);
    requests.push(options);
    for _ in 0..batch {
        let message = append_req::ProposedMessage {
            id: Some(events.next_id()),
            metadata: events.metadata.clone(),
            custom_metadata: Bytes::new(),
            data: events.data.clone(),
        };
        requests.push(AppendReq {
            content: Some(append_req::Content::ProposedMessage(message)),
        });
    }
    let response = client
        .append(authorized(futures::stream::iter(requests), authorization))
        .await
        .map_err(Failure::Status)?
        .into_inner();
    match response.result {
        Some(append_resp::Result::Success(_)) => Ok(()),
        Some(append_resp::Result::WrongExpectedVersion(wrong)) => {
            Err(Failure::WrongExpectedVersion(format!("{wrong:?}")))
        }
        None => Err(Failure::Malformed("an AppendResp without a result")),
    }
}

/// A writer's long-lived `BatchAppend` call.
struct BatchCall {
    requests: mpsc::Sender<BatchAppendReq>,
    responses: tonic::Streaming<BatchAppendResp>,
}

/// One append through `Streams.BatchAppend`: one final request, one answer, on the writer's
/// call (opened here when there is none).
async fn batch_append(
    client: &mut StreamsClient<Channel>,
    call: &mut Option<BatchCall>,
    stream: &str,
    events: &mut Events,
    batch: u32,
    authorization: Option<&Authorization>,
) -> Result<(), Failure> {
    use batch_append_req::options::ExpectedStreamPosition;
    let correlation_id = events.next_id();
    let proposed_messages = (0..batch)
        .map(|_| batch_append_req::ProposedMessage {
            id: Some(events.next_id()),
            metadata: events.metadata.clone(),
            custom_metadata: Bytes::new(),
            data: events.data.clone(),
        })
        .collect();
    let request = BatchAppendReq {
        correlation_id: Some(correlation_id.clone()),
        options: Some(batch_append_req::Options {
            stream_identifier: Some(stream_identifier(stream)),
            expected_stream_position: Some(ExpectedStreamPosition::Any(())),
            // None: the server's write timeout applies.
            deadline_option: None,
        }),
        proposed_messages,
        is_final: true,
    };
    let call = match call {
        Some(call) => {
            call.requests
                .send(request)
                .await
                .map_err(|_| Failure::Malformed("the BatchAppend call stopped taking requests"))?;
            call
        }
        None => {
            let (mut requests, receiver) = mpsc::channel(1);
            // Queued before the call opens, so a server that waits for the first message
            // before answering with headers is served too.
            requests
                .try_send(request)
                .expect("a new channel has room for one request");
            let responses = client
                .batch_append(authorized(receiver, authorization))
                .await
                .map_err(Failure::Status)?
                .into_inner();
            call.insert(BatchCall {
                requests,
                responses,
            })
        }
    };
    let response = match call.responses.message().await {
        Ok(Some(response)) => response,
        Ok(None) => {
            return Err(Failure::Malformed(
                "the node ended the BatchAppend call without answering",
            ))
        }
        Err(status) => return Err(Failure::Status(status)),
    };
    if response.correlation_id.as_ref() != Some(&correlation_id) {
        return Err(Failure::Malformed(
            "a BatchAppendResp for another correlation id",
        ));
    }
    match response.result {
        Some(batch_append_resp::Result::Success(_)) => Ok(()),
        Some(batch_append_resp::Result::Error(status)) => Err(Failure::Rejected(status)),
        None => Err(Failure::Malformed("a BatchAppendResp without a result")),
    }
}

fn stream_identifier(stream: &str) -> StreamIdentifier {
    StreamIdentifier {
        stream_name: Bytes::copy_from_slice(stream.as_bytes()),
    }
}

/// What a writer's events are made of: one shared payload, one metadata map, and ids unique
/// within the run.
struct Events {
    data: Bytes,
    metadata: HashMap<String, String>,
    /// A random id per writer; the sequence number goes into its low bits.
    id_base: (u64, u64),
    sequence: u64,
}

impl Events {
    fn new(writer: u32, event_size_bytes: usize) -> Events {
        let (high, low) = uuid::Uuid::new_v4().as_u64_pair();
        Events {
            data: Bytes::from(vec![b'x'; event_size_bytes]),
            metadata: HashMap::from([
                ("type".to_string(), EVENT_TYPE.to_string()),
                (
                    "content-type".to_string(),
                    "application/octet-stream".to_string(),
                ),
            ]),
            // The writer goes into the high half too, so two writers never share an id even
            // if their random halves collide.
            id_base: (high ^ u64::from(writer), low),
            sequence: 0,
        }
    }

    /// A fresh id in the structured form (what the Rust client sends).
    fn next_id(&mut self) -> shared::Uuid {
        self.sequence += 1;
        let (high, low) = self.id_base;
        shared::Uuid {
            value: Some(shared::uuid::Value::Structured(shared::uuid::Structured {
                most_significant_bits: high as i64,
                least_significant_bits: (low ^ self.sequence) as i64,
            })),
        }
    }
}

/// Why an append failed.
#[derive(Debug)]
enum Failure {
    /// The call ended with a gRPC status (transport errors come as `Unavailable` etc.).
    Status(tonic::Status),
    /// `Append`'s in-band wrong expected version (cannot happen with `Any`, so worth seeing).
    WrongExpectedVersion(String),
    /// `BatchAppend`'s in-band error (a `google.rpc.Status`).
    Rejected(google_rpc::Status),
    /// An answer that does not follow the protocol.
    Malformed(&'static str),
    /// No answer within `--timeout`.
    Timeout(Duration),
}

impl Failure {
    /// The bucket the failure is counted in.
    fn kind(&self) -> String {
        match self {
            Failure::Status(status) => match exception(status) {
                Some(exception) => format!("gRPC {:?} ({exception})", status.code()),
                None => format!("gRPC {:?}", status.code()),
            },
            Failure::WrongExpectedVersion(_) => "in-band wrong expected version".into(),
            Failure::Rejected(status) => {
                format!("in-band {} {}", code_name(status.code), status.message)
            }
            Failure::Malformed(what) => format!("malformed answer: {what}"),
            Failure::Timeout(_) => "client timeout".into(),
        }
    }

    /// Everything known about the failure, for the first few printed.
    fn describe(&self) -> String {
        match self {
            Failure::Status(status) => {
                let mut text = format!("gRPC status {:?}: {:?}", status.code(), status.message());
                let headers = status.metadata().clone().into_headers();
                // Every answer has these two; the rest (`exception` and its arguments) say
                // what went wrong.
                let telling = headers
                    .iter()
                    .filter(|(key, _)| !matches!(key.as_str(), "content-type" | "date"));
                for (key, value) in telling {
                    text.push_str(&format!(
                        ", {key}: {}",
                        value.to_str().unwrap_or("<binary>")
                    ));
                }
                let mut source = status.source();
                while let Some(error) = source {
                    text.push_str(&format!(": {error}"));
                    source = error.source();
                }
                text
            }
            Failure::WrongExpectedVersion(details) => {
                format!("in-band wrong expected version: {details}")
            }
            Failure::Rejected(status) => format!(
                "in-band BatchAppend error {} {:?}, details {:?}",
                code_name(status.code),
                status.message,
                status.details.as_ref().map(|any| &any.type_url)
            ),
            Failure::Malformed(what) => format!("malformed answer: {what}"),
            Failure::Timeout(timeout) => {
                format!("no answer within {:.1}s", timeout.as_secs_f64())
            }
        }
    }
}

/// The `exception` trailer EventStoreDB names its errors with (PROTOCOL.md §6).
fn exception(status: &tonic::Status) -> Option<&str> {
    status.metadata().get("exception")?.to_str().ok()
}

fn code_name(code: i32) -> String {
    match google_rpc::Code::try_from(code) {
        Ok(code) => code.as_str_name().to_string(),
        Err(_) => format!("code {code}"),
    }
}

/// Counts failures by kind and prints the first few as they happen.
struct ErrorLog {
    started: Instant,
    counts: Mutex<BTreeMap<String, u64>>,
    seen: AtomicUsize,
}

impl ErrorLog {
    fn new(started: Instant) -> ErrorLog {
        ErrorLog {
            started,
            counts: Mutex::new(BTreeMap::new()),
            seen: AtomicUsize::new(0),
        }
    }

    fn record(&self, writer: u32, stream: &str, failure: &Failure) {
        *self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(failure.kind())
            .or_default() += 1;
        let seen = self.seen.fetch_add(1, Ordering::Relaxed);
        if seen < ERRORS_PRINTED_MAX {
            eprintln!(
                "stele bench: error at {:.3}s, writer {writer}, stream {stream}: {}",
                self.started.elapsed().as_secs_f64(),
                failure.describe()
            );
        } else if seen == ERRORS_PRINTED_MAX {
            eprintln!("stele bench: further errors are counted, not printed");
        }
    }

    fn counts(&self) -> BTreeMap<String, u64> {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_differ_between_writers_and_appends() {
        let mut first = Events::new(0, 4);
        let mut second = Events::new(1, 4);
        let ids = [first.next_id(), first.next_id(), second.next_id()];
        assert_ne!(ids[0], ids[1]);
        assert_ne!(ids[0], ids[2]);
        assert_ne!(ids[1], ids[2]);
        assert_eq!(first.data.len(), 4);
    }

    #[test]
    fn failures_are_counted_by_kind() {
        let status = tonic::Status::unavailable("down");
        assert_eq!(Failure::Status(status).kind(), "gRPC Unavailable");
        let rejected = google_rpc::Status {
            code: google_rpc::Code::DeadlineExceeded as i32,
            message: "Timeout".into(),
            details: None,
        };
        assert_eq!(
            Failure::Rejected(rejected).kind(),
            "in-band DEADLINE_EXCEEDED Timeout"
        );
    }
}
