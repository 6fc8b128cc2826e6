//! Helpers shared by the integration tests: configs, deterministic payloads, the expected
//! on-disk bytes of a record, and where a position lives on disk.

#![allow(dead_code)]

use std::sync::Arc;

use stele_log::{chunk_file_name, Disk, Log, LogConfig, RecoveryReport, CHUNK_HEADER_BYTES};

pub fn config(chunk_size_bytes: u64) -> LogConfig {
    LogConfig { chunk_size_bytes }
}

pub fn open<D: Disk + Clone>(disk: &D, chunk_size_bytes: u64) -> (Log, RecoveryReport) {
    Log::open(Arc::new(disk.clone()), config(chunk_size_bytes)).expect("open")
}

/// A payload of `len` bytes that differs with `seed` and has no zero bytes at its start.
pub fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x as u8) | 1
        })
        .collect()
}

/// The bytes a record holding `payload` occupies on disk.
pub fn encoded(payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len), payload);
    let mut out = len.to_vec();
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The chunk file and file offset of a logical position.
pub fn location(position: u64, chunk_size_bytes: u64) -> (String, u64) {
    (
        chunk_file_name(position / chunk_size_bytes),
        CHUNK_HEADER_BYTES + position % chunk_size_bytes,
    )
}

/// Every record, read with the iterator.
pub fn records(log: &Log) -> Vec<(u64, Vec<u8>)> {
    log.iter(0).map(|r| r.expect("iterating")).collect()
}

/// Positions a log gives these payloads, computed from scratch on a fresh in-memory log.
pub fn fresh_positions(payloads: &[Vec<u8>], chunk_size_bytes: u64) -> Vec<u64> {
    let (log, _) = open(&stele_log::MemDisk::new(), chunk_size_bytes);
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    log.append(&refs).expect("append")
}
