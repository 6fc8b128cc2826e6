//! Who may vote (docs/design.md decision 8): a voter that cannot find its peers never leads on its
//! own, and a voter whose data directory was wiped comes back under a new identity and takes
//! its old self's place only after catching up.

mod common;

use std::time::{Duration, Instant};

use common::*;
use stele_testkit::client::{append_recorded, connect, json_events};
use stele_testkit::{ClusterOptions, Expected, History, Outcome, TestCluster, TestNode};

/// One cluster at a time: the machines that run these have two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TIMEOUT: Duration = Duration::from_secs(60);

fn node_id(dir: &std::path::Path) -> u64 {
    let bytes = std::fs::read(dir.join("node.json")).expect("reading node.json");
    let identity: serde_json::Value = serde_json::from_slice(&bytes).expect("parsing node.json");
    identity["node_id"].as_u64().expect("node_id in node.json")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_voter_that_cannot_find_its_peers_never_leads() {
    let _serial = SERIAL.lock().await;
    // ClusterSize 3, seeds that nobody answers: the node must stay leaderless.
    let mut node = TestNode::spawn(
        persistent()
            .arg("--cluster-size")
            .arg("3")
            .arg("--discover-via-dns")
            .arg("false")
            .arg("--gossip-seed")
            .arg("127.0.0.1:1,127.0.0.1:2")
            .arg("--gossip-interval-ms")
            .arg("100")
            .arg("--leader-election-timeout-ms")
            .arg("200"),
    );
    // Many election timeouts and gossip rounds.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(node.is_running(), "the node exited:\n{}", node.log_tail());
    assert!(
        !node.is_live().await,
        "a lone voter of a 3-node cluster reports ready"
    );
    let gossip: serde_json::Value = reqwest::get(format!("{}/gossip", node.http_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let members = gossip["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{gossip}");
    assert_eq!(members[0]["state"], "DiscoverLeader", "{gossip}");
    let client = connect(&node.connection_string()).unwrap();
    let (_, events) = json_events("Lonely", 1);
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        client.append_to_stream("lonely", &Default::default(), events),
    )
    .await;
    assert!(
        !matches!(result, Ok(Ok(_))),
        "a lone voter acknowledged a write: {result:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wiped_voter_rejoins_under_a_new_identity_and_replaces_its_old_self() {
    let _serial = SERIAL.lock().await;
    let mut cluster = TestCluster::start(ClusterOptions::new(STELE)).await;
    let history = History::new();
    let client = connect(&cluster.connection_string()).unwrap();
    for i in 0..5 {
        let stream = format!("before-{i}");
        let (outcome, _) =
            append_recorded(&client, &history, &stream, Expected::NoStream, 3, TIMEOUT).await;
        assert!(matches!(outcome, Outcome::Acked { .. }), "{outcome:?}");
    }
    let leader = cluster.leader().await.expect("a leader");
    let wiped = cluster.voters().find(|&k| k != leader).unwrap();
    let other = cluster
        .voters()
        .find(|&k| k != leader && k != wiped)
        .unwrap();
    let dir = cluster.node(wiped).data_dir().expect("persistent nodes");
    let old_id = node_id(&dir);

    cluster.kill(wiped);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    cluster.restart(wiped);
    cluster.wait_ready(wiped, TIMEOUT).await;
    let new_id = node_id(&dir);
    assert_ne!(
        old_id, new_id,
        "a wiped node must not reuse its old identity"
    );

    // The new identity must become a voter: with the third voter down, writes still need
    // it for a majority.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let states: Vec<Option<String>> = futures_states(&cluster, &[leader, wiped]).await;
        if states
            .iter()
            .all(|s| s.as_deref() == Some("Leader") || s.as_deref() == Some("Follower"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "states {states:?}\n{}",
            cluster.diagnostics().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Give the leader time to swap the learner in for the old voter.
    let deadline = Instant::now() + TIMEOUT;
    cluster.kill(other);
    let mut acked_after = false;
    while Instant::now() < deadline {
        let client = connect(&cluster.connection_string()).unwrap();
        let (outcome, _) = append_recorded(
            &client,
            &history,
            "after-wipe",
            Expected::Any,
            1,
            Duration::from_secs(5),
        )
        .await;
        if matches!(outcome, Outcome::Acked { .. }) {
            acked_after = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        acked_after,
        "no write acknowledged by the leader and the rejoined node\n{}",
        cluster.diagnostics().await
    );
    let reads = cluster.read_all_converged(&[leader, wiped], TIMEOUT).await;
    if let Err(errors) = history.verify(&reads) {
        panic!(
            "history check failed:\n{}\n{}",
            errors.join("\n"),
            cluster.diagnostics().await
        );
    }
}

async fn futures_states(cluster: &TestCluster, nodes: &[usize]) -> Vec<Option<String>> {
    let mut states = Vec::new();
    for &k in nodes {
        states.push(cluster.state(k).await);
    }
    states
}
