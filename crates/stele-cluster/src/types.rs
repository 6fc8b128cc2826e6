//! The openraft type configuration: Stele's commands are the log payload, and the results of
//! applying them are the responses. These types stay inside this crate (docs/design.md decision 1).

use serde::{Deserialize, Serialize};
use stele_core::{Command, CommandResult};

/// What a member of the cluster is: where clients and peers reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddr {
    /// `host:port` of the HTTP/gRPC client port.
    pub http: String,
    /// `host:port` of the internal replication port.
    pub internal: String,
    /// The cluster the node was admitted to (docs/design.md decision 8): stored with every
    /// membership entry, so the cluster id lives in the log.
    pub cluster_id: uuid::Uuid,
}

impl std::fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http={} internal={}", self.http, self.internal)
    }
}

openraft::declare_raft_types!(
    /// Stele's raft types.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = u64,
        Node = NodeAddr,
        AsyncRuntime = crate::rt::SteleRuntime,
);

pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
pub type Membership = openraft::Membership<u64, NodeAddr>;
pub type Raft = openraft::Raft<TypeConfig, crate::state_machine::StateMachine>;
