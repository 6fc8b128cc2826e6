//! The tables of the index, how their keys and values are encoded, and the typed reads on
//! them that both read snapshots and write transactions use.
//!
//! | table          | key                                  | value                                   |
//! |----------------|--------------------------------------|-----------------------------------------|
//! | `meta`         | `"format_version"`                   | u64, 8 bytes big-endian                 |
//! |                | `"next_stream_id"`                   | u64, 8 bytes big-endian                 |
//! |                | `"checkpoint"`                       | postcard [`Checkpoint`]                 |
//! | `streams`      | stream name, UTF-8 bytes             | postcard `StreamRecord` (id, state, metadata) |
//! | `stream_names` | stream id (u64)                      | stream name, UTF-8 bytes                |
//! | `events`       | (stream id, revision) (u64, u64)     | log position (u64)                      |
//! | `all`          | log position (u64)                   | revision (u64)                          |
//! | `event_ids`    | event id (u128)                      | (stream id, revision) (u64, u64)        |
//!
//! Streams are keyed by name once, in `streams`; the per-event tables use a 64-bit stream id
//! assigned on first sight, so an event key is 16 bytes whatever the name's length (measured
//! in `examples/kv_choice.rs`: no slower than keying by name with 25-byte names, and smaller
//! for longer names). Integer keys use redb's fixed-width types, which sort numerically.
//! Stream ids are local to one node's index and never leave it.
//!
//! postcard is deterministic, but positional: a changed struct changes the layout, so a change
//! to any value here bumps [`FORMAT_VERSION`] and an old index is rebuilt from the log.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use stele_core::{StreamMetadata, StreamName, StreamState};

use crate::{Checkpoint, IndexError};

/// Bumped whenever a table or an encoding changes.
pub(crate) const FORMAT_VERSION: u64 = 1;

pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(crate) const STREAMS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("streams");
pub(crate) const STREAM_NAMES: TableDefinition<u64, &[u8]> = TableDefinition::new("stream_names");
pub(crate) const EVENTS: TableDefinition<(u64, u64), u64> = TableDefinition::new("events");
pub(crate) const ALL: TableDefinition<u64, u64> = TableDefinition::new("all");
pub(crate) const EVENT_IDS: TableDefinition<u128, (u64, u64)> = TableDefinition::new("event_ids");

pub(crate) const META_FORMAT_VERSION: &str = "format_version";
pub(crate) const META_NEXT_STREAM_ID: &str = "next_stream_id";
pub(crate) const META_CHECKPOINT: &str = "checkpoint";

/// Everything the index keeps per stream, in one value so that one lookup answers an append.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StreamRecord {
    pub id: u64,
    pub state: StreamState,
    pub metadata: StreamMetadata,
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising our own plain structs into a Vec cannot fail.
    postcard::to_stdvec(value).expect("postcard encodes index values")
}

fn decode<'a, T: Deserialize<'a>>(
    table: &'static str,
    key: impl FnOnce() -> String,
    bytes: &'a [u8],
) -> Result<T, IndexError> {
    postcard::from_bytes(bytes).map_err(|source| IndexError::CorruptValue {
        table,
        key: key(),
        source,
    })
}

pub(crate) fn encode_u64(value: u64) -> [u8; 8] {
    value.to_be_bytes()
}

pub(crate) fn decode_u64(table: &'static str, key: &str, bytes: &[u8]) -> Result<u64, IndexError> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| IndexError::CorruptValue {
        table,
        key: key.to_owned(),
        source: postcard::Error::DeserializeUnexpectedEnd,
    })?;
    Ok(u64::from_be_bytes(array))
}

/// A `u64` under `key` in `meta`.
pub(crate) fn meta_u64(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<u64>, IndexError> {
    let guard = meta.get(key).map_err(IndexError::store("reading meta"))?;
    guard
        .map(|v| decode_u64("meta", key, v.value()))
        .transpose()
}

pub(crate) fn checkpoint(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Option<Checkpoint>, IndexError> {
    let guard = meta
        .get(META_CHECKPOINT)
        .map_err(IndexError::store("reading the checkpoint"))?;
    guard
        .map(|v| decode("meta", || META_CHECKPOINT.to_owned(), v.value()))
        .transpose()
}

pub(crate) fn stream_record(
    streams: &impl ReadableTable<&'static [u8], &'static [u8]>,
    stream: &StreamName,
) -> Result<Option<StreamRecord>, IndexError> {
    let guard = streams
        .get(stream.as_str().as_bytes())
        .map_err(IndexError::store("reading a stream"))?;
    guard
        .map(|v| decode("streams", || stream.to_string(), v.value()))
        .transpose()
}

pub(crate) fn stream_name(
    names: &impl ReadableTable<u64, &'static [u8]>,
    stream_id: u64,
) -> Result<StreamName, IndexError> {
    let guard = names
        .get(stream_id)
        .map_err(IndexError::store("reading a stream name"))?
        .ok_or(IndexError::UnknownStreamId { stream_id })?;
    StreamName::from_bytes(guard.value())
        .map_err(|source| IndexError::InvalidStreamName { stream_id, source })
}
