//! A consistent read view of the index: the memtable generations as of one commit, over one
//! redb read transaction. Reads through one snapshot see one committed state, whatever commits
//! or flushes meanwhile.

use redb::ReadTransaction;
use stele_core::{StreamMetadata, StreamName, StreamState};

use crate::memtable::{self, Generation, Layers, MemTable};
use crate::schema::{self, StreamRecord, ALL, EVENTS, EVENT_IDS, META, STREAMS, STREAM_NAMES};
use crate::{Checkpoint, IndexError};

/// The layers a read merges, newest first: the active memtable generation up to commit
/// `seq`, the generation being flushed (if any), then redb as of `tx`.
///
/// Taken under the index's layer lock, so `tx` either predates a flush (and the generation
/// it flushes is in `layers`) or follows it.
pub(crate) struct View {
    pub layers: Layers,
    pub seq: u64,
    pub tx: ReadTransaction,
}

/// Calls `f` on each memtable generation, newest first, with the last commit it may see,
/// until `f` answers.
fn find<T>(view: &View, f: impl Fn(&MemTable, u64) -> Option<T>) -> Option<T> {
    if let Some(found) = f(&view.layers.active.read(), view.seq) {
        return Some(found);
    }
    view.layers
        .frozen
        .as_ref()
        .and_then(|frozen| f(&frozen.read(), u64::MAX))
}

/// The generations of `view` with the commit each may see, newest first.
fn generations(view: &View) -> Vec<(&Generation, u64)> {
    let mut out = vec![(&*view.layers.active, view.seq)];
    if let Some(frozen) = &view.layers.frozen {
        out.push((frozen, u64::MAX));
    }
    out
}

impl View {
    pub(crate) fn record(&self, stream: &StreamName) -> Result<Option<StreamRecord>, IndexError> {
        if let Some(record) = find(self, |m, seq| {
            m.records.get(stream).and_then(|v| v.at(seq)).cloned()
        }) {
            return Ok(Some(record));
        }
        let streams = self
            .tx
            .open_table(STREAMS)
            .map_err(IndexError::store("opening streams"))?;
        schema::stream_record(&streams, stream)
    }

    pub(crate) fn checkpoint(&self) -> Result<Option<Checkpoint>, IndexError> {
        if let Some(checkpoint) = find(self, |m, seq| {
            m.checkpoint.as_ref().and_then(|v| v.at(seq)).cloned()
        }) {
            return Ok(Some(checkpoint));
        }
        let meta = self
            .tx
            .open_table(META)
            .map_err(IndexError::store("opening meta"))?;
        schema::checkpoint(&meta)
    }

    pub(crate) fn stream_name(&self, stream_id: u64) -> Result<StreamName, IndexError> {
        if let Some(name) = find(self, |m, _| m.names.get(&stream_id).cloned()) {
            return Ok(name);
        }
        let names = self
            .tx
            .open_table(STREAM_NAMES)
            .map_err(IndexError::store("opening stream_names"))?;
        schema::stream_name(&names, stream_id)
    }

    pub(crate) fn event_revision(
        &self,
        id: &uuid::Uuid,
    ) -> Result<Option<(StreamName, u64)>, IndexError> {
        let key = id.as_u128();
        let found = match find(self, |m, seq| {
            m.ids.get(&key).and_then(|v| v.at(seq)).copied()
        }) {
            Some(found) => Some(found),
            None => {
                let ids = self
                    .tx
                    .open_table(EVENT_IDS)
                    .map_err(IndexError::store("opening event_ids"))?;
                ids.get(key)
                    .map_err(IndexError::store("reading an event id"))?
                    .map(|v| v.value())
            }
        };
        match found {
            Some((stream_id, revision)) => Ok(Some((self.stream_name(stream_id)?, revision))),
            None => Ok(None),
        }
    }

    pub(crate) fn stream_range(
        &self,
        stream: &StreamName,
        from: u64,
        forwards: bool,
        count: usize,
    ) -> Result<Vec<(u64, u64)>, IndexError> {
        let Some(record) = self.record(stream)? else {
            return Ok(Vec::new());
        };
        let stream_id = record.id;
        let bounds = if forwards {
            (stream_id, from)..=(stream_id, u64::MAX)
        } else {
            (stream_id, 0)..=(stream_id, from)
        };
        let generations = generations(self);
        let guards: Vec<_> = generations
            .iter()
            .map(|(g, seq)| (g.read(), *seq))
            .collect();
        let mut sources: Vec<Box<dyn Iterator<Item = memtable::Item<u64, u64>> + '_>> = Vec::new();
        for (table, seq) in &guards {
            let seq = *seq;
            let range = table.events.range(bounds.clone());
            let visible =
                move |(&(_, revision), versions): (&(u64, u64), &memtable::Versions<u64>)| {
                    versions.at(seq).map(|&position| Ok((revision, position)))
                };
            if forwards {
                sources.push(Box::new(range.filter_map(visible)));
            } else {
                sources.push(Box::new(range.rev().filter_map(visible)));
            }
        }
        let operation = "reading a stream's revisions";
        let events = self
            .tx
            .open_table(EVENTS)
            .map_err(IndexError::store("opening events"))?;
        let range = events.range(bounds).map_err(IndexError::store(operation))?;
        let pair = |item: Result<_, redb::StorageError>| {
            let (k, v): (redb::AccessGuard<(u64, u64)>, redb::AccessGuard<u64>) =
                item.map_err(IndexError::store(operation))?;
            Ok((k.value().1, v.value()))
        };
        if forwards {
            sources.push(Box::new(range.map(pair)));
        } else {
            sources.push(Box::new(range.rev().map(pair)));
        }
        memtable::merge(sources, forwards, count)
    }

    pub(crate) fn all_range(
        &self,
        from: u64,
        forwards: bool,
        count: usize,
    ) -> Result<Vec<(u64, u64)>, IndexError> {
        let generations = generations(self);
        let guards: Vec<_> = generations
            .iter()
            .map(|(g, seq)| (g.read(), *seq))
            .collect();
        let mut sources: Vec<Box<dyn Iterator<Item = memtable::Item<u64, u64>> + '_>> = Vec::new();
        for (table, seq) in &guards {
            let seq = *seq;
            let visible = move |(&position, versions): (&u64, &memtable::Versions<u64>)| {
                versions.at(seq).map(|&revision| Ok((position, revision)))
            };
            if forwards {
                sources.push(Box::new(table.all.range(from..).filter_map(visible)));
            } else {
                sources.push(Box::new(table.all.range(..=from).rev().filter_map(visible)));
            }
        }
        let operation = "reading $all";
        let all = self
            .tx
            .open_table(ALL)
            .map_err(IndexError::store("opening all"))?;
        let pair = |item: Result<_, redb::StorageError>| {
            let (k, v): (redb::AccessGuard<u64>, redb::AccessGuard<u64>) =
                item.map_err(IndexError::store(operation))?;
            Ok((k.value(), v.value()))
        };
        if forwards {
            let range = all.range(from..).map_err(IndexError::store(operation))?;
            sources.push(Box::new(range.map(pair)));
        } else {
            let range = all.range(..=from).map_err(IndexError::store(operation))?;
            sources.push(Box::new(range.rev().map(pair)));
        }
        memtable::merge(sources, forwards, count)
    }

    pub(crate) fn last_position(&self) -> Result<Option<u64>, IndexError> {
        Ok(self
            .all_range(u64::MAX, false, 1)?
            .first()
            .map(|&(position, _)| position))
    }
}

/// A read view of the index at one commit. Cheap to take; hold it only as long as a read
/// needs it, because redb pages it sees cannot be reused, nor a flushed memtable generation
/// freed, until it is dropped.
pub struct IndexSnapshot {
    view: View,
}

impl IndexSnapshot {
    pub(crate) fn new(view: View) -> IndexSnapshot {
        IndexSnapshot { view }
    }

    /// What the index had applied at this snapshot.
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, IndexError> {
        self.view.checkpoint()
    }

    /// The stream's state; the default (never written) for an unknown stream.
    pub fn stream_state(&self, stream: &StreamName) -> Result<StreamState, IndexError> {
        Ok(self
            .view
            .record(stream)?
            .map(|r| r.state)
            .unwrap_or_default())
    }

    /// The stream's metadata; the default (no limits) for an unknown stream.
    pub fn stream_metadata(&self, stream: &StreamName) -> Result<StreamMetadata, IndexError> {
        Ok(self
            .view
            .record(stream)?
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
        self.view.stream_range(stream, from, forwards, count)
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
        self.view.all_range(from, forwards, count)
    }

    /// The highest event position in `$all`, `None` when there are no events.
    pub fn last_position(&self) -> Result<Option<u64>, IndexError> {
        self.view.last_position()
    }

    /// The stream and revision an event id was written at.
    pub fn event_revision(&self, id: &uuid::Uuid) -> Result<Option<(StreamName, u64)>, IndexError> {
        self.view.event_revision(id)
    }
}
