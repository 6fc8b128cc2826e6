//! Stele's domain, with no I/O: streams, events, positions, expected revisions, stream
//! metadata, the commands that travel through the replicated log, and the pure decisions
//! the state machine makes on them.
//!
//! Everything here is deterministic: the same log prefix gives the same decision on every
//! node (docs/design.md decision 6). Storage, consensus and transport live in other crates and
//! call into this one; nothing here knows about tokio, files or sockets.

#![cfg_attr(
    test,
    allow(
        clippy::disallowed_methods,
        reason = "tests may use the clock, random ids and threads"
    )
)]

pub mod access;
pub mod command;
pub mod decision;
pub mod event;
pub mod metadata;
pub mod position;
pub mod stream;
pub mod validation;

pub use access::Principal;
pub use command::{Command, CommandResult, DeleteKind};
pub use decision::{
    decide_append, decide_delete, decide_metadata, records_metadata, AppendDecision,
    DeleteDecision, MetadataDecision, StreamState,
};
pub use event::{ContentType, EventRecord, ProposedEvent, RecordedEvent};
pub use metadata::StreamMetadata;
pub use position::{ExpectedRevision, LogPosition, StreamRevision};
pub use stream::{StreamName, StreamNameError, MAX_STREAM_NAME_BYTES};
pub use validation::{validate_command, InvalidCommand, WriteLimits, EVENT_RECORD_OVERHEAD_BYTES};

/// .NET ticks (100 ns units) per second; EventStoreDB timestamps are ticks since the Unix
/// epoch on the wire (`created` metadata).
pub const TICKS_PER_SECOND: i64 = 10_000_000;

/// Revision EventStoreDB gives the tombstone event of a hard-deleted stream (`long.MaxValue`).
pub const TOMBSTONE_REVISION: u64 = i64::MAX as u64;
