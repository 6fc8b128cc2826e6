//! The ACLs and default ACLs access checks read, kept across requests while they cannot have
//! changed: each entry remembers [`Node::stream_version`] of what it guards (a stream's
//! metadata `$$x`, or `$settings`) taken *before* the read, and is used only while that
//! counter stands still. The state machine bumps the counter after the change is readable
//! and before its writer is answered, so a changed `$acl` applies to the next request, as
//! without a cache. A hit costs a hash lookup and an atomic load instead of two log reads on
//! the blocking pool.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use stele_cluster::{Direction, Node, StreamReadRequest, StreamReadResult, StreamStart};
use stele_core::access::{StreamAcl, SystemSettings};
use stele_core::StreamName;

/// Streams whose ACL is kept; beyond that the cache forgets them all and starts again.
pub const MAX_CACHED_ACLS: usize = 10_000;

/// The stream of default ACLs.
pub const SETTINGS_STREAM: &str = "$settings";

type Versioned<T> = (u64, T);

/// See the module docs.
#[derive(Default)]
pub(super) struct AclCache {
    acls: Mutex<HashMap<String, Versioned<Option<Arc<StreamAcl>>>>>,
    settings: Mutex<Option<Versioned<Arc<SystemSettings>>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A cache: consistent after any panic.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl AclCache {
    /// `stream`'s ACL and the settings if both are cached and current; reads nothing.
    pub(super) fn cached(
        &self,
        node: &Node,
        stream: &str,
    ) -> Option<(Option<Arc<StreamAcl>>, Arc<SystemSettings>)> {
        let settings = {
            let settings = lock(&self.settings);
            let (version, settings) = settings.as_ref()?;
            (*version == node.stream_version(SETTINGS_STREAM)).then(|| settings.clone())?
        };
        let acls = lock(&self.acls);
        let (version, acl) = acls.get(stream)?;
        (*version == node.stream_version(stream)).then(|| (acl.clone(), settings))
    }

    /// `stream`'s ACL and the settings, read from the log where the cache has nothing
    /// current (blocking).
    pub(super) fn read(
        &self,
        node: &Node,
        stream: &str,
    ) -> (Option<Arc<StreamAcl>>, Arc<SystemSettings>) {
        let settings = self.settings(node);
        let version = node.stream_version(stream);
        if let Some((cached, acl)) = lock(&self.acls).get(stream) {
            if *cached == version {
                return (acl.clone(), settings);
            }
        }
        let acl = stream_acl(node, stream).map(Arc::new);
        let mut acls = lock(&self.acls);
        if acls.len() >= MAX_CACHED_ACLS {
            acls.clear();
        }
        acls.insert(stream.to_owned(), (version, acl.clone()));
        (acl, settings)
    }

    fn settings(&self, node: &Node) -> Arc<SystemSettings> {
        let version = node.stream_version(SETTINGS_STREAM);
        if let Some((cached, settings)) = lock(&self.settings).as_ref() {
            if *cached == version {
                return settings.clone();
            }
        }
        let settings = Arc::new(system_settings(node));
        *lock(&self.settings) = Some((version, settings.clone()));
        settings
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        lock(&self.acls).len()
    }
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

/// The ACL in `stream`'s metadata, if any (blocking).
pub fn stream_acl(node: &Node, stream: &str) -> Option<StreamAcl> {
    let data = latest_data(node, &format!("$${stream}"))?;
    StreamAcl::from_metadata_json(&data).0
}

/// The default ACLs (`$settings`), or the built-in ones (blocking).
pub fn system_settings(node: &Node) -> SystemSettings {
    latest_data(node, SETTINGS_STREAM)
        .map(|data| SystemSettings::from_json(&data).0)
        .unwrap_or_default()
}
