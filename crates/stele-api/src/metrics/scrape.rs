//! One scrape of `/metrics`: the figures read from the node when the request comes, and the
//! long-lived families of [`super::Metrics`], in one Prometheus text exposition.
//!
//! Families served (PROTOCOL-OPS.md §6.2 names):
//! - `kurrentdb_checkpoints{name,read="non-flushed"}`: `writer` (the log's durable end),
//!   `chaser` and `index` (the end of what is applied to the state machine and index, which
//!   Stele commits together). Stele has no byte position for `replication` (Raft replicates
//!   entries, whose positions are known once applied), nor `epoch`, `proposal`, `truncate`.
//! - the gRPC families of [`super::grpc_calls`];
//! - per persistent subscription group on the leader (`event_stream_id`, `group_name`):
//!   connections, in-flight and parked messages, items processed, last known and
//!   checkpointed event number (streams) or commit position (`$all`);
//! - process and machine: up time (with `pid`), memory, threads, disk I/O, load average,
//!   machine memory, from Linux's `/proc` (absent elsewhere).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::header::CONTENT_TYPE as CONTENT_TYPE_HEADER;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use stele_cluster::NodeStatus;
use stele_services::persistent::{GroupInfo, Source, Subsystem};

use super::Metrics;
use crate::http::process::{self, ProcessFigures, SystemFigures};
use crate::http::NodeView;

/// The `Content-Type` of the answer: Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// At most this many persistent subscription groups are reported per scrape (each is eight
/// series); the rest are left out, so that a scrape stays small and fast.
pub const MAX_PERSISTENT_GROUPS: usize = 10_000;

/// How long a scrape waits for the persistent subscriptions' figures before answering
/// without them (a subsystem busy electing or restarting must not stall the scrape).
pub const PERSISTENT_FIGURES_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
struct ScrapeState {
    node: Arc<dyn NodeView>,
    persistent: Option<Subsystem>,
    metrics: Metrics,
}

/// `GET /metrics` for `node`, with `persistent`'s groups when it is given.
pub(crate) fn route(
    node: Arc<dyn NodeView>,
    persistent: Option<Subsystem>,
    metrics: Metrics,
) -> Router {
    Router::new()
        .route("/metrics", get(get_metrics))
        .with_state(ScrapeState {
            node,
            persistent,
            metrics,
        })
}

async fn get_metrics(State(state): State<ScrapeState>) -> Response {
    let status = state.node.status();
    // Reading /proc is a handful of small file reads; keep them off the async workers anyway.
    let (process, system) =
        stele_cluster::blocking::spawn(|| (process::process(), process::system()))
            .await
            .unwrap_or_default();
    let mut groups = match &state.persistent {
        // Not leading (the groups run on the leader), or not answering in time: no groups.
        Some(persistent) => tokio::time::timeout(PERSISTENT_FIGURES_TIMEOUT, persistent.list(None))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    groups.truncate(MAX_PERSISTENT_GROUPS);
    let figures = Figures {
        status,
        process,
        system,
        groups,
        pid: std::process::id(),
        now: SystemTime::UNIX_EPOCH + stele_cluster::determinism::unix_now(),
    };
    match exposition(&state.metrics, &figures) {
        Ok(body) => ([(CONTENT_TYPE_HEADER, CONTENT_TYPE)], body).into_response(),
        // Writing to a String fails only if an encoder reports an error; none does.
        Err(std::fmt::Error) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// What one scrape reads from the node and the machine.
pub(super) struct Figures {
    pub status: NodeStatus,
    pub process: ProcessFigures,
    pub system: SystemFigures,
    pub groups: Vec<GroupInfo>,
    pub pid: u32,
    pub now: SystemTime,
}

type Labels<const N: usize> = [(&'static str, &'static str); N];
type GroupLabels = [(&'static str, String); 2];
type FloatGauge = Gauge<f64, AtomicU64>;
type FloatCounter = Counter<f64, AtomicU64>;

/// The text exposition of `metrics` and `figures`.
pub(super) fn exposition(metrics: &Metrics, figures: &Figures) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    checkpoints(&mut registry, &figures.status);
    metrics.grpc_calls().register(&mut registry);
    persistent_groups(&mut registry, &figures.groups);
    process_figures(&mut registry, figures);
    let mut body = String::new();
    prometheus_text::encode(&mut body, &registry)?;
    Ok(body)
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn checkpoints(registry: &mut Registry, status: &NodeStatus) {
    let family = Family::<Labels<2>, Gauge>::default();
    for (name, value) in [
        ("writer", status.writer_checkpoint),
        ("chaser", status.chaser_checkpoint),
        ("index", status.chaser_checkpoint),
    ] {
        family
            .get_or_create(&[("name", name), ("read", "non-flushed")])
            .set(saturating_i64(value));
    }
    registry.register(
        "kurrentdb_checkpoints",
        "Checkpoints: log positions the writer, chaser and index have reached",
        family,
    );
}

fn persistent_groups(registry: &mut Registry, groups: &[GroupInfo]) {
    let connections = Family::<GroupLabels, Gauge>::default();
    let in_flight = Family::<GroupLabels, Gauge>::default();
    let parked = Family::<GroupLabels, Gauge>::default();
    let processed = Family::<GroupLabels, Counter>::default();
    let last_known_number = Family::<GroupLabels, Gauge>::default();
    let last_known_position = Family::<GroupLabels, Gauge>::default();
    let checkpointed_number = Family::<GroupLabels, Gauge>::default();
    let checkpointed_position = Family::<GroupLabels, Gauge>::default();
    for group in groups {
        let key = &group.definition.key;
        let labels: GroupLabels = [
            ("event_stream_id", key.source.name().to_owned()),
            ("group_name", key.group.clone()),
        ];
        let count = |value: usize| saturating_i64(value as u64);
        connections
            .get_or_create(&labels)
            .set(count(group.connections.len()));
        in_flight
            .get_or_create(&labels)
            .set(saturating_i64(group.total_in_flight_messages));
        parked
            .get_or_create(&labels)
            .set(saturating_i64(group.parked_message_count));
        processed.get_or_create(&labels).inc_by(group.total_items);
        let (last_known, checkpointed) = match key.source {
            Source::All => (&last_known_position, &checkpointed_position),
            Source::Stream(_) => (&last_known_number, &checkpointed_number),
        };
        if let Some(position) = group.last_known_position {
            last_known
                .get_or_create(&labels)
                .set(saturating_i64(position));
        }
        if let Some(position) = group.last_checkpointed_position {
            checkpointed
                .get_or_create(&labels)
                .set(saturating_i64(position));
        }
    }
    let gauges = [
        (
            "kurrentdb_persistent_sub_connections",
            "Consumers connected to the group",
            connections,
        ),
        (
            "kurrentdb_persistent_sub_in_flight_messages",
            "Messages sent to consumers and not yet acknowledged",
            in_flight,
        ),
        (
            "kurrentdb_persistent_sub_parked_messages",
            "Messages in the group's parked stream",
            parked,
        ),
        (
            "kurrentdb_persistent_sub_last_known_event_number",
            "Revision of the last event the group read (stream sources)",
            last_known_number,
        ),
        (
            "kurrentdb_persistent_sub_last_known_event_commit_position",
            "Commit position of the last event the group read ($all)",
            last_known_position,
        ),
        (
            "kurrentdb_persistent_sub_checkpointed_event_number",
            "Revision of the group's last checkpoint (stream sources)",
            checkpointed_number,
        ),
        (
            "kurrentdb_persistent_sub_checkpointed_event_commit_position",
            "Commit position of the group's last checkpoint ($all)",
            checkpointed_position,
        ),
    ];
    for (name, help, family) in gauges {
        registry.register(name, help, family);
    }
    registry.register(
        "kurrentdb_persistent_sub_items_processed",
        "Messages the group has delivered",
        processed,
    );
}

fn process_figures(registry: &mut Registry, figures: &Figures) {
    let process = &figures.process;
    let system = &figures.system;
    if let Some(start) = process.start_time {
        let pid = figures.pid.to_string();
        let up_time = Family::<[(&'static str, String); 1], FloatCounter>::default();
        let seconds = figures
            .now
            .duration_since(start)
            .unwrap_or_default()
            .as_secs_f64();
        up_time.get_or_create(&[("pid", pid)]).inc_by(seconds);
        registry.register_with_unit(
            "kurrentdb_proc_up_time",
            "Time since the process started",
            Unit::Seconds,
            up_time,
        );
    }
    let memory = Family::<Labels<1>, Gauge>::default();
    for (kind, value) in [
        ("working-set", process.resident_bytes),
        ("virtual-bytes", process.virtual_bytes),
    ] {
        if let Some(value) = value {
            memory
                .get_or_create(&[("kind", kind)])
                .set(saturating_i64(value));
        }
    }
    registry.register_with_unit(
        "kurrentdb_proc_mem",
        "Process memory: resident (working set) and virtual",
        Unit::Bytes,
        memory,
    );
    if let Some(threads) = process.threads {
        let gauge = Gauge::<i64>::default();
        gauge.set(saturating_i64(threads));
        registry.register(
            "kurrentdb_proc_thread_count",
            "Threads of the process",
            gauge,
        );
    }
    if let Some(io) = process.disk_io {
        let disk = Family::<Labels<1>, Counter>::default();
        disk.get_or_create(&[("activity", "read")])
            .inc_by(io.read_bytes);
        disk.get_or_create(&[("activity", "written")])
            .inc_by(io.written_bytes);
        registry.register_with_unit(
            "kurrentdb_disk_io",
            "Bytes the process read from and wrote to storage",
            Unit::Bytes,
            disk,
        );
    }
    if let Some([one, five, fifteen]) = system.load_average {
        let load = Family::<Labels<1>, FloatGauge>::default();
        for (period, value) in [("1m", one), ("5m", five), ("15m", fifteen)] {
            load.get_or_create(&[("period", period)]).set(value);
        }
        registry.register("kurrentdb_sys_load_avg", "Machine load average", load);
    }
    let machine_memory = Family::<Labels<1>, Gauge>::default();
    for (kind, value) in [
        ("free", system.available_memory_bytes),
        ("total", system.total_memory_bytes),
    ] {
        if let Some(value) = value {
            machine_memory
                .get_or_create(&[("kind", kind)])
                .set(saturating_i64(value));
        }
    }
    registry.register_with_unit(
        "kurrentdb_sys_mem",
        "Machine memory: available and total",
        Unit::Bytes,
        machine_memory,
    );
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::http::test_node::{status, FakeNode};

    #[tokio::test]
    async fn a_scrape_reports_the_node_checkpoints_as_prometheus_text() {
        let node = Arc::new(FakeNode(Mutex::new(status())));
        let response = route(node, None, Metrics::default())
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE_HEADER], CONTENT_TYPE);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(body.to_vec()).unwrap();
        for line in [
            "kurrentdb_checkpoints{name=\"writer\",read=\"non-flushed\"} 5000",
            "kurrentdb_checkpoints{name=\"chaser\",read=\"non-flushed\"} 4500",
            "kurrentdb_checkpoints{name=\"index\",read=\"non-flushed\"} 4500",
            "kurrentdb_incoming_grpc_calls_total{kind=\"total\"} 0",
            "kurrentdb_current_incoming_grpc_calls 0",
            "kurrentdb_grpc_method_duration_seconds_count{activity=\"append\",status=\"successful\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }

    #[test]
    fn process_figures_that_are_absent_are_left_out() {
        let figures = Figures {
            status: status(),
            process: ProcessFigures::default(),
            system: SystemFigures::default(),
            groups: Vec::new(),
            pid: 7,
            now: SystemTime::UNIX_EPOCH + stele_cluster::determinism::unix_now(),
        };
        let text = exposition(&Metrics::default(), &figures).unwrap();
        assert!(!text.contains("kurrentdb_proc_up_time"), "{text}");
        assert!(!text.contains("kurrentdb_proc_thread_count"), "{text}");
        assert!(!text.contains("kurrentdb_proc_mem_bytes{"), "{text}");
    }
}
