//! The index against a `BTreeMap` model: random sequences of puts, commits, rollbacks,
//! flushes and snapshots, then every read compared, forwards and backwards, with counts.
//!
//! The memtable limit is drawn small (a few entries), so the memtable is flushed to redb at
//! random points, reads cross the memtable/redb boundary, and snapshots taken before a flush
//! are read after it.

use std::collections::BTreeMap;

use proptest::prelude::*;
use stele_core::{StreamName, StreamState};
use stele_index::{Checkpoint, Index, IndexError, IndexOptions, IndexSnapshot, IndexWriter};
use uuid::Uuid;

const STREAMS: u8 = 4;

#[derive(Debug, Clone)]
enum Op {
    /// Event with the next id, to stream `stream` at `revision` and `position`.
    PutEvent {
        stream: u8,
        revision: u64,
        position: u64,
    },
    PutState {
        stream: u8,
        state: StreamState,
    },
    /// Reads the state inside the writer and compares with the pending model.
    ReadState {
        stream: u8,
    },
    /// Looks an earlier event id up inside the writer.
    ReadId {
        nth: usize,
    },
    Commit,
    Rollback,
    /// Commits durably (flushing the memtable) if a writer is open, else `Index::flush`.
    Flush,
    /// Takes a snapshot, to be checked against the model as of now after later commits.
    Snapshot,
}

fn state() -> impl Strategy<Value = StreamState> {
    (
        proptest::option::of(0u64..20),
        proptest::option::of(0u64..20),
        any::<bool>(),
    )
        .prop_map(|(last_revision, deleted_before, tombstoned)| StreamState {
            last_revision,
            deleted_before,
            tombstoned,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..STREAMS, 0u64..20, 0u64..200).prop_map(|(stream, revision, position)| {
            Op::PutEvent { stream, revision, position }
        }),
        2 => (0..STREAMS, state()).prop_map(|(stream, state)| Op::PutState { stream, state }),
        1 => (0..STREAMS).prop_map(|stream| Op::ReadState { stream }),
        1 => (0usize..64).prop_map(|nth| Op::ReadId { nth }),
        1 => Just(Op::Commit),
        1 => Just(Op::Rollback),
        1 => Just(Op::Flush),
        1 => Just(Op::Snapshot),
    ]
}

/// What the index should hold: last write wins per key, as in the index.
#[derive(Debug, Clone, Default)]
struct Model {
    events: BTreeMap<(u8, u64), u64>,
    all: BTreeMap<u64, u64>,
    states: BTreeMap<u8, StreamState>,
    ids: BTreeMap<u128, (u8, u64)>,
    /// The checkpoint of the last commit that set one: the number of commits so far.
    checkpoint: Option<u64>,
}

/// The reads of an index and of a snapshot.
trait Reads {
    fn stream_state(&self, s: &StreamName) -> Result<StreamState, IndexError>;
    fn stream_range(
        &self,
        s: &StreamName,
        from: u64,
        forwards: bool,
        count: usize,
    ) -> Result<Vec<(u64, u64)>, IndexError>;
    fn all_range(
        &self,
        from: u64,
        forwards: bool,
        count: usize,
    ) -> Result<Vec<(u64, u64)>, IndexError>;
    fn last_position(&self) -> Result<Option<u64>, IndexError>;
    fn event_revision(&self, id: &Uuid) -> Result<Option<(StreamName, u64)>, IndexError>;
    fn checkpoint(&self) -> Result<Option<Checkpoint>, IndexError>;
}

macro_rules! reads {
    ($t:ty) => {
        impl Reads for $t {
            fn stream_state(&self, s: &StreamName) -> Result<StreamState, IndexError> {
                <$t>::stream_state(self, s)
            }
            fn stream_range(
                &self,
                s: &StreamName,
                from: u64,
                forwards: bool,
                count: usize,
            ) -> Result<Vec<(u64, u64)>, IndexError> {
                <$t>::stream_range(self, s, from, forwards, count)
            }
            fn all_range(
                &self,
                from: u64,
                forwards: bool,
                count: usize,
            ) -> Result<Vec<(u64, u64)>, IndexError> {
                <$t>::all_range(self, from, forwards, count)
            }
            fn last_position(&self) -> Result<Option<u64>, IndexError> {
                <$t>::last_position(self)
            }
            fn event_revision(&self, id: &Uuid) -> Result<Option<(StreamName, u64)>, IndexError> {
                <$t>::event_revision(self, id)
            }
            fn checkpoint(&self) -> Result<Option<Checkpoint>, IndexError> {
                <$t>::checkpoint(self)
            }
        }
    };
}
reads!(Index);
reads!(IndexSnapshot);

fn checkpoint(n: u64) -> Checkpoint {
    Checkpoint {
        applied_log_index: n,
        applied_term: 1,
        applied_leader_node: 1,
        log_position: n * 10,
        membership: Vec::new(),
    }
}

fn stream(i: u8) -> StreamName {
    // Names that are prefixes of one another, to catch key layouts that mix them up.
    StreamName::new("s".repeat(i as usize + 1)).unwrap()
}

fn check(index: &impl Reads, model: &Model, probes: &[(u64, usize)]) {
    assert_eq!(
        index.checkpoint().unwrap(),
        model.checkpoint.map(checkpoint),
        "checkpoint"
    );
    for s in 0..=STREAMS {
        let name = stream(s);
        assert_eq!(
            index.stream_state(&name).unwrap(),
            model.states.get(&s).cloned().unwrap_or_default(),
            "state of {name}"
        );
        for &(from, count) in probes {
            let forwards: Vec<(u64, u64)> = model
                .events
                .range((s, from)..=(s, u64::MAX))
                .take(count)
                .map(|(&(_, r), &p)| (r, p))
                .collect();
            assert_eq!(
                index.stream_range(&name, from, true, count).unwrap(),
                forwards,
                "{name} forwards from {from} count {count}"
            );
            let backwards: Vec<(u64, u64)> = model
                .events
                .range((s, 0)..=(s, from))
                .rev()
                .take(count)
                .map(|(&(_, r), &p)| (r, p))
                .collect();
            assert_eq!(
                index.stream_range(&name, from, false, count).unwrap(),
                backwards,
                "{name} backwards from {from} count {count}"
            );
        }
    }
    for &(from, count) in probes {
        // Positions are scaled so that probes land inside and between them.
        let from = from.saturating_mul(10);
        let forwards: Vec<(u64, u64)> = model
            .all
            .range(from..)
            .take(count)
            .map(|(&p, &r)| (p, r))
            .collect();
        assert_eq!(index.all_range(from, true, count).unwrap(), forwards);
        let backwards: Vec<(u64, u64)> = model
            .all
            .range(..=from)
            .rev()
            .take(count)
            .map(|(&p, &r)| (p, r))
            .collect();
        assert_eq!(index.all_range(from, false, count).unwrap(), backwards);
    }
    assert_eq!(
        index.last_position().unwrap(),
        model.all.keys().next_back().copied()
    );
    for (&id, &(s, revision)) in &model.ids {
        assert_eq!(
            index.event_revision(&Uuid::from_u128(id)).unwrap(),
            Some((stream(s), revision))
        );
    }
}

/// Commits `w` with a checkpoint naming the commit, as the state machine does.
fn commit(mut w: IndexWriter<'_>, pending: &mut Model, commits: &mut u64, durable: bool) {
    *commits += 1;
    w.set_checkpoint(&checkpoint(*commits)).unwrap();
    pending.checkpoint = Some(*commits);
    if durable {
        w.commit_durable().unwrap();
    } else {
        w.commit().unwrap();
    }
}

/// Runs `ops`; returns the model of what was committed.
fn run(index: &Index, ops: &[Op], probes: &[(u64, usize)]) -> Model {
    let mut committed = Model::default();
    let mut pending = committed.clone();
    let mut writer: Option<IndexWriter<'_>> = None;
    let mut next_id: u128 = 1;
    let mut issued: Vec<u128> = Vec::new();
    let mut commits = 0;
    let mut snapshots: Vec<(IndexSnapshot, Model)> = Vec::new();
    for op in ops {
        match op {
            Op::Commit | Op::Flush => {
                let durable = matches!(op, Op::Flush);
                match writer.take() {
                    Some(w) => commit(w, &mut pending, &mut commits, durable),
                    None if durable => index.flush().unwrap(),
                    None => {}
                }
                committed = pending.clone();
                check(index, &committed, probes);
                for (snapshot, model) in &snapshots {
                    check(snapshot, model, probes);
                }
            }
            Op::Snapshot => snapshots.push((index.snapshot().unwrap(), committed.clone())),
            Op::Rollback => {
                drop(writer.take());
                pending = committed.clone();
            }
            op => {
                let w = match &mut writer {
                    Some(w) => w,
                    None => writer.insert(index.begin().unwrap()),
                };
                match *op {
                    Op::PutEvent {
                        stream: s,
                        revision,
                        position,
                    } => {
                        let id = next_id;
                        next_id += 1;
                        issued.push(id);
                        let position = position * 10;
                        w.put_event(&stream(s), revision, position, &Uuid::from_u128(id))
                            .unwrap();
                        pending.events.insert((s, revision), position);
                        pending.all.insert(position, revision);
                        pending.ids.insert(id, (s, revision));
                    }
                    Op::PutState {
                        stream: s,
                        ref state,
                    } => {
                        w.put_stream_state(&stream(s), state).unwrap();
                        pending.states.insert(s, state.clone());
                    }
                    Op::ReadState { stream: s } => {
                        assert_eq!(
                            w.stream_state(&stream(s)).unwrap(),
                            pending.states.get(&s).cloned().unwrap_or_default()
                        );
                    }
                    Op::ReadId { nth } => {
                        let id = issued.get(nth).copied().unwrap_or(u128::MAX);
                        assert_eq!(
                            w.event_revision(&Uuid::from_u128(id)).unwrap(),
                            pending.ids.get(&id).map(|&(s, r)| (stream(s), r))
                        );
                    }
                    Op::Commit | Op::Rollback | Op::Flush | Op::Snapshot => unreachable!(),
                }
            }
        }
    }
    if let Some(w) = writer.take() {
        commit(w, &mut pending, &mut commits, false);
    }
    check(index, &pending, probes);
    for (snapshot, model) in &snapshots {
        check(snapshot, model, probes);
    }
    pending
}

fn probes() -> impl Strategy<Value = Vec<(u64, usize)>> {
    let from = prop_oneof![0u64..25, Just(u64::MAX)];
    let count = prop_oneof![Just(0usize), 1usize..4, Just(usize::MAX)];
    proptest::collection::vec((from, count), 1..6)
}

fn options(memtable_limit: usize) -> IndexOptions {
    IndexOptions {
        memtable_limit,
        ..IndexOptions::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn in_memory_index_agrees_with_the_model(
        ops in proptest::collection::vec(op(), 0..120),
        probes in probes(),
        limit in prop_oneof![1usize..12, Just(usize::MAX)],
    ) {
        let index = Index::in_memory_with(options(limit)).unwrap();
        run(&index, &ops, &probes);
    }

    #[test]
    fn file_index_agrees_with_the_model_after_reopening(
        ops in proptest::collection::vec(op(), 0..60),
        probes in probes(),
        limit in prop_oneof![1usize..12, Just(usize::MAX)],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.redb");
        let index = Index::open_with(&path, options(limit)).unwrap();
        let model = run(&index, &ops, &probes);
        // A clean close flushes the memtable: the reopened index answers the same.
        drop(index);
        let index = Index::open_with(&path, options(limit)).unwrap();
        check(&index, &model, &probes);
        let before: Vec<_> = (0..=STREAMS)
            .map(|s| index.stream_range(&stream(s), 0, true, usize::MAX).unwrap())
            .collect();
        // New streams after reopening get new ids: old streams keep their events.
        let mut w = index.begin().unwrap();
        w.put_event(&stream(STREAMS), 0, 1_000_000, &Uuid::from_u128(u128::MAX)).unwrap();
        w.commit().unwrap();
        index.flush().unwrap();
        let after: Vec<_> = (0..STREAMS)
            .map(|s| index.stream_range(&stream(s), 0, true, usize::MAX).unwrap())
            .collect();
        prop_assert_eq!(&before[..STREAMS as usize], &after[..]);
    }
}
