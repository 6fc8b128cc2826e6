//! stele-cluster: `record::decode_record`, the payload of every log record (one part of a raft
//! entry), as the log store and the entry-map scan read it back from the chunk log, and
//! `decode_entry`, which rebuilds an entry from its parts.
//!
//! Input: one or more record payloads, each preceded by a little-endian u16 length.
//!
//! Checks: nothing panics; a record that decodes encodes to bytes that decode to the same
//! record; the header alone decodes to the same header; rebuilding an entry from the decoded
//! parts either succeeds or is an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stele_cluster::fuzzing::{decode_entry, decode_header, decode_record, encode_record};
use stele_fuzz::Input;

fuzz_target!(|data: &[u8]| {
    stele_fuzz::init();
    let mut input = Input::new(data);
    let mut records = Vec::new();
    while !input.is_empty() {
        let length = u16::from_le_bytes([input.byte(), input.byte()]) as usize;
        let payload = input.take(length);
        let header = decode_header(payload);
        match decode_record(payload) {
            Ok((h, body)) => {
                let (only_header, _) = header.expect("a record's header decodes alone");
                assert_eq!(only_header, h);
                let again = decode_record(&encode_record(&h, &body)).expect("re-encoded record");
                assert_eq!(again, (h.clone(), body.clone()));
                records.push((h, body));
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    if let Err(e) = decode_entry(&records) {
        assert!(!e.to_string().is_empty());
    }
});
