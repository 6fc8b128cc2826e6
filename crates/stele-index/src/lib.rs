//! The stream index of Stele: derived state that maps a stream and a revision to the log
//! position of the event, a `$all` position to the event's revision, an event id to its stream
//! and revision (for idempotent retries), and keeps each stream's state (last revision,
//! deletion, metadata), with the checkpoint of what it has applied (DESIGN.md decision 7).
//!
//! It does not read the log, decide anything, or know about consensus or tokio: the state
//! machine decides (with `stele_core::decision`) and writes what it decided here; on start it
//! replays the log after [`Index::checkpoint`]. Losing the index costs a replay, never data.
//!
//! (Store choice and crash guarantees: filled in below.)

mod checkpoint;
mod error;
mod index;
mod schema;
mod snapshot;
mod writer;

pub use checkpoint::Checkpoint;
pub use error::IndexError;
pub use index::{Index, IndexOptions};
pub use snapshot::IndexSnapshot;
pub use writer::IndexWriter;
