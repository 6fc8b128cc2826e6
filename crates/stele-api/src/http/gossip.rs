//! `GET /gossip`: the cluster as EventStoreDB's HTTP gossip shows it to clients and operators
//! (`ClientClusterInfo` in EventStoreDB). The Rust client's `read_gossip()` reads it.
//!
//! The members come from the cluster layer's gossip ([`Node::members`]): this node first,
//! then every member it knows, dead ones with `isAlive: false`.
//!
//! `POST /gossip` is how nodes exchange what they know (`stele_cluster::gossip`): the body is
//! a [`GossipMessage`], the answer this node's; a refused message (clock too far off, another
//! cluster) gets 409 with the reason.

use std::time::SystemTime;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use stele_cluster::{GossipMessage, Node, NodeStatus};
use uuid::Uuid;

use super::errors;
use super::timestamp::iso8601;
use super::{SharedNode, SERVER_VERSION};

/// One member as gossip knows it: its status and when that status was observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GossipMember {
    pub status: NodeStatus,
    pub time_stamp: SystemTime,
}

/// The members `/gossip` lists.
pub(super) fn members(node: &Node) -> Vec<GossipMember> {
    node.members()
        .into_iter()
        .map(|status| GossipMember {
            time_stamp: ticks_to_time(status.time_stamp),
            status,
        })
        .collect()
}

fn ticks_to_time(ticks: i64) -> SystemTime {
    let ticks = ticks.max(0) as u64;
    let per_second = stele_core::TICKS_PER_SECOND as u64;
    SystemTime::UNIX_EPOCH
        + std::time::Duration::new(ticks / per_second, ((ticks % per_second) * 100) as u32)
}

pub(super) async fn post_gossip(
    State(node): State<SharedNode>,
    Json(message): Json<GossipMessage>,
) -> Response {
    match node.receive_gossip(&message) {
        Ok(reply) => Json(reply).into_response(),
        Err(refused) => errors::gossip_refused(&refused),
    }
}

pub(super) async fn get_gossip(State(node): State<SharedNode>) -> Json<ClusterInfo> {
    let server = node.status().http_endpoint;
    Json(ClusterInfo::new(&node.gossip_members(), &server))
}

/// The `/gossip` document.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfo {
    pub members: Vec<MemberInfo>,
    /// The node that answers.
    pub server_ip: String,
    pub server_port: u16,
}

impl ClusterInfo {
    /// The document for `members`, as answered by the node at `server` (host, port).
    pub fn new(members: &[GossipMember], server: &(String, u16)) -> ClusterInfo {
        ClusterInfo {
            members: members.iter().map(MemberInfo::new).collect(),
            server_ip: server.0.clone(),
            server_port: server.1,
        }
    }
}

/// One member in `/gossip`. Stele has no external TCP interface and no TLS yet, so those
/// ports are 0, as EventStoreDB reports an interface it does not have; it has no epochs
/// apart from the term, so `epochPosition` is -1 and `epochId` the nil id, EventStoreDB's
/// values for "no epoch".
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberInfo {
    pub instance_id: Uuid,
    pub time_stamp: String,
    pub state: &'static str,
    pub is_alive: bool,
    pub internal_tcp_ip: String,
    pub internal_tcp_port: u16,
    pub internal_secure_tcp_port: u16,
    pub external_tcp_ip: String,
    pub external_tcp_port: u16,
    pub external_secure_tcp_port: u16,
    pub internal_http_end_point_ip: String,
    pub internal_http_end_point_port: u16,
    pub http_end_point_ip: String,
    pub http_end_point_port: u16,
    pub last_commit_position: u64,
    pub writer_checkpoint: u64,
    pub chaser_checkpoint: u64,
    pub epoch_position: i64,
    pub epoch_number: u64,
    pub epoch_id: Uuid,
    pub node_priority: i32,
    pub is_read_only_replica: bool,
    pub es_version: &'static str,
}

impl MemberInfo {
    pub fn new(member: &GossipMember) -> MemberInfo {
        let status = &member.status;
        // `http_endpoint` is what clients are told to dial (after the Advertise*ToClient*
        // options); the "internal" HTTP endpoint is the one other nodes gossip with.
        let (http_host, http_port) = status.http_endpoint.clone();
        let (gossip_host, gossip_port) = status.gossip_endpoint.clone();
        let (internal_host, internal_port) = status.internal_tcp.clone();
        MemberInfo {
            instance_id: status.instance_id,
            time_stamp: iso8601(member.time_stamp),
            state: status.state.name(),
            is_alive: status.is_alive,
            internal_tcp_ip: internal_host,
            internal_tcp_port: internal_port,
            internal_secure_tcp_port: 0,
            external_tcp_ip: http_host.clone(),
            external_tcp_port: 0,
            external_secure_tcp_port: 0,
            internal_http_end_point_ip: gossip_host,
            internal_http_end_point_port: gossip_port,
            http_end_point_ip: http_host,
            http_end_point_port: http_port,
            last_commit_position: status.last_commit_position,
            writer_checkpoint: status.writer_checkpoint,
            chaser_checkpoint: status.chaser_checkpoint,
            epoch_position: -1,
            epoch_number: status.epoch_number,
            epoch_id: Uuid::nil(),
            node_priority: status.node_priority,
            is_read_only_replica: status.read_only_replica,
            es_version: SERVER_VERSION,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_node::{status, time_stamp};
    use super::*;

    #[test]
    fn gossip_json_has_eventstoredbs_shape() {
        let member = GossipMember {
            status: status(),
            time_stamp: time_stamp(),
        };
        let info = ClusterInfo::new(&[member], &("127.0.0.1".into(), 2113));
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(
            json,
            json!({
                "members": [{
                    "instanceId": "01234567-89ab-cdef-0123-456789abcdef",
                    "timeStamp": "2024-01-02T03:04:05.678Z",
                    "state": "Leader",
                    "isAlive": true,
                    "internalTcpIp": "127.0.0.1",
                    "internalTcpPort": 1112,
                    "internalSecureTcpPort": 0,
                    "externalTcpIp": "127.0.0.1",
                    "externalTcpPort": 0,
                    "externalSecureTcpPort": 0,
                    "internalHttpEndPointIp": "127.0.0.1",
                    "internalHttpEndPointPort": 2113,
                    "httpEndPointIp": "127.0.0.1",
                    "httpEndPointPort": 2113,
                    "lastCommitPosition": 4096,
                    "writerCheckpoint": 5000,
                    "chaserCheckpoint": 4500,
                    "epochPosition": -1,
                    "epochNumber": 3,
                    "epochId": "00000000-0000-0000-0000-000000000000",
                    "nodePriority": 0,
                    "isReadOnlyReplica": false,
                    "esVersion": SERVER_VERSION,
                }],
                "serverIp": "127.0.0.1",
                "serverPort": 2113,
            })
        );
    }

    #[test]
    fn several_members_are_listed_in_order() {
        let mut follower = status();
        follower.state = stele_cluster::VNodeState::Follower;
        follower.http_endpoint = ("127.0.0.2".into(), 2113);
        let members = [status(), follower].map(|status| GossipMember {
            status,
            time_stamp: time_stamp(),
        });
        let info = ClusterInfo::new(&members, &("127.0.0.1".into(), 2113));
        let states: Vec<&str> = info.members.iter().map(|m| m.state).collect();
        assert_eq!(states, ["Leader", "Follower"]);
        assert_eq!(info.members[1].http_end_point_ip, "127.0.0.2");
    }
}
