//! Catch-up subscriptions under faults: one subscriber per host follows `$all` through the
//! services' catch-up engine (`stele_services::catchup`, the one the gRPC subscriptions,
//! persistent subscriptions and projections use), resuming after the last position it saw whenever its node goes down or its subscription ends. At the end,
//! each must have been delivered exactly the converged `$all`: no gap, no duplicate, nothing
//! out of order, nothing that is not in the log.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::uuid::Uuid;
use stele_services::catchup::{Begin, CatchUp, CatchUpRequest, Step, Target, DEFAULT_PAGE_EVENTS};

use crate::cluster::SimCluster;
use crate::net::HostId;

/// What one subscriber was delivered, in order: (position, event id).
#[derive(Debug, Default)]
pub struct Delivered {
    pub events: Vec<(u64, Uuid)>,
    /// Subscriptions opened (the first, and one per resumption).
    pub subscriptions: u64,
    /// Order violations seen while delivering.
    pub errors: Vec<String>,
}

/// Follows `$all` on host `host` until `stop`.
pub async fn follow(
    cluster: Arc<SimCluster>,
    host: HostId,
    delivered: Arc<Mutex<Delivered>>,
    stop: Arc<AtomicBool>,
) {
    let mut last: Option<u64> = None;
    while !stop.load(Ordering::SeqCst) {
        let (node, incarnation) = {
            let h = cluster.host(host);
            (h.node.clone(), h.incarnation)
        };
        let Some(node) = node else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let request = CatchUpRequest {
            target: Target::All { filter: None },
            begin: last.map_or(Begin::Start, Begin::After),
            resolve_links: false,
            link_targets: None,
            page_events: DEFAULT_PAGE_EVENTS,
            prepare: Arc::new(|event, _| event.record.id),
        };
        delivered.lock().expect("delivered lock").subscriptions += 1;
        let Ok(mut engine) = CatchUp::start(node, request).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        loop {
            if stop.load(Ordering::SeqCst) || cluster.host(host).incarnation != incarnation {
                break;
            }
            // `next` is cancel-safe: a timeout only gives the loop a look at `stop`.
            let next = tokio::time::timeout(Duration::from_millis(200), engine.next()).await;
            let items = match next {
                Err(_) => continue,
                Ok(Err(_)) => break,
                Ok(Ok(Step::Events(items))) => items,
                Ok(Ok(Step::CaughtUp { .. } | Step::FellBehind { .. })) => continue,
            };
            let mut d = delivered.lock().expect("delivered lock");
            for item in items {
                let (position, id) = (item.position, item.prepared.unwrap_or_default());
                if last.is_some_and(|l| position <= l) {
                    d.errors.push(format!(
                        "host {host}: position {position} delivered after {}",
                        last.unwrap_or_default()
                    ));
                }
                d.events.push((position, id));
                last = Some(position);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
