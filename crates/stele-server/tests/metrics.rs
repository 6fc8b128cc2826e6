//! Prometheus `/metrics` on a running node (issue 16, PROTOCOL-OPS.md §6.2), read as
//! Prometheus reads it (a text-format parser): the append counters and latency histogram,
//! the checkpoints and a persistent subscription group's figures move as the official
//! client appends and consumes; a secure node refuses an anonymous scrape and serves an
//! authenticated one.

mod common;

use std::time::Duration;

use common::*;
use kurrentdb::{
    AppendToStreamOptions, PersistentSubscriptionEvent, PersistentSubscriptionOptions,
    StreamPosition, SubscribeToPersistentSubscriptionOptions,
};
use prometheus_parse::{Scrape, Value};
use stele_testkit::{NodeOptions, TestCa, TestNode};

/// How long the figures of a persistent subscription group may take to show a delivery.
const WAIT: Duration = Duration::from_secs(20);

/// The text format's content type (KurrentDB's exporter answers with version 0.0.4).
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

async fn scrape(http: &reqwest::Client, url: &str) -> Scrape {
    let response = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        CONTENT_TYPE
    );
    let body = response.text().await.expect("reading /metrics");
    Scrape::parse(body.lines().map(|line| Ok(line.to_owned()))).expect("parsing /metrics")
}

/// The value of the sample `metric` whose labels include `labels`; for a histogram, its
/// count (the `+Inf` bucket).
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let sample = scrape.samples.iter().find(|sample| {
        sample.metric == metric
            && labels
                .iter()
                .all(|(name, value)| sample.labels.get(name) == Some(*value))
    })?;
    Some(match &sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        Value::Histogram(buckets) => {
            buckets
                .iter()
                .find(|bucket| bucket.less_than.is_infinite())?
                .count
        }
        Value::Summary(_) => return None,
    })
}

fn appends(scrape: &Scrape) -> f64 {
    value(
        scrape,
        "kurrentdb_grpc_method_duration_seconds",
        &[("activity", "append"), ("status", "successful")],
    )
    .expect("the append histogram")
}

fn calls(scrape: &Scrape) -> f64 {
    value(
        scrape,
        "kurrentdb_incoming_grpc_calls_total",
        &[("kind", "total")],
    )
    .expect("the gRPC call counter")
}

fn checkpoint(scrape: &Scrape, name: &str) -> f64 {
    value(
        scrape,
        "kurrentdb_checkpoints",
        &[("name", name), ("read", "non-flushed")],
    )
    .unwrap_or_else(|| panic!("the {name} checkpoint"))
}

#[tokio::test]
async fn metrics_move_as_the_official_client_appends_and_consumes() {
    let (node, client) = start_in_memory().await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = node.http_url();
    // The node is up once a write goes through.
    client
        .append_to_stream(
            "metered",
            &AppendToStreamOptions::default(),
            json_event("warm-up", 0),
        )
        .await
        .expect("the first append");
    let before = scrape(&http, &url).await;
    assert!(value(&before, "kurrentdb_proc_up_time_seconds_total", &[]).is_some_and(|up| up > 0.0));

    for n in 1..=3 {
        client
            .append_to_stream(
                "metered",
                &AppendToStreamOptions::default(),
                json_event("counted", n),
            )
            .await
            .expect("appending");
    }
    let after = scrape(&http, &url).await;
    assert_eq!(appends(&after) - appends(&before), 3.0);
    assert!(calls(&after) >= calls(&before) + 3.0);
    for name in ["writer", "chaser", "index"] {
        assert!(
            checkpoint(&after, name) > checkpoint(&before, name),
            "{name}: {} then {}",
            checkpoint(&before, name),
            checkpoint(&after, name)
        );
    }
    // The scrape itself is HTTP, not gRPC: nothing in flight now.
    assert_eq!(
        value(&after, "kurrentdb_current_incoming_grpc_calls", &[]),
        Some(0.0)
    );

    // A persistent subscription group: its figures appear, and move as a consumer takes
    // the stream's four events.
    client
        .create_persistent_subscription(
            "metered",
            "watchers",
            &PersistentSubscriptionOptions::default().start_from(StreamPosition::Start),
        )
        .await
        .expect("creating the group");
    let group = [("event_stream_id", "metered"), ("group_name", "watchers")];
    let mut consumer = client
        .subscribe_to_persistent_subscription(
            "metered",
            "watchers",
            &SubscribeToPersistentSubscriptionOptions::default(),
        )
        .await
        .expect("subscribing");
    let mut delivered = 0;
    while delivered < 4 {
        let message = tokio::time::timeout(WAIT, consumer.next_subscription_event())
            .await
            .expect("a message in time")
            .expect("the subscription goes on");
        if let PersistentSubscriptionEvent::EventAppeared { event, .. } = message {
            consumer.ack(&event).await.expect("acknowledging");
            delivered += 1;
        }
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = scrape(&http, &url).await;
        let figures = [
            "kurrentdb_persistent_sub_connections",
            "kurrentdb_persistent_sub_items_processed_total",
            "kurrentdb_persistent_sub_last_known_event_number",
            "kurrentdb_persistent_sub_in_flight_messages",
        ]
        .map(|metric| value(&now, metric, &group));
        if figures == [Some(1.0), Some(4.0), Some(3.0), Some(0.0)] {
            assert_eq!(
                value(&now, "kurrentdb_persistent_sub_parked_messages", &group),
                Some(0.0)
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the group's figures (connections, processed, last known, in flight): {figures:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_secure_node_refuses_an_anonymous_scrape_and_serves_its_users() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::create(STELE, dir.path());
    let tls = ca.node(&dir.path().join("node1"), "127.0.0.1", &[]);
    let node = TestNode::start(NodeOptions::in_memory(STELE).secure(tls)).await;
    let http = node.http_client();
    let url = node.http_url();

    let anonymous = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(anonymous.status().as_u16(), 401);

    // The default admin exists once the node leads.
    let deadline = tokio::time::Instant::now() + WAIT;
    let response = loop {
        let response = http
            .get(format!("{url}/metrics"))
            .basic_auth("admin", Some("changeit"))
            .send()
            .await
            .expect("GET /metrics");
        if response.status().as_u16() == 200 || tokio::time::Instant::now() >= deadline {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(response.status().as_u16(), 200);
    let body = response.text().await.unwrap();
    let scrape = Scrape::parse(body.lines().map(|line| Ok(line.to_owned()))).unwrap();
    assert!(checkpoint(&scrape, "writer") > 0.0);
}
