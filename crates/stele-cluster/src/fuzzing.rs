//! Entry points for the fuzz targets in `fuzz/` (not part of the API: hidden from the docs and
//! free to change). It re-exports the record decoders, which are otherwise private to this
//! crate; the transport and gossip decoders are public already. It also builds raft requests
//! and serves a single node's internal port, for the internal-port fuzz target and the
//! hostile-peer tests.

pub use crate::record::{decode_entry, decode_header, decode_record, RecordBody, RecordHeader};

/// Encodes a decoded record again, as `record::encode_entry` encodes each part, so a fuzz
/// target can check that what decodes re-encodes to something that decodes to the same record.
pub fn encode_record(header: &RecordHeader, body: &RecordBody) -> Vec<u8> {
    let mut bytes = postcard::to_stdvec(header).expect("headers always encode");
    postcard::to_io(body, &mut bytes).expect("bodies always encode");
    bytes
}

/// Hands `command` to the node as if a peer had forwarded it over the internal port, for tests
/// and fuzz targets of what a hostile peer can send.
pub async fn forward(
    node: &crate::Node,
    command: stele_core::Command,
) -> Result<stele_core::CommandResult, crate::transport::ForwardError> {
    node.handle_forward(command).await
}

/// Raft requests as a peer (or a hostile process) would send them on the internal port, for
/// the internal-port fuzz target and the hostile-peer tests: a vote or pre-vote by candidate
/// `node` in `term`.
pub fn vote_request(term: u64, node: u64, pre_vote: bool) -> crate::transport::Request {
    let rpc = openraft::raft::VoteRequest::new(crate::types::Vote::new(term, node), None);
    if pre_vote {
        crate::transport::Request::PreVote(rpc)
    } else {
        crate::transport::Request::Vote(rpc)
    }
}

/// An empty append entries request (a heartbeat) from leader `node` in `term`.
pub fn append_request(term: u64, node: u64) -> crate::transport::Request {
    crate::transport::Request::AppendEntries(openraft::raft::AppendEntriesRequest {
        vote: crate::types::Vote::new_committed(term, node),
        prev_log_id: None,
        entries: Vec::new(),
        leader_commit: None,
    })
}

/// A leadership transfer from leader `node` in `term` to `to`.
pub fn transfer_leader_request(term: u64, node: u64, to: u64) -> crate::transport::Request {
    crate::transport::Request::TransferLeader(openraft::raft::TransferLeaderRequest::new(
        crate::types::Vote::new_committed(term, node),
        to,
        None,
    ))
}

/// Serves `node`'s internal port on `addr` with the handlers a clustered node uses, and
/// returns the address bound. A single node (cluster size 1) has no peers and opens no
/// internal port; this lets a fuzz target reach its transport, guard and consensus engine
/// all the same. Serving stops when the node shuts down.
pub async fn serve_transport(
    node: &crate::node::Node,
    addr: std::net::SocketAddr,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    crate::controller::serve_internal_port(node, Box::new(listener));
    Ok(bound)
}

/// This node's id, as a peer's handshake must name it.
pub fn node_id(node: &crate::node::Node) -> u64 {
    node.node_id()
}

/// The single-node, in-memory configuration the in-process tests and the internal-port fuzz
/// target start nodes with: small chunks, a 100 ms election timeout.
pub fn single_node_config() -> crate::NodeConfig {
    crate::NodeConfig {
        db_dir: None,
        index_dir: None,
        chunk_size_bytes: 64 * 1024,
        max_append_size_bytes: 1024 * 1024,
        max_append_event_size_bytes: 512 * 1024,
        cluster_size: 1,
        http_advertised: ("127.0.0.1".into(), 2113),
        gossip_advertised: ("127.0.0.1".into(), 2113),
        internal_bind: (std::net::Ipv4Addr::LOCALHOST.into(), 1112),
        internal_advertised: ("127.0.0.1".into(), 1112),
        gossip: crate::GossipConfig::default(),
        node_priority: 0,
        read_only_replica: false,
        leader_election_timeout_ms: 100,
        write_timeout: std::time::Duration::from_secs(10),
    }
}

/// Stops the node's consensus engine under it, as a storage error or a panic inside the
/// engine would (the node itself is not shut down): for tests of the fatal lane.
pub async fn stop_engine(node: &crate::node::Node) {
    let _ = node.raft().shutdown().await;
}
