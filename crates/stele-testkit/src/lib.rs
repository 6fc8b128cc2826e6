//! Test helpers for Stele's black-box tests: start a real `stele` process on loopback, wait
//! until it is ready, kill it with SIGKILL and start it again on the same data; start a
//! cluster of them ([`cluster`]), cut their internal connections ([`proxy`]) and check what
//! clients saw against what the nodes kept ([`history`], [`client`]).
//!
//! What it owns: free ports, the process, its log file (stdout and stderr, in a temp dir
//! that also holds the data directory of a persistent node) and readiness (`/health/live`
//! answers 204). What it deliberately does not do: speak gRPC. Tests drive the node with the
//! official client (`kurrentdb`) through [`TestNode::connection_string`].
//!
//! The library cannot name the binary itself (`CARGO_BIN_EXE_stele` exists only inside the
//! server's own tests), so [`NodeOptions`] takes its path.
//!
//! ```no_run
//! # async fn example() {
//! use stele_testkit::{NodeOptions, TestNode};
//! let mut node = TestNode::start(NodeOptions::persistent("target/debug/stele")).await;
//! let url = node.connection_string(); // esdb://127.0.0.1:<port>?tls=false
//! node.kill();
//! node.restart().await; // same ports, same arguments, same data directory
//! # }
//! ```

#![allow(
    clippy::print_stderr,
    reason = "test helpers explain failures on the test's stderr"
)]

pub mod certs;
pub mod client;
pub mod cluster;
pub mod history;
pub mod proxy;

pub use certs::{NodeTls, TestCa, ADMIN_PASSWORD};
pub use cluster::{ClusterOptions, Member, TestCluster};
pub use history::{Expected, History, Outcome, ReadEvent, Report};
pub use proxy::FaultProxy;

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long [`TestNode::start`] and [`TestNode::restart`] wait for `/health/live` = 204.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of the log [`TestNode`] prints when a start fails or a test panics.
const LOG_TAIL_BYTES: u64 = 8 * 1024;

/// How often readiness is polled.
const READY_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// What to start: the binary, in-memory or persistent storage, and extra arguments.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    binary_path: PathBuf,
    persistent: bool,
    extra_args: Vec<String>,
    ready_timeout: Duration,
    ip: Ipv4Addr,
    ports: Option<(u16, u16)>,
    dir: Option<PathBuf>,
    config_file: Option<PathBuf>,
    /// `Some`: a secure node (TLS, users, ACLs) with these certificate files.
    tls: Option<NodeTls>,
}

impl NodeOptions {
    /// A node that keeps everything in memory (`--mem-db`).
    pub fn in_memory(binary_path: impl Into<PathBuf>) -> NodeOptions {
        NodeOptions {
            binary_path: binary_path.into(),
            persistent: false,
            extra_args: Vec::new(),
            ready_timeout: DEFAULT_READY_TIMEOUT,
            ip: Ipv4Addr::LOCALHOST,
            ports: None,
            dir: None,
            config_file: None,
            tls: None,
        }
    }

    /// A secure node: no `--insecure`, TLS with these files, users and ACLs in force.
    pub fn secure(mut self, tls: NodeTls) -> NodeOptions {
        self.tls = Some(tls);
        self
    }

    /// A node whose database lives in a fresh temporary directory (`--db <dir>`), kept
    /// across [`TestNode::kill`] and [`TestNode::restart`] and removed on drop.
    pub fn persistent(binary_path: impl Into<PathBuf>) -> NodeOptions {
        NodeOptions {
            persistent: true,
            ..NodeOptions::in_memory(binary_path)
        }
    }

    /// Appends one command-line argument (for example `"--max-append-size"`, then `"1024"`).
    pub fn arg(mut self, arg: impl Into<String>) -> NodeOptions {
        self.extra_args.push(arg.into());
        self
    }

    /// `--max-append-size <bytes>`.
    pub fn max_append_size_bytes(self, bytes: u64) -> NodeOptions {
        self.arg("--max-append-size").arg(bytes.to_string())
    }

    /// `--chunk-size <bytes>`.
    pub fn chunk_size_bytes(self, bytes: u64) -> NodeOptions {
        self.arg("--chunk-size").arg(bytes.to_string())
    }

    /// How long to wait for readiness before failing.
    pub fn ready_timeout(mut self, timeout: Duration) -> NodeOptions {
        self.ready_timeout = timeout;
        self
    }

    /// The loopback address the node binds and advertises (`--node-ip` and `--int-ip`);
    /// `127.0.0.1` unless set. Linux answers on all of `127.0.0.0/8`, so each node of a
    /// cluster can have its own address and be told apart by it.
    pub fn ip(mut self, ip: Ipv4Addr) -> NodeOptions {
        self.ip = ip;
        self
    }

    /// Fixed ports (HTTP/gRPC, internal TCP) instead of free ones picked at start, for
    /// nodes whose peers must know their ports before they start.
    pub fn ports(mut self, http_port: u16, int_tcp_port: u16) -> NodeOptions {
        self.ports = Some((http_port, int_tcp_port));
        self
    }

    /// Keeps the log file (`node.log`) and, for a persistent node, the database (`db/`) in
    /// `dir` (created if missing, never removed by the node) instead of a fresh temporary
    /// directory.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> NodeOptions {
        self.dir = Some(dir.into());
        self
    }

    /// Starts the node with `--config <file>` and nothing else (plus [`NodeOptions::arg`]s):
    /// address, ports and storage come from the file, so [`NodeOptions::ports`] and
    /// [`NodeOptions::ip`] must agree with it for the node's URLs to be right.
    pub fn config_file(mut self, file: impl Into<PathBuf>) -> NodeOptions {
        self.config_file = Some(file.into());
        self
    }
}

/// Where a node keeps its files: a temporary directory it owns, or one it was given.
#[derive(Debug)]
enum NodeDir {
    Temp(tempfile::TempDir),
    Given(PathBuf),
}

impl NodeDir {
    fn path(&self) -> &Path {
        match self {
            NodeDir::Temp(dir) => dir.path(),
            NodeDir::Given(path) => path,
        }
    }
}

/// A running (or killed) `stele` process. Dropping it kills the process.
pub struct TestNode {
    options: NodeOptions,
    http_port: u16,
    int_tcp_port: u16,
    /// Holds the log file and, for a persistent node, `db/`.
    dir: NodeDir,
    log_path: PathBuf,
    child: Option<Child>,
    http: reqwest::Client,
}

impl TestNode {
    /// Picks free loopback ports, spawns the binary with `--insecure` and waits until
    /// `/health/live` answers 204. Panics if the process exits or is not ready in time; the
    /// tail of the node's log is printed whenever a `TestNode` is dropped by a panic.
    pub async fn start(options: NodeOptions) -> TestNode {
        let mut node = TestNode::spawn(options);
        node.wait_ready_or_panic().await;
        node
    }

    /// Spawns the binary like [`TestNode::start`] but returns at once, without waiting for
    /// readiness: the nodes of a cluster become ready only together. Panics if the binary
    /// cannot be spawned.
    pub fn spawn(options: NodeOptions) -> TestNode {
        let dir = match &options.dir {
            Some(path) => {
                std::fs::create_dir_all(path)
                    .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
                NodeDir::Given(path.clone())
            }
            None => NodeDir::Temp(
                tempfile::Builder::new()
                    .prefix("stele-testkit-")
                    .tempdir()
                    .expect("creating the node's temp dir"),
            ),
        };
        let log_path = dir.path().join("node.log");
        let (http_port, int_tcp_port) = options.ports.unwrap_or_else(|| {
            let [http, int] = free_ports_on(options.ip);
            (http, int)
        });
        let options_tls = options.tls.clone();
        let mut node = TestNode {
            options,
            http_port,
            int_tcp_port,
            dir,
            log_path,
            child: None,
            http: match &options_tls {
                Some(tls) => tls.http_client(Duration::from_secs(2)),
                None => reqwest::Client::builder()
                    .timeout(Duration::from_secs(2))
                    .build()
                    .expect("building the HTTP client"),
            },
        };
        node.spawn_process();
        node
    }

    /// The port serving gRPC and HTTP.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The internal (replication) TCP port the node listens on.
    pub fn int_tcp_port(&self) -> u16 {
        self.int_tcp_port
    }

    /// The loopback address the node binds.
    pub fn ip(&self) -> Ipv4Addr {
        self.options.ip
    }

    /// `http://<ip>:<port>` (`https://` for a secure node), for plain HTTP requests and raw
    /// gRPC channels.
    pub fn http_url(&self) -> String {
        let scheme = if self.options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}:{}", self.options.ip, self.http_port)
    }

    /// The connection string for the official clients: `esdb://<ip>:<port>?tls=false`, or
    /// for a secure node `esdb://admin:changeit@<ip>:<port>?tls=true&tlsCaFile=<ca.crt>`.
    pub fn connection_string(&self) -> String {
        match &self.options.tls {
            Some(tls) => format!(
                "esdb://admin:{ADMIN_PASSWORD}@{}:{}?tls=true&tlsCaFile={}",
                self.options.ip,
                self.http_port,
                tls.ca_file.display()
            ),
            None => format!("esdb://{}:{}?tls=false", self.options.ip, self.http_port),
        }
    }

    /// The node's certificate files, for a secure node.
    pub fn tls(&self) -> Option<&NodeTls> {
        self.options.tls.as_ref()
    }

    /// The HTTP client the node is checked with (trusts the test CA of a secure node).
    pub fn http_client(&self) -> &reqwest::Client {
        &self.http
    }

    /// The data directory of a persistent node.
    pub fn data_dir(&self) -> Option<PathBuf> {
        self.options.persistent.then(|| self.dir.path().join("db"))
    }

    /// The process id, while the process runs (for measuring its memory, say).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|child| child.id())
    }

    /// The file that receives the node's stdout and stderr (across restarts).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last few kilobytes of the node's log.
    pub fn log_tail(&self) -> String {
        read_tail(&self.log_path, LOG_TAIL_BYTES)
    }

    /// Whether the process was spawned and has not been killed or seen to exit.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(|child| child.try_wait()) {
            Some(Ok(None)) => true,
            Some(_) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    /// Whether the process was spawned and not killed since (it may have exited on its own;
    /// [`TestNode::is_running`] finds out).
    pub fn has_process(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the process with SIGKILL (no shutdown, no flush) and reaps it. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // An error means the process already exited; wait() reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Another name for [`TestNode::kill`], for tests that want to say how the node dies.
    pub fn sigkill(&mut self) {
        self.kill();
    }

    /// Kills the process if it is running, then starts it again with the same arguments,
    /// ports and data directory, and waits until it is ready.
    pub async fn restart(&mut self) {
        self.respawn();
        self.wait_ready_or_panic().await;
    }

    /// Kills the process if it is running and starts it again with the same arguments,
    /// ports and data directory, without waiting for readiness.
    pub fn respawn(&mut self) {
        self.kill();
        self.spawn_process();
    }

    /// The process's resident memory in bytes (Linux `/proc`), `None` when it is not running.
    pub fn rss_bytes(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    }

    /// Whether `GET /health/live` answers 204 right now.
    pub async fn is_live(&self) -> bool {
        let url = format!("{}/health/live", self.http_url());
        matches!(self.http.get(&url).send().await, Ok(resp) if resp.status().as_u16() == 204)
    }

    /// Waits until `GET /health/live` answers 204. Fails with a description of the last
    /// answer if `timeout` passes first, or at once if the process exits.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let url = format!("{}/health/live", self.http_url());
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!("stele exited ({status}) before it was ready"));
                }
            } else {
                return Err("stele is not running".to_string());
            }
            let last_seen = match self.http.get(&url).send().await {
                Ok(resp) if resp.status().as_u16() == 204 => return Ok(()),
                Ok(resp) => format!("status {}", resp.status()),
                Err(e) => format!("error {e}"),
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "stele at {} not ready within {timeout:?} (GET /health/live: {last_seen})",
                    self.http_url()
                ));
            }
            tokio::time::sleep(READY_POLL_INTERVAL).await;
        }
    }

    fn args(&self) -> Vec<String> {
        if let Some(file) = &self.options.config_file {
            let mut args = vec!["--config".to_string(), file.display().to_string()];
            args.extend(self.options.extra_args.iter().cloned());
            return args;
        }
        let ip = self.options.ip.to_string();
        let security = match &self.options.tls {
            Some(tls) => tls.args(),
            None => vec!["--insecure".into()],
        };
        let mut args: Vec<String> = security;
        args.extend::<Vec<String>>(vec![
            "--node-ip".into(),
            ip.clone(),
            "--int-ip".into(),
            ip,
            "--http-port".into(),
            self.http_port.to_string(),
            "--int-tcp-port".into(),
            self.int_tcp_port.to_string(),
        ]);
        match self.data_dir() {
            Some(db) => {
                args.push("--db".into());
                args.push(db.display().to_string());
            }
            None => args.push("--mem-db".into()),
        }
        args.extend(self.options.extra_args.iter().cloned());
        args
    }

    fn spawn_process(&mut self) {
        let args = self.args();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("opening the node's log file");
        writeln!(
            log,
            "=== stele-testkit: starting {} {}",
            self.options.binary_path.display(),
            args.join(" ")
        )
        .expect("writing the node's log file");
        let stderr = log.try_clone().expect("cloning the log file handle");
        let child = Command::new(&self.options.binary_path)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", self.options.binary_path.display()));
        self.child = Some(child);
    }

    async fn wait_ready_or_panic(&mut self) {
        if let Err(e) = self.wait_ready(self.options.ready_timeout).await {
            // Drop prints the log tail while this panic unwinds.
            panic!("{e}");
        }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- stele log tail ({}):\n{}\n--- end of stele log",
                self.log_path.display(),
                self.log_tail()
            );
        }
        self.kill();
    }
}

/// Distinct ports on `ip` that were free a moment ago. The listeners are closed before the
/// node binds the ports, so another process could take one in between; on a test machine
/// that is rare enough.
pub fn free_ports_on<const N: usize>(ip: Ipv4Addr) -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind((ip, 0)).expect("binding an ephemeral loopback port"))
        .collect();
    std::array::from_fn(|i| {
        listeners[i]
            .local_addr()
            .expect("reading a bound port")
            .port()
    })
}

fn read_tail(path: &Path, max_bytes: u64) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(max_bytes);
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return format!("(could not read {})", path.display());
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
