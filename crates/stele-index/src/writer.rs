//! The write transaction of the index: what the state machine applies. Puts are buffered in
//! the writer (its reads see them), handed to the memtable at commit, and reach redb when the
//! memtable is flushed (see the crate docs).

use std::collections::HashMap;

use stele_core::{StreamMetadata, StreamName, StreamState};

use crate::memtable::Batch;
use crate::schema::StreamRecord;
use crate::snapshot::View;
use crate::{Checkpoint, Index, IndexError};

/// One write transaction. Dropping it without committing rolls it back. There is one at a
/// time: [`Index::begin`] waits while another is open.
///
/// Writes are applied in order and a later write of the same key wins; the index checks no
/// invariant of the log (revisions following each other, positions growing): that is the
/// state machine's job, and it decides before it writes.
pub struct IndexWriter<'a> {
    index: &'a Index,
    /// The committed index as this writer started: no one else commits or flushes meanwhile.
    view: Option<View>,
    /// What this transaction wrote, for its own reads and for the commit.
    batch: Batch,
    /// Stream ids seen in this transaction, so that putting many events to one stream looks
    /// its id up once.
    stream_ids: HashMap<StreamName, u64>,
    /// The pending events by id (stream id, revision, position), so that the idempotency
    /// lookup and the answer to a retry see them.
    pending_ids: HashMap<u128, (u64, u64, u64)>,
}

impl std::fmt::Debug for IndexWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexWriter").finish_non_exhaustive()
    }
}

impl Drop for IndexWriter<'_> {
    fn drop(&mut self) {
        self.view = None;
        self.index.release_writer();
    }
}

impl<'a> IndexWriter<'a> {
    /// A writer over `view`; the caller holds the writer slot, which the writer releases.
    pub(crate) fn new(index: &'a Index, view: View, next_stream_id: u64) -> IndexWriter<'a> {
        IndexWriter {
            index,
            view: Some(view),
            batch: Batch {
                next_stream_id,
                ..Batch::default()
            },
            stream_ids: HashMap::new(),
            pending_ids: HashMap::new(),
        }
    }

    fn view(&self) -> &View {
        self.view
            .as_ref()
            .expect("a writer has its view until it ends")
    }

    fn record(&self, stream: &StreamName) -> Result<Option<StreamRecord>, IndexError> {
        if let Some(record) = self.batch.records.get(stream) {
            return Ok(Some(record.clone()));
        }
        self.view().record(stream)
    }

    /// The stream's state including this transaction's writes; the default for an unknown
    /// stream.
    pub fn stream_state(&self, stream: &StreamName) -> Result<StreamState, IndexError> {
        if let Some(record) = self.batch.records.get(stream) {
            return Ok(record.state.clone());
        }
        Ok(self.record(stream)?.map(|r| r.state).unwrap_or_default())
    }

    /// The stream's metadata including this transaction's writes; the default for an unknown
    /// stream.
    pub fn stream_metadata(&self, stream: &StreamName) -> Result<StreamMetadata, IndexError> {
        if let Some(record) = self.batch.records.get(stream) {
            return Ok(record.metadata.clone());
        }
        Ok(self.record(stream)?.map(|r| r.metadata).unwrap_or_default())
    }

    /// The stream and revision an event id was written at, including this transaction's
    /// writes: the idempotency lookup.
    pub fn event_revision(&self, id: &uuid::Uuid) -> Result<Option<(StreamName, u64)>, IndexError> {
        if let Some(&(stream_id, revision, _)) = self.pending_ids.get(&id.as_u128()) {
            let name = match self.batch.new_streams.iter().find(|(i, _)| *i == stream_id) {
                Some((_, name)) => name.clone(),
                None => self.view().stream_name(stream_id)?,
            };
            return Ok(Some((name, revision)));
        }
        self.view().event_revision(id)
    }

    /// The log position of `stream`'s revision `revision`, whose event has id `id`, including
    /// this transaction's writes: how an idempotent retry is answered with the original
    /// positions, also when the original append is in the same transaction (a replay after a
    /// crash applies both in one batch).
    pub fn event_position(
        &self,
        stream: &StreamName,
        revision: u64,
        id: &uuid::Uuid,
    ) -> Result<Option<u64>, IndexError> {
        if let Some(&(_, pending_revision, position)) = self.pending_ids.get(&id.as_u128()) {
            if pending_revision == revision {
                return Ok(Some(position));
            }
        }
        Ok(self
            .view()
            .stream_range(stream, revision, true, 1)?
            .first()
            .filter(|&&(r, _)| r == revision)
            .map(|&(_, p)| p))
    }

    /// The stream's id, assigning the next one (and an empty record) to a stream never seen.
    fn stream_id(&mut self, stream: &StreamName) -> Result<u64, IndexError> {
        if let Some(&id) = self.stream_ids.get(stream) {
            return Ok(id);
        }
        let id = match self.record(stream)? {
            Some(record) => record.id,
            None => {
                let id = self.batch.next_stream_id;
                self.batch.next_stream_id += 1;
                self.batch.new_streams.push((id, stream.clone()));
                self.batch.records.insert(
                    stream.clone(),
                    StreamRecord {
                        id,
                        ..StreamRecord::default()
                    },
                );
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
        self.batch
            .events
            .push((stream_id, revision, position, id.as_u128()));
        self.pending_ids
            .insert(id.as_u128(), (stream_id, revision, position));
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
        self.batch.records.insert(stream.clone(), record);
        Ok(())
    }

    pub fn put_stream_state(
        &mut self,
        stream: &StreamName,
        state: &StreamState,
    ) -> Result<(), IndexError> {
        if let Some(record) = self.batch.records.get_mut(stream) {
            record.state = state.clone();
            return Ok(());
        }
        self.update_record(stream, |record| record.state = state.clone())
    }

    pub fn put_stream_metadata(
        &mut self,
        stream: &StreamName,
        metadata: &StreamMetadata,
    ) -> Result<(), IndexError> {
        if let Some(record) = self.batch.records.get_mut(stream) {
            record.metadata = metadata.clone();
            return Ok(());
        }
        self.update_record(stream, |record| record.metadata = metadata.clone())
    }

    /// Records what this transaction brings the index up to. It commits with the data, and
    /// reaches redb with it.
    pub fn set_checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<(), IndexError> {
        self.batch.checkpoint = Some(checkpoint.clone());
        Ok(())
    }

    /// Commits to the memtable: visible to readers at once, in redb (durably) when the
    /// memtable is next flushed, which this commit starts in the background when
    /// [`crate::IndexOptions`] says a flush is due (waiting only for a flush still in flight).
    /// A crash loses what was not flushed, back to the checkpoint of the last flush.
    pub fn commit(self) -> Result<(), IndexError> {
        self.finish(false)
    }

    /// Commits and flushes the memtable to redb durably: this commit and every one before it
    /// survive a crash.
    pub fn commit_durable(self) -> Result<(), IndexError> {
        self.finish(true)
    }

    fn finish(mut self, durable: bool) -> Result<(), IndexError> {
        // A background flush that failed fails this commit (before it is applied).
        self.index.reap_flush()?;
        // The view's read transaction would only hold pages back from the flush.
        let view = self
            .view
            .take()
            .expect("a writer has its view until it ends");
        let batch = std::mem::take(&mut self.batch);
        self.index.set_next_stream_id(batch.next_stream_id);
        let full = {
            let mut table = view.layers.active.write();
            table.apply(batch);
            table.entries >= self.index.options.memtable_limit
        };
        drop(view);
        if self.index.committed_is_flush_due(durable || full) {
            // A durable commit waits for its flush; a due one only starts it.
            self.index
                .flush_memtable(!durable && self.index.options.background_flush)?;
        }
        Ok(())
        // Dropping `self` releases the writer slot.
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
