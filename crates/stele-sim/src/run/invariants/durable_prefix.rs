//! Durability across a restart: what a node reported durable before it went down is still
//! in its log, unchanged, when it comes back.

use super::*;

/// A restarted node must hold every entry it had reported durable before it went down,
/// unchanged (whatever the kind of crash).
pub(crate) fn check_durable_prefix(shared: &Shared, host: HostId) {
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
