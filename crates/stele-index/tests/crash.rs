//! A process that dies without closing the index leaves, on reopening, a consistent prefix of
//! its commits: the data of exactly the commits its checkpoint names, never a mix, and at
//! least everything up to the last durable commit.
//!
//! The test runs itself as a child process that writes and then exits without running any
//! destructor (so redb gets no clean close), then reopens the file in the parent.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use stele_core::{StreamName, StreamState};
use stele_index::{Checkpoint, Index, IndexOptions};
use uuid::Uuid;

const CHILD_ENV: &str = "STELE_INDEX_CRASH_CHILD_PATH";
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
fn write_and_die(path: &Path) -> ! {
    let index = Index::open_with(
        path,
        IndexOptions {
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

#[test]
fn a_crashed_index_reopens_at_a_consistent_prefix_with_its_checkpoint() {
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        write_and_die(Path::new(&path));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.redb");
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_crashed_index_reopens_at_a_consistent_prefix_with_its_checkpoint",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .status()
        .unwrap();
    assert!(status.success(), "child failed: {status}");

    let index = Index::open(&path).unwrap();
    let checkpoint = index.checkpoint().unwrap().expect("a durable checkpoint");
    let batch = checkpoint.applied_log_index;
    assert!(
        batch >= DURABLE_BATCHES - 1,
        "the durable commits were lost: checkpoint {checkpoint:?}"
    );
    assert!(batch < ALL_BATCHES, "{checkpoint:?}");
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
    eprintln!(
        "reopened at checkpoint {batch} (durable up to {})",
        DURABLE_BATCHES - 1
    );

    // The reopened index takes writes again.
    let mut w = index.begin().unwrap();
    w.put_event(&stream(), revisions, revisions * 100, &Uuid::new_v4())
        .unwrap();
    w.commit().unwrap();
    assert_eq!(index.last_position().unwrap(), Some(revisions * 100));
}
