//! The simulated cluster: each host's "hardware" (its fault-injecting disk, the vote slot and
//! its identity) lives here, outside the node, so it survives the node's crashes; the node is
//! the real `stele_cluster::Node`, started with [`Node::start_with`] on the simulated network.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use stele_cluster::net::{GossipCallError, GossipClient};
use stele_cluster::{
    CommitMode, GossipConfig, GossipMessage, InjectedStorage, Node, NodeConfig, NodeEnv,
    NodeIdentity, VoteSlot,
};
use stele_index::{IndexOptions, SharedMemFile};
use stele_log::FaultyDisk;

use crate::net::{HostId, SimNetwork};

pub const HTTP_PORT: u16 = 2113;
pub const INTERNAL_PORT: u16 = 1112;
/// Small chunks: runs cross chunk boundaries.
pub const CHUNK_SIZE_BYTES: u64 = 256 * 1024;
/// The index flushes to its file after this many commits (a few seconds of a run's writes),
/// or when its memtable holds this many entries: a restart replays what came after.
pub const SIM_DURABLE_EVERY_COMMITS: u64 = 40;
pub const SIM_MEMTABLE_LIMIT: usize = 2_000;

/// How a node went down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashKind {
    /// The process died; the operating system kept what it had written.
    Process,
    /// Power loss: only what was fsynced survives.
    PowerLoss,
    /// Power loss in the middle of the last unsynced write.
    TornWrite { keep_bytes: usize },
    /// Power loss where only the last unsynced write reached the disk.
    ReorderedWrite,
}

pub struct Host {
    pub ip: IpAddr,
    pub replica: bool,
    pub disk: FaultyDisk,
    pub vote: VoteSlot,
    pub identity: NodeIdentity,
    pub priority: i32,
    pub node: Option<Node>,
    pub incarnation: u64,
    /// The log checkpoint when the node last went down: records below it must verify.
    pub checkpoint_at_crash: u64,
    /// A bit flipped in the chunk files (while the node was down, or under the running
    /// node until the operator stops it): (file, offset). Cleared by a wipe.
    pub flipped: Option<(String, u64)>,
    /// What the node had reported durable when it went down: that many entries, and the
    /// digests of its log then (`None` if its log had failed and could not be read).
    pub acknowledged_at_crash: u64,
    pub digests_at_crash: Option<Vec<(u64, u64, u64)>>,
    /// The index's redb file: a restart opens it at its last flush and replays the log from
    /// that checkpoint; replaced by an empty one when the operator deletes the index (a
    /// rebuild from scratch) or wipes the node.
    pub index_file: SharedMemFile,
}

/// Shape and timing of a simulated cluster.
#[derive(Debug, Clone)]
pub struct Shape {
    pub voters: usize,
    pub replicas: usize,
}

impl Shape {
    pub fn name(&self) -> String {
        if self.replicas == 0 {
            format!("{} voters", self.voters)
        } else {
            format!("{} voters + {} replica", self.voters, self.replicas)
        }
    }
}

/// The hosts and the network between them.
pub struct SimCluster {
    pub network: SimNetwork,
    pub hosts: Vec<Mutex<Host>>,
    pub shape: Shape,
    pub fsync_latency: Duration,
}

fn ip(host: HostId) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 10, host as u8 + 1))
}

impl SimCluster {
    pub fn new(shape: Shape, seed: u64, fsync_latency: Duration) -> Arc<SimCluster> {
        let count = shape.voters + shape.replicas;
        let ips: Vec<IpAddr> = (0..count).map(ip).collect();
        let hosts = (0..count)
            .map(|i| {
                Mutex::new(Host {
                    ip: ips[i],
                    replica: i >= shape.voters,
                    disk: FaultyDisk::new(),
                    vote: Arc::new(Mutex::new(None)),
                    identity: NodeIdentity::fresh(),
                    priority: 0,
                    node: None,
                    incarnation: 0,
                    checkpoint_at_crash: 0,
                    flipped: None,
                    acknowledged_at_crash: 0,
                    index_file: SharedMemFile::new(),
                    digests_at_crash: None,
                })
            })
            .collect();
        Arc::new(SimCluster {
            network: SimNetwork::new(seed, &ips),
            hosts,
            shape,
            fsync_latency,
        })
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    pub fn host(&self, i: HostId) -> std::sync::MutexGuard<'_, Host> {
        self.hosts[i].lock().expect("host lock")
    }

    pub fn node(&self, i: HostId) -> Option<Node> {
        self.host(i).node.clone()
    }

    pub fn is_replica(&self, i: HostId) -> bool {
        self.host(i).replica
    }

    /// The live nodes, by host.
    pub fn live(&self) -> Vec<(HostId, Node)> {
        (0..self.len())
            .filter_map(|i| self.node(i).map(|n| (i, n)))
            .collect()
    }

    fn config(&self, i: HostId, host: &Host) -> NodeConfig {
        let ip = host.ip.to_string();
        let seeds = (0..self.len())
            .filter(|&j| j != i)
            .map(|j| (self::ip(j).to_string(), HTTP_PORT))
            .collect();
        NodeConfig {
            db_dir: None,
            index_dir: None,
            chunk_size_bytes: CHUNK_SIZE_BYTES,
            max_append_size_bytes: 64 * 1024,
            max_append_event_size_bytes: 16 * 1024,
            cluster_size: self.shape.voters as u32,
            http_advertised: (ip.clone(), HTTP_PORT),
            gossip_advertised: (ip.clone(), HTTP_PORT),
            internal_bind: (host.ip, INTERNAL_PORT),
            internal_advertised: (ip, INTERNAL_PORT),
            node_priority: host.priority,
            read_only_replica: host.replica,
            leader_election_timeout_ms: 1000,
            gossip: GossipConfig {
                seeds,
                dns: None,
                interval: Duration::from_millis(500),
                timeout: Duration::from_millis(500),
                allowed_difference: Duration::from_secs(60),
                dead_member_removal: Duration::from_secs(1800),
            },
            write_timeout: Duration::from_secs(5),
        }
    }

    /// Starts host `i`'s node on its disk. An error here after a crash is a recovery failure.
    pub async fn start(self: &Arc<Self>, i: HostId) -> Result<(), String> {
        let (config, storage, incarnation) = {
            let host = self.host(i);
            assert!(host.node.is_none(), "host {i} is already running");
            let storage = InjectedStorage {
                disk: Arc::new(host.disk.clone()),
                vote: host.vote.clone(),
                identity: host.identity.clone(),
                index_options: IndexOptions {
                    // Flushes inline (no thread in a simulation), often, so that a restart
                    // finds an index some way behind the log. Never by wall-clock time.
                    memtable_limit: SIM_MEMTABLE_LIMIT,
                    durable_every_commits: SIM_DURABLE_EVERY_COMMITS,
                    durable_every: Duration::from_secs(u64::MAX / 4),
                    cache_size_bytes: 4 * 1024 * 1024,
                    background_flush: false,
                },
                index_file: Some(host.index_file.clone()),
            };
            (self.config(i, &host), storage, host.incarnation)
        };
        let env = NodeEnv {
            net: Arc::new(self.network.handle(i)),
            gossip: Some(Arc::new(SimGossip {
                cluster: Arc::downgrade(self),
                from: i,
                net: self.network.handle(i),
            })),
            storage: Some(storage),
            commit: CommitMode::Task {
                fsync_latency: self.fsync_latency,
            },
            tls: None,
        };
        let node = match Node::start_with(config, env).await {
            Ok(node) => node,
            Err(e) => {
                // Whatever the failed start bound is released, as when a process exits.
                self.network.crash(i);
                self.host(i).incarnation += 1;
                return Err(format!("host {i} failed to start: {e}"));
            }
        };
        let mut host = self.host(i);
        if host.incarnation != incarnation {
            // Crashed while starting.
            drop(host);
            stop_in_background(node);
            return Ok(());
        }
        host.node = Some(node);
        Ok(())
    }

    /// Takes host `i` down. Its old node is fenced off from the network, the vote slot and
    /// the disk (it keeps handles to copies nobody reads), and its tasks are stopped.
    pub fn crash(&self, i: HostId, kind: CrashKind) {
        let mut host = self.host(i);
        host.incarnation += 1;
        if let Some(node) = host.node.clone() {
            host.checkpoint_at_crash = node.log_checkpoint();
            host.acknowledged_at_crash = node.acknowledged_entries();
            host.digests_at_crash = (!node.log_failed()).then(|| node.entry_digests(false));
        }
        self.network.crash(i);
        host.index_file = host
            .index_file
            .after_crash(!matches!(kind, CrashKind::Process));
        host.disk = match kind {
            CrashKind::Process => host.disk.detach(),
            CrashKind::PowerLoss => host.disk.crash(),
            CrashKind::TornWrite { keep_bytes } => host.disk.crash_tearing_last_write(keep_bytes),
            CrashKind::ReorderedWrite => host.disk.crash_keeping_only_last_write(),
        };
        let vote = host.vote.lock().expect("vote slot lock").clone();
        host.vote = Arc::new(Mutex::new(vote));
        if let Some(node) = host.node.take() {
            stop_in_background(node);
        }
    }
}

impl SimCluster {
    /// The operator replaces a node whose data is damaged: a new, empty disk and a new
    /// identity at the same address (the controller admits it in place of the old member).
    pub fn wipe(&self, i: HostId) {
        let mut host = self.host(i);
        assert!(host.node.is_none(), "wipe a node that is down");
        host.disk = FaultyDisk::new();
        host.vote = Arc::new(Mutex::new(None));
        host.identity = NodeIdentity::fresh();
        host.checkpoint_at_crash = 0;
        host.flipped = None;
        host.acknowledged_at_crash = 0;
        host.digests_at_crash = None;
        host.index_file = SharedMemFile::new();
    }

    /// The operator deletes a down node's index: the next start rebuilds it from the log.
    pub fn delete_index(&self, i: HostId) {
        let mut host = self.host(i);
        assert!(
            host.node.is_none(),
            "delete the index of a node that is down"
        );
        host.index_file = SharedMemFile::new();
    }

    /// Flips one bit of a node's first chunk below its checkpoint (so in records that must
    /// verify): a down node's checkpoint when it went down, a running node's current one.
    /// Returns where, or `None` if the node has no such records.
    pub fn flip_bit(&self, i: HostId, at: u64, bit: u8) -> Option<(String, u64)> {
        let mut host = self.host(i);
        let checkpoint = match &host.node {
            Some(node) => node.log_checkpoint(),
            None => host.checkpoint_at_crash,
        };
        if checkpoint == 0 {
            return None;
        }
        let file = stele_log::chunk_file_name(0);
        let limit = checkpoint.min(CHUNK_SIZE_BYTES);
        let offset = stele_log::CHUNK_HEADER_BYTES + at % limit;
        host.disk.durable_bytes(&file, offset, 1)?;
        host.disk.flip_bit(&file, offset, bit);
        host.flipped = Some((file.clone(), offset));
        Some((file, offset))
    }

    /// Whether host `i` runs with a flipped bit the operator has not dealt with yet.
    pub fn rotting(&self, i: HostId) -> bool {
        let host = self.host(i);
        host.node.is_some() && host.flipped.is_some()
    }
}

fn stop_in_background(node: Node) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(5), node.shutdown()).await;
    });
}

/// Gossip between simulated hosts: the target node's own `receive_gossip`, reached over the
/// simulated network's reachability and delays (only the HTTP encoding is skipped).
struct SimGossip {
    cluster: std::sync::Weak<SimCluster>,
    from: HostId,
    /// This incarnation's view of the network (fenced once the host crashes).
    net: crate::net::HostNet,
}

impl GossipClient for SimGossip {
    fn exchange<'a>(
        &'a self,
        endpoint: &'a (String, u16),
        message: &'a GossipMessage,
    ) -> BoxFuture<'a, Result<GossipMessage, GossipCallError>> {
        Box::pin(async move {
            let unreachable =
                |why: &str| GossipCallError::Unreachable(format!("{endpoint:?}: {why}"));
            let cluster = self.cluster.upgrade().ok_or_else(|| unreachable("gone"))?;
            let addr: SocketAddr = format!("{}:{}", endpoint.0, endpoint.1)
                .parse()
                .map_err(|_| unreachable("bad address"))?;
            let Some(to) = cluster.network.host_of(addr.ip()) else {
                return Err(unreachable("no such host"));
            };
            let net = &cluster.network;
            if !self.net.is_current() || !net.flows(self.from, to) {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(net.latency()).await;
            let node = cluster.node(to);
            let Some(node) = node else {
                return Err(unreachable("connection refused"));
            };
            let reply = node
                .receive_gossip(message)
                .map_err(|e| GossipCallError::Refused(e.to_string()))?;
            if !net.flows(to, self.from) {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(net.latency()).await;
            Ok(reply)
        })
    }
}
