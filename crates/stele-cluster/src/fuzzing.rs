//! Entry points for the fuzz targets in `fuzz/` (not part of the API: hidden from the docs and
//! free to change). It re-exports the record decoders, which are otherwise private to this
//! crate; the transport and gossip decoders are public already.

pub use crate::record::{decode_entry, decode_header, decode_record, RecordBody, RecordHeader};

/// Encodes a decoded record again, as `record::encode_entry` encodes each part, so a fuzz
/// target can check that what decodes re-encodes to something that decodes to the same record.
pub fn encode_record(header: &RecordHeader, body: &RecordBody) -> Vec<u8> {
    let mut bytes = postcard::to_stdvec(header).expect("headers always encode");
    postcard::to_io(body, &mut bytes).expect("bodies always encode");
    bytes
}

/// Hands `command` to the node as if a peer had forwarded it over the internal port, for tests
/// and fuzz targets of what a hostile peer can send.
pub async fn forward(
    node: &crate::Node,
    command: stele_core::Command,
) -> Result<stele_core::CommandResult, crate::transport::ForwardError> {
    node.handle_forward(command).await
}
