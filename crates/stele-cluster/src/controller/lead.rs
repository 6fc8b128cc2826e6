//! The leader's duties as a decision, apart from their effects (issue 12, item 3; the shape
//! of `stele-core`'s `decision.rs` and openraft's engine): [`plan_leadership`] takes what the
//! leader knows now ([`LeaderView`]: its membership, gossip's members, how far each
//! follower has replicated, its resignation, when it last handed leadership on) and returns
//! what to do ([`LeaderAction`]s, in order). The control loop (`mod.rs`, `lead`) gathers the
//! view, asks for the plan and carries it out: membership changes, learners, leadership
//! transfers and the log lines that go with them.
//!
//! The duties, in the order they are decided:
//! 1. A resignation ends once this node leads in a later term.
//! 2. A membership change cut short between its two phases (a joint configuration) is
//!    finished first, and nothing else is done in that round: in a joint configuration a
//!    quorum needs a majority of the old voters too, including a replaced node that will
//!    never come back (found by the deterministic simulation).
//! 3. Members gossip reports outside the membership are admitted as learners: read-only
//!    replicas, and a voter that came back with a wiped data directory (a new id at an old
//!    voter's address). Any other voter outside the cluster is surplus: warned about, once.
//! 4. A replacement learner that has caught up is swapped in for the voter whose address it
//!    took, one per round, and nothing else is done in that round.
//! 5. Leadership goes to a caught-up live voter with a higher priority (the highest, then the
//!    highest id), at most once per [`PRIORITY_TRANSFER_PAUSE`].

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use uuid::Uuid;

use crate::node::NodeStatus;
use crate::types::NodeAddr;

/// Minimum time between two leadership transfers a leader starts for priority.
pub(super) const PRIORITY_TRANSFER_PAUSE: Duration = Duration::from_secs(3);

/// What the leader knows when it decides: plain data, gathered by `lead` from the
/// consensus engine's metrics, gossip and the control loop's own state.
#[derive(Debug, Clone)]
pub(super) struct LeaderView<'a> {
    /// This node's id.
    pub me: u64,
    /// This node's priority (`NodePriority`).
    pub my_priority: i32,
    /// The cluster id, once known.
    pub cluster_id: Option<Uuid>,
    /// The current term.
    pub term: u64,
    /// The term in which this node resigned, if it did and has not been given a priority
    /// since.
    pub resigned_in_term: Option<u64>,
    /// The voter sets of the membership: one, or two during a change (joint consensus).
    pub joint: Vec<BTreeSet<u64>>,
    /// Every node of the membership (voters and learners) and where it is.
    pub nodes: BTreeMap<u64, NodeAddr>,
    /// The voters of the membership.
    pub voters: BTreeSet<u64>,
    /// The learners of the membership, in its order.
    pub learners: Vec<u64>,
    /// Every member gossip reports (this node excluded).
    pub members: &'a [NodeStatus],
    /// The index of the last entry in this node's log.
    pub last_log: u64,
    /// The last log index each follower or learner is known to hold (only those that have
    /// one).
    pub matched: BTreeMap<u64, u64>,
    /// Surplus voters already warned about.
    pub warned_surplus: &'a HashSet<u64>,
    /// How long ago this leader last started a transfer for priority, if it did.
    pub since_last_transfer: Option<Duration>,
}

/// One thing the leader does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LeaderAction {
    /// Forget the resignation made in `term`: this node leads in a later one.
    ClearResignation { term: u64 },
    /// Finish an interrupted membership change, to these voters.
    FinishMembershipChange { voters: BTreeSet<u64> },
    /// Admit `node` as a learner at `addr`: a read-only replica, or the successor of voter
    /// `replaces` (a wiped node back with a new identity at its address).
    AddLearner {
        node: u64,
        addr: NodeAddr,
        replica: bool,
        replaces: Option<u64>,
    },
    /// Say once that `node`, a voter outside the cluster, is not admitted: the cluster
    /// already has `ClusterSize` voters.
    WarnSurplusVoter { node: u64, endpoint: (String, u16) },
    /// Swap the caught-up learner `new` in for voter `old`: the membership becomes `voters`.
    ReplaceVoter {
        old: u64,
        new: u64,
        voters: BTreeSet<u64>,
    },
    /// Hand leadership to `to`, a caught-up voter of higher priority.
    TransferLeadership {
        to: u64,
        priority: i32,
        my_priority: i32,
    },
}

/// Where a member gossip reports is, as a membership entry of cluster `cluster_id` names it.
pub(super) fn addr_of(member: &NodeStatus, cluster_id: Uuid) -> NodeAddr {
    NodeAddr {
        http: format!("{}:{}", member.http_endpoint.0, member.http_endpoint.1),
        internal: format!("{}:{}", member.internal_tcp.0, member.internal_tcp.1),
        cluster_id,
    }
}

/// What the leader does this round, in order (see the module docs for the duties).
pub(super) fn plan_leadership(view: &LeaderView) -> Vec<LeaderAction> {
    let mut actions = Vec::new();
    if let Some(term) = view.resigned_in_term.filter(|&term| view.term > term) {
        actions.push(LeaderAction::ClearResignation { term });
    }
    let Some(cluster_id) = view.cluster_id else {
        return actions;
    };
    if view.joint.len() > 1 {
        if let Some(voters) = view.joint.last().cloned() {
            actions.push(LeaderAction::FinishMembershipChange { voters });
        }
        return actions;
    }
    // The voter at `internal`, the address a successor takes over.
    let voter_at = |internal: &str| {
        view.voters
            .iter()
            .copied()
            .find(|v| view.nodes.get(v).is_some_and(|n| n.internal == internal))
    };
    let caught_up = |id: u64| view.matched.get(&id).is_some_and(|&m| m >= view.last_log);

    for member in view.members {
        if !member.is_alive
            || view.nodes.contains_key(&member.node_id)
            || member.cluster_id.is_some_and(|c| c != cluster_id)
        {
            continue;
        }
        let addr = addr_of(member, cluster_id);
        if member.read_only_replica {
            actions.push(LeaderAction::AddLearner {
                node: member.node_id,
                addr,
                replica: true,
                replaces: None,
            });
            continue;
        }
        match voter_at(&addr.internal) {
            Some(old) => actions.push(LeaderAction::AddLearner {
                node: member.node_id,
                addr,
                replica: false,
                replaces: Some(old),
            }),
            None if !view.warned_surplus.contains(&member.node_id) => {
                actions.push(LeaderAction::WarnSurplusVoter {
                    node: member.node_id,
                    endpoint: member.http_endpoint.clone(),
                })
            }
            None => {}
        }
    }

    for &learner in &view.learners {
        let Some(addr) = view.nodes.get(&learner) else {
            continue;
        };
        let is_replica = view
            .members
            .iter()
            .any(|m| m.node_id == learner && m.read_only_replica);
        if is_replica {
            continue;
        }
        let Some(old) = voter_at(&addr.internal) else {
            continue;
        };
        if caught_up(learner) {
            let mut voters = view.voters.clone();
            voters.remove(&old);
            voters.insert(learner);
            actions.push(LeaderAction::ReplaceVoter {
                old,
                new: learner,
                voters,
            });
            return actions;
        }
    }

    if view
        .since_last_transfer
        .is_some_and(|since| since < PRIORITY_TRANSFER_PAUSE)
    {
        return actions;
    }
    let best = view
        .members
        .iter()
        .filter(|m| {
            m.is_alive
                && !m.resigned
                && m.node_id != view.me
                && view.voters.contains(&m.node_id)
                && m.node_priority > view.my_priority
                && caught_up(m.node_id)
        })
        .max_by_key(|m| (m.node_priority, m.node_id));
    if let Some(best) = best {
        actions.push(LeaderAction::TransferLeadership {
            to: best.node_id,
            priority: best.node_priority,
            my_priority: view.my_priority,
        });
    }
    actions
}

#[cfg(test)]
mod tests;
