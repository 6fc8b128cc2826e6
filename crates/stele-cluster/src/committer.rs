//! Who makes the log's appends durable for the log store: `stele-log`'s [`GroupCommitter`]
//! (a writer thread; production), or a [`TaskCommitter`] — the same ordering and batching
//! done by a tokio task, for the deterministic simulation, where no thread may run outside
//! the simulated scheduler. Both run `stele-log`'s batch step, so both share one fsync among
//! every request waiting, run the callbacks only after it, and order truncations after the
//! syncs queued before them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stele_log::{
    catch_up_checkpoint, checkpoint_lags, perform_batch, CommitOp, GroupCommitter, Log, LogError,
    SyncDone, TruncateDone, CHECKPOINT_IDLE,
};
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

/// Sync requests waiting for the log writer thread (bounded: docs/design.md decision 12; a full
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
            Committer::Task(c) => c.push(CommitOp::Sync(done)),
        }
    }

    pub(crate) fn truncate(&self, position: u64, done: TruncateDone) {
        match self {
            Committer::Thread(c) => c.truncate(position, done),
            Committer::Task(c) => c.push(CommitOp::Truncate(position, done)),
        }
    }
}

struct Queue {
    ops: Mutex<VecDeque<CommitOp>>,
    wake: Notify,
}

/// The group committer as a tokio task: its own queue and wake-ups, `stele-log`'s batch step
/// (`perform_batch`, `catch_up_checkpoint`), so both committers order, batch and answer the
/// same way.
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

    fn push(&self, op: CommitOp) {
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
                CommitOp::Append(_, done) => done(Err(LogError::Stopped)),
                CommitOp::Sync(done) => done(Err(LogError::Stopped)),
                CommitOp::Truncate(_, done) => done(Err(LogError::Stopped)),
            }
        }
    }
}

async fn run(log: Arc<Log>, queue: Arc<Queue>, fsync_latency: Duration) {
    loop {
        if checkpoint_lags(&log) {
            // As the thread does: bring the header checkpoint up once the queue is idle.
            if tokio::time::timeout(CHECKPOINT_IDLE, queue.wake.notified())
                .await
                .is_err()
            {
                catch_up_checkpoint(&log);
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
            let batch: Vec<CommitOp> = ops.drain(..).collect();
            for op in batch {
                match op {
                    CommitOp::Sync(done) => done(Ok(())),
                    other => ops.push_back(other),
                }
            }
            ops.push_back(CommitOp::Sync(Box::new(|_| ())));
        }
        if !fsync_latency.is_zero() {
            tokio::time::sleep(fsync_latency).await;
        }
        let batch: Vec<CommitOp> = queue
            .ops
            .lock()
            .expect("commit queue lock")
            .drain(..)
            .collect();
        #[cfg(feature = "injected-bugs")]
        if crate::bugs::active(crate::bugs::Bug::AckBeforeFsync) {
            // Injected bug: acknowledge without syncing at all (the checkpoint catch-up syncs
            // later, when the queue is idle).
            for op in batch {
                match op {
                    CommitOp::Sync(done) => done(Ok(())),
                    CommitOp::Truncate(position, done) => done(log.truncate(position)),
                    CommitOp::Append(payloads, done) => {
                        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
                        done(log.append(&refs));
                    }
                }
            }
            continue;
        }
        perform_batch(&log, batch);
    }
}
