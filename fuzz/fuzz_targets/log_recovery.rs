//! stele-log: chunk headers, the record codec and crash recovery, through `Log::open` on an
//! in-memory directory built from the input, then reading every record.
//!
//! Input: a flags byte, then per chunk file 40 header bytes and up to `CHUNK` data bytes
//! (the rest of the 4096-byte header area is zero). Flag bit 0 repairs each header's magic,
//! version, number, size and checksum, and bit 1 each record's checksum, so the fuzzer also gets
//! past the checksums to the length, checkpoint and torn-tail logic behind them. Bit 2 gives the
//! last file an unsupported version suffix, bit 3 skips chunk number 1.
//!
//! Checks: nothing panics; a corruption error names a chunk file and an offset; every record
//! read back is a record with a valid checksum at that place in the image (never other bytes);
//! and a log that opened takes one more record that a reopen reads back after the others.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use stele_fuzz::Input;
use stele_log::{Log, LogConfig, LogError, MemDisk, CHUNK_HEADER_BYTES, CHUNK_MAGIC};

const CHUNK: u64 = 256;
const HEADER_FIELDS: usize = 40;
const CHUNKS_MAX: usize = 4;

fuzz_target!(|data: &[u8]| {
    stele_fuzz::init();
    let mut input = Input::new(data);
    let flags = input.byte();
    let mut files: Vec<(u64, Vec<u8>)> = Vec::new();
    while !input.is_empty() && files.len() < CHUNKS_MAX {
        let number = files.len() as u64 + u64::from(flags & 8 != 0 && !files.is_empty());
        let header = input.take(HEADER_FIELDS);
        let body = input.take(CHUNK as usize);
        let mut file = header.to_vec();
        if !body.is_empty() {
            file.resize(CHUNK_HEADER_BYTES as usize, 0);
            file.extend_from_slice(body);
        }
        if flags & 1 != 0 && file.len() >= HEADER_FIELDS {
            repair_header(&mut file[..HEADER_FIELDS], number);
        }
        if flags & 2 != 0 {
            repair_records(&mut file);
        }
        files.push((number, file));
    }
    let named: Vec<(String, Vec<u8>)> = files
        .iter()
        .enumerate()
        .map(|(i, (number, bytes))| {
            let mut name = stele_log::chunk_file_name(*number);
            if flags & 4 != 0 && i + 1 == files.len() {
                name = name.replace(".000000", ".000001");
            }
            (name, bytes.clone())
        })
        .collect();
    // Bytes past a file's end read as zeros (an unallocated tail), so compare against the
    // files zero-extended to a full chunk.
    let image: Vec<Vec<u8>> = named
        .iter()
        .map(|(_, b)| {
            let mut b = b.clone();
            b.resize(b.len().max((CHUNK_HEADER_BYTES + CHUNK) as usize), 0);
            b
        })
        .collect();
    let disk = MemDisk::from_files(named);
    let config = LogConfig {
        chunk_size_bytes: CHUNK,
    };
    let log = match Log::open(Arc::new(disk.clone()), config) {
        Ok((log, _report)) => log,
        Err(e) => return check_error(&e),
    };
    let end = log.end();
    let mut records = Vec::new();
    for item in log.iter(0) {
        match item {
            Ok((position, payload)) => {
                check_in_image(&image, position, &payload);
                assert!(position < end);
                records.push((position, payload));
            }
            Err(e) => {
                // Recovery verified everything before the end; reading it again must succeed.
                panic!("reading a recovered log failed: {e}");
            }
        }
    }
    for (position, payload) in &records {
        let (read, _next) = log
            .read(*position)
            .expect("random read of an iterated record");
        assert_eq!(&read, payload);
    }

    // The recovered state must be one the writer can continue from.
    let appended = log.append(&[b"fuzz"]).expect("append after recovery");
    log.sync().expect("sync after recovery");
    drop(log);
    let (log, _) = Log::open(Arc::new(disk), config).expect("reopen after an append");
    let again: Vec<(u64, Vec<u8>)> = log
        .iter(0)
        .collect::<Result<_, _>>()
        .expect("read after reopen");
    let (last, before) = again.split_last().expect("the appended record");
    assert_eq!(before, &records[..]);
    assert_eq!(last, &(appended[0], b"fuzz".to_vec()));
});

fn check_error(e: &LogError) {
    if let LogError::Corrupt { file, .. } = e {
        assert!(
            file.starts_with("chunk-"),
            "corruption names no chunk file: {e}"
        );
        assert!(e.to_string().contains(" at offset "), "{e}");
    }
}

/// The record the log returned must be in the image, with a valid checksum.
fn check_in_image(image: &[Vec<u8>], position: u64, payload: &[u8]) {
    let chunk = (position / CHUNK) as usize;
    let at = (CHUNK_HEADER_BYTES + position % CHUNK) as usize;
    let file = &image[chunk];
    let length = u32::from_le_bytes(file[at..at + 4].try_into().unwrap());
    let crc = u32::from_le_bytes(file[at + 4..at + 8].try_into().unwrap());
    assert_eq!(length as usize, payload.len());
    assert_eq!(&file[at + 8..at + 8 + payload.len()], payload);
    assert_eq!(
        crc,
        crc32c::crc32c_append(crc32c::crc32c(&length.to_le_bytes()), payload)
    );
}

fn repair_header(header: &mut [u8], number: u64) {
    header[0..8].copy_from_slice(&CHUNK_MAGIC);
    header[8..12].copy_from_slice(&1u32.to_le_bytes());
    header[12..20].copy_from_slice(&number.to_le_bytes());
    header[20..28].copy_from_slice(&CHUNK.to_le_bytes());
    let checkpoint = u64::from_le_bytes(header[28..36].try_into().unwrap());
    let checkpoint = number * CHUNK + checkpoint % (CHUNK + 1);
    header[28..36].copy_from_slice(&checkpoint.to_le_bytes());
    let crc = crc32c::crc32c(&header[0..36]);
    header[36..40].copy_from_slice(&crc.to_le_bytes());
}

/// Rewrites the checksum of every record whose length fits, walking from the data start.
fn repair_records(file: &mut [u8]) {
    let mut at = CHUNK_HEADER_BYTES as usize;
    while at + 8 <= file.len() {
        let length = u32::from_le_bytes(file[at..at + 4].try_into().unwrap()) as usize;
        if length == 0 || at + 8 + length > file.len() {
            return;
        }
        let crc = crc32c::crc32c_append(
            crc32c::crc32c(&file[at..at + 4]),
            &file[at + 8..at + 8 + length],
        );
        file[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        at += 8 + length;
    }
}
