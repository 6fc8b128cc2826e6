//! The log's error type, [`LogError`], and [`Corruption`], the data that says what was found
//! damaged. It does not decide what is fatal: callers treat `Io`, `Corrupt` and `Poisoned` as
//! fatal and the rest as bad input.

use std::io;

/// Everything a [`crate::Log`] operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The file system failed. A failed write or sync also poisons the log.
    #[error("I/O error during {op} of {file}{}: {source}", offset.map(|o| format!(" at offset {o}")).unwrap_or_default())]
    Io {
        /// The file name in the log directory (empty for directory operations).
        file: String,
        /// The byte offset within the file, where the operation has one.
        offset: Option<u64>,
        /// What was being done.
        op: IoOp,
        #[source]
        source: io::Error,
    },
    /// Stored data failed verification.
    #[error("corrupt log file {file} at offset {offset}: {detail}")]
    Corrupt {
        /// The file name in the log directory.
        file: String,
        /// The byte offset within the file (not the logical position).
        offset: u64,
        /// What failed, with the checksums involved.
        detail: Corruption,
    },
    /// An earlier write or sync failed; the log accepts nothing more (an fsync is never retried).
    #[error("the log is poisoned by an earlier failed write or sync")]
    Poisoned,
    /// A payload is larger than a chunk can hold.
    #[error("record payload of {size} bytes exceeds the maximum of {max} bytes")]
    RecordTooLarge { size: u64, max: u64 },
    /// A payload is empty; a zero length marks "no record here" on disk.
    #[error("record payload is empty")]
    EmptyRecord,
    /// A position at or beyond the end, or not on a record boundary.
    #[error("invalid log position {0}")]
    InvalidPosition(u64),
    /// The configured chunk size is unusable.
    #[error("invalid chunk size {0} bytes: must be between 64 bytes and 4 GiB")]
    InvalidChunkSize(u64),
    /// The existing log was written with another chunk size.
    #[error(
        "{file} has a chunk size of {header_bytes} bytes but the configuration says {config_bytes}"
    )]
    ChunkSizeMismatch {
        file: String,
        header_bytes: u64,
        config_bytes: u64,
    },
    /// The group committer has stopped (or its writer thread died); the operation was not done.
    #[error("the group committer has stopped")]
    Stopped,
}

/// Which file system operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoOp {
    List,
    Open,
    Read,
    Write,
    Sync,
    Allocate,
    Remove,
    SyncDir,
}

impl std::fmt::Display for IoOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            IoOp::List => "list",
            IoOp::Open => "open",
            IoOp::Read => "read",
            IoOp::Write => "write",
            IoOp::Sync => "sync",
            IoOp::Allocate => "allocate",
            IoOp::Remove => "remove",
            IoOp::SyncDir => "directory sync",
        };
        f.write_str(name)
    }
}

/// What verification found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Corruption {
    /// A record's crc32c does not match its length and payload.
    RecordChecksum { stored: u32, computed: u32 },
    /// A record's length runs past the end of the chunk's data.
    RecordLength { length: u32, room: u64 },
    /// A zero length (no record) where the checkpoint says records were made durable.
    MissingRecord { checkpoint: u64 },
    /// A record runs across the header checkpoint, so the checkpoint is not a record boundary.
    CheckpointInsideRecord { checkpoint: u64 },
    /// After a record that failed verification, a valid record was found further on: that is
    /// damage to data already written, not a torn tail.
    RecordAfterBadRecord {
        bad_offset: u64,
        valid_offset: u64,
        /// Why the record at `bad_offset` failed (the checksum pair, or its length).
        failure: Box<Corruption>,
    },
    /// Non-zero bytes in the zero padding at the end of a sealed chunk.
    NonZeroPadding,
    /// The chunk header's crc32c does not match its fields.
    HeaderChecksum { stored: u32, computed: u32 },
    /// The chunk header does not start with `STELECHK`.
    BadMagic,
    /// The chunk header names a format version this build does not read.
    UnsupportedVersion(u32),
    /// The chunk header names another chunk number than the file name.
    WrongChunkNumber { expected: u64, found: u64 },
    /// The header checkpoint lies outside the chunk's range of positions.
    CheckpointOutOfRange { checkpoint: u64 },
    /// A chunk file is missing: chunks must be numbered 0, 1, 2, ... without gaps.
    MissingChunk,
    /// A chunk file name with a version suffix other than 000000.
    UnsupportedChunkVersion,
}

impl std::fmt::Display for Corruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Corruption::RecordChecksum { stored, computed } => write!(
                f,
                "record crc32c mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            Corruption::RecordLength { length, room } => write!(
                f,
                "record length {length} runs past the chunk end ({room} bytes of room)"
            ),
            Corruption::MissingRecord { checkpoint } => write!(
                f,
                "no record here, but the header checkpoint {checkpoint} says data is durable past it"
            ),
            Corruption::CheckpointInsideRecord { checkpoint } => {
                write!(f, "header checkpoint {checkpoint} falls inside this record")
            }
            Corruption::RecordAfterBadRecord {
                bad_offset,
                valid_offset,
                failure,
            } => write!(
                f,
                "record at offset {bad_offset} fails verification ({failure}) but a valid record \
                 follows at offset {valid_offset}: damaged data, not a torn write"
            ),
            Corruption::NonZeroPadding => {
                f.write_str("non-zero bytes in the padding after the last record of a sealed chunk")
            }
            Corruption::HeaderChecksum { stored, computed } => write!(
                f,
                "chunk header crc32c mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            Corruption::BadMagic => f.write_str("chunk header magic is not STELECHK"),
            Corruption::UnsupportedVersion(v) => {
                write!(f, "unsupported chunk format version {v}")
            }
            Corruption::WrongChunkNumber { expected, found } => write!(
                f,
                "chunk header names chunk {found}, the file name says {expected}"
            ),
            Corruption::CheckpointOutOfRange { checkpoint } => write!(
                f,
                "header checkpoint {checkpoint} is outside the chunk's positions"
            ),
            Corruption::MissingChunk => f.write_str("chunk file is missing"),
            Corruption::UnsupportedChunkVersion => {
                f.write_str("chunk file version suffix is not 000000")
            }
        }
    }
}

impl LogError {
    pub(crate) fn io(file: &str, offset: Option<u64>, op: IoOp, source: io::Error) -> LogError {
        LogError::Io {
            file: file.to_string(),
            offset,
            op,
            source,
        }
    }

    pub(crate) fn corrupt(file: &str, offset: u64, detail: Corruption) -> LogError {
        LogError::Corrupt {
            file: file.to_string(),
            offset,
            detail,
        }
    }

    /// A copy of this error for every caller that shares one failure (an `io::Error` cannot be
    /// cloned, so its kind and message are kept).
    pub fn duplicate(&self) -> LogError {
        match self {
            LogError::Io {
                file,
                offset,
                op,
                source,
            } => LogError::Io {
                file: file.clone(),
                offset: *offset,
                op: *op,
                source: io::Error::new(source.kind(), source.to_string()),
            },
            LogError::Corrupt {
                file,
                offset,
                detail,
            } => LogError::Corrupt {
                file: file.clone(),
                offset: *offset,
                detail: detail.clone(),
            },
            LogError::Poisoned => LogError::Poisoned,
            LogError::RecordTooLarge { size, max } => LogError::RecordTooLarge {
                size: *size,
                max: *max,
            },
            LogError::EmptyRecord => LogError::EmptyRecord,
            LogError::InvalidPosition(p) => LogError::InvalidPosition(*p),
            LogError::InvalidChunkSize(s) => LogError::InvalidChunkSize(*s),
            LogError::ChunkSizeMismatch {
                file,
                header_bytes,
                config_bytes,
            } => LogError::ChunkSizeMismatch {
                file: file.clone(),
                header_bytes: *header_bytes,
                config_bytes: *config_bytes,
            },
            LogError::Stopped => LogError::Stopped,
        }
    }
}
