//! A running node's internal port and gossip against hostile or stray peers, in process
//! (issue 11 items 3 and 5): requests from non-members and terms near overflow never reach the
//! consensus engine, and a single node knows its cluster and keeps other clusters out of its
//! gossip.

#![allow(
    clippy::disallowed_methods,
    reason = "tests may use the clock, random ids and threads"
)]

use std::time::Duration;

use stele_cluster::fuzzing::{append_request, node_id, serve_transport, vote_request};
use stele_cluster::transport::{read_frame, write_frame, Hello, HelloReply, Reply};
use stele_cluster::{GossipMessage, Node, NodeConfig, NodeStatus, VNodeState};
use stele_core::{ExpectedRevision, ProposedEvent, StreamName};
use tokio::net::TcpStream;
use uuid::Uuid;

fn config() -> NodeConfig {
    stele_cluster::fuzzing::single_node_config()
}

async fn start() -> Node {
    let node = Node::start(config()).await.expect("node starts");
    assert!(node.wait_ready(Duration::from_secs(10)).await);
    node
}

/// Waits (a little) until the node knows its cluster id.
async fn cluster_id(node: &Node) -> Uuid {
    for _ in 0..100 {
        if let Some(id) = node.cluster_id() {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the node never learnt its cluster id");
}

async fn append(node: &Node, stream: &str) -> bool {
    let event = ProposedEvent {
        id: Uuid::new_v4(),
        event_type: "Probe".into(),
        content_type: stele_core::ContentType::Json,
        custom_metadata: Default::default(),
        data: b"{}".to_vec().into(),
    };
    tokio::time::timeout(
        Duration::from_secs(5),
        node.append(
            StreamName::new(stream).unwrap(),
            ExpectedRevision::Any,
            vec![event],
            true,
        ),
    )
    .await
    .is_ok_and(|outcome| outcome.is_ok())
}

fn status(cluster_id: Option<Uuid>, state: VNodeState, port: u16) -> NodeStatus {
    NodeStatus {
        node_id: u64::from(port),
        instance_id: Uuid::new_v4(),
        cluster_id,
        state,
        is_alive: true,
        time_stamp: 1,
        http_endpoint: ("127.0.0.9".into(), port),
        gossip_endpoint: ("127.0.0.9".into(), port),
        internal_tcp: ("127.0.0.9".into(), port + 1),
        last_commit_position: 0,
        writer_checkpoint: 0,
        chaser_checkpoint: 0,
        last_log_index: 0,
        log_sync_count: 0,
        epoch_number: 99,
        node_priority: 0,
        read_only_replica: false,
        resigned: false,
        ready: true,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_single_node_keeps_another_clusters_leader_out_of_its_gossip() {
    // A single node refreshed its cluster id once at start, sometimes before openraft had
    // published the membership, and then never again: it merged another cluster's gossip and
    // listed that cluster's leader beside itself (issue 11 item 3).
    let node = start().await;
    let ours = cluster_id(&node).await;
    let theirs = Some(Uuid::new_v4());
    let their_leader = status(theirs, VNodeState::Leader, 3000);
    let their_follower = status(theirs, VNodeState::Follower, 3002);
    let from_them = GossipMessage {
        sender: their_follower,
        members: vec![their_leader.clone()],
        sent_at_unix_ms: stele_cluster::gossip::unix_ms_now(),
    };
    assert!(node.receive_gossip(&from_them).is_err());
    // Relayed by a node in no cluster yet: still kept out.
    let fresh = GossipMessage {
        sender: status(None, VNodeState::Unknown, 3004),
        members: vec![their_leader],
        sent_at_unix_ms: stele_cluster::gossip::unix_ms_now(),
    };
    node.receive_gossip(&fresh).unwrap();
    let members = node.members();
    let leaders = members
        .iter()
        .filter(|m| m.state == VNodeState::Leader)
        .count();
    assert_eq!(leaders, 1, "{members:#?}");
    assert!(members
        .iter()
        .all(|m| m.cluster_id.is_none_or(|c| c == ours)));
    node.shutdown().await;
}

async fn connect(addr: std::net::SocketAddr, hello: &Hello) -> (TcpStream, HelloReply) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    write_frame(&mut stream, hello).await.unwrap();
    let reply = read_frame(&mut stream).await.unwrap();
    (stream, reply)
}

#[tokio::test(flavor = "multi_thread")]
async fn raft_requests_from_non_members_or_far_ahead_never_reach_the_engine() {
    // A non-member's vote with term u64::MAX - 1 reached openraft, which panicked and
    // persisted that term: no election could follow (issue 11 item 5).
    let node = start().await;
    let ours = cluster_id(&node).await;
    let me = node_id(&node);
    let addr = serve_transport(&node, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let stranger = 0x0bad_0bad_0bad_0badu64;
    let hello = |from: u64| Hello {
        magic: 0x5354_454c,
        version: 1,
        from,
        to: me,
        cluster_id: Some(ours),
    };
    let (mut conn, reply) = connect(addr, &hello(stranger)).await;
    assert!(matches!(reply, HelloReply::Accepted), "{reply:?}");
    for request in [
        vote_request(u64::MAX - 1, stranger, false),
        vote_request(3, stranger, true),
        append_request(3, stranger),
    ] {
        write_frame(&mut conn, &request).await.unwrap();
        let reply: Reply = read_frame(&mut conn).await.unwrap();
        assert!(
            matches!(&reply, Reply::Failed(r) if r == "refused"),
            "{reply:?}"
        );
    }
    // Nor one that claims to be this node itself (the only member of a single node).
    let (mut conn, _) = connect(addr, &hello(me)).await;
    write_frame(&mut conn, &vote_request(u64::MAX - 1, me, false))
        .await
        .unwrap();
    let reply: Reply = read_frame(&mut conn).await.unwrap();
    assert!(
        matches!(&reply, Reply::Failed(r) if r == "refused"),
        "{reply:?}"
    );
    // A request that claims another sender than the handshake named is refused too.
    write_frame(&mut conn, &vote_request(1, stranger, true))
        .await
        .unwrap();
    let reply: Reply = read_frame(&mut conn).await.unwrap();
    assert!(
        matches!(&reply, Reply::Failed(r) if r == "refused"),
        "{reply:?}"
    );
    // The node still leads and takes writes.
    assert!(append(&node, "after-hostile").await);
    assert!(node.status().epoch_number < 1_000);
    node.shutdown().await;
}
