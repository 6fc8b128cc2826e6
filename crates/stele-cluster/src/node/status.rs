//! What a node says about itself and the cluster: its state for gossip and health, the
//! member list, and the operator's leadership controls (resign, priority).

use super::*;

/// A follower or replica whose applied state comes within this many entries of what the
/// leader reports committed has caught up (and `/health/live` answers 204).
const CAUGHT_UP_ENTRIES: u64 = 256;

/// A follower or replica that has caught up is catching up again only once it falls this far
/// behind: under load its applied state trails the commit by a batch or two, which is not
/// catching up, and probes must not see it flap (issue 11, item 4).
const FALLEN_BEHIND_ENTRIES: u64 = 16 * 1024;

impl Node {
    pub fn status(&self) -> NodeStatus {
        let metrics = self.inner.raft.metrics().borrow_watched().clone();
        let me = self.inner.identity.node_id;
        let config = &self.inner.config;
        let applied_next = self.inner.applied.next_index.load(Ordering::Acquire);
        let membership = metrics.membership_config.membership();
        let initialized = membership.nodes().next().is_some();
        // A leader is PreLeader only until it has applied the first entry of its own term
        // (the blank it appends on election): from then on everything before its term is
        // applied, and a state machine a few entries behind its commit under load still
        // leads (issue 11, item 4).
        let applied_own_term = metrics
            .last_applied
            .is_some_and(|applied| applied.leader_id.term == metrics.current_term);
        let following = metrics.current_leader.is_some_and(|leader| leader != me);
        let lag = metrics
            .cluster_committed
            .map_or(0, |c| (c.index + 1).saturating_sub(applied_next));
        let caught_up = if !following {
            false
        } else if lag <= CAUGHT_UP_ENTRIES {
            true
        } else {
            self.inner.caught_up.load(Ordering::Relaxed) && lag <= FALLEN_BEHIND_ENTRIES
        };
        self.inner.caught_up.store(caught_up, Ordering::Relaxed);
        let state = match metrics.state {
            ServerState::Leader if applied_own_term => VNodeState::Leader,
            ServerState::Leader => VNodeState::PreLeader,
            ServerState::Follower if caught_up => VNodeState::Follower,
            ServerState::Follower => VNodeState::CatchingUp,
            ServerState::Learner if config.read_only_replica => {
                if caught_up {
                    VNodeState::ReadOnlyReplica
                } else if initialized {
                    VNodeState::PreReadOnlyReplica
                } else {
                    VNodeState::ReadOnlyLeaderless
                }
            }
            // A voter that is not in a cluster yet (forming, or admitted as a learner to
            // replace a wiped node).
            ServerState::Learner if initialized => VNodeState::CatchingUp,
            ServerState::Learner => VNodeState::DiscoverLeader,
            ServerState::Candidate => VNodeState::Unknown,
            ServerState::Shutdown => VNodeState::Shutdown,
        };
        let ready = matches!(
            state,
            VNodeState::Leader | VNodeState::Follower | VNodeState::ReadOnlyReplica
        ) && !self.inner.log.log.is_poisoned()
            && self.inner.fatal.get().is_none();
        NodeStatus {
            node_id: me,
            instance_id: self.inner.identity.instance_id,
            cluster_id: membership_cluster_id(membership),
            state,
            is_alive: true,
            time_stamp: now_ticks(),
            http_endpoint: config.http_advertised.clone(),
            gossip_endpoint: config.gossip_advertised.clone(),
            internal_tcp: config.internal_advertised.clone(),
            last_commit_position: self.last_position().0,
            writer_checkpoint: self.inner.log.log.durable_end(),
            chaser_checkpoint: self.inner.applied.event_end.load(Ordering::Acquire),
            last_log_index: metrics.last_log_index.unwrap_or(0),
            log_sync_count: self.inner.log.log.sync_count(),
            epoch_number: metrics.current_term,
            node_priority: self.inner.priority.load(Ordering::Relaxed),
            read_only_replica: config.read_only_replica,
            resigned: self
                .inner
                .resigned_in_term
                .lock()
                .expect("resign lock")
                .is_some(),
            ready,
        }
    }

    /// Every member of the cluster this node knows, itself first: what `/gossip` and
    /// `Gossip.Read` report.
    ///
    /// A member's state is what it last said of itself, except that a member still claiming
    /// to lead in an older term than the leader this node follows is reported `Unknown`:
    /// clients need exactly one leader in gossip.
    pub fn members(&self) -> Vec<NodeStatus> {
        let me = self.status();
        let metrics = self.inner.raft.metrics().borrow_watched().clone();
        let mut members = self.inner.members.members();
        if let Some(leader) = metrics.current_leader {
            for member in &mut members {
                let claims_lead =
                    matches!(member.state, VNodeState::Leader | VNodeState::PreLeader);
                if claims_lead && member.node_id != leader && member.epoch_number <= me.epoch_number
                {
                    member.state = VNodeState::Unknown;
                }
            }
        }
        let mut all = vec![me];
        all.extend(members);
        all
    }

    /// Takes a gossip message from another node and answers with this node's view.
    pub fn receive_gossip(&self, message: &GossipMessage) -> Result<GossipMessage, GossipRefused> {
        let ours = self.cluster_id();
        if let Err(refused) = self.inner.members.check(message, ours) {
            tracing::warn!("{refused}");
            return Err(refused);
        }
        self.inner.members.merge(message, ours);
        Ok(self.gossip_message())
    }

    pub(crate) fn gossip_message(&self) -> GossipMessage {
        GossipMessage {
            sender: self.status(),
            members: self.inner.members.members(),
            sent_at_unix_ms: crate::gossip::unix_ms_now(),
        }
    }

    /// Hands leadership to the best other caught-up voter (highest priority, then most
    /// caught up). On a node that is not the leader it does nothing, as in EventStoreDB.
    pub async fn resign(&self) -> Result<(), AdminError> {
        crate::controller::resign(self).await
    }

    /// Sets this node's priority. Leaders hand leadership to a caught-up voter of higher
    /// priority; setting a priority also ends a resignation.
    pub async fn set_node_priority(&self, priority: i32) -> Result<(), AdminError> {
        self.inner.priority.store(priority, Ordering::Relaxed);
        *self.inner.resigned_in_term.lock().expect("resign lock") = None;
        tracing::info!(priority, "node priority set");
        Ok(())
    }

    /// Waits until the node serves clients, or the deadline passes.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut metrics = self.inner.raft.metrics();
        loop {
            if self.status().ready {
                return true;
            }
            tokio::select! {
                _ = metrics.changed() => {}
                _ = self.inner.applied.notify.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = tokio::time::sleep_until(deadline) => return self.status().ready,
            }
        }
    }
}
