//! The pure decisions of the state machine: whether an append or delete succeeds, given the
//! stream's state. Every node runs the same function on the same log, so every node decides
//! the same (docs/design.md decision 6). Only the state machine runs it, when it applies a
//! committed command; before proposing, the leader checks validity and size only
//! (`validation.rs`), so an expected-version failure is decided at apply like any outcome.

use serde::{Deserialize, Serialize};

use crate::{ExpectedRevision, StreamRevision};

/// What the index knows of a stream when a command is decided.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamState {
    /// The last revision written, `None` for a stream never written.
    pub last_revision: Option<u64>,
    /// Set by a soft delete: revisions below this are gone. A stream whose `deleted_before`
    /// is past its last revision reads as "no stream".
    pub deleted_before: Option<u64>,
    /// Set by a tombstone.
    pub tombstoned: bool,
}

impl StreamState {
    /// Whether the stream currently has readable existence: written, and not soft-deleted
    /// with nothing written since.
    pub fn exists(&self) -> bool {
        match (self.last_revision, self.deleted_before) {
            (None, _) => false,
            (Some(last), Some(before)) => last >= before,
            (Some(_), None) => true,
        }
    }

    /// Whether the stream was soft-deleted and nothing was written since: the next append
    /// recreates it (and EventStoreDB records that in the metadata, `$tb` = its revision).
    pub fn awaits_recreation(&self) -> bool {
        self.deleted_before.is_some() && !self.exists()
    }

    /// The next revision an append gets.
    pub fn next_revision(&self) -> u64 {
        self.last_revision.map_or(0, |r| r + 1)
    }

    /// The revision reported as "current" in a wrong-expected-version answer.
    pub fn current_for_conflict(&self) -> Option<StreamRevision> {
        if self.exists() {
            self.last_revision.map(StreamRevision)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendDecision {
    /// Write the events, the first at this revision.
    Write {
        first_revision: u64,
    },
    /// The same events were already appended at these revisions: answer as then.
    AlreadyWritten {
        first_revision: u64,
        last_revision: u64,
    },
    WrongExpectedVersion {
        current: Option<StreamRevision>,
    },
    StreamDeleted,
}

/// Decides an append of `ids_len` events. `existing_first` is the revision of this stream at
/// which the first event's id was already written, if it was, and `existing_all_follow` says
/// whether every other event's id follows it at the next revisions: that is how an idempotent
/// retry (same ids, same expected revision) is recognised and answered with the original
/// result instead of writing twice.
#[must_use]
pub fn decide_append(
    state: &StreamState,
    expected: ExpectedRevision,
    ids_len: usize,
    existing_first: Option<u64>,
    existing_all_follow: bool,
) -> AppendDecision {
    if state.tombstoned {
        return AppendDecision::StreamDeleted;
    }
    if let (Some(first), true) = (existing_first, existing_all_follow) {
        let matches = match expected {
            ExpectedRevision::Any | ExpectedRevision::StreamExists => true,
            ExpectedRevision::NoStream => first == 0 || Some(first) == state.deleted_before,
            ExpectedRevision::Exact(n) => first == n + 1,
        };
        if matches && ids_len > 0 {
            return AppendDecision::AlreadyWritten {
                first_revision: first,
                last_revision: first + ids_len as u64 - 1,
            };
        }
    }
    let ok = match expected {
        ExpectedRevision::Any => true,
        ExpectedRevision::NoStream => !state.exists(),
        ExpectedRevision::StreamExists => state.exists(),
        ExpectedRevision::Exact(n) => state.exists() && state.last_revision == Some(n),
    };
    if ok {
        AppendDecision::Write {
            first_revision: state.next_revision(),
        }
    } else {
        AppendDecision::WrongExpectedVersion {
            current: state.current_for_conflict(),
        }
    }
}

/// Whether a write must record a `$metadata` event in its stream's metadata stream, as
/// EventStoreDB does: a soft delete that succeeds records `$tb` = "deleted", and an append
/// that recreates a soft-deleted stream records `$tb` = its first revision.
pub fn records_metadata(
    state: &StreamState,
    append: Option<&AppendDecision>,
    soft_delete: Option<&DeleteDecision>,
) -> bool {
    match (append, soft_delete) {
        (Some(AppendDecision::Write { .. }), _) => state.awaits_recreation(),
        (_, Some(DeleteDecision::Delete)) => true,
        _ => false,
    }
}

/// What becomes of the metadata event of a write that records one: written at this
/// revision of the metadata stream, or the metadata stream moved since the leader merged
/// the event (retry), or it is tombstoned (the write goes ahead without it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataDecision {
    Write { revision: u64 },
    Moved,
    Skip,
}

/// Decides the metadata event of a write that records one (see [`records_metadata`]).
pub fn decide_metadata(meta_state: &StreamState, expected: ExpectedRevision) -> MetadataDecision {
    match decide_append(meta_state, expected, 1, None, false) {
        AppendDecision::Write { first_revision } => MetadataDecision::Write {
            revision: first_revision,
        },
        AppendDecision::StreamDeleted => MetadataDecision::Skip,
        AppendDecision::WrongExpectedVersion { .. } | AppendDecision::AlreadyWritten { .. } => {
            MetadataDecision::Moved
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteDecision {
    Delete,
    WrongExpectedVersion { current: Option<StreamRevision> },
    StreamDeleted,
}

/// Decides a delete or tombstone. Deleting a stream that does not exist with `Any` succeeds,
/// as in EventStoreDB; with `StreamExists` or a revision it is a wrong expected version
/// (actual: no stream). A soft-deleted stream keeps its last revision for later deletes and
/// tombstones, as in EventStoreDB, where a soft delete only truncates the stream.
pub fn decide_delete(state: &StreamState, expected: ExpectedRevision) -> DeleteDecision {
    if state.tombstoned {
        return DeleteDecision::StreamDeleted;
    }
    let ok = match expected {
        ExpectedRevision::Any => true,
        ExpectedRevision::NoStream => !state.exists(),
        ExpectedRevision::StreamExists => state.exists(),
        ExpectedRevision::Exact(n) => state.last_revision == Some(n),
    };
    if ok {
        DeleteDecision::Delete
    } else {
        DeleteDecision::WrongExpectedVersion {
            current: state.current_for_conflict(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(last: Option<u64>) -> StreamState {
        StreamState {
            last_revision: last,
            ..Default::default()
        }
    }

    #[test]
    fn expected_revision_forms() {
        let empty = stream(None);
        let two = stream(Some(2));
        use ExpectedRevision::*;
        assert_eq!(
            decide_append(&empty, NoStream, 1, None, false),
            AppendDecision::Write { first_revision: 0 }
        );
        assert_eq!(
            decide_append(&two, NoStream, 1, None, false),
            AppendDecision::WrongExpectedVersion {
                current: Some(StreamRevision(2))
            }
        );
        assert_eq!(
            decide_append(&empty, StreamExists, 1, None, false),
            AppendDecision::WrongExpectedVersion { current: None }
        );
        assert_eq!(
            decide_append(&two, Exact(2), 1, None, false),
            AppendDecision::Write { first_revision: 3 }
        );
        assert_eq!(
            decide_append(&two, Exact(1), 1, None, false),
            AppendDecision::WrongExpectedVersion {
                current: Some(StreamRevision(2))
            }
        );
        assert_eq!(
            decide_append(&two, Any, 1, None, false),
            AppendDecision::Write { first_revision: 3 }
        );
    }

    #[test]
    fn idempotent_retry_returns_original_revisions() {
        let s = stream(Some(4));
        assert_eq!(
            decide_append(&s, ExpectedRevision::Exact(2), 2, Some(3), true),
            AppendDecision::AlreadyWritten {
                first_revision: 3,
                last_revision: 4
            }
        );
        // Same ids but a different expected revision is a conflict, not a retry.
        assert_eq!(
            decide_append(&s, ExpectedRevision::Exact(1), 2, Some(3), true),
            AppendDecision::WrongExpectedVersion {
                current: Some(StreamRevision(4))
            }
        );
    }

    #[test]
    fn soft_deleted_stream_reads_as_no_stream_and_continues_revisions() {
        let s = StreamState {
            last_revision: Some(4),
            deleted_before: Some(5),
            tombstoned: false,
        };
        assert!(!s.exists());
        assert_eq!(
            decide_append(&s, ExpectedRevision::NoStream, 1, None, false),
            AppendDecision::Write { first_revision: 5 }
        );
    }

    #[test]
    fn tombstone_is_final() {
        let s = StreamState {
            last_revision: Some(1),
            deleted_before: None,
            tombstoned: true,
        };
        assert_eq!(
            decide_append(&s, ExpectedRevision::Any, 1, None, false),
            AppendDecision::StreamDeleted
        );
        assert_eq!(
            decide_delete(&s, ExpectedRevision::Any),
            DeleteDecision::StreamDeleted
        );
    }

    /// Issue 11, item 10: after a soft delete the stream refused deletes and tombstones that
    /// named its last revision, which EventStoreDB accepts; a stream that never existed
    /// answers a wrong expected version for `StreamExists` and any revision.
    #[test]
    fn deletes_follow_eventstoredb() {
        use ExpectedRevision::*;
        let never = StreamState::default();
        for expected in [StreamExists, Exact(0), Exact(5)] {
            assert_eq!(
                decide_delete(&never, expected),
                DeleteDecision::WrongExpectedVersion { current: None },
                "{expected:?}"
            );
        }
        assert_eq!(decide_delete(&never, Any), DeleteDecision::Delete);
        let soft_deleted = StreamState {
            last_revision: Some(2),
            deleted_before: Some(3),
            tombstoned: false,
        };
        assert_eq!(
            decide_delete(&soft_deleted, Exact(2)),
            DeleteDecision::Delete
        );
        assert_eq!(
            decide_delete(&soft_deleted, Exact(1)),
            DeleteDecision::WrongExpectedVersion { current: None }
        );
    }

    #[test]
    fn soft_deletes_and_recreations_record_metadata_and_detect_a_moved_metadata_stream() {
        let live = StreamState {
            last_revision: Some(2),
            ..Default::default()
        };
        let soft_deleted = StreamState {
            last_revision: Some(2),
            deleted_before: Some(3),
            tombstoned: false,
        };
        let write = AppendDecision::Write { first_revision: 3 };
        assert!(soft_deleted.awaits_recreation());
        assert!(!live.awaits_recreation());
        assert!(records_metadata(&soft_deleted, Some(&write), None));
        assert!(!records_metadata(&live, Some(&write), None));
        let refused = AppendDecision::WrongExpectedVersion { current: None };
        assert!(!records_metadata(&soft_deleted, Some(&refused), None));
        assert!(records_metadata(&live, None, Some(&DeleteDecision::Delete)));
        assert!(!records_metadata(
            &live,
            None,
            Some(&DeleteDecision::WrongExpectedVersion { current: None })
        ));
        let recreated = StreamState {
            last_revision: Some(3),
            deleted_before: Some(3),
            tombstoned: false,
        };
        assert!(!recreated.awaits_recreation());

        let meta = StreamState {
            last_revision: Some(4),
            ..Default::default()
        };
        assert_eq!(
            decide_metadata(&meta, ExpectedRevision::Exact(4)),
            MetadataDecision::Write { revision: 5 }
        );
        assert_eq!(
            decide_metadata(&meta, ExpectedRevision::Exact(3)),
            MetadataDecision::Moved
        );
        assert_eq!(
            decide_metadata(&StreamState::default(), ExpectedRevision::NoStream),
            MetadataDecision::Write { revision: 0 }
        );
        assert_eq!(
            decide_metadata(&meta, ExpectedRevision::NoStream),
            MetadataDecision::Moved
        );
        let tombstoned = StreamState {
            tombstoned: true,
            ..Default::default()
        };
        assert_eq!(
            decide_metadata(&tombstoned, ExpectedRevision::NoStream),
            MetadataDecision::Skip
        );
    }
}
