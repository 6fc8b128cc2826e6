//! `stele-sim`: runs seeds of the deterministic cluster simulation and reports the figures
//! docs/reliability.md publishes. `scripts/sim.sh` runs it with the flags it needs.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line program reports to the terminal"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "times the seeds on the wall clock, outside the simulated thread"
)]

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Parser;
use stele_sim::cluster::Shape;
use stele_sim::run::{run, RunConfig, RunReport};

#[derive(Parser, Debug)]
#[command(about = "Deterministic simulation of Stele clusters under faults")]
struct Args {
    /// Run exactly this seed (reproduces a failure).
    #[arg(long)]
    seed: Option<u64>,
    /// Run this many seeds, from --first.
    #[arg(long, default_value_t = 10)]
    seeds: u64,
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// Voters; `--voters 3,5` runs every seed with each.
    #[arg(long, value_delimiter = ',', default_values_t = [3])]
    voters: Vec<usize>,
    /// Read-only replicas.
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Simulated seconds of the safety phase.
    #[arg(long, default_value_t = 30)]
    safety_secs: u64,
    /// Simulated seconds within which a healed cluster must elect, write and converge.
    #[arg(long, default_value_t = 60)]
    liveness_secs: u64,
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Run without faults.
    #[arg(long)]
    no_faults: bool,
    /// Switch on an injected bug (build with `--features injected-bugs`): ack-before-fsync,
    /// flush-callback-early, commit-without-quorum, truncate-committed, leader-restore,
    /// retry-reads-committed-index.
    #[arg(long)]
    bug: Option<String>,
    /// Stop at the first failing seed.
    #[arg(long)]
    fail_fast: bool,
    /// Print every event of the run (use with --seed).
    #[arg(long)]
    verbose: bool,
    /// Parallel runs (each on its own thread and runtime).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
}

fn config(args: &Args, seed: u64, voters: usize) -> RunConfig {
    let mut c = RunConfig::new(
        seed,
        Shape {
            voters,
            replicas: args.replicas,
        },
    );
    c.safety = Duration::from_secs(args.safety_secs);
    c.liveness_bound = Duration::from_secs(args.liveness_secs);
    c.clients = args.clients;
    c.faults = !args.no_faults;
    c.bug = args.bug.clone();
    c
}

fn reproduce(c: &RunConfig) -> String {
    let bug = c
        .bug
        .as_ref()
        .map(|b| format!(" --features injected-bugs --bug {b}"))
        .unwrap_or_default();
    format!(
        "scripts/sim.sh --seed {} --voters {} --replicas {} --safety-secs {} --clients {}{bug}",
        c.seed,
        c.shape.voters,
        c.shape.replicas,
        c.safety.as_secs(),
        c.clients
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let args = Args::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    #[cfg(not(tokio_unstable))]
    eprintln!("warning: built without --cfg tokio_unstable: runs are not exactly reproducible");
    #[cfg(not(feature = "injected-bugs"))]
    if args.bug.is_some() {
        eprintln!("--bug needs a build with --features injected-bugs");
        std::process::exit(2);
    }
    let seeds: Vec<u64> = match args.seed {
        Some(seed) => vec![seed],
        None => (args.first..args.first + args.seeds).collect(),
    };
    let configs: Vec<RunConfig> = seeds
        .iter()
        .flat_map(|&s| args.voters.iter().map(move |&v| (s, v)))
        .map(|(s, v)| config(&args, s, v))
        .collect();
    let started = std::time::Instant::now();
    let reports = run_all(&configs, &args);
    summarize(&configs, &reports, started.elapsed());
    if reports.iter().any(|r| !r.passed()) {
        std::process::exit(1);
    }
}

fn run_all(configs: &[RunConfig], args: &Args) -> Vec<RunReport> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= configs.len() || (args.fail_fast && failed.load(std::sync::atomic::Ordering::SeqCst)) {
                    break;
                }
                let c = &configs[i];
                let t = std::time::Instant::now();
                let report = run(c, args.verbose);
                let acked = report.history.map_or(0, |h| h.acked);
                println!(
                    "seed {:>6} {:<20} {} acked {:>5} faults {:>3} leader {:>6} ms write {:>6} ms converged {:>6} ms failover {:>5} ms trace {:016x} ({:.1} s real, {:.0} s simulated)",
                    c.seed,
                    report.shape,
                    if report.passed() { "ok  " } else { "FAIL" },
                    acked,
                    report.faults.values().sum::<u64>(),
                    report.time_to_leader.map_or(-1, |d| d.as_millis() as i64),
                    report.time_to_write.map_or(-1, |d| d.as_millis() as i64),
                    report.time_to_converge.map_or(-1, |d| d.as_millis() as i64),
                    report.failover_write.map_or(-1, |d| d.as_millis() as i64),
                    report.trace_hash,
                    t.elapsed().as_secs_f64(),
                    report.simulated.as_secs_f64(),
                );
                if !report.passed() {
                    failed.store(true, std::sync::atomic::Ordering::SeqCst);
                    for f in report.failures.iter().take(20) {
                        println!("    {f}");
                    }
                    println!("    reproduce: {}", reproduce(c));
                }
                results.lock().expect("results lock").push((i, report));
            });
        }
    });
    let mut results = results.into_inner().expect("results lock");
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

fn summarize(configs: &[RunConfig], reports: &[RunReport], elapsed: Duration) {
    let mut shapes: BTreeMap<String, usize> = BTreeMap::new();
    let mut faults: BTreeMap<&str, u64> = BTreeMap::new();
    let (mut acked, mut unknown, mut failed, mut lost) = (0, 0, 0, 0);
    let mut leader = Vec::new();
    let mut write = Vec::new();
    let mut leaderless = Vec::new();
    let mut failover_leader = Vec::new();
    let mut failover_write = Vec::new();
    for r in reports {
        *shapes.entry(r.shape.clone()).or_default() += 1;
        for (k, v) in &r.faults {
            *faults.entry(k).or_default() += v;
        }
        if let Some(h) = r.history {
            acked += h.acked;
            unknown += h.unknown;
            failed += h.failed;
        }
        lost += r.lost;
        leader.extend(r.time_to_leader);
        leaderless.push(r.longest_leaderless);
        failover_leader.extend(r.failover_leader);
        failover_write.extend(r.failover_write);
        write.extend(r.time_to_write);
    }
    let passed = reports.iter().filter(|r| r.passed()).count();
    println!();
    println!(
        "runs: {} ({passed} passed) in {:.0} s",
        configs.len(),
        elapsed.as_secs_f64()
    );
    for (shape, n) in &shapes {
        println!("  {shape}: {n} seeds");
    }
    let is_workload = |k: &&str| stele_sim::run::WORKLOAD_COUNTS.contains(k);
    let injected: u64 = faults
        .iter()
        .filter(|(k, _)| !is_workload(k))
        .map(|(_, v)| v)
        .sum();
    println!("faults injected: {injected}");
    for (k, v) in faults.iter().filter(|(k, _)| !is_workload(k)) {
        println!("  {k}: {v}");
    }
    println!("client workload besides appends:");
    for (k, v) in faults.iter().filter(|(k, _)| is_workload(k)) {
        println!("  {k}: {v}");
    }
    println!("appends: {acked} acknowledged and verified on every node, {failed} refused, {unknown} outcome unknown");
    println!("acknowledged appends lost: {lost}");
    let subscribed: usize = reports.iter().map(|r| r.subscribed_events).sum();
    let subscriptions: u64 = reports.iter().map(|r| r.subscriptions).sum();
    println!(
        "catch-up subscriptions: {subscribed} events delivered over {subscriptions} subscriptions (one follower per host, resumed after each crash), each exactly $all"
    );
    let sum = |f: fn(&RunReport) -> u64| reports.iter().map(f).sum::<u64>();
    println!(
        "persistent subscription ($all, from the start): {} messages delivered, {} acked, {} nacked (retry, park, skip), {} connections; every event of the clients' streams acked, parked or skipped at least once",
        sum(|r| r.ps_delivered),
        sum(|r| r.ps_acks),
        sum(|r| r.ps_nacks),
        sum(|r| r.ps_connections)
    );
    distribution(
        "under faults, longest stretch without a serving leader per run",
        leaderless,
    );
    distribution("after healing, time to a leader", leader);
    distribution("after healing, time to the first acknowledged write", write);
    distribution(
        "leader power loss on a healed cluster, time to a new leader",
        failover_leader,
    );
    distribution(
        "leader power loss on a healed cluster, time to an acknowledged write",
        failover_write,
    );
}

/// Prints p50, p99 and the maximum of a set of durations.
fn distribution(what: &str, mut values: Vec<Duration>) {
    values.sort();
    let ms = |p: f64| percentile(&values, p).as_millis();
    let max = values.last().copied().unwrap_or_default().as_millis();
    println!(
        "{what}: p50 {} ms, p99 {} ms, max {max} ms",
        ms(0.5),
        ms(0.99)
    );
}
