//! Commands: what a client request becomes in the replicated log, and what applying one
//! yields. Both cross the network between nodes and the command reaches disk, so every enum
//! here has explicit, never-reused variants (serialised in declaration order by postcard:
//! append new variants at the end only).

use serde::{Deserialize, Serialize};

use crate::{EventRecord, ExpectedRevision, LogPosition, StreamName, StreamRevision};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeleteKind {
    /// Soft delete: reads see no stream, later appends continue its revisions.
    Soft,
    /// Tombstone: the stream is gone for good.
    Hard,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Append events (all to `stream`) if the stream matches `expected`.
    Append {
        stream: StreamName,
        expected: ExpectedRevision,
        events: Vec<EventRecord>,
    },
    /// Delete or tombstone a stream if it matches `expected`.
    Delete {
        stream: StreamName,
        expected: ExpectedRevision,
        kind: DeleteKind,
        /// .NET ticks, stamped by the node that took the request (a follower that forwards
        /// the command stamps it too), before it is proposed.
        created_ticks: i64,
    },
    /// A write decided together with one `$metadata` event for its stream's metadata stream
    /// (`$$stream`), as EventStoreDB records a soft delete: the soft delete writes `$tb` =
    /// [`SOFT_DELETED_TRUNCATE_BEFORE`](crate::metadata::SOFT_DELETED_TRUNCATE_BEFORE) there,
    /// and the first append after it writes `$tb` = the append's first revision. `write` is
    /// an `Append` or a soft `Delete`; only the leader builds this command, from the
    /// metadata it has applied, with `metadata_expected` naming the metadata stream's
    /// revision it merged into: if that moved before the command is applied, nothing is
    /// written and the result is [`CommandResult::MetadataMoved`].
    WithMetadata {
        write: Box<Command>,
        metadata: EventRecord,
        metadata_expected: ExpectedRevision,
    },
}

impl Command {
    pub fn stream(&self) -> &StreamName {
        match self {
            Command::Append { stream, .. } | Command::Delete { stream, .. } => stream,
            Command::WithMetadata { write, .. } => write.stream(),
        }
    }
}

/// The outcome of applying a command. Failures that the state machine decides (and every
/// node decides the same way) are results, not errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    /// The events were written (or were already written by an identical earlier append).
    Appended {
        first_revision: StreamRevision,
        last_revision: StreamRevision,
        first_position: LogPosition,
        last_position: LogPosition,
    },
    /// The stream was deleted; `position` is that of the delete record.
    Deleted { position: LogPosition },
    /// The stream did not match the expected revision. `current` is `None` for no stream.
    WrongExpectedVersion {
        current: Option<StreamRevision>,
        expected: ExpectedRevision,
    },
    /// The stream is tombstoned.
    StreamDeleted,
    /// Entries that carry no command (leader blanks, membership changes).
    Nothing,
    /// An append of no events passed its check; `current` is the stream's last revision.
    AppendedNothing { current: Option<StreamRevision> },
    /// A [`Command::WithMetadata`] whose metadata stream moved after the leader read it:
    /// nothing was written; the leader builds the command again and retries.
    MetadataMoved,
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Append {
                stream,
                expected,
                events,
            } => write!(f, "Append({stream}, {expected:?}, {} events)", events.len()),
            Command::Delete {
                stream,
                expected,
                kind,
                ..
            } => write!(f, "Delete({stream}, {expected:?}, {kind:?})"),
            Command::WithMetadata {
                write,
                metadata_expected,
                ..
            } => write!(f, "{write} with $metadata at {metadata_expected:?}"),
        }
    }
}
