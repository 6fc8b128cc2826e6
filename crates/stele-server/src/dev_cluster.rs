//! `stele dev-cluster`: a whole cluster on one machine for development, from this binary.
//!
//! It starts `--nodes` voters and `--read-only-replicas` read-only replicas, each a process of
//! this same binary with EventStoreDB's cluster options (`--cluster-size`, `--gossip-seed`,
//! `--discover-via-dns false`, `--read-only-replica true` for replicas). Each node gets its
//! own loopback address, 127.0.0.1, 127.0.0.2, ..., with the same ports, as EventStoreDB's
//! documentation lays out a local cluster; where those addresses cannot be bound (macOS has
//! only 127.0.0.1) every node uses 127.0.0.1 and the ports go up by one per node instead.
//! Every line a node prints is shown prefixed with `[node-k]`. Once every node's
//! `/health/live` answers 204, and every node's `/gossip` names the same leader (or 20 s
//! later, with a warning), it prints each node's role (from that node's `/gossip`) and the
//! connection string of the voters, then runs until Ctrl-C or SIGTERM, which it passes on
//! to the nodes as SIGTERM (SIGKILL after [`STOP_GRACE`]). A node that exits by itself stops
//! the others and the command fails naming it.
//!
//! What it owns: the layout (addresses, ports, data directories), the processes and their
//! output. What it does not own: anything a node does; a node here is started exactly as an
//! operator would start it by hand, so the command line it prints can be reused.
//!
//! Data lives in `--dir D` (`D/node-k`, kept, so the same command restarts the same cluster),
//! in a temporary directory removed on exit when `--dir` is not given, or nowhere with
//! `--mem-db`.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use futures::future::{join_all, select_all};
use futures::FutureExt;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long every node together may take to answer `/health/live` with 204.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How often readiness is polled.
const READY_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How long, once every node is ready, their `/gossip` may take to name the same leader
/// before the connection string is printed anyway (with a warning).
const LEADER_AGREEMENT_TIMEOUT: Duration = Duration::from_secs(20);
/// How often the nodes still starting are named while waiting.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);
/// How long one HTTP request to a node may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the nodes get to exit after SIGTERM before they are killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long the last output of the nodes may take to be shown after they exited.
const OUTPUT_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Lines of output waiting to be printed; the nodes wait (their pipes fill) beyond this.
const OUTPUT_QUEUE_LINES: usize = 4096;
/// The most nodes of either kind: one loopback address each must remain below 127.0.0.255.
const NODES_MAX: u8 = 50;

/// Exit code for options or a set-up the cluster cannot start with.
const EXIT_CONFIG: u8 = 2;
/// Exit code when a node exited by itself or the cluster was not ready in time.
const EXIT_FAILURE: u8 = 1;

/// Starts a local cluster of this binary and runs it until Ctrl-C or SIGTERM.
#[derive(Debug, Parser)]
#[command(
    name = "stele dev-cluster",
    about = "Starts a local cluster of stele nodes for development and runs it until Ctrl-C",
    after_help = "Each node listens on its own loopback address (127.0.0.1, 127.0.0.2, ...) with the \
                  base ports, or on 127.0.0.1 with the ports plus the node's number (from 0) where \
                  other loopback addresses cannot be bound. Node output is prefixed with [node-k]; \
                  the connection string is printed once every node is ready.\n\
                  Example: stele dev-cluster --nodes 3 --read-only-replicas 1 --dir ./dev-cluster"
)]
pub struct Options {
    /// Voting nodes (the cluster size).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=NODES_MAX as i64))]
    nodes: u8,
    /// Read-only replicas, started after the voters.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=NODES_MAX as i64))]
    read_only_replicas: u8,
    /// Where the nodes keep their data (`DIR/node-k`); kept on exit. Default: a temporary
    /// directory removed on exit.
    #[arg(long, value_name = "DIR", conflicts_with = "mem_db")]
    dir: Option<PathBuf>,
    /// The HTTP (client and gossip) port of the first node.
    #[arg(long, value_name = "PORT", default_value_t = 2113)]
    base_http_port: u16,
    /// The internal (replication) port of the first node.
    #[arg(long, value_name = "PORT", default_value_t = 1112)]
    base_int_port: u16,
    /// Keep every node's data in memory (`--mem-db`); nothing survives a stop.
    #[arg(long)]
    mem_db: bool,
}

/// `stele dev-cluster [options]`: parses `args` (those after `dev-cluster`) and runs.
pub fn main(args: &[String]) -> ExitCode {
    let options = match Options::try_parse_from(
        std::iter::once("stele dev-cluster").chain(args.iter().map(String::as_str)),
    ) {
        Ok(options) => options,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("stele dev-cluster: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // The printer is a thread of its own so that a slow terminal or a full pipe never blocks
    // the async workers (and with them signal handling); it ends when every sender is gone.
    let (console, printer) = Console::start();
    let code = runtime.block_on(run(options, console));
    let _ = printer.join();
    code
}

/// One node to start.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    /// `node-1`, `node-2`, ...: voters first, then replicas.
    name: String,
    ip: IpAddr,
    http_port: u16,
    int_port: u16,
    read_only_replica: bool,
}

impl Member {
    fn http_endpoint(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.http_port)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http_endpoint())
    }
}

/// Addresses and ports of every node: voters then replicas, numbered from 1. With
/// `distinct_ips`, node k (from 0) is on 127.0.0.(k+1) with the base ports; otherwise every
/// node is on 127.0.0.1 with the base ports plus k.
fn plan(options: &Options, distinct_ips: bool) -> anyhow::Result<Vec<Member>> {
    let count = u16::from(options.nodes) + u16::from(options.read_only_replicas);
    let mut members = Vec::with_capacity(usize::from(count));
    for k in 0..count {
        let (ip, http_port, int_port) = if distinct_ips {
            let last = u8::try_from(k + 1).context("too many nodes for 127.0.0.x")?;
            (
                Ipv4Addr::new(127, 0, 0, last),
                options.base_http_port,
                options.base_int_port,
            )
        } else {
            let http = options.base_http_port.checked_add(k);
            let int = options.base_int_port.checked_add(k);
            let (Some(http), Some(int)) = (http, int) else {
                bail!("the base ports plus {count} nodes go past port 65535");
            };
            (Ipv4Addr::LOCALHOST, http, int)
        };
        members.push(Member {
            name: format!("node-{}", k + 1),
            ip: IpAddr::V4(ip),
            http_port,
            int_port,
            read_only_replica: k >= u16::from(options.nodes),
        });
    }
    let mut ports: Vec<SocketAddr> = members
        .iter()
        .flat_map(|m| [m.http_endpoint(), SocketAddr::new(m.ip, m.int_port)])
        .collect();
    ports.sort();
    if let Some(pair) = ports.windows(2).find(|pair| pair[0] == pair[1]) {
        bail!(
            "two nodes would both use {}; choose --base-http-port and --base-int-port further apart",
            pair[0]
        );
    }
    Ok(members)
}

/// The command line of one node (after the binary).
fn node_args(
    member: &Member,
    members: &[Member],
    cluster_size: u8,
    data_root: Option<&Path>,
) -> Vec<OsString> {
    let seeds: Vec<String> = members
        .iter()
        .filter(|m| !m.read_only_replica)
        .map(|m| m.http_endpoint().to_string())
        .collect();
    let ip = member.ip.to_string();
    let mut args: Vec<OsString> = [
        "--insecure",
        "--node-ip",
        &ip,
        "--int-ip",
        &ip,
        "--http-port",
        &member.http_port.to_string(),
        "--int-tcp-port",
        &member.int_port.to_string(),
        "--cluster-size",
        &cluster_size.to_string(),
        "--discover-via-dns",
        "false",
        "--gossip-seed",
        &seeds.join(","),
    ]
    .iter()
    .map(OsString::from)
    .collect();
    match data_root {
        Some(root) => {
            args.push("--db".into());
            args.push(root.join(&member.name).into_os_string());
        }
        None => args.push("--mem-db".into()),
    }
    if member.read_only_replica {
        args.push("--read-only-replica".into());
        args.push("true".into());
    }
    args
}

/// `esdb://ip1:port1,ip2:port2,...?tls=false` for the voters, which is what clients seed
/// their discovery with.
fn connection_string(members: &[Member]) -> String {
    let hosts: Vec<String> = members
        .iter()
        .filter(|m| !m.read_only_replica)
        .map(|m| m.http_endpoint().to_string())
        .collect();
    format!("esdb://{}?tls=false", hosts.join(","))
}

/// Whether loopback addresses other than 127.0.0.1 can be bound (Linux: all of 127/8 is
/// local; macOS: only 127.0.0.1 unless aliases were added).
fn distinct_ips_available() -> bool {
    TcpListener::bind((Ipv4Addr::new(127, 0, 0, 2), 0)).is_ok()
}

/// Fails naming the first address a node would use that something else already holds, so
/// that a second cluster on the same ports is refused before any node starts.
fn check_ports_free(members: &[Member]) -> anyhow::Result<()> {
    for member in members {
        for address in [
            member.http_endpoint(),
            SocketAddr::new(member.ip, member.int_port),
        ] {
            TcpListener::bind(address).with_context(|| {
                format!(
                    "{} cannot use {address} (is another cluster running? choose other ports \
                     with --base-http-port and --base-int-port)",
                    member.name
                )
            })?;
        }
    }
    Ok(())
}

/// Where the nodes' data lives, and the temporary directory to remove on exit if any.
enum DataRoot {
    Memory,
    Given(PathBuf),
    Temporary(tempfile::TempDir),
}

impl DataRoot {
    fn create(options: &Options) -> anyhow::Result<DataRoot> {
        if options.mem_db {
            return Ok(DataRoot::Memory);
        }
        match &options.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                Ok(DataRoot::Given(dir.clone()))
            }
            None => Ok(DataRoot::Temporary(
                tempfile::Builder::new()
                    .prefix("stele-dev-cluster-")
                    .tempdir()
                    .context("creating a temporary data directory")?,
            )),
        }
    }

    fn path(&self) -> Option<&Path> {
        match self {
            DataRoot::Memory => None,
            DataRoot::Given(path) => Some(path),
            DataRoot::Temporary(dir) => Some(dir.path()),
        }
    }

    fn describe(&self) -> String {
        match self {
            DataRoot::Memory => "in memory (--mem-db)".into(),
            DataRoot::Given(path) => format!("in {} (kept)", path.display()),
            DataRoot::Temporary(dir) => {
                format!("in {} (removed on exit)", dir.path().display())
            }
        }
    }
}

/// Lines for standard output or standard error, printed in order by one thread.
#[derive(Clone)]
struct Console {
    lines: mpsc::Sender<(Target, String)>,
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Out,
    Err,
}

impl Console {
    fn start() -> (Console, std::thread::JoinHandle<()>) {
        use std::io::Write;
        let (tx, mut rx) = mpsc::channel::<(Target, String)>(OUTPUT_QUEUE_LINES);
        let printer = std::thread::spawn(move || {
            // Write errors (a closed pipe) are ignored: the lines keep being drained so
            // that the nodes never block on their output.
            while let Some((target, line)) = rx.blocking_recv() {
                let _ = match target {
                    Target::Out => writeln!(std::io::stdout().lock(), "{line}"),
                    Target::Err => writeln!(std::io::stderr().lock(), "{line}"),
                };
            }
        });
        (Console { lines: tx }, printer)
    }

    /// A line of this command's own, to standard output.
    async fn say(&self, line: impl Into<String>) {
        let _ = self.lines.send((Target::Out, line.into())).await;
    }

    /// A problem, to standard error.
    async fn warn(&self, line: impl Into<String>) {
        let _ = self
            .lines
            .send((Target::Err, format!("stele dev-cluster: {}", line.into())))
            .await;
    }
}

/// Copies a node's output, line by line, with its name in front.
async fn forward(output: impl AsyncRead + Unpin, prefix: String, target: Target, console: Console) {
    let mut lines = BufReader::new(output).split(b'\n');
    while let Ok(Some(line)) = lines.next_segment().await {
        let text = String::from_utf8_lossy(&line);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        if console
            .lines
            .send((target, format!("{prefix} {text}")))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// A started node.
struct Running {
    name: String,
    child: Child,
}

async fn run(options: Options, console: Console) -> ExitCode {
    match run_cluster(options, &console).await {
        Ok(code) => code,
        Err(error) => {
            console.warn(format!("{error:#}")).await;
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Starts the nodes, waits for them, runs until a signal or a node's exit, stops them.
/// `Err` only for failures before any node started.
async fn run_cluster(options: Options, console: &Console) -> anyhow::Result<ExitCode> {
    let distinct_ips = distinct_ips_available();
    let members = plan(&options, distinct_ips)?;
    check_ports_free(&members)?;
    let data = DataRoot::create(&options)?;
    let exe = std::env::current_exe().context("finding the stele binary")?;
    let http = reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .build()
        .context("building the HTTP client")?;

    // Listen before starting anything, so that Ctrl-C during start-up stops what started.
    let mut signals = Signals::listen()?;

    if !distinct_ips {
        console
            .say("stele dev-cluster: 127.0.0.2 cannot be bound here; every node uses 127.0.0.1 with its own ports")
            .await;
    }
    console
        .say(format!(
            "stele dev-cluster: {} voters, {} read-only replicas, data {}",
            options.nodes,
            options.read_only_replicas,
            data.describe()
        ))
        .await;

    let mut running = Vec::with_capacity(members.len());
    let mut forwarders = Vec::new();
    for member in &members {
        let args = node_args(member, &members, options.nodes, data.path());
        let shown: Vec<String> = args
            .iter()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect();
        console
            .say(format!(
                "stele dev-cluster: {} ({}): stele {}",
                member.name,
                if member.read_only_replica {
                    "read-only replica"
                } else {
                    "voter"
                },
                shown.join(" ")
            ))
            .await;
        let mut command = Command::new(&exe);
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own process group: Ctrl-C in a terminal reaches this command only, which
            // then stops the nodes in order.
            .process_group(0);
        die_with_parent(&mut command);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => {
                console
                    .warn(format!(
                        "cannot start {} ({}): {error}",
                        member.name,
                        exe.display()
                    ))
                    .await;
                stop_all(&mut running, console).await;
                return Ok(ExitCode::from(EXIT_FAILURE));
            }
        };
        let prefix = format!("[{}]", member.name);
        if let Some(stdout) = child.stdout.take() {
            forwarders.push(tokio::spawn(forward(
                stdout,
                prefix.clone(),
                Target::Out,
                console.clone(),
            )));
        }
        if let Some(stderr) = child.stderr.take() {
            forwarders.push(tokio::spawn(forward(
                stderr,
                prefix,
                Target::Err,
                console.clone(),
            )));
        }
        running.push(Running {
            name: member.name.clone(),
            child,
        });
    }

    let outcome = tokio::select! {
        ready = await_cluster(&http, &members, console) => match ready {
            Ok(()) => None,
            Err(problem) => {
                console.warn(problem).await;
                Some(ExitCode::from(EXIT_FAILURE))
            }
        },
        (name, status) = first_exit(&mut running) => {
            console.warn(format!("{name} exited early ({status}); stopping the others")).await;
            Some(ExitCode::from(EXIT_FAILURE))
        }
        signal = signals.next() => {
            console.say(format!("stele dev-cluster: {signal} during start-up; stopping the nodes")).await;
            Some(ExitCode::SUCCESS)
        }
    };

    let code = match outcome {
        Some(code) => code,
        None => {
            report_roles(&http, &members, console).await;
            console
                .say(format!(
                    "stele dev-cluster: ready. Connection string: {}",
                    connection_string(&members)
                ))
                .await;
            console
                .say("stele dev-cluster: Ctrl-C stops the cluster")
                .await;
            tokio::select! {
                (name, status) = first_exit(&mut running) => {
                    console.warn(format!("{name} exited early ({status}); stopping the others")).await;
                    ExitCode::from(EXIT_FAILURE)
                }
                signal = signals.next() => {
                    console.say(format!("stele dev-cluster: {signal}; stopping the nodes")).await;
                    ExitCode::SUCCESS
                }
            }
        }
    };

    stop_all(&mut running, console).await;
    // The nodes have exited, so their pipes are closed and the forwarders end at once;
    // the timeout only guards against a grandchild holding a pipe open.
    let _ = tokio::time::timeout(OUTPUT_DRAIN_TIMEOUT, join_all(forwarders)).await;
    drop(data);
    Ok(code)
}

/// SIGINT (Ctrl-C) and SIGTERM.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn listen() -> anyhow::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("listening for SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
        })
    }

    /// Waits for either and names it.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// The first node to exit, and how. Pending forever when there are none.
async fn first_exit(running: &mut [Running]) -> (String, String) {
    if running.is_empty() {
        return std::future::pending().await;
    }
    let waits = running.iter_mut().map(|node| {
        let name = node.name.clone();
        node.child
            .wait()
            .map(move |status| (name, describe_exit(status)))
            .boxed()
    });
    let ((name, status), _, _) = select_all(waits).await;
    (name, status)
}

fn describe_exit(status: std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(status) => status.to_string(),
        Err(error) => format!("cannot wait for it: {error}"),
    }
}

/// Polls every node's `/health/live` until all answer 204, naming the slow ones every
/// [`PROGRESS_INTERVAL`]. `Err` with the last answers after [`READY_TIMEOUT`].
async fn await_ready(
    http: &reqwest::Client,
    members: &[Member],
    console: &Console,
) -> Result<(), String> {
    let started = Instant::now();
    let deadline = started + READY_TIMEOUT;
    let mut ready = vec![false; members.len()];
    let mut last_answer = vec![String::from("no answer yet"); members.len()];
    let mut next_progress = started + PROGRESS_INTERVAL;
    console
        .say(format!(
            "stele dev-cluster: waiting for {} nodes to answer /health/live (up to {}s)",
            members.len(),
            READY_TIMEOUT.as_secs()
        ))
        .await;
    loop {
        let answers = join_all(
            members
                .iter()
                .map(|member| http.get(member.url("/health/live")).send()),
        )
        .await;
        for (k, answer) in answers.into_iter().enumerate() {
            if ready[k] {
                continue;
            }
            match answer {
                Ok(response) if response.status().as_u16() == 204 => {
                    ready[k] = true;
                    let count = ready.iter().filter(|r| **r).count();
                    console
                        .say(format!(
                            "stele dev-cluster: {} is ready ({count}/{} after {:.1}s)",
                            members[k].name,
                            members.len(),
                            started.elapsed().as_secs_f64()
                        ))
                        .await;
                }
                Ok(response) => last_answer[k] = response.status().to_string(),
                Err(error) if error.is_connect() => last_answer[k] = "not listening yet".into(),
                Err(error) if error.is_timeout() => last_answer[k] = "no answer in time".into(),
                Err(error) => last_answer[k] = error.to_string(),
            }
        }
        if ready.iter().all(|r| *r) {
            return Ok(());
        }
        let waiting = || {
            members
                .iter()
                .zip(&ready)
                .zip(&last_answer)
                .filter(|((_, ready), _)| !**ready)
                .map(|((member, _), answer)| format!("{} ({answer})", member.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(format!(
                "not every node was ready within {}s; still waiting for {}",
                READY_TIMEOUT.as_secs(),
                waiting()
            ));
        }
        if now >= next_progress {
            console
                .say(format!(
                    "stele dev-cluster: still waiting for {}",
                    waiting()
                ))
                .await;
            next_progress = now + PROGRESS_INTERVAL;
        }
        tokio::time::sleep(READY_POLL_INTERVAL).await;
    }
}

/// Every node ready, then (softly) agreeing on a leader.
async fn await_cluster(
    http: &reqwest::Client,
    members: &[Member],
    console: &Console,
) -> Result<(), String> {
    await_ready(http, members, console).await?;
    await_leader(http, members, console).await;
    Ok(())
}

/// Waits until every node's `/gossip` names the same single leader, so that a client that
/// discovers through any of them is sent to the leader at once. A node becomes ready before
/// its gossip has caught up with the others (a follower lists the leader as it last heard of
/// it), and a client that reads such a list is answered NotLeader. After
/// [`LEADER_AGREEMENT_TIMEOUT`] this only warns: the cluster runs, clients retry.
async fn await_leader(http: &reqwest::Client, members: &[Member], console: &Console) {
    let deadline = Instant::now() + LEADER_AGREEMENT_TIMEOUT;
    let mut announced = false;
    loop {
        let views = join_all(members.iter().map(|member| gossip(http, member))).await;
        match leader_agreement(members, &views) {
            Ok(leader) => {
                console
                    .say(format!(
                        "stele dev-cluster: every node's /gossip names {leader} as the leader"
                    ))
                    .await;
                return;
            }
            Err(disagreement) if Instant::now() >= deadline => {
                console
                    .warn(format!(
                        "the nodes do not agree on a leader after {}s ({disagreement}); clients \
                         may be answered NotLeader until they do",
                        LEADER_AGREEMENT_TIMEOUT.as_secs()
                    ))
                    .await;
                return;
            }
            Err(disagreement) => {
                if !announced {
                    console
                        .say(format!(
                            "stele dev-cluster: waiting for every node's /gossip to name the same \
                             leader ({disagreement})"
                        ))
                        .await;
                    announced = true;
                }
                tokio::time::sleep(READY_POLL_INTERVAL).await;
            }
        }
    }
}

/// A node's `/gossip`, or why it could not be read.
async fn gossip(http: &reqwest::Client, member: &Member) -> Result<serde_json::Value, String> {
    let response = http
        .get(member.url("/gossip"))
        .send()
        .await
        .map_err(|error| format!("no /gossip: {error}"))?;
    response
        .json()
        .await
        .map_err(|error| format!("unreadable /gossip: {error}"))
}

/// The leader every node's gossip names (`node-k (ip:port)`), or the first disagreement.
fn leader_agreement(
    members: &[Member],
    views: &[Result<serde_json::Value, String>],
) -> Result<String, String> {
    let mut agreed: Option<String> = None;
    for (member, view) in members.iter().zip(views) {
        let gossip = view
            .as_ref()
            .map_err(|error| format!("{}: {error}", member.name))?;
        let leaders: Vec<String> = gossip["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["state"] == "Leader" && m["isAlive"] != false)
            .map(|m| {
                format!(
                    "{}:{}",
                    m["httpEndPointIp"].as_str().unwrap_or("?"),
                    m["httpEndPointPort"]
                )
            })
            .collect();
        match leaders.as_slice() {
            [leader] => match &agreed {
                Some(other) if other != leader => {
                    return Err(format!(
                        "{} names {leader}, another node {other}",
                        member.name
                    ))
                }
                _ => agreed = Some(leader.clone()),
            },
            [] => return Err(format!("{} knows no leader yet", member.name)),
            several => return Err(format!("{} names {} leaders", member.name, several.len())),
        }
    }
    let leader = agreed.ok_or_else(|| "no nodes".to_owned())?;
    Ok(
        match members
            .iter()
            .find(|m| m.http_endpoint().to_string() == leader)
        {
            Some(member) => format!("{} ({leader})", member.name),
            None => leader,
        },
    )
}

/// Prints each node's role as its own `/gossip` reports it.
async fn report_roles(http: &reqwest::Client, members: &[Member], console: &Console) {
    let answers = join_all(members.iter().map(|member| role(http, member))).await;
    for (member, role) in members.iter().zip(answers) {
        console
            .say(format!(
                "stele dev-cluster: {} http://{} {}",
                member.name,
                member.http_endpoint(),
                role
            ))
            .await;
    }
}

/// The `state` of the member of `/gossip` that is this node (matched by its HTTP endpoint).
async fn role(http: &reqwest::Client, member: &Member) -> String {
    match gossip(http, member).await {
        Ok(gossip) => {
            own_state(&gossip, member).unwrap_or_else(|| "(not in its own /gossip)".into())
        }
        Err(error) => format!("({error})"),
    }
}

fn own_state(gossip: &serde_json::Value, member: &Member) -> Option<String> {
    let ip = member.ip.to_string();
    gossip["members"]
        .as_array()?
        .iter()
        .find(|m| {
            m["httpEndPointIp"].as_str() == Some(ip.as_str())
                && m["httpEndPointPort"].as_u64() == Some(u64::from(member.http_port))
        })
        .and_then(|m| m["state"].as_str())
        .map(str::to_owned)
}

/// Sends SIGTERM to every node still running, waits [`STOP_GRACE`] for them, kills those
/// left, and reports how each ended.
async fn stop_all(running: &mut [Running], console: &Console) {
    for node in running.iter_mut() {
        if matches!(node.child.try_wait(), Ok(None)) {
            if let Some(pid) = node.child.id() {
                terminate(pid);
            }
        }
    }
    let deadline = Instant::now() + STOP_GRACE;
    let outcomes = join_all(running.iter_mut().map(|node| async move {
        let status = match tokio::time::timeout_at(deadline, node.child.wait()).await {
            Ok(status) => describe_exit(status),
            Err(_) => {
                let _ = node.child.start_kill();
                format!(
                    "killed: still running {}s after SIGTERM ({})",
                    STOP_GRACE.as_secs(),
                    describe_exit(node.child.wait().await)
                )
            }
        };
        (node.name.clone(), status)
    }))
    .await;
    for (name, status) in outcomes {
        console
            .say(format!("stele dev-cluster: {name} stopped: {status}"))
            .await;
    }
}

/// SIGTERM to one of our children.
fn terminate(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; `pid` is our own
    // child, not yet reaped (`try_wait` said it runs), so the number cannot be reused.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
}

/// On Linux, a node gets SIGTERM when this command dies, even by SIGKILL, so that no node
/// outlives the cluster it belongs to. The children are spawned from the thread that runs
/// the whole command (`block_on`), which is what the kernel ties the signal to.
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec and only calls prctl(2),
    // which is async-signal-safe and allocates nothing.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(args: &[&str]) -> Options {
        Options::try_parse_from(std::iter::once("stele dev-cluster").chain(args.iter().copied()))
            .unwrap()
    }

    #[test]
    fn distinct_addresses_share_the_base_ports() {
        let members = plan(&options(&["--read-only-replicas", "1"]), true).unwrap();
        let shown: Vec<String> = members
            .iter()
            .map(|m| {
                format!(
                    "{} {} {} {}",
                    m.name,
                    m.http_endpoint(),
                    m.int_port,
                    m.read_only_replica
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                "node-1 127.0.0.1:2113 1112 false",
                "node-2 127.0.0.2:2113 1112 false",
                "node-3 127.0.0.3:2113 1112 false",
                "node-4 127.0.0.4:2113 1112 true",
            ]
        );
        assert_eq!(
            connection_string(&members),
            "esdb://127.0.0.1:2113,127.0.0.2:2113,127.0.0.3:2113?tls=false"
        );
    }

    #[test]
    fn one_address_gives_each_node_its_own_ports() {
        let members = plan(
            &options(&[
                "--nodes",
                "2",
                "--base-http-port",
                "3000",
                "--base-int-port",
                "4000",
            ]),
            false,
        )
        .unwrap();
        let endpoints: Vec<(String, u16)> = members
            .iter()
            .map(|m| (m.http_endpoint().to_string(), m.int_port))
            .collect();
        assert_eq!(
            endpoints,
            [
                ("127.0.0.1:3000".to_owned(), 4000),
                ("127.0.0.1:3001".to_owned(), 4001)
            ]
        );
    }

    #[test]
    fn overlapping_port_ranges_are_refused() {
        let error = plan(
            &options(&["--base-http-port", "2113", "--base-int-port", "2112"]),
            false,
        )
        .unwrap_err();
        assert!(error.to_string().contains("127.0.0.1:2113"), "{error}");
        assert!(plan(&options(&["--base-http-port", "65535"]), false).is_err());
    }

    #[test]
    fn node_command_lines_use_eventstoredb_options() {
        let members = plan(
            &options(&["--nodes", "2", "--read-only-replicas", "1"]),
            true,
        )
        .unwrap();
        let args = |k: usize, root: Option<&Path>| -> String {
            node_args(&members[k], &members, 2, root)
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            args(1, Some(Path::new("/d"))),
            "--insecure --node-ip 127.0.0.2 --int-ip 127.0.0.2 --http-port 2113 \
             --int-tcp-port 1112 --cluster-size 2 --discover-via-dns false \
             --gossip-seed 127.0.0.1:2113,127.0.0.2:2113 --db /d/node-2"
        );
        assert_eq!(
            args(2, None),
            "--insecure --node-ip 127.0.0.3 --int-ip 127.0.0.3 --http-port 2113 \
             --int-tcp-port 1112 --cluster-size 2 --discover-via-dns false \
             --gossip-seed 127.0.0.1:2113,127.0.0.2:2113 --mem-db --read-only-replica true"
        );
    }

    #[test]
    fn the_command_line_is_checked() {
        let parse = |args: &[&str]| {
            Options::try_parse_from(
                std::iter::once("stele dev-cluster").chain(args.iter().copied()),
            )
        };
        assert!(parse(&["--nodes", "0"]).is_err());
        assert!(parse(&["--nodes", "x"]).is_err());
        assert!(parse(&["--mem-db", "--dir", "d"]).is_err());
        assert!(parse(&["--unknown"]).is_err());
        let defaults = parse(&[]).unwrap();
        assert_eq!(
            (
                defaults.nodes,
                defaults.read_only_replicas,
                defaults.base_http_port,
                defaults.base_int_port
            ),
            (3, 0, 2113, 1112)
        );
    }

    #[test]
    fn the_role_is_the_state_of_the_member_at_the_node_address() {
        let members = plan(&options(&["--nodes", "2"]), true).unwrap();
        let gossip = serde_json::json!({"members": [
            {"httpEndPointIp": "127.0.0.1", "httpEndPointPort": 2113, "state": "Leader"},
            {"httpEndPointIp": "127.0.0.2", "httpEndPointPort": 2113, "state": "Follower"},
        ]});
        assert_eq!(own_state(&gossip, &members[1]).as_deref(), Some("Follower"));
        assert_eq!(own_state(&gossip, &members[0]).as_deref(), Some("Leader"));
        assert_eq!(own_state(&serde_json::json!({}), &members[0]), None);
    }

    #[test]
    fn the_leader_counts_once_every_node_names_the_same_one() {
        let members = plan(&options(&["--nodes", "2"]), true).unwrap();
        let view = |states: [&str; 2]| -> Result<serde_json::Value, String> {
            Ok(serde_json::json!({"members": [
                {"httpEndPointIp": "127.0.0.1", "httpEndPointPort": 2113, "state": states[0], "isAlive": true},
                {"httpEndPointIp": "127.0.0.2", "httpEndPointPort": 2113, "state": states[1], "isAlive": true},
            ]}))
        };
        let agreed = leader_agreement(
            &members,
            &[view(["Leader", "Follower"]), view(["Leader", "Follower"])],
        );
        assert_eq!(agreed.as_deref(), Ok("node-1 (127.0.0.1:2113)"));
        let stale = leader_agreement(
            &members,
            &[
                view(["Leader", "Follower"]),
                view(["DiscoverLeader", "Follower"]),
            ],
        );
        assert_eq!(stale, Err("node-2 knows no leader yet".to_owned()));
        let split = leader_agreement(
            &members,
            &[view(["Leader", "Follower"]), view(["Follower", "Leader"])],
        );
        assert!(split.unwrap_err().contains("names 127.0.0.2:2113"));
        let unreachable = leader_agreement(
            &members,
            &[view(["Leader", "Follower"]), Err("no /gossip".into())],
        );
        assert_eq!(unreachable, Err("node-2: no /gossip".to_owned()));
    }
}
