//! Users (issue 13; PROTOCOL-OPS.md §3): the accounts Basic credentials name,
//! kept in the log as EventStoreDB keeps them, and the authenticator that checks credentials
//! on every request.
//!
//! - [`record`]: the user record (`$user-<login>`, JSON), the `$users` index event and the
//!   `$PasswordChanged` notification, with a bounded decoder that never panics;
//! - [`password`]: Argon2id password hashes (why not EventStoreDB's PBKDF2 is said there),
//!   computed on the blocking pool;
//! - [`Users`] (`service.rs`, over `store.rs`): Create, Update, Delete, Disable, Enable,
//!   Details, ChangePassword, ResetPassword, and [`ensure_default_users`];
//! - [`Authenticator`] (`auth.rs`, with `cache.rs` and `throttle.rs`): login and password →
//!   [`stele_core::access::Principal`], successful checks cached, failed ones rate-limited.
//!
//! **Storage** (as EventStoreDB): `$user-<login>` holds `$UserCreated` then `$UserUpdated`
//! events, each the whole record; its metadata gives `$w`, `$d` and `$mw` to `$admins`. A
//! delete soft-deletes the stream (the node records `$tb`, keeping the ACL), so the login can
//! be created again. `$users` holds one `$User` event per created login (plain text), whose
//! id is derived from the login so that writing it again is a no-op.
//! `$users-password-notifications` gets a `$PasswordChanged` event whenever a user's
//! credentials or groups change or it is disabled or deleted (`$maxAge` one hour).
//!
//! **Authorization is the caller's**: the API layer checks that the caller may call an
//! operation (`$admins` for all but Details and ChangePassword); the only check made here
//! is ChangePassword's current password.

mod auth;
mod cache;
mod error;
pub mod password;
pub mod record;
mod service;
mod store;
mod throttle;

#[cfg(test)]
mod tests;

pub use auth::{AuthError, Authenticator};
pub use error::UserError;
pub use service::{ensure_default_users, UserDetails, Users};

/// The login of the default administrator.
pub const ADMIN_LOGIN: &str = "admin";
/// The default administrator's full name (EventStoreDB 25.x's, for compatibility).
pub const ADMIN_FULL_NAME: &str = "KurrentDB Administrator";
/// The login of the default operator.
pub const OPS_LOGIN: &str = "ops";
/// The default operator's full name (EventStoreDB 25.x's).
pub const OPS_FULL_NAME: &str = "KurrentDB Operations";
