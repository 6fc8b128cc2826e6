//! `stele bench`: a load generator that appends to a running node over the real client
//! protocol (PROTOCOL.md §5.1 `Streams.Append`, or §5.2 `BatchAppend`) and reports
//! throughput, per-append latency, errors and fsyncs per append.
//!
//! What it owns: the command line, the timeline (warm-up, measured window, drain), and the
//! pieces in `bench/`: the writers ([`load`]), the report ([`report`]), the node's counters
//! ([`node_stats`]) and a node of its own for `--spawn` ([`spawned_node`]). What it does not
//! own: anything in the node. It is a benchmark, not a test: it asserts nothing and never
//! runs in CI; it exits with 1 when an append failed so that a script notices.
//!
//! Timeline: every writer starts at once and appends back to back until the end of the
//! window. Appends that complete during the first `--warmup` seconds are not measured; the
//! window is the `--duration` seconds after that. An append still in flight at the end is
//! awaited (for at most `--timeout`) but not measured. Errors are counted over the whole run
//! and the first few are printed as they happen.
//!
//! Connections: at most [`CHANNELS_MAX`], with TCP_NODELAY unless `--client-nodelay false`,
//! which leaves Nagle's algorithm on as the official clients do by default (issue 18).

mod load;
mod node_stats;
mod report;
mod spawned_node;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};

use self::load::Plan;
use self::node_stats::StatsClient;
use self::report::{OtherNode, Report};
use self::spawned_node::SpawnedNode;
use crate::subcommand::EXIT_CONFIG;

/// Exit code when the run happened but some appends failed or writers hung.
const EXIT_ERRORS: u8 = 1;
/// At most this many gRPC connections are opened; writers share them round-robin, as
/// application instances share a client.
const CHANNELS_MAX: usize = 8;

/// Appends to a node as fast as it accepts them and reports what it saw.
#[derive(Debug, Parser)]
#[command(
    name = "stele bench",
    about = "Appends to a node over gRPC and reports throughput, latency, errors and fsyncs per append",
    after_help = "Plain text goes to standard output; with --json one JSON line follows it.\n\
                  Example: stele bench --spawn --writers 32 --batch 1"
)]
pub struct Options {
    /// The node's client address (gRPC and HTTP share it): `http://` for an insecure node
    /// (h2c), `https://` for a secure one (give --tls-ca-file and the credentials).
    #[arg(
        long,
        default_value = "http://127.0.0.1:2113",
        conflicts_with = "spawn"
    )]
    url: String,
    /// Concurrent writers, each its own task with one append in flight.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    writers: u32,
    /// Events per append.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    batch: u32,
    /// Size of each event's data in bytes.
    #[arg(long = "event-size", value_name = "BYTES", default_value_t = 256)]
    event_size_bytes: usize,
    /// Distinct streams; writer i's k-th append goes to stream (i + k) % N. Default: one per
    /// writer.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    streams: Option<u32>,
    /// Length of the measured window, in seconds.
    #[arg(long = "duration", value_name = "SECS", default_value_t = 10.0)]
    duration_secs: f64,
    /// Unmeasured seconds before the window.
    #[arg(long = "warmup", value_name = "SECS", default_value_t = 1.0)]
    warmup_secs: f64,
    /// How long one append may take before the client gives up and counts an error.
    #[arg(long = "timeout", value_name = "SECS", default_value_t = 15.0)]
    timeout_secs: f64,
    /// Which RPC carries the appends.
    #[arg(long, value_enum, default_value_t = Api::Append)]
    api: Api,
    /// Also print the results as one JSON line (the last line of standard output).
    #[arg(long)]
    json: bool,
    /// Start a node of this binary on a free port with a temporary database, run against
    /// it, and stop it with SIGTERM.
    #[arg(long)]
    spawn: bool,
    /// Set TCP_NODELAY on the bench's connections. `false` leaves Nagle's algorithm on, as
    /// the official clients' defaults do (the Rust client writes an Append's headers and its
    /// messages in separate pieces, so the second waits for the node's ACK of the first).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    client_nodelay: bool,
    /// Another node whose `/stats` is read at the window's edges (repeatable): a cluster's
    /// followers, so that each node's CPU cost per acknowledged event is reported.
    #[arg(long = "node-stats", value_name = "URL")]
    node_stats: Vec<String>,
    /// Where --spawn puts its temporary database (default: the system's temporary
    /// directory). Put it on the disk you want to measure: fsync on tmpfs is free.
    #[arg(long, value_name = "DIR", requires = "spawn")]
    spawn_dir: Option<PathBuf>,
    /// The CA certificate (PEM) an `https://` node's certificate chains to.
    #[arg(long = "tls-ca-file", value_name = "FILE")]
    tls_ca_file: Option<PathBuf>,
    /// The user every call runs as (Basic credentials, as the official clients send them).
    #[arg(long, value_name = "LOGIN", requires = "password")]
    username: Option<String>,
    /// The user's password.
    #[arg(long, value_name = "PASSWORD", requires = "username")]
    password: Option<String>,
}

/// The RPC appends go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Api {
    /// `Streams.Append`: one client-streaming call per append (what the Rust client does).
    Append,
    /// `Streams.BatchAppend`: one long-lived bidirectional call per writer, one request per
    /// append (what the Node client does).
    BatchAppend,
}

/// `stele bench [options]`: parses `args` (those after `bench`) and runs.
pub fn main(args: &[String]) -> ExitCode {
    let options: Options = match crate::subcommand::parse("stele bench", args) {
        Ok(options) => options,
        Err(code) => return code,
    };
    if let Err(message) = options.check() {
        eprintln!("stele bench: {message}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("stele bench: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match runtime.block_on(run(options)) {
        Ok(clean) if clean => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(EXIT_ERRORS),
        Err(error) => {
            eprintln!("stele bench: {error:#}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

impl Options {
    fn check(&self) -> Result<(), String> {
        for (name, secs, min) in [
            ("--duration", self.duration_secs, 0.1),
            ("--warmup", self.warmup_secs, 0.0),
            ("--timeout", self.timeout_secs, 0.1),
        ] {
            if !(secs.is_finite() && secs >= min && secs <= 86_400.0) {
                return Err(format!("{name} must be between {min} and 86400 seconds"));
            }
        }
        if self.event_size_bytes > 64 << 20 {
            return Err("--event-size must be at most 64 MiB".into());
        }
        Ok(())
    }

    fn streams(&self) -> u32 {
        self.streams.unwrap_or(self.writers)
    }

    /// The `authorization` header every call carries, when credentials are given.
    fn authorization(&self) -> Option<String> {
        use base64::Engine;
        let (Some(login), Some(password)) = (&self.username, &self.password) else {
            return None;
        };
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"));
        Some(format!("Basic {encoded}"))
    }

    /// The CA certificate's PEM, when given.
    fn ca_pem(&self) -> anyhow::Result<Option<Vec<u8>>> {
        self.tls_ca_file
            .as_ref()
            .map(|path| {
                std::fs::read(path).with_context(|| format!("--tls-ca-file {}", path.display()))
            })
            .transpose()
    }
}

/// Runs the benchmark; `Ok(true)` when nothing failed.
async fn run(options: Options) -> anyhow::Result<bool> {
    let spawned = if options.spawn {
        Some(SpawnedNode::start(options.spawn_dir.as_deref()).await?)
    } else {
        None
    };
    let url = match &spawned {
        Some(node) => node.url(),
        None => options.url.trim_end_matches('/').to_string(),
    };
    let outcome = measure(&options, &url).await;
    let node_clean = match spawned {
        Some(node) => node.stop().await,
        None => true,
    };
    let report = outcome?;
    report.print_text();
    if options.json {
        println!("{}", report.to_json());
    }
    Ok(report.is_clean() && node_clean)
}

/// Connects, runs the writers, and gathers the report.
async fn measure(options: &Options, url: &str) -> anyhow::Result<Report> {
    let channel_count = (options.writers as usize).min(CHANNELS_MAX);
    let mut channels = Vec::with_capacity(channel_count);
    let ca_pem = options.ca_pem()?;
    for _ in 0..channel_count {
        let mut endpoint = tonic::transport::Endpoint::from_shared(url.to_string())
            .with_context(|| format!("--url {url}"))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(options.client_nodelay);
        if url.starts_with("https://") {
            let mut tls = tonic::transport::ClientTlsConfig::new();
            if let Some(pem) = &ca_pem {
                tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
            }
            endpoint = endpoint.tls_config(tls).context("the TLS configuration")?;
        }
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("connecting to {url}"))?;
        channels.push(channel);
    }
    let stats = StatsClient::new(url, ca_pem.as_deref(), options.authorization())?;
    let others = options
        .node_stats
        .iter()
        .map(|other| {
            let other = other.trim_end_matches('/').to_string();
            StatsClient::new(&other, ca_pem.as_deref(), options.authorization())
                .map(|client| (other, client))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let streams = options.streams();
    println!(
        "stele bench: {url}, {} writers over {channel_count} connections, {} events of {} bytes \
         per append via {}, {streams} streams, {}s warm-up + {}s measured, {}",
        options.writers,
        options.batch,
        options.event_size_bytes,
        match options.api {
            Api::Append => "Append",
            Api::BatchAppend => "BatchAppend",
        },
        options.warmup_secs,
        options.duration_secs,
        if options.client_nodelay {
            "TCP_NODELAY"
        } else {
            "Nagle on (the official clients' default)"
        },
    );
    let plan = Plan::new(options);
    let running = load::start(plan.clone(), channels);
    // The node's counters are read at the edges of the measured window, so that the fsyncs
    // of the warm-up and of the drain are left out as the appends are.
    tokio::time::sleep_until(plan.window_start).await;
    let before = stats.fetch().await;
    let mut others_before = Vec::with_capacity(others.len());
    for (_, client) in &others {
        others_before.push(client.fetch().await);
    }
    tokio::time::sleep_until(plan.window_end).await;
    let after = stats.fetch().await;
    let mut other_nodes = Vec::with_capacity(others.len());
    for ((url, client), before) in others.iter().zip(others_before) {
        other_nodes.push(OtherNode {
            url: url.clone(),
            before,
            after: client.fetch().await,
        });
    }
    let outcome = running.finish().await;
    Ok(Report::new(
        options,
        channel_count,
        &plan,
        outcome,
        (before, after),
        other_nodes,
    ))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Options;

    fn parse(args: &[&str]) -> Options {
        Options::try_parse_from(std::iter::once("stele bench").chain(args.iter().copied()))
            .expect("valid options")
    }

    #[test]
    fn client_nodelay_is_on_by_default_and_can_be_turned_off() {
        assert!(parse(&[]).client_nodelay);
        assert!(!parse(&["--client-nodelay", "false"]).client_nodelay);
        assert!(parse(&["--client-nodelay", "true"]).client_nodelay);
        assert!(Options::try_parse_from(["stele bench", "--client-nodelay", "maybe"]).is_err());
    }
}
