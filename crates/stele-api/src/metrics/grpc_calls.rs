//! Counting gRPC calls where they are served: `kurrentdb_current_incoming_grpc_calls`,
//! `kurrentdb_incoming_grpc_calls_total{kind}` and `kurrentdb_grpc_method_duration_seconds`
//! (PROTOCOL-OPS.md §6.2), as an axum middleware over the gRPC routes.
//!
//! Every handle (counter, gauge, histogram) is looked up once, when [`GrpcCalls`] is made;
//! a call costs an atomic add or two, a path comparison and, for the five timed methods, one
//! histogram observation when its response body ends. A call ends when its response body
//! has been sent to the end or dropped (a cancelled call, or a subscription the client
//! left): its status is the `grpc-status` of the response's headers (a trailers-only answer)
//! or trailers; a call that ends without one failed, and counts as `deadline-exceeded` when
//! its `grpc-timeout` had passed (tonic answers an expired deadline outside these routes).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// The smallest bucket of the method durations, in seconds (100 µs)...
const DURATION_FIRST_BUCKET_SECONDS: f64 = 0.0001;
/// ...each next one twice as wide...
const DURATION_BUCKET_FACTOR: f64 = 2.0;
/// ...up to 100 µs × 2^17 ≈ 13 s; longer calls (subscriptions) fall in `+Inf`.
const DURATION_BUCKETS: u16 = 18;

/// The methods KurrentDB times, with the `activity` label its shipped `metricsconfig.json`
/// gives them (`GrpcMethods`: appends are `append`, reads `read`). KurrentDB leaves deletes
/// and tombstones unlabelled, and so untimed, by default; Stele times them as `delete` and
/// `tombstone`.
const TIMED_METHODS: [(&str, &str); 5] = [
    ("/event_store.client.streams.Streams/Read", "read"),
    ("/event_store.client.streams.Streams/Append", "append"),
    ("/event_store.client.streams.Streams/BatchAppend", "append"),
    ("/event_store.client.streams.Streams/Delete", "delete"),
    ("/event_store.client.streams.Streams/Tombstone", "tombstone"),
];

/// gRPC status codes the `kind` label tells apart.
const GRPC_OK: &[u8] = b"0";
const GRPC_DEADLINE_EXCEEDED: &[u8] = b"4";
const GRPC_UNIMPLEMENTED: &[u8] = b"12";

type KindLabels = [(&'static str, &'static str); 1];
type DurationLabels = [(&'static str, &'static str); 2];

/// The gRPC call figures of one node; clones share them.
#[derive(Debug, Clone)]
pub struct GrpcCalls {
    inner: Arc<Handles>,
}

#[derive(Debug)]
struct Handles {
    current_family: Gauge,
    calls_family: Family<KindLabels, Counter>,
    durations_family: Family<DurationLabels, Histogram>,
    total: Counter,
    failed: Counter,
    unimplemented: Counter,
    deadline_exceeded: Counter,
    /// Per entry of [`TIMED_METHODS`]: successful, failed.
    durations: Vec<[Histogram; 2]>,
}

impl Default for GrpcCalls {
    fn default() -> Self {
        let calls_family = Family::<KindLabels, Counter>::default();
        let kind = |kind: &'static str| calls_family.get_or_create_owned(&[("kind", kind)]);
        let durations_family = Family::<DurationLabels, Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        let duration = |activity: &'static str, status: &'static str| {
            durations_family.get_or_create_owned(&[("activity", activity), ("status", status)])
        };
        let durations = TIMED_METHODS
            .iter()
            .map(|(_, activity)| {
                [
                    duration(activity, "successful"),
                    duration(activity, "failed"),
                ]
            })
            .collect();
        let handles = Handles {
            current_family: Gauge::default(),
            total: kind("total"),
            failed: kind("failed"),
            unimplemented: kind("unimplemented"),
            deadline_exceeded: kind("deadline-exceeded"),
            calls_family,
            durations_family,
            durations,
        };
        GrpcCalls {
            inner: Arc::new(handles),
        }
    }
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(
        DURATION_FIRST_BUCKET_SECONDS,
        DURATION_BUCKET_FACTOR,
        DURATION_BUCKETS,
    ))
}

impl GrpcCalls {
    /// Adds the three families to `registry` (they keep counting; the registry only reads).
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "kurrentdb_current_incoming_grpc_calls",
            "gRPC calls being served",
            self.inner.current_family.clone(),
        );
        registry.register(
            "kurrentdb_incoming_grpc_calls",
            "gRPC calls received, failed, unimplemented and past their deadline",
            self.inner.calls_family.clone(),
        );
        registry.register_with_unit(
            "kurrentdb_grpc_method_duration",
            "Duration of the Streams methods, by outcome",
            Unit::Seconds,
            self.inner.durations_family.clone(),
        );
    }

    /// Starts counting one call to `path`, with the request's headers for its deadline.
    fn begin(&self, path: &str, headers: &HeaderMap) -> CallGuard {
        self.inner.total.inc();
        self.inner.current_family.inc();
        let now = Instant::now();
        let deadline = headers
            .get("grpc-timeout")
            .and_then(|value| parse_grpc_timeout(value.as_bytes()))
            .map(|timeout| now + timeout);
        CallGuard {
            calls: self.inner.clone(),
            timed: TIMED_METHODS.iter().position(|(method, _)| *method == path),
            started: now,
            deadline,
            status: None,
        }
    }
}

/// The middleware over the gRPC routes.
pub(super) async fn count_call(
    State(calls): State<GrpcCalls>,
    request: Request,
    next: Next,
) -> Response {
    let mut guard = calls.begin(request.uri().path(), request.headers());
    let response = next.run(request).await;
    guard.see(response.headers());
    response.map(|body| Body::new(CountedBody { body, guard }))
}

/// One call being served: recorded when it is dropped with its response body.
#[derive(Debug)]
struct CallGuard {
    calls: Arc<Handles>,
    /// Index in [`TIMED_METHODS`].
    timed: Option<usize>,
    started: Instant,
    deadline: Option<Instant>,
    /// Whether the call answered `OK`; `None` until a `grpc-status` is seen.
    status: Option<Status>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Unimplemented,
    DeadlineExceeded,
    Failed,
}

impl CallGuard {
    /// Takes the call's status from headers or trailers that carry one.
    fn see(&mut self, headers: &HeaderMap) {
        if let Some(code) = headers.get("grpc-status") {
            self.status = Some(match code.as_bytes() {
                GRPC_OK => Status::Ok,
                GRPC_UNIMPLEMENTED => Status::Unimplemented,
                GRPC_DEADLINE_EXCEEDED => Status::DeadlineExceeded,
                _ => Status::Failed,
            });
        }
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        let calls = &self.calls;
        calls.current_family.dec();
        let now = Instant::now();
        let status = self.status.unwrap_or_else(|| {
            if self.deadline.is_some_and(|deadline| now >= deadline) {
                Status::DeadlineExceeded
            } else {
                Status::Failed
            }
        });
        if status != Status::Ok {
            calls.failed.inc();
        }
        match status {
            Status::Unimplemented => calls.unimplemented.inc(),
            Status::DeadlineExceeded => calls.deadline_exceeded.inc(),
            Status::Ok | Status::Failed => 0,
        };
        if let Some(method) = self.timed {
            let outcome = usize::from(status != Status::Ok);
            calls.durations[method][outcome].observe((now - self.started).as_secs_f64());
        }
    }
}

/// `grpc-timeout`: up to eight digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount = digits
        .iter()
        .fold(0u64, |sum, digit| sum * 10 + u64::from(digit - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// A response body that ends its call when it is done or dropped, and reads the status
/// from its trailers.
struct CountedBody {
    body: Body,
    guard: CallGuard,
}

impl HttpBody for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(trailers) = frame.trailers_ref() {
                this.guard.see(trailers);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_are_read_in_every_unit() {
        assert_eq!(parse_grpc_timeout(b"5S"), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_grpc_timeout(b"250m"),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse_grpc_timeout(b"2H"), Some(Duration::from_secs(7200)));
        assert_eq!(
            parse_grpc_timeout(b"99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        assert_eq!(parse_grpc_timeout(b"123456789S"), None);
        assert_eq!(parse_grpc_timeout(b"S"), None);
        assert_eq!(parse_grpc_timeout(b"10x"), None);
    }

    #[test]
    fn a_call_is_counted_by_its_status_and_timed_by_its_method() {
        let calls = GrpcCalls::default();
        let mut ok = calls.begin(TIMED_METHODS[1].0, &HeaderMap::new());
        assert_eq!(calls.inner.current_family.get(), 1);
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", "0".parse().unwrap());
        ok.see(&headers);
        drop(ok);
        let mut unimplemented = calls.begin("/x.Y/Z", &HeaderMap::new());
        headers.insert("grpc-status", "12".parse().unwrap());
        unimplemented.see(&headers);
        drop(unimplemented);
        // No status, deadline passed.
        let mut timeout = HeaderMap::new();
        timeout.insert("grpc-timeout", "0n".parse().unwrap());
        drop(calls.begin(TIMED_METHODS[0].0, &timeout));

        let mut registry = Registry::default();
        calls.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        for line in [
            "kurrentdb_current_incoming_grpc_calls 0",
            "kurrentdb_incoming_grpc_calls_total{kind=\"total\"} 3",
            "kurrentdb_incoming_grpc_calls_total{kind=\"failed\"} 2",
            "kurrentdb_incoming_grpc_calls_total{kind=\"unimplemented\"} 1",
            "kurrentdb_incoming_grpc_calls_total{kind=\"deadline-exceeded\"} 1",
            "kurrentdb_grpc_method_duration_seconds_count{activity=\"append\",status=\"successful\"} 1",
            "kurrentdb_grpc_method_duration_seconds_count{activity=\"read\",status=\"failed\"} 1",
            "kurrentdb_grpc_method_duration_seconds_count{activity=\"read\",status=\"successful\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }
}
