//! `Streams.Delete` and `Streams.Tombstone` (PROTOCOL.md §5.3): unary, answered with the
//! position of the delete record. Unlike Append, a wrong expected version here is a
//! FAILED_PRECONDITION status whose text the Python client parses.

use stele_cluster::{DeleteOutcome, Node, WriteError};
use stele_core::{DeleteKind, ExpectedRevision, LogPosition, StreamName};
use stele_proto::shared::{Empty, StreamIdentifier};
use stele_proto::streams::{delete_req, delete_resp, tombstone_req, tombstone_resp};
use stele_proto::streams::{DeleteReq, DeleteResp, TombstoneReq, TombstoneResp};
use tonic::Status;

use stele_core::access::StreamAccess;

use crate::grpc::caller::Caller;
use crate::grpc::events;
use crate::grpc::status;

/// Delete and Tombstone carry the same expected-revision oneof as two generated types.
macro_rules! expected_revision {
    ($options:expr, $oneof:ty) => {{
        type E = $oneof;
        match $options.expected_stream_revision {
            Some(E::Revision(revision)) => Ok(ExpectedRevision::Exact(revision)),
            Some(E::NoStream(_)) => Ok(ExpectedRevision::NoStream),
            Some(E::Any(_)) => Ok(ExpectedRevision::Any),
            Some(E::StreamExists(_)) => Ok(ExpectedRevision::StreamExists),
            None => Err(status::not_a_valid(
                "None",
                "ExpectedStreamRevisionOneofCase",
            )),
        }
    }};
}

pub async fn delete(
    node: &Node,
    request: DeleteReq,
    requires_leader: bool,
    caller: &Caller,
) -> Result<DeleteResp, Status> {
    let options = request
        .options
        .ok_or_else(|| status::required_argument("options", "Options"))?;
    let expected = expected_revision!(options, delete_req::options::ExpectedStreamRevision)?;
    let position = run(
        node,
        options.stream_identifier.as_ref(),
        expected,
        DeleteKind::Soft,
        requires_leader,
        caller,
    )
    .await?;
    Ok(DeleteResp {
        position_option: Some(match position {
            Some(p) => delete_resp::PositionOption::Position(delete_resp::Position {
                commit_position: p.0,
                prepare_position: p.0,
            }),
            None => delete_resp::PositionOption::NoPosition(Empty {}),
        }),
    })
}

pub async fn tombstone(
    node: &Node,
    request: TombstoneReq,
    requires_leader: bool,
    caller: &Caller,
) -> Result<TombstoneResp, Status> {
    let options = request
        .options
        .ok_or_else(|| status::required_argument("options", "Options"))?;
    let expected = expected_revision!(options, tombstone_req::options::ExpectedStreamRevision)?;
    let position = run(
        node,
        options.stream_identifier.as_ref(),
        expected,
        DeleteKind::Hard,
        requires_leader,
        caller,
    )
    .await?;
    Ok(TombstoneResp {
        position_option: Some(match position {
            Some(p) => tombstone_resp::PositionOption::Position(tombstone_resp::Position {
                commit_position: p.0,
                prepare_position: p.0,
            }),
            None => tombstone_resp::PositionOption::NoPosition(Empty {}),
        }),
    })
}

/// Runs the delete as its own task (a client that hangs up does not cut it short) and maps
/// its outcome. The node always reports a position for a delete it decided, so
/// `no_position` is never sent today; the `Option` keeps the wire's shape.
async fn run(
    node: &Node,
    identifier: Option<&StreamIdentifier>,
    expected: ExpectedRevision,
    kind: DeleteKind,
    requires_leader: bool,
    caller: &Caller,
) -> Result<Option<LogPosition>, Status> {
    let stream: StreamName = events::stream_name(identifier)?;
    caller
        .may_access(stream.as_str(), StreamAccess::Delete)
        .await?;
    let node = node.clone();
    let task_stream = stream.clone();
    let outcome = tokio::spawn(async move {
        node.delete(task_stream, expected, kind, requires_leader)
            .await
    })
    .await
    .unwrap_or_else(|join| Err(WriteError::Internal(format!("delete task failed: {join}"))));
    delete_outcome(stream.as_str(), outcome)
}

fn delete_outcome(
    stream: &str,
    outcome: Result<DeleteOutcome, WriteError>,
) -> Result<Option<LogPosition>, Status> {
    match outcome {
        Ok(DeleteOutcome::Deleted { position }) => Ok(Some(position)),
        Ok(DeleteOutcome::WrongExpectedVersion { current, expected }) => Err(
            status::delete_wrong_expected_version(stream, expected, current),
        ),
        Err(error) => Err(status::write_error(stream, &error)),
    }
}

#[cfg(test)]
mod tests {
    use stele_core::StreamRevision;
    use tonic::Code;

    use super::*;

    #[test]
    fn outcomes_map_to_position_or_status() {
        assert_eq!(
            delete_outcome(
                "s",
                Ok(DeleteOutcome::Deleted {
                    position: LogPosition(9)
                })
            )
            .unwrap(),
            Some(LogPosition(9))
        );
        let wrong = delete_outcome(
            "s",
            Ok(DeleteOutcome::WrongExpectedVersion {
                current: Some(StreamRevision(1)),
                expected: ExpectedRevision::NoStream,
            }),
        )
        .unwrap_err();
        assert_eq!(wrong.code(), Code::FailedPrecondition);
        assert_eq!(
            wrong.message(),
            "Delete failed due to WrongExpectedVersion. Stream: s, Expected version: -1, Actual version: 1"
        );
        let deleted = delete_outcome(
            "s",
            Err(WriteError::StreamDeleted(StreamName::new("s").unwrap())),
        )
        .unwrap_err();
        assert_eq!(deleted.code(), Code::FailedPrecondition);
        assert!(deleted.message().contains("is deleted"));
    }
}
