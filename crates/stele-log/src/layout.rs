//! Where records go: the pure arithmetic between logical positions, chunk numbers and offsets,
//! and the placement rule (a record that does not fit in the rest of a chunk starts the next
//! one). No I/O here, so every node computes identical positions from identical records.

use crate::chunk::CHUNK_HEADER_BYTES;
use crate::record::RECORD_HEADER_BYTES;

/// The geometry of the log, fixed by the chunk size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub chunk_size_bytes: u64,
}

impl Layout {
    /// The chunk holding `position` (a position equal to a chunk's end belongs to the next one).
    pub fn chunk_of(&self, position: u64) -> u64 {
        position / self.chunk_size_bytes
    }

    /// The offset of `position` within its chunk's data.
    pub fn offset_of(&self, position: u64) -> u64 {
        position % self.chunk_size_bytes
    }

    /// The logical position of a chunk's first data byte.
    pub fn chunk_start(&self, chunk: u64) -> u64 {
        chunk * self.chunk_size_bytes
    }

    /// The offset in the chunk file of a data offset.
    pub fn file_offset(&self, data_offset: u64) -> u64 {
        CHUNK_HEADER_BYTES + data_offset
    }

    /// The largest payload a record may have.
    pub fn max_payload_bytes(&self) -> u64 {
        self.chunk_size_bytes - RECORD_HEADER_BYTES
    }

    /// The position a record of `payload_bytes` gets when the log ends at `end`: at `end` if it
    /// fits in the rest of that chunk, else at the start of the next chunk.
    pub fn place(&self, end: u64, payload_bytes: u64) -> u64 {
        let record_bytes = RECORD_HEADER_BYTES + payload_bytes;
        debug_assert!(record_bytes <= self.chunk_size_bytes);
        let chunk = end / self.chunk_size_bytes;
        let offset = end % self.chunk_size_bytes;
        // `end` exactly at a chunk boundary already names offset 0 of the next chunk.
        if offset + record_bytes <= self.chunk_size_bytes {
            end
        } else {
            self.chunk_start(chunk + 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Layout = Layout {
        chunk_size_bytes: 100,
    };

    #[test]
    fn record_that_fits_goes_at_the_end() {
        assert_eq!(L.place(0, 10), 0);
        assert_eq!(L.place(50, 42), 50); // 50 + 8 + 42 = 100: exactly fills the chunk
    }

    #[test]
    fn record_that_does_not_fit_starts_the_next_chunk() {
        assert_eq!(L.place(50, 43), 100);
        assert_eq!(L.place(199, 1), 200);
    }

    #[test]
    fn end_on_a_boundary_is_the_next_chunk() {
        assert_eq!(L.place(100, 92), 100);
        assert_eq!(L.chunk_of(100), 1);
        assert_eq!(L.offset_of(100), 0);
    }

    #[test]
    fn positions_map_to_chunk_and_offset() {
        assert_eq!(L.chunk_of(250), 2);
        assert_eq!(L.offset_of(250), 50);
        assert_eq!(L.chunk_start(2), 200);
        assert_eq!(L.file_offset(50), CHUNK_HEADER_BYTES + 50);
        assert_eq!(L.max_payload_bytes(), 92);
    }
}
