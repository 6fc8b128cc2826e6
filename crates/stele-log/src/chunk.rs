//! Chunk files: their names (`chunk-NNNNNN.000000`), the fixed 4096-byte header (magic, format
//! version, chunk number, data size, checkpoint, crc32c) and creating a new preallocated chunk.
//! It does not read or write records.

use std::sync::Arc;

use crate::disk::{Disk, DiskFile};
use crate::error::{Corruption, IoOp, LogError};
use crate::layout::Layout;

/// Bytes reserved for the header at the start of every chunk file; data starts after it.
pub const CHUNK_HEADER_BYTES: u64 = 4096;
/// `STELECHK`.
pub const CHUNK_MAGIC: [u8; 8] = *b"STELECHK";
/// The only chunk format version this build reads and writes.
pub const CHUNK_FORMAT_VERSION: u32 = 1;
/// Bytes of the header covered by fields and checksum; the rest is zero.
pub(crate) const HEADER_FIELDS_BYTES: usize = 40;

/// The name of chunk `number`'s file.
pub fn chunk_file_name(number: u64) -> String {
    format!("chunk-{number:06}.000000")
}

/// What a file name says, if it looks like a chunk file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkName {
    /// `chunk-NNNNNN.000000`.
    Chunk(u64),
    /// `chunk-NNNNNN.VVVVVV` with a version other than 000000 (EventStoreDB writes those after
    /// a scavenge; we never do).
    OtherVersion(u64),
}

pub(crate) fn parse_chunk_file_name(name: &str) -> Option<ChunkName> {
    let rest = name.strip_prefix("chunk-")?;
    let (number, version) = rest.split_once('.')?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if number.len() < 6 || !all_digits(number) || version.len() != 6 || !all_digits(version) {
        return None;
    }
    let number: u64 = number.parse().ok()?;
    if version == "000000" {
        Some(ChunkName::Chunk(number))
    } else {
        Some(ChunkName::OtherVersion(number))
    }
}

/// The decoded header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkHeader {
    pub number: u64,
    pub data_size_bytes: u64,
    /// A logical position up to which this chunk's data is known durable.
    pub checkpoint: u64,
}

impl ChunkHeader {
    pub fn encode(&self) -> [u8; HEADER_FIELDS_BYTES] {
        let mut b = [0u8; HEADER_FIELDS_BYTES];
        b[0..8].copy_from_slice(&CHUNK_MAGIC);
        b[8..12].copy_from_slice(&CHUNK_FORMAT_VERSION.to_le_bytes());
        b[12..20].copy_from_slice(&self.number.to_le_bytes());
        b[20..28].copy_from_slice(&self.data_size_bytes.to_le_bytes());
        b[28..36].copy_from_slice(&self.checkpoint.to_le_bytes());
        let crc = crc32c::crc32c(&b[0..36]);
        b[36..40].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a header. The data size is returned, not checked: a mismatch with the
    /// configuration is not damage. The checkpoint is checked against the header's own size.
    pub fn decode(
        b: &[u8; HEADER_FIELDS_BYTES],
        expected_number: u64,
    ) -> Result<ChunkHeader, Corruption> {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        if b[0..8] != CHUNK_MAGIC {
            return Err(Corruption::BadMagic);
        }
        let stored = u32::from_le_bytes(b[36..40].try_into().expect("4 bytes"));
        let computed = crc32c::crc32c(&b[0..36]);
        if stored != computed {
            return Err(Corruption::HeaderChecksum { stored, computed });
        }
        let version = u32::from_le_bytes(b[8..12].try_into().expect("4 bytes"));
        if version != CHUNK_FORMAT_VERSION {
            return Err(Corruption::UnsupportedVersion(version));
        }
        let header = ChunkHeader {
            number: u64_at(12),
            data_size_bytes: u64_at(20),
            checkpoint: u64_at(28),
        };
        if header.number != expected_number {
            return Err(Corruption::WrongChunkNumber {
                expected: expected_number,
                found: header.number,
            });
        }
        let start = header.number.checked_mul(header.data_size_bytes);
        let in_range = start.is_some_and(|start| {
            header.checkpoint >= start && header.checkpoint - start <= header.data_size_bytes
        });
        if !in_range {
            return Err(Corruption::CheckpointOutOfRange {
                checkpoint: header.checkpoint,
            });
        }
        Ok(header)
    }
}

/// Writes a chunk header's fields (the rest of the header area stays zero).
pub(crate) fn write_header(
    file: &dyn DiskFile,
    name: &str,
    header: &ChunkHeader,
) -> Result<(), LogError> {
    file.write_at(&header.encode(), 0)
        .map_err(|e| LogError::io(name, Some(0), IoOp::Write, e))
}

/// Creates chunk `number`: header with the checkpoint at the chunk's start, data preallocated,
/// all synced, then the directory synced so the new name survives a crash.
pub(crate) fn create_chunk(
    disk: &dyn Disk,
    layout: &Layout,
    number: u64,
) -> Result<Arc<dyn DiskFile>, LogError> {
    let name = chunk_file_name(number);
    let file = disk
        .open(&name, true)
        .map_err(|e| LogError::io(&name, None, IoOp::Open, e))?;
    let header = ChunkHeader {
        number,
        data_size_bytes: layout.chunk_size_bytes,
        checkpoint: layout.chunk_start(number),
    };
    write_header(file.as_ref(), &name, &header)?;
    file.allocate(CHUNK_HEADER_BYTES + layout.chunk_size_bytes)
        .map_err(|e| LogError::io(&name, None, IoOp::Allocate, e))?;
    file.sync_data()
        .map_err(|e| LogError::io(&name, None, IoOp::Sync, e))?;
    disk.sync_dir()
        .map_err(|e| LogError::io("", None, IoOp::SyncDir, e))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(chunk_file_name(0), "chunk-000000.000000");
        assert_eq!(chunk_file_name(42), "chunk-000042.000000");
        assert_eq!(
            parse_chunk_file_name("chunk-000042.000000"),
            Some(ChunkName::Chunk(42))
        );
        assert_eq!(
            parse_chunk_file_name("chunk-000042.000003"),
            Some(ChunkName::OtherVersion(42))
        );
        assert_eq!(
            parse_chunk_file_name("chunk-1234567.000000"),
            Some(ChunkName::Chunk(1234567))
        );
        assert_eq!(parse_chunk_file_name("chunk-42.000000"), None);
        assert_eq!(parse_chunk_file_name("chunk-00004a.000000"), None);
        assert_eq!(parse_chunk_file_name("index.redb"), None);
    }

    #[test]
    fn header_round_trips() {
        let h = ChunkHeader {
            number: 3,
            data_size_bytes: 1000,
            checkpoint: 3500,
        };
        assert_eq!(ChunkHeader::decode(&h.encode(), 3), Ok(h));
    }

    #[test]
    fn header_layout_is_pinned() {
        // Pins the byte table in docs/format/log.md.
        let b = ChunkHeader {
            number: 1,
            data_size_bytes: 2,
            checkpoint: 3,
        }
        .encode();
        assert_eq!(&b[0..8], b"STELECHK");
        assert_eq!(&b[8..12], &1u32.to_le_bytes());
        assert_eq!(&b[12..20], &1u64.to_le_bytes());
        assert_eq!(&b[20..28], &2u64.to_le_bytes());
        assert_eq!(&b[28..36], &3u64.to_le_bytes());
        assert_eq!(&b[36..40], &crc32c::crc32c(&b[0..36]).to_le_bytes());
    }

    #[test]
    fn damaged_header_is_rejected() {
        let h = ChunkHeader {
            number: 3,
            data_size_bytes: 1000,
            checkpoint: 3500,
        };
        let mut b = h.encode();
        b[30] ^= 1;
        assert!(matches!(
            ChunkHeader::decode(&b, 3),
            Err(Corruption::HeaderChecksum { .. })
        ));
        let mut b = h.encode();
        b[0] = b'X';
        assert_eq!(ChunkHeader::decode(&b, 3), Err(Corruption::BadMagic));
        assert!(matches!(
            ChunkHeader::decode(&h.encode(), 4),
            Err(Corruption::WrongChunkNumber {
                expected: 4,
                found: 3
            })
        ));
        let out_of_range = ChunkHeader {
            checkpoint: 4001,
            ..h
        };
        assert!(matches!(
            ChunkHeader::decode(&out_of_range.encode(), 3),
            Err(Corruption::CheckpointOutOfRange { checkpoint: 4001 })
        ));
    }
}
