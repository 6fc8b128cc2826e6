//! The HTTP persistent-subscription API (`/subscriptions`, PROTOCOL.md §7 and §12) on a real
//! `stele` process: the routes are wired into the server, percent-encoded names survive a
//! real HTTP stack, and groups made over HTTP and over gRPC are the same groups. The JSON
//! shapes, status codes and settings are tested beside the routes
//! (`stele-api/src/http/subscriptions/`).

mod common;

use std::time::Duration;

use common::*;
use kurrentdb::{GetPersistentSubscriptionInfoOptions, PersistentSubscriptionOptions};
use serde_json::{json, Value};
use stele_testkit::TestNode;

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("building the HTTP client")
}

/// `(status, body)`.
async fn send(
    node: &TestNode,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    let mut request = http().request(method.clone(), format!("{}{path}", node.http_url()));
    if let Some(body) = &body {
        request = request.json(body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = response.status().as_u16();
    let text = response.text().await.expect("reading the body");
    (status, text)
}

async fn get_json(node: &TestNode, path: &str) -> Value {
    let (status, body) = send(node, reqwest::Method::GET, path, None).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path} is JSON ({e}): {body}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_are_managed_over_http_on_a_real_node() {
    let (node, client) = start_in_memory().await;
    let stream = "http-orders::eu-1";
    let path = "/subscriptions/http-orders%3A%3Aeu-1/workers";
    let (status, body) = send(
        &node,
        reqwest::Method::PUT,
        path,
        Some(json!({"startFrom": 0, "maxRetryCount": 4, "namedConsumerStrategy": "Pinned"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = send(&node, reqwest::Method::PUT, path, Some(json!({}))).await;
    assert_eq!(status, 409);

    // The group made over HTTP is the one gRPC sees.
    let info = client
        .get_persistent_subscription_info(
            stream,
            "workers",
            &GetPersistentSubscriptionInfoOptions::default(),
        )
        .await
        .expect("gRPC GetInfo finds the group made over HTTP");
    let settings = info.settings.expect("the group's settings");
    assert_eq!(settings.max_retry_count, 4);
    assert_eq!(settings.consumer_strategy_name.to_string(), "Pinned");

    // And a group made over gRPC is listed over HTTP.
    client
        .create_persistent_subscription(
            stream,
            "auditors",
            &PersistentSubscriptionOptions::default(),
        )
        .await
        .expect("gRPC Create");
    let listed = get_json(&node, "/subscriptions/http-orders%3A%3Aeu-1").await;
    let mut groups: Vec<&str> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|g| g["groupName"].as_str().expect("a group name"))
        .collect();
    groups.sort_unstable();
    assert_eq!(groups, ["auditors", "workers"]);

    let info = get_json(&node, &format!("{path}/info")).await;
    assert_eq!(info["eventStreamId"], stream);
    assert_eq!(info["config"]["maxRetryCount"], 4);
    assert_eq!(info["config"]["namedConsumerStrategy"], "Pinned");
    let all = get_json(&node, "/subscriptions").await;
    assert_eq!(all.as_array().expect("a list").len(), 2);

    let (status, body) = send(
        &node,
        reqwest::Method::POST,
        &format!("{path}/replayParked?stopAt=10"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(&node, reqwest::Method::POST, "/subscriptions/restart", None).await;
    assert_eq!((status, body.as_str()), (200, "\"Restarting\""));

    let (status, _) = send(&node, reqwest::Method::DELETE, path, None).await;
    assert_eq!(status, 200);
    let (status, _) = send(&node, reqwest::Method::GET, &format!("{path}/info"), None).await;
    assert_eq!(status, 404);
    let (status, _) = send(&node, reqwest::Method::DELETE, path, None).await;
    assert_eq!(status, 404);
}
