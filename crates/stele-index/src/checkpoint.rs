//! The index checkpoint: how far into the replicated log the index has applied. It is written
//! in the same transaction as the data it describes, so the two never disagree.

use serde::{Deserialize, Serialize};

/// What the index has applied. On start the state machine replays the log after
/// `applied_log_index`; everything up to it is already in the index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Index of the last applied log entry.
    pub applied_log_index: u64,
    /// Term of the last applied log entry.
    pub applied_term: u64,
    /// Node that led the term of the last applied log entry.
    pub applied_leader_node: u64,
    /// Log position (byte offset) just after the last applied entry.
    pub log_position: u64,
    /// The last applied membership, as opaque bytes owned by the consensus adapter.
    pub membership: Vec<u8>,
}
