//! Who is asking, and what they may do (issue 13): the principal a request runs as, stream
//! access control lists and the default operation policy. Pure decisions, no I/O: the API
//! layer authenticates and asks here; the services crate reads ACLs and settings from the log.
//!
//! - `principal.rs`: [`Principal`] (anonymous, the system, a user with groups).
//! - `acl.rs`: [`StreamAcl`] from a stream's `$acl`, [`SystemSettings`] from `$settings`; what
//!   the parsers ignore, and why, is in its module docs.
//! - `stream_access.rs`: [`check_stream`] (§4.1) and its parts ([`access_target`] for `$$x`,
//!   [`effective_roles`]).
//! - `policy.rs`: [`check_operation`] over every non-stream [`Operation`] (§4.2) with the
//!   [`AnonymousAccess`] options (§4.3).
//!
//! A [`Decision`] is only allow or deny. The statuses of §4.4 follow from the principal: gRPC
//! answers PERMISSION_DENIED to a denied caller, anonymous or not; HTTP answers 401 to both.
//! A caller that needs to tell them apart asks [`Principal::is_authenticated`].
//!
//! EventStoreDB's rules these follow, with their sources, are in the protocol notes kept
//! beside the repository (PROTOCOL-OPS.md §3.3 and §4); each item cites its section.

mod acl;
mod policy;
mod principal;
mod stream_access;

pub use acl::{
    AclIgnored, StreamAcl, SystemSettings, ACL_KEY, ALL_ROLE, MAX_ACL_ROLES, SYSTEM_STREAM_ACL_KEY,
    USER_STREAM_ACL_KEY,
};
pub use policy::{check_operation, AnonymousAccess, Operation, Requirement, ADMIN_USER, OPS_USER};
pub use principal::{Principal, ADMINS_GROUP, OPS_GROUP};
pub use stream_access::{
    access_target, built_in_role, check_stream, effective_roles, is_system_stream, Roles,
    StreamAccess, ALL_STREAM,
};

/// The answer to "may this principal do this?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Decision {
    Allow,
    Deny,
}

impl Decision {
    /// `Allow` if `allowed`, else `Deny`.
    pub fn from_allowed(allowed: bool) -> Decision {
        if allowed {
            Decision::Allow
        } else {
            Decision::Deny
        }
    }

    /// Whether the decision is `Allow`.
    pub fn is_allowed(self) -> bool {
        self == Decision::Allow
    }
}
