//! Route tests against a real in-memory node (a single node needs no network) and the
//! real subsystem; the JSON is read back through the same shape the official Rust
//! client's HTTP fallback deserializes.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::header::HOST;
use axum::http::{HeaderMap, Method, Request};
use http_body_util::BodyExt;
use serde::Deserialize;
use stele_cluster::{GossipConfig, Node, NodeConfig};
use stele_core::{ContentType, ExpectedRevision, ProposedEvent, StreamName};
use tower::ServiceExt;
use uuid::Uuid;

use super::*;
use stele_services::persistent::{
    ConnectRequest, Delivery, GroupKey, NackAction, Settings, Source,
};

/// How long a condition may take to hold.
const DEADLINE: Duration = Duration::from_secs(10);

// The shape `kurrentdb` 1.2's `PersistentSubscriptionInfoHttpJson` and
// `PersistentSubscriptionConfig` deserialize (src/types.rs), field for field: required
// fields without `Option`/`default` must be present, with these types.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct ClientInfo {
    event_stream_id: String,
    group_name: String,
    status: String,
    average_items_per_second: f64,
    total_items_processed: usize,
    last_processed_event_number: i64,
    last_checkpointed_event_position: Option<String>,
    last_known_event_position: Option<String>,
    last_known_event_number: i64,
    #[serde(default)]
    connection_count: usize,
    total_in_flight_messages: usize,
    config: Option<ClientConfig>,
    #[serde(default)]
    read_buffer_count: usize,
    #[serde(default)]
    live_buffer_count: usize,
    #[serde(default)]
    retry_buffer_count: usize,
    #[serde(default)]
    outstanding_messages_count: usize,
    #[serde(default)]
    parked_message_count: usize,
    #[serde(default)]
    count_since_last_measurement: usize,
    #[serde(default)]
    connections: Vec<ClientConnection>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct ClientConfig {
    resolve_linktos: bool,
    /// The client takes a number (`0` start, `-1` end, a revision) or a position string.
    start_from: serde_json::Value,
    #[serde(default)]
    start_position: String,
    message_timeout_milliseconds: i64,
    extra_statistics: bool,
    max_retry_count: i64,
    live_buffer_size: i64,
    buffer_size: i64,
    read_batch_size: i64,
    prefer_round_robin: bool,
    #[serde(rename = "checkPointAfterMilliseconds")]
    checkpoint_after_milliseconds: i64,
    #[serde(rename = "minCheckPointCount")]
    min_checkpoint_count: i64,
    #[serde(rename = "maxCheckPointCount")]
    max_checkpoint_count: i64,
    max_subscriber_count: i64,
    /// An externally tagged enum in the client: one of its unit variant names.
    named_consumer_strategy: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct ClientConnection {
    from: String,
    username: String,
    average_items_per_second: f64,
    #[serde(rename = "totalItemsProcessed")]
    total_items: usize,
    count_since_last_measurement: usize,
    available_slots: usize,
    in_flight_messages: usize,
    connection_name: String,
    #[serde(default)]
    extra_statistics: Vec<ClientMeasurement>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct ClientMeasurement {
    key: String,
    value: i64,
}

/// What the client accepts for `config.startFrom`.
fn client_accepts_start_from(value: &serde_json::Value) -> bool {
    value.is_i64() || value.is_u64() || value.is_string()
}

/// What the client accepts as a `$all` position (`parse_position`).
fn client_parses_position(text: &str) -> bool {
    text.strip_prefix("C:")
        .and_then(|rest| rest.split_once("/P:"))
        .is_some_and(|(c, p)| c.parse::<u64>().is_ok() && p.parse::<u64>().is_ok())
}

/// The client's `parse_stream_position`, used on `config.startPosition` for `$all`.
fn client_parses_stream_position(text: &str) -> bool {
    matches!(text, "-1" | "C:-1/P:-1" | "0" | "C:0/P:0")
        || text.parse::<u64>().is_ok()
        || client_parses_position(text)
}

const STRATEGIES: [&str; 4] = [
    "DispatchToSingle",
    "RoundRobin",
    "Pinned",
    "PinnedByCorrelation",
];

fn check_client_shape(info: &ClientInfo) {
    let config = info.config.as_ref().expect("a group's config");
    assert!(client_accepts_start_from(&config.start_from), "{config:?}");
    assert!(STRATEGIES.contains(&config.named_consumer_strategy.as_str()));
    assert_eq!(info.connection_count, info.connections.len());
    if info.event_stream_id == "$all" {
        assert!(client_parses_stream_position(&config.start_position));
        for position in [
            &info.last_checkpointed_event_position,
            &info.last_known_event_position,
        ]
        .into_iter()
        .flatten()
        {
            assert!(client_parses_position(position), "{position}");
        }
    } else {
        // The client casts these to u64.
        assert!(info.last_processed_event_number >= 0);
        assert!(info.last_known_event_number >= 0);
    }
}

struct Fixture {
    node: Node,
    persistent: Subsystem,
}

async fn start() -> Fixture {
    let config = NodeConfig {
        db_dir: None,
        index_dir: None,
        chunk_size_bytes: 1024 * 1024,
        max_append_size_bytes: 1024 * 1024,
        max_append_event_size_bytes: 512 * 1024,
        cluster_size: 1,
        http_advertised: ("127.0.0.1".into(), 2113),
        gossip_advertised: ("127.0.0.1".into(), 2113),
        internal_bind: ("127.0.0.1".parse().unwrap(), 0),
        internal_advertised: ("127.0.0.1".into(), 1112),
        gossip: GossipConfig::default(),
        node_priority: 0,
        read_only_replica: false,
        leader_election_timeout_ms: 100,
        write_timeout: Duration::from_secs(10),
    };
    let node = Node::start(config).await.expect("an in-memory node starts");
    assert!(node.wait_ready(DEADLINE).await, "the node becomes ready");
    let persistent = Subsystem::start(
        node.clone(),
        stele_services::access::AccessControl::insecure(node.clone()),
    );
    // The subsystem starts its groups once it sees the node lead; wait for that, so
    // that the first request does not race it.
    let deadline = Instant::now() + DEADLINE;
    while let Err(error) = persistent.list(None).await {
        assert!(
            Instant::now() < deadline,
            "the subsystem does not start: {error}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Fixture { node, persistent }
}

impl Fixture {
    /// One request.
    async fn call(&self, method: Method, uri: &str, body: &str) -> (StatusCode, HeaderMap, String) {
        self.call_once(method, uri, body).await
    }

    async fn call_once(
        &self,
        method: Method,
        uri: &str,
        body: &str,
    ) -> (StatusCode, HeaderMap, String) {
        let response = routes(self.persistent.clone())
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(uri)
                    .header(HOST, "node.test:2113")
                    .body(Body::from(body.to_owned()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    async fn status(&self, method: Method, uri: &str, body: &str) -> StatusCode {
        self.call(method, uri, body).await.0
    }

    /// A group's info, checked against the client's shape.
    async fn info(&self, path: &str) -> (ClientInfo, serde_json::Value) {
        let (status, _, body) = self.call(Method::GET, &format!("{path}/info"), "").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let info: ClientInfo = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("the Rust client's shape reads {body}: {e}"));
        check_client_shape(&info);
        (info, serde_json::from_str(&body).unwrap())
    }

    async fn list(&self, uri: &str) -> Vec<ClientInfo> {
        let (status, _, body) = self.call(Method::GET, uri, "").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let infos: Vec<ClientInfo> = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("the Rust client's shape reads {body}: {e}"));
        infos.iter().for_each(check_client_shape);
        infos
    }

    async fn append(&self, stream: &str, count: usize) {
        let events = (0..count)
            .map(|n| ProposedEvent {
                id: Uuid::new_v4(),
                event_type: "test".into(),
                content_type: ContentType::Json,
                custom_metadata: Bytes::new(),
                data: Bytes::from(format!("{{\"n\":{n}}}")),
            })
            .collect();
        self.node
            .append(
                StreamName::new(stream).unwrap(),
                ExpectedRevision::Any,
                events,
                true,
            )
            .await
            .expect("the append succeeds");
    }

    /// Polls a group's info until `done` holds.
    async fn wait_for(
        &self,
        path: &str,
        what: &str,
        done: impl Fn(&ClientInfo) -> bool,
    ) -> ClientInfo {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let (info, _) = self.info(path).await;
            if done(&info) {
                return info;
            }
            assert!(Instant::now() < deadline, "{what}: last info {info:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn next_message(
    consumer: &mut stele_services::persistent::Consumer,
) -> stele_services::persistent::Message {
    match tokio::time::timeout(DEADLINE, consumer.next()).await {
        Ok(Some(Delivery::Message(message))) => *message,
        other => panic!("expected a message, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_is_created_read_updated_and_deleted() {
    let f = start().await;
    let body = r#"{"startFrom": 0, "resolveLinktos": true, "messageTimeoutMilliseconds": 5000,
        "extraStatistics": true, "maxRetryCount": 7, "liveBufferSize": 50, "bufferSize": 100,
        "readBatchSize": 10, "checkPointAfterMilliseconds": 500, "minCheckPointCount": 2,
        "maxCheckPointCount": 20, "maxSubscriberCount": 4,
        "namedConsumerStrategy": "DispatchToSingle"}"#;
    let (status, headers, text) = f
        .call(Method::PUT, "/subscriptions/orders-1/workers", body)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    assert_eq!(headers[LOCATION], "/subscriptions/orders-1/workers");
    assert_eq!(
        f.status(Method::PUT, "/subscriptions/orders-1/workers", body)
            .await,
        StatusCode::CONFLICT
    );

    let (info, json) = f.info("/subscriptions/orders-1/workers").await;
    assert_eq!(info.event_stream_id, "orders-1");
    assert_eq!(info.group_name, "workers");
    let config = info.config.as_ref().unwrap();
    assert!(config.resolve_linktos && config.extra_statistics);
    assert_eq!(config.start_from, serde_json::json!(0));
    assert_eq!(config.start_position, "0");
    assert_eq!(config.message_timeout_milliseconds, 5000);
    assert_eq!(config.max_retry_count, 7);
    assert_eq!(config.live_buffer_size, 50);
    assert_eq!(config.buffer_size, 100);
    assert_eq!(config.read_batch_size, 10);
    assert_eq!(config.checkpoint_after_milliseconds, 500);
    assert_eq!(config.min_checkpoint_count, 2);
    assert_eq!(config.max_checkpoint_count, 20);
    assert_eq!(config.max_subscriber_count, 4);
    assert_eq!(config.named_consumer_strategy, "DispatchToSingle");
    assert!(!config.prefer_round_robin);
    assert_eq!(
        json["links"][0]["href"],
        "http://node.test:2113/subscriptions/orders-1/workers/info"
    );
    assert_eq!(json["links"][1]["rel"], "replayParked");

    let listed = f.list("/subscriptions").await;
    assert!(listed.iter().any(|i| i.group_name == "workers"));
    let listed = f.list("/subscriptions/orders-1").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        f.status(Method::GET, "/subscriptions/orders-2", "").await,
        StatusCode::NOT_FOUND
    );

    // An update replaces every setting: what the body leaves out is the default again.
    assert_eq!(
        f.status(
            Method::POST,
            "/subscriptions/orders-1/workers",
            r#"{"startFrom": -1, "maxRetryCount": 3, "preferRoundRobin": true, "namedConsumerStrategy": ""}"#
        )
        .await,
        StatusCode::OK
    );
    let (info, _) = f.info("/subscriptions/orders-1/workers").await;
    let config = info.config.unwrap();
    assert_eq!(config.start_from, serde_json::json!(-1));
    assert_eq!(config.start_position, "-1");
    assert_eq!(config.max_retry_count, 3);
    assert_eq!(
        config.message_timeout_milliseconds,
        Settings::default().message_timeout_ms as i64
    );
    assert_eq!(config.named_consumer_strategy, "RoundRobin");
    assert!(config.prefer_round_robin);

    for (method, uri) in [
        (Method::POST, "/subscriptions/orders-1/nobody"),
        (Method::DELETE, "/subscriptions/orders-1/nobody"),
        (Method::GET, "/subscriptions/orders-1/nobody/info"),
        (Method::POST, "/subscriptions/orders-1/nobody/replayParked"),
    ] {
        assert_eq!(
            f.status(method.clone(), uri, "").await,
            StatusCode::NOT_FOUND,
            "{method} {uri}"
        );
    }

    assert_eq!(
        f.status(Method::DELETE, "/subscriptions/orders-1/workers", "")
            .await,
        StatusCode::OK
    );
    assert_eq!(
        f.status(Method::GET, "/subscriptions/orders-1/workers/info", "")
            .await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        f.status(Method::GET, "/subscriptions/orders-1", "").await,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn all_groups_and_names_that_need_escaping() {
    let f = start().await;
    let (status, _, body) = f
        .call(
            Method::PUT,
            "/subscriptions/%24all/audit",
            r#"{"startPosition": "C:0/P:0"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (info, _) = f.info("/subscriptions/%24all/audit").await;
    assert_eq!(info.event_stream_id, "$all");
    let config = info.config.unwrap();
    assert_eq!(config.start_position, "C:0/P:0");
    assert_eq!(info.last_processed_event_number, 0);
    assert_eq!(f.list("/subscriptions/$all").await.len(), 1);

    // `$`, `-`, `::`, `/` and a space in the stream; `/` in the group.
    let path = "/subscriptions/%24ce-a%3A%3Ab%2Fc%20d/g%2F1";
    let (status, headers, body) = f.call(Method::PUT, path, "").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(headers[LOCATION], path);
    let (info, _) = f.info(path).await;
    assert_eq!(info.event_stream_id, "$ce-a::b/c d");
    assert_eq!(info.group_name, "g/1");
    let listed = f.list("/subscriptions/%24ce-a%3A%3Ab%2Fc%20d").await;
    assert_eq!(listed[0].group_name, "g/1");
    assert_eq!(f.list("/subscriptions").await.len(), 2);

    // A stream named like the restart route is still listed by GET.
    assert_eq!(
        f.status(Method::PUT, "/subscriptions/restart/g", "").await,
        StatusCode::CREATED
    );
    assert_eq!(f.list("/subscriptions/restart").await.len(), 1);

    // EventStoreDB's paged listing: the middle one of three groups.
    let (status, _, body) = f
        .call(Method::GET, "/subscriptions?offset=1&count=1", "")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (page["offset"].as_u64(), page["total"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(page["subscriptions"].as_array().unwrap().len(), 1);
    let rels: Vec<&str> = page["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["rel"].as_str().unwrap())
        .collect();
    assert_eq!(rels, ["self", "first", "previous", "next"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_update_keeps_the_filter_of_an_all_group() {
    let f = start().await;
    let key = GroupKey::new(Source::All, "filtered");
    let filter = stele_services::filter::FilterSpec {
        on: stele_services::filter::FilterField::StreamName,
        regex: String::new(),
        prefixes: vec!["orders-".to_owned()],
    };
    f.persistent
        .create(Definition {
            key: key.clone(),
            filter: Some(filter.clone()),
            settings: Settings::default(),
            creator: stele_core::access::Principal::System,
        })
        .await
        .expect("create");
    let (status, _, body) = f
        .call(
            Method::POST,
            "/subscriptions/%24all/filtered",
            r#"{"maxRetryCount": 3}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let info = f.persistent.info(&key).await.expect("info");
    assert_eq!(info.definition.settings.max_retry_count, 3);
    assert_eq!(info.definition.filter, Some(filter));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_missing_or_empty_takes_the_defaults_and_bad_settings_are_400() {
    let f = start().await;
    assert_eq!(
        f.status(Method::PUT, "/subscriptions/s/empty", "").await,
        StatusCode::CREATED
    );
    let (info, _) = f.info("/subscriptions/s/empty").await;
    let config = info.config.unwrap();
    let defaults = Settings::default();
    assert_eq!(config.start_position, "-1");
    assert_eq!(config.buffer_size, i64::from(defaults.history_buffer_size));
    assert_eq!(
        config.max_checkpoint_count,
        i64::from(defaults.max_checkpoint_count)
    );
    assert_eq!(
        config.named_consumer_strategy,
        defaults.consumer_strategy.name()
    );

    for (body, expected) in [
        ("{not json", "Invalid subscription settings"),
        (
            r#"{"bufferSize": 10, "readBatchSize": 20}"#,
            "BufferSize (10) must be larger",
        ),
        (r#"{"liveBufferSize": 0}"#, "Live Buffer Size (0)"),
        (
            r#"{"namedConsumerStrategy": "Random"}"#,
            "Unknown consumer strategy",
        ),
        (r#"{"startFrom": "C:1/P:x"}"#, "Invalid start position"),
        (r#"{"maxRetryCount": -1}"#, "Invalid subscription settings"),
    ] {
        let (status, _, text) = f.call(Method::PUT, "/subscriptions/s/bad", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(text.contains(expected), "{body}: {text}");
    }
    assert_eq!(
        f.status(Method::GET, "/subscriptions/s/bad/info", "").await,
        StatusCode::NOT_FOUND
    );
    let (status, _, text) = f.call(Method::GET, "/subscriptions?count=0", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("must be a positive integer"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn parked_messages_are_replayed_and_restart_drops_consumers() {
    let f = start().await;
    f.append("parking-1", 3).await;
    let path = "/subscriptions/parking-1/g";
    assert_eq!(
        f.status(Method::PUT, path, r#"{"startFrom": 0}"#).await,
        StatusCode::CREATED
    );
    let key = GroupKey::new(Source::Stream(StreamName::new("parking-1").unwrap()), "g");
    let mut consumer = f
        .persistent
        .connect(ConnectRequest {
            key,
            buffer_size: 10,
            connection_name: "http-test".into(),
            from: "127.0.0.1:5000".into(),
            username: String::new(),
        })
        .await
        .expect("a consumer connects");
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(next_message(&mut consumer).await.ack_id());
    }
    consumer
        .handle()
        .nack(ids, NackAction::Park, "parked by the test".into());
    let info = f
        .wait_for(path, "three messages parked", |i| {
            i.parked_message_count == 3
        })
        .await;
    assert_eq!(info.connection_count, 1);
    assert_eq!(info.connections[0].connection_name, "http-test");
    assert_eq!(info.connections[0].from, "127.0.0.1:5000");
    assert_eq!(info.last_known_event_number, 2);
    assert_eq!(info.last_known_event_position.as_deref(), Some("2"));

    let (status, _, text) = f
        .call(Method::POST, &format!("{path}/replayParked?stopAt=abc"), "")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(text, "stopAt should be a properly formed positive long");

    // Two of the three come back, then the rest.
    assert_eq!(
        f.status(Method::POST, &format!("{path}/replayParked?stopAt=2"), "")
            .await,
        StatusCode::OK
    );
    for _ in 0..2 {
        let message = next_message(&mut consumer).await;
        consumer.handle().ack(vec![message.ack_id()]);
    }
    assert_eq!(
        f.status(Method::POST, &format!("{path}/replayParked"), "")
            .await,
        StatusCode::OK
    );
    let message = next_message(&mut consumer).await;
    consumer.handle().ack(vec![message.ack_id()]);

    let (status, _, body) = f.call(Method::POST, "/subscriptions/restart", "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "\"Restarting\"");
    let dropped = tokio::time::timeout(DEADLINE, async {
        loop {
            match consumer.next().await {
                Some(Delivery::Message(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the consumer hears of the restart");
    assert!(
        matches!(dropped, Some(Delivery::Dropped(_)) | None),
        "{dropped:?}"
    );
    let (info, _) = f.info(path).await;
    assert_eq!(info.connection_count, 0);
}
