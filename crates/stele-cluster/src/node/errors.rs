//! The node's errors, each variant saying what happened and what a caller does about it
//! (openraft's split between errors of one call and fatal ones): [`WriteError::is_fatal`] is
//! a node that takes no more writes until it is restarted, [`WriteError::is_retryable`] a
//! write that may succeed if sent again, here or on the node the error names.
//!
//! A wrapped cause is printed once: an error here that names its cause renders the cause's
//! whole chain in its own message ([`render_chain`]) and has no `source()`, so neither a log
//! line (`%e`) nor a chain printer (anyhow's `{:#}`) prints it twice.

use stele_core::StreamName;

/// `error` and every cause under it, joined with `: `; a cause whose text its parent's
/// message already holds (an error that prints its source and also returns it) is skipped.
pub(crate) fn render_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let line = c.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        cause = c.source();
    }
    text
}

/// Why a write did not reach a decision, or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("stream '{0}' is deleted")]
    StreamDeleted(StreamName),
    #[error("maximum append size of {max_bytes} exceeded")]
    MaximumAppendSizeExceeded { max_bytes: u32 },
    #[error(
        "event {event_id} of {size_bytes} bytes exceeds the maximum event size of {max_bytes}"
    )]
    MaximumAppendEventSizeExceeded {
        event_id: uuid::Uuid,
        size_bytes: u32,
        max_bytes: u32,
    },
    #[error("this node is not the leader")]
    NotLeader { leader: Option<(String, u16)> },
    #[error("server is not ready")]
    NotReady,
    #[error("operation timed out")]
    Timeout,
    /// A write or fsync of this node's log failed (a full disk, say): it takes no writes until
    /// it is restarted; reads of what was durable go on.
    #[error("the log stopped after an I/O error: {0}")]
    LogFailed(String),
    /// The consensus engine stopped (openraft's `Fatal`: a storage error under it, the state
    /// machine failing, a panic): this node takes no writes until it is restarted; reads of
    /// what it applied go on.
    #[error("the consensus engine stopped: {0}")]
    Fatal(String),
    /// A command no client request could produce (a forwarded one from a peer, say): an
    /// invalid stream name, or an event that names another stream.
    #[error("invalid write: {0}")]
    Invalid(String),
    /// The caller may not write or delete this stream (issue 13). The node never answers
    /// this itself: the API layer checks access before it asks the node to write.
    #[error("access denied")]
    AccessDenied,
    /// A soft delete or recreation must record a metadata event, and the metadata stream
    /// moved under it every time it was merged (a metadata write racing it): nothing was
    /// written, the client may try again.
    #[error("the metadata of {stream} kept moving under a soft delete or recreation")]
    MetadataContended { stream: StreamName },
    /// Reading the metadata a soft delete or recreation merges into failed: nothing was
    /// written.
    #[error("reading the metadata of {stream}: {cause}")]
    MetadataUnreadable {
        stream: StreamName,
        cause: ReadError,
    },
    /// The consensus engine refused the proposal for a reason no client write has (a
    /// membership change under way, say): nothing was decided.
    #[error("the consensus engine refused the write: {0}")]
    Refused(String),
    /// The leader this node forwarded the write to could not carry it out, for a reason of
    /// its own (its log failed, its index failed): the text is the leader's. The leader or
    /// the next one may take it when sent again.
    #[error("the leader failed the forwarded write: {0}")]
    LeaderFailed(String),
    /// The leader's answer to a forwarded write was not one a forwarded write has: the
    /// outcome is unknown, and sending the write again (idempotent by event id) finds out.
    #[error("the leader's answer to a forwarded write was lost: {0}")]
    ForwardUnanswered(String),
    /// The write was decided, but with a result no such write has (a bug): it may have been
    /// applied, so it is not sent again blindly.
    #[error("unexpected result of {operation}: {result}")]
    UnexpectedResult {
        operation: &'static str,
        result: String,
    },
    /// A fault of the caller's own machinery (the API's task carrying the write panicked):
    /// the outcome is unknown. The node never returns it.
    #[error("internal error: {0}")]
    Internal(String),
}

impl WriteError {
    /// Whether this node has stopped taking writes until it is restarted: the caller stops
    /// sending it writes (and its clients go to another node).
    pub fn is_fatal(&self) -> bool {
        matches!(self, WriteError::LogFailed(_) | WriteError::Fatal(_))
    }

    /// Whether the same write may succeed if sent again — to the node [`WriteError::NotLeader`]
    /// names, or after a while — with nothing to fix first. A fatal error is not: this node
    /// will refuse it until restarted.
    pub fn is_retryable(&self) -> bool {
        match self {
            WriteError::NotLeader { .. }
            | WriteError::NotReady
            | WriteError::Timeout
            | WriteError::MetadataContended { .. }
            | WriteError::LeaderFailed(_)
            | WriteError::ForwardUnanswered(_) => true,
            WriteError::MetadataUnreadable { cause, .. } => cause.is_retryable(),
            WriteError::StreamDeleted(_)
            | WriteError::MaximumAppendSizeExceeded { .. }
            | WriteError::MaximumAppendEventSizeExceeded { .. }
            | WriteError::LogFailed(_)
            | WriteError::Fatal(_)
            | WriteError::Invalid(_)
            | WriteError::AccessDenied
            | WriteError::Refused(_)
            | WriteError::UnexpectedResult { .. }
            | WriteError::Internal(_) => false,
        }
    }
}

impl From<stele_core::InvalidCommand> for WriteError {
    fn from(e: stele_core::InvalidCommand) -> WriteError {
        use stele_core::InvalidCommand;
        match e {
            InvalidCommand::AppendTooLarge { max_bytes } => {
                WriteError::MaximumAppendSizeExceeded { max_bytes }
            }
            InvalidCommand::EventTooLarge {
                event_id,
                size_bytes,
                max_bytes,
            } => WriteError::MaximumAppendEventSizeExceeded {
                event_id,
                size_bytes,
                max_bytes,
            },
            other => WriteError::Invalid(other.to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("stream '{0}' is deleted")]
    StreamDeleted(StreamName),
    #[error("this node is not the leader")]
    NotLeader { leader: Option<(String, u16)> },
    #[error("trying to read from an invalid position")]
    InvalidPosition,
    #[error("server is not ready")]
    NotReady,
    /// Stored data is damaged: a record that fails the log's checks or does not decode, or
    /// an index entry that points at no event. Where it is known, the chunk file and the
    /// offset in it; always the log position when one was read. Reading it again fails
    /// again.
    #[error("corrupt data{}: {detail}", corrupt_place(*position, file.as_deref(), *offset))]
    Corrupt {
        /// The log position read, when the read had one.
        position: Option<u64>,
        /// The chunk file, when the log named it.
        file: Option<String>,
        /// The byte offset in `file`.
        offset: Option<u64>,
        detail: String,
    },
    /// The index failed (I/O, its store): the text is its error and every cause.
    #[error("the index failed: {0}")]
    Index(String),
    /// Reading the log failed (I/O): the text is its error and every cause.
    #[error("reading the log failed: {0}")]
    Log(String),
}

fn corrupt_place(position: Option<u64>, file: Option<&str>, offset: Option<u64>) -> String {
    let mut place = String::new();
    if let Some(position) = position {
        place.push_str(&format!(" at log position {position}"));
    }
    if let Some(file) = file {
        place.push_str(&format!(" in {file}"));
        if let Some(offset) = offset {
            place.push_str(&format!(" at offset {offset}"));
        }
    }
    place
}

impl ReadError {
    /// Whether the same read may succeed if sent again (after a while, or to the node
    /// [`ReadError::NotLeader`] names). Corrupt data is not: it reads the same every time.
    pub fn is_retryable(&self) -> bool {
        match self {
            ReadError::NotLeader { .. }
            | ReadError::NotReady
            | ReadError::Index(_)
            | ReadError::Log(_) => true,
            ReadError::StreamDeleted(_)
            | ReadError::InvalidPosition
            | ReadError::Corrupt { .. } => false,
        }
    }

    /// A failure of the index, with its causes.
    pub(crate) fn index(e: stele_index::IndexError) -> ReadError {
        ReadError::Index(render_chain(&e))
    }

    /// A failure of the log reading the record at `position` (when there is one): a damaged
    /// record is [`ReadError::Corrupt`] with its file and offset, anything else
    /// [`ReadError::Log`].
    pub(crate) fn log(e: stele_log::LogError, position: Option<u64>) -> ReadError {
        match e {
            stele_log::LogError::Corrupt {
                file,
                offset,
                detail,
            } => ReadError::Corrupt {
                position,
                file: Some(file),
                offset: Some(offset),
                detail: detail.to_string(),
            },
            other => ReadError::Log(render_chain(&other)),
        }
    }

    /// Damaged data at log `position`, in no file the log named.
    pub(crate) fn corrupt_at(position: u64, detail: impl Into<String>) -> ReadError {
        ReadError::Corrupt {
            position: Some(position),
            file: None,
            offset: None,
            detail: detail.into(),
        }
    }
}

/// Why an operator command (resign, set priority) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    #[error("server is not ready")]
    NotReady,
    /// The consensus engine stopped (openraft's `Fatal`) while the command ran: the node
    /// takes no more writes until it is restarted.
    #[error("the consensus engine stopped: {0}")]
    Fatal(String),
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("opening the log: {}", render_chain(.0))]
    Log(stele_log::LogError),
    #[error("scanning the log: {}", render_chain(.0))]
    Scan(crate::entry_map::ScanError),
    #[error("opening the index: {}", render_chain(.0))]
    Index(stele_index::IndexError),
    #[error("{context}: {}", render_chain(.error))]
    Io {
        context: String,
        error: std::io::Error,
    },
    #[error("starting the consensus engine: {0}")]
    Raft(String),
    #[error("{0}")]
    Unsupported(String),
}

impl From<stele_log::LogError> for StartError {
    fn from(e: stele_log::LogError) -> StartError {
        StartError::Log(e)
    }
}

impl From<crate::entry_map::ScanError> for StartError {
    fn from(e: crate::entry_map::ScanError) -> StartError {
        StartError::Scan(e)
    }
}

impl From<stele_index::IndexError> for StartError {
    fn from(e: stele_index::IndexError) -> StartError {
        StartError::Index(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> StreamName {
        StreamName::new("orders").unwrap()
    }

    /// Every write error, one of each variant.
    fn every_write_error() -> Vec<WriteError> {
        vec![
            WriteError::StreamDeleted(stream()),
            WriteError::MaximumAppendSizeExceeded { max_bytes: 1 },
            WriteError::MaximumAppendEventSizeExceeded {
                event_id: uuid::Uuid::nil(),
                size_bytes: 2,
                max_bytes: 1,
            },
            WriteError::NotLeader { leader: None },
            WriteError::NotReady,
            WriteError::Timeout,
            WriteError::LogFailed("disk full".into()),
            WriteError::Fatal("panicked".into()),
            WriteError::Invalid("bad name".into()),
            WriteError::MetadataContended { stream: stream() },
            WriteError::MetadataUnreadable {
                stream: stream(),
                cause: ReadError::Index("io".into()),
            },
            WriteError::Refused("membership".into()),
            WriteError::LeaderFailed("its log failed".into()),
            WriteError::ForwardUnanswered("Failed(..)".into()),
            WriteError::UnexpectedResult {
                operation: "an append",
                result: "Deleted".into(),
            },
            WriteError::Internal("task panicked".into()),
        ]
    }

    /// Pins the fatal lane: only a failed log and a stopped consensus engine stop a node's
    /// writes; every other write error leaves the node taking writes.
    #[test]
    fn only_a_failed_log_and_a_stopped_engine_are_fatal() {
        let fatal: Vec<WriteError> = every_write_error()
            .into_iter()
            .filter(WriteError::is_fatal)
            .collect();
        assert_eq!(
            fatal,
            vec![
                WriteError::LogFailed("disk full".into()),
                WriteError::Fatal("panicked".into()),
            ]
        );
    }

    /// Pins which writes a caller sends again: transient ones (leadership, readiness, a
    /// timeout, metadata contention, the leader's own failure, a lost answer); never a fatal
    /// error, a refusal of the write itself, or a write whose outcome came back wrong.
    #[test]
    fn retryable_write_errors_are_the_transient_ones() {
        let retryable: Vec<WriteError> = every_write_error()
            .into_iter()
            .filter(WriteError::is_retryable)
            .collect();
        assert_eq!(
            retryable,
            vec![
                WriteError::NotLeader { leader: None },
                WriteError::NotReady,
                WriteError::Timeout,
                WriteError::MetadataContended { stream: stream() },
                WriteError::MetadataUnreadable {
                    stream: stream(),
                    cause: ReadError::Index("io".into()),
                },
                WriteError::LeaderFailed("its log failed".into()),
                WriteError::ForwardUnanswered("Failed(..)".into()),
            ]
        );
        assert!(every_write_error()
            .iter()
            .all(|e| !(e.is_fatal() && e.is_retryable())));
    }

    /// Pins that unreadable metadata is retried only when the read that failed may succeed
    /// again: damaged metadata is not.
    #[test]
    fn unreadable_metadata_is_retried_unless_corrupt() {
        let corrupt = WriteError::MetadataUnreadable {
            stream: stream(),
            cause: ReadError::corrupt_at(7, "does not decode"),
        };
        assert!(!corrupt.is_retryable());
    }

    /// Pins which reads a caller sends again: corrupt data reads the same every time.
    #[test]
    fn corrupt_reads_are_not_retried_io_failures_are() {
        assert!(!ReadError::corrupt_at(7, "x").is_retryable());
        assert!(ReadError::Index("io".into()).is_retryable());
        assert!(ReadError::Log("io".into()).is_retryable());
        assert!(ReadError::NotReady.is_retryable());
        assert!(ReadError::NotLeader { leader: None }.is_retryable());
        assert!(!ReadError::InvalidPosition.is_retryable());
        assert!(!ReadError::StreamDeleted(stream()).is_retryable());
    }

    /// Pins that a damaged record the log found names its chunk file and offset as well as
    /// the log position read (issue 12, item 5: corruption names file and offset).
    #[test]
    fn corruption_names_the_file_and_offset() {
        let found = stele_log::LogError::Corrupt {
            file: "chunk-000003.dat".into(),
            offset: 4096,
            detail: stele_log::Corruption::RecordLength { length: 9, room: 4 },
        };
        let error = ReadError::log(found, Some(200));
        assert!(matches!(error, ReadError::Corrupt { .. }), "{error:?}");
        let text = error.to_string();
        assert!(text.contains("at log position 200"), "{text}");
        assert!(text.contains("chunk-000003.dat at offset 4096"), "{text}");
        let decoded = ReadError::corrupt_at(200, "record does not decode").to_string();
        assert_eq!(
            decoded,
            "corrupt data at log position 200: record does not decode"
        );
    }

    /// What anyhow's `{:#}` prints: every error of the chain, joined with `: `.
    fn chain_as_printed(error: &dyn std::error::Error) -> String {
        let mut text = error.to_string();
        let mut cause = error.source();
        while let Some(c) = cause {
            text.push_str(&format!(": {c}"));
            cause = c.source();
        }
        text
    }

    /// Pins "a wrapped cause printed once": a start-up error wrapping an I/O error printed
    /// its cause in its message and again as its source, so the server's exit line named the
    /// OS error twice; now its message holds the cause once and nothing follows it.
    #[test]
    fn a_start_error_prints_its_cause_once() {
        let error = StartError::Io {
            context: "opening /data/chunks".into(),
            error: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "access denied"),
        };
        let printed = chain_as_printed(&error);
        assert_eq!(printed, "opening /data/chunks: access denied");

        // A log error that prints its source and returns it too (stele-log's `Io`): still
        // once.
        let log = stele_log::LogError::Io {
            file: "chunk-000000.dat".into(),
            offset: Some(0),
            op: stele_log::IoOp::Write,
            source: std::io::Error::other("no space left"),
        };
        let printed = chain_as_printed(&StartError::from(log));
        assert_eq!(printed.matches("no space left").count(), 1, "{printed}");
    }

    /// Pins that a cause the parent's message leaves out (the index's errors keep their
    /// store's error as a source only) is kept, once.
    #[test]
    fn render_chain_keeps_a_cause_the_message_leaves_out() {
        #[derive(Debug, thiserror::Error)]
        #[error("index store failed while reading")]
        struct Outer(#[source] std::io::Error);
        let text = render_chain(&Outer(std::io::Error::other("bad page")));
        assert_eq!(text, "index store failed while reading: bad page");
    }
}
