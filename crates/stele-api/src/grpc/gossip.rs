//! `Gossip.Read` (PROTOCOL.md §8.1): the cluster as clients discover it: every member the
//! node knows ([`Node::members`]), itself first.
//!
//! Clients dial `http_end_point` for everything afterwards, so it is the client-advertised
//! address; the Rust client rejects the whole answer if a member lacks it or has an unknown
//! state. Gossip is anonymous.

use stele_cluster::{Node, NodeStatus, VNodeState};
use stele_proto::gossip::gossip_server::Gossip;
use stele_proto::gossip::{ClusterInfo, EndPoint, MemberInfo};
use stele_proto::shared::Empty;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use stele_core::access::Operation;
use stele_services::access::AccessControl;

use super::caller::Caller;
use super::wire_uuid;

#[derive(Clone)]
pub struct GossipService {
    node: Node,
    access: AccessControl,
}

impl GossipService {
    pub fn new(node: Node, access: AccessControl) -> Self {
        GossipService { node, access }
    }
}

/// This node as a gossip member; `time_stamp` is when it was observed.
pub fn member_info(status: &NodeStatus, time_stamp: i64) -> MemberInfo {
    member(
        status.instance_id,
        status.state,
        status.is_alive,
        &status.http_endpoint,
        time_stamp,
    )
}

fn member(
    instance_id: Uuid,
    state: VNodeState,
    is_alive: bool,
    (address, port): &(String, u16),
    time_stamp: i64,
) -> MemberInfo {
    // `VNodeState`'s discriminants are the wire numbers (checked in the tests below).
    MemberInfo {
        instance_id: Some(wire_uuid::to_structured(instance_id)),
        time_stamp,
        state: state as i32,
        is_alive,
        http_end_point: Some(EndPoint {
            address: address.clone(),
            port: u32::from(*port),
        }),
    }
}

#[tonic::async_trait]
impl Gossip for GossipService {
    async fn read(&self, request: Request<Empty>) -> Result<Response<ClusterInfo>, Status> {
        Caller::of(&self.access, &request).may(Operation::GossipRead)?;
        let members = self
            .node
            .members()
            .iter()
            .map(|status| member_info(status, status.time_stamp))
            .collect();
        Ok(Response::new(ClusterInfo { members }))
    }
}

#[cfg(test)]
mod tests {
    use stele_proto::gossip::member_info::VNodeState as WireState;

    use super::*;

    #[test]
    fn member_from_status_fields() {
        let id = Uuid::new_v4();
        let endpoint = ("db.example".to_owned(), 2113);
        let m = member(id, VNodeState::Leader, true, &endpoint, 42);
        assert_eq!(m.instance_id, Some(wire_uuid::to_structured(id)));
        assert_eq!(m.time_stamp, 42);
        assert_eq!(m.state(), WireState::Leader);
        assert_eq!(m.state, 8);
        assert!(m.is_alive);
        assert_eq!(
            m.http_end_point,
            Some(EndPoint {
                address: "db.example".into(),
                port: 2113
            })
        );
        assert_eq!(
            member(id, VNodeState::Follower, true, &endpoint, 0).state,
            6
        );
        assert_eq!(
            member(id, VNodeState::ReadOnlyReplica, false, &endpoint, 0).state,
            14
        );
    }

    #[test]
    fn every_node_state_has_its_wire_number() {
        for (state, wire) in [
            (VNodeState::Initializing, WireState::Initializing),
            (VNodeState::DiscoverLeader, WireState::DiscoverLeader),
            (VNodeState::Unknown, WireState::Unknown),
            (VNodeState::PreReplica, WireState::PreReplica),
            (VNodeState::CatchingUp, WireState::CatchingUp),
            (VNodeState::Clone, WireState::Clone),
            (VNodeState::Follower, WireState::Follower),
            (VNodeState::PreLeader, WireState::PreLeader),
            (VNodeState::Leader, WireState::Leader),
            (VNodeState::Manager, WireState::Manager),
            (VNodeState::ShuttingDown, WireState::ShuttingDown),
            (VNodeState::Shutdown, WireState::Shutdown),
            (
                VNodeState::ReadOnlyLeaderless,
                WireState::ReadOnlyLeaderless,
            ),
            (
                VNodeState::PreReadOnlyReplica,
                WireState::PreReadOnlyReplica,
            ),
            (VNodeState::ReadOnlyReplica, WireState::ReadOnlyReplica),
            (VNodeState::ResigningLeader, WireState::ResigningLeader),
        ] {
            assert_eq!(state as i32, wire as i32, "{state:?}");
        }
    }

    #[test]
    fn ticks_are_dotnet_units_since_the_epoch() {
        let ticks = stele_cluster::now_ticks();
        // 2020-01-01 in ticks since the Unix epoch is 1577836800 s × 10^7.
        assert!(ticks > 1_577_836_800 * stele_core::TICKS_PER_SECOND);
    }
}
