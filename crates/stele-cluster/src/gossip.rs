//! Gossip: how nodes find each other and what they report (docs/design.md decision 8: gossip only
//! discovers; who votes lives in the log).
//!
//! Every `GossipIntervalMs` a node posts a [`GossipMessage`] (its own status and every member
//! it knows) to `POST /gossip` of each seed (`GossipSeed`, or the addresses `ClusterDns`
//! resolves to) and of each member it knows, and merges the answer. A member heard from
//! directly is alive; one not heard from for a few rounds is dead (and reported with
//! `isAlive: false`). A message whose clock differs from ours by more than
//! `GossipAllowedDifferenceMs` is refused, with a log line naming the sender, both ways.
//! Members of another cluster are ignored, with a log line.
//!
//! Once this node belongs to a cluster, no member of another cluster stays in its table,
//! whichever way it came in (a message's sender, the members a message or a gossip answer
//! lists, or an entry merged before this node's cluster was known), and a sender refused for
//! its cluster is forgotten. A member that belongs to no cluster (a fresh node waiting to be
//! admitted) is listed but never as a leader. Without this a fresh single node that gossiped
//! with another cluster listed that cluster's leader beside itself (issue 11 item 3).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

// tokio's clock: the real one in production, the simulated one under simulation.
use tokio::time::Instant;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::node::NodeStatus;
use crate::VNodeState;

/// Where to look for the other nodes, and how often.
#[derive(Debug, Clone)]
pub struct GossipConfig {
    /// `host:port` HTTP endpoints of nodes to gossip with first.
    pub seeds: Vec<(String, u16)>,
    /// A DNS name whose addresses are the nodes (`ClusterDns` with `DiscoverViaDns`), and the
    /// HTTP port to gossip with on each (`ClusterGossipPort`).
    pub dns: Option<(String, u16)>,
    pub interval: Duration,
    pub timeout: Duration,
    pub allowed_difference: Duration,
    /// A dead member is forgotten after this long (`DeadMemberRemovalPeriodSec`).
    pub dead_member_removal: Duration,
}

impl Default for GossipConfig {
    fn default() -> Self {
        GossipConfig {
            seeds: Vec::new(),
            dns: None,
            interval: Duration::from_millis(2000),
            timeout: Duration::from_millis(2500),
            allowed_difference: Duration::from_millis(60_000),
            dead_member_removal: Duration::from_secs(1800),
        }
    }
}

/// What nodes exchange on `POST /gossip`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GossipMessage {
    pub sender: NodeStatus,
    pub members: Vec<NodeStatus>,
    /// The sender's clock, milliseconds since the Unix epoch.
    pub sent_at_unix_ms: u64,
}

/// Why a gossip message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GossipRefused {
    #[error("gossip from {from} refused: its clock differs from ours by {difference_ms} ms, more than GossipAllowedDifferenceMs ({allowed_ms} ms)")]
    ClockDifference {
        from: String,
        difference_ms: u64,
        allowed_ms: u64,
    },
    #[error(
        "gossip from {from} refused: it belongs to cluster {theirs}, this node to cluster {ours}"
    )]
    OtherCluster {
        from: String,
        theirs: Uuid,
        ours: Uuid,
    },
}

pub fn unix_ms_now() -> u64 {
    crate::determinism::unix_now().as_millis() as u64
}

struct Known {
    status: NodeStatus,
    /// When this node last heard from the member itself (not through another node).
    heard_directly: Option<Instant>,
    /// When the entry last changed by any route.
    updated: Instant,
    /// The last gossip sent to the member failed, and nothing was heard from it since.
    unreachable: bool,
}

/// The members this node knows of, other than itself.
pub struct MemberTable {
    config: GossipConfig,
    me: Uuid,
    known: Mutex<HashMap<Uuid, Known>>,
    /// This node's cluster, once it belongs to one.
    cluster: Mutex<Option<Uuid>>,
}

impl MemberTable {
    pub fn new(config: GossipConfig, me: Uuid) -> MemberTable {
        MemberTable {
            config,
            me,
            known: Mutex::new(HashMap::new()),
            cluster: Mutex::new(None),
        }
    }

    /// Tells the table this node's cluster: members of any other cluster are dropped now and
    /// kept out from then on.
    pub fn set_cluster(&self, ours: Option<Uuid>) {
        *self.cluster.lock().expect("member cluster lock") = ours;
        if let Some(ours) = ours {
            let mut known = self.known.lock().expect("member table lock");
            known.retain(|_, entry| entry.status.cluster_id.is_none_or(|c| c == ours));
        }
    }

    pub fn config(&self) -> &GossipConfig {
        &self.config
    }

    /// How long a member may stay silent before it is reported dead.
    fn dead_after(&self) -> Duration {
        (self.config.interval * 3).max(self.config.interval + self.config.timeout * 2)
    }

    /// Checks a message's clock and cluster; `ours` is this node's cluster, if formed.
    pub fn check(&self, message: &GossipMessage, ours: Option<Uuid>) -> Result<(), GossipRefused> {
        let from = format!(
            "{}:{}",
            message.sender.gossip_endpoint.0, message.sender.gossip_endpoint.1
        );
        let now = unix_ms_now();
        let difference_ms = now.abs_diff(message.sent_at_unix_ms);
        let allowed_ms = self.config.allowed_difference.as_millis() as u64;
        if difference_ms > allowed_ms {
            return Err(GossipRefused::ClockDifference {
                from,
                difference_ms,
                allowed_ms,
            });
        }
        if let (Some(theirs), Some(ours)) = (message.sender.cluster_id, ours) {
            if theirs != ours {
                // Whatever was merged of it before (while it named no cluster, say) goes too.
                self.known
                    .lock()
                    .expect("member table lock")
                    .remove(&message.sender.instance_id);
                return Err(GossipRefused::OtherCluster { from, theirs, ours });
            }
        }
        Ok(())
    }

    /// Merges a message: its sender is heard directly, the members it lists are not.
    pub fn merge(&self, message: &GossipMessage, ours: Option<Uuid>) {
        self.set_cluster(ours);
        if let (Some(theirs), Some(ours)) = (message.sender.cluster_id, ours) {
            if theirs != ours {
                return;
            }
        }
        let now = Instant::now();
        let mut known = self.known.lock().expect("member table lock");
        let sender = &message.sender;
        if sender.instance_id != self.me {
            known.insert(
                sender.instance_id,
                Known {
                    status: sender.clone(),
                    heard_directly: Some(now),
                    updated: now,
                    unreachable: false,
                },
            );
        }
        for member in &message.members {
            if member.instance_id == self.me || member.instance_id == sender.instance_id {
                continue;
            }
            if let (Some(theirs), Some(ours)) = (member.cluster_id, ours) {
                if theirs != ours {
                    continue;
                }
            }
            match known.get_mut(&member.instance_id) {
                // Direct news beats relayed news; among relayed news the newer wins.
                Some(entry) => {
                    let direct_recently = entry
                        .heard_directly
                        .is_some_and(|t| now.duration_since(t) < self.dead_after());
                    if !direct_recently && member.time_stamp > entry.status.time_stamp {
                        entry.status = member.clone();
                        entry.updated = now;
                    }
                }
                None => {
                    if member.is_alive {
                        known.insert(
                            member.instance_id,
                            Known {
                                status: member.clone(),
                                heard_directly: None,
                                updated: now,
                                unreachable: false,
                            },
                        );
                    }
                }
            }
        }
    }

    /// Every other member with its liveness as this node sees it; forgets long-dead ones.
    pub fn members(&self) -> Vec<NodeStatus> {
        let now = Instant::now();
        let dead_after = self.dead_after();
        let ours = *self.cluster.lock().expect("member cluster lock");
        let mut known = self.known.lock().expect("member table lock");
        known.retain(|_, entry| {
            now.duration_since(entry.heard_directly.unwrap_or(entry.updated))
                < self.config.dead_member_removal
        });
        let mut members: Vec<NodeStatus> = known
            .values()
            .filter(|entry| match (entry.status.cluster_id, ours) {
                (Some(theirs), Some(ours)) => theirs == ours,
                _ => true,
            })
            .map(|entry| {
                let mut status = entry.status.clone();
                // A node in no cluster leads nothing a client could use.
                if status.cluster_id.is_none()
                    && matches!(status.state, VNodeState::Leader | VNodeState::PreLeader)
                {
                    status.state = VNodeState::Unknown;
                }
                status.is_alive = !entry.unreachable
                    && match entry.heard_directly {
                        Some(t) => now.duration_since(t) < dead_after,
                        None => now.duration_since(entry.updated) < dead_after && status.is_alive,
                    };
                status
            })
            .collect();
        members.sort_by_key(|m| (m.http_endpoint.clone(), m.instance_id));
        members
    }

    /// Whether raft node `node_id` is a member of cluster `ours` that this node heard from
    /// directly and recently (the internal port's guard takes it as a member).
    pub fn vouches_for(&self, node_id: u64, ours: Uuid) -> bool {
        let now = Instant::now();
        let dead_after = self.dead_after();
        let known = self.known.lock().expect("member table lock");
        known.values().any(|entry| {
            entry.status.node_id == node_id
                && entry.status.cluster_id == Some(ours)
                && entry
                    .heard_directly
                    .is_some_and(|t| now.duration_since(t) < dead_after)
        })
    }

    /// Notes that gossip to `endpoint` failed: the member there is dead until heard from.
    pub fn mark_unreachable(&self, endpoint: &(String, u16)) {
        let mut known = self.known.lock().expect("member table lock");
        for entry in known.values_mut() {
            if entry.status.gossip_endpoint == *endpoint {
                entry.unreachable = true;
            }
        }
    }

    /// The HTTP endpoints to gossip with this round (seeds and known members), without
    /// duplicates.
    pub async fn targets(&self) -> Vec<(String, u16)> {
        let mut targets: Vec<(String, u16)> = self.config.seeds.clone();
        if let Some((name, port)) = &self.config.dns {
            match tokio::net::lookup_host((name.as_str(), *port)).await {
                Ok(addrs) => targets.extend(addrs.map(|a| (a.ip().to_string(), a.port()))),
                Err(e) => tracing::warn!(dns = %name, error = %e, "ClusterDns does not resolve"),
            }
        }
        for member in self.members() {
            targets.push(member.gossip_endpoint.clone());
        }
        let mut seen = std::collections::HashSet::new();
        targets.retain(|t| seen.insert(t.clone()));
        targets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(port: u16, cluster: Option<Uuid>) -> NodeStatus {
        NodeStatus {
            node_id: port as u64,
            instance_id: Uuid::new_v4(),
            cluster_id: cluster,
            state: VNodeState::Follower,
            is_alive: true,
            time_stamp: 1,
            http_endpoint: ("127.0.0.1".into(), port),
            gossip_endpoint: ("127.0.0.1".into(), port),
            internal_tcp: ("127.0.0.1".into(), port + 1000),
            last_commit_position: 0,
            writer_checkpoint: 0,
            chaser_checkpoint: 0,
            last_log_index: 0,
            log_sync_count: 0,
            epoch_number: 1,
            node_priority: 0,
            read_only_replica: false,
            resigned: false,
            ready: true,
        }
    }

    fn config() -> GossipConfig {
        GossipConfig {
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(100),
            ..GossipConfig::default()
        }
    }

    #[test]
    fn clock_difference_beyond_the_allowance_is_refused() {
        let table = MemberTable::new(config(), Uuid::new_v4());
        let mut message = GossipMessage {
            sender: status(2113, None),
            members: vec![],
            sent_at_unix_ms: unix_ms_now(),
        };
        assert!(table.check(&message, None).is_ok());
        message.sent_at_unix_ms -= 61_000;
        let err = table.check(&message, None).unwrap_err();
        assert!(
            err.to_string().contains("GossipAllowedDifferenceMs"),
            "{err}"
        );
    }

    #[test]
    fn other_clusters_are_refused_and_not_merged() {
        let ours = Uuid::new_v4();
        let table = MemberTable::new(config(), Uuid::new_v4());
        let stranger = status(2113, Some(Uuid::new_v4()));
        let friend = status(2114, Some(ours));
        let message = GossipMessage {
            sender: friend.clone(),
            members: vec![stranger.clone()],
            sent_at_unix_ms: unix_ms_now(),
        };
        assert!(table.check(&message, Some(ours)).is_ok());
        table.merge(&message, Some(ours));
        let members = table.members();
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].instance_id, friend.instance_id);
        let from_stranger = GossipMessage {
            sender: stranger,
            members: vec![],
            sent_at_unix_ms: unix_ms_now(),
        };
        assert!(matches!(
            table.check(&from_stranger, Some(ours)),
            Err(GossipRefused::OtherCluster { .. })
        ));
    }

    fn message(sender: &NodeStatus, members: &[NodeStatus]) -> GossipMessage {
        GossipMessage {
            sender: sender.clone(),
            members: members.to_vec(),
            sent_at_unix_ms: unix_ms_now(),
        }
    }

    #[test]
    fn members_merged_before_the_cluster_was_known_go_once_it_is() {
        // A fresh single node merged another cluster's gossip answer before its own cluster
        // id was known, then listed that cluster's leader beside itself: two leaders in
        // /gossip, and clients failed with "Expected one leader, discovered 2" (issue 11
        // item 3).
        let (theirs, ours) = (Uuid::new_v4(), Uuid::new_v4());
        let table = MemberTable::new(config(), Uuid::new_v4());
        let mut leader = status(2113, Some(theirs));
        leader.state = VNodeState::Leader;
        let follower = status(2114, Some(theirs));
        table.merge(&message(&follower, &[leader.clone()]), None);
        assert_eq!(table.members().len(), 2);
        table.set_cluster(Some(ours));
        assert!(table.members().is_empty(), "{:?}", table.members());
        // And they stay out, whichever way they come.
        table.merge(&message(&follower, &[leader.clone()]), Some(ours));
        assert!(table.members().is_empty());
        let mut friend = status(2115, Some(ours));
        friend.state = VNodeState::Follower;
        table.merge(&message(&friend, &[leader]), Some(ours));
        let members = table.members();
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].instance_id, friend.instance_id);
    }

    #[test]
    fn a_sender_refused_for_its_cluster_is_forgotten() {
        let ours = Uuid::new_v4();
        let table = MemberTable::new(config(), Uuid::new_v4());
        // First heard while it named no cluster (before it formed its own).
        let mut stranger = status(2113, None);
        table.merge(&message(&stranger, &[]), Some(ours));
        assert_eq!(table.members().len(), 1);
        stranger.cluster_id = Some(Uuid::new_v4());
        assert!(table.check(&message(&stranger, &[]), Some(ours)).is_err());
        assert!(table.members().is_empty());
    }

    #[test]
    fn gossip_vouches_only_for_members_of_our_cluster_heard_directly() {
        let ours = Uuid::new_v4();
        let table = MemberTable::new(config(), Uuid::new_v4());
        let member = status(2113, Some(ours));
        let relayed = status(2114, Some(ours));
        table.merge(
            &message(&member, std::slice::from_ref(&relayed)),
            Some(ours),
        );
        assert!(table.vouches_for(member.node_id, ours));
        assert!(!table.vouches_for(relayed.node_id, ours));
        assert!(!table.vouches_for(member.node_id, Uuid::new_v4()));
    }

    #[test]
    fn a_member_in_no_cluster_is_never_listed_as_leader() {
        let table = MemberTable::new(config(), Uuid::new_v4());
        let mut fresh = status(2113, None);
        fresh.state = VNodeState::Leader;
        table.merge(&message(&fresh, &[]), None);
        assert_eq!(table.members()[0].state, VNodeState::Unknown);
    }

    #[tokio::test]
    async fn dns_names_become_gossip_targets_with_the_cluster_gossip_port() {
        let config = GossipConfig {
            seeds: vec![("10.0.0.9".into(), 2113)],
            dns: Some(("localhost".into(), 2999)),
            ..config()
        };
        let table = MemberTable::new(config, Uuid::new_v4());
        let targets = table.targets().await;
        assert!(targets.contains(&("10.0.0.9".into(), 2113)), "{targets:?}");
        assert!(
            targets
                .iter()
                .any(|(host, port)| *port == 2999 && (host == "127.0.0.1" || host == "::1")),
            "{targets:?}"
        );
    }

    #[test]
    fn unreachable_members_are_dead_until_heard_from() {
        let table = MemberTable::new(config(), Uuid::new_v4());
        let sender = status(2113, None);
        let message = GossipMessage {
            sender: sender.clone(),
            members: vec![],
            sent_at_unix_ms: unix_ms_now(),
        };
        table.merge(&message, None);
        table.mark_unreachable(&sender.gossip_endpoint);
        assert!(!table.members()[0].is_alive);
        table.merge(&message, None);
        assert!(table.members()[0].is_alive);
    }

    #[test]
    fn silent_members_turn_dead() {
        let table = MemberTable::new(config(), Uuid::new_v4());
        let message = GossipMessage {
            sender: status(2113, None),
            members: vec![],
            sent_at_unix_ms: unix_ms_now(),
        };
        table.merge(&message, None);
        assert!(table.members()[0].is_alive);
        std::thread::sleep(table.dead_after() + Duration::from_millis(20));
        assert!(!table.members()[0].is_alive);
    }
}
