//! Access control over a node (issue 13): the pure rules of `stele_core::access`, fed with
//! what the log says — a stream's `$acl` (the latest event of its metastream `$$x`) and the
//! default ACLs of `$settings`.
//!
//! An [`AccessControl`] is one per node, shared by every adapter. In insecure mode every
//! check passes (EventStoreDB's pass-through: `--insecure` ignores credentials and ACLs).
//! In secure mode:
//!
//! - operations are checked against the default policy ([`check_operation`]);
//! - stream operations read the target's ACL and `$settings` — except for the system and
//!   `$admins` members, who bypass every stream check and so cost nothing extra (the
//!   official clients' benchmark runs as `admin`);
//! - a `$all` read or subscription by anyone else gets a [`ReadableStreams`]: every event of
//!   a stream the principal may not read is left out, whatever the client's own filter, so a
//!   widened `$$$all` never leaks a protected stream;
//! - what reads on a principal's behalf gets [`AccessControl::streams_readable_by`]: links
//!   resolve only into streams the reader may read (`crate::links`), and a persistent
//!   subscription reads with its creator's rights (`crate::persistent`).
//!
//! ACLs and `$settings` are cached across requests while their change counters stand still
//! (`acl_cache.rs`): a changed `$acl` still applies to the next request.
//! A [`ReadableStreams`] caches its answers for the one read or subscription it serves (at
//! most [`MAX_CACHED_STREAM_DECISIONS`] streams).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use stele_cluster::Node;
use stele_core::access::{
    self, check_operation, AnonymousAccess, Operation, Principal, StreamAccess, StreamAcl,
    SystemSettings, ALL_STREAM,
};

/// Stream decisions one [`ReadableStreams`] remembers; beyond that it forgets them all and
/// starts again (each decision costs two small reads).
pub const MAX_CACHED_STREAM_DECISIONS: usize = 10_000;

mod acl_cache;

use acl_cache::AclCache;

#[cfg(test)]
mod tests;
pub use acl_cache::{stream_acl, system_settings, MAX_CACHED_ACLS, SETTINGS_STREAM};

/// A refused request: gRPC's PERMISSION_DENIED `Access Denied`, HTTP 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Access Denied")]
pub struct Denied;

#[derive(Debug, Clone)]
enum Mode {
    Insecure,
    Secure(AnonymousAccess),
}

/// Access control for one node; cheap to clone.
#[derive(Clone)]
pub struct AccessControl {
    node: Node,
    mode: Mode,
    acls: Arc<AclCache>,
}

impl std::fmt::Debug for AccessControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessControl")
            .field("mode", &self.mode)
            .finish()
    }
}

impl AccessControl {
    /// Every check passes (`--insecure`).
    pub fn insecure(node: Node) -> AccessControl {
        AccessControl {
            node,
            mode: Mode::Insecure,
            acls: Arc::default(),
        }
    }

    /// EventStoreDB's default policy and stream ACLs.
    pub fn secure(node: Node, anonymous: AnonymousAccess) -> AccessControl {
        AccessControl {
            node,
            mode: Mode::Secure(anonymous),
            acls: Arc::default(),
        }
    }

    pub fn is_secure(&self) -> bool {
        matches!(self.mode, Mode::Secure(_))
    }

    /// The anonymous-access options (`None` when insecure).
    pub fn anonymous_access(&self) -> Option<&AnonymousAccess> {
        match &self.mode {
            Mode::Insecure => None,
            Mode::Secure(anonymous) => Some(anonymous),
        }
    }

    /// May `principal` perform `operation`?
    pub fn check_operation(
        &self,
        principal: &Principal,
        operation: Operation,
    ) -> Result<(), Denied> {
        match &self.mode {
            Mode::Insecure => Ok(()),
            Mode::Secure(anonymous) => check_operation(principal, operation, anonymous)
                .is_allowed()
                .then_some(())
                .ok_or(Denied),
        }
    }

    /// May `principal` have `access` to `stream` (`$$x` is checked as metadata access to
    /// `x`, `$all` as `$all`)? Decides at once when the principal bypasses stream checks or
    /// the ACL and `$settings` are cached and current, else reads them on the blocking pool.
    pub async fn check_stream(
        &self,
        principal: &Principal,
        stream: &str,
        access: StreamAccess,
    ) -> Result<(), Denied> {
        let Mode::Secure(anonymous) = &self.mode else {
            return Ok(());
        };
        if principal.is_admin() && !is_all_write(stream, access) {
            return Ok(());
        }
        let allow_anonymous = anonymous.allow_anonymous_stream_access;
        let (target, _) = access::access_target(stream, access);
        if let Some((acl, settings)) = self.acls.cached(&self.node, target) {
            return decision(
                principal,
                stream,
                access,
                acl.as_deref(),
                &settings,
                allow_anonymous,
            );
        }
        let (node, acls) = (self.node.clone(), self.acls.clone());
        let principal = principal.clone();
        let stream = stream.to_owned();
        stele_cluster::blocking::spawn(move || {
            decide(&node, &acls, &principal, &stream, access, allow_anonymous)
        })
        .await
        .unwrap_or(Err(Denied))
    }

    /// For a `$all` read or subscription: `Ok(None)` when every event may be shown (the
    /// principal bypasses checks, or the node is insecure), `Ok(Some(..))` when each event's
    /// stream must be checked, `Err` when `$all` itself may not be read.
    pub async fn readable_streams(
        &self,
        principal: &Principal,
    ) -> Result<Option<Arc<ReadableStreams>>, Denied> {
        if !matches!(self.mode, Mode::Secure(_)) {
            return Ok(None);
        }
        self.check_stream(principal, ALL_STREAM, StreamAccess::Read)
            .await?;
        Ok(self.streams_readable_by(principal))
    }

    /// The streams `principal` may read, for what reads on its behalf (resolving links, a
    /// persistent subscription of its making): `None` when it may read every stream (the
    /// principal bypasses checks, or the node is insecure). Checks nothing itself.
    pub fn streams_readable_by(&self, principal: &Principal) -> Option<Arc<ReadableStreams>> {
        let Mode::Secure(anonymous) = &self.mode else {
            return None;
        };
        if principal.is_admin() {
            return None;
        }
        Some(Arc::new(ReadableStreams {
            node: self.node.clone(),
            acls: self.acls.clone(),
            principal: principal.clone(),
            allow_anonymous: anonymous.allow_anonymous_stream_access,
            decisions: Mutex::new(HashMap::new()),
        }))
    }
}

fn is_all_write(stream: &str, access: StreamAccess) -> bool {
    stream == ALL_STREAM && matches!(access, StreamAccess::Write | StreamAccess::Delete)
}

/// The decision, with the ACL and settings from the cache or the log (blocking).
fn decide(
    node: &Node,
    acls: &AclCache,
    principal: &Principal,
    stream: &str,
    access: StreamAccess,
    allow_anonymous: bool,
) -> Result<(), Denied> {
    let (target, _) = access::access_target(stream, access);
    let (acl, settings) = acls.read(node, target);
    decision(
        principal,
        stream,
        access,
        acl.as_deref(),
        &settings,
        allow_anonymous,
    )
}

fn decision(
    principal: &Principal,
    stream: &str,
    access: StreamAccess,
    acl: Option<&StreamAcl>,
    settings: &SystemSettings,
    allow_anonymous: bool,
) -> Result<(), Denied> {
    access::check_stream(principal, stream, access, acl, settings, allow_anonymous)
        .is_allowed()
        .then_some(())
        .ok_or(Denied)
}

/// Which streams one principal may read, remembered for one read or subscription.
pub struct ReadableStreams {
    node: Node,
    acls: Arc<AclCache>,
    principal: Principal,
    allow_anonymous: bool,
    decisions: Mutex<HashMap<String, bool>>,
}

impl std::fmt::Debug for ReadableStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadableStreams")
            .field("principal", &self.principal.name())
            .finish()
    }
}

impl ReadableStreams {
    /// Whether events of `stream` may be shown (blocking: may read the log).
    pub fn may_read(&self, stream: &str) -> bool {
        if let Some(known) = self.decisions.lock().expect("decisions lock").get(stream) {
            return *known;
        }
        let allowed = decide(
            &self.node,
            &self.acls,
            &self.principal,
            stream,
            StreamAccess::Read,
            self.allow_anonymous,
        )
        .is_ok();
        let mut decisions = self.decisions.lock().expect("decisions lock");
        if decisions.len() >= MAX_CACHED_STREAM_DECISIONS {
            decisions.clear();
        }
        decisions.insert(stream.to_owned(), allowed);
        allowed
    }
}
