//! One suite every disk passes: `MemDisk`, `FaultyDisk` and `FsDisk` on a temporary directory.
//! Reopening, truncation, reads concurrent with appends, and bad positions.

#![allow(
    clippy::disallowed_methods,
    reason = "tests may use the clock, random ids and threads"
)]

mod common;

use std::sync::Arc;

use common::{config, payload, records};
use stele_log::{Disk, FaultyDisk, FsDisk, Log, LogError, MemDisk, CHUNK_HEADER_BYTES};

const SIZE: u64 = 2048;

/// Something that hands out the same directory again, as a restart would.
trait Backend {
    fn disk(&self) -> Arc<dyn Disk>;
}

struct Mem(MemDisk);
impl Backend for Mem {
    fn disk(&self) -> Arc<dyn Disk> {
        Arc::new(self.0.clone())
    }
}

struct Faulty(FaultyDisk);
impl Backend for Faulty {
    fn disk(&self) -> Arc<dyn Disk> {
        Arc::new(self.0.clone())
    }
}

struct Fs(tempfile::TempDir);
impl Backend for Fs {
    fn disk(&self) -> Arc<dyn Disk> {
        Arc::new(FsDisk::new(self.0.path().join("log")).unwrap())
    }
}

fn backends() -> Vec<(&'static str, Box<dyn Backend>)> {
    vec![
        ("mem", Box::new(Mem(MemDisk::new()))),
        ("faulty", Box::new(Faulty(FaultyDisk::new()))),
        ("fs", Box::new(Fs(tempfile::tempdir().unwrap()))),
    ]
}

fn open(backend: &dyn Backend) -> Log {
    Log::open(backend.disk(), config(SIZE)).unwrap().0
}

/// A payload that says which record it is, so a reader can check it without shared state.
fn numbered(i: u64) -> Vec<u8> {
    let mut p = i.to_le_bytes().to_vec();
    p.extend(payload(i, 1 + (i as usize * 71) % 500));
    p
}

#[test]
fn reopen_keeps_synced_records() {
    for (name, backend) in backends() {
        let log = open(backend.as_ref());
        let payloads: Vec<Vec<u8>> = (0..20).map(numbered).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let positions = log.append(&refs).unwrap();
        log.sync().unwrap();
        let expected: Vec<_> = positions.into_iter().zip(payloads).collect();
        let end = log.end();
        drop(log);
        let (log, report) = Log::open(backend.disk(), config(SIZE)).unwrap();
        assert_eq!(report.end, end, "{name}");
        assert_eq!(report.torn_tail_bytes_cut, 0, "{name}");
        assert_eq!(report.chunks as u64, end / SIZE + 1, "{name}");
        assert_eq!(records(&log), expected, "{name}");
    }
}

#[test]
fn chunk_files_are_preallocated() {
    for (name, backend) in backends() {
        let log = open(backend.as_ref());
        log.append(&[&vec![1u8; 1500], &vec![2u8; 1500]]).unwrap();
        let disk = backend.disk();
        let mut names = disk.list().unwrap();
        names.sort();
        assert_eq!(
            names,
            ["chunk-000000.000000", "chunk-000001.000000"],
            "{name}"
        );
        for file in names {
            let len = disk.open(&file, false).unwrap().len().unwrap();
            assert_eq!(len, CHUNK_HEADER_BYTES + SIZE, "{name} {file}");
        }
    }
}

#[test]
fn truncate_then_append_then_reopen() {
    for (name, backend) in backends() {
        let log = open(backend.as_ref());
        let payloads: Vec<Vec<u8>> = (0..30).map(numbered).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let positions = log.append(&refs).unwrap();
        log.truncate(positions[12]).unwrap();
        assert_eq!(log.end(), positions[12], "{name}");
        let again: Vec<Vec<u8>> = (100..110).map(numbered).collect();
        let refs: Vec<&[u8]> = again.iter().map(Vec::as_slice).collect();
        let new_positions = log.append(&refs).unwrap();
        log.sync().unwrap();
        let mut expected: Vec<_> = positions[..12]
            .iter()
            .copied()
            .zip(payloads[..12].iter().cloned())
            .collect();
        expected.extend(new_positions.into_iter().zip(again));
        assert_eq!(records(&log), expected, "{name}");
        drop(log);
        let log = open(backend.as_ref());
        assert_eq!(records(&log), expected, "{name}");
    }
}

#[test]
fn reads_run_concurrently_with_appends() {
    for (name, backend) in backends() {
        let log = Arc::new(open(backend.as_ref()));
        let total = 400u64;
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut seen = 0;
                    while seen < total {
                        let mut count = 0;
                        for item in log.iter(0) {
                            let (position, p) = item.expect("concurrent read");
                            let i = u64::from_le_bytes(p[..8].try_into().unwrap());
                            assert_eq!(i, count, "records in order");
                            assert_eq!(p, numbered(i), "payload intact");
                            assert_eq!(log.read(position).unwrap().0, p);
                            count += 1;
                        }
                        assert!(count >= seen, "records never disappear");
                        seen = count;
                    }
                })
            })
            .collect();
        for i in 0..total {
            log.append(&[&numbered(i)]).unwrap();
            if i % 10 == 0 {
                log.sync().unwrap();
            }
        }
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(records(&log).len() as u64, total, "{name}");
    }
}

#[test]
fn reads_at_bad_positions_are_errors() {
    for (name, backend) in backends() {
        let log = open(backend.as_ref());
        let positions = log
            .append(&[&numbered(0), &vec![7u8; 1900], &numbered(1)])
            .unwrap();
        for p in 0..log.end() + 10 {
            match log.read(p) {
                Ok(_) => assert!(
                    positions.contains(&p) || p == positions[0] + 8 + numbered(0).len() as u64,
                    "{name}: read at {p} succeeded"
                ),
                Err(LogError::InvalidPosition(_) | LogError::Corrupt { .. }) => {}
                Err(other) => panic!("{name}: {other:?}"),
            }
        }
        assert!(!log.is_poisoned());
    }
}
