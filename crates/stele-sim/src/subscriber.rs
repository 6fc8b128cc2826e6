//! Catch-up subscriptions under faults: one subscriber per host follows `$all` through the
//! API's own subscription code (`stele_api::grpc::streams::subscribe`), resuming after the
//! last position it saw whenever its node goes down or its subscription ends. At the end,
//! each must have been delivered exactly the converged `$all`: no gap, no duplicate, nothing
//! out of order, nothing that is not in the log.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::uuid::Uuid;
use futures::StreamExt;
use stele_api::grpc::streams::subscribe;
use stele_api::grpc::wire_uuid::UuidFormat;
use stele_proto::shared::{uuid as wire_uuid, Empty};
use stele_proto::streams::read_req::options::{
    self, all_options::AllOption, uuid_option, AllOptions, CountOption, FilterOption, StreamOption,
    SubscriptionOptions, UuidOption,
};
use stele_proto::streams::read_req::Options;
use stele_proto::streams::read_resp;

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

fn options(after: Option<u64>) -> Options {
    let all_option = match after {
        None => AllOption::Start(Empty {}),
        Some(p) => AllOption::Position(options::Position {
            commit_position: p,
            prepare_position: p,
        }),
    };
    Options {
        stream_option: Some(StreamOption::All(AllOptions {
            all_option: Some(all_option),
        })),
        read_direction: options::ReadDirection::Forwards as i32,
        resolve_links: false,
        count_option: Some(CountOption::Subscription(SubscriptionOptions {})),
        filter_option: Some(FilterOption::NoFilter(Empty {})),
        uuid_option: Some(UuidOption {
            content: Some(uuid_option::Content::String(Empty {})),
        }),
        control_option: None,
    }
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
        let plan = match subscribe::plan(&options(last), UuidFormat::String) {
            Ok(plan) => plan,
            Err(status) => {
                delivered
                    .lock()
                    .expect("delivered lock")
                    .errors
                    .push(format!("host {host}: subscription refused: {status:?}"));
                return;
            }
        };
        delivered.lock().expect("delivered lock").subscriptions += 1;
        let mut stream = subscribe::spawn(node, plan);
        loop {
            if stop.load(Ordering::SeqCst) || cluster.host(host).incarnation != incarnation {
                break;
            }
            let next = tokio::time::timeout(Duration::from_millis(200), stream.next()).await;
            let item = match next {
                Err(_) => continue,
                Ok(None) | Ok(Some(Err(_))) => break,
                Ok(Some(Ok(item))) => item,
            };
            let Some(read_resp::Content::Event(event)) = item.content else {
                continue;
            };
            let Some(recorded) = event.event else {
                continue;
            };
            let id = match recorded.id.and_then(|u| u.value) {
                Some(wire_uuid::Value::String(s)) => Uuid::parse_str(&s).unwrap_or_default(),
                _ => Uuid::nil(),
            };
            let position = recorded.commit_position;
            let mut d = delivered.lock().expect("delivered lock");
            if last.is_some_and(|l| position <= l) {
                d.errors.push(format!(
                    "host {host}: position {position} delivered after {}",
                    last.unwrap_or_default()
                ));
            }
            d.events.push((position, id));
            last = Some(position);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
