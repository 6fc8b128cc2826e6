//! [`Node`]: what the client API asks of a node — append, delete, read, status — with
//! errors the API maps to the wire in one place.

use std::sync::Arc;

use stele_core::{
    DeleteKind, ExpectedRevision, LogPosition, ProposedEvent, RecordedEvent, StreamName,
    StreamRevision,
};
use uuid::Uuid;

use crate::VNodeState;

/// Result of an append that reached a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    Success {
        /// Revision of the last event appended; `None` only for an append of no events to
        /// a stream that does not exist (the wire's `no_stream`).
        current_revision: Option<StreamRevision>,
        /// Position of the last event appended; `None` when nothing was appended (the
        /// wire's `no_position`).
        position: Option<LogPosition>,
    },
    WrongExpectedVersion {
        current: Option<StreamRevision>,
        expected: ExpectedRevision,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted {
        position: LogPosition,
    },
    WrongExpectedVersion {
        current: Option<StreamRevision>,
        expected: ExpectedRevision,
    },
}

/// Why a write did not reach a decision, or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("stream '{0}' is deleted")]
    StreamDeleted(StreamName),
    #[error("maximum append size of {max_bytes} exceeded")]
    MaximumAppendSizeExceeded { max_bytes: u32 },
    #[error("this node is not the leader")]
    NotLeader { leader: Option<(String, u16)> },
    #[error("server is not ready")]
    NotReady,
    #[error("operation timed out")]
    Timeout,
    #[error("internal error: {0}")]
    Internal(String),
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
    #[error("internal error: {0}")]
    Internal(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forwards,
    Backwards,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStart {
    Start,
    End,
    /// Inclusive.
    Revision(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamReadRequest {
    pub stream: StreamName,
    pub start: StreamStart,
    pub direction: Direction,
    pub max_count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamReadResult {
    Events(Vec<RecordedEvent>),
    /// Never written, or soft-deleted. (Tombstoned streams are `ReadError::StreamDeleted`.)
    NotFound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllStart {
    Start,
    End,
    /// Inclusive: the first event at or after (forwards) / before (backwards) it.
    Position(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllReadRequest {
    pub start: AllStart,
    pub direction: Direction,
    /// Counts the events that pass the filter.
    pub max_count: u64,
}

/// What a node reports about itself in gossip, `/info` and `/stats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub instance_id: Uuid,
    pub state: VNodeState,
    pub is_alive: bool,
    /// The address and port clients should dial (after the `Advertise*` options).
    pub http_endpoint: (String, u16),
    pub internal_tcp: (String, u16),
    /// Position after the last committed event.
    pub last_commit_position: u64,
    /// Log end written (and flushed) on this node.
    pub writer_checkpoint: u64,
    /// Log end applied to the index on this node.
    pub chaser_checkpoint: u64,
    /// Raft term.
    pub epoch_number: u64,
    pub node_priority: i32,
    pub read_only_replica: bool,
    /// Whether the node serves clients (the `/health/live` answer).
    pub ready: bool,
}

/// A running node. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    inner: Arc<NodeInner>,
}

struct NodeInner {}

impl Node {
    /// Appends events to a stream. The answer comes once a quorum has the events on disk and
    /// the leader has applied them.
    pub async fn append(
        &self,
        stream: StreamName,
        expected: ExpectedRevision,
        events: Vec<ProposedEvent>,
    ) -> Result<AppendOutcome, WriteError> {
        let _ = (&self.inner, stream, expected, events);
        todo!("append")
    }

    /// Soft-deletes (`DeleteKind::Soft`) or tombstones (`DeleteKind::Hard`) a stream.
    pub async fn delete(
        &self,
        stream: StreamName,
        expected: ExpectedRevision,
        kind: DeleteKind,
    ) -> Result<DeleteOutcome, WriteError> {
        let _ = (stream, expected, kind);
        todo!("delete")
    }

    /// Reads a stream, honouring its metadata (`$maxCount`, `$maxAge`, `$tb`).
    pub fn read_stream(&self, request: &StreamReadRequest) -> Result<StreamReadResult, ReadError> {
        let _ = request;
        todo!("read_stream")
    }

    /// Reads `$all`, keeping only the events `filter` accepts (and counting only those).
    pub fn read_all(
        &self,
        request: &AllReadRequest,
        filter: &dyn Fn(&RecordedEvent) -> bool,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        let _ = (request, filter);
        todo!("read_all")
    }

    /// Position after the last event in `$all` (what `End` means).
    pub fn last_position(&self) -> LogPosition {
        todo!("last_position")
    }

    pub fn status(&self) -> NodeStatus {
        todo!("status")
    }

    /// The maximum size in bytes of one append (`MaxAppendSize`).
    pub fn max_append_size_bytes(&self) -> u32 {
        todo!("max_append_size_bytes")
    }
}
