//! Quorum: every applied entry is on a majority of the voters' disks.

use super::*;

/// Commitment needs a quorum, checked every 10 ms: every entry any node has applied is on
/// the disks (reported durable) of a majority of some voter set the cluster has had.
///
/// What each voter holds is tracked by node id: a running node's count of durable entries,
/// a down node's count when it went down, and a wiped node's old id keeps its last count
/// (an entry that reached a majority before an operator replaced a damaged disk did reach
/// it). Every voter set any node has known is accepted, not only the current one, so a
/// membership change in flight is never mistaken for a lost quorum; a leader that commits
/// alone still fails it, as one node is no majority of any set of three or five.
pub(crate) async fn quorum_watch(shared: Arc<Shared>) {
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
