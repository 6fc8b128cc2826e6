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

/// The faults the schedule picks from, each equally likely at every step.
pub const FAULT_KINDS: [&str; 13] = [
    "process crash",
    "power loss",
    "torn write",
    "reordered write",
    "fsync error",
    "bit flip",
    "isolate node",
    "one-way cut",
    "split",
    "slow network",
    "lossy network",
    "resign leader",
    "set priority",
];

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

/// State machine safety, checked every second while the run goes on: once any node has
/// applied the entry at an index, every node that applies an entry at that index applies the
/// same one, and no node's applied entry is ever replaced (crashes included).
///
/// (Not "one leader per term": openraft's leader ids are (term, node id), so two candidates
/// may each lead in one term; what must hold is that committed entries never differ.)
async fn monitor(shared: Arc<Shared>) {
    let mut reference: Vec<(u64, u64, u64)> = Vec::new();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for (host, node) in shared.cluster.live() {
            // A damaged log reads wrong digests; its node is stopped and wiped soon.
            if node.log_failed() || shared.cluster.rotting(host) {
                continue;
            }
            let applied = node.entry_digests(true);
            let common = applied.len().min(reference.len());
            if let Some(at) = (0..common).find(|&i| applied[i] != reference[i]) {
                shared.fail(format!(
                    "host {host} applied entry {at} as (term, index, digest) {:?}, another node applied {:?}",
                    applied[at], reference[at]
                ));
                return;
            }
            if applied.len() > reference.len() {
                reference.extend_from_slice(&applied[reference.len()..]);
            }
        }
    }
}

/// Commitment needs a quorum, checked every 10 ms: every entry any node has applied is on
/// the disks (reported durable) of a majority of some voter set the cluster has had.
///
/// What each voter holds is tracked by node id: a running node's count of durable entries,
/// a down node's count when it went down, and a wiped node's old id keeps its last count
/// (an entry that reached a majority before an operator replaced a damaged disk did reach
/// it). Every voter set any node has known is accepted, not only the current one, so a
/// membership change in flight is never mistaken for a lost quorum; a leader that commits
/// alone still fails it, as one node is no majority of any set of three or five.
async fn quorum_watch(shared: Arc<Shared>) {
    let mut durable: BTreeMap<u64, u64> = BTreeMap::new();
    let mut voter_sets: Vec<Vec<u64>> = Vec::new();
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let cluster = &shared.cluster;
        let mut applied = Vec::new();
        for i in 0..cluster.len() {
            let host = cluster.host(i);
            let count = match &host.node {
                Some(node) => {
                    applied.push((i, node.applied_entries()));
                    for set in node.voter_configs() {
                        if !voter_sets.contains(&set) {
                            voter_sets.push(set);
                        }
                    }
                    node.acknowledged_entries()
                }
                None => host.acknowledged_at_crash,
            };
            durable.insert(host.identity.node_id, count);
        }
        for (host, entries) in applied {
            let quorate = voter_sets.iter().any(|set| {
                let holding = set
                    .iter()
                    .filter(|id| durable.get(id).is_some_and(|&n| n >= entries))
                    .count();
                holding > set.len() / 2
            });
            if entries > 0 && !quorate {
                let held: Vec<String> = durable
                    .iter()
                    .map(|(id, n)| format!("{id:x}: {n}"))
                    .collect();
                shared.fail(format!(
                    "host {host} applied {entries} entries, but no majority of any voter set \
                     {voter_sets:x?} has them on disk (durable entries by node: {})",
                    held.join(", ")
                ));
                return;
            }
        }
    }
}

/// Measures the longest time without a serving leader, in 10 ms steps.
async fn leaderless_watch(shared: Arc<Shared>) {
    let mut since: Option<Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let leads = shared.cluster.live().iter().any(|(_, node)| {
            let status = node.status();
            status.state == VNodeState::Leader && status.ready
        });
        match (leads, since) {
            (true, _) => since = None,
            (false, None) => since = Some(Instant::now()),
            (false, Some(start)) => {
                let mut longest = shared.leaderless.lock().expect("leaderless lock");
                *longest = (*longest).max(start.elapsed());
            }
        }
    }
}

fn stream_name(s: &str) -> StreamName {
    StreamName::new(s).expect("a valid stream name")
}

fn events(n: usize) -> Vec<ProposedEvent> {
    (0..n)
        .map(|_| ProposedEvent {
            id: stele_cluster::determinism::new_uuid(),
            event_type: "sim".into(),
            content_type: ContentType::Json,
            custom_metadata: bytes::Bytes::new(),
            data: bytes::Bytes::from_static(b"{\"simulated\":true}"),
        })
        .collect()
}

/// What a client learned from one append.
struct Sent {
    acked: bool,
    /// The stream's revision, when the answer told it (acknowledged or wrong expected
    /// version).
    revision: Option<u64>,
}

/// Attempts of one append at most: the first and two retries.
const APPEND_ATTEMPTS_MAX: usize = 3;

/// Sends one append through `node` and records it in the history. When the outcome is
/// unknown (a timeout, a lost connection, a leader change), the client usually retries as
/// real clients do: the same events (the same ids) with the same expected revision, through
/// any live node. The server must answer a retry of a written append with the original
/// result, and a node that replays both after a crash must decide as it first did (issue 11,
/// item 1). The history records the attempts as one append: sent at the first, answered at
/// the last.
async fn append(
    shared: &Shared,
    client: usize,
    node: &Node,
    stream: &str,
    expected: Expected,
    count: usize,
) -> Sent {
    let events = events(count);
    let ids = events.iter().map(|e| e.id).collect();
    let pending = shared.history.begin(stream, ids, expected);
    let wire = match expected {
        Expected::Any => ExpectedRevision::Any,
        Expected::NoStream => ExpectedRevision::NoStream,
        Expected::StreamExists => ExpectedRevision::StreamExists,
        Expected::Exact(r) => ExpectedRevision::Exact(r),
    };
    let mut node = node.clone();
    let mut attempt = 1;
    let (outcome, revision) = loop {
        let call = node.append(stream_name(stream), wire, events.clone(), false);
        let result = tokio::time::timeout(Duration::from_secs(10), call).await;
        let (outcome, revision) = match result {
            Err(_) => (Outcome::Unknown("client timeout".into()), None),
            Ok(Ok(AppendOutcome::Success {
                current_revision: Some(revision),
                position: Some(position),
            })) => (
                Outcome::Acked {
                    position: position.0,
                    next_expected_version: revision.0,
                },
                Some(revision.0),
            ),
            Ok(Ok(AppendOutcome::Success { .. })) => {
                (Outcome::Unknown("success without a position".into()), None)
            }
            Ok(Ok(AppendOutcome::WrongExpectedVersion { current, .. })) => (
                Outcome::Failed("wrong expected version".into()),
                current.map(|c| c.0),
            ),
            Ok(Err(e @ WriteError::StreamDeleted(_))) => (Outcome::Failed(e.to_string()), None),
            Ok(Err(e)) => (Outcome::Unknown(e.to_string()), None),
        };
        if !matches!(outcome, Outcome::Unknown(_)) || attempt == APPEND_ATTEMPTS_MAX {
            // A refusal of a retry says nothing of the earlier attempt, which may have been
            // written before the stream was deleted or moved on.
            let outcome = match outcome {
                Outcome::Failed(why) if attempt > 1 => {
                    Outcome::Unknown(format!("retry refused ({why}) after an unknown outcome"))
                }
                other => other,
            };
            break (outcome, revision);
        }
        let (retry, pause) = shared.rand(|r| (r.random_range(0..10) < 7, r.random_range(0..500)));
        let live = shared.cluster.live();
        if !retry || live.is_empty() {
            break (outcome, revision);
        }
        shared.note(format!(
            "client {client} {stream} {expected:?} -> {outcome:?}; retrying with the same ids"
        ));
        shared.count("append retried with the same ids");
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let pick = shared.rand(|r| r.random_range(0..live.len()));
        node = live[pick].1.clone();
        attempt += 1;
    };
    shared.note(format!(
        "client {client} {stream} {expected:?} -> {outcome:?}"
    ));
    let acked = outcome.is_acked();
    shared.history.finish(pending, outcome);
    Sent { acked, revision }
}

/// What the clients did besides appending, counted with the faults but reported apart.
pub const WORKLOAD_COUNTS: [&str; 4] = [
    "append retried with the same ids",
    "metadata written",
    "stream soft-deleted",
    "stream tombstoned",
];

/// Streams the clients append to; soft deletes and metadata go to all of them.
const STREAMS: u64 = 6;
/// Streams from this one on may also be tombstoned (then every append to them is refused).
const FIRST_TOMBSTONABLE_STREAM: u64 = 4;

/// A client: appends to a few shared streams through random live nodes, with every kind of
/// expected revision, and now and then does what applications also do — sets a stream's
/// metadata, soft-deletes a stream, tombstones one — until told to stop.
async fn client(shared: Arc<Shared>, id: usize) {
    let mut known: BTreeMap<String, u64> = BTreeMap::new();
    while !shared.stop_clients.load(Ordering::SeqCst) {
        let live = shared.cluster.live();
        if live.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let (pick, n, kind, count, pause) = shared.rand(|r| {
            (
                r.random_range(0..live.len()),
                r.random_range(0..STREAMS),
                r.random_range(0..100),
                r.random_range(1..=3),
                r.random_range(0..30),
            )
        });
        let stream = format!("stream-{n}");
        let node = live[pick].1.clone();
        match kind {
            0..=2 => set_metadata(&shared, id, &node, &stream).await,
            3..=4 => {
                delete(
                    &shared,
                    id,
                    &node,
                    &stream,
                    DeleteKind::Soft,
                    known.get(&stream),
                )
                .await
            }
            5 if n >= FIRST_TOMBSTONABLE_STREAM => {
                delete(
                    &shared,
                    id,
                    &node,
                    &stream,
                    DeleteKind::Hard,
                    known.get(&stream),
                )
                .await
            }
            _ => {
                let expected = match kind % 10 {
                    0..=4 => Expected::Any,
                    5..=7 => known
                        .get(&stream)
                        .map_or(Expected::NoStream, |&r| Expected::Exact(r)),
                    8 => Expected::NoStream,
                    _ => Expected::StreamExists,
                };
                // A wrong expected version tells the current revision too.
                if let Some(r) = append(&shared, id, &node, &stream, expected, count)
                    .await
                    .revision
                {
                    known.insert(stream.clone(), r);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// Writes metadata to `$$stream` (a `$maxCount` that keeps everything the checks read, and a
/// custom key), as applications do. Its events are in `$all` as system events.
async fn set_metadata(shared: &Shared, client: usize, node: &Node, stream: &str) {
    let metadata = ProposedEvent {
        id: stele_cluster::determinism::new_uuid(),
        event_type: stele_core::metadata::METADATA_EVENT_TYPE.into(),
        content_type: ContentType::Json,
        custom_metadata: bytes::Bytes::new(),
        data: bytes::Bytes::from(format!("{{\"$maxCount\":100000,\"client\":{client}}}")),
    };
    let call = node.append(
        stream_name(stream).metadata_stream(),
        ExpectedRevision::Any,
        vec![metadata],
        false,
    );
    let result = tokio::time::timeout(Duration::from_secs(10), call).await;
    shared.count("metadata written");
    shared.note(format!(
        "client {client} metadata of {stream} -> {result:?}"
    ));
}

/// Soft-deletes or tombstones `stream`, expecting any revision or the last one this client
/// knows. The history learns of soft deletes, after which `NoStream` holds again.
async fn delete(
    shared: &Shared,
    client: usize,
    node: &Node,
    stream: &str,
    kind: DeleteKind,
    known: Option<&u64>,
) {
    let expected = match known {
        Some(&r) if shared.rand(|r| r.random_range(0..2)) == 0 => ExpectedRevision::Exact(r),
        _ => ExpectedRevision::Any,
    };
    if kind == DeleteKind::Soft {
        shared.history.note_soft_delete(stream);
    }
    let call = node.delete(stream_name(stream), expected, kind, false);
    let result = tokio::time::timeout(Duration::from_secs(10), call).await;
    shared.count(match kind {
        DeleteKind::Soft => "stream soft-deleted",
        DeleteKind::Hard => "stream tombstoned",
    });
    shared.note(format!(
        "client {client} {kind:?} delete of {stream} {expected:?} -> {result:?}"
    ));
}

fn pick_kind(r: &mut SmallRng) -> &'static str {
    FAULT_KINDS[r.random_range(0..FAULT_KINDS.len())]
}

/// Injects faults at random moments until the safety phase ends. At most a minority of
/// voters is down at once, so the cluster keeps taking writes under faults.
async fn fault_schedule(shared: Arc<Shared>) {
    let cluster = shared.cluster.clone();
    let n = cluster.len();
    let voters = cluster.shape.voters;
    let mut voter_flips = 0;
    while !shared.stop_faults.load(Ordering::SeqCst) {
        let wait = shared.rand(|r| r.random_range(200..2000));
        tokio::time::sleep(Duration::from_millis(wait)).await;
        // Nodes whose log failed stop; the harness restarts them (a failed fsync is never
        // retried by the node itself).
        for (i, node) in cluster.live() {
            if node.log_failed() {
                shared.count("node stopped after an I/O error");
                let syncs = cluster.host(i).disk.sync_count();
                tokio::time::sleep(Duration::from_millis(100)).await;
                if cluster.host(i).disk.sync_count() != syncs {
                    shared.fail(format!("host {i}: fsync retried after its log failed"));
                }
                shared.note(format!(
                    "host {i}: log failed; restarting after a power loss"
                ));
                cluster.crash(i, CrashKind::PowerLoss);
                schedule_restart(&shared, i);
            }
        }
        let (kind, target) = shared.rand(|r| (pick_kind(r), r.random_range(0..n)));
        let down_voters = (0..voters)
            .filter(|&i| cluster.node(i).is_none() || cluster.rotting(i))
            .count();
        let may_down = down_voters < (voters - 1) / 2 || (voters == 3 && down_voters == 0);
        let crash = |kind: CrashKind| {
            if cluster.node(target).is_none() || (!cluster.is_replica(target) && !may_down) {
                return false;
            }
            cluster.crash(target, kind);
            schedule_restart(&shared, target);
            true
        };
        let done = match kind {
            "process crash" => crash(CrashKind::Process),
            "power loss" => crash(CrashKind::PowerLoss),
            "torn write" => {
                let keep = shared.rand(|r| r.random_range(1..200));
                crash(CrashKind::TornWrite { keep_bytes: keep })
            }
            "reordered write" => crash(CrashKind::ReorderedWrite),
            "bit flip" => {
                let (at, bit) =
                    shared.rand(|r| (r.random_range(0..u64::MAX), r.random_range(0..8)));
                // Damage ends in a wipe: at most a minority of the voters may ever lose their
                // data (2n+1 voters survive the loss of n), replicas any number of times.
                let voter_wipes_left = voter_flips < (voters - 1) / 2;
                let down = (0..n)
                    .map(|i| (target + i) % n)
                    .find(|&i| cluster.node(i).is_none() && (i >= voters || voter_wipes_left));
                // With no such node down, the bit rots under a running one (it will be
                // stopped, so it counts as down from now on).
                let running = (down.is_none()
                    && cluster.node(target).is_some()
                    && !cluster.rotting(target)
                    && (target >= voters || (voter_wipes_left && may_down)))
                    .then_some(target);
                match down
                    .or(running)
                    .and_then(|i| cluster.flip_bit(i, at, bit).map(|f| (i, f)))
                {
                    Some((host, (file, offset))) => {
                        if host < voters {
                            voter_flips += 1;
                        }
                        shared.note(format!("bit {bit} flipped in {file} at {offset}"));
                        if running.is_some() {
                            rot_found_by_reading(&shared, host, &file, offset);
                        }
                        true
                    }
                    None => false,
                }
            }
            "fsync error" => match cluster.node(target) {
                Some(_) => {
                    cluster.host(target).disk.fail_next_sync();
                    true
                }
                None => false,
            },
            "isolate node" => {
                for j in (0..n).filter(|&j| j != target) {
                    cluster.network.cut(target, j);
                    cluster.network.cut(j, target);
                }
                schedule_heal(&shared);
                true
            }
            "one-way cut" => {
                let other = (target + 1 + shared.rand(|r| r.random_range(0..n - 1))) % n;
                cluster.network.cut(target, other);
                schedule_heal(&shared);
                true
            }
            "split" => {
                let side: Vec<bool> = shared.rand(|r| (0..n).map(|_| r.random_bool(0.5)).collect());
                for a in 0..n {
                    for b in 0..n {
                        if side[a] != side[b] {
                            cluster.network.cut(a, b);
                        }
                    }
                }
                schedule_heal(&shared);
                true
            }
            "slow network" => {
                let max = shared.rand(|r| r.random_range(5..80));
                cluster.network.set_conditions(Conditions {
                    latency_min: Duration::from_millis(1),
                    latency_max: Duration::from_millis(max),
                    reset_rate: 0.0,
                });
                schedule_heal(&shared);
                true
            }
            "lossy network" => {
                cluster.network.set_conditions(Conditions {
                    reset_rate: 0.02,
                    ..Conditions::default()
                });
                schedule_heal(&shared);
                true
            }
            "resign leader" => {
                let leader = cluster
                    .live()
                    .into_iter()
                    .find(|(_, node)| node.status().state == VNodeState::Leader);
                match leader {
                    Some((_, node)) => {
                        let _ = node.resign().await;
                        true
                    }
                    None => false,
                }
            }
            "set priority" => match cluster.node(target) {
                Some(node) => {
                    let priority = shared.rand(|r| r.random_range(0..3));
                    cluster.host(target).priority = priority;
                    let _ = node.set_node_priority(priority).await;
                    true
                }
                None => false,
            },
            _ => false,
        };
        if done {
            shared.count(kind);
            shared.note(format!("fault: {kind} on host {target}"));
        }
    }
}

/// A bit flipped under running host `host`: a scan of its log must find it, naming the
/// chunk file, and the node keeps running (a failed read poisons nothing) until the operator
/// stops it a while later; it then refuses to start and is wiped (`restart`). Meanwhile it
/// may be asked to read the damaged record (a subscription, a lagging follower) and must
/// answer with an error, never with the damaged bytes.
fn rot_found_by_reading(shared: &Arc<Shared>, host: HostId, file: &str, offset: u64) {
    shared.count("bit flip under a running node");
    let Some(node) = shared.cluster.node(host) else {
        return;
    };
    match node.scan_log() {
        Ok(records) => shared.fail(format!(
            "host {host}: a scan of its {records} records missed the bit flipped in {file} at {offset}"
        )),
        Err(e) if e.contains(&format!("corrupt log file {file} at offset")) => {
            shared.count("bit rot found by a scan");
        }
        Err(e) => shared.fail(format!(
            "host {host}: the bit flipped in {file} at {offset} was reported as: {e}"
        )),
    }
    let after = shared.rand(|r| r.random_range(200..3000));
    let incarnation = shared.cluster.host(host).incarnation;
    let shared = shared.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(after)).await;
        if shared.stop_faults.load(Ordering::SeqCst)
            || shared.cluster.host(host).incarnation != incarnation
        {
            // Down already (its restart finds the flip), or left to the liveness phase.
            return;
        }
        shared.note(format!("operator stops host {host} (damaged log)"));
        shared.cluster.crash(host, CrashKind::Process);
        schedule_restart(&shared, host);
    });
}

fn schedule_restart(shared: &Arc<Shared>, host: HostId) {
    let after = shared.rand(|r| r.random_range(200..4000));
    let shared = shared.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(after)).await;
        if shared.stop_faults.load(Ordering::SeqCst) || shared.cluster.node(host).is_some() {
            // The liveness phase restarts what is still down.
            return;
        }
        shared.note(format!("restart host {host}"));
        if let Err(e) = restart(&shared, host).await {
            shared.fail(format!("restart after a crash: {e}"));
        }
    });
}

/// Starts a node that is down. A node whose records were damaged must refuse to start,
/// naming the chunk file and the offset; the operator then wipes it and it rejoins.
async fn restart(shared: &Shared, host: HostId) -> Result<(), String> {
    let flipped = shared.cluster.host(host).flipped.take();
    // Mostly the node reopens its index at its last flush and replays the log after it;
    // now and then the operator has deleted the index and it is rebuilt from the log.
    if shared.rand(|r| r.random_range(0..4)) == 0 {
        shared.count("index deleted before a restart");
        shared.cluster.delete_index(host);
    } else if !shared.cluster.host(host).index_file.is_empty() {
        shared.count("index reopened at its last flush");
    }
    match shared.cluster.start(host).await {
        Ok(()) => {
            check_durable_prefix(shared, host);
            if let Some((file, offset)) = flipped {
                shared.count("bit flip not detected");
                shared.fail(format!(
                    "host {host} started with a flipped bit in {file} at {offset}, below its checkpoint"
                ));
            }
            Ok(())
        }
        Err(e) => {
            let Some((file, offset)) = flipped else {
                return Err(e);
            };
            let named = format!("corrupt log file {file} at offset");
            if !e.contains(&named) {
                return Err(format!(
                    "the flipped bit in {file} at {offset} was reported as: {e}"
                ));
            }
            shared.count("bit flip detected at start");
            shared.note(format!("host {host} refused to start ({e}); wiped"));
            shared.cluster.wipe(host);
            shared.cluster.start(host).await
        }
    }
}

/// A restarted node must hold every entry it had reported durable before it went down,
/// unchanged (whatever the kind of crash).
fn check_durable_prefix(shared: &Shared, host: HostId) {
    let (acknowledged, before) = {
        let h = shared.cluster.host(host);
        (h.acknowledged_at_crash, h.digests_at_crash.clone())
    };
    let Some(node) = shared.cluster.node(host) else {
        return;
    };
    let after = node.entry_digests(false);
    let required = match &before {
        Some(before) => (acknowledged as usize).min(before.len()),
        None => acknowledged as usize,
    };
    if after.len() < required {
        shared.fail(format!(
            "host {host} reported {required} entries durable before it went down and recovered {}",
            after.len()
        ));
    } else if let Some(before) = before {
        if let Some(at) = (0..required).find(|&i| before[i] != after[i]) {
            shared.fail(format!(
                "host {host} recovered entry {at} as {:?}, it was {:?} when reported durable",
                after[at], before[at]
            ));
        }
    }
}

fn schedule_heal(shared: &Arc<Shared>) {
    let after = shared.rand(|r| r.random_range(500..5000));
    let shared = shared.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(after)).await;
        shared.note("network healed");
        shared.cluster.network.heal();
        shared.cluster.network.set_conditions(Conditions::default());
    });
}

async fn wait_for_leader(shared: &Shared, deadline: Instant) -> Option<Instant> {
    while Instant::now() < deadline {
        let leads = shared.cluster.live().iter().any(|(_, node)| {
            let status = node.status();
            status.state == VNodeState::Leader && status.ready
        });
        if leads {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

async fn first_write(shared: &Shared, deadline: Instant) -> Option<Instant> {
    while Instant::now() < deadline {
        let live = shared.cluster.live();
        let pick = shared.rand(|r| r.random_range(0..live.len().max(1)));
        if let Some((_, node)) = live.get(pick) {
            let sent = append(shared, usize::MAX, node, "liveness", Expected::Any, 1).await;
            if sent.acked {
                return Some(Instant::now());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

fn read_all(node: &Node) -> Result<Vec<ReadEvent>, String> {
    let request = AllReadRequest {
        start: AllStart::Start,
        direction: Direction::Forwards,
        max_count: u64::MAX,
    };
    let events = node
        .read_all(&request, &|_| true)
        .map_err(|e| e.to_string())?;
    Ok(events
        .into_iter()
        .map(|e| ReadEvent {
            stream: e.record.stream.as_str().to_owned(),
            revision: e.revision.0,
            position: e.position.0,
            event_id: e.record.id,
        })
        .collect())
}

fn read_everywhere(shared: &Shared) -> Result<Vec<(String, Vec<ReadEvent>)>, String> {
    shared
        .cluster
        .live()
        .iter()
        .map(|(i, node)| read_all(node).map(|events| (format!("host {i}"), events)))
        .collect()
}

/// Waits until every node is up, applied to the same end and holds the same `$all`.
async fn converge(
    shared: &Shared,
    deadline: Instant,
) -> Result<Vec<(String, Vec<ReadEvent>)>, String> {
    let mut last = String::new();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let live = shared.cluster.live();
        if live.len() < shared.cluster.len() {
            last = format!("{} of {} nodes up", live.len(), shared.cluster.len());
            continue;
        }
        let indexes: Vec<u64> = live
            .iter()
            .map(|(_, n)| n.status().last_log_index)
            .collect();
        let applied: Vec<u64> = live
            .iter()
            .map(|(_, n)| n.status().chaser_checkpoint)
            .collect();
        if indexes.windows(2).any(|w| w[0] != w[1]) || applied.windows(2).any(|w| w[0] != w[1]) {
            last = format!("log ends {indexes:?}, applied {applied:?}");
            continue;
        }
        match read_everywhere(shared) {
            Ok(reads) => {
                if reads.windows(2).all(|w| w[0].1 == w[1].1) {
                    return Ok(reads);
                }
                last = "nodes hold different $all".into();
            }
            Err(e) => last = format!("read failed: {e}"),
        }
    }
    Err(format!(
        "the cluster did not converge after healing: {last}"
    ))
}

/// The first log index at which two live nodes hold different entries, if any.
fn log_divergence(shared: &Shared) -> Option<String> {
    type Digests = Vec<(u64, u64, u64)>;
    let logs: Vec<(HostId, Digests)> = shared
        .cluster
        .live()
        .iter()
        .map(|(i, n)| (*i, n.entry_digests(false)))
        .collect();
    let (first, base) = logs.first()?;
    for (other, log) in &logs[1..] {
        if let Some(at) = base.iter().zip(log).position(|(a, b)| a != b) {
            return Some(format!(
                "logs diverge: host {first} and host {other} differ at entry {at}: (term, index, digest) {:?} vs {:?}",
                base[at], log[at]
            ));
        }
    }
    None
}
