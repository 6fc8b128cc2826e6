//! Positions in the log and revisions in a stream, as newtypes so that the two are never
//! mixed up and "none" is an `Option`, not `-1`.

use serde::{Deserialize, Serialize};

/// Byte offset of an event's record in the logical log (docs/design.md decision 5). It is both the
/// commit and the prepare position on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LogPosition(pub u64);

/// The 0-based number of an event within its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StreamRevision(pub u64);

/// What an append or delete expects of the stream before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExpectedRevision {
    /// No check at all.
    Any,
    /// The stream must not exist (never written, or soft-deleted with nothing after).
    NoStream,
    /// The stream must exist.
    StreamExists,
    /// The stream's last revision must be exactly this one.
    Exact(u64),
}

impl ExpectedRevision {
    /// EventStoreDB's internal numeric form (`ExpectedVersion.cs`): Any = -2, NoStream = -1,
    /// StreamExists = -4, or the revision.
    pub fn as_i64(self) -> i64 {
        match self {
            ExpectedRevision::Any => -2,
            ExpectedRevision::NoStream => -1,
            ExpectedRevision::StreamExists => -4,
            ExpectedRevision::Exact(n) => n as i64,
        }
    }

    /// Parses the numeric form used by HTTP headers and the v2 protocol.
    pub fn from_i64(value: i64) -> Option<ExpectedRevision> {
        match value {
            -2 => Some(ExpectedRevision::Any),
            -1 => Some(ExpectedRevision::NoStream),
            -4 => Some(ExpectedRevision::StreamExists),
            n if n >= 0 => Some(ExpectedRevision::Exact(n as u64)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_forms_round_trip() {
        for e in [
            ExpectedRevision::Any,
            ExpectedRevision::NoStream,
            ExpectedRevision::StreamExists,
            ExpectedRevision::Exact(0),
            ExpectedRevision::Exact(42),
        ] {
            assert_eq!(ExpectedRevision::from_i64(e.as_i64()), Some(e));
        }
        assert_eq!(ExpectedRevision::from_i64(-3), None);
    }
}
