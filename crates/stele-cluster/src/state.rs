//! Node states with EventStoreDB's `VNodeState` names and numbers, so that clients and
//! operator tools understand them (docs/design.md, "Node states").

/// Reaches the wire: the discriminants are EventStoreDB's and never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(i32)]
pub enum VNodeState {
    Initializing = 0,
    DiscoverLeader = 1,
    Unknown = 2,
    PreReplica = 3,
    CatchingUp = 4,
    Clone = 5,
    Follower = 6,
    PreLeader = 7,
    Leader = 8,
    Manager = 9,
    ShuttingDown = 10,
    Shutdown = 11,
    ReadOnlyLeaderless = 12,
    PreReadOnlyReplica = 13,
    ReadOnlyReplica = 14,
    ResigningLeader = 15,
}

impl VNodeState {
    /// The name as `/gossip` JSON spells it.
    pub fn name(self) -> &'static str {
        match self {
            VNodeState::Initializing => "Initializing",
            VNodeState::DiscoverLeader => "DiscoverLeader",
            VNodeState::Unknown => "Unknown",
            VNodeState::PreReplica => "PreReplica",
            VNodeState::CatchingUp => "CatchingUp",
            VNodeState::Clone => "Clone",
            VNodeState::Follower => "Follower",
            VNodeState::PreLeader => "PreLeader",
            VNodeState::Leader => "Leader",
            VNodeState::Manager => "Manager",
            VNodeState::ShuttingDown => "ShuttingDown",
            VNodeState::Shutdown => "Shutdown",
            VNodeState::ReadOnlyLeaderless => "ReadOnlyLeaderless",
            VNodeState::PreReadOnlyReplica => "PreReadOnlyReplica",
            VNodeState::ReadOnlyReplica => "ReadOnlyReplica",
            VNodeState::ResigningLeader => "ResigningLeader",
        }
    }
}
