//! The index handle: opening (file or memory), read entry points, the start of write
//! transactions, the memtable over redb and the policy that decides when it is flushed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::backends::InMemoryBackend;
use redb::{Database, ReadableDatabase};
use stele_core::{StreamMetadata, StreamName, StreamState};

use crate::memtable::{Generation, Layers, MemTable};
use crate::schema::{
    self, ALL, EVENTS, EVENT_IDS, FORMAT_VERSION, META, META_CHECKPOINT, META_FORMAT_VERSION,
    META_NEXT_STREAM_ID, STREAMS, STREAM_NAMES,
};
use crate::snapshot::View;
use crate::{Checkpoint, IndexError, IndexSnapshot, IndexWriter};

/// Limits and cadences of an index, each with a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexOptions {
    /// The memtable is flushed to redb once it holds this many entries (events, and stream
    /// records written, each counting one): the bound on the index's memory besides redb's
    /// cache (docs/design.md decision 12), and on what a crash makes the node replay.
    pub memtable_limit: usize,
    /// After this many commits since the last flush, the next commit flushes.
    pub durable_every_commits: u64,
    /// A commit this long after the last flush flushes.
    pub durable_every: Duration,
    /// Memory redb may use to cache pages.
    pub cache_size_bytes: usize,
    /// Whether a flush that falls due (not one a durable commit asked for) runs in a
    /// background thread; the simulation flushes inline, as threads would make its runs
    /// irreproducible.
    pub background_flush: bool,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            // About 32,768 one-event appends (an event and a stream record each): some tens
            // of MiB of memory (two memtables while one is flushed), one redb transaction of
            // about 0.2 to 0.3 s in the background (measured with `examples/apply.rs`), and a
            // second or so of log to replay after a crash under load.
            memtable_limit: 65_536,
            // Each flush is a durable redb commit, which fsyncs and rewrites many pages. The
            // index is rebuildable from the log, so a longer interval costs only replay time
            // after a crash, never data.
            durable_every_commits: 20_000,
            durable_every: Duration::from_secs(10),
            cache_size_bytes: 256 * 1024 * 1024,
            background_flush: true,
        }
    }
}

/// When the last flush was, to decide whether the next commit must flush.
#[derive(Debug)]
pub(crate) struct DurabilityClock {
    commits_since_durable: u64,
    last_durable: Instant,
}

/// The durability clock's reading: the real clock, which stele-index has no other. The
/// simulation sets `durable_every` beyond any run, so it never decides a flush there.
#[allow(clippy::disallowed_methods, reason = "never decides in simulations")]
fn durability_clock_now() -> Instant {
    Instant::now()
}

/// What a background flush shares with the index.
struct Shared {
    db: Database,
    /// The memtable generations; the lock is held briefly to take a view or swap a
    /// generation at a flush.
    layers: RwLock<Layers>,
}

/// Who may write: one [`IndexWriter`] at a time.
#[derive(Debug)]
struct WriterSlot {
    busy: bool,
    /// The id the next new stream gets (the memtable's, ahead of redb's until a flush).
    next_stream_id: u64,
}

/// The stream index of one node: stream → revision → log position, `$all` position →
/// revision, event id → (stream, revision), per-stream state and metadata, and the checkpoint
/// of what has been applied. Reads may run from any thread while one writer writes.
pub struct Index {
    shared: Arc<Shared>,
    pub(crate) options: IndexOptions,
    /// The background flush in flight, if any.
    flushing: Mutex<Option<JoinHandle<Result<(), IndexError>>>>,
    writer: Mutex<WriterSlot>,
    writer_free: Condvar,
    clock: Mutex<DurabilityClock>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Drop for Index {
    /// A clean close writes the memtable to redb, so a restart replays nothing.
    fn drop(&mut self) {
        // Nothing to report it to: a failed flush costs a replay at the next start.
        let _ = self.flush_memtable(false);
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

    /// Opens the index in `file`, a redb file in memory that outlives this index (the
    /// simulation's restarts), creating it if it is empty.
    pub fn on_shared_memory(
        file: crate::SharedMemFile,
        options: IndexOptions,
    ) -> Result<Index, IndexError> {
        let open_error = |source: redb::Error| IndexError::OpenInMemory { source };
        let db = Database::builder()
            .set_cache_size(options.cache_size_bytes)
            .create_with_backend(file)
            .map_err(|e| open_error(e.into()))?;
        Index::init(db, options, PathBuf::from("<shared memory>"), open_error)
    }

    /// Creates the tables of a new index, or checks the format version of an existing one.
    fn init(
        db: Database,
        options: IndexOptions,
        path: PathBuf,
        open_error: impl Fn(redb::Error) -> IndexError,
    ) -> Result<Index, IndexError> {
        let tx = db.begin_write().map_err(|e| open_error(e.into()))?;
        let next_stream_id;
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
            next_stream_id = schema::meta_u64(&meta, META_NEXT_STREAM_ID)?.unwrap_or(0);
        }
        tx.commit().map_err(|e| open_error(e.into()))?;
        Ok(Index {
            shared: Arc::new(Shared {
                db,
                layers: RwLock::new(Layers {
                    active: Generation::new(MemTable::default()),
                    frozen: None,
                }),
            }),
            options,
            flushing: Mutex::new(None),
            writer: Mutex::new(WriterSlot {
                busy: false,
                next_stream_id,
            }),
            writer_free: Condvar::new(),
            clock: Mutex::new(DurabilityClock {
                commits_since_durable: 0,
                last_durable: durability_clock_now(),
            }),
        })
    }

    /// The memtable and redb as of now: everything committed (`latest`), or up to the last
    /// commit as this is called (a snapshot, which later commits do not change).
    fn view(&self, latest: bool) -> Result<View, IndexError> {
        let layers = self
            .shared
            .layers
            .read()
            .expect("memtable layers lock poisoned");
        let seq = if latest {
            u64::MAX
        } else {
            layers.active.read().seq
        };
        // Under the layer lock: a flush cannot swap generations between the two.
        let tx = self
            .shared
            .db
            .begin_read()
            .map_err(IndexError::store("beginning a read transaction"))?;
        Ok(View {
            layers: layers.clone(),
            seq,
            tx,
        })
    }

    /// A consistent read view; the single-read methods below each take their own.
    pub fn snapshot(&self) -> Result<IndexSnapshot, IndexError> {
        Ok(IndexSnapshot::new(self.view(false)?))
    }

    /// What the index has applied (committed, flushed or not), `None` for an index that has
    /// applied nothing. After a crash, a reopened index answers the checkpoint of its last
    /// flush: the state machine replays the log after it.
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
        let next_stream_id = {
            let mut slot = self.writer.lock().expect("writer slot lock poisoned");
            while slot.busy {
                slot = self
                    .writer_free
                    .wait(slot)
                    .expect("writer slot lock poisoned");
            }
            slot.busy = true;
            slot.next_stream_id
        };
        match self.view(true) {
            Ok(view) => Ok(IndexWriter::new(self, view, next_stream_id)),
            Err(e) => {
                self.release_writer();
                Err(e)
            }
        }
    }

    /// Frees the writer slot (a writer ending, committed or not).
    pub(crate) fn release_writer(&self) {
        self.writer.lock().expect("writer slot lock poisoned").busy = false;
        self.writer_free.notify_one();
    }

    /// Notes the next stream id after a commit; the caller holds the writer slot.
    pub(crate) fn set_next_stream_id(&self, next: u64) {
        self.writer
            .lock()
            .expect("writer slot lock poisoned")
            .next_stream_id = next;
    }

    /// Writes every commit so far to redb, durably. For a timer, or before a planned stop;
    /// dropping the index does the same.
    pub fn flush(&self) -> Result<(), IndexError> {
        self.begin()?.commit_durable()
    }

    /// Counts a commit and says whether it must flush the memtable: when `forced`, or when
    /// [`IndexOptions`] says it is due.
    pub(crate) fn committed_is_flush_due(&self, forced: bool) -> bool {
        let mut clock = self.clock.lock().expect("durability clock lock poisoned");
        clock.commits_since_durable += 1;
        forced
            || clock.commits_since_durable >= self.options.durable_every_commits
            || clock.last_durable.elapsed() >= self.options.durable_every
    }

    /// Writes the active memtable generation to redb in one durable transaction, with the
    /// checkpoint of its last commit, then forgets it: in a background thread when
    /// `background`, else before returning. The caller holds the writer slot (or owns the
    /// index), so nothing commits meanwhile.
    ///
    /// One flush at a time: a flush first waits for the one in flight (back-pressure when
    /// commits fill the memtable faster than redb takes it; memory stays under two
    /// memtables), and first writes a generation a failed flush left behind. Readers see the
    /// generation being written (as "frozen") until redb has it.
    pub(crate) fn flush_memtable(&self, background: bool) -> Result<(), IndexError> {
        self.wait_for_flush()?;
        let left = self.layers().frozen.clone();
        if let Some(generation) = left {
            self.shared.flush(&generation)?;
        }
        let generation = {
            let mut layers = self.layers();
            let active = layers.active.read();
            if active.is_empty() {
                drop(active);
                drop(layers);
                self.flushed();
                return Ok(());
            }
            let fresh = Generation::new(MemTable::starting_after(active.seq));
            drop(active);
            let frozen = std::mem::replace(&mut layers.active, fresh);
            layers.frozen = Some(frozen.clone());
            frozen
        };
        self.flushed();
        if background {
            let shared = self.shared.clone();
            #[allow(
                clippy::disallowed_methods,
                reason = "a flush thread; the simulation sets `background_flush: false`"
            )]
            let thread = std::thread::Builder::new()
                .name("stele-index-flush".into())
                .spawn({
                    let generation = generation.clone();
                    move || shared.flush(&generation)
                });
            if let Ok(handle) = thread {
                *self.flushing.lock().expect("flush handle lock poisoned") = Some(handle);
                return Ok(());
            }
            // No thread to be had: flush here.
        }
        self.shared.flush(&generation)
    }

    /// Waits for the background flush in flight, if any: its error if it failed.
    fn wait_for_flush(&self) -> Result<(), IndexError> {
        let handle = self
            .flushing
            .lock()
            .expect("flush handle lock poisoned")
            .take();
        match handle {
            Some(handle) => handle.join().expect("the index flush thread panicked"),
            None => Ok(()),
        }
    }

    /// Collects a background flush that has ended, so that its error reaches a commit.
    pub(crate) fn reap_flush(&self) -> Result<(), IndexError> {
        let ended = self
            .flushing
            .lock()
            .expect("flush handle lock poisoned")
            .as_ref()
            .is_some_and(|h| h.is_finished());
        if ended {
            self.wait_for_flush()?;
        }
        Ok(())
    }

    fn layers(&self) -> std::sync::RwLockWriteGuard<'_, Layers> {
        self.shared
            .layers
            .write()
            .expect("memtable layers lock poisoned")
    }

    fn flushed(&self) {
        let mut clock = self.clock.lock().expect("durability clock lock poisoned");
        clock.commits_since_durable = 0;
        clock.last_durable = durability_clock_now();
    }
}

impl Shared {
    /// Writes `generation` (the frozen one) to redb, then stops reads from consulting it.
    /// On failure it stays frozen: reads stay right, and the next flush writes it first.
    fn flush(&self, generation: &Arc<Generation>) -> Result<(), IndexError> {
        self.write_to_redb(&generation.read())?;
        let mut layers = self.layers.write().expect("memtable layers lock poisoned");
        if layers
            .frozen
            .as_ref()
            .is_some_and(|f| Arc::ptr_eq(f, generation))
        {
            layers.frozen = None;
        }
        Ok(())
    }

    /// One redb transaction with the latest value of every key in `table`, keys in order
    /// (random keys, the event ids, sorted first: the B-tree is then walked once, not
    /// jumped around).
    fn write_to_redb(&self, table: &MemTable) -> Result<(), IndexError> {
        let mut tx = self
            .db
            .begin_write()
            .map_err(IndexError::store("beginning a flush"))?;
        // Flushes are rare, so they also save the allocator state: reopening after a crash
        // then needs no full repair walk of the file.
        tx.set_quick_repair(true);
        {
            let mut names = tx
                .open_table(STREAM_NAMES)
                .map_err(IndexError::store("opening stream_names"))?;
            let mut new: Vec<_> = table.names.iter().collect();
            new.sort_unstable_by_key(|(id, _)| **id);
            for (id, name) in new {
                names
                    .insert(*id, name.as_str().as_bytes())
                    .map_err(IndexError::store("writing a stream name"))?;
            }
        }
        {
            let mut streams = tx
                .open_table(STREAMS)
                .map_err(IndexError::store("opening streams"))?;
            let mut records: Vec<_> = table.records.iter().collect();
            records.sort_unstable_by(|a, b| a.0.cmp(b.0));
            for (name, versions) in records {
                streams
                    .insert(
                        name.as_str().as_bytes(),
                        schema::encode(versions.latest()).as_slice(),
                    )
                    .map_err(IndexError::store("writing a stream"))?;
            }
        }
        {
            let mut events = tx
                .open_table(EVENTS)
                .map_err(IndexError::store("opening events"))?;
            for (&key, versions) in &table.events {
                events
                    .insert(key, *versions.latest())
                    .map_err(IndexError::store("writing an event"))?;
            }
        }
        {
            let mut all = tx
                .open_table(ALL)
                .map_err(IndexError::store("opening all"))?;
            for (&position, versions) in &table.all {
                all.insert(position, *versions.latest())
                    .map_err(IndexError::store("writing an event to $all"))?;
            }
        }
        {
            let mut ids = tx
                .open_table(EVENT_IDS)
                .map_err(IndexError::store("opening event_ids"))?;
            let mut sorted: Vec<(u128, (u64, u64))> = table
                .ids
                .iter()
                .map(|(&id, versions)| (id, *versions.latest()))
                .collect();
            sorted.sort_unstable_by_key(|&(id, _)| id);
            for (id, value) in sorted {
                ids.insert(id, value)
                    .map_err(IndexError::store("writing an event id"))?;
            }
        }
        {
            let mut meta = tx
                .open_table(META)
                .map_err(IndexError::store("opening meta"))?;
            if let Some(checkpoint) = &table.checkpoint {
                meta.insert(
                    META_CHECKPOINT,
                    schema::encode(checkpoint.latest()).as_slice(),
                )
                .map_err(IndexError::store("writing the checkpoint"))?;
            }
            if let Some(next) = table.next_stream_id {
                meta.insert(META_NEXT_STREAM_ID, schema::encode_u64(next).as_slice())
                    .map_err(IndexError::store("assigning stream ids"))?;
            }
        }
        tx.commit()
            .map_err(IndexError::store("committing a flush"))?;
        Ok(())
    }
}

#[cfg(test)]
impl Index {
    /// Non-durable commits since the last durable one.
    pub(crate) fn commits_since_durable(&self) -> u64 {
        self.clock
            .lock()
            .expect("durability clock lock poisoned")
            .commits_since_durable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stele_core::TOMBSTONE_REVISION;
    use uuid::Uuid;

    fn name(s: &str) -> StreamName {
        StreamName::new(s).unwrap()
    }

    fn checkpoint(n: u64) -> Checkpoint {
        Checkpoint {
            applied_log_index: n,
            applied_term: 2,
            applied_leader_node: 3,
            log_position: n * 100,
            membership: vec![1, 2, 3, n as u8],
        }
    }

    /// Writes `count` events to `stream` from revision `first`, at positions from `position`
    /// by 10.
    fn put_events(
        w: &mut IndexWriter<'_>,
        stream: &StreamName,
        first: u64,
        count: u64,
        position: u64,
    ) {
        for i in 0..count {
            w.put_event(stream, first + i, position + 10 * i, &Uuid::new_v4())
                .unwrap();
        }
        let state = StreamState {
            last_revision: Some(first + count - 1),
            ..Default::default()
        };
        w.put_stream_state(stream, &state).unwrap();
    }

    #[test]
    fn index_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Index>();
        assert_send_sync::<IndexSnapshot>();
    }

    #[test]
    fn empty_index_answers_defaults() {
        let index = Index::in_memory().unwrap();
        let s = name("orders-1");
        assert_eq!(index.checkpoint().unwrap(), None);
        assert_eq!(index.stream_state(&s).unwrap(), StreamState::default());
        assert_eq!(
            index.stream_metadata(&s).unwrap(),
            StreamMetadata::default()
        );
        assert!(index.stream_range(&s, 0, true, 10).unwrap().is_empty());
        assert!(index
            .stream_range(&s, u64::MAX, false, 10)
            .unwrap()
            .is_empty());
        assert!(index.all_range(0, true, 10).unwrap().is_empty());
        assert!(index.all_range(u64::MAX, false, 10).unwrap().is_empty());
        assert_eq!(index.last_position().unwrap(), None);
        assert_eq!(index.event_revision(&Uuid::new_v4()).unwrap(), None);
    }

    #[test]
    fn ranges_go_both_ways_and_stop_at_count() {
        let index = Index::in_memory().unwrap();
        let a = name("a");
        let ab = name("ab");
        let mut w = index.begin().unwrap();
        put_events(&mut w, &a, 0, 5, 1000); // positions 1000..=1040
        put_events(&mut w, &ab, 0, 3, 2000); // positions 2000..=2020
        w.commit().unwrap();

        assert_eq!(
            index.stream_range(&a, 0, true, 100).unwrap(),
            vec![(0, 1000), (1, 1010), (2, 1020), (3, 1030), (4, 1040)]
        );
        assert_eq!(
            index.stream_range(&a, 2, true, 2).unwrap(),
            vec![(2, 1020), (3, 1030)]
        );
        assert_eq!(
            index.stream_range(&a, 2, false, 100).unwrap(),
            vec![(2, 1020), (1, 1010), (0, 1000)]
        );
        assert_eq!(
            index.stream_range(&a, u64::MAX, false, 2).unwrap(),
            vec![(4, 1040), (3, 1030)]
        );
        assert!(index.stream_range(&a, 5, true, 10).unwrap().is_empty());
        assert!(index.stream_range(&a, 0, true, 0).unwrap().is_empty());
        // A stream whose name extends another's sees only its own events.
        assert_eq!(index.stream_range(&ab, 0, true, 100).unwrap().len(), 3);

        assert_eq!(
            index.all_range(1035, true, 3).unwrap(),
            vec![(1040, 4), (2000, 0), (2010, 1)]
        );
        assert_eq!(
            index.all_range(2000, false, 3).unwrap(),
            vec![(2000, 0), (1040, 4), (1030, 3)]
        );
        assert_eq!(index.all_range(1999, false, 1).unwrap(), vec![(1040, 4)]);
        assert_eq!(index.last_position().unwrap(), Some(2020));
        assert_eq!(index.stream_state(&a).unwrap().last_revision, Some(4));
    }

    #[test]
    fn tombstone_revision_sorts_last() {
        let index = Index::in_memory().unwrap();
        let s = name("gone");
        let mut w = index.begin().unwrap();
        put_events(&mut w, &s, 0, 2, 0);
        w.put_event(&s, TOMBSTONE_REVISION, 500, &Uuid::new_v4())
            .unwrap();
        w.commit().unwrap();
        assert_eq!(
            index.stream_range(&s, u64::MAX, false, 1).unwrap(),
            vec![(TOMBSTONE_REVISION, 500)]
        );
        assert_eq!(
            index.stream_range(&s, 1, true, 10).unwrap(),
            vec![(1, 10), (TOMBSTONE_REVISION, 500)]
        );
    }

    #[test]
    fn metadata_and_state_are_kept_apart() {
        let index = Index::in_memory().unwrap();
        let s = name("orders");
        let metadata = StreamMetadata {
            max_count: Some(3),
            ..Default::default()
        };
        let state = StreamState {
            last_revision: Some(7),
            deleted_before: Some(3),
            tombstoned: false,
        };
        let mut w = index.begin().unwrap();
        w.put_stream_metadata(&s, &metadata).unwrap();
        w.put_stream_state(&s, &state).unwrap();
        w.commit().unwrap();
        assert_eq!(index.stream_metadata(&s).unwrap(), metadata);
        assert_eq!(index.stream_state(&s).unwrap(), state);
        let mut w = index.begin().unwrap();
        w.put_stream_state(&s, &StreamState::default()).unwrap();
        w.commit().unwrap();
        assert_eq!(index.stream_metadata(&s).unwrap(), metadata);
    }

    #[test]
    fn dropped_writer_rolls_back() {
        let index = Index::in_memory().unwrap();
        let s = name("orders");
        let mut w = index.begin().unwrap();
        put_events(&mut w, &s, 0, 3, 0);
        w.set_checkpoint(&checkpoint(1)).unwrap();
        drop(w);
        assert_eq!(index.checkpoint().unwrap(), None);
        assert_eq!(index.stream_state(&s).unwrap(), StreamState::default());
        assert_eq!(index.last_position().unwrap(), None);
    }

    #[test]
    fn a_snapshot_does_not_see_later_commits() {
        let index = Index::in_memory().unwrap();
        let s = name("orders");
        let snapshot = index.snapshot().unwrap();
        let mut w = index.begin().unwrap();
        put_events(&mut w, &s, 0, 3, 0);
        w.commit().unwrap();
        assert_eq!(snapshot.stream_state(&s).unwrap(), StreamState::default());
        assert!(snapshot.stream_range(&s, 0, true, 10).unwrap().is_empty());
        assert_eq!(index.stream_range(&s, 0, true, 10).unwrap().len(), 3);
    }

    #[test]
    fn reopening_a_file_returns_the_last_committed_checkpoint_and_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.redb");
        let s = name("orders");
        let id = Uuid::new_v4();
        {
            let index = Index::open(&path).unwrap();
            let mut w = index.begin().unwrap();
            put_events(&mut w, &s, 0, 3, 0);
            w.set_checkpoint(&checkpoint(1)).unwrap();
            w.commit_durable().unwrap();
            // The last commit is not durable: a clean close keeps it all the same.
            let mut w = index.begin().unwrap();
            w.put_event(&s, 3, 30, &id).unwrap();
            w.put_stream_state(
                &s,
                &StreamState {
                    last_revision: Some(3),
                    ..Default::default()
                },
            )
            .unwrap();
            w.set_checkpoint(&checkpoint(2)).unwrap();
            w.commit().unwrap();
            // An uncommitted transaction is not.
            let mut w = index.begin().unwrap();
            w.put_event(&s, 4, 40, &Uuid::new_v4()).unwrap();
            w.set_checkpoint(&checkpoint(3)).unwrap();
        }
        let index = Index::open(&path).unwrap();
        assert_eq!(index.checkpoint().unwrap(), Some(checkpoint(2)));
        assert_eq!(
            index.stream_range(&s, 0, true, 10).unwrap(),
            vec![(0, 0), (1, 10), (2, 20), (3, 30)]
        );
        assert_eq!(index.stream_state(&s).unwrap().last_revision, Some(3));
        assert_eq!(index.last_position().unwrap(), Some(30));
        assert_eq!(index.event_revision(&id).unwrap(), Some((s.clone(), 3)));
        // Stream ids continue where they were: a new stream does not take an old one's id.
        let t = name("other");
        let mut w = index.begin().unwrap();
        put_events(&mut w, &t, 0, 1, 100);
        w.commit().unwrap();
        assert_eq!(index.stream_range(&s, 0, true, 10).unwrap().len(), 4);
        assert_eq!(index.stream_range(&t, 0, true, 10).unwrap(), vec![(0, 100)]);
    }

    #[test]
    fn an_index_of_another_format_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.redb");
        drop(Index::open(&path).unwrap());
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META)
                .unwrap()
                .insert(META_FORMAT_VERSION, schema::encode_u64(99).as_slice())
                .unwrap();
            tx.commit().unwrap();
        }
        let err = Index::open(&path).unwrap_err();
        assert!(
            matches!(
                err,
                IndexError::FormatVersion {
                    found: 99,
                    expected: FORMAT_VERSION,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("rebuild"), "{err}");
    }

    #[test]
    fn opening_a_path_that_cannot_be_created_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("index.redb");
        let err = Index::open(&path).unwrap_err();
        assert!(matches!(err, IndexError::Open { .. }), "{err:?}");
        assert!(err.to_string().contains("missing-dir"), "{err}");
    }

    #[test]
    fn every_nth_commit_is_durable() {
        let index = Index::in_memory_with(IndexOptions {
            durable_every_commits: 3,
            durable_every: Duration::from_secs(3600),
            ..IndexOptions::default()
        })
        .unwrap();
        let commit = || index.begin().unwrap().commit().unwrap();
        commit();
        commit();
        assert_eq!(index.commits_since_durable(), 2);
        commit();
        assert_eq!(index.commits_since_durable(), 0);
        commit();
        assert_eq!(index.commits_since_durable(), 1);
        index.flush().unwrap();
        assert_eq!(index.commits_since_durable(), 0);
    }

    #[test]
    fn a_commit_long_after_the_last_durable_one_is_durable() {
        let index = Index::in_memory_with(IndexOptions {
            durable_every_commits: u64::MAX,
            durable_every: Duration::ZERO,
            ..IndexOptions::default()
        })
        .unwrap();
        index.begin().unwrap().commit().unwrap();
        assert_eq!(index.commits_since_durable(), 0);
    }

    #[test]
    fn readers_see_whole_commits_while_the_memtable_is_flushed_under_them() {
        let index = Index::in_memory_with(IndexOptions {
            memtable_limit: 7,
            ..IndexOptions::default()
        })
        .unwrap();
        let s = name("orders");
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    while !done.load(std::sync::atomic::Ordering::Relaxed) {
                        let snapshot = index.snapshot().unwrap();
                        let state = snapshot.stream_state(&s).unwrap();
                        let events = snapshot.stream_range(&s, 0, true, usize::MAX).unwrap();
                        let expected: Vec<(u64, u64)> =
                            (0..state.last_revision.map_or(0, |r| r + 1))
                                .map(|r| (r, r * 10))
                                .collect();
                        assert_eq!(events, expected);
                        let backwards = snapshot.stream_range(&s, u64::MAX, false, 3).unwrap();
                        let mut tail = expected.clone();
                        tail.reverse();
                        tail.truncate(3);
                        assert_eq!(backwards, tail);
                        assert_eq!(
                            snapshot.last_position().unwrap(),
                            state.last_revision.map(|r| r * 10)
                        );
                        assert_eq!(
                            snapshot.checkpoint().unwrap().map(|c| c.applied_log_index),
                            state.last_revision.map(|r| r / 3)
                        );
                    }
                });
            }
            for batch in 0..300u64 {
                let mut w = index.begin().unwrap();
                put_events(&mut w, &s, batch * 3, 3, batch * 30);
                w.set_checkpoint(&checkpoint(batch)).unwrap();
                w.commit().unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        assert_eq!(
            index.stream_range(&s, 0, true, usize::MAX).unwrap().len(),
            900
        );
    }
}
