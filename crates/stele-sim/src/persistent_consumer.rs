//! A persistent-subscription consumer under faults, as applications run one: a group on `$all`
//! from the start, created through whichever node leads (again after every failover; "exists"
//! is fine), one consumer that connects to the leader's persistent subscriptions
//! (`stele_services::persistent::Subsystem`, the engine the gRPC and HTTP services use, one per
//! node start as in the `stele` binary) and acks most messages, nacks some to be retried, parks
//! or skips a few, and reconnects whenever it is dropped or its node goes down.
//!
//! What it must show at the end: every event of the clients' streams in the converged `$all`
//! was taken care of (acked, parked or skipped by the consumer) at least once — the group
//! checkpoints in the log, so a new leader resumes and may deliver again, but never passes
//! over a message nobody took care of — and nothing was delivered that is not in the log.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use stele_cluster::VNodeState;
use stele_services::persistent::{
    ConnectRequest, Definition, Delivery, GroupKey, NackAction, PsError, Settings, Source,
    StartFrom, Subsystem,
};
use stele_testkit::history::ReadEvent;
use uuid::Uuid;

use crate::cluster::SimCluster;
use crate::net::HostId;

/// The group's name.
const GROUP: &str = "sim-consumers";
/// Messages the consumer may hold unacknowledged.
const BUFFER_SIZE: u32 = 16;

/// What the consumer did and was delivered.
#[derive(Debug, Default)]
pub struct PsRecord {
    /// Times each event of the clients' streams was delivered, by id.
    pub delivered: BTreeMap<Uuid, u32>,
    /// Event ids the consumer acked, parked or skipped (took care of) at least once.
    pub handled: BTreeSet<Uuid>,
    pub acks: u64,
    pub nacks: u64,
    /// Successful connections (the first, and one per reconnection).
    pub connections: u64,
    pub errors: Vec<String>,
}

fn settings() -> Settings {
    Settings {
        start_from: StartFrom::Start,
        // Short enough that unacknowledged messages come back within a run.
        message_timeout_ms: 2_000,
        max_retry_count: 3,
        checkpoint_after_ms: 500,
        min_checkpoint_count: 1,
        max_checkpoint_count: 20,
        ..Settings::default()
    }
}

/// The leader's host and node, if one leads now.
fn leader(cluster: &SimCluster) -> Option<(HostId, u64, stele_cluster::Node)> {
    cluster.live().into_iter().find_map(|(i, node)| {
        let status = node.status();
        (status.state == VNodeState::Leader && status.ready).then(|| {
            let incarnation = cluster.host(i).incarnation;
            (i, incarnation, node)
        })
    })
}

/// Consumes until `stop`, with choices drawn from `seed`.
pub async fn consume(
    cluster: Arc<SimCluster>,
    seed: u64,
    record: Arc<Mutex<PsRecord>>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = SmallRng::seed_from_u64(seed);
    // One subsystem per node start, as the binary runs one per process.
    let mut subsystems: BTreeMap<HostId, (u64, Subsystem)> = BTreeMap::new();
    let key = GroupKey::new(Source::All, GROUP);
    while !stop.load(Ordering::SeqCst) {
        for (i, node) in cluster.live() {
            let incarnation = cluster.host(i).incarnation;
            if subsystems
                .get(&i)
                .is_none_or(|(inc, _)| *inc != incarnation)
            {
                let access = stele_services::access::AccessControl::insecure(node.clone());
                subsystems.insert(i, (incarnation, Subsystem::start(node, access)));
            }
        }
        let Some((host, incarnation, _)) = leader(&cluster) else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let subsystem = subsystems[&host].1.clone();
        let definition = Definition {
            key: key.clone(),
            filter: None,
            settings: settings(),
            creator: stele_core::access::Principal::System,
        };
        match subsystem.create(definition).await {
            Ok(()) | Err(PsError::AlreadyExists { .. }) => {}
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        }
        let request = ConnectRequest {
            key: key.clone(),
            buffer_size: BUFFER_SIZE,
            connection_name: "sim".into(),
            from: format!("host {host}"),
            username: String::new(),
        };
        let mut consumer = match subsystem.connect(request).await {
            Ok(consumer) => consumer,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        record.lock().expect("ps record lock").connections += 1;
        let handle = consumer.handle();
        loop {
            if stop.load(Ordering::SeqCst) || cluster.host(host).incarnation != incarnation {
                break;
            }
            let next = tokio::time::timeout(Duration::from_millis(200), consumer.next()).await;
            let message = match next {
                Err(_) => continue,
                Ok(None) | Ok(Some(Delivery::Dropped(_))) => break,
                Ok(Some(Delivery::Message(message))) => message,
            };
            let id = message.ack_id();
            let mut r = record.lock().expect("ps record lock");
            // Events of `$` streams (metadata, the group's own checkpoints and parked
            // messages, written until the end) are taken care of like any other but not
            // checked: the checks compare with the clients' events.
            if !message.original().record.stream.as_str().starts_with('$') {
                *r.delivered.entry(id).or_default() += 1;
            }
            // A message retried twice is acked, so the group never parks one for
            // running out of retries (the consumer would not have taken care of it).
            let choice = match message.retry_count {
                0..=1 => rng.random_range(0..100),
                _ => 0,
            };
            match choice {
                0..=79 => {
                    r.acks += 1;
                    r.handled.insert(id);
                    handle.ack(vec![id]);
                }
                80..=89 => {
                    r.nacks += 1;
                    handle.nack(vec![id], NackAction::Retry, "sim: retry".into());
                }
                90..=93 => {
                    r.nacks += 1;
                    r.handled.insert(id);
                    handle.nack(vec![id], NackAction::Park, "sim: park".into());
                }
                94..=96 => {
                    r.nacks += 1;
                    r.handled.insert(id);
                    handle.nack(vec![id], NackAction::Skip, "sim: skip".into());
                }
                // Neither: the message times out and comes back.
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The events of the clients' streams the consumer must have been delivered: every event
/// in the converged `$all` that is not of a `$` stream.
pub fn expected_ids(all: &[ReadEvent]) -> BTreeSet<Uuid> {
    all.iter()
        .filter(|e| !e.stream.starts_with('$'))
        .map(|e| e.event_id)
        .collect()
}

/// Checks what the consumer was delivered against the converged `$all`: nothing that is
/// not in the log; with `complete`, every expected event taken care of at least once.
pub fn verify(record: &PsRecord, all: &[ReadEvent], complete: bool) -> Result<(), Vec<String>> {
    let in_log: BTreeSet<Uuid> = all.iter().map(|e| e.event_id).collect();
    let mut errors: Vec<String> = record
        .delivered
        .keys()
        .filter(|id| !in_log.contains(id))
        .take(5)
        .map(|id| format!("persistent subscription delivered {id}, which is not in the log"))
        .collect();
    if complete {
        let missing: Vec<Uuid> = expected_ids(all)
            .into_iter()
            .filter(|id| !record.handled.contains(id))
            .collect();
        if !missing.is_empty() {
            errors.push(format!(
                "persistent subscription: {} of the log's events never taken care of (first: {})",
                missing.len(),
                missing[0]
            ));
        }
    }
    errors.extend(record.errors.iter().take(5).cloned());
    match errors.is_empty() {
        true => Ok(()),
        false => Err(errors),
    }
}
