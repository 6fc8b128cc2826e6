//! [`Authenticator`]: Basic credentials → the [`Principal`] a request runs as.
//!
//! The official clients send their credentials on every call, and an Argon2id verification
//! costs tens of milliseconds, so an authentication goes:
//!
//! 1. **fresh cache hit** (`cache.rs`): these credentials were verified, and the node's
//!    change counter of the user's stream ([`Node::stream_version`], bumped by the state
//!    machine when `$user-<login>` or its metadata is written, before the writer is
//!    answered) has not moved since → the principal, without reading the log or hashing.
//!    This is what every call of a client that sends the same credentials each time costs:
//!    a SHA-256 and two atomic loads;
//! 2. otherwise one verification per credentials at a time (`flights`): concurrent calls
//!    with the same credentials wait for the first and then take its cached answer, so a
//!    client that opens with many calls at once is verified once (and is not refused by
//!    step 5's count, which it would otherwise fill with its own correct attempts);
//! 3. read the user's latest record on this node (one index lookup and one event read, on
//!    the blocking pool). Not found (never created, deleted) → [`AuthError::Invalid`]; a read
//!    that fails → [`AuthError::NotReady`]. Credentials verified against this very revision
//!    → the principal, no hashing. Any change to the user moves the revision, so a changed
//!    password, new groups, a disable or a delete take effect on this node at once, and on
//!    another node as soon as it has applied the change (its replication lag). The
//!    counter-and-revision check was chosen over following `$users-password-notifications`:
//!    it needs no task or subscription, and nothing can be missed between a change and its
//!    notification;
//! 4. disabled → Invalid, without hashing;
//! 5. **throttle** (`throttle.rs`): each verification is counted against the login before it
//!    runs; a login with `MAX_FAILED_LOGINS` counted in the current window is refused
//!    without hashing until the window ends, and a correct password clears its count
//!    (credentials already in the cache still pass: steps 1 and 3 come first). Counting
//!    before verifying makes the bound hold under concurrent attempts too;
//! 6. verify on the blocking pool, at most [`MAX_CONCURRENT_VERIFICATIONS`] at once; a
//!    success is cached.
//!
//! Failed logins are logged at info level (login and reason, never the password), at most
//! a few lines a minute (`throttle.rs`). An unknown login is refused without hashing: faster
//! than a wrong password, which tells an attacker whether a login exists (EventStoreDB does
//! the same), in exchange for a flood of made-up logins costing nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use stele_cluster::Node;
use stele_core::access::Principal;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::cache::{CacheKey, CredentialCache, MAX_CACHED_CREDENTIALS};
use super::error::UserError;
use super::password::{self, MAX_PASSWORD_BYTES};
use super::record::{self, MAX_LOGIN_NAME_BYTES};
use super::store;
use super::throttle::{FailedLogins, LogBudget};

/// The most password verifications running at once on one node (each holds its Argon2
/// memory, 19 MiB by default).
pub const MAX_CONCURRENT_VERIFICATIONS: usize = 4;

/// A call's place among the calls checking the same credentials; leaving (also when the
/// call is dropped half-way) removes the entry once nobody else holds it.
struct Flight<'a> {
    flights: &'a Mutex<HashMap<CacheKey, Arc<tokio::sync::Mutex<()>>>>,
    key: CacheKey,
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl<'a> Flight<'a> {
    fn join(
        flights: &'a Mutex<HashMap<CacheKey, Arc<tokio::sync::Mutex<()>>>>,
        key: CacheKey,
    ) -> Self {
        let turn = lock(flights).entry(key).or_default().clone();
        Flight { flights, key, turn }
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        let mut flights = lock(self.flights);
        // The map's reference and this call's: nobody else is on this flight.
        if Arc::strong_count(&self.turn) == 2 {
            flights.remove(&self.key);
        }
    }
}

/// Why credentials were not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Unknown user, wrong password, disabled or deleted user, or too many wrong passwords
    /// (the wire's UNAUTHENTICATED).
    #[error("invalid credentials")]
    Invalid,
    /// This node cannot read its users now (the wire's UNAVAILABLE "Server not ready").
    #[error("the node cannot read users yet")]
    NotReady,
}

/// Checks credentials against the users in the log. One per node; cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    node: Node,
    cache: Mutex<CredentialCache>,
    /// Credentials being checked now, each with the lock its checks take turns on; an entry
    /// lives while a call holds it, so there are at most as many as calls in progress.
    flights: Mutex<HashMap<CacheKey, Arc<tokio::sync::Mutex<()>>>>,
    failed: Mutex<FailedLogins>,
    log_budget: Mutex<LogBudget>,
    verifying: Semaphore,
    /// Argon2 verifications started (tests check what the cache and throttle save).
    verifications: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded state is a cache and counters, consistent after any panic.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Authenticator {
    pub fn new(node: Node) -> Authenticator {
        Authenticator {
            inner: Arc::new(Inner {
                node,
                cache: Mutex::new(CredentialCache::new(MAX_CACHED_CREDENTIALS)),
                flights: Mutex::new(HashMap::new()),
                failed: Mutex::new(FailedLogins::new()),
                log_budget: Mutex::new(LogBudget::new(Instant::now())),
                verifying: Semaphore::new(MAX_CONCURRENT_VERIFICATIONS),
                verifications: AtomicU64::new(0),
            }),
        }
    }

    /// The principal of `login` if `password` is its password and it may log in.
    pub async fn authenticate(&self, login: &str, password: &str) -> Result<Principal, AuthError> {
        if login.is_empty() || login.len() > MAX_LOGIN_NAME_BYTES {
            return Err(self.refuse(login, "no such user"));
        }
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(self.refuse(login, "password too long"));
        }
        // Taken before anything about the user is read (see the module docs).
        let version = self
            .inner
            .node
            .stream_version(&record::user_stream_name(login));
        let key = {
            let cache = lock(&self.inner.cache);
            let key = cache.key(login, password);
            if let Some(principal) = cache.fresh(&key, version) {
                return Ok(principal);
            }
            key
        };
        let flight = Flight::join(&self.inner.flights, key);
        let _turn = flight.turn.lock().await;
        // The call before this one may have just verified the same credentials.
        if let Some(principal) = lock(&self.inner.cache).fresh(&key, version) {
            return Ok(principal);
        }
        self.check(login, password, key, version).await
    }

    /// Steps 3 to 6 of the module docs.
    async fn check(
        &self,
        login: &str,
        password: &str,
        key: CacheKey,
        version: u64,
    ) -> Result<Principal, AuthError> {
        let user = match store::load(&self.inner.node, login).await {
            Ok(Some(user)) => user,
            Ok(None) | Err(UserError::Invalid(_)) => return Err(self.refuse(login, "no such user")),
            Err(UserError::BadRecord { detail, .. }) => {
                tracing::debug!(%login, %detail, "a user record cannot be read");
                return Err(self.refuse(login, "unreadable user record"));
            }
            Err(error) => {
                tracing::debug!(%login, %error, "reading a user to authenticate");
                return Err(AuthError::NotReady);
            }
        };
        if let Some(principal) = lock(&self.inner.cache).get(&key, user.revision, version) {
            return Ok(principal);
        }
        if user.record.disabled {
            return Err(self.refuse(login, "disabled"));
        }
        if !lock(&self.inner.failed).try_attempt(login, Instant::now()) {
            return Err(self.refuse(login, "too many wrong passwords, not checked"));
        }
        let permit = self
            .inner
            .verifying
            .acquire()
            .await
            .map_err(|_| AuthError::NotReady)?;
        self.inner.verifications.fetch_add(1, Ordering::Relaxed);
        let principal = Principal::User {
            name: user.record.login_name.clone(),
            groups: user.record.groups.clone(),
        };
        let verified = password::verify_on_pool(password.to_owned(), user.record).await;
        drop(permit);
        match verified {
            Ok(true) => {
                lock(&self.inner.failed).clear(login);
                lock(&self.inner.cache).insert(key, principal.clone(), user.revision, version);
                Ok(principal)
            }
            Ok(false) => Err(self.refuse(login, "wrong password")),
            Err(error) => {
                tracing::debug!(%login, %error, "verifying a password");
                Err(AuthError::NotReady)
            }
        }
    }

    /// Logs a refused login (within the log budget) and returns Invalid.
    fn refuse(&self, login: &str, reason: &str) -> AuthError {
        if let Some(suppressed) = lock(&self.inner.log_budget).take(Instant::now()) {
            let login: String = login.chars().take(64).collect();
            tracing::info!(
                login = %login.escape_debug(),
                reason,
                earlier_failures_not_logged = suppressed,
                "authentication failed"
            );
        }
        AuthError::Invalid
    }

    /// Argon2 verifications started so far.
    #[cfg(test)]
    pub(crate) fn verifications(&self) -> u64 {
        self.inner.verifications.load(Ordering::Relaxed)
    }

    /// Credentials being checked now.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        lock(&self.inner.flights).len()
    }

    #[cfg(test)]
    pub(crate) fn cached(&self) -> usize {
        lock(&self.inner.cache).len()
    }
}
