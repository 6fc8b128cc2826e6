//! The state machine: applies committed entries to the index, a batch per index
//! transaction. What each command does is `apply.rs` (stele-core's pure decisions over the
//! index's state, identically on every node); this file owns the batch, the checkpoint and
//! publishing. Snapshots are off (docs/design.md decision 2): the log is the data and the
//! index is rebuilt from it.
//!
//! After each batch is committed, the events it made visible are published on the live feed
//! (`live.rs`) for catch-up subscriptions; publishing never waits for subscribers.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::{FutureExt, Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, StoredMembership};
use stele_core::CommandResult;
use stele_index::{Checkpoint, Index};

use crate::live::LiveFeed;
use crate::log_store::LogShared;
use crate::stream_versions::StreamVersions;
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
    /// Changes to metadata and system streams, for readers that cache what they read.
    pub stream_versions: crate::stream_versions::StreamVersions,
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

    fn apply_batch(&mut self, batch: Vec<EntryResponder<TypeConfig>>) -> SmResult<()> {
        let mut responses = Vec::with_capacity(batch.len());
        let mut w = self.index.begin().map_err(index_err)?;
        let event_end_before = self.applied.event_end.load(Ordering::Acquire);
        let mut event_end = event_end_before;
        let mut changed = Vec::new();
        let mut published = crate::apply::Published {
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
                    changed.extend(StreamVersions::counted(command));
                    let positions = self.positions(log_id.index)?;
                    crate::apply::Apply {
                        w: &mut w,
                        event_end: &mut event_end,
                        published: &mut published,
                        committed: &self.index,
                    }
                    .command(command, &positions)?
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
        // Readable now, and before any writer hears of it.
        self.applied.stream_versions.bump(&changed);
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
