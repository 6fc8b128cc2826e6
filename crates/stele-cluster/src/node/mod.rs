//! [`Node`]: what the client API asks of a node — append, delete, read, status — with
//! errors the API maps to the wire in one place. This file holds the types of that surface
//! and the node's shared state; each job is its own file: `start.rs` (start-up and
//! recovery), `write.rs`, `read.rs`, `status.rs` (gossip, health, leadership controls),
//! `errors.rs` (the errors, which of them are fatal and which retryable), `fatal.rs` (what
//! a node does when its consensus engine stops) and `diagnostics.rs` (what tests and the
//! simulation inspect).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, RaftError};
use openraft::ServerState;
use stele_core::{
    Command, CommandResult, DeleteKind, EventRecord, ExpectedRevision, LogPosition, ProposedEvent,
    RecordedEvent, StreamName, StreamRevision, TICKS_PER_SECOND,
};
use stele_index::Index;
use stele_log::{Disk, FsDisk, Log, LogConfig, MemDisk};
use uuid::Uuid;

use crate::entry_map::EntryMap;
use crate::env::NodeEnv;
use crate::gossip::{GossipConfig, GossipMessage, GossipRefused, MemberTable};
use crate::identity::Identity;
use crate::log_store::{LogShared, LogStore};
use crate::net::HttpGossip;
use crate::network::{Network, Peers};
use crate::record::{decode_record, RecordBody};
use crate::state_machine::{Applied, StateMachine};
use crate::transport::{CallError, ForwardError, LocalIdentity, Reply, Request};
use crate::types::{NodeAddr, Raft};
use crate::vote_store::VoteStore;
use crate::VNodeState;

mod diagnostics;
mod errors;
mod fatal;
mod handles;
mod read;
mod start;
mod status;
mod write;

pub(crate) use errors::render_chain;
pub use errors::{AdminError, ReadError, StartError, WriteError};
pub(crate) use read::event_at;
pub use write::now_ticks;

/// Result of an append that reached a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    Success {
        /// Revision of the last event appended; `None` only for an append of no events to
        /// a stream that does not exist (the wire's `no_stream`).
        current_revision: Option<StreamRevision>,
        /// Position of the last event appended; `None` when nothing was appended (the
        /// wire's `no_position`).
        position: Option<LogPosition>,
    },
    WrongExpectedVersion {
        current: Option<StreamRevision>,
        expected: ExpectedRevision,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted {
        position: LogPosition,
    },
    WrongExpectedVersion {
        current: Option<StreamRevision>,
        expected: ExpectedRevision,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forwards,
    Backwards,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStart {
    Start,
    End,
    /// Inclusive.
    Revision(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamReadRequest {
    pub stream: StreamName,
    pub start: StreamStart,
    pub direction: Direction,
    pub max_count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamReadResult {
    Events(Vec<RecordedEvent>),
    /// Never written, or soft-deleted. (Tombstoned streams are `ReadError::StreamDeleted`.)
    NotFound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllStart {
    Start,
    End,
    /// Inclusive: the first event at or after (forwards) / before (backwards) it.
    Position(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllReadRequest {
    pub start: AllStart,
    pub direction: Direction,
    /// Counts the events that pass the filter.
    pub max_count: u64,
}

/// What a node reports about itself in gossip, `/info` and `/stats`, and what it knows of the
/// other members. Nodes exchange it on `POST /gossip`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// The raft node id (random, chosen with the data directory).
    pub node_id: u64,
    pub instance_id: Uuid,
    /// The cluster this node belongs to, once formed or admitted.
    pub cluster_id: Option<Uuid>,
    pub state: VNodeState,
    pub is_alive: bool,
    /// When the node produced this status: .NET ticks since the Unix epoch, its own clock.
    pub time_stamp: i64,
    /// The address and port clients should dial (after the `Advertise*ToClient*` options).
    pub http_endpoint: (String, u16),
    /// The address and port other nodes gossip with (after `HttpPortAdvertiseAs` and
    /// `ExtHostAdvertiseAs`).
    pub gossip_endpoint: (String, u16),
    /// The replication endpoint other nodes dial (after `IntTcpPortAdvertiseAs` and
    /// `IntHostAdvertiseAs`).
    pub internal_tcp: (String, u16),
    /// Position after the last committed event.
    pub last_commit_position: u64,
    /// Log end written and flushed on this node.
    pub writer_checkpoint: u64,
    /// Position after the last event applied to the index on this node.
    pub chaser_checkpoint: u64,
    /// Raft index of the last entry in this node's log.
    pub last_log_index: u64,
    /// Fsyncs of the log since the node started (group commit makes this far fewer than
    /// appends under concurrency).
    pub log_sync_count: u64,
    /// Raft term.
    pub epoch_number: u64,
    pub node_priority: i32,
    pub read_only_replica: bool,
    /// The node resigned leadership and has not been given a priority since: leaders do not
    /// hand leadership back to it.
    pub resigned: bool,
    /// Whether the node serves clients (the `/health/live` answer).
    pub ready: bool,
}

/// How to start a node (the server turns configuration options into this).
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Where chunk files, the vote and the node identity live; `None` keeps all in memory.
    pub db_dir: Option<PathBuf>,
    /// Where the index lives (default: `<db>/index`); ignored in memory.
    pub index_dir: Option<PathBuf>,
    pub chunk_size_bytes: u64,
    pub max_append_size_bytes: u32,
    /// The maximum size of one event (`MaxAppendEventSize`).
    pub max_append_event_size_bytes: u32,
    /// Voting nodes of the cluster (`ClusterSize`).
    pub cluster_size: u32,
    /// What clients are told to dial (after the `Advertise*ToClient*` options).
    pub http_advertised: (String, u16),
    /// What other nodes gossip with.
    pub gossip_advertised: (String, u16),
    /// Where the replication listener binds (`IntIp:IntTcpPort`).
    pub internal_bind: (std::net::IpAddr, u16),
    /// What other nodes dial for replication.
    pub internal_advertised: (String, u16),
    pub node_priority: i32,
    pub read_only_replica: bool,
    pub leader_election_timeout_ms: u64,
    /// Discovery; used when the node has peers (ClusterSize above 1 or a read-only replica).
    pub gossip: GossipConfig,
    /// How long an append waits for its outcome before answering "timed out".
    pub write_timeout: Duration,
}

/// A running node. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<NodeInner>,
}

pub(crate) struct NodeInner {
    pub(crate) config: NodeConfig,
    pub(crate) identity: Identity,
    pub(crate) raft: Raft,
    pub(crate) index: Arc<Index>,
    pub(crate) log: Arc<LogShared>,
    pub(crate) applied: Arc<Applied>,
    pub(crate) local: Arc<LocalId>,
    pub(crate) peers: Arc<Peers>,
    pub(crate) members: MemberTable,
    pub(crate) priority: AtomicI32,
    /// The term in which this node resigned leadership, if it has not been given a priority
    /// since.
    pub(crate) resigned_in_term: Mutex<Option<u64>>,
    /// Whether this follower or replica has caught up with the leader's commit (with
    /// hysteresis: see [`FALLEN_BEHIND_ENTRIES`]).
    pub(crate) caught_up: AtomicBool,
    pub(crate) shutdown: tokio::sync::watch::Sender<bool>,
    /// Set when an operator asks the process to stop (`/admin/shutdown`, `Operations.Shutdown`).
    stop_requested: tokio::sync::watch::Sender<bool>,
    /// Why the consensus engine stopped, once it did (`fatal.rs`): the node then takes no
    /// writes and reports not ready until it is restarted.
    pub(crate) fatal: std::sync::OnceLock<String>,
}

/// This node's id and cluster, as the transport's handshake needs them.
pub(crate) struct LocalId {
    node_id: u64,
    cluster_id: Mutex<Option<Uuid>>,
}

impl LocalIdentity for LocalId {
    fn node_id(&self) -> u64 {
        self.node_id
    }
    fn cluster_id(&self) -> Option<Uuid> {
        *self.cluster_id.lock().expect("cluster id lock")
    }
}

impl LocalId {
    pub(crate) fn set_cluster_id(&self, id: Option<Uuid>) {
        *self.cluster_id.lock().expect("cluster id lock") = id;
    }
}

/// The cluster id stored with the membership in the log, if any.
pub(crate) fn membership_cluster_id(membership: &crate::types::Membership) -> Option<Uuid> {
    membership
        .nodes()
        .map(|(_, n)| n.cluster_id)
        .find(|id| !id.is_nil())
}

impl Node {
    /// Stops the consensus engine, gossip and the replication listener; the log and index
    /// close when the last handle drops.
    pub async fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!(error = %e, "consensus engine did not stop cleanly");
        }
    }

    /// Asks the process to stop, as SIGTERM does (`/admin/shutdown`, `Operations.Shutdown`).
    pub fn request_stop(&self) {
        tracing::info!("an operator asked this node to shut down");
        self.inner.stop_requested.send_replace(true);
    }

    /// Completes once [`Node::request_stop`] has been called.
    pub async fn stop_requested(&self) {
        let mut requested = self.inner.stop_requested.subscribe();
        let _ = requested.wait_for(|&stop| stop).await;
    }

    /// Reads the cluster id from the membership in the log, for the transport's handshake.
    pub(crate) fn refresh_cluster_id(&self) {
        let metrics = self.inner.raft.metrics().borrow_watched().clone();
        let id = membership_cluster_id(metrics.membership_config.membership());
        self.inner.local.set_cluster_id(id);
        self.inner.members.set_cluster(id);
    }

    pub fn cluster_id(&self) -> Option<Uuid> {
        self.inner.local.cluster_id()
    }
}

fn split_host_port(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    Some((host.to_owned(), port.parse().ok()?))
}

/// The node's stable identity: its raft node id and the instance id gossip reports.
pub use crate::identity::Identity as NodeIdentity;
