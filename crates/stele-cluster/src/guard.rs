//! What the internal port lets through to the consensus engine (issue 11, item 5).
//!
//! Every raft request names the node it comes from (a candidate's or a leader's vote). Once
//! this node belongs to a cluster (its membership is not empty), a vote, pre-vote, append
//! entries or leadership transfer is handed to openraft only when
//!
//! - its sender is the node the connection's handshake named, not this node itself (no node
//!   sends raft requests to itself over the network), and a member (voter or learner) of this
//!   node's membership: a process that merely reaches the port cannot vote, disrupt a live
//!   leader with elections or inject entries;
//! - its term is at most [`MAX_TERM_AHEAD`] above this node's: openraft computes `term + 1`
//!   for elections, and a term driven near `u64::MAX` made it panic and persisted a term no
//!   election could follow. (openraft 0.10.0-alpha.37, `Engine::elect`: at term `u64::MAX`
//!   the next term wraps to 0, the local vote update is refused, and the "safe" `unwrap()` on
//!   it panics.) No term above [`MAX_TERM`] passes at all.
//!
//! Anything else is answered with a refusal that names no node id. A node that has not joined a
//! cluster yet takes requests from anyone (that is how it is formed or admitted), within the
//! same term bound. The membership this node's log holds may be older than the cluster's (it
//! was down or cut off while a wiped voter was replaced): a sender that gossip vouches for — a
//! member of this node's cluster heard from directly — passes too (`controller/mod.rs`), or this
//! node could never catch up with a leader admitted meanwhile, nor vote for it. (Found by the
//! deterministic simulation: a read-only replica stuck for good at seed 1003.)

use std::collections::BTreeSet;

use crate::transport::Request;
use crate::types::Vote;

/// How far above this node's term a request's term may be. Legitimate terms grow by one per
/// election; a million elections ahead is no peer of this cluster, and the bound keeps every
/// term at least `u64::MAX - MAX_TERM_AHEAD * k` away from overflow for any `k` accepted
/// requests in a row.
pub const MAX_TERM_AHEAD: u64 = 1_000_000;

/// No request may carry a term above this, whatever this node's term: far from `u64::MAX`,
/// and beyond any term a cluster reaches by elections.
pub const MAX_TERM: u64 = u64::MAX / 2;

/// The refusal sent back on the wire: it names no node, cluster or term.
pub const REFUSED: &str = "refused";

/// What the guard needs to know of this node.
#[derive(Debug, Clone)]
pub struct View {
    /// This node's id.
    pub me: u64,
    /// Every voter and learner of this node's membership; empty before the cluster is formed.
    pub members: BTreeSet<u64>,
    /// This node's current term.
    pub term: u64,
}

/// Why a request was refused (for this node's debug log only).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("request from node {claimed:016x} on a connection from node {connection:016x}")]
    NotTheSender { claimed: u64, connection: u64 },
    #[error("request from node {0:016x}, not a member")]
    NotAMember(u64),
    #[error("request in the name of this node itself")]
    FromMyself,
    #[error("request term {theirs} is more than {MAX_TERM_AHEAD} above this node's term {ours}, or above {MAX_TERM}")]
    TermTooFar { theirs: u64, ours: u64 },
}

/// The node and term a raft request claims; `None` for requests the guard does not judge
/// (forwarded writes: the leader validates those as client requests).
pub fn claim(request: &Request) -> Option<&Vote> {
    match request {
        Request::AppendEntries(rpc) => Some(&rpc.vote),
        Request::Vote(rpc) | Request::PreVote(rpc) => Some(&rpc.vote),
        Request::TransferLeader(rpc) => Some(rpc.from_leader()),
        Request::Forward(_) | Request::StreamAppend => None,
    }
}

/// Whether a vote from the node the handshake named `from` may reach openraft.
pub fn check_vote(vote: &Vote, from: u64, view: &View) -> Result<(), Refusal> {
    let leader = vote.leader_id();
    let (claimed, term) = (leader.node_id, leader.term);
    if claimed != from {
        return Err(Refusal::NotTheSender {
            claimed,
            connection: from,
        });
    }
    if claimed == view.me {
        return Err(Refusal::FromMyself);
    }
    if term > view.term.saturating_add(MAX_TERM_AHEAD).min(MAX_TERM) {
        return Err(Refusal::TermTooFar {
            theirs: term,
            ours: view.term,
        });
    }
    // Last, so that a caller may overrule only this refusal (`controller/mod.rs`: a member of this
    // cluster that gossip vouches for, which this node's log does not know yet).
    if !view.members.is_empty() && !view.members.contains(&claimed) {
        return Err(Refusal::NotAMember(claimed));
    }
    Ok(())
}

/// Whether `request`, on a connection whose handshake named `from`, may reach openraft (by
/// the rules alone: `controller/mod.rs` adds gossip's word on membership).
#[cfg(test)]
fn check(request: &Request, from: u64, view: &View) -> Result<(), Refusal> {
    match claim(request) {
        Some(vote) => check_vote(vote, from, view),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use openraft::raft::VoteRequest;

    use super::*;

    fn vote(term: u64, node: u64) -> Request {
        Request::Vote(VoteRequest::new(Vote::new(term, node), None))
    }

    fn view(members: &[u64], term: u64) -> View {
        View {
            me: 1,
            members: members.iter().copied().collect(),
            term,
        }
    }

    #[test]
    fn non_members_are_refused_once_the_cluster_is_formed() {
        // A vote from a process that is not in the membership reached openraft and could
        // depose a live leader (issue 11 item 5): it is now refused before openraft sees it.
        assert_eq!(
            check(&vote(3, 9), 9, &view(&[1, 2, 3], 3)),
            Err(Refusal::NotAMember(9))
        );
        assert_eq!(check(&vote(3, 2), 2, &view(&[1, 2, 3], 3)), Ok(()));
        // Before the cluster is formed, anyone may take part (formation and admission).
        assert_eq!(check(&vote(1, 9), 9, &view(&[], 0)), Ok(()));
    }

    #[test]
    fn a_request_in_this_nodes_own_name_is_refused() {
        assert_eq!(
            check(&vote(3, 1), 1, &view(&[1, 2, 3], 3)),
            Err(Refusal::FromMyself)
        );
    }

    #[test]
    fn a_request_must_come_from_the_node_the_handshake_named() {
        assert_eq!(
            check(&vote(3, 2), 9, &view(&[1, 2, 3], 3)),
            Err(Refusal::NotTheSender {
                claimed: 2,
                connection: 9
            })
        );
    }

    #[test]
    fn terms_far_ahead_are_refused_so_no_term_nears_overflow() {
        // A vote with term u64::MAX - 1 made openraft panic and persisted that term, after
        // which no election could succeed (issue 11 item 5).
        let members = [1, 2, 3];
        assert!(matches!(
            check(&vote(u64::MAX - 1, 2), 2, &view(&members, 5)),
            Err(Refusal::TermTooFar { .. })
        ));
        assert!(matches!(
            check(&vote(u64::MAX - 1, 9), 9, &view(&[], 0)),
            Err(Refusal::TermTooFar { .. })
        ));
        assert_eq!(
            check(&vote(5 + MAX_TERM_AHEAD, 2), 2, &view(&members, 5)),
            Ok(())
        );
        assert!(check(&vote(6 + MAX_TERM_AHEAD, 2), 2, &view(&members, 5)).is_err());
        // However high our own term, nothing above MAX_TERM passes (and nothing overflows).
        assert!(check(&vote(u64::MAX, 2), 2, &view(&members, u64::MAX - 3)).is_err());
        assert_eq!(
            check(&vote(MAX_TERM, 2), 2, &view(&members, MAX_TERM)),
            Ok(())
        );
    }

    #[test]
    fn forwarded_writes_are_not_judged_here() {
        let command = stele_core::Command::Delete {
            stream: stele_core::StreamName::new("s").unwrap(),
            expected: stele_core::ExpectedRevision::Any,
            kind: stele_core::DeleteKind::Soft,
            created_ticks: 0,
        };
        assert_eq!(check(&Request::Forward(command), 9, &view(&[1], 1)), Ok(()));
    }
}
