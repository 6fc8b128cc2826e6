//! The state machine: applies committed entries to the index. This is where an append's
//! fate is decided (stele-core's pure decisions, over the index's state), identically on
//! every node. Snapshots are off (docs/design.md decision 2): the log is the data and the index is
//! rebuilt from it.
//!
//! After each batch is committed, the events it made visible are published on the live feed
//! (`live.rs`) for catch-up subscriptions; publishing never waits for subscribers.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::{FutureExt, Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, StoredMembership};
use stele_core::{
    decide_append, decide_delete, AppendDecision, Command, CommandResult, DeleteDecision,
    DeleteKind, LogPosition, RecordedEvent, StreamMetadata, StreamName, StreamRevision,
};
use stele_index::{Checkpoint, Index, IndexWriter};

use crate::live::LiveFeed;
use crate::log_store::LogShared;
use crate::types::{LogId, TypeConfig};

/// Entries applied in one index transaction at most.
const APPLY_BATCH_MAX_ENTRIES: usize = 1024;

/// What readers and status reports need to know about the applied state, without locks.
#[derive(Debug, Default)]
pub struct Applied {
    /// Log index of the last applied entry + 1 (0: none).
    pub next_index: AtomicU64,
    /// Position of the last event applied + 1 (0: none); what `$all`'s end is.
    pub event_end: AtomicU64,
    /// Bumped after each applied batch.
    pub notify: tokio::sync::Notify,
    /// The events of each applied batch, for live subscribers.
    pub live: LiveFeed,
}

/// What one batch makes visible, gathered while it is applied for the live feed.
struct Published {
    /// `None` when nobody is subscribed: the events are not copied.
    events: Option<Vec<RecordedEvent>>,
    tombstoned: Vec<StreamName>,
}

pub struct StateMachine {
    index: Arc<Index>,
    log: Arc<LogShared>,
    applied: Arc<Applied>,
    last_applied: Option<LogId>,
    membership: crate::types::StoredMembership,
}

type SmResult<T> = Result<T, io::Error>;

fn index_err(e: stele_index::IndexError) -> io::Error {
    io::Error::other(format!("index: {e}"))
}

impl StateMachine {
    pub fn open(index: Arc<Index>, log: Arc<LogShared>, applied: Arc<Applied>) -> SmResult<Self> {
        let checkpoint = index.checkpoint().map_err(index_err)?;
        let (last_applied, membership) = match checkpoint {
            None => (None, StoredMembership::default()),
            Some(cp) => {
                let log_id = LogId::new(
                    openraft::impls::leader_id_adv::LeaderId {
                        term: cp.applied_term,
                        node_id: cp.applied_leader_node,
                    },
                    cp.applied_log_index,
                );
                let membership = if cp.membership.is_empty() {
                    StoredMembership::default()
                } else {
                    serde_json::from_slice(&cp.membership).map_err(|e| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("index checkpoint membership: {e}"),
                        )
                    })?
                };
                (Some(log_id), membership)
            }
        };
        if let Some(id) = last_applied {
            applied.next_index.store(id.index + 1, Ordering::Release);
        }
        if let Some(last) = index.last_position().map_err(index_err)? {
            applied.event_end.store(last + 1, Ordering::Release);
        }
        Ok(StateMachine {
            index,
            log,
            applied,
            last_applied,
            membership,
        })
    }

    fn positions(&self, index: u64) -> SmResult<Vec<u64>> {
        let map = self.log.entries.read().expect("entry map lock");
        map.positions(index)
            .map(<[u64]>::to_vec)
            .ok_or_else(|| io::Error::other(format!("entry {index} has no records in the log")))
    }

    fn apply_command(
        &self,
        w: &mut IndexWriter<'_>,
        log_id: LogId,
        command: &Command,
        event_end: &mut u64,
        published: &mut Published,
    ) -> SmResult<CommandResult> {
        let positions = self.positions(log_id.index)?;
        match command {
            Command::Append {
                stream,
                expected,
                events,
            } => {
                let state = w.stream_state(stream).map_err(index_err)?;
                let (existing_first, all_follow) = match events.first() {
                    Some(first) => match w.event_revision(&first.id).map_err(index_err)? {
                        Some((s, rev)) if &s == stream => {
                            let mut all = true;
                            for (i, e) in events.iter().enumerate().skip(1) {
                                let found = w.event_revision(&e.id).map_err(index_err)?;
                                if found != Some((stream.clone(), rev + i as u64)) {
                                    all = false;
                                    break;
                                }
                            }
                            (Some(rev), all)
                        }
                        _ => (None, false),
                    },
                    None => (None, false),
                };
                match decide_append(&state, *expected, events.len(), existing_first, all_follow) {
                    AppendDecision::Write { first_revision } => {
                        if events.is_empty() {
                            return Ok(CommandResult::AppendedNothing {
                                current: state.last_revision.map(StreamRevision),
                            });
                        }
                        for (i, event) in events.iter().enumerate() {
                            let revision = first_revision + i as u64;
                            w.put_event(stream, revision, positions[i], &event.id)
                                .map_err(index_err)?;
                            if let Some(events) = &mut published.events {
                                events.push(RecordedEvent {
                                    record: event.clone(),
                                    revision: StreamRevision(revision),
                                    position: LogPosition(positions[i]),
                                });
                            }
                            if event.event_type == stele_core::metadata::METADATA_EVENT_TYPE {
                                if let Some(target) = stream.metadata_of() {
                                    w.put_stream_metadata(
                                        &target,
                                        &StreamMetadata::from_json(&event.data),
                                    )
                                    .map_err(index_err)?;
                                }
                            }
                        }
                        let last_revision = first_revision + events.len() as u64 - 1;
                        let mut new_state = state;
                        new_state.last_revision = Some(last_revision);
                        w.put_stream_state(stream, &new_state).map_err(index_err)?;
                        let last_position = positions[events.len() - 1];
                        *event_end = (*event_end).max(last_position + 1);
                        Ok(CommandResult::Appended {
                            first_revision: StreamRevision(first_revision),
                            last_revision: StreamRevision(last_revision),
                            first_position: LogPosition(positions[0]),
                            last_position: LogPosition(last_position),
                        })
                    }
                    AppendDecision::AlreadyWritten {
                        first_revision,
                        last_revision,
                    } => {
                        // Read through the writer: the original append may be in this very
                        // batch (a replay after a crash applies both together), and the
                        // replay must decide exactly as the first apply did.
                        let found = |rev: u64, id: &uuid::Uuid| -> SmResult<u64> {
                            #[cfg(feature = "injected-bugs")]
                            if crate::bugs::active(crate::bugs::Bug::RetryReadsCommittedIndex) {
                                return self
                                    .index
                                    .stream_range(stream, rev, true, 1)
                                    .map_err(index_err)?
                                    .first()
                                    .map(|&(_, p)| p)
                                    .ok_or_else(|| {
                                        io::Error::other(format!(
                                            "index lost revision {rev} of {stream} in a retry"
                                        ))
                                    });
                            }
                            w.event_position(stream, rev, id)
                                .map_err(index_err)?
                                .ok_or_else(|| {
                                    io::Error::other(format!(
                                        "index lost revision {rev} of {stream} in a retry"
                                    ))
                                })
                        };
                        let first_id = &events[0].id;
                        let last_id = &events[events.len() - 1].id;
                        Ok(CommandResult::Appended {
                            first_revision: StreamRevision(first_revision),
                            last_revision: StreamRevision(last_revision),
                            first_position: LogPosition(found(first_revision, first_id)?),
                            last_position: LogPosition(found(last_revision, last_id)?),
                        })
                    }
                    AppendDecision::WrongExpectedVersion { current } => {
                        Ok(CommandResult::WrongExpectedVersion {
                            current,
                            expected: *expected,
                        })
                    }
                    AppendDecision::StreamDeleted => Ok(CommandResult::StreamDeleted),
                }
            }
            Command::Delete {
                stream,
                expected,
                kind,
                ..
            } => {
                let state = w.stream_state(stream).map_err(index_err)?;
                match decide_delete(&state, *expected) {
                    DeleteDecision::Delete => {
                        let mut new_state = state.clone();
                        match kind {
                            DeleteKind::Soft => {
                                new_state.deleted_before = Some(state.next_revision())
                            }
                            DeleteKind::Hard => {
                                new_state.tombstoned = true;
                                published.tombstoned.push(stream.clone());
                            }
                        }
                        w.put_stream_state(stream, &new_state).map_err(index_err)?;
                        Ok(CommandResult::Deleted {
                            position: LogPosition(positions[0]),
                        })
                    }
                    DeleteDecision::WrongExpectedVersion { current } => {
                        Ok(CommandResult::WrongExpectedVersion {
                            current,
                            expected: *expected,
                        })
                    }
                    DeleteDecision::StreamDeleted => Ok(CommandResult::StreamDeleted),
                }
            }
        }
    }

    fn apply_batch(&mut self, batch: Vec<EntryResponder<TypeConfig>>) -> SmResult<()> {
        let mut responses = Vec::with_capacity(batch.len());
        let mut w = self.index.begin().map_err(index_err)?;
        let event_end_before = self.applied.event_end.load(Ordering::Acquire);
        let mut event_end = event_end_before;
        let mut published = Published {
            events: self.applied.live.has_subscribers().then(Vec::new),
            tombstoned: Vec::new(),
        };
        for (entry, responder) in batch {
            let log_id = entry.log_id;
            let result = match &entry.payload {
                EntryPayload::Blank => CommandResult::Nothing,
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(log_id), m.clone());
                    CommandResult::Nothing
                }
                EntryPayload::Normal(command) => {
                    self.apply_command(&mut w, log_id, command, &mut event_end, &mut published)?
                }
            };
            self.last_applied = Some(log_id);
            responses.push((responder, result));
        }
        let last = self.last_applied.expect("a batch has entries");
        let last_position = self
            .positions(last.index)?
            .last()
            .copied()
            .expect("every entry has a record");
        w.set_checkpoint(&Checkpoint {
            applied_log_index: last.index,
            applied_term: last.leader_id.term,
            applied_leader_node: last.leader_id.node_id,
            log_position: last_position,
            membership: serde_json::to_vec(&self.membership).map_err(io::Error::other)?,
        })
        .map_err(index_err)?;
        w.commit().map_err(index_err)?;
        self.applied
            .next_index
            .store(last.index + 1, Ordering::Release);
        self.applied.event_end.store(event_end, Ordering::Release);
        self.applied.notify.notify_waiters();
        // After the commit and the new end: a subscriber that reads the index after
        // subscribing sees every event of a batch it does not receive.
        self.applied.live.publish(
            event_end_before,
            event_end,
            published.events,
            published.tombstoned,
        );
        for (responder, result) in responses {
            if let Some(responder) = responder {
                responder.send(result);
            }
        }
        Ok(())
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = ();
    type SnapshotBuilder = NoSnapshots;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, crate::types::StoredMembership), io::Error> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + Send,
    {
        while let Some(first) = entries.next().await {
            let mut batch = vec![first?];
            while batch.len() < APPLY_BATCH_MAX_ENTRIES {
                match entries.next().now_or_never() {
                    Some(Some(item)) => batch.push(item?),
                    _ => break,
                }
            }
            // Applying is synchronous index work (a memtable commit, at times a flush): keep it from stalling the
            // async worker it runs on, which also serves client connections.
            if tokio::runtime::Handle::current().runtime_flavor()
                == tokio::runtime::RuntimeFlavor::MultiThread
            {
                tokio::task::block_in_place(|| self.apply_batch(batch))?;
            } else {
                self.apply_batch(batch)?;
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        NoSnapshots
    }

    async fn install_snapshot(
        &mut self,
        _meta: &openraft::type_config::alias::SnapshotMetaOf<TypeConfig>,
        _snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        Err(io::Error::other(
            "snapshots are off: nodes catch up by streaming the log",
        ))
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<openraft::type_config::alias::SnapshotOf<TypeConfig, ()>>, io::Error> {
        Ok(None)
    }
}

/// Snapshots are off (`SnapshotPolicy::Never`); openraft still wants a builder type.
pub struct NoSnapshots;

impl RaftSnapshotBuilder<TypeConfig> for NoSnapshots {
    type SnapshotData = ();

    async fn build_snapshot(
        &mut self,
    ) -> Result<openraft::type_config::alias::SnapshotOf<TypeConfig, ()>, io::Error> {
        Err(io::Error::other("snapshots are off"))
    }
}
