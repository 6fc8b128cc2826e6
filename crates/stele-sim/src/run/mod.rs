//! One seeded run: a safety phase with faults and client writes, then a liveness phase after
//! healing, then the history check against every node's `$all`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use stele_cluster::{
    AllReadRequest, AllStart, AppendOutcome, Direction, Node, VNodeState, WriteError,
};
use stele_core::{ContentType, DeleteKind, ExpectedRevision, ProposedEvent, StreamName};
use stele_testkit::history::{verify_delivery, Expected, History, Outcome, ReadEvent, Report};
use tokio::time::Instant;

use crate::cluster::{CrashKind, Shape, SimCluster};
use crate::net::{Conditions, HostId};
use crate::persistent_consumer::{self, PsRecord};
use crate::subscriber::{follow, Delivered};

mod faults;
mod invariants;
mod workload;

pub use faults::FAULT_KINDS;
use faults::*;
use invariants::*;
pub use workload::WORKLOAD_COUNTS;
use workload::*;

/// What one run does.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub seed: u64,
    pub shape: Shape,
    /// Simulated length of the safety phase.
    pub safety: Duration,
    /// Bound on the liveness phase: a leader, a write, convergence.
    pub liveness_bound: Duration,
    pub clients: usize,
    pub faults: bool,
    /// An injected bug to switch on (`injected-bugs` builds only).
    pub bug: Option<String>,
}

impl RunConfig {
    pub fn new(seed: u64, shape: Shape) -> RunConfig {
        RunConfig {
            seed,
            shape,
            safety: Duration::from_secs(30),
            liveness_bound: Duration::from_secs(60),
            clients: 4,
            faults: true,
            bug: None,
        }
    }
}

/// What a run found.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub seed: u64,
    pub shape: String,
    pub faults: BTreeMap<&'static str, u64>,
    pub history: Option<Report>,
    /// Acknowledged appends whose events are not on every node (must be 0).
    pub lost: usize,
    pub time_to_leader: Option<Duration>,
    pub time_to_write: Option<Duration>,
    pub time_to_converge: Option<Duration>,
    /// After the leader of the converged cluster loses power: time to a new leader and to
    /// an acknowledged write.
    pub failover_leader: Option<Duration>,
    pub failover_write: Option<Duration>,
    /// The longest stretch of the safety phase in which no node led (faults included: it
    /// says how long elections took under them, and that they never looped).
    pub longest_leaderless: Duration,
    /// Events delivered to the subscribers (one per host), and subscriptions opened.
    pub subscribed_events: usize,
    pub subscriptions: u64,
    /// The persistent-subscription consumer: messages delivered, acked, nacked, and its
    /// connections.
    pub ps_delivered: u64,
    pub ps_acks: u64,
    pub ps_nacks: u64,
    pub ps_connections: u64,
    /// Safety or liveness violations; empty when the run passed.
    pub failures: Vec<String>,
    /// FNV-1a over the run's events: the same seed gives the same trace.
    pub trace_hash: u64,
    pub simulated: Duration,
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The run's event log (hashed, not kept).
struct Trace {
    hash: u64,
    start: Instant,
    verbose: bool,
}

impl Trace {
    fn note(&mut self, event: &str) {
        let ms = self.start.elapsed().as_millis();
        let line = format!("{ms} {event}");
        for b in line.bytes().chain([b'\n']) {
            self.hash ^= u64::from(b);
            self.hash = self.hash.wrapping_mul(0x100_0000_01b3);
        }
        if self.verbose {
            eprintln!("[sim {:>7.3}s] {event}", ms as f64 / 1000.0);
        }
    }
}

struct Shared {
    cluster: Arc<SimCluster>,
    rng: Mutex<SmallRng>,
    trace: Mutex<Trace>,
    history: History,
    failures: Mutex<Vec<String>>,
    faults: Mutex<BTreeMap<&'static str, u64>>,
    stop_clients: AtomicBool,
    stop_faults: AtomicBool,
    leaderless: Mutex<Duration>,
}

impl Shared {
    fn note(&self, event: impl AsRef<str>) {
        self.trace.lock().expect("trace lock").note(event.as_ref());
    }
    fn fail(&self, failure: String) {
        self.note(format!("FAILURE {failure}"));
        self.failures.lock().expect("failures lock").push(failure);
    }
    fn count(&self, kind: &'static str) {
        *self
            .faults
            .lock()
            .expect("faults lock")
            .entry(kind)
            .or_default() += 1;
    }
    fn rand<T>(&self, f: impl FnOnce(&mut SmallRng) -> T) -> T {
        f(&mut self.rng.lock().expect("rng lock"))
    }
}

/// Runs one seed on its own single-threaded runtime with a paused clock.
pub fn run(config: &RunConfig, verbose: bool) -> RunReport {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_time().start_paused(true);
    #[cfg(tokio_unstable)]
    builder.rng_seed(tokio::runtime::RngSeed::from_bytes(
        &config.seed.to_le_bytes(),
    ));
    let runtime = builder.build().expect("building the simulation runtime");
    let report = runtime.block_on(run_async(config.clone(), verbose));
    // Tasks of crashed incarnations may still be parked; they die with the runtime.
    runtime.shutdown_background();
    stele_cluster::determinism::stop_simulating_this_thread();
    report
}

async fn run_async(config: RunConfig, verbose: bool) -> RunReport {
    // A fixed simulated wall clock (2027-01-15) so that timestamps are part of the trace.
    stele_cluster::determinism::simulate_this_thread(
        config.seed,
        Duration::from_secs(1_800_000_000),
    );
    #[cfg(feature = "injected-bugs")]
    stele_cluster::bugs::inject(
        config
            .bug
            .as_deref()
            .and_then(stele_cluster::bugs::Bug::from_name),
    );
    let start = Instant::now();
    let cluster = SimCluster::new(config.shape.clone(), config.seed, Duration::from_millis(2));
    let shared = Arc::new(Shared {
        cluster: cluster.clone(),
        rng: Mutex::new(SmallRng::seed_from_u64(config.seed ^ 0x5eed_5eed)),
        trace: Mutex::new(Trace {
            hash: 0xcbf2_9ce4_8422_2325,
            start,
            verbose,
        }),
        history: History::new(),
        failures: Mutex::new(Vec::new()),
        faults: Mutex::new(BTreeMap::new()),
        stop_clients: AtomicBool::new(false),
        stop_faults: AtomicBool::new(false),
        leaderless: Mutex::new(Duration::ZERO),
    });
    let mut report = RunReport {
        seed: config.seed,
        shape: config.shape.name(),
        ..RunReport::default()
    };
    for i in 0..cluster.len() {
        if let Err(e) = cluster.start(i).await {
            shared.fail(e);
        }
    }
    shared.note("started");
    let stop_subscribers = Arc::new(AtomicBool::new(false));
    let subscribers: Vec<Arc<Mutex<Delivered>>> = (0..cluster.len())
        .map(|h| {
            let delivered = Arc::new(Mutex::new(Delivered::default()));
            tokio::spawn(follow(
                cluster.clone(),
                h,
                delivered.clone(),
                stop_subscribers.clone(),
            ));
            delivered
        })
        .collect();
    let ps_record = Arc::new(Mutex::new(PsRecord::default()));
    let ps_consumer = tokio::spawn(persistent_consumer::consume(
        cluster.clone(),
        shared.rand(|r| r.random::<u64>()),
        ps_record.clone(),
        stop_subscribers.clone(),
    ));

    // Safety phase.
    let monitor = tokio::spawn(monitor(shared.clone()));
    let leaderless = tokio::spawn(leaderless_watch(shared.clone()));
    let quorum = tokio::spawn(quorum_watch(shared.clone()));
    let clients: Vec<_> = (0..config.clients)
        .map(|c| tokio::spawn(client(shared.clone(), c)))
        .collect();
    let faults = config
        .faults
        .then(|| tokio::spawn(fault_schedule(shared.clone())));
    tokio::time::sleep(config.safety).await;
    shared.stop_faults.store(true, Ordering::SeqCst);
    if let Some(faults) = faults {
        let _ = faults.await;
    }
    shared.stop_clients.store(true, Ordering::SeqCst);
    for c in clients {
        let _ = c.await;
    }
    shared.note("safety phase over; healing");
    leaderless.abort();
    report.longest_leaderless = *shared.leaderless.lock().expect("leaderless lock");

    // Liveness phase: heal everything, restart what is down.
    let healed = Instant::now();
    cluster.network.heal();
    cluster.network.set_conditions(Conditions::default());
    for i in 0..cluster.len() {
        cluster.host(i).disk.disarm();
        // A node whose log failed has stopped taking writes: its supervisor restarts it.
        if cluster.node(i).is_some_and(|n| n.log_failed()) {
            shared.note(format!("host {i}: log failed; restarting"));
            cluster.crash(i, CrashKind::PowerLoss);
        }
        // A node running on a damaged log is stopped by the operator (then wiped).
        if cluster.rotting(i) {
            shared.note(format!("operator stops host {i} (damaged log)"));
            cluster.crash(i, CrashKind::Process);
        }
        if cluster.node(i).is_none() {
            if let Err(e) = restart(&shared, i).await {
                shared.fail(format!("restart after healing: {e}"));
            }
        }
    }
    let deadline = healed + config.liveness_bound;
    report.time_to_leader = wait_for_leader(&shared, deadline).await.map(|t| t - healed);
    if report.time_to_leader.is_none() {
        shared.fail(format!(
            "no leader within {:?} of healing",
            config.liveness_bound
        ));
    }
    report.time_to_write = first_write(&shared, deadline).await.map(|t| t - healed);
    if report.time_to_write.is_none() {
        shared.fail(format!(
            "no acknowledged write within {:?} of healing",
            config.liveness_bound
        ));
    }
    let reads = converge(&shared, deadline).await;
    match &reads {
        Ok(_) => report.time_to_converge = Some(Instant::now() - healed),
        Err(why) => {
            shared.fail(why.clone());
            if let Some(divergence) = log_divergence(&shared) {
                shared.fail(divergence);
            }
        }
    }
    monitor.abort();
    quorum.abort();

    // Every subscriber must reach the end and have been delivered exactly `$all` up to it.
    // (The persistent subscription's group goes on writing its checkpoints after the
    // clients stopped: the subscribers are delivered those too, past the converged end.)
    if let Ok(reads) = &reads {
        let all = &reads[0].1;
        let end = all.last().map(|e| e.position);
        while Instant::now() < deadline
            && subscribers
                .iter()
                .any(|d| d.lock().expect("delivered lock").events.last().map(|e| e.0) < end)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // And the persistent subscription's consumer must have taken care of every event.
        let wanted = persistent_consumer::expected_ids(all);
        while Instant::now() < deadline && {
            let ps = ps_record.lock().expect("ps record lock");
            wanted.iter().any(|id| !ps.handled.contains(id))
        } {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop_subscribers.store(true, Ordering::SeqCst);
        for (host, delivered) in subscribers.iter().enumerate() {
            let d = delivered.lock().expect("delivered lock");
            report.subscribed_events += d.events.len();
            report.subscriptions += d.subscriptions;
            for e in d.errors.iter().take(5) {
                shared.fail(format!("subscription: {e}"));
            }
            let name = format!("subscription on host {host}");
            let upto_end: Vec<(u64, ::uuid::Uuid)> = d
                .events
                .iter()
                .copied()
                .filter(|&(position, _)| Some(position) <= end)
                .collect();
            if let Err(errors) = verify_delivery(&name, &upto_end, all, false) {
                for e in errors {
                    shared.fail(e);
                }
            }
        }
    }
    stop_subscribers.store(true, Ordering::SeqCst);
    let _ = ps_consumer.await;
    {
        let ps = ps_record.lock().expect("ps record lock");
        report.ps_delivered = ps.delivered.values().map(|&n| u64::from(n)).sum();
        report.ps_acks = ps.acks;
        report.ps_nacks = ps.nacks;
        report.ps_connections = ps.connections;
        if let Ok(reads) = &reads {
            if let Err(errors) = persistent_consumer::verify(&ps, &reads[0].1, true) {
                for e in errors {
                    shared.fail(e);
                }
            }
        }
    }

    // Failover on a healthy cluster: the leader's power fails; a new leader must be elected
    // and take a write within the bound; the old leader comes back and catches up.
    let reads = match reads {
        Ok(reads) => {
            // Only once the membership is exactly the voters running now (a wiped one has
            // replaced its old self, no change is half done): one failure at a time.
            let deadline = Instant::now() + config.liveness_bound;
            let mut voters: Vec<u64> = (0..cluster.shape.voters)
                .map(|i| cluster.host(i).identity.node_id)
                .collect();
            voters.sort();
            while Instant::now() < deadline
                && !(0..cluster.shape.voters).all(|i| {
                    cluster
                        .node(i)
                        .is_some_and(|n| n.voter_configs() == [voters.clone()])
                })
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if Instant::now() >= deadline {
                shared.fail(format!(
                    "the membership did not settle to the running voters {voters:x?} within {:?}",
                    config.liveness_bound
                ));
            }
            let leader = cluster.live().into_iter().find(|(i, node)| {
                *i < cluster.shape.voters && node.status().state == VNodeState::Leader
            });
            match leader {
                Some((old, _)) => {
                    shared.note(format!("failover: power loss on the leader, host {old}"));
                    cluster.crash(old, CrashKind::PowerLoss);
                    let crashed = Instant::now();
                    let deadline = crashed + config.liveness_bound;
                    report.failover_leader = wait_for_leader(&shared, deadline)
                        .await
                        .map(|t| t - crashed);
                    report.failover_write =
                        first_write(&shared, deadline).await.map(|t| t - crashed);
                    if report.failover_write.is_none() {
                        shared.fail(format!(
                            "no acknowledged write within {:?} of the leader's power loss",
                            config.liveness_bound
                        ));
                    }
                    if let Err(e) = restart(&shared, old).await {
                        shared.fail(format!("restart after the failover: {e}"));
                    }
                    let deadline = Instant::now() + config.liveness_bound;
                    let again = converge(&shared, deadline).await;
                    if let Err(why) = &again {
                        shared.fail(format!("after the failover: {why}"));
                    }
                    again.unwrap_or(reads)
                }
                None => reads,
            }
        }
        Err(_) => read_everywhere(&shared).unwrap_or_default(),
    };

    // The history against every node.
    if !reads.is_empty() {
        match shared.history.verify(&reads) {
            Ok(r) => report.history = Some(r),
            Err(errors) => {
                // Against converged nodes, a missing acknowledged append is a loss; against
                // nodes that did not converge it is the liveness failure already reported.
                if report.time_to_converge.is_some() {
                    report.lost = errors.iter().filter(|e| e.starts_with("[lost]")).count();
                }
                for e in errors {
                    shared.fail(format!("history: {e}"));
                }
            }
        }
    }
    if let Some((_, events)) = reads.first() {
        let last = events.last().map(|e| (e.position, e.event_id));
        shared.note(format!(
            "final $all: {} events, last {last:?}",
            events.len()
        ));
    }
    report.faults = shared.faults.lock().expect("faults lock").clone();
    report.failures = shared.failures.lock().expect("failures lock").clone();
    report.trace_hash = shared.trace.lock().expect("trace lock").hash;
    report.simulated = start.elapsed();
    report
}
