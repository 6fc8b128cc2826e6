//! The write transaction of the index: what the state machine applies, in one redb write
//! transaction whose reads see its own writes, committed together with the checkpoint.

use std::collections::HashMap;

use redb::{Durability, WriteTransaction};
use stele_core::{StreamMetadata, StreamName, StreamState};

use crate::schema::{
    self, StreamRecord, ALL, EVENTS, EVENT_IDS, META, META_CHECKPOINT, META_NEXT_STREAM_ID,
    STREAMS, STREAM_NAMES,
};
use crate::{Checkpoint, Index, IndexError};

/// One write transaction. Dropping it without committing rolls it back.
///
/// Writes are applied in order and a later write of the same key wins; the index checks no
/// invariant of the log (revisions following each other, positions growing): that is the
/// state machine's job, and it decides before it writes.
pub struct IndexWriter<'a> {
    index: &'a Index,
    tx: WriteTransaction,
    /// Stream ids seen in this transaction, so that putting many events to one stream looks
    /// its id up once.
    stream_ids: HashMap<StreamName, u64>,
    /// Events put but not yet written to their tables, as (stream id, revision, position,
    /// event id). They are written at commit, opening each table once instead of three
    /// times per event (measured: about a quarter of the insert cost). Bounded by what the
    /// caller puts in one transaction.
    pending_events: Vec<(u64, u64, u64, u128)>,
    /// The pending events by id, so that the idempotency lookup sees them.
    pending_ids: HashMap<u128, (u64, u64)>,
}

impl std::fmt::Debug for IndexWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexWriter").finish_non_exhaustive()
    }
}

impl<'a> IndexWriter<'a> {
    pub(crate) fn new(index: &'a Index, tx: WriteTransaction) -> IndexWriter<'a> {
        IndexWriter {
            index,
            tx,
            stream_ids: HashMap::new(),
            pending_events: Vec::new(),
            pending_ids: HashMap::new(),
        }
    }

    fn record(&self, stream: &StreamName) -> Result<Option<StreamRecord>, IndexError> {
        let streams = self
            .tx
            .open_table(STREAMS)
            .map_err(IndexError::store("opening streams"))?;
        schema::stream_record(&streams, stream)
    }

    /// The stream's state including this transaction's writes; the default for an unknown
    /// stream.
    pub fn stream_state(&self, stream: &StreamName) -> Result<StreamState, IndexError> {
        Ok(self.record(stream)?.map(|r| r.state).unwrap_or_default())
    }

    /// The stream's metadata including this transaction's writes; the default for an unknown
    /// stream.
    pub fn stream_metadata(&self, stream: &StreamName) -> Result<StreamMetadata, IndexError> {
        Ok(self.record(stream)?.map(|r| r.metadata).unwrap_or_default())
    }

    /// The stream and revision an event id was written at, including this transaction's
    /// writes: the idempotency lookup.
    pub fn event_revision(&self, id: &uuid::Uuid) -> Result<Option<(StreamName, u64)>, IndexError> {
        let names = self
            .tx
            .open_table(STREAM_NAMES)
            .map_err(IndexError::store("opening stream_names"))?;
        if let Some(&(stream_id, revision)) = self.pending_ids.get(&id.as_u128()) {
            return Ok(Some((schema::stream_name(&names, stream_id)?, revision)));
        }
        let ids = self
            .tx
            .open_table(EVENT_IDS)
            .map_err(IndexError::store("opening event_ids"))?;
        schema::event_revision(&ids, &names, id)
    }

    /// The stream's id, assigning the next one (and an empty record) to a stream never seen.
    fn stream_id(&mut self, stream: &StreamName) -> Result<u64, IndexError> {
        if let Some(&id) = self.stream_ids.get(stream) {
            return Ok(id);
        }
        let id = match self.record(stream)? {
            Some(record) => record.id,
            None => {
                let mut meta = self
                    .tx
                    .open_table(META)
                    .map_err(IndexError::store("opening meta"))?;
                let id = schema::meta_u64(&meta, META_NEXT_STREAM_ID)?.unwrap_or(0);
                meta.insert(META_NEXT_STREAM_ID, schema::encode_u64(id + 1).as_slice())
                    .map_err(IndexError::store("assigning a stream id"))?;
                let mut names = self
                    .tx
                    .open_table(STREAM_NAMES)
                    .map_err(IndexError::store("opening stream_names"))?;
                names
                    .insert(id, stream.as_str().as_bytes())
                    .map_err(IndexError::store("writing a stream name"))?;
                let record = StreamRecord {
                    id,
                    ..StreamRecord::default()
                };
                let mut streams = self
                    .tx
                    .open_table(STREAMS)
                    .map_err(IndexError::store("opening streams"))?;
                streams
                    .insert(
                        stream.as_str().as_bytes(),
                        schema::encode(&record).as_slice(),
                    )
                    .map_err(IndexError::store("writing a stream"))?;
                id
            }
        };
        self.stream_ids.insert(stream.clone(), id);
        Ok(id)
    }

    /// Records that `stream`'s revision `revision` is the event with id `id` at log position
    /// `position`. Does not touch the stream's state: put that with [`Self::put_stream_state`].
    pub fn put_event(
        &mut self,
        stream: &StreamName,
        revision: u64,
        position: u64,
        id: &uuid::Uuid,
    ) -> Result<(), IndexError> {
        let stream_id = self.stream_id(stream)?;
        self.pending_events
            .push((stream_id, revision, position, id.as_u128()));
        self.pending_ids.insert(id.as_u128(), (stream_id, revision));
        Ok(())
    }

    /// Writes the pending events into their tables.
    fn write_pending_events(&mut self) -> Result<(), IndexError> {
        if self.pending_events.is_empty() {
            return Ok(());
        }
        let mut events = self
            .tx
            .open_table(EVENTS)
            .map_err(IndexError::store("opening events"))?;
        let mut all = self
            .tx
            .open_table(ALL)
            .map_err(IndexError::store("opening all"))?;
        let mut ids = self
            .tx
            .open_table(EVENT_IDS)
            .map_err(IndexError::store("opening event_ids"))?;
        for &(stream_id, revision, position, id) in &self.pending_events {
            events
                .insert((stream_id, revision), position)
                .map_err(IndexError::store("writing an event"))?;
            all.insert(position, revision)
                .map_err(IndexError::store("writing an event to $all"))?;
            ids.insert(id, (stream_id, revision))
                .map_err(IndexError::store("writing an event id"))?;
        }
        drop((events, all, ids));
        self.pending_events.clear();
        self.pending_ids.clear();
        Ok(())
    }

    fn update_record(
        &mut self,
        stream: &StreamName,
        update: impl FnOnce(&mut StreamRecord),
    ) -> Result<(), IndexError> {
        let stream_id = self.stream_id(stream)?;
        let mut record = self.record(stream)?.unwrap_or(StreamRecord {
            id: stream_id,
            ..StreamRecord::default()
        });
        update(&mut record);
        let mut streams = self
            .tx
            .open_table(STREAMS)
            .map_err(IndexError::store("opening streams"))?;
        streams
            .insert(
                stream.as_str().as_bytes(),
                schema::encode(&record).as_slice(),
            )
            .map_err(IndexError::store("writing a stream"))?;
        Ok(())
    }

    pub fn put_stream_state(
        &mut self,
        stream: &StreamName,
        state: &StreamState,
    ) -> Result<(), IndexError> {
        self.update_record(stream, |record| record.state = state.clone())
    }

    pub fn put_stream_metadata(
        &mut self,
        stream: &StreamName,
        metadata: &StreamMetadata,
    ) -> Result<(), IndexError> {
        self.update_record(stream, |record| record.metadata = metadata.clone())
    }

    /// Records what this transaction brings the index up to. It commits with the data.
    pub fn set_checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<(), IndexError> {
        let mut meta = self
            .tx
            .open_table(META)
            .map_err(IndexError::store("opening meta"))?;
        meta.insert(META_CHECKPOINT, schema::encode(checkpoint).as_slice())
            .map_err(IndexError::store("writing the checkpoint"))?;
        Ok(())
    }

    /// Commits without fsync, unless [`crate::IndexOptions`] says this commit is due to be
    /// durable. A non-durable commit is visible to readers at once and survives a clean
    /// shutdown, but a crash rolls it back to the last durable commit.
    pub fn commit(self) -> Result<(), IndexError> {
        let durable = self.index.next_commit_is_durable();
        self.finish(durable)
    }

    /// Commits and fsyncs: this commit and every one before it survive a crash.
    pub fn commit_durable(self) -> Result<(), IndexError> {
        self.finish(true)
    }

    fn finish(mut self, durable: bool) -> Result<(), IndexError> {
        self.write_pending_events()?;
        if durable {
            // Durable commits are rare, so they also save the allocator state: reopening
            // after a crash then needs no full repair walk of the file.
            self.tx.set_quick_repair(true);
        } else {
            self.tx
                .set_durability(Durability::None)
                .map_err(IndexError::store("lowering durability"))?;
        }
        self.tx.commit().map_err(IndexError::store("committing"))?;
        self.index.committed(durable);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn name(s: &str) -> StreamName {
        StreamName::new(s).unwrap()
    }

    #[test]
    fn reads_see_the_writers_own_changes() {
        let index = Index::in_memory().unwrap();
        let s = name("orders");
        let id = Uuid::new_v4();
        let state = StreamState {
            last_revision: Some(0),
            ..Default::default()
        };
        let metadata = StreamMetadata {
            truncate_before: Some(1),
            ..Default::default()
        };
        let mut w = index.begin().unwrap();
        assert_eq!(w.event_revision(&id).unwrap(), None);
        w.put_event(&s, 0, 0, &id).unwrap();
        w.put_stream_state(&s, &state).unwrap();
        w.put_stream_metadata(&s, &metadata).unwrap();
        assert_eq!(w.stream_state(&s).unwrap(), state);
        assert_eq!(w.stream_metadata(&s).unwrap(), metadata);
        assert_eq!(w.event_revision(&id).unwrap(), Some((s.clone(), 0)));
        // Readers outside the transaction do not see it before the commit.
        assert_eq!(index.stream_state(&s).unwrap(), StreamState::default());
        assert_eq!(index.event_revision(&id).unwrap(), None);
        w.commit().unwrap();
        assert_eq!(index.stream_state(&s).unwrap(), state);
        assert_eq!(index.event_revision(&id).unwrap(), Some((s.clone(), 0)));

        // A later transaction sees committed ids through the table, not the pending buffer.
        let w = index.begin().unwrap();
        assert_eq!(w.event_revision(&id).unwrap(), Some((s, 0)));
    }

    #[test]
    fn streams_get_distinct_ids_within_one_transaction() {
        let index = Index::in_memory().unwrap();
        let mut w = index.begin().unwrap();
        let streams: Vec<StreamName> = (0..50).map(|i| name(&format!("s-{i}"))).collect();
        for (i, s) in streams.iter().enumerate() {
            w.put_event(s, 0, i as u64, &Uuid::new_v4()).unwrap();
        }
        w.commit().unwrap();
        for (i, s) in streams.iter().enumerate() {
            assert_eq!(
                index.stream_range(s, 0, true, 10).unwrap(),
                vec![(0, i as u64)]
            );
        }
    }

    #[test]
    fn the_checkpoint_commits_with_the_data() {
        let index = Index::in_memory().unwrap();
        let checkpoint = Checkpoint {
            applied_log_index: 7,
            applied_term: 1,
            applied_leader_node: 2,
            log_position: 4096,
            membership: b"voters 1,2,3".to_vec(),
        };
        let mut w = index.begin().unwrap();
        w.put_event(&name("s"), 0, 4000, &Uuid::new_v4()).unwrap();
        w.set_checkpoint(&checkpoint).unwrap();
        let snapshot = index.snapshot().unwrap();
        w.commit().unwrap();
        assert_eq!(snapshot.checkpoint().unwrap(), None);
        assert_eq!(snapshot.last_position().unwrap(), None);
        let snapshot = index.snapshot().unwrap();
        assert_eq!(snapshot.checkpoint().unwrap(), Some(checkpoint));
        assert_eq!(snapshot.last_position().unwrap(), Some(4000));
    }
}
