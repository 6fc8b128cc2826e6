//! Crash recovery, run by `Log::open`: finds the chunk files, checks their headers, verifies
//! sealed chunks completely and the last chunk up to its header checkpoint, cuts a torn tail
//! after the checkpoint (or refuses when the damage is not a torn tail), and removes a last chunk
//! left empty by a crash. It produces the state the log starts from; it does not append.

use std::sync::Arc;

use crate::chunk::{
    chunk_file_name, create_chunk, parse_chunk_file_name, ChunkHeader, ChunkName,
    CHUNK_HEADER_BYTES, HEADER_FIELDS_BYTES,
};
use crate::chunk_reader::{ChunkReader, Probe};
use crate::disk::{read_full, Disk, DiskFile};
use crate::error::{Corruption, IoOp, LogError};
use crate::layout::Layout;

/// Recovery reads through a window of this size.
const RECOVERY_WINDOW_BYTES: usize = 1 << 20;
/// Zeroing writes at most this many bytes at a time.
pub(crate) const ZERO_WRITE_BYTES_MAX: usize = 1 << 20;

/// What `Log::open` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The logical position after the last record.
    pub end: u64,
    /// Bytes of a torn tail (or other non-zero bytes after the last record) zeroed.
    pub torn_tail_bytes_cut: u64,
    /// Chunk files in the log after recovery.
    pub chunks: u32,
}

/// The state recovery hands to the log.
pub(crate) struct Recovered {
    pub files: Vec<Arc<dyn DiskFile>>,
    /// Data offset where padding starts, for every chunk but the last.
    pub sealed_ends: Vec<u64>,
    /// The header checkpoint of every chunk.
    pub checkpoints: Vec<u64>,
    pub report: RecoveryReport,
}

struct OpenedChunk {
    file: Arc<dyn DiskFile>,
    header: ChunkHeader,
}

pub(crate) fn recover(disk: &dyn Disk, layout: Layout) -> Result<Recovered, LogError> {
    let numbers = chunk_numbers(disk)?;
    let mut chunks = Vec::with_capacity(numbers.len());
    let count = numbers.len();
    for number in numbers {
        let last = chunks.len() + 1 == count;
        match open_chunk(disk, layout, number, last)? {
            Some(chunk) => chunks.push(chunk),
            None => {
                tracing::warn!(
                    file = %chunk_file_name(number),
                    "removing a chunk file whose creation a crash interrupted (zero header and data)"
                );
                remove_chunk(disk, number)?;
            }
        }
    }
    if chunks.is_empty() {
        let file = create_chunk(disk, &layout, 0)?;
        return Ok(Recovered {
            files: vec![file],
            sealed_ends: Vec::new(),
            checkpoints: vec![0],
            report: RecoveryReport {
                end: 0,
                torn_tail_bytes_cut: 0,
                chunks: 1,
            },
        });
    }

    let mut sealed_ends = Vec::with_capacity(chunks.len());
    for (number, chunk) in chunks[..chunks.len() - 1].iter().enumerate() {
        sealed_ends.push(verify_sealed(chunk, number as u64, layout)?);
    }
    let (last_number, last) = (chunks.len() as u64 - 1, chunks.last().expect("non-empty"));
    let tail = recover_last(last, last_number, layout)?;
    let mut last_end = tail.data_end;

    // A crash after a chunk was created but before its first record was durable leaves it
    // empty. Remove it: the next record must go where it would on a node that never created
    // that chunk (at the end of the previous chunk if it fits), or positions would diverge.
    while last_end == 0 && chunks.len() > 1 {
        let number = chunks.len() as u64 - 1;
        tracing::warn!(file = %chunk_file_name(number), "removing an empty last chunk");
        chunks.pop();
        remove_chunk(disk, number)?;
        last_end = sealed_ends.pop().expect("one per sealed chunk");
    }

    let last_number = chunks.len() as u64 - 1;
    let last = chunks.last().expect("non-empty");
    let name = chunk_file_name(last_number);
    let full_len = CHUNK_HEADER_BYTES + layout.chunk_size_bytes;
    let len = last
        .file
        .len()
        .map_err(|e| LogError::io(&name, None, IoOp::Read, e))?;
    if len < full_len {
        last.file
            .allocate(full_len)
            .map_err(|e| LogError::io(&name, None, IoOp::Allocate, e))?;
    }
    // Whatever survived (perhaps only in the page cache after a process crash) is reported as
    // durable from now on, so make it so.
    last.file
        .sync_data()
        .map_err(|e| LogError::io(&name, None, IoOp::Sync, e))?;

    let end = layout.chunk_start(last_number) + last_end;
    let report = RecoveryReport {
        end,
        torn_tail_bytes_cut: tail.cut_bytes,
        chunks: chunks.len() as u32,
    };
    tracing::info!(
        end,
        chunks = report.chunks,
        torn_tail_bytes_cut = report.torn_tail_bytes_cut,
        "log recovered"
    );
    Ok(Recovered {
        checkpoints: chunks.iter().map(|c| c.header.checkpoint).collect(),
        files: chunks.into_iter().map(|c| c.file).collect(),
        sealed_ends,
        report,
    })
}

/// The chunk numbers present, checked to be 0, 1, 2, ... without gaps.
fn chunk_numbers(disk: &dyn Disk) -> Result<Vec<u64>, LogError> {
    let names = disk
        .list()
        .map_err(|e| LogError::io("", None, IoOp::List, e))?;
    let mut numbers = Vec::new();
    for name in names {
        match parse_chunk_file_name(&name) {
            Some(ChunkName::Chunk(n)) => numbers.push(n),
            Some(ChunkName::OtherVersion(_)) => {
                return Err(LogError::corrupt(
                    &name,
                    0,
                    Corruption::UnsupportedChunkVersion,
                ))
            }
            None => {}
        }
    }
    numbers.sort_unstable();
    for (expected, found) in numbers.iter().enumerate() {
        if *found != expected as u64 {
            return Err(LogError::corrupt(
                &chunk_file_name(expected as u64),
                0,
                Corruption::MissingChunk,
            ));
        }
    }
    Ok(numbers)
}

fn remove_chunk(disk: &dyn Disk, number: u64) -> Result<(), LogError> {
    let name = chunk_file_name(number);
    disk.remove(&name)
        .map_err(|e| LogError::io(&name, None, IoOp::Remove, e))?;
    disk.sync_dir()
        .map_err(|e| LogError::io("", None, IoOp::SyncDir, e))
}

/// Opens a chunk and checks its header. `None` for a last chunk whose header and data are all
/// zero: a creation interrupted before its header was durable.
fn open_chunk(
    disk: &dyn Disk,
    layout: Layout,
    number: u64,
    last: bool,
) -> Result<Option<OpenedChunk>, LogError> {
    let name = chunk_file_name(number);
    let file = disk
        .open(&name, false)
        .map_err(|e| LogError::io(&name, None, IoOp::Open, e))?;
    let mut bytes = [0u8; HEADER_FIELDS_BYTES];
    read_full(file.as_ref(), &mut bytes, 0)
        .map_err(|e| LogError::io(&name, Some(0), IoOp::Read, e))?;
    if last && bytes.iter().all(|b| *b == 0) {
        let mut reader = ChunkReader::new(file.clone(), name.clone(), layout, 0);
        if reader.first_nonzero(0, layout.chunk_size_bytes)?.is_none() {
            return Ok(None);
        }
    }
    let header = ChunkHeader::decode(&bytes, number)
        .map_err(|detail| LogError::corrupt(&name, 0, detail))?;
    if header.data_size_bytes != layout.chunk_size_bytes {
        return Err(LogError::ChunkSizeMismatch {
            file: name,
            header_bytes: header.data_size_bytes,
            config_bytes: layout.chunk_size_bytes,
        });
    }
    Ok(Some(OpenedChunk { file, header }))
}

/// Verifies every record of a sealed chunk and that the padding after them is zero; returns
/// the data offset where the padding starts.
fn verify_sealed(chunk: &OpenedChunk, number: u64, layout: Layout) -> Result<u64, LogError> {
    let name = chunk_file_name(number);
    let mut reader = ChunkReader::new(
        chunk.file.clone(),
        name.clone(),
        layout,
        RECOVERY_WINDOW_BYTES,
    );
    let checkpoint = chunk.header.checkpoint;
    let checkpoint_offset = checkpoint - layout.chunk_start(number);
    let mut offset = 0;
    loop {
        match reader.probe(offset)? {
            Probe::Valid(header) => {
                let next = offset + header.record_bytes();
                if offset < checkpoint_offset && checkpoint_offset < next {
                    return Err(LogError::corrupt(
                        &name,
                        layout.file_offset(offset),
                        Corruption::CheckpointInsideRecord { checkpoint },
                    ));
                }
                offset = next;
            }
            Probe::Empty => break,
            Probe::Bad(detail) => {
                return Err(LogError::corrupt(&name, layout.file_offset(offset), detail))
            }
        }
    }
    // The writer only ever writes a checkpoint at a record boundary it made durable. One past
    // the records claims data that is not there; left alone it would surface only once this
    // chunk became the last (after an empty last chunk is removed), and only after the next
    // append, as a checkpoint inside the new record.
    if checkpoint_offset > offset {
        return Err(LogError::corrupt(
            &name,
            layout.file_offset(offset),
            Corruption::MissingRecord { checkpoint },
        ));
    }
    if let Some(at) = reader.first_nonzero(offset, layout.chunk_size_bytes)? {
        return Err(LogError::corrupt(
            &name,
            layout.file_offset(at),
            Corruption::NonZeroPadding,
        ));
    }
    Ok(offset)
}

struct Tail {
    /// Data offset after the last valid record.
    data_end: u64,
    cut_bytes: u64,
}

/// Recovers the last chunk: strict up to the header checkpoint, then a torn tail is cut.
fn recover_last(chunk: &OpenedChunk, number: u64, layout: Layout) -> Result<Tail, LogError> {
    let name = chunk_file_name(number);
    let size = layout.chunk_size_bytes;
    let checkpoint = chunk.header.checkpoint;
    let checkpoint_offset = checkpoint - layout.chunk_start(number);
    let mut reader = ChunkReader::new(
        chunk.file.clone(),
        name.clone(),
        layout,
        RECOVERY_WINDOW_BYTES,
    );
    let corrupt =
        |offset: u64, detail| LogError::corrupt(&name, layout.file_offset(offset), detail);

    // Before the checkpoint every record was durable when the checkpoint was written.
    let mut offset = 0;
    while offset < checkpoint_offset {
        match reader.probe(offset)? {
            Probe::Valid(header) => {
                if offset + header.record_bytes() > checkpoint_offset {
                    return Err(corrupt(
                        offset,
                        Corruption::CheckpointInsideRecord { checkpoint },
                    ));
                }
                offset += header.record_bytes();
            }
            Probe::Empty => return Err(corrupt(offset, Corruption::MissingRecord { checkpoint })),
            Probe::Bad(detail) => return Err(corrupt(offset, detail)),
        }
    }

    // After it, the first record that fails ends the log.
    let mut bad = None;
    loop {
        match reader.probe(offset)? {
            Probe::Valid(header) => offset += header.record_bytes(),
            Probe::Empty => break,
            Probe::Bad(detail) => {
                bad = Some(detail);
                break;
            }
        }
    }
    let data_end = offset;
    let nonzero_end = reader.nonzero_end(data_end, size)?;
    let torn = bad.is_some();
    if let Some(failure) = bad {
        // A torn write leaves nothing valid after the tear; a valid record further on means
        // bytes already written were damaged, and cutting would lose them.
        if let Some(valid) = reader.find_valid_record(data_end + 1, nonzero_end)? {
            return Err(corrupt(
                data_end,
                Corruption::RecordAfterBadRecord {
                    bad_offset: layout.file_offset(data_end),
                    valid_offset: layout.file_offset(valid),
                    failure: Box::new(failure),
                },
            ));
        }
        tracing::warn!(
            file = %name,
            offset = layout.file_offset(data_end),
            failure = %failure,
            "cutting a torn tail"
        );
    }
    let cut_bytes = nonzero_end - data_end;
    if cut_bytes > 0 {
        if !torn {
            tracing::warn!(
                file = %name,
                offset = layout.file_offset(data_end),
                bytes = cut_bytes,
                "zeroing non-zero bytes after the last record"
            );
        }
        zero_range(chunk.file.as_ref(), &name, layout, data_end, nonzero_end)?;
        chunk
            .file
            .sync_data()
            .map_err(|e| LogError::io(&name, None, IoOp::Sync, e))?;
    }
    Ok(Tail {
        data_end,
        cut_bytes,
    })
}

/// Writes zeros over the data range `[from, to)` in bounded pieces.
pub(crate) fn zero_range(
    file: &dyn DiskFile,
    name: &str,
    layout: Layout,
    from: u64,
    to: u64,
) -> Result<(), LogError> {
    let zeros = vec![0u8; ((to.saturating_sub(from)) as usize).min(ZERO_WRITE_BYTES_MAX)];
    let mut at = from;
    while at < to {
        let n = ((to - at) as usize).min(zeros.len());
        let file_offset = layout.file_offset(at);
        file.write_at(&zeros[..n], file_offset)
            .map_err(|e| LogError::io(name, Some(file_offset), IoOp::Write, e))?;
        at += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::chunk::{chunk_file_name, ChunkHeader, CHUNK_HEADER_BYTES};
    use crate::error::{Corruption, LogError};
    use crate::log::{Log, LogConfig};
    use crate::mem_disk::MemDisk;
    use crate::record::encode_into;

    fn chunk_file(number: u64, checkpoint: u64, payloads: &[&[u8]]) -> Vec<u8> {
        let mut file = ChunkHeader {
            number,
            data_size_bytes: 64,
            checkpoint,
        }
        .encode()
        .to_vec();
        file.resize(CHUNK_HEADER_BYTES as usize, 0);
        for payload in payloads {
            encode_into(payload, &mut file);
        }
        file.resize(CHUNK_HEADER_BYTES as usize + 64, 0);
        file
    }

    #[test]
    fn sealed_chunk_checkpoint_past_its_records_is_refused() {
        // Found by the log_recovery fuzz target: a sealed chunk's header checkpoint past its
        // records was not checked; when the empty last chunk after it was removed, the log
        // opened, and after one append and sync it refused to open again
        // (CheckpointInsideRecord). The damage must be reported when it is first seen.
        let payload = [7u8; 20];
        let disk = MemDisk::from_files([
            (chunk_file_name(0), chunk_file(0, 60, &[&payload, &payload])),
            (chunk_file_name(1), chunk_file(1, 64, &[])),
        ]);
        let config = LogConfig {
            chunk_size_bytes: 64,
        };
        match Log::open(Arc::new(disk), config) {
            Err(LogError::Corrupt {
                file,
                offset,
                detail: Corruption::MissingRecord { checkpoint: 60 },
            }) => {
                assert_eq!(file, chunk_file_name(0));
                assert_eq!(offset, CHUNK_HEADER_BYTES + 56);
            }
            other => panic!("expected MissingRecord, got {:?}", other.map(|(_, r)| r)),
        }
    }

    #[test]
    fn sealed_chunk_checkpoint_inside_a_record_is_refused() {
        let payload = [7u8; 20];
        let disk = MemDisk::from_files([
            (chunk_file_name(0), chunk_file(0, 30, &[&payload, &payload])),
            (chunk_file_name(1), chunk_file(1, 64, &[b"x"])),
        ]);
        let config = LogConfig {
            chunk_size_bytes: 64,
        };
        assert!(matches!(
            Log::open(Arc::new(disk), config),
            Err(LogError::Corrupt {
                detail: Corruption::CheckpointInsideRecord { checkpoint: 30 },
                ..
            })
        ));
    }
}
