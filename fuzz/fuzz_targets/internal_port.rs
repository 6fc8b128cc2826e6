//! stele-cluster internal port, end to end: a running single node (in memory) serves its
//! transport on loopback (`stele_cluster::fuzzing::serve_transport`, the same handlers a
//! clustered node uses), and each input is one connection to it: a handshake, then request
//! frames, every `Request` variant as the node decodes it from the bytes a peer sent.
//!
//! Input: a byte choosing the handshake (the first two bits: a correct one from a stranger,
//! one naming no cluster, one for another node, or the raw bytes that follow before any
//! handshake; the third bit: send the handshake's frame from the input instead), then pieces
//! of a length byte and that many bytes, each sent as one frame.
//!
//! Checks: nothing panics in the node (a panic in any of its tasks aborts the process: see
//! `main`); after every input, a new connection with a correct handshake still gets a refusal
//! for a stranger's vote within a deadline; every 256 inputs the node still takes a write.
#![no_main]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use stele_cluster::fuzzing::{node_id, serve_transport, vote_request};
use stele_cluster::transport::{read_frame, write_frame, Hello, HelloReply, Reply};
use stele_cluster::{Node, NodeConfig};
use stele_core::{ContentType, ExpectedRevision, ProposedEvent, StreamName};
use stele_fuzz::Input;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use uuid::Uuid;

/// A node id no member has.
const STRANGER: u64 = 0x0bad_0bad_0bad_0bad;
/// How long the node may take to answer one input's connection.
const ANSWER_DEADLINE: Duration = Duration::from_secs(8);

struct Target {
    runtime: tokio::runtime::Runtime,
    node: Node,
    addr: SocketAddr,
    me: u64,
    cluster: Uuid,
}

fn target() -> &'static Target {
    static TARGET: OnceLock<Target> = OnceLock::new();
    TARGET.get_or_init(|| {
        // A panic in any task of the node (openraft's core, a connection) must fail the run,
        // not vanish into a JoinHandle nobody awaits.
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default_hook(info);
            std::process::abort();
        }));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (node, addr, me, cluster) = runtime.block_on(async {
            let node = Node::start(config()).await.expect("node starts");
            assert!(node.wait_ready(Duration::from_secs(10)).await, "node ready");
            let addr = serve_transport(&node, "127.0.0.1:0".parse().unwrap())
                .await
                .expect("serving the internal port");
            let mut cluster = None;
            for _ in 0..500 {
                cluster = node.cluster_id();
                if cluster.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let me = node_id(&node);
            (
                node,
                addr,
                me,
                cluster.expect("a single node knows its cluster"),
            )
        });
        Target {
            runtime,
            node,
            addr,
            me,
            cluster,
        }
    })
}

fn config() -> NodeConfig {
    NodeConfig {
        db_dir: None,
        index_dir: None,
        chunk_size_bytes: 1024 * 1024,
        max_append_size_bytes: 64 * 1024,
        max_append_event_size_bytes: 64 * 1024,
        cluster_size: 1,
        http_advertised: ("127.0.0.1".into(), 2113),
        gossip_advertised: ("127.0.0.1".into(), 2113),
        internal_bind: ("127.0.0.1".parse().unwrap(), 1112),
        internal_advertised: ("127.0.0.1".into(), 1112),
        gossip: stele_cluster::GossipConfig::default(),
        node_priority: 0,
        read_only_replica: false,
        leader_election_timeout_ms: 100,
        write_timeout: Duration::from_secs(2),
    }
}

fn hello(from: u64, to: u64, cluster: Option<Uuid>) -> Hello {
    Hello {
        magic: 0x5354_454c,
        version: 1,
        from,
        to,
        cluster_id: cluster,
    }
}

/// Sends one input's connection: handshake and frames; reads whatever comes back until the
/// node closes the connection or stops sending.
async fn send(target: &Target, data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.byte();
    let Ok(mut conn) = TcpStream::connect(target.addr).await else {
        panic!("the internal port stopped accepting connections");
    };
    let handshake = match mode & 3 {
        0 => Some(hello(STRANGER, target.me, Some(target.cluster))),
        1 => Some(hello(STRANGER, target.me, None)),
        2 => Some(hello(STRANGER, target.me ^ 1, Some(target.cluster))),
        _ => None,
    };
    let mut out = Vec::new();
    match handshake {
        Some(hello) if mode & 4 == 0 => write_frame(&mut out, &hello).await.expect("hello encodes"),
        _ => {}
    }
    while !input.is_empty() {
        let len = usize::from(input.byte());
        let piece = input.take(len);
        out.extend_from_slice(&(piece.len() as u32).to_le_bytes());
        out.extend_from_slice(piece);
    }
    let exchange = async {
        // The node may close the connection at any point (a refusal, an undecodable frame).
        let _ = conn.write_all(&out).await;
        let _ = conn.shutdown().await;
        let mut sink = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut conn, &mut sink).await;
    };
    if tokio::time::timeout(ANSWER_DEADLINE, exchange)
        .await
        .is_err()
    {
        panic!("the node neither answered nor closed a connection within {ANSWER_DEADLINE:?}");
    }
}

/// A well-formed exchange: a stranger's vote on a correct handshake gets a refusal.
async fn still_answers(target: &Target) {
    let check = async {
        let mut conn = TcpStream::connect(target.addr).await.expect("connects");
        let hello = hello(STRANGER, target.me, Some(target.cluster));
        write_frame(&mut conn, &hello).await.expect("hello sent");
        let reply: HelloReply = read_frame(&mut conn).await.expect("hello answered");
        assert!(matches!(reply, HelloReply::Accepted), "{reply:?}");
        write_frame(&mut conn, &vote_request(1, STRANGER, false))
            .await
            .expect("vote sent");
        let reply: Reply = read_frame(&mut conn).await.expect("vote answered");
        assert!(
            matches!(&reply, Reply::Failed(r) if r == "refused"),
            "{reply:?}"
        );
    };
    if tokio::time::timeout(ANSWER_DEADLINE, check).await.is_err() {
        panic!("the node stopped answering well-formed requests");
    }
}

async fn still_writes(target: &Target) {
    let event = ProposedEvent {
        id: Uuid::new_v4(),
        event_type: "Probe".into(),
        content_type: ContentType::Json,
        custom_metadata: Default::default(),
        data: b"{}".to_vec().into(),
    };
    let stream = StreamName::new("fuzz-probe").expect("stream name");
    let append = target
        .node
        .append(stream, ExpectedRevision::Any, vec![event], true);
    match tokio::time::timeout(ANSWER_DEADLINE, append).await {
        Ok(Ok(_)) => {}
        other => panic!("the node no longer takes writes: {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    stele_fuzz::init();
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let target = target();
    target.runtime.block_on(async {
        send(target, data).await;
        still_answers(target).await;
        if RUNS.fetch_add(1, Ordering::Relaxed).is_multiple_of(256) {
            still_writes(target).await;
        }
    });
});
