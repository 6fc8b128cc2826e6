//! The cluster's network under faults and hostile peers, with real `stele` processes (issue 11
//! items 2, 3 and 5): a killed follower must not flood the leader's log, a stranger node that
//! gossips with the cluster must never show two leaders or enter the cluster's gossip, and
//! whatever a process that reaches the internal port sends must not stop the cluster (even
//! one that claims the cluster's id in gossip, which the guard then lets through to openraft).
//!
//! Scenarios run one at a time (`SERIAL`): the machines that run them have two cores.

mod common;

use std::time::{Duration, Instant};

use common::*;
use stele_cluster::transport::{
    read_frame, write_frame, Hello, HelloReply, Reply, Request, MAX_FRAME_BYTES,
};
use stele_cluster::{GossipMessage, NodeStatus, VNodeState};
use stele_testkit::client::{connect, json_events};
use stele_testkit::{ClusterOptions, TestCluster, TestNode};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use uuid::Uuid;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TIMEOUT: Duration = Duration::from_secs(60);

/// The `stele` binary under test; `OTHER_STELE_BINARY` names another one (to measure an older
/// build with the same scenario).
fn binary() -> String {
    std::env::var("OTHER_STELE_BINARY").unwrap_or_else(|_| STELE.to_string())
}

fn log_lines(node: &TestNode) -> Vec<String> {
    std::fs::read_to_string(node.log_path())
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// User plus system CPU time of a process so far, in clock ticks (1/100 s on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime and stime are the
    // 12th and 13th.
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// Appends one event through the cluster; whether it was acknowledged within 5 s.
async fn append_one(client: &kurrentdb::Client, stream: &str) -> bool {
    let (_, events) = json_events("Probe", 1);
    let options = Default::default();
    let append = client.append_to_stream(stream, &options, events);
    matches!(
        tokio::time::timeout(Duration::from_secs(5), append).await,
        Ok(Ok(_))
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_follower_does_not_flood_the_leaders_log() {
    // With a follower SIGKILLed, the leader wrote ~80,000 WARN lines a second ("Unreachable
    // node … Connection refused") at 100% CPU until it came back (issue 11 item 2). Now the
    // peer is redialed with a capped backoff, and logged once down and once back.
    let _serial = SERIAL.lock().await;
    let mut cluster = TestCluster::start(ClusterOptions::new(binary())).await;
    let leader = cluster.wait_for_leader(&[], TIMEOUT).await;
    let follower = (0..3).find(|&k| k != leader).unwrap();
    let follower_port = cluster.int_tcp_port(follower).to_string();
    let client = connect(&cluster.connection_string()).unwrap();
    assert!(append_one(&client, "flood-before").await);

    let before_kill = log_lines(cluster.node(leader)).len();
    cluster.kill(follower);
    // The first lines (the peer going down) come within the first second.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start = log_lines(cluster.node(leader)).len();
    let pid = cluster.node(leader).pid().unwrap();
    let cpu_start = cpu_ticks(pid);
    let window = Duration::from_secs(5);
    let deadline = Instant::now() + window;
    let mut writes = 0;
    while Instant::now() < deadline {
        // Writes keep replication to the dead follower busy.
        if append_one(&client, "flood-during").await {
            writes += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lines = log_lines(cluster.node(leader));
    let grown = lines.len() - start;
    let cpu = (cpu_ticks(pid) - cpu_start) as f64 / 100.0 / window.as_secs_f64();
    println!(
        "leader log: {grown} lines in {window:?} with a follower down ({:.1} lines/s, CPU {:.0}% \
         of one core), {writes} writes acknowledged",
        grown as f64 / window.as_secs_f64(),
        cpu * 100.0
    );
    assert!(writes > 0, "no write succeeded with one follower down");
    if std::env::var_os("RUST_LOG").is_some() {
        println!("RUST_LOG is set: the log volume is not checked");
        return;
    }
    let tail = lines[start..].join("\n");
    assert!(
        grown < 20,
        "the leader logged {grown} lines in {window:?}:\n{}",
        &tail[..tail.len().min(4000)]
    );
    let down: Vec<&String> = lines[before_kill..]
        .iter()
        .filter(|l| l.contains("peer unreachable") && l.contains(&follower_port))
        .collect();
    assert_eq!(down.len(), 1, "{down:#?}");

    cluster.restart(follower);
    cluster.wait_ready(follower, TIMEOUT).await;
    let back = tokio::time::timeout(TIMEOUT, async {
        loop {
            let lines = log_lines(cluster.node(leader));
            if lines[before_kill..]
                .iter()
                .any(|l| l.contains("peer reachable again") && l.contains(&follower_port))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(
        back.is_ok(),
        "the leader did not log the follower coming back"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stranger_that_gossips_with_the_cluster_never_shows_two_leaders() {
    // A fresh single --mem-db node started on an address that an existing cluster still
    // gossips with listed that cluster's leader beside itself in 3 of 6 starts; clients then
    // failed with "Expected one leader, discovered 2" (issue 11 item 3). Here the stranger
    // takes the address of a killed member, so the cluster keeps gossiping with it.
    let _serial = SERIAL.lock().await;
    let mut cluster =
        TestCluster::start(ClusterOptions::new(binary()).gossip_interval_ms(200)).await;
    let leader = cluster.wait_for_leader(&[], TIMEOUT).await;
    let gone = (0..3).find(|&k| k != leader).unwrap();
    let port = |url: String| url.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let seed = cluster
        .http_url(leader)
        .trim_start_matches("http://")
        .to_owned();
    cluster.kill(gone);
    let stranger = TestNode::start(
        stele_testkit::NodeOptions::in_memory(binary())
            .ip(cluster.ip(gone))
            .ports(port(cluster.http_url(gone)), cluster.int_tcp_port(gone))
            .arg("--discover-via-dns")
            .arg("false")
            .arg("--gossip-seed")
            .arg(seed)
            .arg("--gossip-interval-ms")
            .arg("200"),
    )
    .await;
    let http = reqwest::Client::new();
    let gossip_of = |url: String| {
        let http = http.clone();
        async move {
            let gossip: serde_json::Value = http
                .get(format!("{url}/gossip"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            gossip["members"].as_array().unwrap().clone()
        }
    };
    let stranger_id = gossip_of(stranger.http_url()).await[0]["instanceId"].clone();
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut samples = 0;
    while Instant::now() < deadline {
        let members = gossip_of(stranger.http_url()).await;
        let leaders = members
            .iter()
            .filter(|m| m["state"] == "Leader" && m["isAlive"] == true)
            .count();
        assert!(
            leaders <= 1,
            "the stranger lists {leaders} leaders: {members:#?}"
        );
        for k in (0..3).filter(|&k| k != gone) {
            let members = gossip_of(cluster.http_url(k)).await;
            assert!(
                members.iter().all(|m| m["instanceId"] != stranger_id),
                "node {k} lists the stranger: {members:#?}"
            );
        }
        samples += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(samples > 5);
}

/// Node `k`'s raft node id and cluster id, as a process that gossips with it learns them.
async fn ids_by_gossip(cluster: &TestCluster, k: usize) -> (u64, Uuid) {
    gossip_as(cluster, k, 4242, None).await
}

/// Posts gossip to node `k` as raft node `node_id` of cluster `claim`; returns node `k`'s
/// raft node id and cluster id from its answer.
async fn gossip_as(
    cluster: &TestCluster,
    k: usize,
    node_id: u64,
    claim: Option<Uuid>,
) -> (u64, Uuid) {
    let me = NodeStatus {
        node_id,
        instance_id: Uuid::from_u64_pair(node_id, 0),
        cluster_id: claim,
        state: VNodeState::Unknown,
        is_alive: true,
        time_stamp: 0,
        http_endpoint: ("127.0.0.1".into(), 9),
        gossip_endpoint: ("127.0.0.1".into(), 9),
        internal_tcp: ("127.0.0.1".into(), 9),
        last_commit_position: 0,
        writer_checkpoint: 0,
        chaser_checkpoint: 0,
        last_log_index: 0,
        log_sync_count: 0,
        epoch_number: 0,
        node_priority: 0,
        read_only_replica: false,
        resigned: false,
        ready: false,
    };
    let message = GossipMessage {
        sender: me,
        members: Vec::new(),
        sent_at_unix_ms: stele_cluster::gossip::unix_ms_now(),
    };
    let answer: GossipMessage = reqwest::Client::new()
        .post(format!("{}/gossip", cluster.http_url(k)))
        .json(&message)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        answer.sender.node_id,
        answer
            .sender
            .cluster_id
            .expect("a member of a formed cluster"),
    )
}

/// Opens a connection to node `k`'s internal port and does the handshake.
async fn handshake(
    cluster: &TestCluster,
    k: usize,
    from: u64,
    to: u64,
    cluster_id: Option<Uuid>,
) -> (TcpStream, HelloReply) {
    let mut stream = TcpStream::connect((cluster.ip(k), cluster.int_tcp_port(k)))
        .await
        .unwrap();
    let hello = Hello {
        magic: 0x5354_454c,
        version: 1,
        from,
        to,
        cluster_id,
    };
    write_frame(&mut stream, &hello).await.unwrap();
    let reply: HelloReply = read_frame(&mut stream).await.unwrap();
    (stream, reply)
}

/// Resident memory of a process, in bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_peers_on_the_internal_port_cannot_stop_the_cluster() {
    // Issue 11 item 5: a vote with a term near 2^64 from a non-member made openraft panic and
    // left the cluster leaderless for good; a vote flood every 0.3 s stopped all writes; a
    // handshake without a cluster id was accepted; three connections announcing 512 MiB
    // frames before any handshake raised memory from 334 MB to 2.6 GB.
    let _serial = SERIAL.lock().await;
    let cluster = TestCluster::start(ClusterOptions::new(binary())).await;
    let leader = cluster.wait_for_leader(&[], TIMEOUT).await;
    let pid = cluster.node(leader).pid().unwrap();
    let rss_before = rss_bytes(pid);
    let (leader_id, cluster_id) = ids_by_gossip(&cluster, leader).await;
    let stranger = 0x0bad_0bad_0bad_0badu64;

    // (a) A non-member's vote with term u64::MAX - 1, and its pre-vote, append and transfer.
    let (mut conn, reply) =
        handshake(&cluster, leader, stranger, leader_id, Some(cluster_id)).await;
    assert!(matches!(reply, HelloReply::Accepted), "{reply:?}");
    for request in [
        stele_cluster::fuzzing::vote_request(u64::MAX - 1, stranger, false),
        stele_cluster::fuzzing::vote_request(u64::MAX - 1, stranger, true),
        stele_cluster::fuzzing::append_request(u64::MAX - 1, stranger),
        stele_cluster::fuzzing::transfer_leader_request(u64::MAX - 1, stranger, stranger),
    ] {
        write_frame(&mut conn, &request).await.unwrap();
        let reply: Reply = read_frame(&mut conn).await.unwrap();
        assert!(
            matches!(&reply, Reply::Failed(reason) if reason == "refused"),
            "{reply:?}"
        );
    }

    // (b) Oversized frames announced before the handshake: the connection is closed.
    for _ in 0..3 {
        let mut conn = TcpStream::connect((cluster.ip(leader), cluster.int_tcp_port(leader)))
            .await
            .unwrap();
        conn.write_all(&MAX_FRAME_BYTES.to_le_bytes())
            .await
            .unwrap();
        let _ = conn.write_all(&[0u8; 60_000]).await;
        let closed =
            tokio::time::timeout(Duration::from_secs(5), read_frame::<HelloReply>(&mut conn)).await;
        assert!(matches!(closed, Ok(Err(_))), "{closed:?}");
    }

    // (c) A handshake without the cluster id, and one for another node: refused, naming
    // nothing.
    let (_, reply) = handshake(&cluster, leader, stranger, leader_id, None).await;
    assert!(
        matches!(&reply, HelloReply::Refused(reason) if reason == "refused"),
        "{reply:?}\n{}",
        cluster.node(leader).log_tail()
    );
    let (_, reply) = handshake(&cluster, leader, stranger, 1, Some(cluster_id)).await;
    assert!(
        matches!(&reply, HelloReply::Refused(reason) if reason == "refused"),
        "{reply:?}"
    );

    // (d) A vote flood (every 0.3 s, to every node) while writes go on: every write succeeds.
    let mut flood = Vec::new();
    for k in 0..3 {
        let (node_id, _) = ids_by_gossip(&cluster, k).await;
        let (conn, reply) = handshake(&cluster, k, stranger, node_id, Some(cluster_id)).await;
        assert!(matches!(reply, HelloReply::Accepted), "{reply:?}");
        flood.push(conn);
    }
    let flooding = tokio::spawn(async move {
        let mut term = 1_000;
        loop {
            for conn in &mut flood {
                for pre_vote in [true, false] {
                    let request: Request =
                        stele_cluster::fuzzing::vote_request(term, stranger, pre_vote);
                    if write_frame(conn, &request).await.is_err() {
                        return;
                    }
                    let _ = read_frame::<Reply>(conn).await;
                }
            }
            term += 1;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let client = connect(&cluster.connection_string()).unwrap();
    let mut failed = 0;
    for _ in 0..30 {
        if !append_one(&client, "under-flood").await {
            failed += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    flooding.abort();
    assert_eq!(failed, 0, "{failed} of 30 writes failed under a vote flood");
    assert_eq!(
        cluster.wait_for_leader(&[], TIMEOUT).await,
        leader,
        "the leader changed"
    );
    assert!(append_one(&client, "after").await);
    let rss_after = rss_bytes(pid);
    println!(
        "leader memory: {} MB before, {} MB after",
        rss_before >> 20,
        rss_after >> 20
    );
    assert!(
        rss_after < rss_before + (100 << 20),
        "memory grew from {rss_before} to {rss_after} bytes"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stranger_that_claims_the_cluster_in_gossip_cannot_stop_writes_with_votes() {
    // The guard lets through a member of this node's cluster that gossip vouches for (a
    // lagging node must accept a leader admitted while it was away). A process that gossips
    // claiming the cluster's id is vouched for too; pre-vote and the leader lease must then
    // keep its vote flood from stopping writes.
    let _serial = SERIAL.lock().await;
    let cluster = TestCluster::start(ClusterOptions::new(binary())).await;
    let leader = cluster.wait_for_leader(&[], TIMEOUT).await;
    let stranger = 0x0bad_0bad_0bad_0badu64;
    let (_, cluster_id) = ids_by_gossip(&cluster, leader).await;
    let mut flood = Vec::new();
    for k in 0..3 {
        let (node_id, _) = gossip_as(&cluster, k, stranger, Some(cluster_id)).await;
        let (conn, reply) = handshake(&cluster, k, stranger, node_id, Some(cluster_id)).await;
        assert!(matches!(reply, HelloReply::Accepted), "{reply:?}");
        flood.push(conn);
    }
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (r, a) = (refused.clone(), answered.clone());
    let flooding = tokio::spawn(async move {
        let mut term = 1_000;
        loop {
            for conn in &mut flood {
                for pre_vote in [true, false] {
                    let request = stele_cluster::fuzzing::vote_request(term, stranger, pre_vote);
                    if write_frame(conn, &request).await.is_err() {
                        return;
                    }
                    match read_frame::<Reply>(conn).await {
                        Ok(Reply::Failed(_)) => {
                            r.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                        }
                        _ => a.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                    };
                }
            }
            term += 1;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let client = connect(&cluster.connection_string()).unwrap();
    let mut failed = 0;
    for i in 0..30 {
        if i % 5 == 0 {
            for k in 0..3 {
                gossip_as(&cluster, k, stranger, Some(cluster_id)).await;
            }
        }
        if !append_one(&client, "under-flood").await {
            failed += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    flooding.abort();
    println!(
        "flood: {} votes refused by the guard, {} answered by openraft; {failed} of 30 writes failed",
        refused.load(std::sync::atomic::Ordering::Relaxed),
        answered.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert_eq!(failed, 0, "{failed} of 30 writes failed under a vote flood");
}
