//! How clients and operators find and inspect a node: `/health/live`, `/gossip` over HTTP,
//! `Gossip.Read` and `ServerFeatures.GetSupportedMethods` over gRPC, and a client that
//! discovers the node through gossip (PROTOCOL.md §8, §9, §12).

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::wire::uuid_from_wire;
use common::*;
use kurrentdb::operations::VNodeState;
use kurrentdb::{AppendToStreamOptions, Client, ClientSettings, ReadStreamOptions};
use stele_proto::gossip::gossip_client::GossipClient;
use stele_proto::gossip::member_info;
use stele_proto::server_features::server_features_client::ServerFeaturesClient;
use stele_proto::shared;
use uuid::Uuid;

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("building the HTTP client")
}

#[tokio::test(flavor = "multi_thread")]
async fn health_live_answers_204() {
    let (node, _client) = start_in_memory().await;
    let url = format!("{}/health/live", node.http_url());
    let get = http().get(&url).send().await.expect("GET /health/live");
    assert_eq!(get.status().as_u16(), 204);
    let head = http().head(&url).send().await.expect("HEAD /health/live");
    assert_eq!(head.status().as_u16(), 204);
    let overridden = http()
        .get(format!("{url}?liveCode=200"))
        .send()
        .await
        .expect("GET /health/live?liveCode=200");
    assert_eq!(
        overridden.status().as_u16(),
        200,
        "?liveCode overrides the success code"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http_gossip_lists_one_leader_at_the_client_endpoint() {
    let (node, _client) = start_in_memory().await;
    let resp = http()
        .get(format!("{}/gossip", node.http_url()))
        .send()
        .await
        .expect("GET /gossip");
    assert_eq!(resp.status().as_u16(), 200);
    let body: serde_json::Value = resp.json().await.expect("/gossip is JSON");
    let members = body["members"].as_array().expect("members is an array");
    assert_eq!(members.len(), 1, "one member: {body}");
    let member = &members[0];
    assert_eq!(member["state"], "Leader", "{member}");
    assert_eq!(member["isAlive"], true, "{member}");
    assert_eq!(member["httpEndPointIp"], "127.0.0.1", "{member}");
    assert_eq!(
        member["httpEndPointPort"].as_u64(),
        Some(u64::from(node.http_port())),
        "{member}"
    );
    Uuid::parse_str(
        member["instanceId"]
            .as_str()
            .expect("instanceId is a string"),
    )
    .expect("instanceId is a UUID");

    // The official client reads the same document and needs every field it declares.
    let operations = kurrentdb::operations::Client::new(
        node.connection_string()
            .parse()
            .expect("parsing the connection string"),
    )
    .expect("creating the operations client");
    let gossip = operations.read_gossip().await.expect("client read_gossip");
    assert_eq!(gossip.len(), 1);
    assert_eq!(gossip[0].state, VNodeState::Leader);
    assert!(gossip[0].is_alive);
    assert_eq!(gossip[0].http_end_point.host, "127.0.0.1");
    assert_eq!(gossip[0].http_end_point.port, u32::from(node.http_port()));
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_gossip_lists_one_leader_at_the_client_endpoint() {
    let (node, _client) = start_in_memory().await;
    let mut gossip = GossipClient::connect(node.http_url())
        .await
        .expect("connecting to the gRPC port");
    let info = gossip
        .read(shared::Empty {})
        .await
        .expect("Gossip.Read")
        .into_inner();
    assert_eq!(info.members.len(), 1, "{info:?}");
    let member = &info.members[0];
    assert_eq!(member.state, member_info::VNodeState::Leader as i32);
    assert!(member.is_alive);
    let endpoint = member
        .http_end_point
        .as_ref()
        .expect("http_end_point is set (the client rejects gossip without it)");
    assert_eq!(endpoint.address, "127.0.0.1");
    assert_eq!(endpoint.port, u32::from(node.http_port()));
    let now_ticks = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as i64
        / 100;
    let hour_ticks = 3600 * 10_000_000;
    assert!(
        (member.time_stamp - now_ticks).abs() < hour_ticks,
        "time_stamp is .NET ticks since the Unix epoch of about now (PROTOCOL.md §8.1), got {}",
        member.time_stamp
    );

    // The same node in both gossip documents.
    let grpc_id = uuid_from_wire(member.instance_id.as_ref().expect("instance_id is set"));
    let body: serde_json::Value = http()
        .get(format!("{}/gossip", node.http_url()))
        .send()
        .await
        .expect("GET /gossip")
        .json()
        .await
        .expect("/gossip is JSON");
    let http_id = Uuid::parse_str(
        body["members"][0]["instanceId"]
            .as_str()
            .expect("instanceId is a string"),
    )
    .expect("instanceId is a UUID");
    assert_eq!(grpc_id, http_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn server_features_list_the_streams_methods_and_a_version() {
    let (node, _client) = start_in_memory().await;
    let mut features = ServerFeaturesClient::connect(node.http_url())
        .await
        .expect("connecting to the gRPC port");
    let supported = features
        .get_supported_methods(shared::Empty {})
        .await
        .expect("ServerFeatures.GetSupportedMethods")
        .into_inner();

    let version: Vec<&str> = supported.event_store_server_version.split('.').collect();
    assert!(
        version.len() >= 3 && version[..3].iter().all(|p| p.parse::<u32>().is_ok()),
        "the version is major.minor.patch, got {:?}",
        supported.event_store_server_version
    );
    let listed = |service: &str, method: &str| {
        supported
            .methods
            .iter()
            .find(|m| m.service_name == service && m.method_name == method)
    };
    for method in ["read", "append", "delete", "tombstone", "batchappend"] {
        assert!(
            listed("event_store.client.streams.streams", method).is_some(),
            "streams {method} is listed (lower-case names): {:?}",
            supported.methods
        );
    }
    let batch = listed("event_store.client.streams.streams", "batchappend").expect("listed");
    assert!(
        batch.features.iter().any(|f| f == "deadline_duration"),
        "batchappend carries feature deadline_duration: {batch:?}"
    );
    for method in &supported.methods {
        assert_eq!(method.method_name, method.method_name.to_lowercase());
        assert_eq!(method.service_name, method.service_name.to_lowercase());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_discovers_the_leader_through_gossip() {
    let (node, _client) = start_in_memory().await;
    // `+discover` makes the client ask Gossip.Read and then dial the advertised endpoint.
    let settings: ClientSettings = format!(
        "esdb+discover://127.0.0.1:{}?tls=false&nodePreference=leader",
        node.http_port()
    )
    .parse()
    .expect("parsing the connection string");
    let client = Client::new(settings).expect("creating the client");
    let written = client
        .append_to_stream(
            "discovered",
            &AppendToStreamOptions::default(),
            json_event("t", 1),
        )
        .await
        .expect("appending through a discovered connection");
    assert_eq!(written.next_expected_version, 0);
    let events = read_stream(&client, "discovered", &ReadStreamOptions::default())
        .await
        .expect("reading through a discovered connection");
    assert_eq!(events.len(), 1);
    assert_eq!(body_n(&events[0]), 1);
}
