//! The index against a `BTreeMap` model: random sequences of puts, commits and rollbacks,
//! then every read compared, forwards and backwards, with counts.

use std::collections::BTreeMap;

use proptest::prelude::*;
use stele_core::{StreamName, StreamState};
use stele_index::{Index, IndexWriter};
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
    ]
}

/// What the index should hold: last write wins per key, as in the index.
#[derive(Debug, Clone, Default)]
struct Model {
    events: BTreeMap<(u8, u64), u64>,
    all: BTreeMap<u64, u64>,
    states: BTreeMap<u8, StreamState>,
    ids: BTreeMap<u128, (u8, u64)>,
}

fn stream(i: u8) -> StreamName {
    // Names that are prefixes of one another, to catch key layouts that mix them up.
    StreamName::new("s".repeat(i as usize + 1)).unwrap()
}

fn check(index: &Index, model: &Model, probes: &[(u64, usize)]) {
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

fn run(index: &Index, ops: &[Op], probes: &[(u64, usize)]) {
    let mut committed = Model::default();
    let mut pending = committed.clone();
    let mut writer: Option<IndexWriter<'_>> = None;
    let mut next_id: u128 = 1;
    let mut issued: Vec<u128> = Vec::new();
    for op in ops {
        match op {
            Op::Commit => {
                if let Some(w) = writer.take() {
                    w.commit().unwrap();
                }
                committed = pending.clone();
                check(index, &committed, probes);
            }
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
                    Op::Commit | Op::Rollback => unreachable!(),
                }
            }
        }
    }
    if let Some(w) = writer.take() {
        w.commit().unwrap();
    }
    check(index, &pending, probes);
}

fn probes() -> impl Strategy<Value = Vec<(u64, usize)>> {
    let from = prop_oneof![0u64..25, Just(u64::MAX)];
    let count = prop_oneof![Just(0usize), 1usize..4, Just(usize::MAX)];
    proptest::collection::vec((from, count), 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn in_memory_index_agrees_with_the_model(
        ops in proptest::collection::vec(op(), 0..120),
        probes in probes(),
    ) {
        let index = Index::in_memory().unwrap();
        run(&index, &ops, &probes);
    }

    #[test]
    fn file_index_agrees_with_the_model_after_reopening(
        ops in proptest::collection::vec(op(), 0..60),
        probes in probes(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.redb");
        let index = Index::open(&path).unwrap();
        run(&index, &ops, &probes);
        // What the last check saw must be what a reopened index answers.
        let before: Vec<_> = (0..=STREAMS)
            .map(|s| index.stream_range(&stream(s), 0, true, usize::MAX).unwrap())
            .collect();
        let all_before = index.all_range(0, true, usize::MAX).unwrap();
        drop(index);
        let index = Index::open(&path).unwrap();
        let after: Vec<_> = (0..=STREAMS)
            .map(|s| index.stream_range(&stream(s), 0, true, usize::MAX).unwrap())
            .collect();
        prop_assert_eq!(before, after);
        prop_assert_eq!(all_before, index.all_range(0, true, usize::MAX).unwrap());
    }
}
