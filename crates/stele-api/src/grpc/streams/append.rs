//! `Streams.Append` (PROTOCOL.md §5.1): a client stream whose first message carries the
//! options and every later one a proposed event, answered by one `AppendResp`.
//!
//! Success sets both oneofs (revision and position, commit = prepare) and a wrong expected
//! version answers in band with the legacy fields 1–5 and the current fields 6–11 all set:
//! the Rust client unwraps the current ones and panics on a missing oneof. Every other
//! failure ends the call with a status from [`crate::grpc::status`].
//!
//! Events are collected only up to the node's maximum append size: the call fails as soon as
//! the running total passes it, so a huge append never sits in memory whole.

use stele_cluster::{AppendOutcome, Node};
use stele_core::{ExpectedRevision, StreamName};
use stele_proto::shared::Empty;
use stele_proto::streams::append_req::{self, options::ExpectedStreamRevision};
use stele_proto::streams::append_resp::{self, success, wrong_expected_version as wev};
use stele_proto::streams::{AppendReq, AppendResp};
use tonic::{Status, Streaming};

use stele_core::access::StreamAccess;

use crate::grpc::caller::Caller;
use crate::grpc::events;
use crate::grpc::status;

pub async fn append(
    node: &Node,
    mut requests: Streaming<AppendReq>,
    requires_leader: bool,
    caller: &Caller,
) -> Result<AppendResp, Status> {
    let max_bytes = node.max_append_size_bytes();
    let stream_error = |e| status::append_request_error(e, max_bytes);
    let options = match requests.message().await.map_err(stream_error)? {
        Some(AppendReq {
            content: Some(append_req::Content::Options(options)),
        }) => options,
        Some(_) => {
            return Err(status::invalid_argument(
                "The first AppendReq message must carry options.",
            ))
        }
        None => return Err(status::invalid_argument("AppendReq options are missing.")),
    };
    let stream = events::stream_name(options.stream_identifier.as_ref())?;
    let expected = expected_revision(options.expected_stream_revision)?;
    // Before the events are read: a caller who may not write sends them in vain.
    caller
        .may_access(stream.as_str(), StreamAccess::Write)
        .await?;

    let mut size_bytes = 0usize;
    let mut proposed = Vec::new();
    while let Some(message) = requests.message().await.map_err(stream_error)? {
        let Some(append_req::Content::ProposedMessage(message)) = message.content else {
            return Err(status::invalid_argument(
                "Every AppendReq message after the first must carry a proposed message.",
            ));
        };
        let event = events::proposed_event(
            message.id.as_ref(),
            &message.metadata,
            message.custom_metadata,
            message.data,
        )?;
        // What the append costs in the log, as the node counts it (stele_core::validation).
        size_bytes = size_bytes.saturating_add(event.stored_size_bytes(&stream));
        if size_bytes > max_bytes as usize {
            return Err(status::maximum_append_size_exceeded(max_bytes));
        }
        proposed.push(event);
    }

    let outcome =
        run_to_completion(node, stream.clone(), expected, proposed, requires_leader).await;
    match outcome {
        Ok(outcome) => Ok(append_resp(outcome)),
        Err(error) => Err(status::write_error(stream.as_str(), &error)),
    }
}

/// The append runs as its own task, so a client that hangs up does not cut a write short
/// between proposing it and learning its outcome.
async fn run_to_completion(
    node: &Node,
    stream: StreamName,
    expected: ExpectedRevision,
    proposed: Vec<stele_core::ProposedEvent>,
    requires_leader: bool,
) -> Result<AppendOutcome, stele_cluster::WriteError> {
    let node = node.clone();
    tokio::spawn(async move {
        node.append(stream, expected, proposed, requires_leader)
            .await
    })
    .await
    .unwrap_or_else(|join| {
        Err(stele_cluster::WriteError::Internal(format!(
            "append task failed: {join}"
        )))
    })
}

fn expected_revision(option: Option<ExpectedStreamRevision>) -> Result<ExpectedRevision, Status> {
    match option {
        Some(ExpectedStreamRevision::Revision(revision)) => Ok(ExpectedRevision::Exact(revision)),
        Some(ExpectedStreamRevision::NoStream(_)) => Ok(ExpectedRevision::NoStream),
        Some(ExpectedStreamRevision::Any(_)) => Ok(ExpectedRevision::Any),
        Some(ExpectedStreamRevision::StreamExists(_)) => Ok(ExpectedRevision::StreamExists),
        None => Err(status::not_a_valid(
            "None",
            "ExpectedStreamRevisionOneofCase",
        )),
    }
}

/// The wire answer to an append that reached a decision.
pub fn append_resp(outcome: AppendOutcome) -> AppendResp {
    let result = match outcome {
        AppendOutcome::Success {
            current_revision,
            position,
        } => append_resp::Result::Success(append_resp::Success {
            current_revision_option: Some(match current_revision {
                Some(revision) => success::CurrentRevisionOption::CurrentRevision(revision.0),
                None => success::CurrentRevisionOption::NoStream(Empty {}),
            }),
            position_option: Some(match position {
                Some(position) => success::PositionOption::Position(append_resp::Position {
                    commit_position: position.0,
                    prepare_position: position.0,
                }),
                None => success::PositionOption::NoPosition(Empty {}),
            }),
        }),
        AppendOutcome::WrongExpectedVersion { current, expected } => {
            let (current_legacy, current_now) = match current {
                Some(revision) => (
                    wev::CurrentRevisionOption2060::CurrentRevision2060(revision.0),
                    wev::CurrentRevisionOption::CurrentRevision(revision.0),
                ),
                None => (
                    wev::CurrentRevisionOption2060::NoStream2060(Empty {}),
                    wev::CurrentRevisionOption::CurrentNoStream(Empty {}),
                ),
            };
            let (expected_legacy, expected_now) = match expected {
                ExpectedRevision::Any => (
                    wev::ExpectedRevisionOption2060::Any2060(Empty {}),
                    wev::ExpectedRevisionOption::ExpectedAny(Empty {}),
                ),
                ExpectedRevision::StreamExists => (
                    wev::ExpectedRevisionOption2060::StreamExists2060(Empty {}),
                    wev::ExpectedRevisionOption::ExpectedStreamExists(Empty {}),
                ),
                // The legacy fields have no "no stream"; EventStoreDB writes u64::MAX there.
                ExpectedRevision::NoStream => (
                    wev::ExpectedRevisionOption2060::ExpectedRevision2060(u64::MAX),
                    wev::ExpectedRevisionOption::ExpectedNoStream(Empty {}),
                ),
                ExpectedRevision::Exact(revision) => (
                    wev::ExpectedRevisionOption2060::ExpectedRevision2060(revision),
                    wev::ExpectedRevisionOption::ExpectedRevision(revision),
                ),
            };
            append_resp::Result::WrongExpectedVersion(append_resp::WrongExpectedVersion {
                current_revision_option_20_6_0: Some(current_legacy),
                expected_revision_option_20_6_0: Some(expected_legacy),
                current_revision_option: Some(current_now),
                expected_revision_option: Some(expected_now),
            })
        }
    };
    AppendResp {
        result: Some(result),
    }
}

#[cfg(test)]
mod tests {
    use stele_core::{LogPosition, StreamRevision};

    use super::*;

    #[test]
    fn success_sets_both_oneofs_with_commit_equal_to_prepare() {
        let resp = append_resp(AppendOutcome::Success {
            current_revision: Some(StreamRevision(3)),
            position: Some(LogPosition(4096)),
        });
        let Some(append_resp::Result::Success(s)) = resp.result else {
            panic!("expected success");
        };
        assert_eq!(
            s.current_revision_option,
            Some(success::CurrentRevisionOption::CurrentRevision(3))
        );
        assert_eq!(
            s.position_option,
            Some(success::PositionOption::Position(append_resp::Position {
                commit_position: 4096,
                prepare_position: 4096,
            }))
        );
    }

    #[test]
    fn empty_append_to_a_missing_stream_answers_no_stream_and_no_position() {
        let resp = append_resp(AppendOutcome::Success {
            current_revision: None,
            position: None,
        });
        let Some(append_resp::Result::Success(s)) = resp.result else {
            panic!("expected success");
        };
        assert_eq!(
            s.current_revision_option,
            Some(success::CurrentRevisionOption::NoStream(Empty {}))
        );
        assert_eq!(
            s.position_option,
            Some(success::PositionOption::NoPosition(Empty {}))
        );
    }

    fn wrong(
        current: Option<StreamRevision>,
        expected: ExpectedRevision,
    ) -> append_resp::WrongExpectedVersion {
        match append_resp(AppendOutcome::WrongExpectedVersion { current, expected }).result {
            Some(append_resp::Result::WrongExpectedVersion(w)) => w,
            other => panic!("expected wrong expected version, got {other:?}"),
        }
    }

    #[test]
    fn wrong_expected_version_fills_legacy_and_current_fields() {
        let w = wrong(Some(StreamRevision(5)), ExpectedRevision::Exact(2));
        assert_eq!(
            w.current_revision_option_20_6_0,
            Some(wev::CurrentRevisionOption2060::CurrentRevision2060(5))
        );
        assert_eq!(
            w.expected_revision_option_20_6_0,
            Some(wev::ExpectedRevisionOption2060::ExpectedRevision2060(2))
        );
        assert_eq!(
            w.current_revision_option,
            Some(wev::CurrentRevisionOption::CurrentRevision(5))
        );
        assert_eq!(
            w.expected_revision_option,
            Some(wev::ExpectedRevisionOption::ExpectedRevision(2))
        );

        let w = wrong(None, ExpectedRevision::StreamExists);
        assert_eq!(
            w.current_revision_option_20_6_0,
            Some(wev::CurrentRevisionOption2060::NoStream2060(Empty {}))
        );
        assert_eq!(
            w.expected_revision_option_20_6_0,
            Some(wev::ExpectedRevisionOption2060::StreamExists2060(Empty {}))
        );
        assert_eq!(
            w.current_revision_option,
            Some(wev::CurrentRevisionOption::CurrentNoStream(Empty {}))
        );
        assert_eq!(
            w.expected_revision_option,
            Some(wev::ExpectedRevisionOption::ExpectedStreamExists(Empty {}))
        );

        let w = wrong(Some(StreamRevision(0)), ExpectedRevision::NoStream);
        assert_eq!(
            w.expected_revision_option_20_6_0,
            Some(wev::ExpectedRevisionOption2060::ExpectedRevision2060(
                u64::MAX
            ))
        );
        assert_eq!(
            w.expected_revision_option,
            Some(wev::ExpectedRevisionOption::ExpectedNoStream(Empty {}))
        );

        let w = wrong(Some(StreamRevision(0)), ExpectedRevision::Any);
        assert_eq!(
            w.expected_revision_option_20_6_0,
            Some(wev::ExpectedRevisionOption2060::Any2060(Empty {}))
        );
        assert_eq!(
            w.expected_revision_option,
            Some(wev::ExpectedRevisionOption::ExpectedAny(Empty {}))
        );
    }

    #[test]
    fn expected_revision_forms() {
        assert_eq!(
            expected_revision(Some(ExpectedStreamRevision::Revision(4))).unwrap(),
            ExpectedRevision::Exact(4)
        );
        assert_eq!(
            expected_revision(Some(ExpectedStreamRevision::NoStream(Empty {}))).unwrap(),
            ExpectedRevision::NoStream
        );
        assert_eq!(
            expected_revision(Some(ExpectedStreamRevision::Any(Empty {}))).unwrap(),
            ExpectedRevision::Any
        );
        assert_eq!(
            expected_revision(Some(ExpectedStreamRevision::StreamExists(Empty {}))).unwrap(),
            ExpectedRevision::StreamExists
        );
        assert_eq!(
            expected_revision(None).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }
}
