//! GroupCommitter tests: batching (fewer syncs than appends under concurrency), callbacks only
//! after durability, ordering of a truncate inside a batch, poisoning, checkpoint catch-up.

#![allow(
    clippy::disallowed_methods,
    reason = "tests may use the clock, random ids and threads"
)]

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use common::{encoded, location, open, payload, records};
use stele_log::{FaultyDisk, GroupCommitter, IoOp, LogError};

const SIZE: u64 = 64 * 1024;

#[test]
fn concurrent_appends_share_syncs_and_every_callback_sees_durable_data() {
    let disk = FaultyDisk::new();
    disk.set_sync_latency(Duration::from_micros(300));
    let (log, _) = open(&disk, SIZE);
    let log = Arc::new(log);
    let committer = Arc::new(GroupCommitter::start(log.clone(), 64));
    let syncs_before = disk.sync_count();
    let threads = 8;
    let per_thread = 100;

    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let committer = committer.clone();
            let disk = disk.clone();
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0..per_thread {
                    let p = payload(t * 1000 + i, 50 + (i as usize * 13) % 400);
                    let (tx, rx) = mpsc::channel();
                    let expected = encoded(&p);
                    let disk = disk.clone();
                    committer.append(
                        vec![p.clone()],
                        Box::new(move |result| {
                            // Runs on the writer thread: the record must already be in the
                            // durable image, byte for byte.
                            let position = result.expect("append")[0];
                            let (file, offset) = location(position, SIZE);
                            let durable = disk.durable_bytes(&file, offset, expected.len());
                            tx.send((position, durable == Some(expected))).unwrap();
                        }),
                    );
                    let (position, durable) = rx.recv().expect("callback ran");
                    assert!(durable, "callback ran before its record was durable");
                    mine.push((position, p));
                }
                mine
            })
        })
        .collect();
    let mut all: Vec<(u64, Vec<u8>)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort();
    let appends = threads * per_thread;
    let syncs = disk.sync_count() - syncs_before;
    assert!(
        syncs < appends,
        "{syncs} syncs for {appends} appends: no group commit"
    );
    assert!(log.end() > SIZE, "the test crosses a chunk boundary");
    assert_eq!(records(&log), all);
    Arc::try_unwrap(committer).ok().unwrap().stop();
    assert_eq!(
        log.checkpoint(),
        log.durable_end(),
        "stop lets the checkpoint catch up"
    );
}

#[test]
fn a_truncate_inside_a_batch_is_performed_in_order() {
    let disk = FaultyDisk::new();
    let (log, _) = open(&disk, SIZE);
    let log = Arc::new(log);
    let committer = GroupCommitter::start(log.clone(), 16);
    let order = Arc::new(Mutex::new(Vec::new()));

    // Hold the writer thread inside the first callback while three more operations queue up,
    // so they are drained into one batch: append X, truncate to X, append Y.
    let gate = Arc::new(Barrier::new(2));
    let (first_tx, first_rx) = mpsc::channel();
    {
        let gate = gate.clone();
        let order = order.clone();
        committer.append(
            vec![b"first".to_vec()],
            Box::new(move |r| {
                first_tx.send(()).unwrap();
                gate.wait();
                order.lock().unwrap().push(("first", r.unwrap()[0]));
            }),
        );
    }
    first_rx.recv().unwrap();
    let x_position = 8 + 5;
    let (done_tx, done_rx) = mpsc::channel();
    {
        let order = order.clone();
        let disk = disk.clone();
        let tx = done_tx.clone();
        committer.append(
            vec![b"x-record".to_vec()],
            Box::new(move |r| {
                let p = r.unwrap()[0];
                let (file, offset) = location(p, SIZE);
                let enc = encoded(b"x-record");
                assert_eq!(disk.durable_bytes(&file, offset, enc.len()), Some(enc));
                order.lock().unwrap().push(("x", p));
                tx.send(()).unwrap();
            }),
        );
    }
    {
        let order = order.clone();
        let tx = done_tx.clone();
        committer.truncate(
            x_position,
            Box::new(move |r| {
                r.unwrap();
                order.lock().unwrap().push(("truncate", x_position));
                tx.send(()).unwrap();
            }),
        );
    }
    {
        let order = order.clone();
        committer.append(
            vec![b"y".to_vec()],
            Box::new(move |r| {
                order.lock().unwrap().push(("y", r.unwrap()[0]));
                done_tx.send(()).unwrap();
            }),
        );
    }
    gate.wait();
    for _ in 0..3 {
        done_rx.recv().unwrap();
    }
    committer.stop();
    assert_eq!(
        *order.lock().unwrap(),
        vec![
            ("first", 0),
            ("x", x_position),
            ("truncate", x_position),
            ("y", x_position)
        ]
    );
    assert_eq!(
        records(&log),
        vec![(0, b"first".to_vec()), (x_position, b"y".to_vec())]
    );
    let crashed = disk.crash();
    let (log, _) = open(&crashed, SIZE);
    assert_eq!(records(&log).len(), 2);
}

#[test]
fn a_failed_sync_fails_the_batch_poisons_and_is_never_retried() {
    let disk = FaultyDisk::new();
    let (log, _) = open(&disk, SIZE);
    let log = Arc::new(log);
    let committer = GroupCommitter::start(log.clone(), 16);
    let append = |payload: &[u8]| {
        let (tx, rx) = mpsc::channel();
        committer.append(
            vec![payload.to_vec()],
            Box::new(move |r| tx.send(r).unwrap()),
        );
        rx.recv().unwrap()
    };
    append(b"ok").unwrap();
    disk.fail_next_sync();
    let err = append(b"doomed").unwrap_err();
    assert!(
        matches!(err, LogError::Io { op: IoOp::Sync, .. }),
        "{err:?}"
    );
    assert!(log.is_poisoned());
    let syncs = disk.sync_count();
    assert!(matches!(append(b"later"), Err(LogError::Poisoned)));
    let (tx, rx) = mpsc::channel();
    committer.truncate(0, Box::new(move |r| tx.send(r).unwrap()));
    assert!(matches!(rx.recv().unwrap(), Err(LogError::Poisoned)));
    committer.stop();
    assert_eq!(
        disk.sync_count(),
        syncs,
        "sync_data was called after the failure"
    );
    // What was acknowledged survives; the failed append is not acknowledged.
    let (log, _) = open(&disk.crash(), SIZE);
    assert_eq!(records(&log), vec![(0, b"ok".to_vec())]);
}

#[test]
fn every_callback_of_a_failed_batch_gets_the_error() {
    let disk = FaultyDisk::new();
    let (log, _) = open(&disk, SIZE);
    let log = Arc::new(log);
    let committer = GroupCommitter::start(log.clone(), 16);
    let gate = Arc::new(Barrier::new(2));
    let (held_tx, held_rx) = mpsc::channel();
    {
        let gate = gate.clone();
        committer.append(
            vec![b"hold".to_vec()],
            Box::new(move |r| {
                r.unwrap();
                held_tx.send(()).unwrap();
                gate.wait();
            }),
        );
    }
    held_rx.recv().unwrap();
    let (tx, rx) = mpsc::channel();
    for i in 0..5u8 {
        let tx = tx.clone();
        committer.append(
            vec![vec![i + 1; 10]],
            Box::new(move |r| tx.send(r).unwrap()),
        );
    }
    disk.fail_next_sync();
    gate.wait();
    for _ in 0..5 {
        assert!(matches!(
            rx.recv().unwrap(),
            Err(LogError::Io { op: IoOp::Sync, .. })
        ));
    }
    committer.stop();
}

#[test]
fn the_checkpoint_catches_up_when_the_queue_goes_idle() {
    let disk = FaultyDisk::new();
    let (log, _) = open(&disk, SIZE);
    let log = Arc::new(log);
    let committer = GroupCommitter::start(log.clone(), 16);
    for i in 0..3 {
        let (tx, rx) = mpsc::channel();
        committer.append(
            vec![payload(i, 100)],
            Box::new(move |r| tx.send(r).unwrap()),
        );
        rx.recv().unwrap().unwrap();
    }
    // Idle for longer than CHECKPOINT_IDLE: the writer thread catches up on its own.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while log.checkpoint() < log.durable_end() {
        assert!(
            std::time::Instant::now() < deadline,
            "checkpoint never caught up"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    committer.stop();
    assert_eq!(log.checkpoint(), log.durable_end());
    // With the checkpoint at the end, damage anywhere in the log is refused, not cut.
    drop(log);
    disk.flip_bit("chunk-000000.000000", 4096 + 2 * 108 + 20, 0);
    let err = stele_log::Log::open(Arc::new(disk.crash()), common::config(SIZE)).err();
    assert!(matches!(err, Some(LogError::Corrupt { .. })), "{err:?}");
}

/// Records the caller wrote itself with `Log::append` are durable when a `sync` request's
/// callback runs, and concurrent sync requests share fsyncs.
#[test]
fn sync_requests_make_directly_appended_records_durable() {
    let disk = FaultyDisk::new();
    disk.set_sync_latency(Duration::from_micros(300));
    let (log, _) = open(&disk, SIZE);
    let log = Arc::new(log);
    let committer = Arc::new(GroupCommitter::start(log.clone(), 64));
    let syncs_before = disk.sync_count();
    let requests = 200;
    let (tx, rx) = mpsc::channel();
    for i in 0..requests {
        let p = payload(i, 100);
        let position = log.append(&[p.as_slice()]).expect("append")[0];
        let expected = encoded(&p);
        let disk = disk.clone();
        let tx = tx.clone();
        committer.sync(Box::new(move |result| {
            result.expect("sync");
            let (file, offset) = location(position, SIZE);
            let durable = disk.durable_bytes(&file, offset, expected.len());
            tx.send(durable == Some(expected)).unwrap();
        }));
    }
    for _ in 0..requests {
        assert!(
            rx.recv().expect("callback ran"),
            "callback ran before durability"
        );
    }
    let syncs = disk.sync_count() - syncs_before;
    assert!(
        syncs < requests,
        "{syncs} syncs for {requests} sync requests: requests were not grouped"
    );
}

/// `sync_count` counts the fsyncs that made data durable, and a sync with nothing new makes
/// none.
#[test]
fn sync_count_counts_real_syncs() {
    let disk = FaultyDisk::new();
    let (log, _) = open(&disk, SIZE);
    assert_eq!(log.sync_count(), 0);
    log.append(&[payload(1, 10).as_slice()]).unwrap();
    log.sync().unwrap();
    assert_eq!(log.sync_count(), 1);
    log.sync().unwrap(); // Only the lagging checkpoint is caught up: one more fsync.
    let after_catch_up = log.sync_count();
    log.sync().unwrap(); // Nothing at all to do.
    assert_eq!(log.sync_count(), after_catch_up);
}
