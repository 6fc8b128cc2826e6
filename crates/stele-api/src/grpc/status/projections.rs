//! The Projections service's statuses (PROTOCOL-OPS.md §1.4, EventStoreDB 24.6 to 25.1):
//! part of [`super`], the one place errors become gRPC statuses. The texts are the ones
//! 24.x/25.x clients match on (the Python and Rust clients read `…received Conflict
//! instead` as AlreadyExists, `…received OperationFailed instead` as OperationFailed,
//! `Exception was thrown by handler` as ExceptionThrownByHandler).

use stele_projections::ProjectionError;
use tonic::{Code, Status};

use super::{not_leader, not_ready, UNHANDLED_MESSAGE};

/// EventStoreDB's text for a manager reply of the wrong kind: `Envelope callback expected
/// Updated, received <kind> instead`.
fn envelope_mismatch(received: &str) -> Status {
    Status::new(
        Code::Unknown,
        format!("Envelope callback expected Updated, received {received} instead"),
    )
}

/// A failed projections request:
/// - not found → NOT_FOUND `Projection '<name>' not found` (no trailers);
/// - conflict, operation failed, not authorized → UNKNOWN `Envelope callback expected
///   Updated, received <Conflict|OperationFailed|NotAuthorized> instead` (the reason stays
///   in the log);
/// - an invalid request (track without emit) → UNKNOWN `Exception was thrown by handler.`;
/// - RestartSubsystem in the wrong state → FAILED_PRECONDITION with the reason;
/// - not leader and not ready → as every other service answers them;
/// - projections not run on this node → UNIMPLEMENTED.
pub fn projection_error(error: &ProjectionError) -> Status {
    match error {
        ProjectionError::NotFound(name) => {
            Status::new(Code::NotFound, format!("Projection '{name}' not found"))
        }
        ProjectionError::Conflict(_) => envelope_mismatch("Conflict"),
        ProjectionError::OperationFailed(reason) => {
            tracing::debug!(reason, "a projections request failed");
            envelope_mismatch("OperationFailed")
        }
        ProjectionError::NotAuthorized => envelope_mismatch("NotAuthorized"),
        ProjectionError::InvalidRequest(reason) => {
            tracing::debug!(reason, "an invalid projections request");
            Status::new(Code::Unknown, UNHANDLED_MESSAGE)
        }
        ProjectionError::WrongState(_) => Status::new(Code::FailedPrecondition, error.to_string()),
        ProjectionError::NotLeader { leader } => not_leader(leader.as_ref()),
        ProjectionError::NotReady => not_ready(),
        ProjectionError::Disabled => Status::new(Code::Unimplemented, error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trailer<'a>(status: &'a Status, key: &str) -> Option<&'a [u8]> {
        status.metadata().get(key).map(|v| v.as_bytes())
    }

    #[test]
    fn projection_errors_follow_the_table() {
        let cases = [
            (
                ProjectionError::NotFound("counter".into()),
                Code::NotFound,
                "Projection 'counter' not found",
            ),
            (
                ProjectionError::Conflict("counter".into()),
                Code::Unknown,
                "Envelope callback expected Updated, received Conflict instead",
            ),
            (
                ProjectionError::OperationFailed(
                    "Cannot delete a projection that hasn't been stopped or faulted.".into(),
                ),
                Code::Unknown,
                "Envelope callback expected Updated, received OperationFailed instead",
            ),
            (
                ProjectionError::NotAuthorized,
                Code::Unknown,
                "Envelope callback expected Updated, received NotAuthorized instead",
            ),
            (
                ProjectionError::InvalidRequest("track without emit".into()),
                Code::Unknown,
                "Exception was thrown by handler.",
            ),
            (
                ProjectionError::WrongState("Stopping".into()),
                Code::FailedPrecondition,
                "Projection Subsystem cannot be restarted as it is in the wrong state: Stopping",
            ),
            (
                ProjectionError::NotReady,
                Code::Unavailable,
                "Server Is Not Ready",
            ),
        ];
        for (error, code, message) in cases {
            let status = projection_error(&error);
            assert_eq!(status.code(), code, "{error:?}");
            assert_eq!(status.message(), message, "{error:?}");
            // No trailers: the clients read the code and the text only.
            assert!(status.metadata().is_empty(), "{error:?}");
        }
        assert_eq!(
            projection_error(&ProjectionError::Disabled).code(),
            Code::Unimplemented
        );
    }

    #[test]
    fn not_leader_is_the_answer_of_every_other_service() {
        let status = projection_error(&ProjectionError::NotLeader {
            leader: Some(("node2".into(), 2113)),
        });
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "Leader info available");
        assert_eq!(trailer(&status, "exception"), Some(&b"not-leader"[..]));
        assert_eq!(
            trailer(&status, "leader-endpoint-host"),
            Some(&b"node2"[..])
        );
        assert_eq!(trailer(&status, "leader-endpoint-port"), Some(&b"2113"[..]));
        let status = projection_error(&ProjectionError::NotLeader { leader: None });
        assert_eq!(status.code(), Code::Unknown);
        assert_eq!(status.message(), "No leader info available in response");
    }
}
