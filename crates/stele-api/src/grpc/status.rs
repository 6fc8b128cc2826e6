//! Where errors become gRPC statuses: every code, message text and trailer of PROTOCOL.md §6
//! is written here and nowhere else, and so are the in-band `google.rpc.Status` answers of
//! BatchAppend (§5.2).
//!
//! Clients match on these exactly. The Rust client reads the `exception` trailer (and the
//! leader trailers) and then the code; the Python client reads the code and the message text
//! (`Leader info available`, `is deleted`, `WrongExpectedVersion`, `Actual version: -1`); the
//! Node client reads `exception` and the named argument trailers. So texts are copied
//! character for character, and UNAVAILABLE/UNKNOWN/INTERNAL are kept for failures of the
//! node itself, because the Rust client answers those by dropping the connection.

use prost::Name;
use stele_cluster::{AdminError, ReadError, WriteError};
use stele_core::{ExpectedRevision, StreamRevision};
use stele_proto::{google_rpc, shared};

use stele_services::persistent::PsError;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

// The Users service's statuses (PROTOCOL-OPS.md §3.3), in `status/users.rs` to keep this
// file short; they are written there and nowhere else.
mod users;
pub use users::user_error;

// The Projections service's statuses (PROTOCOL-OPS.md §1.4), in `status/projections.rs`.
mod projections;
pub use projections::projection_error;

/// Trailer keys (`Constants.Exceptions` in EventStoreDB).
pub mod trailer {
    pub const EXCEPTION: &str = "exception";
    pub const LEADER_ENDPOINT_HOST: &str = "leader-endpoint-host";
    pub const LEADER_ENDPOINT_PORT: &str = "leader-endpoint-port";
    pub const STREAM_NAME: &str = "stream-name";
    pub const EXPECTED_VERSION: &str = "expected-version";
    pub const ACTUAL_VERSION: &str = "actual-version";
    pub const MAXIMUM_APPEND_SIZE: &str = "maximum-append-size";
    pub const MAXIMUM_APPEND_EVENT_SIZE: &str = "maximum-append-event-size";
    pub const EVENT_ID: &str = "event-id";
    pub const PROPOSED_APPEND_EVENT_SIZE: &str = "proposed-append-event-size";
    pub const REQUIRED_METADATA_PROPERTIES: &str = "required-metadata-properties";
    pub const GROUP_NAME: &str = "group-name";
    pub const REASON: &str = "reason";
    pub const LOGIN_NAME: &str = "login-name";
}

/// Values of the `exception` trailer.
pub mod exception {
    pub const NOT_LEADER: &str = "not-leader";
    pub const STREAM_DELETED: &str = "stream-deleted";
    pub const STREAM_NOT_FOUND: &str = "stream-not-found";
    pub const ACCESS_DENIED: &str = "access-denied";
    pub const WRONG_EXPECTED_VERSION: &str = "wrong-expected-version";
    pub const MAXIMUM_APPEND_SIZE_EXCEEDED: &str = "maximum-append-size-exceeded";
    pub const MAXIMUM_APPEND_EVENT_SIZE_EXCEEDED: &str = "maximum-append-event-size-exceeded";
    pub const MISSING_REQUIRED_METADATA_PROPERTY: &str = "missing-required-metadata-property";
    pub const INVALID_TRANSACTION: &str = "invalid-transaction";
    pub const PERSISTENT_SUBSCRIPTION_DOES_NOT_EXIST: &str =
        "persistent-subscription-does-not-exist";
    pub const PERSISTENT_SUBSCRIPTION_EXISTS: &str = "persistent-subscription-exists";
    pub const MAXIMUM_SUBSCRIBERS_REACHED: &str = "maximum-subscribers-reached";
    pub const PERSISTENT_SUBSCRIPTION_DROPPED: &str = "persistent-subscription-dropped";
    pub const PERSISTENT_SUBSCRIPTION_FAILED: &str = "persistent-subscription-failed";
    pub const USER_NOT_FOUND: &str = "user-not-found";
    pub const USER_CONFLICT: &str = "user-conflict";
}

/// The event metadata keys every write must carry, in the order they are checked.
pub const REQUIRED_METADATA: [&str; 2] = ["type", "content-type"];

/// ASP.NET's text for an unhandled exception, which is what EventStoreDB clients see for a
/// server fault.
pub const UNHANDLED_MESSAGE: &str = "Exception was thrown by handler.";

fn with_trailers(
    code: Code,
    message: impl Into<String>,
    trailers: &[(&'static str, &str)],
) -> Status {
    let mut metadata = MetadataMap::new();
    for (key, value) in trailers {
        metadata.insert(*key, metadata_value(value));
    }
    Status::with_metadata(code, message, metadata)
}

/// Header values may carry any octet from 0x20 to 0xFF except DEL, so UTF-8 stream names pass
/// as their bytes; control characters (which no header may hold) become `?`.
fn metadata_value(value: &str) -> MetadataValue<tonic::metadata::Ascii> {
    MetadataValue::try_from(value.as_bytes()).unwrap_or_else(|_| {
        let cleaned: String = value
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        MetadataValue::try_from(cleaned.as_bytes()).expect("control characters were replaced")
    })
}

// ---------------------------------------------------------------------------------------
// Call statuses (PROTOCOL.md §6)

/// This node is not the leader. With a known leader: NOT_FOUND `Leader info available` and
/// the trailers clients use to reconnect; without: UNKNOWN, no trailers.
pub fn not_leader(leader: Option<&(String, u16)>) -> Status {
    match leader {
        Some((host, port)) => with_trailers(
            Code::NotFound,
            "Leader info available",
            &[
                (trailer::EXCEPTION, exception::NOT_LEADER),
                (trailer::LEADER_ENDPOINT_HOST, host),
                (trailer::LEADER_ENDPOINT_PORT, &port.to_string()),
            ],
        ),
        None => Status::new(Code::Unknown, "No leader info available in response"),
    }
}

pub fn not_ready() -> Status {
    Status::new(Code::Unavailable, "Server Is Not Ready")
}

pub fn too_busy() -> Status {
    Status::new(Code::Unavailable, "Server Is Too Busy")
}

/// A tombstoned stream, on reads, appends and deletes.
pub fn stream_deleted(stream: &str) -> Status {
    with_trailers(
        Code::FailedPrecondition,
        format!("Event stream '{stream}' is deleted."),
        &[
            (trailer::EXCEPTION, exception::STREAM_DELETED),
            (trailer::STREAM_NAME, stream),
        ],
    )
}

/// A missing stream, for operations other than reads (reads answer `stream_not_found`).
pub fn stream_not_found(stream: &str) -> Status {
    with_trailers(
        Code::NotFound,
        format!("Event stream '{stream}' is not found."),
        &[
            (trailer::EXCEPTION, exception::STREAM_NOT_FOUND),
            (trailer::STREAM_NAME, stream),
        ],
    )
}

pub fn access_denied() -> Status {
    with_trailers(
        Code::PermissionDenied,
        "Access Denied",
        &[(trailer::EXCEPTION, exception::ACCESS_DENIED)],
    )
}

pub fn invalid_transaction() -> Status {
    with_trailers(
        Code::InvalidArgument,
        "Invalid Transaction",
        &[(trailer::EXCEPTION, exception::INVALID_TRANSACTION)],
    )
}

/// An append, read or delete that timed out: ABORTED (not DEADLINE_EXCEEDED, which is the
/// client's own deadline).
pub fn timeout(detail: &str) -> Status {
    Status::new(Code::Aborted, format!("Operation timed out: {detail}"))
}

/// The failed operation of a delete or tombstone with the wrong expected version. The
/// operation word is `Delete` for both, as in EventStoreDB; `Actual version: -1` is how the
/// Python client recognises a missing stream.
pub fn delete_wrong_expected_version(
    stream: &str,
    expected: ExpectedRevision,
    current: Option<StreamRevision>,
) -> Status {
    let expected = expected.as_i64().to_string();
    let actual = current.map_or(-1, |r| r.0 as i64).to_string();
    with_trailers(
        Code::FailedPrecondition,
        format!(
            "Delete failed due to WrongExpectedVersion. Stream: {stream}, Expected version: {expected}, Actual version: {actual}"
        ),
        &[
            (trailer::EXCEPTION, exception::WRONG_EXPECTED_VERSION),
            (trailer::STREAM_NAME, stream),
            (trailer::EXPECTED_VERSION, &expected),
            (trailer::ACTUAL_VERSION, &actual),
        ],
    )
}

/// An error from reading a client's stream of append requests. A message over the gRPC
/// message limit is, to the client, an append over the maximum size: it gets that error
/// (with its trailers) rather than the transport's OUT_OF_RANGE.
pub fn append_request_error(status: Status, max_append_size_bytes: u32) -> Status {
    if status.code() == Code::OutOfRange && status.message().contains("message length too large") {
        maximum_append_size_exceeded(max_append_size_bytes)
    } else {
        status
    }
}

pub fn maximum_append_size_exceeded(max_bytes: u32) -> Status {
    let max = max_bytes.to_string();
    with_trailers(
        Code::InvalidArgument,
        format!("Maximum Append Size of {max} Exceeded."),
        &[
            (trailer::EXCEPTION, exception::MAXIMUM_APPEND_SIZE_EXCEEDED),
            (trailer::MAXIMUM_APPEND_SIZE, &max),
        ],
    )
}

pub fn maximum_append_event_size_exceeded(
    event_id: &str,
    size_bytes: u64,
    max_bytes: u64,
) -> Status {
    let size = size_bytes.to_string();
    let max = max_bytes.to_string();
    with_trailers(
        Code::InvalidArgument,
        format!(
            "Event with Id: {event_id}, Size: {size}, exceeds Maximum Append Event Size of {max}."
        ),
        &[
            (
                trailer::EXCEPTION,
                exception::MAXIMUM_APPEND_EVENT_SIZE_EXCEEDED,
            ),
            (trailer::MAXIMUM_APPEND_EVENT_SIZE, &max),
            (trailer::EVENT_ID, event_id),
            (trailer::PROPOSED_APPEND_EVENT_SIZE, &size),
        ],
    )
}

/// A proposed event without `type` or `content-type` metadata.
pub fn missing_required_metadata(key: &str) -> Status {
    with_trailers(
        Code::InvalidArgument,
        format!("Required Metadata Property '{key}' is missing"),
        &[
            (
                trailer::EXCEPTION,
                exception::MISSING_REQUIRED_METADATA_PROPERTY,
            ),
            (
                trailer::REQUIRED_METADATA_PROPERTIES,
                &REQUIRED_METADATA.join(","),
            ),
        ],
    )
}

pub fn invalid_position() -> Status {
    Status::new(
        Code::InvalidArgument,
        "Trying to read from an invalid position.",
    )
}

/// A malformed request: INVALID_ARGUMENT with a message for a person.
pub fn invalid_argument(message: impl Into<String>) -> Status {
    Status::new(Code::InvalidArgument, message)
}

/// `'<value>' is not a valid <type>`, EventStoreDB's text for an unusable option value.
pub fn not_a_valid(value: impl std::fmt::Display, type_name: &str) -> Status {
    invalid_argument(format!("'{value}' is not a valid {type_name}"))
}

/// `'<name>' is a required argument of type <type>`.
pub fn required_argument(name: &str, type_name: &str) -> Status {
    invalid_argument(format!(
        "'{name}' is a required argument of type {type_name}"
    ))
}

/// `The combination of (<a>, <b>, ...) is invalid.`
pub fn invalid_combination(parts: &[&str]) -> Status {
    invalid_argument(format!(
        "The combination of ({}) is invalid.",
        parts.join(", ")
    ))
}

/// A fault of this server. The client sees ASP.NET's generic text; the detail goes to the log.
pub fn internal(detail: &str) -> Status {
    tracing::error!(detail, "internal error answered as UNKNOWN");
    Status::new(Code::Unknown, UNHANDLED_MESSAGE)
}

/// A node whose log stopped after an I/O error: UNAVAILABLE like "not ready" (clients retry
/// elsewhere), with the cause, so an operator reading a client's error learns what to fix.
pub fn log_failed(cause: &str) -> Status {
    Status::new(
        Code::Unavailable,
        format!("Server Is Not Ready: the log stopped after an I/O error: {cause}"),
    )
}

/// A write that did not reach a decision, on Append, Delete and Tombstone.
pub fn write_error(stream: &str, error: &WriteError) -> Status {
    match error {
        WriteError::StreamDeleted(name) => stream_deleted(name.as_str()),
        WriteError::MaximumAppendSizeExceeded { max_bytes } => {
            maximum_append_size_exceeded(*max_bytes)
        }
        WriteError::MaximumAppendEventSizeExceeded {
            event_id,
            size_bytes,
            max_bytes,
        } => maximum_append_event_size_exceeded(
            &event_id.to_string(),
            u64::from(*size_bytes),
            u64::from(*max_bytes),
        ),
        WriteError::NotLeader { leader } => not_leader(leader.as_ref()),
        // A stopped consensus engine answers as it did before it had its own variant.
        WriteError::NotReady | WriteError::Fatal(_) => not_ready(),
        WriteError::Timeout => timeout(&format!("write to stream '{stream}' timed out")),
        WriteError::Invalid(detail) => invalid_argument(detail.as_str()),
        WriteError::AccessDenied => access_denied(),
        WriteError::LogFailed(cause) => log_failed(cause),
        WriteError::MetadataContended { .. }
        | WriteError::MetadataUnreadable { .. }
        | WriteError::Refused(_)
        | WriteError::LeaderFailed(_)
        | WriteError::ForwardUnanswered(_)
        | WriteError::UnexpectedResult { .. }
        | WriteError::Internal(_) => internal(&error.to_string()),
    }
}

/// A read that failed as a whole.
/// A failure of the services' finite reads or catch-up engine (`stele_services`).
pub fn services_error(error: &stele_services::catchup::CatchUpError) -> Status {
    use stele_services::catchup::CatchUpError;
    match error {
        CatchUpError::Read(error) => read_error(error),
        CatchUpError::Stopping => not_ready(),
        CatchUpError::Task(detail) => internal(&format!("read task failed: {detail}")),
    }
}

pub fn read_error(error: &ReadError) -> Status {
    match error {
        ReadError::StreamDeleted(name) => stream_deleted(name.as_str()),
        ReadError::NotLeader { leader } => not_leader(leader.as_ref()),
        ReadError::InvalidPosition => invalid_position(),
        ReadError::NotReady => not_ready(),
        ReadError::Corrupt { .. } | ReadError::Index(_) | ReadError::Log(_) => {
            internal(&error.to_string())
        }
    }
}

// ---------------------------------------------------------------------------------------
// In-band BatchAppend errors (PROTOCOL.md §5.2): a google.rpc.Status holding one packed
// event_store.client.* detail, which the Python client tells apart with `details.Is(...)`.

fn in_band<M: Name>(code: google_rpc::Code, detail: &M) -> google_rpc::Status {
    google_rpc::Status {
        code: code as i32,
        message: M::NAME.to_owned(),
        details: Some(prost_types::Any::from_msg(detail).expect("encoding into a Vec cannot fail")),
    }
}

pub fn in_band_wrong_expected_version(
    current: Option<StreamRevision>,
    expected: ExpectedRevision,
) -> google_rpc::Status {
    use shared::wrong_expected_version::{
        CurrentStreamRevisionOption as Current, ExpectedStreamPositionOption as Expected,
    };
    let detail = shared::WrongExpectedVersion {
        current_stream_revision_option: Some(match current {
            Some(revision) => Current::CurrentStreamRevision(revision.0),
            None => Current::CurrentNoStream(()),
        }),
        expected_stream_position_option: Some(match expected {
            ExpectedRevision::Any => Expected::ExpectedAny(()),
            ExpectedRevision::NoStream => Expected::ExpectedNoStream(()),
            ExpectedRevision::StreamExists => Expected::ExpectedStreamExists(()),
            ExpectedRevision::Exact(n) => Expected::ExpectedStreamPosition(n),
        }),
    };
    in_band(google_rpc::Code::AlreadyExists, &detail)
}

pub fn in_band_stream_deleted(stream: &str) -> google_rpc::Status {
    in_band(
        google_rpc::Code::NotFound,
        &shared::StreamDeleted {
            stream_identifier: Some(shared::StreamIdentifier {
                stream_name: stream.to_owned().into(),
            }),
        },
    )
}

pub fn in_band_access_denied() -> google_rpc::Status {
    in_band(google_rpc::Code::PermissionDenied, &shared::AccessDenied {})
}

pub fn in_band_timeout() -> google_rpc::Status {
    in_band(google_rpc::Code::DeadlineExceeded, &shared::Timeout {})
}

pub fn in_band_maximum_append_size_exceeded(max_bytes: u32) -> google_rpc::Status {
    in_band(
        google_rpc::Code::InvalidArgument,
        &shared::MaximumAppendSizeExceeded {
            max_append_size: max_bytes,
        },
    )
}

pub fn in_band_bad_request(message: impl Into<String>) -> google_rpc::Status {
    in_band(
        google_rpc::Code::InvalidArgument,
        &shared::BadRequest {
            message: message.into(),
        },
    )
}

pub fn in_band_invalid_transaction() -> google_rpc::Status {
    in_band(
        google_rpc::Code::FailedPrecondition,
        &shared::InvalidTransaction {},
    )
}

pub fn in_band_unknown() -> google_rpc::Status {
    in_band(google_rpc::Code::Unknown, &shared::Unknown {})
}

/// A BatchAppend write that did not reach a decision. Most errors answer in band, for that
/// correlation id only; not-leader and not-ready end the whole call with a status instead
/// (`Err`), because clients reconnect on those and the Python client expects NotLeader as a
/// call status.
pub fn batch_append_error(error: &WriteError) -> Result<google_rpc::Status, Status> {
    match error {
        WriteError::StreamDeleted(name) => Ok(in_band_stream_deleted(name.as_str())),
        WriteError::MaximumAppendSizeExceeded { max_bytes } => {
            Ok(in_band_maximum_append_size_exceeded(*max_bytes))
        }
        WriteError::MaximumAppendEventSizeExceeded {
            event_id,
            size_bytes,
            max_bytes,
        } => Ok(in_band(
            google_rpc::Code::InvalidArgument,
            &shared::MaximumAppendEventSizeExceeded {
                event_id: event_id.to_string(),
                proposed_event_size: *size_bytes,
                max_append_event_size: *max_bytes,
            },
        )),
        WriteError::Timeout => Ok(in_band_timeout()),
        WriteError::NotLeader { leader } => Err(not_leader(leader.as_ref())),
        WriteError::NotReady | WriteError::Fatal(_) => Err(not_ready()),
        WriteError::Invalid(detail) => Ok(in_band_bad_request(detail.as_str())),
        WriteError::AccessDenied => Ok(in_band_access_denied()),
        WriteError::LogFailed(cause) => Err(log_failed(cause)),
        WriteError::MetadataContended { .. }
        | WriteError::MetadataUnreadable { .. }
        | WriteError::Refused(_)
        | WriteError::LeaderFailed(_)
        | WriteError::ForwardUnanswered(_)
        | WriteError::UnexpectedResult { .. }
        | WriteError::Internal(_) => {
            tracing::error!(detail = %error, "batch append failed; answered in band as Unknown");
            Ok(in_band_unknown())
        }
    }
}

// ---------------------------------------------------------------------------------------
// Operator commands (Operations.ResignNode, Operations.SetNodePriority)

/// An operator command the node could not carry out: not ready is UNAVAILABLE
/// `Server Is Not Ready`; a fault of the node is UNKNOWN with the detail in the log.
pub fn admin_error(error: &AdminError) -> Status {
    match error {
        AdminError::NotReady => not_ready(),
        AdminError::Fatal(detail) => internal(detail),
    }
}

// ---------------------------------------------------------------------------------------
// Persistent subscriptions (PROTOCOL.md §6, §7)

/// A persistent-subscription request that failed. The group errors carry `stream-name` and
/// `group-name` trailers (and `reason` for a failure); the Python client matches the
/// `Maximum subscriptions reached` text, the Rust client the dropped `exception`, the Node
/// client every `exception`. The texts are EventStoreDB's, written here rather than taken
/// from [`PsError`]'s `Display`, so the wire does not change with a log message.
pub fn persistent_error(error: &PsError) -> Status {
    let group_error =
        |code, message: String, exception: &'static str, stream: &str, group: &str| {
            with_trailers(
                code,
                message,
                &[
                    (trailer::EXCEPTION, exception),
                    (trailer::STREAM_NAME, stream),
                    (trailer::GROUP_NAME, group),
                ],
            )
        };
    match error {
        PsError::DoesNotExist { stream, group } => group_error(
            Code::NotFound,
            format!("Subscription group {group} on stream {stream} does not exist."),
            exception::PERSISTENT_SUBSCRIPTION_DOES_NOT_EXIST,
            stream,
            group,
        ),
        PsError::AlreadyExists { stream, group } => group_error(
            Code::AlreadyExists,
            format!("Subscription group {group} on stream {stream} exists."),
            exception::PERSISTENT_SUBSCRIPTION_EXISTS,
            stream,
            group,
        ),
        PsError::MaximumSubscribersReached { stream, group } => group_error(
            Code::FailedPrecondition,
            format!(
                "Maximum subscriptions reached for subscription group {group} on stream {stream}."
            ),
            exception::MAXIMUM_SUBSCRIBERS_REACHED,
            stream,
            group,
        ),
        PsError::Dropped { stream, group } => group_error(
            Code::Cancelled,
            format!("Subscription group {group} on stream {stream} was dropped."),
            exception::PERSISTENT_SUBSCRIPTION_DROPPED,
            stream,
            group,
        ),
        PsError::Failed {
            stream,
            group,
            reason,
        } => with_trailers(
            Code::Internal,
            format!("Subscription group {group} on stream {stream} failed: '{reason}'"),
            &[
                (
                    trailer::EXCEPTION,
                    exception::PERSISTENT_SUBSCRIPTION_FAILED,
                ),
                (trailer::STREAM_NAME, stream),
                (trailer::GROUP_NAME, group),
                (trailer::REASON, reason),
            ],
        ),
        PsError::NotLeader { leader } => not_leader(leader.as_ref()),
        PsError::NotReady => not_ready(),
        PsError::InvalidArgument(message) => invalid_argument(message.clone()),
        PsError::AccessDenied => access_denied(),
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use stele_core::StreamName;

    use super::*;

    fn trailer<'a>(status: &'a Status, key: &str) -> Option<&'a [u8]> {
        status.metadata().get(key).map(|v| v.as_bytes())
    }

    #[test]
    fn not_leader_with_a_known_leader_carries_its_endpoint() {
        let status = not_leader(Some(&("node2.example".to_owned(), 2113)));
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "Leader info available");
        assert_eq!(trailer(&status, "exception"), Some(&b"not-leader"[..]));
        assert_eq!(
            trailer(&status, "leader-endpoint-host"),
            Some(&b"node2.example"[..])
        );
        assert_eq!(trailer(&status, "leader-endpoint-port"), Some(&b"2113"[..]));
    }

    #[test]
    fn not_leader_without_a_leader_is_unknown_without_trailers() {
        let status = not_leader(None);
        assert_eq!(status.code(), Code::Unknown);
        assert_eq!(status.message(), "No leader info available in response");
        assert!(status.metadata().is_empty());
    }

    #[test]
    fn not_ready_is_unavailable() {
        let status = write_error("s", &WriteError::NotReady);
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "Server Is Not Ready");
        assert_eq!(read_error(&ReadError::NotReady).code(), Code::Unavailable);
        assert_eq!(too_busy().message(), "Server Is Too Busy");
    }

    #[test]
    fn stream_deleted_names_the_stream() {
        let name = StreamName::new("orders-1").unwrap();
        for status in [
            write_error("orders-1", &WriteError::StreamDeleted(name.clone())),
            read_error(&ReadError::StreamDeleted(name)),
        ] {
            assert_eq!(status.code(), Code::FailedPrecondition);
            assert_eq!(status.message(), "Event stream 'orders-1' is deleted.");
            assert_eq!(trailer(&status, "exception"), Some(&b"stream-deleted"[..]));
            assert_eq!(trailer(&status, "stream-name"), Some(&b"orders-1"[..]));
        }
    }

    #[test]
    fn non_ascii_stream_names_pass_as_utf8_bytes() {
        let status = stream_deleted("zamówienia");
        assert_eq!(
            trailer(&status, "stream-name"),
            Some("zamówienia".as_bytes())
        );
        let status = stream_deleted("a\nb");
        assert_eq!(trailer(&status, "stream-name"), Some(&b"a?b"[..]));
    }

    #[test]
    fn timeout_is_aborted_with_the_operation_timed_out_prefix() {
        let status = write_error("s", &WriteError::Timeout);
        assert_eq!(status.code(), Code::Aborted);
        assert!(status.message().starts_with("Operation timed out: "));
    }

    #[test]
    fn maximum_append_size_exceeded_text_and_trailers() {
        let status = write_error(
            "s",
            &WriteError::MaximumAppendSizeExceeded { max_bytes: 1048576 },
        );
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "Maximum Append Size of 1048576 Exceeded.");
        assert_eq!(
            trailer(&status, "exception"),
            Some(&b"maximum-append-size-exceeded"[..])
        );
        assert_eq!(
            trailer(&status, "maximum-append-size"),
            Some(&b"1048576"[..])
        );
    }

    #[test]
    fn maximum_append_event_size_exceeded_text_and_trailers() {
        let status = maximum_append_event_size_exceeded("abc", 20, 10);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "Event with Id: abc, Size: 20, exceeds Maximum Append Event Size of 10."
        );
        assert_eq!(trailer(&status, "event-id"), Some(&b"abc"[..]));
        assert_eq!(
            trailer(&status, "proposed-append-event-size"),
            Some(&b"20"[..])
        );
        assert_eq!(
            trailer(&status, "maximum-append-event-size"),
            Some(&b"10"[..])
        );
    }

    #[test]
    fn missing_metadata_text_and_trailers() {
        let status = missing_required_metadata("content-type");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "Required Metadata Property 'content-type' is missing"
        );
        assert_eq!(
            trailer(&status, "exception"),
            Some(&b"missing-required-metadata-property"[..])
        );
        assert_eq!(
            trailer(&status, "required-metadata-properties"),
            Some(&b"type,content-type"[..])
        );
    }

    #[test]
    fn delete_wrong_expected_version_text_and_trailers() {
        let status = delete_wrong_expected_version(
            "s-1",
            ExpectedRevision::Exact(3),
            Some(StreamRevision(5)),
        );
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(
            status.message(),
            "Delete failed due to WrongExpectedVersion. Stream: s-1, Expected version: 3, Actual version: 5"
        );
        assert_eq!(
            trailer(&status, "exception"),
            Some(&b"wrong-expected-version"[..])
        );
        assert_eq!(trailer(&status, "stream-name"), Some(&b"s-1"[..]));
        assert_eq!(trailer(&status, "expected-version"), Some(&b"3"[..]));
        assert_eq!(trailer(&status, "actual-version"), Some(&b"5"[..]));

        // A missing stream is actual version -1, which the Python client reads as NotFound;
        // expected versions use EventStoreDB's numbers (StreamExists = -4).
        let status = delete_wrong_expected_version("s-1", ExpectedRevision::StreamExists, None);
        assert!(status
            .message()
            .ends_with("Expected version: -4, Actual version: -1"));
        assert_eq!(trailer(&status, "actual-version"), Some(&b"-1"[..]));
    }

    #[test]
    fn read_errors() {
        let status = read_error(&ReadError::InvalidPosition);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "Trying to read from an invalid position.");
        let status = read_error(&ReadError::Index("disk on fire".into()));
        assert_eq!(status.code(), Code::Unknown);
        assert_eq!(status.message(), UNHANDLED_MESSAGE);
        assert!(!status.message().contains("disk"));
    }

    #[test]
    fn access_denied_and_invalid_transaction() {
        let status = access_denied();
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(status.message(), "Access Denied");
        assert_eq!(trailer(&status, "exception"), Some(&b"access-denied"[..]));
        let status = invalid_transaction();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "Invalid Transaction");
        let status = stream_not_found("x");
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "Event stream 'x' is not found.");
    }

    #[test]
    fn validation_texts() {
        assert_eq!(
            invalid_combination(&["Stream", "Count", "Forwards", "Filter"]).message(),
            "The combination of (Stream, Count, Forwards, Filter) is invalid."
        );
        assert_eq!(
            required_argument("uuidOption", "UUIDOption").message(),
            "'uuidOption' is a required argument of type UUIDOption"
        );
        assert_eq!(
            not_a_valid("None", "StreamOptionOneofCase").message(),
            "'None' is not a valid StreamOptionOneofCase"
        );
    }

    #[test]
    fn in_band_wrong_expected_version_packs_current_and_expected() {
        let status = in_band_wrong_expected_version(None, ExpectedRevision::Exact(7));
        assert_eq!(status.code, google_rpc::Code::AlreadyExists as i32);
        assert_eq!(status.message, "WrongExpectedVersion");
        let any = status.details.expect("one detail");
        assert_eq!(
            any.type_url,
            "type.googleapis.com/event_store.client.WrongExpectedVersion"
        );
        let detail = shared::WrongExpectedVersion::decode(any.value.as_slice()).unwrap();
        use shared::wrong_expected_version::{
            CurrentStreamRevisionOption as Current, ExpectedStreamPositionOption as Expected,
        };
        assert_eq!(
            detail.current_stream_revision_option,
            Some(Current::CurrentNoStream(()))
        );
        assert_eq!(
            detail.expected_stream_position_option,
            Some(Expected::ExpectedStreamPosition(7))
        );
    }

    #[test]
    fn in_band_codes_messages_and_type_urls_follow_the_table() {
        let cases = [
            (
                in_band_stream_deleted("s"),
                google_rpc::Code::NotFound,
                "StreamDeleted",
            ),
            (
                in_band_access_denied(),
                google_rpc::Code::PermissionDenied,
                "AccessDenied",
            ),
            (
                in_band_timeout(),
                google_rpc::Code::DeadlineExceeded,
                "Timeout",
            ),
            (
                in_band_maximum_append_size_exceeded(10),
                google_rpc::Code::InvalidArgument,
                "MaximumAppendSizeExceeded",
            ),
            (
                in_band_bad_request("x"),
                google_rpc::Code::InvalidArgument,
                "BadRequest",
            ),
            (
                in_band_invalid_transaction(),
                google_rpc::Code::FailedPrecondition,
                "InvalidTransaction",
            ),
            (in_band_unknown(), google_rpc::Code::Unknown, "Unknown"),
        ];
        for (status, code, name) in cases {
            assert_eq!(status.code, code as i32, "{name}");
            assert_eq!(status.message, name);
            assert_eq!(
                status.details.unwrap().type_url,
                format!("type.googleapis.com/event_store.client.{name}")
            );
        }
        let deleted = in_band_stream_deleted("s-9").details.unwrap();
        let detail = shared::StreamDeleted::decode(deleted.value.as_slice()).unwrap();
        assert_eq!(
            detail.stream_identifier.unwrap().stream_name.as_ref(),
            b"s-9"
        );
    }

    #[test]
    fn batch_append_not_leader_and_not_ready_end_the_call() {
        let not_leader = batch_append_error(&WriteError::NotLeader {
            leader: Some(("h".into(), 1)),
        })
        .unwrap_err();
        assert_eq!(not_leader.code(), Code::NotFound);
        assert_eq!(not_leader.message(), "Leader info available");
        assert_eq!(
            batch_append_error(&WriteError::NotReady)
                .unwrap_err()
                .code(),
            Code::Unavailable
        );
        let timeout = batch_append_error(&WriteError::Timeout).unwrap();
        assert_eq!(timeout.code, google_rpc::Code::DeadlineExceeded as i32);
        let deleted =
            batch_append_error(&WriteError::StreamDeleted(StreamName::new("s").unwrap())).unwrap();
        assert_eq!(deleted.code, google_rpc::Code::NotFound as i32);
    }

    #[test]
    fn persistent_subscription_errors_follow_the_table() {
        let cases = [
            (
                PsError::DoesNotExist {
                    stream: "orders".into(),
                    group: "g1".into(),
                },
                Code::NotFound,
                "Subscription group g1 on stream orders does not exist.",
                "persistent-subscription-does-not-exist",
            ),
            (
                PsError::AlreadyExists {
                    stream: "orders".into(),
                    group: "g1".into(),
                },
                Code::AlreadyExists,
                "Subscription group g1 on stream orders exists.",
                "persistent-subscription-exists",
            ),
            (
                PsError::MaximumSubscribersReached {
                    stream: "orders".into(),
                    group: "g1".into(),
                },
                Code::FailedPrecondition,
                "Maximum subscriptions reached for subscription group g1 on stream orders.",
                "maximum-subscribers-reached",
            ),
            (
                PsError::Dropped {
                    stream: "orders".into(),
                    group: "g1".into(),
                },
                Code::Cancelled,
                "Subscription group g1 on stream orders was dropped.",
                "persistent-subscription-dropped",
            ),
        ];
        for (error, code, message, exception) in cases {
            let status = persistent_error(&error);
            assert_eq!(status.code(), code, "{error:?}");
            assert_eq!(status.message(), message);
            // The engine's own text says the same.
            assert_eq!(error.to_string(), message);
            assert_eq!(trailer(&status, "exception"), Some(exception.as_bytes()));
            assert_eq!(trailer(&status, "stream-name"), Some(&b"orders"[..]));
            assert_eq!(trailer(&status, "group-name"), Some(&b"g1"[..]));
            assert_eq!(trailer(&status, "reason"), None);
        }

        let failed = PsError::Failed {
            stream: "$all".into(),
            group: "g1".into(),
            reason: "bad settings".into(),
        };
        let status = persistent_error(&failed);
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(
            status.message(),
            "Subscription group g1 on stream $all failed: 'bad settings'"
        );
        assert_eq!(failed.to_string(), status.message());
        assert_eq!(
            trailer(&status, "exception"),
            Some(&b"persistent-subscription-failed"[..])
        );
        assert_eq!(trailer(&status, "stream-name"), Some(&b"$all"[..]));
        assert_eq!(trailer(&status, "reason"), Some(&b"bad settings"[..]));
    }

    /// The services' reader and catch-up engine fail with the statuses reads always had: a
    /// read error as itself, a stopping node as not ready, a failed read task as internal.
    #[test]
    fn services_errors_reuse_the_read_statuses() {
        use stele_services::catchup::CatchUpError;
        let deleted = ReadError::StreamDeleted(StreamName::new("s").unwrap());
        let status = services_error(&CatchUpError::Read(deleted.clone()));
        assert_eq!(status.code(), read_error(&deleted).code());
        assert_eq!(status.message(), read_error(&deleted).message());
        assert_eq!(
            services_error(&CatchUpError::Stopping).code(),
            not_ready().code()
        );
        // The detail goes to the log, not to the client.
        let task = services_error(&CatchUpError::Task("panicked".into()));
        assert_eq!(task.code(), internal("x").code());
        assert!(!task.message().contains("panicked"));
    }

    #[test]
    fn persistent_subscription_routing_errors_reuse_the_node_statuses() {
        let status = persistent_error(&PsError::NotLeader {
            leader: Some(("node2".into(), 2113)),
        });
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "Leader info available");
        assert_eq!(trailer(&status, "exception"), Some(&b"not-leader"[..]));
        assert_eq!(trailer(&status, "leader-endpoint-port"), Some(&b"2113"[..]));
        let status = persistent_error(&PsError::NotLeader { leader: None });
        assert_eq!(status.code(), Code::Unknown);
        let status = persistent_error(&PsError::NotReady);
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "Server Is Not Ready");
        let status = persistent_error(&PsError::InvalidArgument(
            "ReadBatchSize must be greater than 0".into(),
        ));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "ReadBatchSize must be greater than 0");
        assert!(status.metadata().is_empty());
    }
}
