//! Change counters a reader can check without reading the log: has anything that decides
//! access (a stream's metadata, a system stream such as `$user-<login>` or `$settings`)
//! changed since I last read it?
//!
//! The state machine bumps [`StreamVersions`] for every applied command that writes a
//! metadata stream (`$$x`: counted for `x`) or writes or deletes a system stream (`$x`),
//! after the index commit that makes the change readable and before the writer is answered.
//! So a reader that takes [`StreamVersions::version`] *before* reading `x` and finds it
//! unchanged later knows that what it read is still current. Plain appends to user streams
//! (the hot path) are not counted.
//!
//! Streams share [`STREAM_VERSION_BUCKETS`] counters by hash: a version may change for a
//! change to another stream (the reader reads again; never the other way round).

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use stele_core::Command;

/// Counters shared by all streams.
pub const STREAM_VERSION_BUCKETS: usize = 4096;

/// The counters; see the module docs.
#[derive(Debug)]
pub struct StreamVersions {
    buckets: Box<[AtomicU64]>,
}

impl Default for StreamVersions {
    fn default() -> Self {
        StreamVersions {
            buckets: (0..STREAM_VERSION_BUCKETS)
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }
}

impl StreamVersions {
    /// The version of `stream` (its metastream `$$stream` counts as `stream`).
    pub fn version(&self, stream: &str) -> u64 {
        self.buckets[bucket(stream)].load(Ordering::Acquire)
    }

    /// The bucket a command's change is counted in, if it is one that is counted.
    pub(crate) fn counted(command: &Command) -> Option<usize> {
        let stream = command.stream();
        // Metastreams (`$$x`) are system streams too.
        let counted =
            stream.as_str().starts_with('$') || matches!(command, Command::WithMetadata { .. });
        counted.then(|| bucket(stream.as_str()))
    }

    /// Counts changes in these buckets (after they are readable).
    pub(crate) fn bump(&self, buckets: &[usize]) {
        for &bucket in buckets {
            self.buckets[bucket].fetch_add(1, Ordering::AcqRel);
        }
    }
}

fn bucket(stream: &str) -> usize {
    let target = stream.strip_prefix("$$").unwrap_or(stream);
    // SipHash with fixed keys: the same bucket on every node and run.
    let mut hasher = std::hash::DefaultHasher::new();
    target.hash(&mut hasher);
    (hasher.finish() % STREAM_VERSION_BUCKETS as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use stele_core::{DeleteKind, ExpectedRevision, StreamName};

    fn append(stream: &str) -> Command {
        Command::Append {
            stream: StreamName::new(stream).unwrap(),
            expected: ExpectedRevision::Any,
            events: Vec::new(),
        }
    }

    #[test]
    fn metadata_and_system_streams_count_user_appends_do_not() {
        assert_eq!(StreamVersions::counted(&append("orders")), None);
        let meta = StreamVersions::counted(&append("$$orders"));
        assert_eq!(meta, Some(bucket("orders")));
        assert_eq!(
            StreamVersions::counted(&append("$user-ouro")),
            StreamVersions::counted(&append("$$$user-ouro")),
            "a user stream and its metastream share a counter"
        );
        let tombstone = Command::Delete {
            stream: StreamName::new("$settings").unwrap(),
            expected: ExpectedRevision::Any,
            kind: DeleteKind::Hard,
            created_ticks: 0,
        };
        assert!(StreamVersions::counted(&tombstone).is_some());
    }

    #[test]
    fn a_bump_moves_the_version() {
        let versions = StreamVersions::default();
        let before = versions.version("$user-ouro");
        versions.bump(&[bucket("$$$user-ouro")]);
        assert_eq!(versions.version("$user-ouro"), before + 1);
    }
}
