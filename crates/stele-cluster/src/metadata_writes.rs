//! The leader's half of recording soft deletes in stream metadata, as EventStoreDB does: a
//! soft delete of `X` writes a `$metadata` event to `$$X` with `$tb` = `Int64.MaxValue`, and
//! the first append that recreates `X` writes one with `$tb` = its first revision; every other
//! key of the metadata is kept. The leader merges the event from the metadata it has applied
//! and proposes it with the write as one [`Command::WithMetadata`] naming the metadata
//! stream's revision it merged into; the state machine (`apply.rs`) writes both or, if that
//! revision moved meanwhile, neither (`MetadataMoved`), and the leader merges again.

use bytes::Bytes;
use stele_core::metadata::{
    with_truncate_before, METADATA_EVENT_TYPE, SOFT_DELETED_TRUNCATE_BEFORE,
};
use stele_core::{Command, ContentType, DeleteKind, EventRecord, ExpectedRevision, StreamName};
use stele_index::Index;
use stele_log::Log;

use crate::node::ReadError;

/// How often the leader merges a write's metadata event again after the metadata stream
/// moved under it (a metadata write racing a soft delete) before giving up with an error the
/// client may retry.
pub(crate) const METADATA_MERGE_ATTEMPTS: usize = 8;

/// `command` as the leader proposes it: with the metadata event it must record, if any.
pub(crate) fn with_metadata(
    index: &Index,
    log: &Log,
    command: Command,
) -> Result<Command, ReadError> {
    let (stream, truncate_before, created_ticks) = match &command {
        Command::Append { stream, events, .. } => {
            let Some(first) = events.first() else {
                return Ok(command);
            };
            let state = index.stream_state(stream).map_err(ReadError::index)?;
            match (state.awaits_recreation(), state.deleted_before) {
                (true, Some(first_new)) => (stream, first_new, first.created_ticks),
                _ => return Ok(command),
            }
        }
        Command::Delete {
            stream,
            kind: DeleteKind::Soft,
            created_ticks,
            ..
        } => (stream, SOFT_DELETED_TRUNCATE_BEFORE, *created_ticks),
        Command::Delete { .. } | Command::WithMetadata { .. } => return Ok(command),
    };
    if stream.is_metadata() {
        return Ok(command);
    }
    let meta_stream = stream.metadata_stream();
    let meta_state = index.stream_state(&meta_stream).map_err(ReadError::index)?;
    if meta_state.tombstoned {
        return Ok(command);
    }
    let (current, metadata_expected) = match meta_state.last_revision {
        Some(last) if meta_state.exists() => (
            Some(last_metadata(index, log, &meta_stream, last)?),
            ExpectedRevision::Exact(last),
        ),
        _ => (None, ExpectedRevision::NoStream),
    };
    let data = with_truncate_before(current.as_deref(), truncate_before);
    Ok(Command::WithMetadata {
        write: Box::new(command),
        metadata: EventRecord {
            stream: meta_stream,
            id: crate::determinism::new_uuid(),
            event_type: METADATA_EVENT_TYPE.to_owned(),
            content_type: ContentType::Json,
            created_ticks,
            custom_metadata: Bytes::new(),
            data: Bytes::from(data),
        },
        metadata_expected,
    })
}

/// The data of the metadata stream's event at `revision`.
fn last_metadata(
    index: &Index,
    log: &Log,
    meta_stream: &StreamName,
    revision: u64,
) -> Result<Bytes, ReadError> {
    let range = index
        .stream_range(meta_stream, revision, true, 1)
        .map_err(ReadError::index)?;
    let Some(&(_, position)) = range.first() else {
        return Err(ReadError::Index(format!(
            "the index has no revision {revision} of {meta_stream}"
        )));
    };
    let (payload, _) = log
        .read(position)
        .map_err(|e| ReadError::log(e, Some(position)))?;
    Ok(crate::node::event_at(&payload, position, revision)?
        .record
        .data)
}
