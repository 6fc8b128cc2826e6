//! Who makes the log's appends durable for the log store: `stele-log`'s [`GroupCommitter`]
//! (a writer thread; production), or a [`TaskCommitter`] — the same ordering and batching
//! done by a tokio task, for the deterministic simulation, where no thread may run outside
//! the simulated scheduler. Both share one fsync among every request waiting, run the
//! callbacks only after it, and order truncations after the syncs queued before them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stele_log::{GroupCommitter, Log, LogError, SyncDone, TruncateDone, CHECKPOINT_IDLE};
use tokio::sync::Notify;

/// How the log store's appends become durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitMode {
    /// A writer thread (`stele_log::GroupCommitter`).
    #[default]
    Thread,
    /// A tokio task on the node's runtime; each batch's fsync is preceded by a sleep of
    /// `fsync_latency` (on the simulated clock, so a crash can fall between a write and
    /// its fsync).
    Task { fsync_latency: Duration },
}

pub(crate) enum Committer {
    Thread(GroupCommitter),
    Task(TaskCommitter),
}

/// Sync requests waiting for the log writer thread (bounded: DESIGN.md decision 12; a full
/// queue makes openraft wait).
const SYNC_QUEUE_CAPACITY: usize = 4096;

impl Committer {
    pub(crate) fn start(log: Arc<Log>, mode: CommitMode) -> Committer {
        match mode {
            CommitMode::Thread => {
                Committer::Thread(GroupCommitter::start(log, SYNC_QUEUE_CAPACITY))
            }
            CommitMode::Task { fsync_latency } => {
                Committer::Task(TaskCommitter::start(log, fsync_latency))
            }
        }
    }

    pub(crate) fn sync(&self, done: SyncDone) {
        match self {
            Committer::Thread(c) => c.sync(done),
            Committer::Task(c) => c.push(Op::Sync(done)),
        }
    }

    pub(crate) fn truncate(&self, position: u64, done: TruncateDone) {
        match self {
            Committer::Thread(c) => c.truncate(position, done),
            Committer::Task(c) => c.push(Op::Truncate(position, done)),
        }
    }
}

enum Op {
    Sync(SyncDone),
    Truncate(u64, TruncateDone),
}

struct Queue {
    ops: Mutex<VecDeque<Op>>,
    wake: Notify,
}

/// The group committer as a tokio task.
pub(crate) struct TaskCommitter {
    queue: Arc<Queue>,
    task: tokio::task::JoinHandle<()>,
}

impl TaskCommitter {
    fn start(log: Arc<Log>, fsync_latency: Duration) -> TaskCommitter {
        let queue = Arc::new(Queue {
            ops: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
        });
        let task = tokio::spawn(run(log, queue.clone(), fsync_latency));
        TaskCommitter { queue, task }
    }

    fn push(&self, op: Op) {
        self.queue
            .ops
            .lock()
            .expect("commit queue lock")
            .push_back(op);
        self.queue.wake.notify_one();
    }
}

impl Drop for TaskCommitter {
    fn drop(&mut self) {
        self.task.abort();
        // Whoever still waits learns that nothing more will become durable.
        for op in self.queue.ops.lock().expect("commit queue lock").drain(..) {
            match op {
                Op::Sync(done) => done(Err(LogError::Stopped)),
                Op::Truncate(_, done) => done(Err(LogError::Stopped)),
            }
        }
    }
}

async fn run(log: Arc<Log>, queue: Arc<Queue>, fsync_latency: Duration) {
    loop {
        let lags = !log.is_poisoned() && log.checkpoint() < log.durable_end();
        if lags {
            // As the thread does: bring the header checkpoint up once the queue is idle.
            if tokio::time::timeout(CHECKPOINT_IDLE, queue.wake.notified())
                .await
                .is_err()
            {
                if let Err(error) = log.sync() {
                    tracing::error!(%error, "checkpoint catch-up sync failed");
                }
                continue;
            }
        } else {
            queue.wake.notified().await;
        }
        #[cfg(feature = "injected-bugs")]
        if crate::bugs::active(crate::bugs::Bug::FlushCallbackEarly) {
            // Injected bug: the callbacks fire when the fsync starts, not when it is done (a
            // crash during the fsync loses acknowledged entries).
            let mut ops = queue.ops.lock().expect("commit queue lock");
            let batch: Vec<Op> = ops.drain(..).collect();
            for op in batch {
                match op {
                    Op::Sync(done) => done(Ok(())),
                    truncate => ops.push_back(truncate),
                }
            }
            ops.push_back(Op::Sync(Box::new(|_| ())));
        }
        if !fsync_latency.is_zero() {
            tokio::time::sleep(fsync_latency).await;
        }
        let batch: Vec<Op> = queue
            .ops
            .lock()
            .expect("commit queue lock")
            .drain(..)
            .collect();
        let mut waiting: Vec<SyncDone> = Vec::new();
        for op in batch {
            match op {
                Op::Sync(done) => waiting.push(done),
                Op::Truncate(position, done) => {
                    commit(&log, &mut waiting);
                    done(log.truncate(position));
                }
            }
        }
        commit(&log, &mut waiting);
    }
}

/// One fsync for every waiting request, then their callbacks in order.
fn commit(log: &Log, waiting: &mut Vec<SyncDone>) {
    if waiting.is_empty() {
        return;
    }
    #[cfg(feature = "injected-bugs")]
    if crate::bugs::active(crate::bugs::Bug::AckBeforeFsync) {
        // Injected bug: acknowledge without syncing at all (the checkpoint catch-up syncs
        // later, when the queue is idle).
        for done in waiting.drain(..) {
            done(Ok(()));
        }
        return;
    }
    let synced = log.sync().map(|_| ());
    for done in waiting.drain(..) {
        done(match &synced {
            Ok(()) => Ok(()),
            Err(error) => Err(error.duplicate()),
        });
    }
}
