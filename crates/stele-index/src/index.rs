//! The index handle: opening (file or memory), read entry points, the start of write
//! transactions, and the policy that decides which commits are durable.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redb::backends::InMemoryBackend;
use redb::{Database, ReadableDatabase};
use stele_core::{StreamMetadata, StreamName, StreamState};

use crate::schema::{
    self, ALL, EVENTS, EVENT_IDS, FORMAT_VERSION, META, META_FORMAT_VERSION, META_NEXT_STREAM_ID,
    STREAMS, STREAM_NAMES,
};
use crate::{Checkpoint, IndexError, IndexSnapshot, IndexWriter};

/// Limits and cadences of an index, each with a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexOptions {
    /// After this many non-durable commits, the next commit is durable (fsynced).
    pub durable_every_commits: u64,
    /// A commit this long after the last durable one is durable.
    pub durable_every: Duration,
    /// Memory redb may use to cache pages.
    pub cache_size_bytes: usize,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            durable_every_commits: 1_000,
            durable_every: Duration::from_secs(1),
            cache_size_bytes: 256 * 1024 * 1024,
        }
    }
}

/// When the last durable commit was, to decide whether the next one must be.
#[derive(Debug)]
pub(crate) struct DurabilityClock {
    commits_since_durable: u64,
    last_durable: Instant,
}

/// The stream index of one node: stream → revision → log position, `$all` position →
/// revision, event id → (stream, revision), per-stream state and metadata, and the checkpoint
/// of what has been applied. Reads may run from any thread while one writer writes.
pub struct Index {
    db: Database,
    options: IndexOptions,
    clock: Mutex<DurabilityClock>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Index {
    /// Opens the index file at `path`, creating it if missing.
    pub fn open(path: &Path) -> Result<Index, IndexError> {
        Index::open_with(path, IndexOptions::default())
    }

    pub fn open_with(path: &Path, options: IndexOptions) -> Result<Index, IndexError> {
        let open_error = |source: redb::Error| IndexError::Open {
            path: path.to_owned(),
            source,
        };
        let db = Database::builder()
            .set_cache_size(options.cache_size_bytes)
            .create(path)
            .map_err(|e| open_error(e.into()))?;
        Index::init(db, options, path.to_owned(), open_error)
    }

    /// An index in memory, gone when dropped (`--mem-db`).
    pub fn in_memory() -> Result<Index, IndexError> {
        Index::in_memory_with(IndexOptions::default())
    }

    pub fn in_memory_with(options: IndexOptions) -> Result<Index, IndexError> {
        let open_error = |source: redb::Error| IndexError::OpenInMemory { source };
        let db = Database::builder()
            .set_cache_size(options.cache_size_bytes)
            .create_with_backend(InMemoryBackend::new())
            .map_err(|e| open_error(e.into()))?;
        Index::init(db, options, PathBuf::from("<memory>"), open_error)
    }

    /// Creates the tables of a new index, or checks the format version of an existing one.
    fn init(
        db: Database,
        options: IndexOptions,
        path: PathBuf,
        open_error: impl Fn(redb::Error) -> IndexError,
    ) -> Result<Index, IndexError> {
        let tx = db.begin_write().map_err(|e| open_error(e.into()))?;
        {
            let mut meta = tx.open_table(META).map_err(|e| open_error(e.into()))?;
            let streams = tx.open_table(STREAMS).map_err(|e| open_error(e.into()))?;
            tx.open_table(STREAM_NAMES)
                .map_err(|e| open_error(e.into()))?;
            tx.open_table(EVENTS).map_err(|e| open_error(e.into()))?;
            tx.open_table(ALL).map_err(|e| open_error(e.into()))?;
            tx.open_table(EVENT_IDS).map_err(|e| open_error(e.into()))?;
            match schema::meta_u64(&meta, META_FORMAT_VERSION)? {
                Some(FORMAT_VERSION) => {}
                Some(found) => {
                    return Err(IndexError::FormatVersion {
                        path,
                        found,
                        expected: FORMAT_VERSION,
                    })
                }
                None => {
                    // A file with streams but no version predates versioning: not ours to read.
                    let empty = redb::ReadableTableMetadata::is_empty(&streams)
                        .map_err(|e| open_error(e.into()))?;
                    if !empty {
                        return Err(IndexError::FormatVersion {
                            path,
                            found: 0,
                            expected: FORMAT_VERSION,
                        });
                    }
                    meta.insert(
                        META_FORMAT_VERSION,
                        schema::encode_u64(FORMAT_VERSION).as_slice(),
                    )
                    .map_err(|e| open_error(e.into()))?;
                    meta.insert(META_NEXT_STREAM_ID, schema::encode_u64(0).as_slice())
                        .map_err(|e| open_error(e.into()))?;
                }
            }
        }
        tx.commit().map_err(|e| open_error(e.into()))?;
        Ok(Index {
            db,
            options,
            clock: Mutex::new(DurabilityClock {
                commits_since_durable: 0,
                last_durable: Instant::now(),
            }),
        })
    }

    /// A consistent read view; the single-read methods below each take their own.
    pub fn snapshot(&self) -> Result<IndexSnapshot, IndexError> {
        let tx = self
            .db
            .begin_read()
            .map_err(IndexError::store("beginning a read transaction"))?;
        Ok(IndexSnapshot::new(tx))
    }

    /// What the index has applied, `None` for an index that has applied nothing.
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, IndexError> {
        self.snapshot()?.checkpoint()
    }

    /// The stream's state; the default (never written) for an unknown stream.
    pub fn stream_state(&self, stream: &StreamName) -> Result<StreamState, IndexError> {
        self.snapshot()?.stream_state(stream)
    }

    /// The stream's metadata; the default (no limits) for an unknown stream.
    pub fn stream_metadata(&self, stream: &StreamName) -> Result<StreamMetadata, IndexError> {
        self.snapshot()?.stream_metadata(stream)
    }

    /// `(revision, position)` of the stream's events from revision `from` inclusive:
    /// ascending when `forwards`, else descending; at most `count`. Pass `u64::MAX` to read
    /// backwards from the end.
    pub fn stream_range(
        &self,
        stream: &StreamName,
        from: u64,
        forwards: bool,
        count: usize,
    ) -> Result<Vec<(u64, u64)>, IndexError> {
        self.snapshot()?.stream_range(stream, from, forwards, count)
    }

    /// `(position, revision)` of events in `$all` order: positions `>= from` ascending when
    /// `forwards`, else positions `<= from` descending; at most `count`. Pass `u64::MAX` to
    /// read backwards from the end. The stream name is in the record at the position.
    pub fn all_range(
        &self,
        from: u64,
        forwards: bool,
        count: usize,
    ) -> Result<Vec<(u64, u64)>, IndexError> {
        self.snapshot()?.all_range(from, forwards, count)
    }

    /// The highest event position in `$all`, `None` when there are no events.
    pub fn last_position(&self) -> Result<Option<u64>, IndexError> {
        self.snapshot()?.last_position()
    }

    /// The stream and revision an event id was written at.
    pub fn event_revision(&self, id: &uuid::Uuid) -> Result<Option<(StreamName, u64)>, IndexError> {
        self.snapshot()?.event_revision(id)
    }

    /// Starts the write transaction. There is one at a time: a second `begin` waits until
    /// the first is committed or dropped (dropped = rolled back).
    pub fn begin(&self) -> Result<IndexWriter<'_>, IndexError> {
        let tx = self
            .db
            .begin_write()
            .map_err(IndexError::store("beginning a write transaction"))?;
        Ok(IndexWriter::new(self, tx))
    }

    /// Makes every commit so far durable (an empty durable commit). For a timer, or before a
    /// planned stop; dropping the index does the same.
    pub fn flush(&self) -> Result<(), IndexError> {
        self.begin()?.commit_durable()
    }

    /// Whether the commit about to happen must be durable under [`IndexOptions`].
    pub(crate) fn next_commit_is_durable(&self) -> bool {
        let clock = self.clock.lock().expect("durability clock lock poisoned");
        clock.commits_since_durable + 1 >= self.options.durable_every_commits
            || clock.last_durable.elapsed() >= self.options.durable_every
    }

    /// Records a successful commit.
    pub(crate) fn committed(&self, durable: bool) {
        let mut clock = self.clock.lock().expect("durability clock lock poisoned");
        if durable {
            clock.commits_since_durable = 0;
            clock.last_durable = Instant::now();
        } else {
            clock.commits_since_durable += 1;
        }
    }
}
