//! The Users service's statuses (PROTOCOL-OPS.md §3.3, EventStoreDB's `Grpc/Users.cs`
//! `HandleErrors`): part of [`super`], the one place errors become gRPC statuses.

use stele_services::users::record::USERS_STREAM;
use stele_services::users::UserError;
use tonic::{Code, Status};

use super::{
    access_denied, exception, internal, invalid_argument, read_error, trailer, with_trailers,
    write_error,
};

/// A failed user operation:
/// - not found → NOT_FOUND `User '<login>' is not found.`, `exception: user-not-found`;
/// - conflict → FAILED_PRECONDITION `Conflict.`, `exception: user-conflict`;
/// - try again (a write timeout, or a record that kept moving) → DEADLINE_EXCEEDED
///   `Try again.`, `exception: user-conflict` (EventStoreDB's trailer for it too);
///
/// each with `login-name`; a wrong current password → PERMISSION_DENIED `Access Denied`
/// (`exception: access-denied`); a request outside the bounds → INVALID_ARGUMENT with the
/// reason; the node's own errors as every other service answers them (not leader, not
/// ready, ...); a damaged record or a fault of this process → UNKNOWN, the detail in the
/// log only.
pub fn user_error(error: &UserError) -> Status {
    let user = |code: Code, message: String, exception: &'static str, login: &str| {
        with_trailers(
            code,
            message,
            &[
                (trailer::EXCEPTION, exception),
                (trailer::LOGIN_NAME, login),
            ],
        )
    };
    match error {
        UserError::NotFound { login } => user(
            Code::NotFound,
            format!("User '{login}' is not found."),
            exception::USER_NOT_FOUND,
            login,
        ),
        UserError::Conflict { login } => user(
            Code::FailedPrecondition,
            "Conflict.".to_owned(),
            exception::USER_CONFLICT,
            login,
        ),
        UserError::TryAgain { login } => user(
            Code::DeadlineExceeded,
            "Try again.".to_owned(),
            exception::USER_CONFLICT,
            login,
        ),
        UserError::AccessDenied => access_denied(),
        UserError::Invalid(reason) => invalid_argument(reason.clone()),
        // The users' writes name no one stream; the name only words a timeout, and a user
        // write's timeout is `TryAgain` already.
        UserError::Write(error) => write_error(USERS_STREAM, error),
        UserError::Read(error) => read_error(error),
        UserError::BadRecord { .. } | UserError::Internal(_) => internal(&error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use stele_cluster::{ReadError, WriteError};

    use super::super::UNHANDLED_MESSAGE;
    use super::*;

    fn trailer<'a>(status: &'a Status, key: &str) -> Option<&'a [u8]> {
        status.metadata().get(key).map(|v| v.as_bytes())
    }

    #[test]
    fn user_errors_follow_the_table() {
        let cases = [
            (
                UserError::NotFound {
                    login: "ouro".into(),
                },
                Code::NotFound,
                "User 'ouro' is not found.",
                "user-not-found",
            ),
            (
                UserError::Conflict {
                    login: "ouro".into(),
                },
                Code::FailedPrecondition,
                "Conflict.",
                "user-conflict",
            ),
            (
                UserError::TryAgain {
                    login: "ouro".into(),
                },
                Code::DeadlineExceeded,
                "Try again.",
                "user-conflict",
            ),
        ];
        for (error, code, message, exception) in cases {
            let status = user_error(&error);
            assert_eq!(status.code(), code, "{error:?}");
            assert_eq!(status.message(), message);
            // The service's own text says the same.
            assert_eq!(error.to_string(), message);
            assert_eq!(trailer(&status, "exception"), Some(exception.as_bytes()));
            assert_eq!(trailer(&status, "login-name"), Some(&b"ouro"[..]));
        }
    }

    #[test]
    fn a_wrong_current_password_is_access_denied() {
        let status = user_error(&UserError::AccessDenied);
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(status.message(), "Access Denied");
        assert_eq!(trailer(&status, "exception"), Some(&b"access-denied"[..]));
        assert_eq!(trailer(&status, "login-name"), None);
    }

    #[test]
    fn login_names_pass_as_utf8_bytes() {
        let status = user_error(&UserError::NotFound {
            login: "józef".into(),
        });
        assert_eq!(status.message(), "User 'józef' is not found.");
        assert_eq!(trailer(&status, "login-name"), Some("józef".as_bytes()));
    }

    #[test]
    fn invalid_requests_keep_their_reason() {
        let status = user_error(&UserError::Invalid("the login name is empty".into()));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "the login name is empty");
        assert!(status.metadata().is_empty());
    }

    /// Errors of the node reach the client as every other service answers them: a client
    /// reconnects to the leader on NOT_FOUND `Leader info available` whatever it called.
    #[test]
    fn node_errors_reuse_the_node_statuses() {
        let status = user_error(&UserError::Write(WriteError::NotLeader {
            leader: Some(("node2".into(), 2113)),
        }));
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "Leader info available");
        assert_eq!(trailer(&status, "exception"), Some(&b"not-leader"[..]));
        assert_eq!(trailer(&status, "leader-endpoint-port"), Some(&b"2113"[..]));
        let status = user_error(&UserError::Write(WriteError::NotReady));
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "Server Is Not Ready");
        let status = user_error(&UserError::Read(ReadError::NotLeader { leader: None }));
        assert_eq!(status.code(), Code::Unknown);
        assert_eq!(status.message(), "No leader info available in response");
        let status = user_error(&UserError::Read(ReadError::NotReady));
        assert_eq!(status.code(), Code::Unavailable);
    }

    #[test]
    fn damaged_records_and_faults_are_unknown_without_their_detail() {
        for error in [
            UserError::BadRecord {
                login: "ouro".into(),
                detail: "the latest event is a $Secret".into(),
            },
            UserError::Internal("a hashing task panicked".into()),
        ] {
            let status = user_error(&error);
            assert_eq!(status.code(), Code::Unknown, "{error:?}");
            assert_eq!(status.message(), UNHANDLED_MESSAGE);
            assert!(status.metadata().is_empty());
        }
    }
}
