//! Deliberate bugs, compiled only with the `injected-bugs` feature, to show that the
//! deterministic simulation's checks catch what they claim to (docs/reliability.md). One may
//! be switched on per thread (the simulation runs each seed on one thread).

use std::cell::Cell;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// The committer answers sync requests without fsyncing (the idle checkpoint catch-up
    /// syncs later).
    AckBeforeFsync,
    /// The committer runs the flush callbacks when the fsync that covers them starts, not
    /// when it is done.
    FlushCallbackEarly,
    /// The leader counts a follower's append as durable without sending it.
    CommitWithoutQuorum,
    /// A restarting node drops the last entry of its log.
    TruncateCommitted,
    /// A restarted leader resumes its term without an election (openraft's
    /// `enable_leader_restore`): the real bug the simulation found first.
    LeaderRestore,
    /// An idempotent retry is answered from the committed index instead of the batch being
    /// applied, so a replay that applies the original and its retry together fails and the
    /// node never serves again (issue 11, item 1, put back).
    RetryReadsCommittedIndex,
}

impl Bug {
    pub const ALL: [Bug; 6] = [
        Bug::AckBeforeFsync,
        Bug::FlushCallbackEarly,
        Bug::CommitWithoutQuorum,
        Bug::TruncateCommitted,
        Bug::LeaderRestore,
        Bug::RetryReadsCommittedIndex,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bug::AckBeforeFsync => "ack-before-fsync",
            Bug::FlushCallbackEarly => "flush-callback-early",
            Bug::CommitWithoutQuorum => "commit-without-quorum",
            Bug::TruncateCommitted => "truncate-committed",
            Bug::LeaderRestore => "leader-restore",
            Bug::RetryReadsCommittedIndex => "retry-reads-committed-index",
        }
    }

    pub fn from_name(name: &str) -> Option<Bug> {
        Bug::ALL.into_iter().find(|b| b.name() == name)
    }
}

thread_local! {
    static ACTIVE: Cell<Option<Bug>> = const { Cell::new(None) };
}

/// Switches one bug on (or none) for this thread.
pub fn inject(bug: Option<Bug>) {
    ACTIVE.with(|a| a.set(bug));
}

pub(crate) fn active(bug: Bug) -> bool {
    ACTIVE.with(|a| a.get() == Some(bug))
}
