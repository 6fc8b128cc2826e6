//! Start-up and recovery: [`Node::start_with`] opens storage (files, memory, or what the
//! environment injects), binds the internal port, starts openraft over the log store and the
//! state machine, and the controller, gossip and log-watch tasks (ARCHITECTURE.md, "Start-up
//! and recovery").

use super::*;

/// Where the index lives, so that it can be opened, and rebuilt when it is ahead of the log.
enum IndexSource {
    File(PathBuf),
    Shared(stele_index::SharedMemFile, stele_index::IndexOptions),
    Memory(stele_index::IndexOptions),
}

impl IndexSource {
    fn open(&self) -> Result<Index, StartError> {
        Ok(match self {
            IndexSource::File(path) => Index::open(path)?,
            IndexSource::Shared(file, options) => {
                Index::on_shared_memory(file.clone(), options.clone())?
            }
            IndexSource::Memory(options) => Index::in_memory_with(options.clone())?,
        })
    }

    /// Opens the index, and rebuilds it from the log (empty, replayed from the start) when
    /// its checkpoint names an entry the recovered log does not hold: a power loss took log
    /// records that were written but not yet synced, after the index had applied them and
    /// flushed (the index is derived from the log and never ahead of it; found by the
    /// simulation once its nodes restart on the index they had, issue 11).
    fn open_behind(&self, entries: &EntryMap) -> Result<Index, StartError> {
        let index = self.open()?;
        let Some(checkpoint) = index.checkpoint()? else {
            return Ok(index);
        };
        let held = entries
            .log_id(checkpoint.applied_log_index)
            .is_some_and(|id| {
                id.leader_id.term == checkpoint.applied_term
                    && id.leader_id.node_id == checkpoint.applied_leader_node
            });
        if held {
            return Ok(index);
        }
        tracing::warn!(
            applied = checkpoint.applied_log_index,
            log_entries = entries.len(),
            "the index is ahead of the log (a power loss took entries it had applied); \
             rebuilding it from the log"
        );
        drop(index);
        match self {
            IndexSource::File(path) => match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_context(format!("removing {}", path.display()))(e)),
            },
            IndexSource::Shared(file, _) => file.clear(),
            IndexSource::Memory(_) => {}
        }
        self.open()
    }
}

/// Refuses to start on a stored vote whose term is beyond what the internal port's guard
/// lets any node reach (`guard::MAX_TERM`): only a hostile vote request from before the
/// guard can have put it there (issue 11, item 5), and openraft would overflow at its next
/// election. A term cannot be lowered safely (the node could vote twice in one term), so the
/// operator is told to replace the node's data and let it rejoin.
fn check_stored_term(vote: &VoteStore) -> Result<(), StartError> {
    let stored = vote
        .read()
        .map_err(io_context("reading the stored raft vote"))?;
    match stored {
        Some(vote) if vote.leader_id().term > crate::guard::MAX_TERM => {
            Err(StartError::Unsupported(format!(
                "the stored raft vote holds term {}, beyond the largest term a node may reach \
                 ({}): it was forced there by a hostile vote request. The term cannot be \
                 lowered safely; remove this node's data directory and let it rejoin the \
                 cluster as a new member",
                vote.leader_id().term,
                crate::guard::MAX_TERM
            )))
        }
        _ => Ok(()),
    }
}

fn io_context(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    let context = context.into();
    move |error| StartError::Io { context, error }
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
        let (disk, index_source, identity, vote): (
            Arc<dyn Disk>,
            IndexSource,
            Identity,
            VoteStore,
        ) = match (&env.storage, &config.db_dir) {
            (Some(storage), _) => (
                storage.disk.clone(),
                match &storage.index_file {
                    Some(file) => IndexSource::Shared(file.clone(), storage.index_options.clone()),
                    None => IndexSource::Memory(storage.index_options.clone()),
                },
                storage.identity.clone(),
                VoteStore::Shared(storage.vote.clone()),
            ),
            (None, None) => (
                Arc::new(MemDisk::new()),
                IndexSource::Memory(stele_index::IndexOptions::default()),
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
                let identity = Identity::load_or_create(&dir.join("node.json"))
                    .map_err(io_context("reading the node identity"))?;
                (
                    Arc::new(disk),
                    IndexSource::File(index_dir.join("index.redb")),
                    identity,
                    VoteStore::File(dir.join("raft-vote.json")),
                )
            }
        };
        check_stored_term(&vote)?;
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
        let index = index_source.open_behind(&entries)?;
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
                fatal: std::sync::OnceLock::new(),
            }),
        };
        node.refresh_cluster_id();
        tokio::spawn(crate::controller::follow_cluster_id(node.clone()));
        if let Some(listener) = listener {
            let gossip = match env.gossip {
                Some(gossip) => gossip,
                None => Arc::new(
                    HttpGossip::new(node.inner.config.gossip.timeout, env.tls.clone())
                        .map_err(|e| StartError::Unsupported(format!("gossip client: {e}")))?,
                ),
            };
            crate::controller::spawn(&node, listener, gossip);
        }
        Ok(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 11, item 5: a node whose stored term a hostile vote had driven to u64::MAX came
    /// back without a word and could never elect; it now refuses to start, saying why and
    /// what to do.
    #[test]
    fn a_stored_term_beyond_the_bound_refuses_to_start() {
        let forced = VoteStore::Memory(Some(crate::types::Vote::new(u64::MAX, 7)));
        let refused = check_stored_term(&forced).expect_err("a forced term must refuse");
        assert!(
            refused
                .to_string()
                .contains("remove this node's data directory"),
            "{refused}"
        );
        let ordinary = VoteStore::Memory(Some(crate::types::Vote::new(42, 7)));
        check_stored_term(&ordinary).expect("an ordinary term starts");
        check_stored_term(&VoteStore::Memory(None)).expect("no vote starts");
    }
}
