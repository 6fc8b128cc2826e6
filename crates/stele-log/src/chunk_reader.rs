//! [`ChunkReader`]: reads one chunk's data through a bounded window and checks records in place
//! (length, room, crc32c computed in bounded pieces). Recovery, `Log::read`, iterators and
//! truncation share it. It decides nothing about what a bad record means; callers do.

use std::sync::Arc;

use crate::disk::{read_full, DiskFile};
use crate::error::{Corruption, IoOp, LogError};
use crate::layout::Layout;
use crate::record::{checksum_append, checksum_start, RecordHeader, RECORD_HEADER_BYTES};

/// Upper bound of a scratch buffer used when a range is not in the window.
const SCRATCH_BYTES_MAX: usize = 1 << 20;

/// What lies at a data offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    /// A zero length, or no room left for a record header: no record here.
    Empty,
    /// A record whose checksum verifies.
    Valid(RecordHeader),
    /// Something that is not a valid record.
    Bad(Corruption),
}

/// Reads the data area of one chunk file. Offsets are data offsets (after the header).
pub(crate) struct ChunkReader {
    file: Arc<dyn DiskFile>,
    name: String,
    layout: Layout,
    window: Vec<u8>,
    window_start: u64,
    window_bytes: usize,
}

impl ChunkReader {
    /// `window_bytes` bounds the memory used for buffered reads; 0 reads straight from the file.
    pub fn new(
        file: Arc<dyn DiskFile>,
        name: String,
        layout: Layout,
        window_bytes: usize,
    ) -> ChunkReader {
        ChunkReader {
            file,
            name,
            layout,
            window: Vec::new(),
            window_start: 0,
            window_bytes,
        }
    }

    fn size(&self) -> u64 {
        self.layout.chunk_size_bytes
    }

    fn io_error(&self, data_offset: u64, e: std::io::Error) -> LogError {
        LogError::io(
            &self.name,
            Some(self.layout.file_offset(data_offset)),
            IoOp::Read,
            e,
        )
    }

    fn read_direct(&self, offset: u64, out: &mut [u8]) -> Result<(), LogError> {
        read_full(self.file.as_ref(), out, self.layout.file_offset(offset))
            .map_err(|e| self.io_error(offset, e))
    }

    fn window_covers(&self, offset: u64, len: usize) -> bool {
        offset >= self.window_start
            && offset + len as u64 <= self.window_start + self.window.len() as u64
    }

    /// Reads `out.len()` bytes at `offset`, which must lie within the chunk's data.
    pub fn read(&mut self, offset: u64, out: &mut [u8]) -> Result<(), LogError> {
        assert!(
            offset + out.len() as u64 <= self.size(),
            "read past the chunk"
        );
        if self.window_covers(offset, out.len()) {
            let start = (offset - self.window_start) as usize;
            out.copy_from_slice(&self.window[start..start + out.len()]);
            return Ok(());
        }
        if out.len() > self.window_bytes / 2 {
            return self.read_direct(offset, out);
        }
        let len = (self.window_bytes as u64).min(self.size() - offset) as usize;
        let mut window = std::mem::take(&mut self.window);
        window.resize(len, 0);
        let result = self.read_direct(offset, &mut window);
        self.window = window;
        self.window_start = offset;
        if result.is_err() {
            self.window.clear();
        }
        result?;
        out.copy_from_slice(&self.window[..out.len()]);
        Ok(())
    }

    /// Feeds `len` bytes at `offset` into a crc, from the window if it holds them, else in
    /// bounded pieces without moving the window (so a byte-by-byte scan keeps its window).
    fn crc_range(&mut self, mut crc: u32, offset: u64, len: u64) -> Result<u32, LogError> {
        if self.window_covers(offset, len as usize) {
            let start = (offset - self.window_start) as usize;
            return Ok(checksum_append(
                crc,
                &self.window[start..start + len as usize],
            ));
        }
        let mut scratch = vec![0u8; (len as usize).min(SCRATCH_BYTES_MAX)];
        let mut done = 0u64;
        while done < len {
            let n = ((len - done) as usize).min(scratch.len());
            self.read_direct(offset + done, &mut scratch[..n])?;
            crc = checksum_append(crc, &scratch[..n]);
            done += n as u64;
        }
        Ok(crc)
    }

    /// The record header at `offset`, or `None` when no header fits before the chunk's end.
    pub fn header(&mut self, offset: u64) -> Result<Option<RecordHeader>, LogError> {
        if offset + RECORD_HEADER_BYTES > self.size() {
            return Ok(None);
        }
        let mut bytes = [0u8; 8];
        self.read(offset, &mut bytes)?;
        Ok(Some(RecordHeader::decode(&bytes)))
    }

    /// Checks the record at `offset` without keeping its payload.
    pub fn probe(&mut self, offset: u64) -> Result<Probe, LogError> {
        let Some(header) = self.header(offset)? else {
            return Ok(Probe::Empty);
        };
        if header.length == 0 {
            return Ok(Probe::Empty);
        }
        let room = self.size() - offset - RECORD_HEADER_BYTES;
        if u64::from(header.length) > room {
            return Ok(Probe::Bad(Corruption::RecordLength {
                length: header.length,
                room,
            }));
        }
        let computed = self.crc_range(
            checksum_start(header.length),
            offset + RECORD_HEADER_BYTES,
            u64::from(header.length),
        )?;
        if computed != header.crc {
            return Ok(Probe::Bad(Corruption::RecordChecksum {
                stored: header.crc,
                computed,
            }));
        }
        Ok(Probe::Valid(header))
    }

    /// Reads and verifies the payload of a record whose header is `header`, at `offset`. The
    /// caller has checked that the record lies within the data it may read.
    pub fn payload(&mut self, offset: u64, header: RecordHeader) -> Result<Vec<u8>, LogError> {
        let mut payload = vec![0u8; header.length as usize];
        self.read(offset + RECORD_HEADER_BYTES, &mut payload)?;
        let computed = checksum_append(checksum_start(header.length), &payload);
        if computed != header.crc {
            return Err(LogError::corrupt(
                &self.name,
                self.layout.file_offset(offset),
                Corruption::RecordChecksum {
                    stored: header.crc,
                    computed,
                },
            ));
        }
        Ok(payload)
    }

    /// Visits `[from, to)` in bounded pieces.
    fn scan(
        &mut self,
        from: u64,
        to: u64,
        mut visit: impl FnMut(u64, &[u8]),
    ) -> Result<(), LogError> {
        let mut scratch = vec![0u8; ((to.saturating_sub(from)) as usize).min(SCRATCH_BYTES_MAX)];
        let mut at = from;
        while at < to {
            let n = ((to - at) as usize).min(scratch.len());
            self.read_direct(at, &mut scratch[..n])?;
            visit(at, &scratch[..n]);
            at += n as u64;
        }
        Ok(())
    }

    /// The offset of the first non-zero byte in `[from, to)`.
    pub fn first_nonzero(&mut self, from: u64, to: u64) -> Result<Option<u64>, LogError> {
        let mut found = None;
        self.scan(from, to, |at, bytes| {
            if found.is_none() && !is_zero(bytes) {
                found = bytes.iter().position(|b| *b != 0).map(|i| at + i as u64);
            }
        })?;
        Ok(found)
    }

    /// The offset just after the last non-zero byte in `[from, to)`, or `from` if all are zero.
    pub fn nonzero_end(&mut self, from: u64, to: u64) -> Result<u64, LogError> {
        let mut end = from;
        self.scan(from, to, |at, bytes| {
            if is_zero(bytes) {
                return;
            }
            if let Some(i) = bytes.iter().rposition(|b| *b != 0) {
                end = at + i as u64 + 1;
            }
        })?;
        Ok(end)
    }

    /// The first offset in `[from, to)` where a valid record starts (a non-zero length that fits
    /// in the chunk and a matching crc), scanning byte by byte.
    pub fn find_valid_record(&mut self, from: u64, to: u64) -> Result<Option<u64>, LogError> {
        for offset in from..to {
            if let Probe::Valid(_) = self.probe(offset)? {
                return Ok(Some(offset));
            }
        }
        Ok(None)
    }
}

/// True if every byte is zero. Folds blocks with OR so the compiler can vectorise it: recovery
/// runs this over the unused rest of the last chunk (up to 256 MiB) on every start.
fn is_zero(bytes: &[u8]) -> bool {
    bytes
        .chunks(4096)
        .all(|block| block.iter().fold(0u8, |acc, b| acc | b) == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::CHUNK_HEADER_BYTES;
    use crate::mem_disk::MemDisk;
    use crate::record::encode_into;
    use crate::Disk;

    fn reader_with(data: &[u8], size: u64, window: usize) -> ChunkReader {
        let disk = MemDisk::new();
        let file = disk.open("c", true).unwrap();
        file.allocate(CHUNK_HEADER_BYTES + size).unwrap();
        file.write_at(data, CHUNK_HEADER_BYTES).unwrap();
        ChunkReader::new(
            file,
            "c".into(),
            Layout {
                chunk_size_bytes: size,
            },
            window,
        )
    }

    #[test]
    fn probe_classifies_records() {
        let mut data = Vec::new();
        encode_into(b"first", &mut data);
        encode_into(b"second", &mut data);
        for window in [0, 16, 4096] {
            let mut r = reader_with(&data, 256, window);
            assert!(matches!(r.probe(0).unwrap(), Probe::Valid(h) if h.length == 5));
            assert!(matches!(r.probe(13).unwrap(), Probe::Valid(h) if h.length == 6));
            assert_eq!(r.probe(27).unwrap(), Probe::Empty);
            assert_eq!(r.probe(252).unwrap(), Probe::Empty); // no room for a header
            assert!(matches!(r.probe(1).unwrap(), Probe::Bad(_) | Probe::Empty));
        }
    }

    #[test]
    fn probe_reports_checksum_and_length_failures() {
        let mut data = Vec::new();
        encode_into(b"payload", &mut data);
        data[9] ^= 0x20;
        let mut r = reader_with(&data, 256, 64);
        assert!(matches!(
            r.probe(0).unwrap(),
            Probe::Bad(Corruption::RecordChecksum { .. })
        ));
        let mut long = 1000u32.to_le_bytes().to_vec();
        long.extend_from_slice(&[1, 2, 3, 4]);
        let mut r = reader_with(&long, 256, 64);
        assert_eq!(
            r.probe(0).unwrap(),
            Probe::Bad(Corruption::RecordLength {
                length: 1000,
                room: 248
            })
        );
    }

    #[test]
    fn finds_a_valid_record_after_garbage() {
        let mut data = vec![0xAB; 37];
        encode_into(b"survivor", &mut data);
        let mut r = reader_with(&data, 256, 64);
        assert_eq!(r.find_valid_record(0, 200).unwrap(), Some(37));
        assert_eq!(r.find_valid_record(38, 200).unwrap(), None);
    }

    #[test]
    fn nonzero_scans() {
        let mut data = vec![0u8; 100];
        data[10] = 1;
        data[70] = 2;
        let mut r = reader_with(&data, 256, 16);
        assert_eq!(r.first_nonzero(0, 256).unwrap(), Some(10));
        assert_eq!(r.first_nonzero(11, 256).unwrap(), Some(70));
        assert_eq!(r.first_nonzero(71, 256).unwrap(), None);
        assert_eq!(r.nonzero_end(0, 256).unwrap(), 71);
        assert_eq!(r.nonzero_end(71, 256).unwrap(), 71);
    }
}
