//! [`TestCluster`]: voters and read-only replicas of the real `stele` binary on loopback,
//! node `k` on its own address `127.0.0.(k+1)`, each with a persistent data directory.
//!
//! What it owns: addresses and ports, the command lines (or EventStoreDB-style YAML files),
//! optional [`FaultProxy`]s in front of each node's internal port, waiting for the cluster
//! to form, asking it who leads (`/gossip`) and cutting a node off. What it deliberately does
//! not do: decide what a test expects of the cluster; every wait ends with a panic that
//! prints what each node's gossip said, and the nodes' log tails follow as the cluster
//! drops.
//!
//! ```no_run
//! # async fn example() {
//! use stele_testkit::{ClusterOptions, TestCluster};
//! use std::time::Duration;
//! let mut cluster = TestCluster::start(ClusterOptions::new("target/debug/stele")).await;
//! let leader = cluster.leader().await.expect("one leader");
//! cluster.kill(leader);
//! let next = cluster.wait_for_leader(&[leader], Duration::from_secs(10)).await;
//! assert_ne!(next, leader);
//! cluster.restart(leader);
//! cluster.wait_ready(leader, Duration::from_secs(30)).await;
//! # }
//! ```

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

use crate::history::ReadEvent;
use crate::proxy::FaultProxy;
use crate::{client, free_ports_on, NodeOptions, TestCa, TestNode};

/// How long [`TestCluster::start`] waits for the cluster to form.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(60);

/// How often conditions are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Timeout of one HTTP request to a node.
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);

/// What to start.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    binary_path: PathBuf,
    voters: usize,
    read_only_replicas: usize,
    proxied: bool,
    yaml_config: bool,
    gossip_interval_ms: u64,
    gossip_timeout_ms: u64,
    leader_election_timeout_ms: u64,
    /// Written to the YAML files only (`IntTcpHeartbeatInterval`, `IntTcpHeartbeatTimeout`).
    int_tcp_heartbeat_interval_ms: u64,
    int_tcp_heartbeat_timeout_ms: u64,
    start_timeout: Duration,
    args: Vec<String>,
    node_args: Vec<(usize, String)>,
    /// Secure nodes: a CA made at start, a node certificate each (`stele certs`).
    secure: bool,
}

impl ClusterOptions {
    /// Three voters, no replica, no proxies, command-line options, short timeouts.
    pub fn new(binary_path: impl Into<PathBuf>) -> ClusterOptions {
        ClusterOptions {
            binary_path: binary_path.into(),
            voters: 3,
            read_only_replicas: 0,
            proxied: false,
            yaml_config: false,
            gossip_interval_ms: 200,
            gossip_timeout_ms: 500,
            leader_election_timeout_ms: 500,
            int_tcp_heartbeat_interval_ms: 200,
            int_tcp_heartbeat_timeout_ms: 1000,
            start_timeout: DEFAULT_START_TIMEOUT,
            args: Vec::new(),
            node_args: Vec::new(),
            secure: false,
        }
    }

    /// Secure nodes: TLS on every port with certificates from one CA made at start, users
    /// and ACLs in force (the cluster's own HTTP calls go as `admin`).
    pub fn secure(mut self, secure: bool) -> ClusterOptions {
        self.secure = secure;
        self
    }

    /// How many voting nodes (`--cluster-size`); nodes `0..voters`.
    pub fn voters(mut self, voters: usize) -> ClusterOptions {
        self.voters = voters;
        self
    }

    /// How many read-only replicas; nodes `voters..voters + replicas`.
    pub fn read_only_replicas(mut self, replicas: usize) -> ClusterOptions {
        self.read_only_replicas = replicas;
        self
    }

    /// Puts a [`FaultProxy`] in front of each node's internal port and has the node
    /// advertise the proxy's port (`--int-tcp-port-advertise-as`), so that
    /// [`TestCluster::isolate`] can cut it off.
    pub fn proxied(mut self, proxied: bool) -> ClusterOptions {
        self.proxied = proxied;
        self
    }

    /// Starts each node with `--config <file>` only, from an EventStoreDB-style YAML file,
    /// instead of command-line options.
    pub fn yaml_config(mut self, yaml: bool) -> ClusterOptions {
        self.yaml_config = yaml;
        self
    }

    /// `--gossip-interval-ms` (200 unless set).
    pub fn gossip_interval_ms(mut self, ms: u64) -> ClusterOptions {
        self.gossip_interval_ms = ms;
        self
    }

    /// `--gossip-timeout-ms` (500 unless set).
    pub fn gossip_timeout_ms(mut self, ms: u64) -> ClusterOptions {
        self.gossip_timeout_ms = ms;
        self
    }

    /// `--leader-election-timeout-ms` (500 unless set).
    pub fn leader_election_timeout_ms(mut self, ms: u64) -> ClusterOptions {
        self.leader_election_timeout_ms = ms;
        self
    }

    /// How long [`TestCluster::start`] waits for the cluster to form (60 s unless set).
    pub fn start_timeout(mut self, timeout: Duration) -> ClusterOptions {
        self.start_timeout = timeout;
        self
    }

    /// A command-line argument for every node, after the generated ones (in YAML mode,
    /// after `--config <file>`; the command line overrides the file).
    pub fn arg(mut self, arg: impl Into<String>) -> ClusterOptions {
        self.args.push(arg.into());
        self
    }

    /// A command-line argument for node `k` only (for example `--node-priority`, `"5"`).
    pub fn node_arg(mut self, k: usize, arg: impl Into<String>) -> ClusterOptions {
        self.node_args.push((k, arg.into()));
        self
    }

    fn len(&self) -> usize {
        self.voters + self.read_only_replicas
    }
}

/// One entry of a node's `GET /gossip`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    #[serde(default)]
    pub instance_id: String,
    pub state: String,
    pub is_alive: bool,
    pub http_end_point_ip: String,
    pub http_end_point_port: u16,
    #[serde(default)]
    pub internal_tcp_ip: Option<String>,
    #[serde(default)]
    pub internal_tcp_port: Option<u16>,
    #[serde(default)]
    pub writer_checkpoint: i64,
    #[serde(default)]
    pub chaser_checkpoint: i64,
    #[serde(default)]
    pub last_commit_position: i64,
    #[serde(default)]
    pub epoch_number: i64,
    #[serde(default)]
    pub node_priority: i64,
    #[serde(default)]
    pub is_read_only_replica: bool,
    /// Every other field, as sent.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl Member {
    /// Whether the member is alive and in state `state` (`"Leader"`, `"Follower"`, ...).
    pub fn is(&self, state: &str) -> bool {
        self.is_alive && self.state == state
    }
}

#[derive(Debug, Deserialize)]
struct GossipDocument {
    members: Vec<Member>,
}

/// Where node `k` lives.
#[derive(Debug, Clone, Copy)]
struct Addresses {
    ip: Ipv4Addr,
    http_port: u16,
    int_tcp_port: u16,
    /// The port peers use: the proxy's when proxied, else `int_tcp_port`.
    advertised_int_tcp_port: u16,
}

/// Voters and replicas of `stele` on loopback. Dropping it kills every node and removes
/// their data.
pub struct TestCluster {
    // Fields drop in order: nodes (killed) before proxies, and both before the directory.
    nodes: Vec<TestNode>,
    proxies: Vec<FaultProxy>,
    addresses: Vec<Addresses>,
    options: ClusterOptions,
    http: reqwest::Client,
    dir: tempfile::TempDir,
    /// The CA of a secure cluster.
    ca: Option<TestCa>,
}

impl TestCluster {
    /// Starts every node and waits until each answers `/health/live` with 204 and all
    /// agree on one leader. Panics, printing each node's gossip and log tail, if that does
    /// not happen within the start timeout.
    pub async fn start(options: ClusterOptions) -> TestCluster {
        let cluster = TestCluster::spawn(options).await;
        let timeout = cluster.options.start_timeout;
        let deadline = Instant::now() + timeout;
        loop {
            let reason = match cluster.formed().await {
                Ok(()) => return cluster,
                Err(reason) => reason,
            };
            if Instant::now() >= deadline {
                panic!(
                    "the cluster did not form within {timeout:?}: {reason}\n{}",
                    cluster.diagnostics().await
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Starts every node (and the proxies) without waiting for anything.
    pub async fn spawn(options: ClusterOptions) -> TestCluster {
        assert!(options.voters > 0, "a cluster needs a voter");
        assert!(
            options.len() < 250,
            "one loopback address per node: 127.0.0.1..=127.0.0.250"
        );
        let dir = tempfile::Builder::new()
            .prefix("stele-cluster-")
            .tempdir()
            .expect("creating the cluster's temp dir");
        let mut addresses = Vec::new();
        let mut proxies = Vec::new();
        for k in 0..options.len() {
            let ip = node_ip(k);
            let [http_port, int_tcp_port] = free_ports_on(ip);
            let advertised_int_tcp_port = if options.proxied {
                let proxy = FaultProxy::start(
                    SocketAddr::new(IpAddr::V4(ip), 0),
                    SocketAddr::new(IpAddr::V4(ip), int_tcp_port),
                )
                .await
                .expect("starting a proxy");
                let port = proxy.listen_addr().port();
                proxies.push(proxy);
                port
            } else {
                int_tcp_port
            };
            addresses.push(Addresses {
                ip,
                http_port,
                int_tcp_port,
                advertised_int_tcp_port,
            });
        }
        let ca = options
            .secure
            .then(|| TestCa::create(&options.binary_path, dir.path()));
        let http = match &ca {
            Some(ca) => {
                let pem = std::fs::read(ca.ca_file()).expect("reading the CA certificate");
                reqwest::Client::builder()
                    .timeout(HTTP_TIMEOUT)
                    .add_root_certificate(
                        reqwest::Certificate::from_pem(&pem).expect("the CA certificate parses"),
                    )
                    .build()
                    .expect("building the HTTP client")
            }
            None => reqwest::Client::builder()
                .timeout(HTTP_TIMEOUT)
                .build()
                .expect("building the HTTP client"),
        };
        let mut cluster = TestCluster {
            nodes: Vec::new(),
            proxies,
            addresses,
            options,
            http,
            ca,
            dir,
        };
        for k in 0..cluster.options.len() {
            let node_options = cluster.node_options(k);
            cluster.nodes.push(TestNode::spawn(node_options));
        }
        cluster
    }

    fn node_dir(&self, k: usize) -> PathBuf {
        self.dir.path().join(format!("node{k}"))
    }

    /// The gossip seed of node `k`: every other node's HTTP endpoint.
    fn gossip_seed(&self, k: usize) -> String {
        self.addresses
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != k)
            .map(|(_, a)| format!("{}:{}", a.ip, a.http_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn node_options(&self, k: usize) -> NodeOptions {
        let a = self.addresses[k];
        let o = &self.options;
        let dir = self.node_dir(k);
        let mut node = NodeOptions::persistent(&o.binary_path)
            .ip(a.ip)
            .ports(a.http_port, a.int_tcp_port)
            .dir(&dir);
        if let Some(ca) = &self.ca {
            node = node.secure(ca.node(&dir.join("certs"), &a.ip.to_string(), &[]));
        }
        if o.yaml_config {
            let file = dir.join("stele.yaml");
            std::fs::create_dir_all(&dir).expect("creating the node's directory");
            std::fs::write(&file, self.yaml(k, &dir)).expect("writing the node's YAML file");
            node = node.config_file(file);
        } else {
            let mut args = vec![
                "--cluster-size".to_string(),
                o.voters.to_string(),
                "--discover-via-dns".into(),
                "false".into(),
                "--gossip-seed".into(),
                self.gossip_seed(k),
                "--gossip-interval-ms".into(),
                o.gossip_interval_ms.to_string(),
                "--gossip-timeout-ms".into(),
                o.gossip_timeout_ms.to_string(),
                "--leader-election-timeout-ms".into(),
                o.leader_election_timeout_ms.to_string(),
            ];
            if o.proxied {
                args.push("--int-tcp-port-advertise-as".into());
                args.push(a.advertised_int_tcp_port.to_string());
            }
            if self.is_replica(k) {
                args.push("--read-only-replica".into());
                args.push("true".into());
            }
            for arg in args {
                node = node.arg(arg);
            }
        }
        for arg in &o.args {
            node = node.arg(arg.clone());
        }
        for (_, arg) in o.node_args.iter().filter(|(j, _)| *j == k) {
            node = node.arg(arg.clone());
        }
        node
    }

    /// Node `k`'s configuration file in EventStoreDB's YAML form.
    fn yaml(&self, k: usize, dir: &Path) -> String {
        let a = self.addresses[k];
        let o = &self.options;
        let mut yaml = String::new();
        let mut line = |key: &str, value: &dyn std::fmt::Display| {
            writeln!(yaml, "{key}: {value}").expect("writing to a String");
        };
        line("Db", &dir.join("db").display());
        line("Index", &dir.join("index").display());
        line("Insecure", &true);
        line("IntIp", &a.ip);
        line("ExtIp", &a.ip);
        line("HttpPort", &a.http_port);
        line("IntTcpPort", &a.int_tcp_port);
        line("EnableExternalTcp", &false);
        line("EnableAtomPubOverHTTP", &true);
        line("ClusterSize", &o.voters);
        line("DiscoverViaDns", &false);
        line("GossipSeed", &self.gossip_seed(k));
        line("RunProjections", &"All");
        line("GossipIntervalMs", &o.gossip_interval_ms);
        line("GossipTimeoutMs", &o.gossip_timeout_ms);
        line("LeaderElectionTimeoutMs", &o.leader_election_timeout_ms);
        line("IntTcpHeartbeatInterval", &o.int_tcp_heartbeat_interval_ms);
        line("IntTcpHeartbeatTimeout", &o.int_tcp_heartbeat_timeout_ms);
        if o.proxied {
            line("IntTcpPortAdvertiseAs", &a.advertised_int_tcp_port);
        }
        if self.is_replica(k) {
            line("ReadOnlyReplica", &true);
        }
        yaml
    }

    /// The YAML file node `k` was started from, in YAML mode.
    pub fn config_file(&self, k: usize) -> Option<PathBuf> {
        self.options
            .yaml_config
            .then(|| self.node_dir(k).join("stele.yaml"))
    }

    /// Number of nodes, voters and replicas.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no node (never, once started).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Indexes of the voting nodes.
    pub fn voters(&self) -> std::ops::Range<usize> {
        0..self.options.voters
    }

    /// Indexes of the read-only replicas.
    pub fn read_only_replicas(&self) -> std::ops::Range<usize> {
        self.options.voters..self.options.len()
    }

    /// Whether node `k` is a read-only replica.
    pub fn is_replica(&self, k: usize) -> bool {
        k >= self.options.voters
    }

    /// Node `k`'s process.
    pub fn node(&self, k: usize) -> &TestNode {
        &self.nodes[k]
    }

    /// Node `k`'s process, mutably.
    pub fn node_mut(&mut self, k: usize) -> &mut TestNode {
        &mut self.nodes[k]
    }

    /// Node `k`'s loopback address, `127.0.0.(k+1)`.
    pub fn ip(&self, k: usize) -> Ipv4Addr {
        self.addresses[k].ip
    }

    /// `http://127.0.0.(k+1):<port>`.
    pub fn http_url(&self, k: usize) -> String {
        self.nodes[k].http_url()
    }

    /// The internal port node `k` listens on (behind its proxy when proxied).
    pub fn int_tcp_port(&self, k: usize) -> u16 {
        self.addresses[k].int_tcp_port
    }

    /// The discover connection string: every voter as a gossip seed, leader preferred,
    /// with enough discovery attempts to ride out an election.
    pub fn connection_string(&self) -> String {
        let hosts: Vec<String> = self
            .voters()
            .map(|k| format!("{}:{}", self.addresses[k].ip, self.addresses[k].http_port))
            .collect();
        format!(
            "esdb://{}{}?{}&maxDiscoverAttempts=50&discoveryInterval=200&gossipTimeout=2000",
            self.credentials(),
            hosts.join(","),
            self.tls_option()
        )
    }

    /// `admin:changeit@` for a secure cluster.
    fn credentials(&self) -> String {
        match &self.ca {
            Some(_) => format!("admin:{}@", crate::ADMIN_PASSWORD),
            None => String::new(),
        }
    }

    /// `tls=false`, or `tls=true&tlsCaFile=...` for a secure cluster.
    fn tls_option(&self) -> String {
        match &self.ca {
            Some(ca) => format!("tls=true&tlsCaFile={}", ca.ca_file().display()),
            None => "tls=false".to_string(),
        }
    }

    /// The CA of a secure cluster.
    pub fn ca(&self) -> Option<&TestCa> {
        self.ca.as_ref()
    }

    /// Talks to node `k` only (no discovery) without asking for the leader, so reads are
    /// served by node `k` itself.
    pub fn node_connection_string(&self, k: usize) -> String {
        let a = self.addresses[k];
        format!(
            "esdb://{}{}:{}?{}&nodePreference=follower",
            self.credentials(),
            a.ip,
            a.http_port,
            self.tls_option()
        )
    }

    /// Talks to node `k` first (no discovery) with the default preference, leader: every
    /// call carries `requires-leader: true`, and a "not leader" answer moves the client to
    /// the leader it names.
    pub fn node_leader_connection_string(&self, k: usize) -> String {
        let a = self.addresses[k];
        format!(
            "esdb://{}{}:{}?{}",
            self.credentials(),
            a.ip,
            a.http_port,
            self.tls_option()
        )
    }

    /// The proxy in front of node `k`'s internal port. Panics if the cluster is not
    /// proxied.
    pub fn proxy(&self, k: usize) -> &FaultProxy {
        assert!(
            self.options.proxied,
            "the cluster has no proxies (ClusterOptions::proxied)"
        );
        &self.proxies[k]
    }

    /// Cuts node `k` off from every other node's internal port and them from its: its
    /// proxy refuses everybody, and every other proxy refuses connections from
    /// `127.0.0.(k+1)`. Returns once the connections it cut are closed. Client ports (and
    /// so gossip over HTTP) stay open.
    pub async fn isolate(&self, k: usize) {
        let ip = IpAddr::V4(self.ip(k));
        for (j, proxy) in self.proxies_or_panic().iter().enumerate() {
            if j == k {
                proxy.block_all();
            } else {
                proxy.block_sources([ip]);
            }
        }
        for proxy in self.proxies_or_panic() {
            proxy.settled().await;
        }
    }

    /// Lifts every block of every proxy.
    pub fn heal(&self) {
        for proxy in self.proxies_or_panic() {
            proxy.heal();
        }
    }

    fn proxies_or_panic(&self) -> &[FaultProxy] {
        assert!(
            self.options.proxied,
            "the cluster has no proxies (ClusterOptions::proxied)"
        );
        &self.proxies
    }

    /// Kills node `k` with SIGKILL.
    pub fn kill(&mut self, k: usize) {
        self.nodes[k].kill();
    }

    /// Whether node `k`'s process is running (reaps it if it exited).
    pub fn is_running(&mut self, k: usize) -> bool {
        self.nodes[k].is_running()
    }

    /// Whether node `k` was started and not killed since (it may have exited on its own).
    pub fn is_started(&self, k: usize) -> bool {
        self.nodes[k].has_process()
    }

    /// Starts node `k` again (killing it first if needed): same arguments, ports and data
    /// directory. Does not wait; see [`TestCluster::wait_ready`].
    pub fn restart(&mut self, k: usize) {
        self.nodes[k].respawn();
    }

    /// Waits until node `k` answers `/health/live` with 204 (it leads, or it has caught up
    /// with the leader). Panics with diagnostics after `timeout`.
    pub async fn wait_ready(&mut self, k: usize, timeout: Duration) {
        if let Err(e) = self.nodes[k].wait_ready(timeout).await {
            panic!("node {k}: {e}\n{}", self.diagnostics().await);
        }
    }

    /// Node `k`'s `/gossip` members.
    pub async fn try_gossip(&self, k: usize) -> Result<Vec<Member>, String> {
        let url = format!("{}/gossip", self.http_url(k));
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| format!("GET {url}: reading the body: {e}"))?;
        if !status.is_success() {
            return Err(format!("GET {url}: {status}: {body}"));
        }
        serde_json::from_str::<GossipDocument>(&body)
            .map(|g| g.members)
            .map_err(|e| format!("GET {url}: {e}: {body}"))
    }

    /// Node `k`'s `/gossip` members; panics with diagnostics if it does not answer.
    pub async fn gossip(&self, k: usize) -> Vec<Member> {
        match self.try_gossip(k).await {
            Ok(members) => members,
            Err(e) => panic!("{e}\n{}", self.diagnostics().await),
        }
    }

    /// Which node a gossip member is, by its HTTP endpoint.
    pub fn index_of(&self, member: &Member) -> Option<usize> {
        self.addresses.iter().position(|a| {
            a.http_port == member.http_end_point_port
                && member.http_end_point_ip == a.ip.to_string()
        })
    }

    /// Node `k`'s state as node `k` itself reports it in its gossip (`"Leader"`,
    /// `"Follower"`, `"ReadOnlyReplica"`, ...), or `None` if it does not answer.
    pub async fn state(&self, k: usize) -> Option<String> {
        let members = self.try_gossip(k).await.ok()?;
        members
            .iter()
            .find(|m| self.index_of(m) == Some(k))
            .map(|m| m.state.clone())
    }

    /// Waits until node `k` reports itself in `state`; panics with diagnostics after
    /// `timeout`.
    pub async fn wait_for_state(&self, k: usize, state: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.state(k).await;
            if seen.as_deref() == Some(state) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "node {k} not {state} within {timeout:?} (last seen: {seen:?})\n{}",
                    self.diagnostics().await
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The leader every running node agrees on, if they do right now.
    pub async fn leader(&self) -> Option<usize> {
        self.agreed_leader(&[]).await.ok()
    }

    /// Waits until the running nodes outside `exclude` agree on one leader outside
    /// `exclude` (what the excluded nodes say, and what anyone says about them, is
    /// ignored). Panics with diagnostics after `timeout`.
    pub async fn wait_for_leader(&self, exclude: &[usize], timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let reason = match self.agreed_leader(exclude).await {
                Ok(leader) => return leader,
                Err(reason) => reason,
            };
            if Instant::now() >= deadline {
                panic!(
                    "no leader outside {exclude:?} within {timeout:?}: {reason}\n{}",
                    self.diagnostics().await
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits until every running node agrees on a leader other than `old` (which is still
    /// asked: use it after a resignation). Panics with diagnostics after `timeout`.
    pub async fn wait_for_leader_change(&self, old: usize, timeout: Duration) -> usize {
        self.wait_for_agreed_leader(
            timeout,
            |leader| leader != old,
            &format!("other than {old}"),
        )
        .await
    }

    /// Waits until every running node agrees that node `k` leads. Panics with diagnostics
    /// after `timeout`.
    pub async fn wait_for_leader_to_be(&self, k: usize, timeout: Duration) {
        self.wait_for_agreed_leader(timeout, |leader| leader == k, &format!("{k}"))
            .await;
    }

    async fn wait_for_agreed_leader(
        &self,
        timeout: Duration,
        wanted: impl Fn(usize) -> bool,
        what: &str,
    ) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let reason = match self.agreed_leader(&[]).await {
                Ok(leader) if wanted(leader) => return leader,
                Ok(leader) => format!("the nodes agree on {leader}"),
                Err(reason) => reason,
            };
            if Instant::now() >= deadline {
                panic!(
                    "no agreed leader {what} within {timeout:?}: {reason}\n{}",
                    self.diagnostics().await
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The one leader outside `exclude` that every running node outside `exclude` names
    /// (and that names itself), or why there is none.
    pub async fn agreed_leader(&self, exclude: &[usize]) -> Result<usize, String> {
        let observers: Vec<usize> = (0..self.len())
            .filter(|k| !exclude.contains(k))
            .filter(|&k| self.nodes[k].has_process())
            .collect();
        if observers.is_empty() {
            return Err("no running node to ask".to_string());
        }
        let views = futures::future::join_all(observers.iter().map(|&k| self.try_gossip(k))).await;
        let mut agreed: Option<usize> = None;
        for (&k, view) in observers.iter().zip(views) {
            let members = view.map_err(|e| format!("node {k}: {e}"))?;
            let leaders: BTreeSet<Option<usize>> = members
                .iter()
                .filter(|m| m.is("Leader"))
                .map(|m| self.index_of(m))
                .filter(|j| !j.is_some_and(|j| exclude.contains(&j)))
                .collect();
            let leader = match leaders.into_iter().collect::<Vec<_>>()[..] {
                [Some(j)] => j,
                [None] => return Err(format!("node {k} names a leader that is not ours")),
                [] => return Err(format!("node {k} sees no leader")),
                ref many => return Err(format!("node {k} sees several leaders: {many:?}")),
            };
            match agreed {
                None => agreed = Some(leader),
                Some(other) if other != leader => {
                    return Err(format!(
                        "nodes disagree: node {} says {other}, node {k} says {leader}",
                        observers[0]
                    ))
                }
                Some(_) => {}
            }
        }
        let leader = agreed.expect("at least one observer");
        if !observers.contains(&leader) {
            return Err(format!("the agreed leader {leader} is not running"));
        }
        Ok(leader)
    }

    /// Every node live (`/health/live` 204) and one agreed leader.
    async fn formed(&self) -> Result<(), String> {
        for k in 0..self.len() {
            if !self.nodes[k].is_live().await {
                return Err(format!("node {k} is not live yet"));
            }
        }
        self.agreed_leader(&[]).await.map(|_| ())
    }

    /// `POST` to node `k`; the status and body, or the transport error.
    pub async fn post(&self, k: usize, path: &str) -> Result<(u16, String), String> {
        let url = format!("{}{path}", self.http_url(k));
        let mut request = self.http.post(&url);
        if self.ca.is_some() {
            request = request.basic_auth("admin", Some(crate::ADMIN_PASSWORD));
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        Ok((status, body))
    }

    /// `POST /admin/node/resign` on node `k`; panics unless it answers 200.
    pub async fn resign(&self, k: usize) {
        let answer = self.post(k, "/admin/node/resign").await;
        assert!(
            matches!(answer, Ok((200, _))),
            "POST /admin/node/resign on node {k}: {answer:?}"
        );
    }

    /// `POST /admin/node/priority/{priority}` on node `k`; panics unless it answers 200.
    pub async fn set_priority(&self, k: usize, priority: i64) {
        let path = format!("/admin/node/priority/{priority}");
        let answer = self.post(k, &path).await;
        assert!(
            matches!(answer, Ok((200, _))),
            "POST {path} on node {k}: {answer:?}"
        );
    }

    /// Node `k`'s whole `$all` (user streams), read from node `k` itself.
    pub async fn read_all(&self, k: usize, timeout: Duration) -> Result<Vec<ReadEvent>, String> {
        client::read_all_from(&self.node_connection_string(k), timeout).await
    }

    /// Reads `$all` from each of `nodes` until they are identical or `timeout` passes, and
    /// returns the last reads, named `node<k>` (for [`crate::History::verify`], which
    /// reports any difference that remains).
    pub async fn read_all_converged(
        &self,
        nodes: &[usize],
        timeout: Duration,
    ) -> Vec<(String, Vec<ReadEvent>)> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut reads = Vec::new();
            let mut failure = None;
            for &k in nodes {
                match self.read_all(k, Duration::from_secs(10)).await {
                    Ok(events) => reads.push((format!("node{k}"), events)),
                    Err(e) => {
                        failure = Some(e);
                        reads.push((format!("node{k}"), Vec::new()));
                    }
                }
            }
            let same = reads.windows(2).all(|w| w[0].1 == w[1].1);
            if failure.is_none() && same {
                return reads;
            }
            if Instant::now() >= deadline {
                if let Some(e) = failure {
                    panic!("reading $all: {e}\n{}", self.diagnostics().await);
                }
                eprintln!(
                    "$all still differs between nodes {nodes:?} after {timeout:?}\n{}",
                    self.diagnostics().await
                );
                return reads;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// What each node says in its gossip, and the proxies' counters: for failure messages.
    pub async fn diagnostics(&self) -> String {
        let mut out = String::new();
        for k in 0..self.len() {
            let role = if self.is_replica(k) {
                "replica"
            } else {
                "voter"
            };
            let _ = writeln!(
                out,
                "node {k} ({role}, {}, int {}):",
                self.http_url(k),
                self.addresses[k].int_tcp_port
            );
            match self.try_gossip(k).await {
                Ok(members) => {
                    for m in members {
                        let who = self
                            .index_of(&m)
                            .map_or_else(|| "?".to_string(), |j| j.to_string());
                        let _ = writeln!(
                            out,
                            "  sees node {who} {}:{} {} alive={} epoch={} writer={} chaser={} \
                             commit={} priority={} replica={}",
                            m.http_end_point_ip,
                            m.http_end_point_port,
                            m.state,
                            m.is_alive,
                            m.epoch_number,
                            m.writer_checkpoint,
                            m.chaser_checkpoint,
                            m.last_commit_position,
                            m.node_priority,
                            m.is_read_only_replica
                        );
                    }
                }
                Err(e) => {
                    let _ = writeln!(out, "  gossip: {e}");
                }
            }
            if let Some(proxy) = self.proxies.get(k) {
                let _ = writeln!(out, "  proxy: {proxy:?}");
            }
        }
        out
    }
}

/// Node `k`'s loopback address.
pub fn node_ip(k: usize) -> Ipv4Addr {
    let last = u8::try_from(k + 1).expect("at most 250 nodes");
    Ipv4Addr::new(127, 0, 0, last)
}
