//! Property tests: positions are a pure function of the payload sizes (whatever the batching and
//! syncing), every record reads back by position and by iteration across chunk boundaries, and
//! recovery from random damage either keeps a prefix of the log or refuses with `Corrupt`.

mod common;

use std::sync::Arc;

use common::{open, payload, records};
use proptest::prelude::*;
use stele_log::{FaultyDisk, Log, LogError, MemDisk, CHUNK_HEADER_BYTES};

const SIZE: u64 = 512;

/// The placement rule, written independently of the crate.
fn model_positions(sizes: &[usize]) -> Vec<u64> {
    let mut end = 0u64;
    sizes
        .iter()
        .map(|s| {
            let record = 8 + *s as u64;
            if end % SIZE + record > SIZE {
                end = (end / SIZE + 1) * SIZE;
            }
            let position = end;
            end += record;
            position
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn positions_are_deterministic_and_records_round_trip(
        sizes in prop::collection::vec(1usize..=(SIZE as usize - 8), 1..60),
        splits in prop::collection::vec(1usize..6, 1..20),
        sync_every in 1usize..4,
    ) {
        let payloads: Vec<Vec<u8>> =
            sizes.iter().enumerate().map(|(i, s)| payload(i as u64, *s)).collect();

        // Log A: one batch.
        let (a, _) = open(&MemDisk::new(), SIZE);
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let positions_a = a.append(&refs).unwrap();

        // Log B: batches of varying sizes with syncs in between, on a disk we reopen.
        let disk = MemDisk::new();
        let (b, _) = open(&disk, SIZE);
        let mut positions_b = Vec::new();
        let mut rest = &payloads[..];
        for (n, split) in splits.iter().cycle().enumerate() {
            if rest.is_empty() {
                break;
            }
            let take = (*split).min(rest.len());
            let refs: Vec<&[u8]> = rest[..take].iter().map(Vec::as_slice).collect();
            positions_b.extend(b.append(&refs).unwrap());
            rest = &rest[take..];
            if n % sync_every == 0 {
                b.sync().unwrap();
            }
        }
        prop_assert_eq!(&positions_a, &positions_b);
        prop_assert_eq!(&positions_a, &model_positions(&sizes));

        let expected: Vec<(u64, Vec<u8>)> =
            positions_a.iter().copied().zip(payloads.iter().cloned()).collect();
        for (i, (position, payload)) in expected.iter().enumerate() {
            let (got, next) = b.read(*position).unwrap();
            prop_assert_eq!(&got, payload);
            let want_next = expected.get(i + 1).map(|(p, _)| *p).unwrap_or(b.end());
            prop_assert_eq!(next, want_next);
        }
        prop_assert_eq!(records(&b), expected.clone());
        let k = sizes.len() / 2;
        let tail: Vec<_> = b.iter(expected[k].0).map(|r| r.unwrap()).collect();
        prop_assert_eq!(&tail[..], &expected[k..]);

        // Reopen: the same records, the same end.
        b.sync().unwrap();
        let end = b.end();
        drop(b);
        let (b, report) = open(&disk, SIZE);
        prop_assert_eq!(report.end, end);
        prop_assert_eq!(records(&b), expected);
    }

    #[test]
    fn recovery_from_random_damage_keeps_a_prefix_or_refuses(
        sizes in prop::collection::vec(1usize..200, 2..40),
        synced_count in 1usize..40,
        flips in prop::collection::vec((any::<u64>(), 0u8..8), 1..4),
    ) {
        let disk = FaultyDisk::new();
        let (log, _) = open(&disk, SIZE);
        let payloads: Vec<Vec<u8>> =
            sizes.iter().enumerate().map(|(i, s)| payload(i as u64 + 1000, *s)).collect();
        let synced_count = synced_count.min(payloads.len());
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let mut written: Vec<(u64, Vec<u8>)> = Vec::new();
        let positions = log.append(&refs[..synced_count]).unwrap();
        written.extend(positions.into_iter().zip(payloads[..synced_count].iter().cloned()));
        log.sync().unwrap();
        let positions = log.append(&refs[synced_count..]).unwrap();
        written.extend(positions.into_iter().zip(payloads[synced_count..].iter().cloned()));
        let end = log.end();
        drop(log);

        let crashed = disk.crash();
        let mut files = stele_log::Disk::list(&crashed).unwrap();
        files.sort();
        prop_assert!(files.len() as u64 <= end / SIZE + 1);
        for (at, bit) in flips {
            let file = &files[(at % files.len() as u64) as usize];
            let offset = CHUNK_HEADER_BYTES + (at / files.len() as u64) % SIZE;
            crashed.flip_bit(file, offset, bit);
        }
        match Log::open(Arc::new(crashed), common::config(SIZE)) {
            Ok((log, _)) => {
                let got = records(&log);
                prop_assert!(got.len() <= written.len());
                prop_assert_eq!(&got[..], &written[..got.len()]);
            }
            Err(LogError::Corrupt { .. }) => {}
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
    }
}
