//! [`Node`]: what the client API asks of a node — append, delete, read, status — with
//! errors the API maps to the wire in one place.

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

/// Why a write did not reach a decision, or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("stream '{0}' is deleted")]
    StreamDeleted(StreamName),
    #[error("maximum append size of {max_bytes} exceeded")]
    MaximumAppendSizeExceeded { max_bytes: u32 },
    #[error(
        "event {event_id} of {size_bytes} bytes exceeds the maximum event size of {max_bytes}"
    )]
    MaximumAppendEventSizeExceeded {
        event_id: uuid::Uuid,
        size_bytes: u32,
        max_bytes: u32,
    },
    #[error("this node is not the leader")]
    NotLeader { leader: Option<(String, u16)> },
    #[error("server is not ready")]
    NotReady,
    #[error("operation timed out")]
    Timeout,
    /// A write or fsync of this node's log failed (a full disk, say): it takes no writes until
    /// it is restarted; reads of what was durable go on.
    #[error("the log stopped after an I/O error: {0}")]
    LogFailed(String),
    /// A command no client request could produce (a forwarded one from a peer, say): an
    /// invalid stream name, or an event that names another stream.
    #[error("invalid write: {0}")]
    Invalid(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<stele_core::InvalidCommand> for WriteError {
    fn from(e: stele_core::InvalidCommand) -> WriteError {
        use stele_core::InvalidCommand;
        match e {
            InvalidCommand::AppendTooLarge { max_bytes } => {
                WriteError::MaximumAppendSizeExceeded { max_bytes }
            }
            InvalidCommand::EventTooLarge {
                event_id,
                size_bytes,
                max_bytes,
            } => WriteError::MaximumAppendEventSizeExceeded {
                event_id,
                size_bytes,
                max_bytes,
            },
            other => WriteError::Invalid(other.to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("stream '{0}' is deleted")]
    StreamDeleted(StreamName),
    #[error("this node is not the leader")]
    NotLeader { leader: Option<(String, u16)> },
    #[error("trying to read from an invalid position")]
    InvalidPosition,
    #[error("server is not ready")]
    NotReady,
    #[error("internal error: {0}")]
    Internal(String),
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

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("opening the log: {0}")]
    Log(#[from] stele_log::LogError),
    #[error("scanning the log: {0}")]
    Scan(#[from] crate::entry_map::ScanError),
    #[error("opening the index: {0}")]
    Index(#[from] stele_index::IndexError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the consensus engine: {0}")]
    Raft(String),
    #[error("{0}")]
    Unsupported(String),
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

/// Why an operator command (resign, set priority) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    #[error("server is not ready")]
    NotReady,
    #[error("internal error: {0}")]
    Internal(String),
}

fn io_context(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    let context = context.into();
    move |source| StartError::Io { context, source }
}

/// .NET ticks since the Unix epoch, now.
pub fn now_ticks() -> i64 {
    let since = crate::determinism::unix_now();
    since.as_secs() as i64 * TICKS_PER_SECOND + since.subsec_nanos() as i64 / 100
}

/// Whether a restarted leader may resume its term: never (see the raft configuration), except
/// as the injected bug that shows the simulation catches it.
fn leader_restore() -> bool {
    #[cfg(feature = "injected-bugs")]
    if crate::bugs::active(crate::bugs::Bug::LeaderRestore) {
        return true;
    }
    false
}

/// Events read per index page by `$all` reads.
const ALL_READ_PAGE_EVENTS: usize = 512;

/// A follower or replica whose applied state comes within this many entries of what the
/// leader reports committed has caught up (and `/health/live` answers 204).
const CAUGHT_UP_ENTRIES: u64 = 256;

/// A follower or replica that has caught up is catching up again only once it falls this far
/// behind: under load its applied state trails the commit by a batch or two, which is not
/// catching up, and probes must not see it flap (issue 11, item 4).
const FALLEN_BEHIND_ENTRIES: u64 = 16 * 1024;

/// The cluster id stored with the membership in the log, if any.
pub(crate) fn membership_cluster_id(membership: &crate::types::Membership) -> Option<Uuid> {
    membership
        .nodes()
        .map(|(_, n)| n.cluster_id)
        .find(|id| !id.is_nil())
}

impl Node {
    /// Opens the log and the index, recovers, starts the consensus engine, the replication
    /// listener and gossip, and, for a new single-node cluster, initialises it. Returns once
    /// the node can take requests (it may still be electing a leader or forming the cluster:
    /// `status().ready` says when it serves).
    pub async fn start(config: NodeConfig) -> Result<Node, StartError> {
        Node::start_with(config, NodeEnv::production()).await
    }

    /// [`Node::start`] on the given network, gossip client, storage and committer (the
    /// deterministic simulation's; see [`NodeEnv`]).
    pub async fn start_with(config: NodeConfig, env: NodeEnv) -> Result<Node, StartError> {
        if config.cluster_size == 0 {
            return Err(StartError::Unsupported(
                "ClusterSize must be at least 1".into(),
            ));
        }
        let log_config = LogConfig {
            chunk_size_bytes: config.chunk_size_bytes,
        };
        let (disk, index, identity, vote): (Arc<dyn Disk>, Index, Identity, VoteStore) =
            match (&env.storage, &config.db_dir) {
                (Some(storage), _) => (
                    storage.disk.clone(),
                    match &storage.index_file {
                        Some(file) => {
                            Index::on_shared_memory(file.clone(), storage.index_options.clone())?
                        }
                        None => Index::in_memory_with(storage.index_options.clone())?,
                    },
                    storage.identity.clone(),
                    VoteStore::Shared(storage.vote.clone()),
                ),
                (None, None) => (
                    Arc::new(MemDisk::new()),
                    Index::in_memory()?,
                    Identity::fresh(),
                    VoteStore::Memory(None),
                ),
                (None, Some(dir)) => {
                    std::fs::create_dir_all(dir)
                        .map_err(io_context(format!("creating {}", dir.display())))?;
                    let chunks = dir.join("chunks");
                    let disk = FsDisk::new(&chunks)
                        .map_err(io_context(format!("opening {}", chunks.display())))?;
                    let index_dir = config
                        .index_dir
                        .clone()
                        .unwrap_or_else(|| dir.join("index"));
                    std::fs::create_dir_all(&index_dir)
                        .map_err(io_context(format!("creating {}", index_dir.display())))?;
                    let index = Index::open(&index_dir.join("index.redb"))?;
                    let identity = Identity::load_or_create(&dir.join("node.json"))
                        .map_err(io_context("reading the node identity"))?;
                    (
                        Arc::new(disk),
                        index,
                        identity,
                        VoteStore::File(dir.join("raft-vote.json")),
                    )
                }
            };
        let single = config.cluster_size == 1 && !config.read_only_replica;
        // Bind before touching the engine: a port in use is a common start-up failure.
        let listener = if single {
            None
        } else {
            let bind = std::net::SocketAddr::new(config.internal_bind.0, config.internal_bind.1);
            Some(
                env.net
                    .bind(bind)
                    .await
                    .map_err(io_context(format!("binding the internal port {bind}")))?,
            )
        };
        #[allow(clippy::disallowed_methods, reason = "a duration for the log only")]
        let started = Instant::now();
        let (log, report) = Log::open(disk, log_config)?;
        let log = Arc::new(log);
        #[allow(unused_mut)]
        let mut entries = EntryMap::scan(&log)?;
        #[cfg(feature = "injected-bugs")]
        if crate::bugs::active(crate::bugs::Bug::TruncateCommitted) && !entries.is_empty() {
            // Injected bug: the last entry, committed or not, is dropped at every start.
            if let Some(position) = entries.truncate_from(entries.len() - 1) {
                log.truncate(position)?;
            }
        }
        tracing::info!(
            log_end = log.end(),
            entries = entries.len(),
            ?report,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "log recovered"
        );
        let is_new = entries.is_empty();
        let shared = LogShared::new(log, entries, vote);
        let index = Arc::new(index);
        let applied = Arc::new(Applied::default());
        let state_machine = StateMachine::open(index.clone(), shared.clone(), applied.clone())
            .map_err(io_context("opening the state machine"))?;
        let election_ms = config.leader_election_timeout_ms.max(10);
        let raft_config = openraft::Config {
            cluster_name: "stele".into(),
            // A follower campaigns after half the election timeout without news from the
            // leader (three quarters at most, randomised); the leader's lease is the
            // maximum. Heartbeats go out ten times per timeout.
            election_timeout_min: (election_ms / 2).max(10),
            election_timeout_max: (election_ms * 3 / 4).max(15),
            heartbeat_interval: (election_ms / 10).max(2),
            enable_pre_vote: Some(true),
            // Replicate entries while the leader's own fsync runs, not after it.
            broadcast_submitted_on_append: Some(true),
            // A restarted leader must win a new election, never resume its old term: with
            // entries broadcast before the leader's own fsync, a leader that lost its unsynced
            // tail to a power loss would otherwise reuse log ids its followers already hold
            // with other content, and the logs diverge under acknowledged writes. Found by the
            // deterministic simulation (docs/reliability.md; regression seeds in
            // crates/stele-sim/tests/simulation.rs).
            enable_leader_restore: Some(leader_restore()),
            snapshot_policy: openraft::SnapshotPolicy::Never,
            max_payload_entries: 256,
            ..Default::default()
        }
        .validate()
        .map_err(|e| StartError::Raft(e.to_string()))?;
        let local = Arc::new(LocalId {
            node_id: identity.node_id,
            cluster_id: Mutex::new(None),
        });
        let peers = Peers::new(env.net.clone(), local.clone(), Some(config.internal_bind.0));
        let raft = Raft::new(
            identity.node_id,
            Arc::new(raft_config),
            Network::new(peers.clone()),
            LogStore::new(shared.clone(), env.commit),
            state_machine,
        )
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;
        if is_new && single {
            let me = NodeAddr {
                http: format!("{}:{}", config.http_advertised.0, config.http_advertised.1),
                internal: format!(
                    "{}:{}",
                    config.internal_advertised.0, config.internal_advertised.1
                ),
                cluster_id: crate::determinism::new_uuid(),
            };
            let members = std::collections::BTreeMap::from([(identity.node_id, me)]);
            raft.initialize(members)
                .await
                .map_err(|e| StartError::Raft(format!("initialising the cluster: {e}")))?;
        }
        let members = MemberTable::new(config.gossip.clone(), identity.instance_id);
        let priority = AtomicI32::new(config.node_priority);
        let (shutdown, _) = tokio::sync::watch::channel(false);
        let (stop_requested, _) = tokio::sync::watch::channel(false);
        let node = Node {
            inner: Arc::new(NodeInner {
                config,
                identity,
                raft,
                index,
                log: shared,
                applied,
                local,
                peers,
                members,
                priority,
                resigned_in_term: Mutex::new(None),
                caught_up: AtomicBool::new(false),
                shutdown,
                stop_requested,
            }),
        };
        node.refresh_cluster_id();
        tokio::spawn(crate::controller::follow_cluster_id(node.clone()));
        if let Some(listener) = listener {
            let gossip = match env.gossip {
                Some(gossip) => gossip,
                None => Arc::new(
                    HttpGossip::new(node.inner.config.gossip.timeout)
                        .map_err(|e| StartError::Unsupported(format!("gossip client: {e}")))?,
                ),
            };
            crate::controller::spawn(&node, listener, gossip);
        }
        Ok(node)
    }

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

    /// The leader's client endpoint, if this node knows who leads.
    fn leader_endpoint(
        metrics: &openraft::RaftMetrics<crate::types::TypeConfig>,
    ) -> Option<(String, u16)> {
        metrics.current_leader.and_then(|leader| {
            metrics
                .membership_config
                .membership()
                .get_node(&leader)
                .and_then(|n| split_host_port(&n.http))
        })
    }

    fn leader_check(&self) -> Result<(), Option<(String, u16)>> {
        let metrics = self.inner.raft.metrics().borrow_watched().clone();
        if metrics.state == ServerState::Leader {
            return Ok(());
        }
        Err(Self::leader_endpoint(&metrics))
    }

    /// Refuses a read that asked for the leader (`requires-leader: true`) on a node that is
    /// not the leader; any node serves other reads.
    pub fn check_read_routing(&self, requires_leader: bool) -> Result<(), ReadError> {
        if !requires_leader {
            return Ok(());
        }
        // A single node whose log failed (a full disk) has no leader to send readers to and
        // can take no writes anywhere: what it has durable is the latest there is, so it
        // serves reads that ask for the leader (issue 11, item 8).
        if self.inner.config.cluster_size == 1 && self.log_failed() {
            return Ok(());
        }
        self.leader_check()
            .map_err(|leader| ReadError::NotLeader { leader })
    }

    /// Writes a command: on the leader directly; elsewhere NotLeader when the client asked
    /// for the leader, else forwarded to the leader over the internal port.
    async fn write(
        &self,
        command: Command,
        requires_leader: bool,
    ) -> Result<CommandResult, WriteError> {
        if let Some(cause) = self.inner.log.log.poison_cause() {
            return Err(WriteError::LogFailed(cause.message.clone()));
        }
        // Every command is checked here, whichever way it came: a client's through the API,
        // or a peer's forwarded one (deserialised, so never checked by StreamName::new).
        stele_core::validate_command(&command, &self.write_limits())?;
        match self.leader_check() {
            Ok(()) => self.write_local(command).await,
            Err(leader) if requires_leader => Err(WriteError::NotLeader { leader }),
            Err(_) => self.forward(command).await,
        }
    }

    /// Proposes a write on this node, the leader: with the metadata event it must record
    /// (`metadata_writes.rs`), merged again if the metadata stream moved before it applied.
    async fn write_local(&self, command: Command) -> Result<CommandResult, WriteError> {
        for _ in 0..crate::metadata_writes::METADATA_MERGE_ATTEMPTS {
            let proposed = crate::metadata_writes::with_metadata(
                &self.inner.index,
                &self.inner.log.log,
                command.clone(),
            )
            .map_err(WriteError::Internal)?;
            match self.propose(proposed).await? {
                CommandResult::MetadataMoved => continue,
                result => return Ok(result),
            }
        }
        Err(WriteError::Internal(format!(
            "the metadata of {} kept moving under a soft delete or recreation",
            command.stream()
        )))
    }

    async fn propose(&self, command: Command) -> Result<CommandResult, WriteError> {
        let write = self.inner.raft.client_write(command);
        match tokio::time::timeout(self.inner.config.write_timeout, write).await {
            Err(_) => Err(WriteError::Timeout),
            Ok(Ok(response)) => Ok(response.data),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Err(WriteError::NotLeader {
                    leader: f.leader_node.and_then(|n| split_host_port(&n.http)),
                })
            }
            Ok(Err(RaftError::APIError(e))) => Err(WriteError::Internal(e.to_string())),
            Ok(Err(RaftError::Fatal(e))) => {
                tracing::error!(error = %e, "consensus engine stopped");
                Err(WriteError::NotReady)
            }
        }
    }

    /// Sends a write to the leader and waits for its outcome.
    async fn forward(&self, command: Command) -> Result<CommandResult, WriteError> {
        let metrics = self.inner.raft.metrics().borrow_watched().clone();
        let leader = metrics.current_leader.and_then(|id| {
            metrics
                .membership_config
                .membership()
                .get_node(&id)
                .map(|n| (id, n.clone()))
        });
        let Some((leader_id, leader_addr)) = leader else {
            return Err(WriteError::NotLeader { leader: None });
        };
        if leader_id == self.inner.identity.node_id {
            return self.write_local(command).await;
        }
        let peer = self.inner.peers.get(leader_id, &leader_addr.internal);
        // The leader gives up after its own write timeout; allow for the round trip.
        let timeout = self.inner.config.write_timeout + Duration::from_secs(1);
        match peer.call(&Request::Forward(command), timeout).await {
            Ok(Reply::Forwarded(Ok(result))) => Ok(result),
            Ok(Reply::Forwarded(Err(e))) => Err(match e {
                ForwardError::NotLeader { leader } => WriteError::NotLeader { leader },
                ForwardError::NotReady => WriteError::NotReady,
                ForwardError::Timeout => WriteError::Timeout,
                ForwardError::Internal(e) => WriteError::Internal(e),
            }),
            Ok(other) => Err(WriteError::Internal(format!(
                "the leader answered a forwarded write with {other:?}"
            ))),
            // Never sent: the client may retry anywhere.
            Err(
                CallError::Connect { .. } | CallError::Refused { .. } | CallError::Backoff { .. },
            ) => Err(WriteError::NotReady),
            // Sent, outcome unknown.
            Err(CallError::Io { .. } | CallError::Timeout { .. }) => Err(WriteError::Timeout),
        }
    }

    /// Handles a write another node forwarded to this one.
    pub(crate) async fn handle_forward(
        &self,
        command: Command,
    ) -> Result<CommandResult, ForwardError> {
        self.write(command, true).await.map_err(|e| match e {
            WriteError::NotLeader { leader } => ForwardError::NotLeader { leader },
            WriteError::NotReady => ForwardError::NotReady,
            WriteError::Timeout => ForwardError::Timeout,
            other => ForwardError::Internal(other.to_string()),
        })
    }

    /// Appends events to a stream. The answer comes once a quorum has the events on disk and
    /// the leader has applied them. A node that is not the leader forwards the append to the
    /// leader, unless `requires_leader` (then it answers NotLeader).
    pub async fn append(
        &self,
        stream: StreamName,
        expected: ExpectedRevision,
        events: Vec<ProposedEvent>,
        requires_leader: bool,
    ) -> Result<AppendOutcome, WriteError> {
        let created = now_ticks();
        let records = events
            .into_iter()
            .map(|e| EventRecord::from_proposed(stream.clone(), e, created))
            .collect();
        let command = Command::Append {
            stream: stream.clone(),
            expected,
            events: records,
        };
        match self.write(command, requires_leader).await? {
            CommandResult::Appended {
                last_revision,
                last_position,
                ..
            } => Ok(AppendOutcome::Success {
                current_revision: Some(last_revision),
                position: Some(last_position),
            }),
            CommandResult::AppendedNothing { current } => Ok(AppendOutcome::Success {
                current_revision: current,
                position: None,
            }),
            CommandResult::WrongExpectedVersion { current, expected } => {
                Ok(AppendOutcome::WrongExpectedVersion { current, expected })
            }
            CommandResult::StreamDeleted => Err(WriteError::StreamDeleted(stream)),
            other => Err(WriteError::Internal(format!(
                "unexpected result of an append: {other:?}"
            ))),
        }
    }

    /// Soft-deletes (`DeleteKind::Soft`) or tombstones (`DeleteKind::Hard`) a stream.
    pub async fn delete(
        &self,
        stream: StreamName,
        expected: ExpectedRevision,
        kind: DeleteKind,
        requires_leader: bool,
    ) -> Result<DeleteOutcome, WriteError> {
        let command = Command::Delete {
            stream: stream.clone(),
            expected,
            kind,
            created_ticks: now_ticks(),
        };
        match self.write(command, requires_leader).await? {
            CommandResult::Deleted { position } => Ok(DeleteOutcome::Deleted { position }),
            CommandResult::WrongExpectedVersion { current, expected } => {
                Ok(DeleteOutcome::WrongExpectedVersion { current, expected })
            }
            CommandResult::StreamDeleted => Err(WriteError::StreamDeleted(stream)),
            other => Err(WriteError::Internal(format!(
                "unexpected result of a delete: {other:?}"
            ))),
        }
    }

    fn read_event(&self, position: u64, revision: u64) -> Result<RecordedEvent, ReadError> {
        let (payload, _) = self.inner.log.log.read(position).map_err(|e| match e {
            // Past what was durable when the log failed: not served until a restart.
            stele_log::LogError::Poisoned => ReadError::NotReady,
            e => ReadError::Internal(e.to_string()),
        })?;
        let (_, body) = decode_record(&payload)
            .map_err(|e| ReadError::Internal(format!("record at log position {position}: {e}")))?;
        match body {
            RecordBody::Event { event, .. } => Ok(RecordedEvent {
                record: event,
                revision: StreamRevision(revision),
                position: LogPosition(position),
            }),
            other => Err(ReadError::Internal(format!(
                "the index points at log position {position}, which holds no event but {other:?}"
            ))),
        }
    }

    /// Reads a stream, honouring its metadata (`$maxCount`, `$maxAge`, `$tb`).
    pub fn read_stream(&self, request: &StreamReadRequest) -> Result<StreamReadResult, ReadError> {
        let index = &self.inner.index;
        let internal = |e: stele_index::IndexError| ReadError::Internal(e.to_string());
        let state = index.stream_state(&request.stream).map_err(internal)?;
        if state.tombstoned {
            return Err(ReadError::StreamDeleted(request.stream.clone()));
        }
        if !state.exists() {
            return Ok(StreamReadResult::NotFound);
        }
        let last = state
            .last_revision
            .expect("an existing stream has a revision");
        let metadata = index.stream_metadata(&request.stream).map_err(internal)?;
        let first_visible = metadata.first_visible_revision(last, state.deleted_before);
        let count = request.max_count.min(usize::MAX as u64) as usize;
        let range = match request.direction {
            Direction::Forwards => {
                let from = match request.start {
                    StreamStart::Start => first_visible,
                    StreamStart::End => last + 1,
                    StreamStart::Revision(r) => r.max(first_visible),
                };
                if from > last || count == 0 {
                    Vec::new()
                } else {
                    index
                        .stream_range(&request.stream, from, true, count)
                        .map_err(internal)?
                }
            }
            Direction::Backwards => {
                let from = match request.start {
                    StreamStart::Start => 0,
                    StreamStart::End => last,
                    StreamStart::Revision(r) => r.min(last),
                };
                if from < first_visible || count == 0 {
                    Vec::new()
                } else {
                    let mut range = index
                        .stream_range(&request.stream, from, false, count)
                        .map_err(internal)?;
                    range.retain(|&(rev, _)| rev >= first_visible);
                    range
                }
            }
        };
        let now = now_ticks();
        let mut events = Vec::with_capacity(range.len());
        for (revision, position) in range {
            let event = self.read_event(position, revision)?;
            if metadata.is_young_enough(event.record.created_ticks, now) {
                events.push(event);
            }
        }
        Ok(StreamReadResult::Events(events))
    }

    /// Reads `$all`, keeping only the events `filter` accepts (and counting only those).
    pub fn read_all(
        &self,
        request: &AllReadRequest,
        filter: &dyn Fn(&RecordedEvent) -> bool,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        let index = &self.inner.index;
        let internal = |e: stele_index::IndexError| ReadError::Internal(e.to_string());
        let forwards = request.direction == Direction::Forwards;
        let want = request.max_count.min(usize::MAX as u64) as usize;
        let mut from = match (request.start, forwards) {
            (AllStart::Start, true) => 0,
            (AllStart::Start, false) => return Ok(Vec::new()),
            (AllStart::End, true) => return Ok(Vec::new()),
            (AllStart::End, false) => u64::MAX,
            (AllStart::Position(p), _) => p,
        };
        let mut events = Vec::new();
        while events.len() < want {
            let page = index
                .all_range(from, forwards, ALL_READ_PAGE_EVENTS)
                .map_err(internal)?;
            let page_len = page.len();
            for &(position, revision) in &page {
                let event = self.read_event(position, revision)?;
                if filter(&event) {
                    events.push(event);
                    if events.len() == want {
                        break;
                    }
                }
            }
            if page_len < ALL_READ_PAGE_EVENTS {
                break;
            }
            let &(last_position, _) = page.last().expect("a full page");
            from = if forwards {
                last_position + 1
            } else if last_position == 0 {
                break;
            } else {
                last_position - 1
            };
        }
        Ok(events)
    }

    /// Checks that a `$all` position a client sent is one the log gave out: the start, an
    /// event's position, or at or past the end.
    pub fn check_all_position(&self, position: u64) -> Result<(), ReadError> {
        let end = self.inner.applied.event_end.load(Ordering::Acquire);
        if position == 0 || position >= end {
            return Ok(());
        }
        let at = self
            .inner
            .index
            .all_range(position, true, 1)
            .map_err(|e| ReadError::Internal(e.to_string()))?;
        match at.first() {
            Some(&(p, _)) if p == position => Ok(()),
            _ => Err(ReadError::InvalidPosition),
        }
    }

    /// Position of the last event in `$all` (what `End` means), 0 when there is none.
    pub fn last_position(&self) -> LogPosition {
        LogPosition(
            self.inner
                .applied
                .event_end
                .load(Ordering::Acquire)
                .saturating_sub(1),
        )
    }

    pub fn status(&self) -> NodeStatus {
        let metrics = self.inner.raft.metrics().borrow_watched().clone();
        let me = self.inner.identity.node_id;
        let config = &self.inner.config;
        let applied_next = self.inner.applied.next_index.load(Ordering::Acquire);
        let membership = metrics.membership_config.membership();
        let initialized = membership.nodes().next().is_some();
        // A leader is PreLeader only until it has applied the first entry of its own term
        // (the blank it appends on election): from then on everything before its term is
        // applied, and a state machine a few entries behind its commit under load still
        // leads (issue 11, item 4).
        let applied_own_term = metrics
            .last_applied
            .is_some_and(|applied| applied.leader_id.term == metrics.current_term);
        let following = metrics.current_leader.is_some_and(|leader| leader != me);
        let lag = metrics
            .cluster_committed
            .map_or(0, |c| (c.index + 1).saturating_sub(applied_next));
        let caught_up = if !following {
            false
        } else if lag <= CAUGHT_UP_ENTRIES {
            true
        } else {
            self.inner.caught_up.load(Ordering::Relaxed) && lag <= FALLEN_BEHIND_ENTRIES
        };
        self.inner.caught_up.store(caught_up, Ordering::Relaxed);
        let state = match metrics.state {
            ServerState::Leader if applied_own_term => VNodeState::Leader,
            ServerState::Leader => VNodeState::PreLeader,
            ServerState::Follower if caught_up => VNodeState::Follower,
            ServerState::Follower => VNodeState::CatchingUp,
            ServerState::Learner if config.read_only_replica => {
                if caught_up {
                    VNodeState::ReadOnlyReplica
                } else if initialized {
                    VNodeState::PreReadOnlyReplica
                } else {
                    VNodeState::ReadOnlyLeaderless
                }
            }
            // A voter that is not in a cluster yet (forming, or admitted as a learner to
            // replace a wiped node).
            ServerState::Learner if initialized => VNodeState::CatchingUp,
            ServerState::Learner => VNodeState::DiscoverLeader,
            ServerState::Candidate => VNodeState::Unknown,
            ServerState::Shutdown => VNodeState::Shutdown,
        };
        let ready = matches!(
            state,
            VNodeState::Leader | VNodeState::Follower | VNodeState::ReadOnlyReplica
        ) && !self.inner.log.log.is_poisoned();
        NodeStatus {
            node_id: me,
            instance_id: self.inner.identity.instance_id,
            cluster_id: membership_cluster_id(membership),
            state,
            is_alive: true,
            time_stamp: now_ticks(),
            http_endpoint: config.http_advertised.clone(),
            gossip_endpoint: config.gossip_advertised.clone(),
            internal_tcp: config.internal_advertised.clone(),
            last_commit_position: self.last_position().0,
            writer_checkpoint: self.inner.log.log.durable_end(),
            chaser_checkpoint: self.inner.applied.event_end.load(Ordering::Acquire),
            last_log_index: metrics.last_log_index.unwrap_or(0),
            log_sync_count: self.inner.log.log.sync_count(),
            epoch_number: metrics.current_term,
            node_priority: self.inner.priority.load(Ordering::Relaxed),
            read_only_replica: config.read_only_replica,
            resigned: self
                .inner
                .resigned_in_term
                .lock()
                .expect("resign lock")
                .is_some(),
            ready,
        }
    }

    /// Every member of the cluster this node knows, itself first: what `/gossip` and
    /// `Gossip.Read` report.
    ///
    /// A member's state is what it last said of itself, except that a member still claiming
    /// to lead in an older term than the leader this node follows is reported `Unknown`:
    /// clients need exactly one leader in gossip.
    pub fn members(&self) -> Vec<NodeStatus> {
        let me = self.status();
        let metrics = self.inner.raft.metrics().borrow_watched().clone();
        let mut members = self.inner.members.members();
        if let Some(leader) = metrics.current_leader {
            for member in &mut members {
                let claims_lead =
                    matches!(member.state, VNodeState::Leader | VNodeState::PreLeader);
                if claims_lead && member.node_id != leader && member.epoch_number <= me.epoch_number
                {
                    member.state = VNodeState::Unknown;
                }
            }
        }
        let mut all = vec![me];
        all.extend(members);
        all
    }

    /// Takes a gossip message from another node and answers with this node's view.
    pub fn receive_gossip(&self, message: &GossipMessage) -> Result<GossipMessage, GossipRefused> {
        let ours = self.cluster_id();
        if let Err(refused) = self.inner.members.check(message, ours) {
            tracing::warn!("{refused}");
            return Err(refused);
        }
        self.inner.members.merge(message, ours);
        Ok(self.gossip_message())
    }

    pub(crate) fn gossip_message(&self) -> GossipMessage {
        GossipMessage {
            sender: self.status(),
            members: self.inner.members.members(),
            sent_at_unix_ms: crate::gossip::unix_ms_now(),
        }
    }

    /// Hands leadership to the best other caught-up voter (highest priority, then most
    /// caught up). On a node that is not the leader it does nothing, as in EventStoreDB.
    pub async fn resign(&self) -> Result<(), AdminError> {
        crate::controller::resign(self).await
    }

    /// Sets this node's priority. Leaders hand leadership to a caught-up voter of higher
    /// priority; setting a priority also ends a resignation.
    pub async fn set_node_priority(&self, priority: i32) -> Result<(), AdminError> {
        self.inner.priority.store(priority, Ordering::Relaxed);
        *self.inner.resigned_in_term.lock().expect("resign lock") = None;
        tracing::info!(priority, "node priority set");
        Ok(())
    }

    /// A digest of every log entry, in log order: (term, index, FNV-1a of its records'
    /// bytes). For the simulation's diagnostics: two nodes whose digests differ at an index
    /// both hold have diverging logs.
    /// With `applied_only`, only the entries this node has applied (so committed). A failed
    /// log reads nothing: ask only a node whose log has not failed.
    #[doc(hidden)]
    pub fn entry_digests(&self, applied_only: bool) -> Vec<(u64, u64, u64)> {
        let applied = self.inner.applied.next_index.load(Ordering::Acquire);
        let map = self.inner.log.entries.read().expect("entry map lock");
        let end = if applied_only {
            applied.min(map.len())
        } else {
            map.len()
        };
        (0..end)
            .map(|index| {
                let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
                let mut term = 0;
                for &position in map.positions(index).unwrap_or_default() {
                    if let Ok((payload, _)) = self.inner.log.log.read(position) {
                        if let Ok((header, _)) = crate::record::decode_header(&payload) {
                            term = header.log_id.leader_id.term;
                        }
                        for b in payload.iter() {
                            hash = (hash ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
                        }
                    }
                }
                (term, index, hash)
            })
            .collect()
    }

    /// How many log entries this node has applied (so knows committed), counted from the
    /// start of the log like [`Node::acknowledged_entries`].
    #[doc(hidden)]
    pub fn applied_entries(&self) -> u64 {
        self.inner.applied.next_index.load(Ordering::Acquire)
    }

    /// How many log entries (from the start) this node has reported durable to the
    /// consensus engine: a crash must never leave it with fewer, or different ones.
    #[doc(hidden)]
    pub fn acknowledged_entries(&self) -> u64 {
        self.inner.log.acknowledged.load(Ordering::Acquire)
    }

    /// The voter sets of the membership this node knows: one set, or two while a change is
    /// under way (joint consensus).
    #[doc(hidden)]
    pub fn voter_configs(&self) -> Vec<Vec<u64>> {
        let metrics = self.inner.raft.metrics().borrow_watched().clone();
        metrics
            .membership_config
            .membership()
            .get_joint_config()
            .iter()
            .map(|set| set.iter().copied().collect())
            .collect()
    }

    /// Reads every record of the log, as a scrub does: the number read, or the first error
    /// (a damaged record names its chunk file and offset). For the simulation, which checks
    /// that rot under a running node is found by reading.
    #[doc(hidden)]
    pub fn scan_log(&self) -> Result<u64, String> {
        let mut records = 0;
        for record in self.inner.log.log.iter(0) {
            record.map_err(|e| e.to_string())?;
            records += 1;
        }
        Ok(records)
    }

    /// The log position up to which the chunk headers vouch for the records: a damaged record
    /// below it is corruption, one above it may be a torn write that recovery cuts.
    #[doc(hidden)]
    pub fn log_checkpoint(&self) -> u64 {
        self.inner.log.log.checkpoint()
    }

    /// Whether a write or fsync of the log failed: the node then refuses writes until it
    /// is restarted (a failed fsync is never retried, docs/design.md decision 4).
    pub fn log_failed(&self) -> bool {
        self.inner.log.log.is_poisoned()
    }

    /// What stopped the log, once a write or fsync failed.
    pub fn log_failure(&self) -> Option<stele_log::PoisonCause> {
        self.inner.log.log.poison_cause().cloned()
    }

    /// `MaxAppendSize` and `MaxAppendEventSize`, as every write is checked against them.
    pub fn write_limits(&self) -> stele_core::WriteLimits {
        stele_core::WriteLimits {
            max_append_size_bytes: self.inner.config.max_append_size_bytes,
            max_append_event_size_bytes: self.inner.config.max_append_event_size_bytes,
        }
    }

    /// The maximum size in bytes of one append (`MaxAppendSize`).
    pub fn max_append_size_bytes(&self) -> u32 {
        self.inner.config.max_append_size_bytes
    }

    /// Waits until the node serves clients, or the deadline passes.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut metrics = self.inner.raft.metrics();
        loop {
            if self.status().ready {
                return true;
            }
            tokio::select! {
                _ = metrics.changed() => {}
                _ = self.inner.applied.notify.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = tokio::time::sleep_until(deadline) => return self.status().ready,
            }
        }
    }
}

fn split_host_port(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    Some((host.to_owned(), port.parse().ok()?))
}

/// The node's stable identity: its raft node id and the instance id gossip reports.
pub use crate::identity::Identity as NodeIdentity;
