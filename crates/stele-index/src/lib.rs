//! The stream index of Stele: derived state that maps a stream and a revision to the log
//! position of the event, a `$all` position to the event's revision, an event id to its stream
//! and revision (for idempotent retries), and keeps each stream's state (last revision,
//! deletion, metadata), with the [`Checkpoint`] of what it has applied (docs/design.md decision 7).
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
//! (The last row predates the memtable below: it measured a redb transaction per commit.)
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
//! # Apply throughput: memtable against a redb transaction per commit
//!
//! `examples/apply.rs` applies 200,000 one-event appends to 1,000 streams in batches of 32
//! through [`IndexWriter`] as the state machine does (stream state, metadata and event-id
//! reads, then the event and the stream state, the checkpoint, `commit`), on a file index with
//! the default options, then reads:
//!
//! ```text
//! cargo run -p stele-index --release --example apply
//!
//!                              redb commit per batch   memtable (this design)
//! apply events/s                    28,500–33,700        228,000–252,000
//! slowest batch ms                        —                   38–43  (waits for a flush)
//! state lookups/s, unflushed       929,000–978,000     1,180,000–1,420,000
//! scans of 20/s, unflushed         154,000–164,000       101,000–119,000
//! state lookups/s, flushed         967,000–985,000       828,000–935,000
//! scans of 20/s, flushed                  —              145,000–147,000
//! ```
//!
//! Three alternating runs each on the 2-core machine (load about 1.5). Apply is 7 to 8 times
//! faster; the background flush takes the second core. Scans that merge an unflushed memtable
//! with redb are about a quarter slower; point lookups are faster while the memtable answers.
//! With the flush in the committing thread instead, apply was 80,000–105,000 events/s and the
//! batch that flushed took 190–290 ms.
//!
//! # Layout
//!
//! `src/schema.rs` has the tables, their keys and values as a table. Streams are keyed by name
//! once; per-event tables use a 64-bit stream id assigned on first sight, so an event
//! key is 16 bytes whatever the name's length. Measured no slower than keying by name with
//! 25-byte names (within noise), and smaller for longer names.
//!
//! # The memtable: commits in memory, flushed to redb in one transaction
//!
//! A redb commit has a fixed cost (page copy-on-write, checksums, allocator bookkeeping) that
//! dominated a busy follower, which applies small batches (10 to 50 one-event appends) one
//! redb transaction each. So [`IndexWriter::commit`] does not touch redb: the writer buffers
//! its puts (its own reads see them) and at commit hands them to the **memtable**, an
//! in-memory layer of `BTreeMap`s and `HashMap`s with the same keys as the tables (stream
//! record by name, `(stream id, revision) → position`, `$all` position → revision, event id →
//! `(stream id, revision)`, names of new streams, the checkpoint). The memtable is written to
//! redb in **one** durable transaction — with the checkpoint of the last commit it holds, and
//! the next stream id — and replaced by an empty one (a **flush**) when:
//!
//! - it holds [`IndexOptions::memtable_limit`] entries (events and stream-record writes;
//!   default 65,536), the bound on its memory (docs/design.md decision 12);
//! - [`IndexOptions::durable_every_commits`] commits or [`IndexOptions::durable_every`] have
//!   passed since the last flush (checked at each commit; defaults 20,000 and 10 s);
//! - [`IndexWriter::commit_durable`] or [`Index::flush`] is called, or the [`Index`] is
//!   dropped (a clean close).
//!
//! A flush due to the limit or the clock runs in a background thread (`stele-index-flush`):
//! the commit that starts it returns at once and later commits go into a fresh memtable. One
//! flush runs at a time, so a commit that finds a flush due while the previous one still runs
//! waits for it (back-pressure: memory stays under two memtables).
//! [`IndexWriter::commit_durable`], [`Index::flush`] and dropping the index flush in the
//! calling thread and wait for it. Flushes are the only redb writes, and each is durable:
//! redb's file always ends at a flush. A failed flush fails the next commit and leaves its
//! memtable in place (reads stay right), to be written first by the next flush.
//!
//! **Reads** merge the layers, newest first: the writer's own puts (writer reads only), the
//! memtable, the generation being flushed (while a flush runs, readers see it until redb
//! does), then redb. A point read takes the first layer that has the key; a range read
//! (`stream_range`, `all_range` both ways, `last_position`) merges the sorted layers lazily,
//! the newer layer winning on equal keys, so counts hold across the boundary. Every value in
//! the memtable carries the number of the commit that wrote it and a key keeps its versions
//! until the flush, so an [`IndexSnapshot`] (which notes the last commit when it was taken,
//! and holds the generations and a redb read transaction taken together under one lock) sees
//! exactly one committed state, whatever commits or flushes after it.
//!
//! **Checkpoint.** [`Index::checkpoint`] answers the last committed checkpoint, in memory or
//! in redb. The state machine reads it only when it opens, when the memtable is empty, so it
//! is redb's: the checkpoint of the last flush, in the same transaction as the data it
//! describes. During a run the state machine keeps its applied position in memory.
//!
//! # What survives a crash
//!
//! A crash (of the process, not only of the machine; `tests/crash.rs` kills a writer and
//! sees this) loses the memtable: the index reopens at its last completed flush, with exactly
//! that flush's data and checkpoint — never data without its checkpoint or a checkpoint
//! without its data — and the state machine replays the log after that checkpoint (the index
//! is derived, decision 7). So a crash costs replaying at most two memtables' worth of log
//! (twice [`IndexOptions::memtable_limit`] entries, when it strikes during a flush), and at
//! most `durable_every_commits` commits or `durable_every` plus one flush. A clean close
//! (dropping the [`Index`]) flushes, and a restart replays nothing.
//!
//! Two consequences for the caller: the time trigger fires only on a commit, so an index that
//! goes idle after a burst keeps its last commits in memory until the next commit or
//! [`Index::flush`] (call it from a timer if replay time matters); and the index must never be
//! durable ahead of the log, so apply only entries the local log has fsynced.
//!
//! Flushes also save redb's allocator state ("quick repair"), so reopening after a
//! crash does not walk the whole file.

#![cfg_attr(
    test,
    allow(
        clippy::disallowed_methods,
        reason = "tests may use the clock, random ids and threads"
    )
)]

mod checkpoint;
mod error;
mod index;
mod memtable;
mod schema;
mod shared_file;
mod snapshot;
mod writer;

pub use checkpoint::Checkpoint;
pub use error::IndexError;
pub use index::{Index, IndexOptions};
pub use shared_file::SharedMemFile;
pub use snapshot::IndexSnapshot;
pub use writer::IndexWriter;
