//! The stream index of Stele: derived state that maps a stream and a revision to the log
//! position of the event, a `$all` position to the event's revision, an event id to its stream
//! and revision (for idempotent retries), and keeps each stream's state (last revision,
//! deletion, metadata), with the [`Checkpoint`] of what it has applied (DESIGN.md decision 7).
//!
//! It does not read the log, decide anything, or know about consensus or tokio: the state
//! machine decides (with `stele_core::decision`), writes what it decided through an
//! [`IndexWriter`], and on start replays the log after [`Index::checkpoint`]. Losing the index
//! costs a replay, never data. Removing events (scavenge) is not here yet.
//!
//! # Store: redb, by measurement
//!
//! `examples/kv_choice.rs` runs the index's workload on redb 3 and fjall 3: 200,000 events
//! over 1,000 streams in batches of 100, each batch one transaction with the events'
//! `(stream, revision) → position` entries and one state update per touched stream, commits
//! without fsync (a durable one every 1,000 commits or second); then 200,000 point lookups of
//! stream state and 20,000 scans of 100 revisions, each in its own read transaction. "full"
//! adds what the index really writes per event: the `$all` entry and the event-id entry.
//!
//! ```text
//! cargo run -p stele-index --release --example kv_choice
//!
//! store  layout                    inserts/s    lookups/s    scans/s  size MiB
//! redb   brief (stream+state)          47169       617848      34859      32.1
//! fjall  brief (stream+state)          71947       272375      11667      64.0
//! redb   full, keyed by name           20903       612794      35276      64.3
//! fjall  full, keyed by name           38671       232393      10026      64.0
//! redb   full, keyed by id             23961      1021586      52498      64.2
//! stele-index (as built)               27926       785772      46794      64.2
//! ```
//!
//! That is one of six runs on the 2-core development machine while other builds ran (load
//! 2 to 5), so single numbers move by ±30%; the ratios held in every run. fjall inserts 1.4 to
//! 2.1 times faster (its LSM tree takes random event-id keys cheaply; redb copies a B-tree
//! leaf per random key), redb looks stream state up 2.5 to 4 times faster and scans 3 to 4
//! times faster. With `KV_CHOICE_BATCH=1000` redb's inserts double (full by id about 39,000 to
//! 53,000/s) and fjall's gap narrows to 1.0 to 1.5 times.
//!
//! redb it is: fjall is not clearly better — it wins the write side by less than redb wins
//! the read side, and reads are the more frequent (every append reads its stream's state,
//! every stream read scans). redb also keeps the index in one file, commits the checkpoint in
//! the same ACID transaction as the data, runs no background compaction threads on a 2-core
//! machine, and has an in-memory backend for `--mem-db`.
//!
//! # Layout
//!
//! `src/schema.rs` has the tables, their keys and values as a table. Streams are keyed by name
//! once; per-event tables use a 64-bit stream id assigned on first sight, so an event
//! key is 16 bytes whatever the name's length. Measured no slower than keying by name with
//! 25-byte names (within noise), and smaller for longer names.
//!
//! # What survives a crash
//!
//! [`IndexWriter::commit`] does not fsync (redb `Durability::None`): the commit is visible to
//! readers at once and survives a clean close (dropping the [`Index`] makes a durable
//! commit), but a crash — of the process, not only of the machine; `tests/crash.rs` kills a
//! writer and sees this — rolls the index back to the last durable commit. A commit is durable
//! when [`IndexWriter::commit_durable`] or [`Index::flush`] is used, or when
//! [`IndexOptions`] says it is due (every 1,000 commits, or the first commit a second or more
//! after the last durable one). After a crash the index is therefore always a prefix of what
//! was committed, ending at a durable commit, with the checkpoint written in that same
//! transaction: never data without its checkpoint or a checkpoint without its data. The state
//! machine replays the log after that checkpoint.
//!
//! Two consequences for the caller: the time trigger fires only on a commit, so an index that
//! goes idle after a burst keeps its last commits volatile until the next commit or
//! [`Index::flush`] (call it from a timer if replay time matters); and the index must never be
//! durable ahead of the log, so apply only entries the local log has fsynced.
//!
//! Durable commits also save redb's allocator state ("quick repair"), so reopening after a
//! crash does not walk the whole file.

mod checkpoint;
mod error;
mod index;
mod memtable;
mod schema;
mod snapshot;
mod writer;

pub use checkpoint::Checkpoint;
pub use error::IndexError;
pub use index::{Index, IndexOptions};
pub use snapshot::IndexSnapshot;
pub use writer::IndexWriter;
