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
//! ACL reads are not cached across requests: a changed `$acl` applies to the next request.
//! A [`ReadableStreams`] caches its answers for the one read or subscription it serves (at
//! most [`MAX_CACHED_STREAM_DECISIONS`] streams).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use stele_cluster::{Direction, Node, StreamReadRequest, StreamReadResult, StreamStart};
use stele_core::access::{
    self, check_operation, AnonymousAccess, Operation, Principal, StreamAccess, StreamAcl,
    SystemSettings, ALL_STREAM,
};
use stele_core::StreamName;

/// Stream decisions one [`ReadableStreams`] remembers; beyond that it forgets them all and
/// starts again (each decision costs two small reads).
pub const MAX_CACHED_STREAM_DECISIONS: usize = 10_000;

/// The stream of default ACLs.
pub const SETTINGS_STREAM: &str = "$settings";

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
        }
    }

    /// EventStoreDB's default policy and stream ACLs.
    pub fn secure(node: Node, anonymous: AnonymousAccess) -> AccessControl {
        AccessControl {
            node,
            mode: Mode::Secure(anonymous),
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
    /// `x`, `$all` as `$all`)? Reads the ACL and `$settings` on the blocking pool unless the
    /// principal bypasses stream checks.
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
        let node = self.node.clone();
        let principal = principal.clone();
        let stream = stream.to_owned();
        let allow_anonymous = anonymous.allow_anonymous_stream_access;
        stele_cluster::blocking::spawn(move || {
            decide(&node, &principal, &stream, access, allow_anonymous)
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
            principal: principal.clone(),
            allow_anonymous: anonymous.allow_anonymous_stream_access,
            decisions: Mutex::new(HashMap::new()),
        }))
    }
}

fn is_all_write(stream: &str, access: StreamAccess) -> bool {
    stream == ALL_STREAM && matches!(access, StreamAccess::Write | StreamAccess::Delete)
}

/// The decision, with the ACL and settings read from the log (blocking).
fn decide(
    node: &Node,
    principal: &Principal,
    stream: &str,
    access: StreamAccess,
    allow_anonymous: bool,
) -> Result<(), Denied> {
    let (target, _) = access::access_target(stream, access);
    let acl = stream_acl(node, target);
    let settings = system_settings(node);
    access::check_stream(
        principal,
        stream,
        access,
        acl.as_ref(),
        &settings,
        allow_anonymous,
    )
    .is_allowed()
    .then_some(())
    .ok_or(Denied)
}

/// The data of the latest event of `stream`, if it has one and can be read.
fn latest_data(node: &Node, stream: &str) -> Option<bytes::Bytes> {
    let stream = StreamName::new(stream).ok()?;
    let request = StreamReadRequest {
        stream,
        start: StreamStart::End,
        direction: Direction::Backwards,
        max_count: 1,
    };
    match node.read_stream(&request) {
        Ok(StreamReadResult::Events(events)) => events.into_iter().next().map(|e| e.record.data),
        _ => None,
    }
}

/// The ACL in `stream`'s metadata, if any.
pub fn stream_acl(node: &Node, stream: &str) -> Option<StreamAcl> {
    let data = latest_data(node, &format!("$${stream}"))?;
    StreamAcl::from_metadata_json(&data).0
}

/// The default ACLs (`$settings`), or the built-in ones.
pub fn system_settings(node: &Node) -> SystemSettings {
    latest_data(node, SETTINGS_STREAM)
        .map(|data| SystemSettings::from_json(&data).0)
        .unwrap_or_default()
}

/// Which streams one principal may read, remembered for one read or subscription.
pub struct ReadableStreams {
    node: Node,
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
