//! How long the cluster went without a serving leader under faults (reported, and bounded
//! by the liveness checks after healing).

use super::*;

/// Measures the longest time without a serving leader, in 10 ms steps.
pub(crate) async fn leaderless_watch(shared: Arc<Shared>) {
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
