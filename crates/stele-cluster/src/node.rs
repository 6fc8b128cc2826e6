//! [`Node`]: what the client API asks of a node — append, delete, read, status — with
//! errors the API maps to the wire in one place.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

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
use crate::identity::Identity;
use crate::log_store::{LogShared, LogStore};
use crate::network::Network;
use crate::record::{decode_record, RecordBody};
use crate::state_machine::{Applied, StateMachine};
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
    #[error("internal error: {0}")]
    Internal(String),
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

/// What a node reports about itself in gossip, `/info` and `/stats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub instance_id: Uuid,
    pub state: VNodeState,
    pub is_alive: bool,
    /// The address and port clients should dial (after the `Advertise*` options).
    pub http_endpoint: (String, u16),
    pub internal_tcp: (String, u16),
    /// Position after the last committed event.
    pub last_commit_position: u64,
    /// Log end written and flushed on this node.
    pub writer_checkpoint: u64,
    /// Position after the last event applied to the index on this node.
    pub chaser_checkpoint: u64,
    /// Fsyncs of the log since the node started (group commit makes this far fewer than
    /// appends under concurrency).
    pub log_sync_count: u64,
    /// Raft term.
    pub epoch_number: u64,
    pub node_priority: i32,
    pub read_only_replica: bool,
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
    /// Voting nodes of the cluster. Only 1 is supported until replication exists.
    pub cluster_size: u32,
    /// What clients are told to dial (after the `Advertise*` options).
    pub http_advertised: (String, u16),
    pub internal: (String, u16),
    pub node_priority: i32,
    pub read_only_replica: bool,
    pub leader_election_timeout_ms: u64,
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
    inner: Arc<NodeInner>,
}

struct NodeInner {
    config: NodeConfig,
    identity: Identity,
    raft: Raft,
    index: Arc<Index>,
    log: Arc<LogShared>,
    applied: Arc<Applied>,
}

fn io_context(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    let context = context.into();
    move |source| StartError::Io { context, source }
}

/// .NET ticks since the Unix epoch, now.
pub fn now_ticks() -> i64 {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    since.as_secs() as i64 * TICKS_PER_SECOND + since.subsec_nanos() as i64 / 100
}

/// Events read per index page by `$all` reads.
const ALL_READ_PAGE_EVENTS: usize = 512;

impl Node {
    /// Opens the log and the index, recovers, starts the consensus engine and, for a new
    /// single-node cluster, initialises it. Returns once the node can take requests (it may
    /// still be electing itself: `status().ready` says when it serves).
    pub async fn start(config: NodeConfig) -> Result<Node, StartError> {
        if config.cluster_size != 1 {
            return Err(StartError::Unsupported(format!(
                "ClusterSize {} is not supported yet: replication between nodes is being built; run with --cluster-size 1",
                config.cluster_size
            )));
        }
        let log_config = LogConfig {
            chunk_size_bytes: config.chunk_size_bytes,
        };
        let (disk, index, identity, vote): (Arc<dyn Disk>, Index, Identity, VoteStore) =
            match &config.db_dir {
                None => (
                    Arc::new(MemDisk::new()),
                    Index::in_memory()?,
                    Identity::fresh(),
                    VoteStore::Memory(None),
                ),
                Some(dir) => {
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
        let started = Instant::now();
        let (log, report) = Log::open(disk, log_config)?;
        let log = Arc::new(log);
        let entries = EntryMap::scan(&log)?;
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
            election_timeout_min: election_ms,
            election_timeout_max: election_ms * 2,
            heartbeat_interval: (election_ms / 4).max(5),
            snapshot_policy: openraft::SnapshotPolicy::Never,
            max_payload_entries: 1024,
            ..Default::default()
        }
        .validate()
        .map_err(|e| StartError::Raft(e.to_string()))?;
        let raft = Raft::new(
            identity.node_id,
            Arc::new(raft_config),
            Network,
            LogStore::new(shared.clone()),
            state_machine,
        )
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;
        let me = NodeAddr {
            http: format!("{}:{}", config.http_advertised.0, config.http_advertised.1),
            internal: format!("{}:{}", config.internal.0, config.internal.1),
        };
        if is_new {
            let members = std::collections::BTreeMap::from([(identity.node_id, me)]);
            raft.initialize(members)
                .await
                .map_err(|e| StartError::Raft(format!("initialising the cluster: {e}")))?;
        }
        Ok(Node {
            inner: Arc::new(NodeInner {
                config,
                identity,
                raft,
                index,
                log: shared,
                applied,
            }),
        })
    }

    /// Stops the consensus engine; the log and index close when the last handle drops.
    pub async fn shutdown(&self) {
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!(error = %e, "consensus engine did not stop cleanly");
        }
    }

    fn leader_check(&self) -> Result<(), Option<(String, u16)>> {
        let metrics = self.inner.raft.metrics().borrow_watched().clone();
        if metrics.state == ServerState::Leader {
            return Ok(());
        }
        Err(metrics.current_leader.and_then(|leader| {
            metrics
                .membership_config
                .membership()
                .get_node(&leader)
                .and_then(|n| split_host_port(&n.http))
        }))
    }

    async fn write(&self, command: Command) -> Result<CommandResult, WriteError> {
        if self.inner.log.log.is_poisoned() {
            return Err(WriteError::NotReady);
        }
        self.leader_check()
            .map_err(|leader| WriteError::NotLeader { leader })?;
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

    /// Appends events to a stream. The answer comes once a quorum has the events on disk and
    /// the leader has applied them.
    pub async fn append(
        &self,
        stream: StreamName,
        expected: ExpectedRevision,
        events: Vec<ProposedEvent>,
    ) -> Result<AppendOutcome, WriteError> {
        let max_event = self.inner.config.max_append_event_size_bytes;
        if let Some(event) = events.iter().find(|e| e.size_bytes() > max_event as usize) {
            return Err(WriteError::MaximumAppendEventSizeExceeded {
                event_id: event.id,
                size_bytes: event.size_bytes().min(u32::MAX as usize) as u32,
                max_bytes: max_event,
            });
        }
        let size: usize = events.iter().map(ProposedEvent::size_bytes).sum();
        let max = self.inner.config.max_append_size_bytes;
        if size > max as usize {
            return Err(WriteError::MaximumAppendSizeExceeded { max_bytes: max });
        }
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
        match self.write(command).await? {
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
    ) -> Result<DeleteOutcome, WriteError> {
        let command = Command::Delete {
            stream: stream.clone(),
            expected,
            kind,
            created_ticks: now_ticks(),
        };
        match self.write(command).await? {
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
        let (payload, _) = self
            .inner
            .log
            .log
            .read(position)
            .map_err(|e| ReadError::Internal(e.to_string()))?;
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
        let applied_index = self.inner.applied.next_index.load(Ordering::Acquire);
        let caught_up = metrics
            .local_committed
            .is_none_or(|c| applied_index > c.index);
        let state = match metrics.state {
            ServerState::Leader if caught_up => VNodeState::Leader,
            ServerState::Leader => VNodeState::PreLeader,
            ServerState::Follower if caught_up => VNodeState::Follower,
            ServerState::Follower => VNodeState::CatchingUp,
            ServerState::Learner => VNodeState::ReadOnlyReplica,
            ServerState::Candidate => VNodeState::Unknown,
            ServerState::Shutdown => VNodeState::Shutdown,
        };
        let ready = matches!(state, VNodeState::Leader | VNodeState::Follower)
            && !self.inner.log.log.is_poisoned();
        let config = &self.inner.config;
        NodeStatus {
            instance_id: self.inner.identity.instance_id,
            state,
            is_alive: true,
            http_endpoint: config.http_advertised.clone(),
            internal_tcp: config.internal.clone(),
            last_commit_position: self.last_position().0,
            writer_checkpoint: self.inner.log.log.durable_end(),
            chaser_checkpoint: self.inner.applied.event_end.load(Ordering::Acquire),
            log_sync_count: self.inner.log.log.sync_count(),
            epoch_number: metrics.current_term,
            node_priority: config.node_priority,
            read_only_replica: config.read_only_replica,
            ready,
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
