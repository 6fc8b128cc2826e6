//! State-machine safety, watched throughout: once any node has applied the entry at an
//! index, every node that applies that index applies the same entry.

use super::*;

/// State machine safety, checked every second while the run goes on: once any node has
/// applied the entry at an index, every node that applies an entry at that index applies the
/// same one, and no node's applied entry is ever replaced (crashes included).
///
/// (Not "one leader per term": openraft's leader ids are (term, node id), so two candidates
/// may each lead in one term; what must hold is that committed entries never differ.)
pub(crate) async fn monitor(shared: Arc<Shared>) {
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
