//! Operator commands on a single node: `Operations.ResignNode` and `SetNodePriority` through
//! the official Rust client, the same over HTTP (`/admin/node/resign`,
//! `/admin/node/priority/{n}`), Shutdown stopping the process (gRPC and `/admin/shutdown`),
//! the methods not built answering UNIMPLEMENTED, and the new
//! priority showing in `/gossip` (PROTOCOL.md §2, §9, §12).

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use kurrentdb::operations::{Client as OperationsClient, OperationalOptions};
use kurrentdb::ClientSettings;
use prost::Message;
use stele_proto::operations::SetNodePriorityReq;
use stele_proto::server_features::server_features_client::ServerFeaturesClient;
use stele_testkit::TestNode;
use tonic::Code;

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("building the HTTP client")
}

fn operations_client(node: &TestNode) -> OperationsClient {
    let settings: ClientSettings = node
        .connection_string()
        .parse()
        .expect("parsing the connection string");
    OperationsClient::new(settings).expect("creating the operations client")
}

/// `(status, body)` of a POST without a body.
async fn post(node: &TestNode, path: &str) -> (u16, String) {
    let response = http()
        .post(format!("{}{path}", node.http_url()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let status = response.status().as_u16();
    (status, response.text().await.expect("reading the body"))
}

/// This node's `nodePriority` in its own `/gossip`.
async fn gossip_priority(node: &TestNode) -> i64 {
    let gossip: serde_json::Value = http()
        .get(format!("{}/gossip", node.http_url()))
        .send()
        .await
        .expect("GET /gossip")
        .json()
        .await
        .expect("gossip is JSON");
    let port = u64::from(node.http_port());
    let member = gossip["members"]
        .as_array()
        .expect("gossip has members")
        .iter()
        .find(|m| m["httpEndPointPort"].as_u64() == Some(port))
        .unwrap_or_else(|| panic!("this node is in its own gossip: {gossip}"));
    member["nodePriority"]
        .as_i64()
        .unwrap_or_else(|| panic!("nodePriority is a number: {member}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn resign_and_set_priority_answer_ok_through_the_rust_client() {
    let (node, _client) = start_in_memory().await;
    let operations = operations_client(&node);
    let options = OperationalOptions::default();

    // A single node has nobody to hand leadership to; EventStoreDB answers OK all the same.
    operations
        .resign_node(&options)
        .await
        .expect("ResignNode answers OK");
    operations
        .set_node_priority(5, &options)
        .await
        .expect("SetNodePriority answers OK");
    assert_eq!(gossip_priority(&node).await, 5);

    // The node still serves writes afterwards.
    let client = client(&node);
    client
        .append_to_stream(
            "after-resign",
            &Default::default(),
            json_event("Happened", 1),
        )
        .await
        .expect("appending after ResignNode");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_negative_priority_is_accepted_over_raw_grpc() {
    // The Rust client only sends priorities as usize; the wire carries any int32.
    let (node, _client) = start_in_memory().await;
    let channel = wire::channel(&node).await;
    let request = SetNodePriorityReq { priority: -3 }.encode_to_vec();
    wire::raw_unary(
        &channel,
        "/event_store.client.operations.Operations/SetNodePriority",
        Bytes::from(request),
    )
    .await
    .expect("SetNodePriority(-3) answers OK");
    assert_eq!(gossip_priority(&node).await, -3);
}

#[tokio::test(flavor = "multi_thread")]
async fn operations_not_built_answer_unimplemented() {
    let (node, _client) = start_in_memory().await;
    let operations = operations_client(&node);
    let options = OperationalOptions::default();
    let scavenge = operations.start_scavenge(1, 0, &options).await;
    assert!(
        matches!(scavenge, Err(kurrentdb::Error::UnsupportedFeature)),
        "{:?}",
        scavenge.map(|_| ())
    );
    let merge = operations.merge_indexes(&options).await;
    assert!(
        matches!(merge, Err(kurrentdb::Error::UnsupportedFeature)),
        "{merge:?}"
    );

    // Over raw gRPC the status says why.
    let channel = wire::channel(&node).await;
    for path in ["/event_store.client.operations.Operations/StopScavenge"] {
        let status = wire::raw_unary(&channel, path, Bytes::new())
            .await
            .expect_err(path);
        assert_eq!(status.code(), Code::Unimplemented, "{path}: {status:?}");
        assert!(
            status.message().contains("not supported"),
            "{path}: {status:?}"
        );
    }
    // RestartPersistentSubscriptions is served: it restarts the subsystem.
    wire::raw_unary(
        &channel,
        "/event_store.client.operations.Operations/RestartPersistentSubscriptions",
        Bytes::new(),
    )
    .await
    .expect("RestartPersistentSubscriptions answers OK");
    // The node still serves.
    let (code, _) = post(&node, "/admin/node/resign").await;
    assert_eq!(code, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_stops_the_process_over_grpc_and_http() {
    for over_http in [false, true] {
        let (mut node, _client) = start_in_memory().await;
        if over_http {
            assert_eq!(post(&node, "/admin/shutdown").await, (200, "OK".to_owned()));
        } else {
            operations_client(&node)
                .shutdown(&OperationalOptions::default())
                .await
                .expect("Operations.Shutdown");
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while node.is_running() {
            assert!(
                std::time::Instant::now() < deadline,
                "the node did not stop after a shutdown request (over HTTP: {over_http})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn server_features_list_the_operations_served() {
    let (node, _client) = start_in_memory().await;
    let mut features = ServerFeaturesClient::new(wire::channel(&node).await);
    let methods = features
        .get_supported_methods(wire::empty())
        .await
        .expect("GetSupportedMethods")
        .into_inner();
    let mut operations: Vec<String> = methods
        .methods
        .iter()
        .filter(|m| m.service_name == "event_store.client.operations.operations")
        .map(|m| m.method_name.clone())
        .collect();
    operations.sort();
    assert_eq!(
        operations,
        [
            "resignnode",
            "restartpersistentsubscriptions",
            "setnodepriority",
            "shutdown"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http_admin_resign_and_priority() {
    let (node, _client) = start_in_memory().await;
    assert_eq!(
        post(&node, "/admin/node/resign").await,
        (200, "OK".to_owned())
    );
    assert_eq!(
        post(&node, "/admin/node/priority/7").await,
        (200, "OK".to_owned())
    );
    assert_eq!(gossip_priority(&node).await, 7);

    for bad in ["abc", "1.5", "99999999999"] {
        assert_eq!(
            post(&node, &format!("/admin/node/priority/{bad}")).await,
            (400, "nodePriority must be an integer.".to_owned()),
            "{bad}"
        );
    }
    // A rejected priority changes nothing.
    assert_eq!(gossip_priority(&node).await, 7);

    // GET is not how these are called.
    let get = http()
        .get(format!("{}/admin/node/resign", node.http_url()))
        .send()
        .await
        .expect("GET /admin/node/resign");
    assert_eq!(get.status().as_u16(), 405);
}
