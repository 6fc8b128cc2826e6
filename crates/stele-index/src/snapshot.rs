//! A consistent read view of the index: one redb read transaction. Reads through one snapshot
//! see one committed state, whatever commits meanwhile.

use redb::ReadTransaction;
use stele_core::{StreamMetadata, StreamName, StreamState};

use crate::schema::{self, ALL, EVENTS, EVENT_IDS, META, STREAMS, STREAM_NAMES};
use crate::{Checkpoint, IndexError};

/// A read view of the index at one commit. Cheap to take; hold it only as long as a read
/// needs it, because pages it sees cannot be reused until it is dropped.
pub struct IndexSnapshot {
    tx: ReadTransaction,
}

impl IndexSnapshot {
    pub(crate) fn new(tx: ReadTransaction) -> IndexSnapshot {
        IndexSnapshot { tx }
    }

    /// What the index had applied at this snapshot.
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, IndexError> {
        let meta = self
            .tx
            .open_table(META)
            .map_err(IndexError::store("opening meta"))?;
        schema::checkpoint(&meta)
    }

    /// The stream's state; the default (never written) for an unknown stream.
    pub fn stream_state(&self, stream: &StreamName) -> Result<StreamState, IndexError> {
        let streams = self
            .tx
            .open_table(STREAMS)
            .map_err(IndexError::store("opening streams"))?;
        Ok(schema::stream_record(&streams, stream)?
            .map(|r| r.state)
            .unwrap_or_default())
    }

    /// The stream's metadata; the default (no limits) for an unknown stream.
    pub fn stream_metadata(&self, stream: &StreamName) -> Result<StreamMetadata, IndexError> {
        let streams = self
            .tx
            .open_table(STREAMS)
            .map_err(IndexError::store("opening streams"))?;
        Ok(schema::stream_record(&streams, stream)?
            .map(|r| r.metadata)
            .unwrap_or_default())
    }

    /// `(revision, position)` of the stream's events from revision `from` inclusive:
    /// ascending when `forwards`, else descending; at most `count`.
    pub fn stream_range(
        &self,
        stream: &StreamName,
        from: u64,
        forwards: bool,
        count: usize,
    ) -> Result<Vec<(u64, u64)>, IndexError> {
        let streams = self
            .tx
            .open_table(STREAMS)
            .map_err(IndexError::store("opening streams"))?;
        let Some(record) = schema::stream_record(&streams, stream)? else {
            return Ok(Vec::new());
        };
        let events = self
            .tx
            .open_table(EVENTS)
            .map_err(IndexError::store("opening events"))?;
        schema::stream_range(&events, record.id, from, forwards, count)
    }

    /// `(position, revision)` of events in `$all` order from position `from` inclusive:
    /// positions `>= from` ascending when `forwards`, else positions `<= from` descending; at
    /// most `count`.
    pub fn all_range(
        &self,
        from: u64,
        forwards: bool,
        count: usize,
    ) -> Result<Vec<(u64, u64)>, IndexError> {
        let all = self
            .tx
            .open_table(ALL)
            .map_err(IndexError::store("opening all"))?;
        schema::all_range(&all, from, forwards, count)
    }

    /// The highest event position in `$all`, `None` when there are no events.
    pub fn last_position(&self) -> Result<Option<u64>, IndexError> {
        let all = self
            .tx
            .open_table(ALL)
            .map_err(IndexError::store("opening all"))?;
        schema::last_position(&all)
    }

    /// The stream and revision an event id was written at.
    pub fn event_revision(&self, id: &uuid::Uuid) -> Result<Option<(StreamName, u64)>, IndexError> {
        let ids = self
            .tx
            .open_table(EVENT_IDS)
            .map_err(IndexError::store("opening event_ids"))?;
        let names = self
            .tx
            .open_table(STREAM_NAMES)
            .map_err(IndexError::store("opening stream_names"))?;
        schema::event_revision(&ids, &names, id)
    }
}
