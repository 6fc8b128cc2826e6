//! The user operations (PROTOCOL-OPS.md §3.2, EventStoreDB's `UserManagementService`) and the
//! default users.
//!
//! A change is a read-modify-write: the latest record is read on this node, changed, and
//! appended with the expected revision it was read at. When another change got there first
//! (or this node had not yet applied the latest one) it is read again, at most
//! [`USER_WRITE_ATTEMPTS`] times, then [`UserError::TryAgain`]. After a change to the
//! credentials, groups or state of a user, a `$PasswordChanged` notification is written; if
//! that write fails the operation reports the error although the change was made (sending it
//! again is harmless).

use std::time::Duration;

use stele_cluster::{DeleteOutcome, Node};
use stele_core::access::{ADMINS_GROUP, OPS_GROUP};
use stele_core::{DeleteKind, ExpectedRevision};

use super::error::UserError;
use super::password::{self, HashCost, HashedPassword};
use super::record::{
    check_fields, UserRecord, HASH_ALGORITHM_ARGON2ID, USER_CREATED, USER_UPDATED,
};
use super::store::{self, StoredUser};
use super::{ADMIN_FULL_NAME, ADMIN_LOGIN, OPS_FULL_NAME, OPS_LOGIN};

/// How often a change to a user is read and written again when its record moved.
pub const USER_WRITE_ATTEMPTS: u32 = 5;

/// The pause before reading again, times the attempt number.
const USER_WRITE_RETRY_DELAY: Duration = Duration::from_millis(10);

/// What Details reports of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDetails {
    pub login_name: String,
    pub full_name: String,
    pub groups: Vec<String>,
    /// When the user's latest record was written: .NET ticks since the Unix epoch.
    pub last_updated: Option<i64>,
    pub disabled: bool,
}

impl From<StoredUser> for UserDetails {
    fn from(user: StoredUser) -> UserDetails {
        UserDetails {
            login_name: user.record.login_name,
            full_name: user.record.full_name,
            groups: user.record.groups,
            last_updated: Some(user.updated_ticks),
            disabled: user.record.disabled,
        }
    }
}

/// The user operations over a node. Cheap to clone.
#[derive(Clone)]
pub struct Users {
    node: Node,
    cost: HashCost,
}

fn not_found(login: &str) -> UserError {
    UserError::NotFound {
        login: login.to_owned(),
    }
}

fn check_password(password: &str) -> Result<(), UserError> {
    if password.len() > password::MAX_PASSWORD_BYTES {
        return Err(UserError::Invalid(format!(
            "the password is over {} bytes",
            password::MAX_PASSWORD_BYTES
        )));
    }
    Ok(())
}

impl Users {
    /// The operations, hashing new passwords at [`HashCost::RECOMMENDED`].
    pub fn new(node: Node) -> Users {
        Users::with_cost(node, HashCost::RECOMMENDED)
    }

    /// The operations, hashing new passwords at `cost` ([`HashCost::MINIMAL`] for tests and
    /// the simulation).
    pub fn with_cost(node: Node, cost: HashCost) -> Users {
        Users { node, cost }
    }

    /// Creates a user. A user of that login with the same password is a success (a retry);
    /// with another password, [`UserError::Conflict`].
    pub async fn create(
        &self,
        login: &str,
        full_name: &str,
        groups: &[String],
        password: &str,
    ) -> Result<(), UserError> {
        self.create_inner(login, full_name, groups, password, false)
            .await
    }

    /// Creates the user unless it exists; `exists_is_ok` makes an existing user with another
    /// password a success too (the default users).
    async fn create_inner(
        &self,
        login: &str,
        full_name: &str,
        groups: &[String],
        password: &str,
        exists_is_ok: bool,
    ) -> Result<(), UserError> {
        check_fields(login, full_name, groups).map_err(|e| UserError::Invalid(e.to_string()))?;
        check_password(password)?;
        if let Some(existing) = store::load(&self.node, login).await? {
            return self.existing(existing, password, exists_is_ok).await;
        }
        let hashed = password::hash_on_pool(password.to_owned(), self.cost).await?;
        let record = new_record(login, full_name, groups, hashed);
        store::write_user_acl(&self.node, login).await?;
        store::write_user_index(&self.node, login).await?;
        let event = record.to_event(USER_CREATED);
        if store::write_record(&self.node, login, ExpectedRevision::NoStream, event).await? {
            return Ok(());
        }
        // Created by someone else since we looked (this node may not have applied it yet).
        for attempt in 1..USER_WRITE_ATTEMPTS {
            retry_pause(attempt).await;
            if let Some(existing) = store::load(&self.node, login).await? {
                return self.existing(existing, password, exists_is_ok).await;
            }
        }
        Err(UserError::TryAgain {
            login: login.to_owned(),
        })
    }

    async fn existing(
        &self,
        existing: StoredUser,
        password: &str,
        exists_is_ok: bool,
    ) -> Result<(), UserError> {
        let login = existing.record.login_name.clone();
        if exists_is_ok || password::verify_on_pool(password.to_owned(), existing.record).await? {
            Ok(())
        } else {
            Err(UserError::Conflict { login })
        }
    }

    /// Replaces the full name and groups.
    pub async fn update(
        &self,
        login: &str,
        full_name: &str,
        groups: &[String],
    ) -> Result<(), UserError> {
        check_fields(login, full_name, groups).map_err(|e| UserError::Invalid(e.to_string()))?;
        self.modify(login, |r| UserRecord {
            full_name: full_name.to_owned(),
            groups: groups.to_vec(),
            ..r.clone()
        })
        .await?;
        store::notify_password_changed(&self.node, login).await
    }

    /// Disables the user: its credentials are refused from now on.
    pub async fn disable(&self, login: &str) -> Result<(), UserError> {
        self.modify(login, |r| UserRecord {
            disabled: true,
            ..r.clone()
        })
        .await?;
        store::notify_password_changed(&self.node, login).await
    }

    /// Enables the user again.
    pub async fn enable(&self, login: &str) -> Result<(), UserError> {
        self.modify(login, |r| UserRecord {
            disabled: false,
            ..r.clone()
        })
        .await
    }

    /// Sets a new password without the current one (an administrator's reset).
    pub async fn reset_password(&self, login: &str, new_password: &str) -> Result<(), UserError> {
        check_password(new_password)?;
        if store::load(&self.node, login).await?.is_none() {
            return Err(not_found(login));
        }
        let hashed = password::hash_on_pool(new_password.to_owned(), self.cost).await?;
        self.modify(login, |r| with_password(r, &hashed)).await?;
        store::notify_password_changed(&self.node, login).await
    }

    /// Sets a new password given the current one; a wrong current password is
    /// [`UserError::AccessDenied`].
    pub async fn change_password(
        &self,
        login: &str,
        current_password: &str,
        new_password: &str,
    ) -> Result<(), UserError> {
        check_password(new_password)?;
        let mut hashed: Option<HashedPassword> = None;
        for attempt in 0..USER_WRITE_ATTEMPTS {
            retry_pause(attempt).await;
            let user = store::load(&self.node, login)
                .await?
                .ok_or_else(|| not_found(login))?;
            let current = current_password.to_owned();
            if !password::verify_on_pool(current, user.record.clone()).await? {
                return Err(UserError::AccessDenied);
            }
            let new = match &hashed {
                Some(new) => new.clone(),
                None => hashed
                    .insert(password::hash_on_pool(new_password.to_owned(), self.cost).await?)
                    .clone(),
            };
            let event = with_password(&user.record, &new).to_event(USER_UPDATED);
            let expected = ExpectedRevision::Exact(user.revision);
            if store::write_record(&self.node, login, expected, event).await? {
                return store::notify_password_changed(&self.node, login).await;
            }
        }
        Err(UserError::TryAgain {
            login: login.to_owned(),
        })
    }

    /// Deletes the user: soft-deletes `$user-<login>` (it may be created again).
    pub async fn delete(&self, login: &str) -> Result<(), UserError> {
        let stream = store::user_stream(login)?;
        for attempt in 0..USER_WRITE_ATTEMPTS {
            retry_pause(attempt).await;
            let user = store::load(&self.node, login)
                .await?
                .ok_or_else(|| not_found(login))?;
            let expected = ExpectedRevision::Exact(user.revision);
            let outcome = self
                .node
                .delete(stream.clone(), expected, DeleteKind::Soft, false)
                .await
                .map_err(|e| UserError::write(login, e))?;
            if let DeleteOutcome::Deleted { .. } = outcome {
                return store::notify_password_changed(&self.node, login).await;
            }
        }
        Err(UserError::TryAgain {
            login: login.to_owned(),
        })
    }

    /// One user's details.
    pub async fn details(&self, login: &str) -> Result<UserDetails, UserError> {
        store::load(&self.node, login)
            .await?
            .map(UserDetails::from)
            .ok_or_else(|| not_found(login))
    }

    /// Every user's details, sorted by login name (byte order).
    pub async fn all_details(&self) -> Result<Vec<UserDetails>, UserError> {
        let users = store::load_all(&self.node).await?;
        Ok(users.into_iter().map(UserDetails::from).collect())
    }

    /// Reads the user, applies `change`, writes the result at the revision read; again when
    /// the record moved.
    async fn modify(
        &self,
        login: &str,
        change: impl Fn(&UserRecord) -> UserRecord,
    ) -> Result<(), UserError> {
        for attempt in 0..USER_WRITE_ATTEMPTS {
            retry_pause(attempt).await;
            let user = store::load(&self.node, login)
                .await?
                .ok_or_else(|| not_found(login))?;
            let event = change(&user.record).to_event(USER_UPDATED);
            let expected = ExpectedRevision::Exact(user.revision);
            if store::write_record(&self.node, login, expected, event).await? {
                return Ok(());
            }
        }
        Err(UserError::TryAgain {
            login: login.to_owned(),
        })
    }
}

async fn retry_pause(attempt: u32) {
    if attempt > 0 {
        tokio::time::sleep(USER_WRITE_RETRY_DELAY * attempt).await;
    }
}

fn new_record(
    login: &str,
    full_name: &str,
    groups: &[String],
    hashed: HashedPassword,
) -> UserRecord {
    UserRecord {
        login_name: login.to_owned(),
        full_name: full_name.to_owned(),
        salt: hashed.salt,
        hash: hashed.hash,
        hash_algorithm: HASH_ALGORITHM_ARGON2ID.to_owned(),
        disabled: false,
        groups: groups.to_vec(),
    }
}

fn with_password(record: &UserRecord, hashed: &HashedPassword) -> UserRecord {
    UserRecord {
        salt: hashed.salt.clone(),
        hash: hashed.hash.clone(),
        hash_algorithm: HASH_ALGORITHM_ARGON2ID.to_owned(),
        ..record.clone()
    }
}

/// [`Users::ensure_default_users`] at [`HashCost::RECOMMENDED`].
pub async fn ensure_default_users(
    node: &Node,
    admin_password: &str,
    ops_password: &str,
) -> Result<(), UserError> {
    Users::new(node.clone())
        .ensure_default_users(admin_password, ops_password)
        .await
}

impl Users {
    /// Creates `admin` (in `$admins`) and `ops` (in `$ops`) with these passwords when they
    /// do not exist (never created, or deleted), as EventStoreDB does when a node becomes
    /// leader, and gives `$users-password-notifications` its `$maxAge`. Safe to call on every
    /// leader change and concurrently with itself, on any node: a user that exists, whatever
    /// its password, is left alone, and each write is conditional (of two racing calls, the
    /// second writes nothing).
    pub async fn ensure_default_users(
        &self,
        admin_password: &str,
        ops_password: &str,
    ) -> Result<(), UserError> {
        store::write_notifications_max_age(&self.node).await?;
        let defaults = [
            (ADMIN_LOGIN, ADMIN_FULL_NAME, ADMINS_GROUP, admin_password),
            (OPS_LOGIN, OPS_FULL_NAME, OPS_GROUP, ops_password),
        ];
        for (login, full_name, group, password) in defaults {
            let groups = [group.to_owned()];
            self.create_inner(login, full_name, &groups, password, true)
                .await?;
        }
        Ok(())
    }
}
