//! [`Log`]: the record log over chunk files — its shared state, opening (through `recovery`),
//! and random reads. The write path (append, sync, truncate) is in `writer`, forward iteration
//! in `iter`. Group commit is not here: see `group_commit`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::chunk::chunk_file_name;
use crate::chunk_reader::ChunkReader;
use crate::disk::{Disk, DiskFile};
use crate::error::{Corruption, LogError};
use crate::iter::LogIter;
use crate::layout::Layout;
use crate::record::RECORD_HEADER_BYTES;
use crate::recovery::{recover, RecoveryReport};
use crate::writer::Writer;

/// The smallest chunk size accepted (room for a header and a few small records).
pub const CHUNK_SIZE_BYTES_MIN: u64 = 64;
/// The largest chunk size accepted: a payload length must fit in the record's u32.
pub const CHUNK_SIZE_BYTES_MAX: u64 = u32::MAX as u64 + RECORD_HEADER_BYTES;

/// How the log is laid out. The chunk size is fixed when the log is created; opening an
/// existing log with another size is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// Data bytes per chunk (after the 4096-byte header). EventStoreDB's is 256 MiB.
    pub chunk_size_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            chunk_size_bytes: 256 * 1024 * 1024,
        }
    }
}

/// The record log. `Send + Sync`: share it in an `Arc`. Appends, syncs and truncations are
/// serialised internally; reads run concurrently with them.
pub struct Log {
    pub(crate) shared: Arc<Shared>,
}

/// What poisoned a log: the error, and whether it was the file system running out of space
/// (which an operator can fix by freeing space and restarting the node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoisonCause {
    pub message: String,
    pub out_of_space: bool,
}

impl PoisonCause {
    pub(crate) fn of(error: &LogError) -> PoisonCause {
        let out_of_space = match error {
            LogError::Io { source, .. } => {
                source.kind() == std::io::ErrorKind::StorageFull
                    || source.raw_os_error() == Some(28) // ENOSPC on Linux and macOS
            }
            _ => false,
        };
        PoisonCause {
            message: error.to_string(),
            out_of_space,
        }
    }
}

/// State shared by the log, its iterators and its writer.
pub(crate) struct Shared {
    pub disk: Arc<dyn Disk>,
    pub layout: Layout,
    pub table: RwLock<ChunkTable>,
    pub writer: Mutex<Writer>,
    /// Logical position after the last appended record. Stored after the bytes are written.
    pub end: AtomicU64,
    pub durable_end: AtomicU64,
    /// The header checkpoint of the last chunk.
    pub checkpoint: AtomicU64,
    pub poisoned: AtomicBool,
    /// What poisoned the log, set once with `poisoned`.
    pub poison_cause: std::sync::OnceLock<PoisonCause>,
    /// Successful data syncs (fsyncs of chunk files) since the log was opened.
    pub syncs: AtomicU64,
}

/// The open chunk files. Only the writer changes it, under the writer lock.
pub(crate) struct ChunkTable {
    pub files: Vec<Arc<dyn DiskFile>>,
    /// For every chunk but the last: the data offset where its zero padding starts.
    pub sealed_ends: Vec<u64>,
}

/// Where a position lies, resolved against the chunk table.
pub(crate) struct Located {
    pub chunk: u64,
    pub offset: u64,
    pub file: Arc<dyn DiskFile>,
    /// The data offset up to which records may be read in this chunk.
    pub limit: u64,
    /// The position of the chunk's padding start, if the chunk is sealed.
    pub sealed_end: Option<u64>,
}

impl Log {
    /// Opens (recovering) or creates the log on `disk`.
    pub fn open(disk: Arc<dyn Disk>, config: LogConfig) -> Result<(Log, RecoveryReport), LogError> {
        let size = config.chunk_size_bytes;
        if !(CHUNK_SIZE_BYTES_MIN..=CHUNK_SIZE_BYTES_MAX).contains(&size) {
            return Err(LogError::InvalidChunkSize(size));
        }
        let layout = Layout {
            chunk_size_bytes: size,
        };
        let recovered = recover(disk.as_ref(), layout)?;
        let end = recovered.report.end;
        let checkpoint = *recovered.checkpoints.last().expect("at least one chunk");
        let shared = Shared {
            disk,
            layout,
            table: RwLock::new(ChunkTable {
                files: recovered.files,
                sealed_ends: recovered.sealed_ends,
            }),
            writer: Mutex::new(Writer::new(end, recovered.checkpoints)),
            end: AtomicU64::new(end),
            durable_end: AtomicU64::new(end),
            checkpoint: AtomicU64::new(checkpoint),
            poisoned: AtomicBool::new(false),
            poison_cause: std::sync::OnceLock::new(),
            syncs: AtomicU64::new(0),
        };
        Ok((
            Log {
                shared: Arc::new(shared),
            },
            recovered.report,
        ))
    }

    /// Writes records after the end. Not durable until [`Log::sync`]. Returns each record's
    /// position. All payloads are checked before anything is written.
    pub fn append(&self, payloads: &[&[u8]]) -> Result<Vec<u64>, LogError> {
        self.shared.append(payloads)
    }

    /// Makes everything appended durable; returns the durable end.
    pub fn sync(&self) -> Result<u64, LogError> {
        self.shared.sync()
    }

    /// Fsyncs [`Log::sync`] has made since the log was opened (a sync with nothing new to make
    /// durable makes none); what `stele bench` reports as fsyncs per append.
    pub fn sync_count(&self) -> u64 {
        self.shared.syncs.load(Ordering::Relaxed)
    }

    /// Removes every record at or after `position`, which must be a record's position or the
    /// end. Durable when it returns. If `position` is the start of a chunk, that chunk goes too
    /// and the end becomes the end of the previous chunk's records, so the next record lands
    /// where it would on a log that never held the removed ones.
    pub fn truncate(&self, position: u64) -> Result<(), LogError> {
        self.shared.truncate(position)
    }

    /// The position after the last appended record.
    pub fn end(&self) -> u64 {
        self.shared.end.load(Ordering::Acquire)
    }

    /// The position up to which records are durable.
    pub fn durable_end(&self) -> u64 {
        self.shared.durable_end.load(Ordering::Acquire)
    }

    /// The checkpoint in the last chunk's header: a position up to which data is known durable
    /// on disk. It trails the durable end by one sync.
    pub fn checkpoint(&self) -> u64 {
        self.shared.checkpoint.load(Ordering::Acquire)
    }

    /// The chunk size this log was opened with.
    pub fn chunk_size_bytes(&self) -> u64 {
        self.shared.layout.chunk_size_bytes
    }

    /// The largest payload a record may have.
    pub fn max_payload_bytes(&self) -> u64 {
        self.shared.layout.max_payload_bytes()
    }

    /// True once a write or sync has failed. Every write then returns `Poisoned`, and so does
    /// a read at or past the durable end: after a failed fsync the page cache may no longer
    /// match the disk for what was written since the last good sync. Records below the
    /// durable end were synced before the failure and are still read (issue 11, item 8: a
    /// full disk stopped every read).
    pub fn is_poisoned(&self) -> bool {
        self.shared.poisoned.load(Ordering::Acquire)
    }

    /// What poisoned the log, once it is.
    pub fn poison_cause(&self) -> Option<&PoisonCause> {
        self.shared.poison_cause.get()
    }

    /// The payload of the record at `position` and the position of the next record. Works for
    /// any appended record, durable or not. When the record is the last one, the next position
    /// is the end; a record appended later may still start at the next chunk, and reading at
    /// that end position then reads it. A position past the end or off a record boundary is
    /// `InvalidPosition` or `Corrupt`.
    pub fn read(&self, position: u64) -> Result<(Vec<u8>, u64), LogError> {
        let end = self.end();
        let located = self.shared.locate(position, end)?;
        let name = chunk_file_name(located.chunk);
        let mut reader = ChunkReader::new(located.file.clone(), name, self.shared.layout, 0);
        self.shared.read_record(&mut reader, &located)
    }

    /// Iterates over records from `from` up to the end as of this call.
    pub fn iter(&self, from: u64) -> LogIter {
        LogIter::new(self.shared.clone(), from, self.end())
    }
}

impl Shared {
    pub fn check_poisoned(&self) -> Result<(), LogError> {
        if self.poisoned.load(Ordering::Acquire) {
            Err(LogError::Poisoned)
        } else {
            Ok(())
        }
    }

    /// Resolves `position` for a read bounded by `end`. A position at the padding start of a
    /// sealed chunk names the same place as the next chunk's start.
    pub fn locate(&self, position: u64, end: u64) -> Result<Located, LogError> {
        let end = if self.poisoned.load(Ordering::Acquire) {
            let durable_end = self.durable_end.load(Ordering::Acquire);
            if position >= durable_end {
                return Err(LogError::Poisoned);
            }
            end.min(durable_end)
        } else {
            end
        };
        if position >= end {
            return Err(LogError::InvalidPosition(position));
        }
        let layout = self.layout;
        let table = self.table.read().expect("chunk table lock");
        let mut chunk = layout.chunk_of(position);
        let mut offset = layout.offset_of(position);
        if let Some(&sealed_end) = table.sealed_ends.get(chunk as usize) {
            if offset == sealed_end {
                chunk += 1;
                offset = 0;
                if layout.chunk_start(chunk) >= end {
                    return Err(LogError::InvalidPosition(position));
                }
            }
        }
        let Some(file) = table.files.get(chunk as usize) else {
            return Err(LogError::InvalidPosition(position));
        };
        let sealed_end = table.sealed_ends.get(chunk as usize).copied();
        let limit = match sealed_end {
            Some(sealed_end) => sealed_end,
            None => end - layout.chunk_start(chunk),
        };
        if offset >= limit {
            return Err(LogError::InvalidPosition(position));
        }
        Ok(Located {
            chunk,
            offset,
            file: file.clone(),
            limit,
            sealed_end,
        })
    }

    /// Reads the record at a located position; returns its payload and the next position.
    pub fn read_record(
        &self,
        reader: &mut ChunkReader,
        at: &Located,
    ) -> Result<(Vec<u8>, u64), LogError> {
        let layout = self.layout;
        // `locate` put the position below the chunk's end, where a record must start (every
        // caller reads positions the log itself returned): a header that does not frame a
        // record there is damage, reported with the file and offset like a bad checksum.
        let damaged = |length: u32| {
            LogError::corrupt(
                &chunk_file_name(at.chunk),
                layout.file_offset(at.offset),
                Corruption::RecordLength {
                    length,
                    room: at.limit.saturating_sub(at.offset + RECORD_HEADER_BYTES),
                },
            )
        };
        let header = reader.header(at.offset)?.ok_or_else(|| damaged(0))?;
        let record_end = at.offset + header.record_bytes();
        if header.length == 0 || record_end > at.limit {
            return Err(damaged(header.length));
        }
        let payload = reader.payload(at.offset, header)?;
        let next = if at.sealed_end == Some(record_end) {
            layout.chunk_start(at.chunk + 1)
        } else {
            layout.chunk_start(at.chunk) + record_end
        };
        Ok((payload, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem_disk::MemDisk;
    use crate::record::RECORD_HEADER_BYTES as H;

    const SIZE: u64 = 1024;

    fn open(disk: &MemDisk) -> (Log, RecoveryReport) {
        Log::open(
            Arc::new(disk.clone()),
            LogConfig {
                chunk_size_bytes: SIZE,
            },
        )
        .unwrap()
    }

    #[test]
    fn new_log_is_empty_with_one_chunk() {
        let disk = MemDisk::new();
        let (log, report) = open(&disk);
        assert_eq!(
            report,
            RecoveryReport {
                end: 0,
                torn_tail_bytes_cut: 0,
                chunks: 1
            }
        );
        assert_eq!(log.end(), 0);
        assert_eq!(
            disk.list().unwrap(),
            vec!["chunk-000000.000000".to_string()]
        );
        assert!(log.iter(0).next().is_none());
    }

    #[test]
    fn append_read_and_next_positions() {
        let disk = MemDisk::new();
        let (log, _) = open(&disk);
        let positions = log.append(&[b"one", b"two!"]).unwrap();
        assert_eq!(positions, vec![0, H + 3]);
        assert_eq!(log.end(), 2 * H + 7);
        assert_eq!(log.durable_end(), 0);
        assert_eq!(log.read(0).unwrap(), (b"one".to_vec(), H + 3));
        assert_eq!(log.read(H + 3).unwrap(), (b"two!".to_vec(), 2 * H + 7));
        assert_eq!(log.sync().unwrap(), 2 * H + 7);
        assert_eq!(log.durable_end(), 2 * H + 7);
    }

    #[test]
    fn bad_positions_are_errors_not_panics() {
        let disk = MemDisk::new();
        let (log, _) = open(&disk);
        log.append(&[b"some payload bytes"]).unwrap();
        assert!(matches!(
            log.read(log.end()),
            Err(LogError::InvalidPosition(_))
        ));
        assert!(matches!(
            log.read(u64::MAX),
            Err(LogError::InvalidPosition(_))
        ));
        for p in 1..log.end() {
            assert!(matches!(
                log.read(p),
                Err(LogError::InvalidPosition(_) | LogError::Corrupt { .. })
            ));
        }
    }

    #[test]
    fn a_damaged_length_under_a_running_log_is_corruption_naming_file_and_offset() {
        let disk = MemDisk::new();
        let (log, _) = open(&disk);
        let positions = log.append(&[b"first", b"second", b"third"]).unwrap();
        log.sync().unwrap();
        let file = chunk_file_name(0);
        let at = log.shared.layout.file_offset(positions[1]);
        // The top bit of the second record's length: it now runs past the chunk's data.
        disk.file(&file)
            .unwrap()
            .with_data(|data| data[at as usize + 3] ^= 0x80);
        for read in [
            log.read(positions[1]).map(|_| ()),
            log.iter(0).try_for_each(|r| r.map(|_| ())),
        ] {
            match read {
                Err(LogError::Corrupt {
                    file: named,
                    offset,
                    detail: Corruption::RecordLength { .. },
                }) => assert_eq!((named.as_str(), offset), (file.as_str(), at)),
                other => panic!("expected the damaged length reported as corruption: {other:?}"),
            }
        }
        assert_eq!(log.read(positions[0]).unwrap().0, b"first");
    }

    #[test]
    fn record_that_does_not_fit_goes_to_the_next_chunk() {
        let disk = MemDisk::new();
        let (log, _) = open(&disk);
        let big = vec![1u8; 600];
        let positions = log.append(&[&big, &big, b"x"]).unwrap();
        // 608 bytes fit in the first chunk; the second record does not fit in the 416 left.
        assert_eq!(positions, vec![0, SIZE, SIZE + 608]);
        assert_eq!(log.read(0).unwrap().1, SIZE, "next skips the padding");
        assert_eq!(disk.list().unwrap().len(), 2);
        let all: Vec<u64> = log.iter(0).map(|r| r.unwrap().0).collect();
        assert_eq!(all, positions);
        // The padding start of the sealed chunk names the next chunk's first record.
        assert_eq!(log.read(608).unwrap().0, big);
    }

    #[test]
    fn payload_limits() {
        let disk = MemDisk::new();
        let (log, _) = open(&disk);
        assert!(matches!(log.append(&[b""]), Err(LogError::EmptyRecord)));
        let too_big = vec![0u8; (SIZE - H + 1) as usize];
        assert!(matches!(
            log.append(&[b"ok", &too_big]),
            Err(LogError::RecordTooLarge { size, max }) if size == SIZE - H + 1 && max == SIZE - H
        ));
        assert_eq!(log.end(), 0, "a rejected batch writes nothing");
        let largest = vec![9u8; (SIZE - H) as usize];
        assert_eq!(log.append(&[b"a", &largest]).unwrap(), vec![0, SIZE]);
        assert_eq!(log.end(), 2 * SIZE);
        assert_eq!(log.append(&[b"b"]).unwrap(), vec![2 * SIZE]);
    }

    #[test]
    fn records_larger_than_the_write_buffer_round_trip() {
        // Exercises both the buffer flush (many records over 1 MiB in total) and records
        // written on their own (larger than the buffer).
        let disk = MemDisk::new();
        let config = LogConfig {
            chunk_size_bytes: 4 << 20,
        };
        let (log, _) = Log::open(Arc::new(disk.clone()), config).unwrap();
        let big: Vec<u8> = (0..(2usize << 20) + 3)
            .map(|i| (i % 251) as u8 + 1)
            .collect();
        let medium: Vec<Vec<u8>> = (0..12u8).map(|i| vec![i + 1; 100_000]).collect();
        let mut payloads: Vec<&[u8]> = medium.iter().map(Vec::as_slice).collect();
        payloads.insert(5, &big);
        payloads.push(b"tail");
        let positions = log.append(&payloads).unwrap();
        log.sync().unwrap();
        drop(log);
        let (log, report) = Log::open(Arc::new(disk), config).unwrap();
        assert_eq!(report.torn_tail_bytes_cut, 0);
        let got: Vec<(u64, Vec<u8>)> = log.iter(0).map(Result::unwrap).collect();
        let want: Vec<(u64, Vec<u8>)> = positions
            .into_iter()
            .zip(payloads.iter().map(|p| p.to_vec()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn invalid_chunk_size_is_refused() {
        for size in [0, 63, CHUNK_SIZE_BYTES_MAX + 1] {
            assert!(matches!(
                Log::open(Arc::new(MemDisk::new()), LogConfig { chunk_size_bytes: size }),
                Err(LogError::InvalidChunkSize(s)) if s == size
            ));
        }
    }

    #[test]
    fn reopen_with_another_chunk_size_is_refused() {
        let disk = MemDisk::new();
        drop(open(&disk));
        assert!(matches!(
            Log::open(
                Arc::new(disk),
                LogConfig {
                    chunk_size_bytes: 2048
                }
            ),
            Err(LogError::ChunkSizeMismatch {
                header_bytes: 1024,
                config_bytes: 2048,
                ..
            })
        ));
    }
}
