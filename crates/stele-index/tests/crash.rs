//! A process that dies without closing the index leaves, on reopening, a consistent prefix of
//! its commits: the data of exactly the commits its checkpoint names, never a mix, and exactly
//! everything up to the last flush of the memtable (a durable commit, or a commit that filled
//! the memtable); the commits after it were only in memory and are gone.
//!
//! The test runs itself as a child process that writes and then exits without running any
//! destructor (so redb gets no clean close), then reopens the file in the parent.

#![allow(
    clippy::disallowed_methods,
    clippy::print_stderr,
    reason = "tests may use the clock, random ids and threads, and say what they found"
)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use stele_core::{StreamName, StreamState};
use stele_index::{Checkpoint, Index, IndexOptions};
use uuid::Uuid;

const CHILD_ENV: &str = "STELE_INDEX_CRASH_CHILD_PATH";
const LIMIT_ENV: &str = "STELE_INDEX_CRASH_CHILD_MEMTABLE_LIMIT";
/// Entries a batch puts in the memtable: its events and one stream record.
const ENTRIES_PER_BATCH: usize = EVENTS_PER_BATCH as usize + 1;
const DURABLE_BATCHES: u64 = 3;
const ALL_BATCHES: u64 = 8;
const EVENTS_PER_BATCH: u64 = 10;

fn stream() -> StreamName {
    StreamName::new("orders").unwrap()
}

fn checkpoint(batch: u64) -> Checkpoint {
    Checkpoint {
        applied_log_index: batch,
        applied_term: 1,
        applied_leader_node: 1,
        log_position: (batch + 1) * EVENTS_PER_BATCH * 100,
        membership: Vec::new(),
    }
}

/// Batch `b` holds revisions `b*10 .. b*10+10` at positions `revision * 100`.
fn write_and_die(path: &Path, memtable_limit: usize) -> ! {
    let index = Index::open_with(
        path,
        IndexOptions {
            memtable_limit,
            durable_every_commits: u64::MAX,
            durable_every: Duration::from_secs(3600),
            ..IndexOptions::default()
        },
    )
    .unwrap();
    for batch in 0..ALL_BATCHES {
        let mut w = index.begin().unwrap();
        for i in 0..EVENTS_PER_BATCH {
            let revision = batch * EVENTS_PER_BATCH + i;
            w.put_event(&stream(), revision, revision * 100, &Uuid::new_v4())
                .unwrap();
        }
        let state = StreamState {
            last_revision: Some((batch + 1) * EVENTS_PER_BATCH - 1),
            ..StreamState::default()
        };
        w.put_stream_state(&stream(), &state).unwrap();
        w.set_checkpoint(&checkpoint(batch)).unwrap();
        if batch < DURABLE_BATCHES {
            w.commit_durable().unwrap();
        } else {
            w.commit().unwrap();
        }
    }
    // Leave a transaction open too: it must vanish.
    let mut w = index.begin().unwrap();
    w.put_event(&stream(), 10_000, 10_000_000, &Uuid::new_v4())
        .unwrap();
    // Exit without dropping `index` or `w`: no clean close, no rollback, no final commit.
    std::process::exit(0);
}

/// Runs this test binary's `test` as a child that writes with `memtable_limit` and dies, then
/// reopens what it left and checks it ends exactly at one of the batches in `flushed` (the
/// last flush that completed: a flush of a full memtable runs in the background, and the child
/// may die before it ends).
fn crash_and_reopen(test: &str, memtable_limit: usize, flushed: &[u64]) {
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        let limit = std::env::var(LIMIT_ENV).unwrap().parse().unwrap();
        write_and_die(Path::new(&path), limit);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.redb");
    let status = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .env(LIMIT_ENV, memtable_limit.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "child failed: {status}");

    let index = Index::open(&path).unwrap();
    let checkpoint = index.checkpoint().unwrap().expect("a durable checkpoint");
    let batch = checkpoint.applied_log_index;
    assert!(
        flushed.contains(&batch),
        "not a flush point {flushed:?}: {checkpoint:?}"
    );
    assert_eq!(checkpoint, self::checkpoint(batch));
    let revisions = (batch + 1) * EVENTS_PER_BATCH;
    let expected: Vec<(u64, u64)> = (0..revisions).map(|r| (r, r * 100)).collect();
    assert_eq!(
        index.stream_range(&stream(), 0, true, usize::MAX).unwrap(),
        expected
    );
    assert_eq!(
        index.stream_state(&stream()).unwrap().last_revision,
        Some(revisions - 1)
    );
    assert_eq!(index.last_position().unwrap(), Some((revisions - 1) * 100));
    eprintln!("reopened at checkpoint {batch}");

    // The reopened index takes writes again.
    let mut w = index.begin().unwrap();
    w.put_event(&stream(), revisions, revisions * 100, &Uuid::new_v4())
        .unwrap();
    w.commit().unwrap();
    assert_eq!(index.last_position().unwrap(), Some(revisions * 100));
}

#[test]
fn a_crashed_index_reopens_at_its_last_durable_commit() {
    // The memtable never fills: the last flush is the last durable commit.
    crash_and_reopen(
        "a_crashed_index_reopens_at_its_last_durable_commit",
        usize::MAX,
        &[DURABLE_BATCHES - 1],
    );
}

#[test]
fn a_crashed_index_reopens_at_the_last_flush_of_a_full_memtable() {
    // The memtable fills at every third batch after the durable ones: batch 5 started a
    // flush (which the child may or may not live to see end), batches 6 and 7 were only in
    // memory.
    crash_and_reopen(
        "a_crashed_index_reopens_at_the_last_flush_of_a_full_memtable",
        3 * ENTRIES_PER_BATCH,
        &[DURABLE_BATCHES - 1, DURABLE_BATCHES + 2],
    );
}
