//! The default operation policy (PROTOCOL-OPS.md §4.2, EventStoreDB's legacy "acl" policy):
//! who may call each non-stream operation, as a table from [`Operation`] to [`Requirement`],
//! and the anonymous-access options (§4.3). Stream reads, writes and deletes are decided by
//! the stream ACLs instead ([`check_stream`](super::check_stream)).

use super::{Decision, Principal, OPS_GROUP};

/// The user EventStoreDB creates in `$admins`; the policy names it as well as the group.
pub const ADMIN_USER: &str = "admin";
/// The user EventStoreDB creates in `$ops`; the policy names it as well as the group.
pub const OPS_USER: &str = "ops";

/// Every operation Stele serves or will serve, other than stream reads, writes and deletes.
/// Keep [`Operation::ALL`] in declaration order (a test checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `/ping`.
    Ping,
    /// `/info`.
    Info,
    /// `ServerFeatures.GetSupportedMethods`: never checked (PROTOCOL.md §10).
    ServerFeatures,
    /// `Monitoring.Stats` over gRPC: EventStoreDB's handler checks nothing.
    MonitoringStats,
    /// Reading gossip (`/gossip`, `Gossip.Read`).
    GossipRead,
    /// Another node's gossip (node to node): the system account only.
    GossipUpdate,
    /// Stele's internal port: joining as a replica, votes, forwarded commands. The system
    /// account (a node certificate) only, as EventStoreDB's elections and internal gossip.
    ClusterInternal,
    /// `/stats`, `/stats/*`.
    Stats,
    /// `/metrics`.
    Metrics,
    /// An HTTP `OPTIONS` request (`Node.Options`).
    NodeOptionsRequest,
    /// `/info/options` (`Information.Options`).
    InfoOptions,
    /// `/sys/subsystems`.
    Subsystems,
    /// `Operations.Shutdown`, `POST /admin/shutdown`.
    Shutdown,
    /// `POST /admin/reloadconfig` (certificate reload).
    ReloadConfiguration,
    /// `Operations.MergeIndexes`.
    MergeIndexes,
    /// `Operations.SetNodePriority`.
    SetNodePriority,
    /// `Operations.ResignNode`.
    ResignNode,
    /// `Operations.StartScavenge`.
    ScavengeStart,
    /// `Operations.StopScavenge`.
    ScavengeStop,
    /// Reading a scavenge's state (`GET /admin/scavenge/...`).
    ScavengeRead,
    PersistentSubscriptionCreate,
    PersistentSubscriptionUpdate,
    PersistentSubscriptionDelete,
    PersistentSubscriptionReplayParked,
    PersistentSubscriptionRestartSubsystem,
    /// `GetInfo` and the statistics endpoints.
    PersistentSubscriptionGetInfo,
    PersistentSubscriptionList,
    /// Consuming a persistent subscription. The policy only asks for an authenticated
    /// principal; the caller must **also** check [`StreamAccess::Read`](super::StreamAccess)
    /// on the subscription's stream (`$all` for subscriptions to all).
    PersistentSubscriptionRead,
    UserCreate,
    UserUpdate,
    UserDelete,
    UserEnable,
    UserDisable,
    UserResetPassword,
    /// Listing every user (`Details` with an empty login name, `GET /users`).
    UserList,
    /// One user's details. EventStoreDB checks it against the caller's own name, so any
    /// authenticated caller passes (§3.3, unconfirmed at runtime).
    UserDetails,
    /// Changing a password; the service then needs the current password.
    UserChangePassword,
    /// Creating a projection. Continuous and one-time projections also need `$ops` or
    /// `$admins` (the RunAs check of §1.4), which the projections service makes.
    ProjectionCreate,
    /// Updating a projection (the same RunAs check applies).
    ProjectionUpdate,
    ProjectionDelete,
    ProjectionStatistics,
    ProjectionDisable,
    ProjectionEnable,
    /// Reset is checked as [`Operation::ProjectionCreate`] in EventStoreDB; both are
    /// "authenticated" here.
    ProjectionReset,
    ProjectionState,
    ProjectionResult,
    ProjectionRestartSubsystem,
    ProjectionReadConfiguration,
    ProjectionUpdateConfiguration,
}

/// Who an operation is open to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Anyone, anonymous included, whatever the options.
    Anyone,
    /// Anonymous when `OverrideAnonymousEndpointAccessForGossip` or
    /// `AllowAnonymousEndpointAccess`; otherwise authenticated.
    Gossip,
    /// Authenticated, or anonymous when `AllowAnonymousEndpointAccess`.
    Endpoint,
    /// Any authenticated principal.
    Authenticated,
    /// `$ops` or `$admins` members, or the users `ops` / `admin` by name.
    OpsOrAdmins,
    /// `$admins` members, or the user `admin` by name.
    Admins,
    /// The system account only.
    System,
}

impl Operation {
    /// Every operation, in declaration order.
    pub const ALL: [Operation; 49] = [
        Operation::Ping,
        Operation::Info,
        Operation::ServerFeatures,
        Operation::MonitoringStats,
        Operation::GossipRead,
        Operation::GossipUpdate,
        Operation::ClusterInternal,
        Operation::Stats,
        Operation::Metrics,
        Operation::NodeOptionsRequest,
        Operation::InfoOptions,
        Operation::Subsystems,
        Operation::Shutdown,
        Operation::ReloadConfiguration,
        Operation::MergeIndexes,
        Operation::SetNodePriority,
        Operation::ResignNode,
        Operation::ScavengeStart,
        Operation::ScavengeStop,
        Operation::ScavengeRead,
        Operation::PersistentSubscriptionCreate,
        Operation::PersistentSubscriptionUpdate,
        Operation::PersistentSubscriptionDelete,
        Operation::PersistentSubscriptionReplayParked,
        Operation::PersistentSubscriptionRestartSubsystem,
        Operation::PersistentSubscriptionGetInfo,
        Operation::PersistentSubscriptionList,
        Operation::PersistentSubscriptionRead,
        Operation::UserCreate,
        Operation::UserUpdate,
        Operation::UserDelete,
        Operation::UserEnable,
        Operation::UserDisable,
        Operation::UserResetPassword,
        Operation::UserList,
        Operation::UserDetails,
        Operation::UserChangePassword,
        Operation::ProjectionCreate,
        Operation::ProjectionUpdate,
        Operation::ProjectionDelete,
        Operation::ProjectionStatistics,
        Operation::ProjectionDisable,
        Operation::ProjectionEnable,
        Operation::ProjectionReset,
        Operation::ProjectionState,
        Operation::ProjectionResult,
        Operation::ProjectionRestartSubsystem,
        Operation::ProjectionReadConfiguration,
        Operation::ProjectionUpdateConfiguration,
    ];

    /// Who the default policy opens this operation to.
    pub fn requirement(self) -> Requirement {
        use Operation as O;
        match self {
            O::Ping | O::Info | O::ServerFeatures | O::MonitoringStats => Requirement::Anyone,
            O::GossipRead => Requirement::Gossip,
            O::GossipUpdate | O::ClusterInternal => Requirement::System,
            O::Stats | O::Metrics | O::NodeOptionsRequest => Requirement::Endpoint,
            O::InfoOptions
            | O::Subsystems
            | O::Shutdown
            | O::ReloadConfiguration
            | O::MergeIndexes
            | O::SetNodePriority
            | O::ResignNode
            | O::ScavengeStart
            | O::ScavengeStop
            | O::ScavengeRead
            | O::PersistentSubscriptionCreate
            | O::PersistentSubscriptionUpdate
            | O::PersistentSubscriptionDelete
            | O::PersistentSubscriptionReplayParked
            | O::PersistentSubscriptionRestartSubsystem
            | O::ProjectionDelete
            | O::ProjectionRestartSubsystem
            | O::ProjectionReadConfiguration
            | O::ProjectionUpdateConfiguration => Requirement::OpsOrAdmins,
            O::PersistentSubscriptionGetInfo
            | O::PersistentSubscriptionList
            | O::PersistentSubscriptionRead
            | O::UserDetails
            | O::UserChangePassword
            | O::ProjectionCreate
            | O::ProjectionUpdate
            | O::ProjectionStatistics
            | O::ProjectionDisable
            | O::ProjectionEnable
            | O::ProjectionReset
            | O::ProjectionState
            | O::ProjectionResult => Requirement::Authenticated,
            O::UserCreate
            | O::UserUpdate
            | O::UserDelete
            | O::UserEnable
            | O::UserDisable
            | O::UserResetPassword
            | O::UserList => Requirement::Admins,
        }
    }
}

/// The anonymous-access options (PROTOCOL-OPS.md §4.3). `--insecure` is not one of them: an
/// insecure node runs every request as [`Principal::System`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnonymousAccess {
    /// `AllowAnonymousEndpointAccess`: anonymous `/stats`, `/metrics`, `OPTIONS`, gossip.
    pub allow_anonymous_endpoint_access: bool,
    /// `AllowAnonymousStreamAccess`: anonymous stream operations, subject to ACLs.
    pub allow_anonymous_stream_access: bool,
    /// `OverrideAnonymousEndpointAccessForGossip`: gossip stays anonymous regardless.
    pub override_anonymous_endpoint_access_for_gossip: bool,
}

impl Default for AnonymousAccess {
    /// EventStoreDB's defaults: false, false, true.
    fn default() -> Self {
        AnonymousAccess {
            allow_anonymous_endpoint_access: false,
            allow_anonymous_stream_access: false,
            override_anonymous_endpoint_access_for_gossip: true,
        }
    }
}

impl Requirement {
    /// Whether `principal` meets this requirement under `options`.
    pub fn is_met_by(self, principal: &Principal, options: &AnonymousAccess) -> bool {
        let named = |name: &str| matches!(principal, Principal::User { name: n, .. } if n == name);
        match self {
            Requirement::Anyone => true,
            Requirement::Gossip => {
                principal.is_authenticated()
                    || options.override_anonymous_endpoint_access_for_gossip
                    || options.allow_anonymous_endpoint_access
            }
            Requirement::Endpoint => {
                principal.is_authenticated() || options.allow_anonymous_endpoint_access
            }
            Requirement::Authenticated => principal.is_authenticated(),
            Requirement::OpsOrAdmins => {
                principal.is_admin()
                    || principal.has_role(OPS_GROUP)
                    || named(ADMIN_USER)
                    || named(OPS_USER)
            }
            Requirement::Admins => principal.is_admin() || named(ADMIN_USER),
            Requirement::System => matches!(principal, Principal::System),
        }
    }
}

/// Whether the default policy lets `principal` call `operation` under `options`.
pub fn check_operation(
    principal: &Principal,
    operation: Operation,
    options: &AnonymousAccess,
) -> Decision {
    Decision::from_allowed(operation.requirement().is_met_by(principal, options))
}

#[cfg(test)]
mod tests;
