//! The faults: what is injected, when, and how a node that went down comes back (restarts,
//! damaged logs found and wiped, indexes reopened or deleted).

use super::*;

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

pub(crate) fn pick_kind(r: &mut SmallRng) -> &'static str {
    FAULT_KINDS[r.random_range(0..FAULT_KINDS.len())]
}

/// Injects faults at random moments until the safety phase ends. At most a minority of
/// voters is down at once, so the cluster keeps taking writes under faults.
pub(crate) async fn fault_schedule(shared: Arc<Shared>) {
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
pub(crate) fn rot_found_by_reading(shared: &Arc<Shared>, host: HostId, file: &str, offset: u64) {
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

pub(crate) fn schedule_restart(shared: &Arc<Shared>, host: HostId) {
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
pub(crate) async fn restart(shared: &Shared, host: HostId) -> Result<(), String> {
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

pub(crate) fn schedule_heal(shared: &Arc<Shared>) {
    let after = shared.rand(|r| r.random_range(500..5000));
    let shared = shared.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(after)).await;
        shared.note("network healed");
        shared.cluster.network.heal();
        shared.cluster.network.set_conditions(Conditions::default());
    });
}
