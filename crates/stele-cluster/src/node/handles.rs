//! The narrow handles the controller (`controller/`: formation, gossip, leadership duties,
//! the internal port's handlers) uses instead of the node's whole shared state: the
//! consensus engine, the member table, who this node is, its configuration, the shutdown
//! signal, and the resignation record.

use super::*;

impl Node {
    pub(crate) fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    pub(crate) fn member_table(&self) -> &MemberTable {
        &self.inner.members
    }

    pub(crate) fn node_id(&self) -> u64 {
        self.inner.identity.node_id
    }

    pub(crate) fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    /// Flips to `true` when the node shuts down.
    pub(crate) fn shutdown_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// This node's id and cluster id, as the internal port's handshake names them.
    pub(crate) fn local_id(&self) -> Arc<LocalId> {
        self.inner.local.clone()
    }

    /// Whether this node's log holds nothing yet (a node that never joined a cluster).
    pub(crate) fn log_is_empty(&self) -> bool {
        self.inner.log.log.end() == 0
    }

    /// This node's priority for leadership (`NodePriority`, set at start and by operators).
    pub(crate) fn priority(&self) -> i32 {
        self.inner.priority.load(Ordering::Relaxed)
    }

    /// The term in which this node resigned leadership, if it did.
    pub(crate) fn resigned_in_term(&self) -> &Mutex<Option<u64>> {
        &self.inner.resigned_in_term
    }
}
