//! The authenticator's cache of successful verifications, so that a client sending the same
//! Basic credentials on every call pays Argon2 once.
//!
//! **Key**: SHA-256 over a random per-process key, the login's length, the login and the
//! password. Neither the password nor anything that can be checked against it offline
//! without the process's key is kept. **Value**: the principal, the revision of the user
//! record the password was verified against, and the node's change counter of the user's
//! stream when that record was read ([`stele_cluster::Node::stream_version`]). While the
//! counter has not moved, an entry is [`fresh`](CredentialCache::fresh) and answers without
//! reading the log; once it moved, the authenticator reads the user's latest record and the
//! entry answers only if its revision is still the latest (`auth.rs`), so any change to the
//! user (password, groups, disabled, deleted) makes the entry useless at once. At most
//! [`MAX_CACHED_CREDENTIALS`] entries; the oldest is evicted first.

use std::collections::{HashMap, VecDeque};

use sha2::{Digest, Sha256};
use stele_core::access::Principal;

/// The most verified credentials kept.
pub const MAX_CACHED_CREDENTIALS: usize = 1024;

/// A cache key (see the module docs).
pub(crate) type CacheKey = [u8; 32];

struct Entry {
    principal: Principal,
    revision: u64,
    /// The user stream's change counter when `revision` was known to be the latest.
    version: u64,
    /// The insertion this entry came from, to tell it from a newer one of the same key when
    /// its place in the eviction order comes up.
    serial: u64,
}

pub(crate) struct CredentialCache {
    secret: [u8; 32],
    entries: HashMap<CacheKey, Entry>,
    /// Keys in insertion order, with the serial they were inserted with.
    order: VecDeque<(CacheKey, u64)>,
    next_serial: u64,
    capacity: usize,
}

impl CredentialCache {
    /// An empty cache with a fresh random key (`stele_cluster::determinism`).
    pub(crate) fn new(capacity: usize) -> CredentialCache {
        let mut secret = [0u8; 32];
        for chunk in secret.chunks_mut(8) {
            chunk.copy_from_slice(&stele_cluster::determinism::next_u64().to_le_bytes());
        }
        CredentialCache {
            secret,
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_serial: 0,
            capacity,
        }
    }

    pub(crate) fn key(&self, login: &str, password: &str) -> CacheKey {
        Sha256::new()
            .chain_update(self.secret)
            .chain_update((login.len() as u64).to_le_bytes())
            .chain_update(login.as_bytes())
            .chain_update(password.as_bytes())
            .finalize()
            .into()
    }

    /// The principal cached under `key` if the user's stream has not changed since (its
    /// change counter is still `version`).
    pub(crate) fn fresh(&self, key: &CacheKey, version: u64) -> Option<Principal> {
        let entry = self.entries.get(key)?;
        (entry.version == version).then(|| entry.principal.clone())
    }

    /// The principal cached under `key` if it was verified against `revision`, the latest
    /// as of the change counter `version` (which the entry then remembers); an entry for
    /// another revision is dropped.
    pub(crate) fn get(&mut self, key: &CacheKey, revision: u64, version: u64) -> Option<Principal> {
        let entry = self.entries.get_mut(key)?;
        if entry.revision == revision {
            entry.version = version;
            return Some(entry.principal.clone());
        }
        self.entries.remove(key);
        None
    }

    pub(crate) fn insert(
        &mut self,
        key: CacheKey,
        principal: Principal,
        revision: u64,
        version: u64,
    ) {
        let serial = self.next_serial;
        self.next_serial += 1;
        self.entries.insert(
            key,
            Entry {
                principal,
                revision,
                version,
                serial,
            },
        );
        self.order.push_back((key, serial));
        while self.entries.len() > self.capacity {
            let Some((old, old_serial)) = self.order.pop_front() else {
                break;
            };
            if self.is_current(&old, old_serial) {
                self.entries.remove(&old);
            }
        }
        // Keys inserted again, or dropped by `get`, leave stale places in the order: drop
        // them now and then (amortised over as many inserts as the cache holds).
        if self.order.len() > 2 * self.capacity.max(1) {
            let order = std::mem::take(&mut self.order);
            self.order = order
                .into_iter()
                .filter(|(k, serial)| self.is_current(k, *serial))
                .collect();
        }
    }

    fn is_current(&self, key: &CacheKey, serial: u64) -> bool {
        self.entries.get(key).is_some_and(|e| e.serial == serial)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> Principal {
        Principal::User {
            name: name.into(),
            groups: Vec::new(),
        }
    }

    #[test]
    fn keys_depend_on_login_password_and_the_process_key() {
        let a = CredentialCache::new(4);
        let b = CredentialCache::new(4);
        assert_eq!(a.key("u", "p"), a.key("u", "p"));
        assert_ne!(a.key("u", "p"), a.key("u", "q"));
        assert_ne!(a.key("ab", "c"), a.key("a", "bc"));
        assert_ne!(a.key("u", "p"), b.key("u", "p"));
    }

    #[test]
    fn another_revision_misses_and_drops_the_entry() {
        let mut cache = CredentialCache::new(4);
        let key = cache.key("u", "p");
        cache.insert(key, user("u"), 3, 10);
        assert_eq!(cache.fresh(&key, 10), Some(user("u")));
        assert_eq!(cache.fresh(&key, 11), None, "the user's stream moved");
        assert_eq!(
            cache.get(&key, 3, 11),
            Some(user("u")),
            "but not the record"
        );
        assert_eq!(cache.fresh(&key, 11), Some(user("u")), "fresh again");
        assert_eq!(cache.get(&key, 4, 12), None);
        assert_eq!(cache.get(&key, 3, 12), None);
        assert_eq!(cache.fresh(&key, 11), None);
    }

    #[test]
    fn the_oldest_entry_is_evicted_and_the_order_stays_bounded() {
        let mut cache = CredentialCache::new(2);
        let keys: Vec<_> = (0..3).map(|i| cache.key(&format!("u{i}"), "p")).collect();
        for (i, key) in keys.iter().enumerate() {
            cache.insert(*key, user("u"), i as u64, 0);
        }
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&keys[0], 0, 0), None);
        assert!(cache.get(&keys[2], 2, 0).is_some());
        // Re-inserting one key many times keeps one entry and a bounded order.
        for i in 0..100 {
            cache.insert(keys[1], user("u"), i, 0);
        }
        assert!(cache.order.len() <= 4 && cache.len() == 2);
        assert!(cache.get(&keys[1], 99, 0).is_some());
        assert!(
            cache.get(&keys[2], 2, 0).is_some(),
            "compaction evicts nothing"
        );
    }
}
