//! Liveness after healing: a leader, an acknowledged write, and every node converged on the
//! same `$all` within the bound; and, when they do not, where their logs diverge.

use super::*;

pub(crate) async fn wait_for_leader(shared: &Shared, deadline: Instant) -> Option<Instant> {
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

pub(crate) async fn first_write(shared: &Shared, deadline: Instant) -> Option<Instant> {
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

pub(crate) fn read_all(node: &Node) -> Result<Vec<ReadEvent>, String> {
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

pub(crate) fn read_everywhere(shared: &Shared) -> Result<Vec<(String, Vec<ReadEvent>)>, String> {
    shared
        .cluster
        .live()
        .iter()
        .map(|(i, node)| read_all(node).map(|events| (format!("host {i}"), events)))
        .collect()
}

/// Waits until every node is up, applied to the same end and holds the same `$all`.
pub(crate) async fn converge(
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
pub(crate) fn log_divergence(shared: &Shared) -> Option<String> {
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
