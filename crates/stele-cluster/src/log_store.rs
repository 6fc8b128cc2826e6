//! openraft's log storage over the chunk log: entries are written as records (see
//! `record.rs`) before `append` returns, and the log's group committer makes them durable:
//! one fsync covers every append waiting for it (docs/design.md decision 4), and the flush
//! callback fires only after that fsync.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, RwLock};

use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use stele_log::Log;

use crate::committer::{CommitMode, Committer};

use crate::entry_map::EntryMap;
use crate::record::{decode_entry, decode_record, encode_entry};
use crate::types::{Entry, LogId, TypeConfig, Vote};
use crate::vote_store::VoteStore;

/// State shared by the log store, its readers and the state machine.
pub struct LogShared {
    pub log: Arc<Log>,
    pub entries: RwLock<EntryMap>,
    vote: Mutex<VoteStore>,
    /// Entries this node has told openraft are durable (the count from the start of the
    /// log): what a crash must never take away. Lowered only by truncations.
    pub acknowledged: std::sync::atomic::AtomicU64,
}

impl LogShared {
    pub fn new(log: Arc<Log>, entries: EntryMap, vote: VoteStore) -> Arc<LogShared> {
        Arc::new(LogShared {
            log,
            acknowledged: std::sync::atomic::AtomicU64::new(entries.len()),
            entries: RwLock::new(entries),
            vote: Mutex::new(vote),
        })
    }

    fn read_entries(&self, start: u64, end: u64) -> io::Result<Vec<Entry>> {
        let positions: Vec<Vec<u64>> = {
            let map = self.entries.read().expect("entry map lock");
            (start..end.min(map.len()))
                .map(|i| map.positions(i).expect("index below len").to_vec())
                .collect()
        };
        positions
            .into_iter()
            .map(|positions| {
                let records = positions
                    .iter()
                    .map(|&p| {
                        let (payload, _) = self.log.read(p).map_err(io::Error::other)?;
                        decode_record(&payload).map_err(|e| {
                            io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!("record at log position {p}: {e}"),
                            )
                        })
                    })
                    .collect::<io::Result<Vec<_>>>()?;
                decode_entry(&records).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
            })
            .collect()
    }
}

/// The storage handle openraft owns.
pub struct LogStore {
    shared: Arc<LogShared>,
    committer: Committer,
}

impl LogStore {
    pub fn new(shared: Arc<LogShared>, mode: CommitMode) -> LogStore {
        let committer = Committer::start(shared.log.clone(), mode);
        LogStore { shared, committer }
    }
}

fn range_to_indexes<RB: RangeBounds<u64>>(range: &RB) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s + 1,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e + 1,
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

/// A reader for replication tasks and the state machine worker.
#[derive(Clone)]
pub struct LogReader {
    shared: Arc<LogShared>,
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (start, end) = range_to_indexes(&range);
        let shared = self.shared.clone();
        crate::blocking::spawn(move || shared.read_entries(start, end))
            .await
            .map_err(io::Error::other)?
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.shared.vote.lock().expect("vote lock").read()
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (start, end) = range_to_indexes(&range);
        self.shared.read_entries(start, end)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.shared.vote.lock().expect("vote lock").read()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last = self
            .shared
            .entries
            .read()
            .expect("entry map lock")
            .last_log_id();
        Ok(LogState {
            last_purged_log_id: None,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader {
            shared: self.shared.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.shared.vote.lock().expect("vote lock").save(vote)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut payloads: Vec<Vec<u8>> = Vec::new();
        let mut shape: Vec<(LogId, usize)> = Vec::new();
        for entry in entries {
            let records = encode_entry(&entry);
            shape.push((entry.log_id, records.len()));
            payloads.extend(records);
        }
        let mut count = None;
        if !payloads.is_empty() {
            let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            // Written (not yet durable) before returning, so readers see the entries at once,
            // as openraft requires; the flusher makes them durable.
            let positions = self.shared.log.append(&refs).map_err(io::Error::other)?;
            let mut map = self.shared.entries.write().expect("entry map lock");
            let mut next = 0;
            for (log_id, count) in shape {
                map.push(log_id, &positions[next..next + count]);
                next += count;
            }
            count = Some(map.len());
        }
        let shared = self.shared.clone();
        // Group commit: every sync request waiting shares one fsync, and the callback runs
        // only after it. A failed fsync is never retried: the log is poisoned.
        self.committer.sync(Box::new(move |result| {
            match (&result, count) {
                (Err(e), _) => {
                    tracing::error!(error = %e, "log flush failed; the node stops accepting writes")
                }
                (Ok(()), Some(count)) => {
                    shared
                        .acknowledged
                        .fetch_max(count, std::sync::atomic::Ordering::AcqRel);
                }
                (Ok(()), None) => {}
            }
            callback.io_completed(result.map_err(|e| io::Error::other(e.to_string())));
        }));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |id| id.index + 1);
        let position = self
            .shared
            .entries
            .write()
            .expect("entry map lock")
            .truncate_from(from);
        self.shared
            .acknowledged
            .fetch_min(from, std::sync::atomic::Ordering::AcqRel);
        if let Some(position) = position {
            tracing::info!(
                from_index = from,
                position,
                "truncating the uncommitted log tail"
            );
            // Through the committer, so the truncation is ordered after the syncs already
            // queued; it is durable when `done` runs.
            let (tx, rx) = tokio::sync::oneshot::channel();
            self.committer.truncate(
                position,
                Box::new(move |result| {
                    let _ = tx.send(result);
                }),
            );
            rx.await
                .map_err(|_| io::Error::other("the log writer thread stopped"))?
                .map_err(io::Error::other)?;
            // Syncs queued before the truncation may have raised it meanwhile.
            self.shared
                .acknowledged
                .fetch_min(from, std::sync::atomic::Ordering::AcqRel);
        }
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        // The log is the data (docs/design.md decision 2): nothing is ever purged. openraft only
        // purges after a snapshot, and snapshots are off.
        tracing::debug!(%log_id, "ignoring a purge request: the log is never purged");
        Ok(())
    }
}
