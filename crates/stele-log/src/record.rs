//! The record codec: `u32 length | u32 crc32c(length bytes ++ payload) | payload`, little-endian.
//! A zero length means "no record here". This module encodes and checks bytes; it does not know
//! where records live (see `layout`) or how they are read from files.

/// Bytes before the payload: length and checksum.
pub const RECORD_HEADER_BYTES: u64 = 8;

/// The fixed part of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub length: u32,
    pub crc: u32,
}

impl RecordHeader {
    pub fn decode(bytes: &[u8; 8]) -> RecordHeader {
        RecordHeader {
            length: u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")),
            crc: u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")),
        }
    }

    /// Total bytes the record occupies.
    pub fn record_bytes(&self) -> u64 {
        RECORD_HEADER_BYTES + u64::from(self.length)
    }
}

/// The checksum of a record: crc32c over the 4 length bytes followed by the payload.
pub(crate) fn checksum(payload: &[u8]) -> u32 {
    let length =
        u32::try_from(payload.len()).expect("payload length checked against the chunk size");
    crc32c::crc32c_append(crc32c::crc32c(&length.to_le_bytes()), payload)
}

/// Starts an incremental checksum for a record of `length` bytes (payload fed with
/// [`checksum_append`]), so large records can be verified in bounded pieces.
pub(crate) fn checksum_start(length: u32) -> u32 {
    crc32c::crc32c(&length.to_le_bytes())
}

pub(crate) fn checksum_append(crc: u32, piece: &[u8]) -> u32 {
    crc32c::crc32c_append(crc, piece)
}

/// Appends the encoded record to `out`.
pub(crate) fn encode_into(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&encode_header(payload));
    out.extend_from_slice(payload);
}

/// The 8 header bytes of the record holding `payload`.
pub(crate) fn encode_header(payload: &[u8]) -> [u8; 8] {
    let length =
        u32::try_from(payload.len()).expect("payload length checked against the chunk size");
    let mut header = [0u8; 8];
    header[0..4].copy_from_slice(&length.to_le_bytes());
    header[4..8].copy_from_slice(&checksum(payload).to_le_bytes());
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode_round_trips() {
        let mut out = Vec::new();
        encode_into(b"hello", &mut out);
        assert_eq!(out.len(), 13);
        let header = RecordHeader::decode(out[0..8].try_into().unwrap());
        assert_eq!(header.length, 5);
        assert_eq!(header.crc, checksum(b"hello"));
        assert_eq!(header.record_bytes(), 13);
        assert_eq!(&out[8..], b"hello");
    }

    #[test]
    fn checksum_covers_the_length() {
        // Same payload bytes, different claimed length: the crc must differ, so a damaged length
        // field is caught even when the payload is intact.
        let payload = [7u8; 16];
        let whole = checksum(&payload);
        let other_length = checksum_append(checksum_start(15), &payload);
        assert_ne!(whole, other_length);
    }

    #[test]
    fn incremental_checksum_matches_one_shot() {
        let payload: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let mut crc = checksum_start(payload.len() as u32);
        for piece in payload.chunks(33) {
            crc = checksum_append(crc, piece);
        }
        assert_eq!(crc, checksum(&payload));
    }

    #[test]
    fn known_vector() {
        // Pins the on-disk encoding documented in docs/format/log.md.
        let mut out = Vec::new();
        encode_into(b"a", &mut out);
        assert_eq!(&out[0..4], &[1, 0, 0, 0]);
        let expected = crc32c::crc32c(&[1, 0, 0, 0, b'a']);
        assert_eq!(&out[4..8], &expected.to_le_bytes());
    }
}
