//! Measures what the state machine does to the index on a busy follower: apply batches of
//! 32 appends of one event each through [`IndexWriter`], with the reads the state machine makes
//! while deciding (stream state, idempotency lookup of the event id) and the four kinds of puts
//! (the event's three entries and the stream state), then the checkpoint and a commit.
//!
//! ```text
//! cargo run -p stele-index --release --example apply
//! ```
//!
//! Phases, all on a file index with the default [`IndexOptions`] (so commits are buffered and
//! flushed as in a node): `apply` (events/s, flushes included; the slowest batch is one whose
//! commit flushed the memtable or waited for a flush; a final `Index::flush` is timed
//! separately), then reads while the recent events are still unflushed and after a flush:
//! point lookups of stream state, and scans of the last 20 revisions of a stream (backwards,
//! as a client reading the end does). `APPLY_EVENTS` changes the event count.
//!
//! [`IndexWriter`]: stele_index::IndexWriter
//! [`IndexOptions`]: stele_index::IndexOptions

#![allow(
    clippy::disallowed_methods,
    clippy::print_stdout,
    reason = "a benchmark times itself on the wall clock and prints its figures"
)]

use std::hint::black_box;
use std::time::Instant;

use stele_core::{StreamName, StreamState};
use stele_index::{Checkpoint, Index};
use uuid::Uuid;

const BATCH: u64 = 32;
const STREAMS: u64 = 1_000;
const LOOKUPS: u64 = 100_000;
const SCANS: u64 = 20_000;

fn events() -> u64 {
    std::env::var("APPLY_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

/// xorshift64*: a fixed seed, so every run sees the same workload.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

fn reads(index: &Index, names: &[StreamName], rng: &mut Rng) -> (f64, f64) {
    let start = Instant::now();
    for _ in 0..LOOKUPS {
        let s = rng.below(STREAMS) as usize;
        black_box(index.stream_state(&names[s]).unwrap());
    }
    let lookups = LOOKUPS as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    for _ in 0..SCANS {
        let s = rng.below(STREAMS) as usize;
        black_box(index.stream_range(&names[s], u64::MAX, false, 20).unwrap());
    }
    let scans = SCANS as f64 / start.elapsed().as_secs_f64();
    (lookups, scans)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events = events();
    let dir = tempfile::tempdir()?;
    let index = Index::open(&dir.path().join("index.redb"))?;
    let names: Vec<StreamName> = (0..STREAMS)
        .map(|i| StreamName::new(format!("customer-{i:016x}")))
        .collect::<Result<_, _>>()?;
    let mut rng = Rng(42);
    let mut position = 0u64;
    let mut id = 0u128;

    let start = Instant::now();
    let mut applied = 0;
    let mut entry = 0;
    let mut slowest = 0f64;
    while applied < events {
        let batch_start = Instant::now();
        let mut w = index.begin()?;
        for _ in 0..BATCH {
            let name = &names[rng.below(STREAMS) as usize];
            id += 1;
            let event_id = Uuid::from_u128(id);
            let mut state: StreamState = w.stream_state(name)?;
            black_box(w.stream_metadata(name)?);
            assert!(w.event_revision(&event_id)?.is_none());
            let revision = state.last_revision.map_or(0, |r| r + 1);
            w.put_event(name, revision, position, &event_id)?;
            state.last_revision = Some(revision);
            w.put_stream_state(name, &state)?;
            position += 300;
            entry += 1;
        }
        w.set_checkpoint(&Checkpoint {
            applied_log_index: entry,
            applied_term: 1,
            applied_leader_node: 1,
            log_position: position,
            membership: vec![0; 64],
        })?;
        w.commit()?;
        slowest = slowest.max(batch_start.elapsed().as_secs_f64());
        applied += BATCH;
    }
    let apply_time = start.elapsed();
    let apply = applied as f64 / apply_time.as_secs_f64();
    let (unflushed_lookups, unflushed_scans) = reads(&index, &names, &mut rng);
    let start = Instant::now();
    index.flush()?;
    let flush_time = start.elapsed();
    let flush_ms = flush_time.as_secs_f64() * 1000.0;
    let apply_and_flush = applied as f64 / (apply_time + flush_time).as_secs_f64();
    let (lookups, scans) = reads(&index, &names, &mut rng);
    assert_eq!(
        index.checkpoint()?.map(|c| c.applied_log_index),
        Some(entry)
    );

    println!("{applied} events over {STREAMS} streams in batches of {BATCH} (one event per entry)");
    println!("apply events/s              {apply:>12.0}");
    println!("with the final flush        {apply_and_flush:>12.0}");
    println!("slowest batch ms            {:>12.1}", slowest * 1000.0);
    println!("final flush ms              {flush_ms:>12.1}");
    println!("lookups/s before flush      {unflushed_lookups:>12.0}");
    println!("scans/s before flush        {unflushed_scans:>12.0}");
    println!("lookups/s after flush       {lookups:>12.0}");
    println!("scans/s after flush         {scans:>12.0}");
    Ok(())
}
