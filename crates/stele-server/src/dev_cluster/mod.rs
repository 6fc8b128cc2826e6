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
//!
//! The parts: `layout.rs` (addresses, ports, command lines, data directories),
//! `console.rs` (the output), `readiness.rs` (waiting for health and a leader),
//! `process.rs` (exits and stopping).

mod console;
mod layout;
mod process;
mod readiness;
mod secure;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use futures::future::join_all;
use tokio::process::Command;
use tokio::signal::unix::{signal, Signal, SignalKind};

use self::console::{forward, Console, Target};
use self::layout::{
    check_ports_free, connection_string, distinct_ips_available, node_args, plan, DataRoot,
};
use self::process::{die_with_parent, first_exit, stop_all, Running};
use self::readiness::{await_cluster, report_roles};
use crate::subcommand::EXIT_CONFIG;

/// How long one HTTP request to a node may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the nodes get to exit after SIGTERM before they are killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long the last output of the nodes may take to be shown after they exited.
const OUTPUT_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// The most nodes of either kind: one loopback address each must remain below 127.0.0.255.
const NODES_MAX: u8 = 50;

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
    /// Run secure nodes: a CA and node certificates are made at start (`<data>/certs`),
    /// every port serves TLS, users and ACLs apply; the connection string names the CA
    /// file and the default admin user.
    #[arg(long)]
    secure: bool,
}

/// `stele dev-cluster [options]`: parses `args` (those after `dev-cluster`) and runs.
pub fn main(args: &[String]) -> ExitCode {
    let options: Options = match crate::subcommand::parse("stele dev-cluster", args) {
        Ok(options) => options,
        Err(code) => return code,
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
    // Certificates live beside the data, or for the run only.
    let certs_temp = match (options.secure, data.path()) {
        (true, None) => Some(tempfile::tempdir().context("making a directory for certificates")?),
        _ => None,
    };
    let certs = match (options.secure, data.path(), &certs_temp) {
        (false, _, _) => None,
        (true, Some(path), _) => Some(secure::ClusterCerts::create(&path.join("certs"), &members)?),
        (true, None, Some(temp)) => Some(secure::ClusterCerts::create(temp.path(), &members)?),
        (true, None, None) => unreachable!("made above"),
    };
    let http = match &certs {
        Some(certs) => certs.http_client(HTTP_TIMEOUT)?,
        None => reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .build()
            .context("building the HTTP client")?,
    };

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
        let security = certs
            .as_ref()
            .map_or_else(Vec::new, |c| c.node_args(member));
        let args = node_args(member, &members, options.nodes, data.path(), security);
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
                    connection_string(&members, certs.as_ref().map(|c| c.ca_file()).as_deref())
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
