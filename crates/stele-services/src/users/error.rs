//! What a user operation can fail with: EventStoreDB's four (PROTOCOL-OPS.md §3.3), the
//! node's own errors wrapped, and what the request or the log got wrong. `stele-api`'s
//! `status.rs` turns them into statuses; nothing here knows the wire.

use stele_cluster::{ReadError, WriteError};

/// Why a user operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// No such user (never created, or deleted).
    #[error("User '{login}' is not found.")]
    NotFound { login: String },
    /// Create of a login that exists with another password.
    #[error("Conflict.")]
    Conflict { login: String },
    /// The write timed out, or the user's record kept changing under a read-modify-write:
    /// the caller may send the operation again.
    #[error("Try again.")]
    TryAgain { login: String },
    /// ChangePassword with a wrong current password.
    #[error("Access Denied")]
    AccessDenied,
    /// A request outside the bounds (`record::check_fields`, the password length).
    #[error("invalid user request: {0}")]
    Invalid(String),
    /// The user's stream holds something that is not a user record (written by hand, or
    /// damaged).
    #[error("the record of user '{login}' cannot be read: {detail}")]
    BadRecord { login: String, detail: String },
    #[error(transparent)]
    Write(WriteError),
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A fault of this process's machinery (a blocking task that panicked).
    #[error("internal error: {0}")]
    Internal(String),
}

impl UserError {
    /// The node's write error, as the operation on `login` reports it: a timeout is
    /// [`UserError::TryAgain`] (EventStoreDB's answer to a commit timeout).
    pub(crate) fn write(login: &str, error: WriteError) -> UserError {
        match error {
            WriteError::Timeout => UserError::TryAgain {
                login: login.to_owned(),
            },
            other => UserError::Write(other),
        }
    }
}
