//! A secure cluster as operators run it (issue 13): certificates from `stele certs`, mutual
//! TLS between nodes and HTTPS gossip, the official Rust client discovering the cluster over
//! TLS; and strangers — a node with a certificate from another CA, and one from the right
//! CA without the node common name — that can neither join nor be taken for a node; and
//! the default users, made again by each new leader as EventStoreDB does at every election.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::*;
use kurrentdb::{AppendToStreamOptions, Client, ClientSettings, ReadStreamOptions};
use stele_testkit::{ClusterOptions, NodeOptions, TestCa, TestCluster, TestNode};

fn client_for(connection_string: &str) -> Client {
    let settings: ClientSettings = connection_string
        .parse()
        .expect("parsing the connection string");
    Client::new(settings).expect("creating the client")
}

/// `ip:port` of every node's HTTP port, as `--gossip-seed` takes them.
fn seeds(cluster: &TestCluster) -> String {
    (0..cluster.len())
        .map(|k| {
            cluster
                .http_url(k)
                .trim_start_matches("https://")
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Appends as admin, retrying while the cluster elects and creates the default users.
async fn append_eventually(client: &Client, stream: &str, n: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match client
            .append_to_stream(
                stream,
                &AppendToStreamOptions::default(),
                json_event("t", n),
            )
            .await
        {
            Ok(_) => return,
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("appending to the secure cluster: {e}"),
        }
    }
}

#[tokio::test]
async fn a_secure_cluster_replicates_and_refuses_strangers() {
    let cluster = TestCluster::start(ClusterOptions::new(STELE).secure(true)).await;
    let client = client_for(&cluster.connection_string());
    append_eventually(&client, "replicated", 1).await;

    // Every node serves the event (replication over mutual TLS).
    for k in 0..cluster.len() {
        let node = client_for(&cluster.node_connection_string(k));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let read = read_stream(&node, "replicated", &ReadStreamOptions::default()).await;
            match read {
                Ok(events) if events.len() == 1 => break,
                _ if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                other => panic!("node {k} did not serve the replicated event: {other:?}"),
            }
        }
    }

    // Strangers: another CA's node certificate, and the right CA without the node name.
    let dir = tempfile::tempdir().unwrap();
    let other_ca = TestCa::create(STELE, &dir.path().join("other"));
    let foreign = other_ca.node(&dir.path().join("foreign"), "127.0.0.9", &[]);
    let ca = cluster.ca().expect("a secure cluster has a CA").clone();
    let unnamed = ca.node(
        &dir.path().join("unnamed"),
        "127.0.0.10",
        &["-common-name", "not-a-node"],
    );
    let mut strangers = Vec::new();
    for (ip, tls) in [
        (Ipv4Addr::new(127, 0, 0, 9), foreign),
        (Ipv4Addr::new(127, 0, 0, 10), unnamed),
    ] {
        let options = NodeOptions::persistent(STELE)
            .ip(ip)
            .secure(tls)
            .arg("--cluster-size")
            .arg("3")
            .arg("--discover-via-dns")
            .arg("false")
            .arg("--gossip-seed")
            .arg(seeds(&cluster))
            .arg("--gossip-interval-ms")
            .arg("200");
        strangers.push(TestNode::spawn(options));
    }
    tokio::time::sleep(Duration::from_secs(5)).await;

    // Neither stranger is a member anywhere, nor does either find a leader.
    for k in 0..cluster.len() {
        let members = cluster.gossip(k).await;
        assert_eq!(members.len(), 3, "node {k} lists a stranger: {members:?}");
        assert!(
            members
                .iter()
                .all(|m| m.http_end_point_ip != "127.0.0.9" && m.http_end_point_ip != "127.0.0.10"),
            "{members:?}"
        );
    }
    for stranger in &strangers {
        assert!(!stranger.is_live().await, "a stranger became ready");
    }

    // The cluster goes on serving, and its logs stay quiet about the strangers' attempts.
    append_eventually(&client, "replicated", 2).await;
    for k in 0..cluster.len() {
        let log = std::fs::read_to_string(cluster.node(k).log_path()).unwrap_or_default();
        let lines = log.lines().count();
        assert!(
            lines < 400,
            "node {k} logged {lines} lines while strangers knocked"
        );
    }

    // A deleted default user comes back at the next election.
    let ca = cluster.ca().expect("a secure cluster has a CA").clone();
    let http = ca.http_client(Duration::from_secs(10));
    let leader = cluster.wait_for_leader(&[], Duration::from_secs(20)).await;
    let url = cluster.http_url(leader);
    let deleted = http
        .delete(format!("{url}/users/ops"))
        .basic_auth("admin", Some("changeit"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 200, "admin deletes ops");
    let ops_status = |k: usize| {
        let http = http.clone();
        let url = cluster.http_url(k);
        async move {
            http.get(format!("{url}/users/ops"))
                .basic_auth("admin", Some("changeit"))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };
    assert_eq!(ops_status(leader).await, 404, "ops is gone");
    let resigned = http
        .post(format!("{url}/admin/node/resign"))
        .basic_auth("admin", Some("changeit"))
        .send()
        .await
        .unwrap();
    assert_eq!(resigned.status().as_u16(), 200);
    let new_leader = cluster
        .wait_for_leader_change(leader, Duration::from_secs(30))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while ops_status(new_leader).await != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new leader did not make ops again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
