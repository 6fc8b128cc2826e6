//! The in-memory layer over redb: what has been committed since the last flush.
//!
//! Commits go into a [`MemTable`] (one per flush generation); when it is full, or durability
//! is due, the whole table is written to redb in one transaction and a fresh one takes its
//! place (`Index::flush_memtable`). Every value carries the sequence number of the commit
//! that wrote it, and a key keeps all its versions within a generation, so that a snapshot
//! (which notes the sequence number it was taken at) sees neither later commits nor later
//! versions of a key. A table only grows until it is flushed, which bounds the versions too.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use stele_core::StreamName;

use crate::schema::StreamRecord;
use crate::{Checkpoint, IndexError};

/// The versions of one key in one generation, oldest first; nearly always exactly one.
#[derive(Debug, Clone)]
pub(crate) enum Versions<V> {
    One(u64, V),
    Many(Vec<(u64, V)>),
}

impl<V> Versions<V> {
    /// The value as of commit `seq`: the newest version written at or before it.
    pub(crate) fn at(&self, seq: u64) -> Option<&V> {
        match self {
            Versions::One(s, v) => (*s <= seq).then_some(v),
            Versions::Many(all) => all.iter().rev().find(|(s, _)| *s <= seq).map(|(_, v)| v),
        }
    }

    /// The newest version.
    pub(crate) fn latest(&self) -> &V {
        match self {
            Versions::One(_, v) => v,
            Versions::Many(all) => &all.last().expect("versions are never empty").1,
        }
    }

    fn push(&mut self, seq: u64, value: V) {
        match self {
            Versions::One(..) => {
                let Versions::One(s, v) = std::mem::replace(self, Versions::Many(Vec::new()))
                else {
                    unreachable!()
                };
                *self = Versions::Many(vec![(s, v), (seq, value)]);
            }
            Versions::Many(all) => all.push((seq, value)),
        }
    }
}

/// Inserts `value` as the version of `key` written by commit `seq`.
fn put<K: Ord, V>(map: &mut BTreeMap<K, Versions<V>>, key: K, seq: u64, value: V) {
    match map.entry(key) {
        std::collections::btree_map::Entry::Vacant(e) => {
            e.insert(Versions::One(seq, value));
        }
        std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().push(seq, value),
    }
}

fn put_hashed<K: std::hash::Hash + Eq, V>(
    map: &mut HashMap<K, Versions<V>>,
    key: K,
    seq: u64,
    value: V,
) {
    match map.entry(key) {
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(Versions::One(seq, value));
        }
        std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().push(seq, value),
    }
}

/// What one write transaction hands to the memtable at commit: the latest value of every key
/// it wrote.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// Full stream records (id, state, metadata) of the streams whose record changed.
    pub records: HashMap<StreamName, StreamRecord>,
    /// Streams first seen in this batch, with their new ids.
    pub new_streams: Vec<(u64, StreamName)>,
    /// (stream id, revision, position, event id), in the order put.
    pub events: Vec<(u64, u64, u64, u128)>,
    pub checkpoint: Option<Checkpoint>,
    /// The next stream id after this batch.
    pub next_stream_id: u64,
}

/// One generation of the memtable: everything committed since the last flush.
#[derive(Debug, Default)]
pub(crate) struct MemTable {
    /// Sequence number of the last commit applied (commits are numbered from 1, across
    /// generations).
    pub seq: u64,
    /// Entries applied (events and stream-record writes), for the size limit.
    pub entries: usize,
    pub records: HashMap<StreamName, Versions<StreamRecord>>,
    /// Names of the streams first seen in this generation, by id. Not versioned: an id is
    /// only ever found through a versioned entry.
    pub names: HashMap<u64, StreamName>,
    pub events: BTreeMap<(u64, u64), Versions<u64>>,
    pub all: BTreeMap<u64, Versions<u64>>,
    pub ids: HashMap<u128, Versions<(u64, u64)>>,
    pub checkpoint: Option<Versions<Checkpoint>>,
    /// The next stream id as of the last commit here, `None` while nothing is committed.
    pub next_stream_id: Option<u64>,
}

impl MemTable {
    pub(crate) fn starting_after(seq: u64) -> MemTable {
        MemTable {
            seq,
            ..MemTable::default()
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.next_stream_id.is_none()
    }

    /// Applies one committed batch as commit `self.seq + 1`.
    pub(crate) fn apply(&mut self, batch: Batch) {
        let seq = self.seq + 1;
        self.entries += batch.records.len() + batch.events.len();
        for (id, name) in batch.new_streams {
            self.names.insert(id, name);
        }
        for (name, record) in batch.records {
            put_hashed(&mut self.records, name, seq, record);
        }
        for (stream_id, revision, position, id) in batch.events {
            put(&mut self.events, (stream_id, revision), seq, position);
            put(&mut self.all, position, seq, revision);
            put_hashed(&mut self.ids, id, seq, (stream_id, revision));
        }
        if let Some(checkpoint) = batch.checkpoint {
            match &mut self.checkpoint {
                Some(versions) => versions.push(seq, checkpoint),
                None => self.checkpoint = Some(Versions::One(seq, checkpoint)),
            }
        }
        self.next_stream_id = Some(batch.next_stream_id);
        self.seq = seq;
    }
}

/// A shared generation of the memtable.
#[derive(Debug, Default)]
pub(crate) struct Generation(RwLock<MemTable>);

impl Generation {
    pub(crate) fn new(table: MemTable) -> Arc<Generation> {
        Arc::new(Generation(RwLock::new(table)))
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, MemTable> {
        self.0.read().expect("memtable lock poisoned")
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, MemTable> {
        self.0.write().expect("memtable lock poisoned")
    }
}

/// The generations a read consults, newest first, each with the last commit it may see.
#[derive(Debug, Clone)]
pub(crate) struct Layers {
    /// The generation commits go to.
    pub active: Arc<Generation>,
    /// The generation being written to redb, while a flush runs. Reads consult it too: a
    /// read that began before the flush's redb commit does not see that commit in redb.
    pub frozen: Option<Arc<Generation>>,
}

/// One item of a merged range.
pub(crate) type Item<K, V> = Result<(K, V), IndexError>;

/// Merges sorted sources (ascending when `forwards`, else descending) into at most `count`
/// items; on equal keys the earliest source wins and the others' items are skipped. Lazy:
/// each source is read only as far as the answer needs.
pub(crate) fn merge<'a, K: Ord + Copy, V>(
    mut sources: Vec<Box<dyn Iterator<Item = Item<K, V>> + 'a>>,
    forwards: bool,
    count: usize,
) -> Result<Vec<(K, V)>, IndexError> {
    let mut out = Vec::new();
    if count == 0 {
        return Ok(out);
    }
    let mut heads: Vec<Option<(K, V)>> = sources
        .iter_mut()
        .map(|s| s.next().transpose())
        .collect::<Result<_, _>>()?;
    while out.len() < count {
        let mut best: Option<(usize, K)> = None;
        for (i, head) in heads.iter().enumerate() {
            if let Some((k, _)) = head {
                let better = match best {
                    None => true,
                    Some((_, b)) => {
                        if forwards {
                            *k < b
                        } else {
                            *k > b
                        }
                    }
                };
                if better {
                    best = Some((i, *k));
                }
            }
        }
        let Some((winner, key)) = best else { break };
        let item = heads[winner].take().expect("the winner has a head");
        for (i, head) in heads.iter_mut().enumerate() {
            if i == winner || head.as_ref().is_some_and(|(k, _)| *k == key) {
                *head = sources[i].next().transpose()?;
            }
        }
        out.push(item);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(
        items: Vec<(u64, &'static str)>,
    ) -> Box<dyn Iterator<Item = Item<u64, &'static str>>> {
        Box::new(items.into_iter().map(Ok))
    }

    #[test]
    fn merge_prefers_earlier_sources_and_stops_at_count() {
        let merged = merge(
            vec![
                source(vec![(2, "new"), (5, "new")]),
                source(vec![
                    (1, "old"),
                    (2, "old"),
                    (3, "old"),
                    (5, "old"),
                    (9, "old"),
                ]),
            ],
            true,
            4,
        )
        .unwrap();
        assert_eq!(merged, vec![(1, "old"), (2, "new"), (3, "old"), (5, "new")]);
        let merged = merge(
            vec![
                source(vec![(5, "new"), (2, "new")]),
                source(vec![(9, "old"), (5, "old"), (3, "old")]),
            ],
            false,
            usize::MAX,
        )
        .unwrap();
        assert_eq!(merged, vec![(9, "old"), (5, "new"), (3, "old"), (2, "new")]);
        assert!(merge(vec![source(vec![(1, "x")])], true, 0)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn versions_answer_as_of_a_commit() {
        let mut v = Versions::One(3, "a");
        assert_eq!(v.at(2), None);
        assert_eq!(v.at(3), Some(&"a"));
        v.push(5, "b");
        assert_eq!(v.at(4), Some(&"a"));
        assert_eq!(v.at(5), Some(&"b"));
        assert_eq!(v.latest(), &"b");
    }
}
