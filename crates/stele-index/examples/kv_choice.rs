//! Measures redb against fjall on the index's own workload, so that the store behind
//! `stele-index` is picked by numbers (docs/design.md decision 7), not by taste.
//!
//! Run with `cargo run -p stele-index --release --example kv_choice`.
//!
//! The workload, for each store:
//!
//! - **insert**: 200,000 events over 1,000 streams (each event to a pseudo-random stream, its
//!   revision the stream's next), in batches of 100 events. A batch is one transaction: the
//!   events' `(stream, revision) → position` entries plus one state update per stream the
//!   batch touched. Commits do not fsync (the index is derived from the log); every 1,000
//!   commits or every second there is one durable commit, as `stele-index` does.
//! - **lookup**: point lookups of a stream's state, one read transaction (or snapshot) each.
//! - **scan**: reads of 100 consecutive revisions of a stream from a random start, one read
//!   transaction each.
//!
//! Two layouts are run: `brief` (only the stream table and the state table, keys are stream
//! name bytes) and `full` (what `stele-index` writes per event: also the `$all` table keyed by
//! position and the event-id table for idempotency). redb's `full` is run twice: stream keys
//! by name bytes, and by a 64-bit stream id assigned in a name → id table.
//!
//! A last line runs the same workload through `stele-index` itself (`Index::begin`,
//! `put_event`, `stream_state` + `put_stream_state`, `set_checkpoint`, `commit`; reads through
//! `Index::stream_state` and `Index::stream_range`), to see what the API costs over raw redb.
//!
//! Stream names are `customer-` plus 16 hex digits (25 bytes), a typical EventStoreDB name.
//! `KV_CHOICE_BATCH=1000` changes the events per batch. Other processes on the machine skew
//! the numbers: compare stores within one run, not across runs.

#![allow(
    clippy::disallowed_methods,
    clippy::print_stdout,
    reason = "a benchmark times itself on the wall clock and prints its figures"
)]

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

const EVENTS: u64 = 200_000;
const STREAMS: u64 = 1_000;
const BATCH: u64 = 100;

/// Events per batch: `BATCH`, or `KV_CHOICE_BATCH` from the environment to see how the
/// stores scale with bigger transactions.
fn batch_size() -> u64 {
    std::env::var("KV_CHOICE_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(BATCH)
}
const LOOKUPS: u64 = 200_000;
const SCANS: u64 = 20_000;
const SCAN_LEN: u64 = 100;
const DURABLE_EVERY_COMMITS: u64 = 1_000;
const DURABLE_EVERY: Duration = Duration::from_secs(1);

/// xorshift64*: a fixed seed, so every store sees the same workload.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn stream_name(i: u64) -> Vec<u8> {
    format!("customer-{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).into_bytes()
}

/// A stand-in for the postcard-encoded `StreamState` (about 12 bytes).
fn state_bytes(last_revision: u64) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[..8].copy_from_slice(&last_revision.to_le_bytes());
    b
}

#[derive(Clone, Copy, PartialEq)]
enum Layout {
    /// The brief's workload: stream table keyed by name + revision, and the state table.
    Brief,
    /// Everything `stele-index` writes per event, stream keys by name bytes.
    FullByName,
    /// Everything `stele-index` writes per event, stream keys by a 64-bit stream id.
    FullById,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::Brief => "brief (stream+state)",
            Layout::FullByName => "full, keyed by name",
            Layout::FullById => "full, keyed by id",
        }
    }
}

/// One planned batch: (stream index, revision, position, event id) per event.
struct Batch {
    events: Vec<(u64, u64, u64, [u8; 16])>,
    touched: Vec<(u64, u64)>,
}

fn plan() -> (Vec<Batch>, Vec<u64>) {
    let mut rng = Rng(0x5eed_1e55_0bad_cafe);
    let mut next_revision = vec![0u64; STREAMS as usize];
    let mut position = 0u64;
    let mut batches = Vec::new();
    let batch_size = batch_size();
    for _ in 0..EVENTS / batch_size {
        let mut events = Vec::with_capacity(batch_size as usize);
        let mut touched = std::collections::BTreeMap::new();
        for _ in 0..batch_size {
            let s = rng.below(STREAMS);
            let revision = next_revision[s as usize];
            next_revision[s as usize] += 1;
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&rng.next().to_le_bytes());
            id[8..].copy_from_slice(&rng.next().to_le_bytes());
            events.push((s, revision, position, id));
            touched.insert(s, revision);
            position += 180 + rng.below(200);
        }
        batches.push(Batch {
            events,
            touched: touched.into_iter().collect(),
        });
    }
    (batches, next_revision)
}

struct Results {
    inserts_per_sec: f64,
    lookups_per_sec: f64,
    scans_per_sec: f64,
    size_bytes: u64,
}

fn dir_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::metadata(path) else {
        return 0;
    };
    if meta.is_file() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|rd| rd.flatten().map(|e| dir_size(&e.path())).sum())
        .unwrap_or(0)
}

mod redb_store {
    use super::*;
    use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

    const EVENTS_BY_NAME: TableDefinition<(&[u8], u64), u64> = TableDefinition::new("events_n");
    const EVENTS_BY_ID: TableDefinition<(u64, u64), u64> = TableDefinition::new("events_i");
    const STATES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("states");
    const STREAM_IDS: TableDefinition<&[u8], u64> = TableDefinition::new("stream_ids");
    const ALL: TableDefinition<u64, u64> = TableDefinition::new("all");
    const IDS: TableDefinition<&[u8; 16], (u64, u64)> = TableDefinition::new("ids");

    pub fn run(
        dir: &Path,
        layout: Layout,
        batches: &[Batch],
        lengths: &[u64],
    ) -> Result<Results, Box<dyn std::error::Error>> {
        let path = dir.join("index.redb");
        let db = Database::create(&path)?;
        let names: Vec<Vec<u8>> = (0..STREAMS).map(stream_name).collect();

        let start = Instant::now();
        let mut last_durable = Instant::now();
        for (n, batch) in batches.iter().enumerate() {
            let mut tx = db.begin_write()?;
            let durable = (n as u64 + 1).is_multiple_of(DURABLE_EVERY_COMMITS)
                || last_durable.elapsed() >= DURABLE_EVERY;
            if durable {
                last_durable = Instant::now();
            } else {
                tx.set_durability(Durability::None)?;
            }
            {
                let mut states = tx.open_table(STATES)?;
                match layout {
                    Layout::Brief | Layout::FullByName => {
                        let mut events = tx.open_table(EVENTS_BY_NAME)?;
                        for &(s, rev, pos, _) in &batch.events {
                            events.insert((names[s as usize].as_slice(), rev), pos)?;
                        }
                    }
                    Layout::FullById => {
                        let mut ids = tx.open_table(STREAM_IDS)?;
                        let mut events = tx.open_table(EVENTS_BY_ID)?;
                        for &(s, rev, pos, _) in &batch.events {
                            let name = names[s as usize].as_slice();
                            let existing = ids.get(name)?.map(|v| v.value());
                            let id = match existing {
                                Some(id) => id,
                                None => {
                                    ids.insert(name, s)?;
                                    s
                                }
                            };
                            events.insert((id, rev), pos)?;
                        }
                    }
                }
                if layout != Layout::Brief {
                    let mut all = tx.open_table(ALL)?;
                    let mut ids = tx.open_table(IDS)?;
                    for &(s, rev, pos, id) in &batch.events {
                        all.insert(pos, rev)?;
                        ids.insert(&id, (s, rev))?;
                    }
                }
                for &(s, last) in &batch.touched {
                    // The state machine reads the state before it writes it.
                    black_box(
                        states
                            .get(names[s as usize].as_slice())?
                            .map(|v| v.value()[0]),
                    );
                    states.insert(names[s as usize].as_slice(), state_bytes(last).as_slice())?;
                }
            }
            tx.commit()?;
        }
        let inserts_per_sec = EVENTS as f64 / start.elapsed().as_secs_f64();
        // Make everything durable before reading, as a running node would have by then.
        let tx = db.begin_write()?;
        tx.commit()?;

        let mut rng = Rng(42);
        let start = Instant::now();
        for _ in 0..LOOKUPS {
            let s = rng.below(STREAMS) as usize;
            let rtx = db.begin_read()?;
            let states = rtx.open_table(STATES)?;
            black_box(states.get(names[s].as_slice())?.map(|v| v.value().len()));
        }
        let lookups_per_sec = LOOKUPS as f64 / start.elapsed().as_secs_f64();

        let start = Instant::now();
        let mut read = 0u64;
        for _ in 0..SCANS {
            let s = rng.below(STREAMS) as usize;
            let from = rng.below(lengths[s].saturating_sub(SCAN_LEN) + 1);
            let rtx = db.begin_read()?;
            match layout {
                Layout::Brief | Layout::FullByName => {
                    let events = rtx.open_table(EVENTS_BY_NAME)?;
                    let name = names[s].as_slice();
                    for item in events
                        .range((name, from)..=(name, u64::MAX))?
                        .take(SCAN_LEN as usize)
                    {
                        let (k, v) = item?;
                        read += black_box(k.value().1 ^ v.value()) & 1;
                    }
                }
                Layout::FullById => {
                    let ids = rtx.open_table(STREAM_IDS)?;
                    let Some(id) = ids.get(names[s].as_slice())?.map(|v| v.value()) else {
                        continue;
                    };
                    let events = rtx.open_table(EVENTS_BY_ID)?;
                    for item in events
                        .range((id, from)..=(id, u64::MAX))?
                        .take(SCAN_LEN as usize)
                    {
                        let (k, v) = item?;
                        read += black_box(k.value().1 ^ v.value()) & 1;
                    }
                }
            }
        }
        black_box(read);
        let scans_per_sec = SCANS as f64 / start.elapsed().as_secs_f64();
        drop(db);
        Ok(Results {
            inserts_per_sec,
            lookups_per_sec,
            scans_per_sec,
            size_bytes: dir_size(&path),
        })
    }
}

mod fjall_store {
    use super::*;
    use fjall::{KeyspaceCreateOptions, PersistMode, Readable, SingleWriterTxDatabase};

    /// Length-prefixed name, then the big-endian revision: without the prefix, a range over
    /// stream `a` would also cover stream `ab`.
    fn event_key(name: &[u8], revision: u64) -> Vec<u8> {
        let mut k = Vec::with_capacity(2 + name.len() + 8);
        k.extend_from_slice(&(name.len() as u16).to_be_bytes());
        k.extend_from_slice(name);
        k.extend_from_slice(&revision.to_be_bytes());
        k
    }

    pub fn run(
        dir: &Path,
        layout: Layout,
        batches: &[Batch],
        lengths: &[u64],
    ) -> Result<Results, Box<dyn std::error::Error>> {
        let path = dir.join("index.fjall");
        let db = SingleWriterTxDatabase::builder(&path).open()?;
        let events = db.keyspace("events", KeyspaceCreateOptions::default)?;
        let states = db.keyspace("states", KeyspaceCreateOptions::default)?;
        let all = db.keyspace("all", KeyspaceCreateOptions::default)?;
        let ids = db.keyspace("ids", KeyspaceCreateOptions::default)?;
        let names: Vec<Vec<u8>> = (0..STREAMS).map(stream_name).collect();

        let start = Instant::now();
        let mut last_durable = Instant::now();
        for (n, batch) in batches.iter().enumerate() {
            let mut tx = db.write_tx().durability(None);
            for &(s, rev, pos, _) in &batch.events {
                tx.insert(
                    &events,
                    event_key(&names[s as usize], rev),
                    pos.to_be_bytes(),
                );
            }
            if layout != Layout::Brief {
                for &(s, rev, pos, id) in &batch.events {
                    tx.insert(&all, pos.to_be_bytes(), rev.to_be_bytes());
                    let mut v = [0u8; 16];
                    v[..8].copy_from_slice(&s.to_be_bytes());
                    v[8..].copy_from_slice(&rev.to_be_bytes());
                    tx.insert(&ids, id, v);
                }
            }
            for &(s, last) in &batch.touched {
                black_box(tx.get(&states, &names[s as usize])?.map(|v| v.len()));
                tx.insert(&states, names[s as usize].clone(), state_bytes(last));
            }
            tx.commit()?;
            if (n as u64 + 1).is_multiple_of(DURABLE_EVERY_COMMITS)
                || last_durable.elapsed() >= DURABLE_EVERY
            {
                db.persist(PersistMode::SyncAll)?;
                last_durable = Instant::now();
            }
        }
        let inserts_per_sec = EVENTS as f64 / start.elapsed().as_secs_f64();
        db.persist(PersistMode::SyncAll)?;

        let mut rng = Rng(42);
        let start = Instant::now();
        for _ in 0..LOOKUPS {
            let s = rng.below(STREAMS) as usize;
            let snapshot = db.read_tx();
            black_box(snapshot.get(&states, &names[s])?.map(|v| v.len()));
        }
        let lookups_per_sec = LOOKUPS as f64 / start.elapsed().as_secs_f64();

        let start = Instant::now();
        let mut read = 0u64;
        for _ in 0..SCANS {
            let s = rng.below(STREAMS) as usize;
            let from = rng.below(lengths[s].saturating_sub(SCAN_LEN) + 1);
            let snapshot = db.read_tx();
            let lo = event_key(&names[s], from);
            let hi = event_key(&names[s], u64::MAX);
            for guard in snapshot.range(&events, lo..=hi).take(SCAN_LEN as usize) {
                let (k, v) = guard.into_inner()?;
                read += black_box(k.len() as u64 ^ v[7] as u64) & 1;
            }
        }
        black_box(read);
        let scans_per_sec = SCANS as f64 / start.elapsed().as_secs_f64();
        drop((events, states, all, ids, db));
        Ok(Results {
            inserts_per_sec,
            lookups_per_sec,
            scans_per_sec,
            size_bytes: dir_size(&path),
        })
    }
}

/// The same workload through `stele-index` itself (full layout, keyed by id, with the
/// checkpoint written in each batch), to see what the API adds over raw redb.
mod stele_index_store {
    use super::*;
    use stele_core::{StreamName, StreamState};
    use stele_index::{Checkpoint, Index};

    pub fn run(
        dir: &Path,
        batches: &[Batch],
        lengths: &[u64],
    ) -> Result<Results, Box<dyn std::error::Error>> {
        let path = dir.join("index.redb");
        let index = Index::open(&path)?;
        let names: Vec<StreamName> = (0..STREAMS)
            .map(|i| StreamName::from_bytes(&stream_name(i)))
            .collect::<Result<_, _>>()?;

        let start = Instant::now();
        for (n, batch) in batches.iter().enumerate() {
            let mut w = index.begin()?;
            for &(s, rev, pos, id) in &batch.events {
                w.put_event(&names[s as usize], rev, pos, &uuid::Uuid::from_bytes(id))?;
            }
            for &(s, last) in &batch.touched {
                let name = &names[s as usize];
                let mut state: StreamState = w.stream_state(name)?;
                state.last_revision = Some(last);
                w.put_stream_state(name, &state)?;
            }
            w.set_checkpoint(&Checkpoint {
                applied_log_index: n as u64,
                applied_term: 1,
                applied_leader_node: 1,
                log_position: batch.events.last().map_or(0, |e| e.2 + 200),
                membership: Vec::new(),
            })?;
            w.commit()?;
        }
        let inserts_per_sec = EVENTS as f64 / start.elapsed().as_secs_f64();
        index.flush()?;

        let mut rng = Rng(42);
        let start = Instant::now();
        for _ in 0..LOOKUPS {
            let s = rng.below(STREAMS) as usize;
            black_box(index.stream_state(&names[s])?);
        }
        let lookups_per_sec = LOOKUPS as f64 / start.elapsed().as_secs_f64();

        let start = Instant::now();
        for _ in 0..SCANS {
            let s = rng.below(STREAMS) as usize;
            let from = rng.below(lengths[s].saturating_sub(SCAN_LEN) + 1);
            black_box(index.stream_range(&names[s], from, true, SCAN_LEN as usize)?);
        }
        let scans_per_sec = SCANS as f64 / start.elapsed().as_secs_f64();
        drop(index);
        Ok(Results {
            inserts_per_sec,
            lookups_per_sec,
            scans_per_sec,
            size_bytes: dir_size(&path),
        })
    }
}

fn report(store: &str, layout: Layout, r: &Results) {
    println!(
        "{store:<6} {:<22} {:>12.0} {:>12.0} {:>10.0} {:>9.1}",
        layout.name(),
        r.inserts_per_sec,
        r.lookups_per_sec,
        r.scans_per_sec,
        r.size_bytes as f64 / (1024.0 * 1024.0),
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (batches, lengths) = plan();
    println!(
        "{EVENTS} events over {STREAMS} streams, batches of {}; \
         {LOOKUPS} state lookups; {SCANS} scans of {SCAN_LEN} revisions",
        batch_size()
    );
    println!(
        "{:<6} {:<22} {:>12} {:>12} {:>10} {:>9}",
        "store", "layout", "inserts/s", "lookups/s", "scans/s", "size MiB"
    );
    for layout in [Layout::Brief, Layout::FullByName, Layout::FullById] {
        let dir = tempfile::tempdir()?;
        let r = redb_store::run(dir.path(), layout, &batches, &lengths)?;
        report("redb", layout, &r);
        if layout != Layout::FullById {
            let dir = tempfile::tempdir()?;
            let r = fjall_store::run(dir.path(), layout, &batches, &lengths)?;
            report("fjall", layout, &r);
        }
    }
    let dir = tempfile::tempdir()?;
    let r = stele_index_store::run(dir.path(), &batches, &lengths)?;
    println!(
        "{:<29} {:>12.0} {:>12.0} {:>10.0} {:>9.1}",
        "stele-index (as built)",
        r.inserts_per_sec,
        r.lookups_per_sec,
        r.scans_per_sec,
        r.size_bytes as f64 / (1024.0 * 1024.0),
    );
    Ok(())
}
