//! [`GroupCommitter`]: a writer thread that turns many concurrent appends into few fsyncs. It
//! takes one operation from a bounded queue, drains what else is queued, performs them in order,
//! syncs once, and only then runs the callbacks. It owns ordering and batching; the log does the
//! I/O. The batch step itself ([`perform_batch`], [`catch_up_checkpoint`]) is public so that
//! another scheduler (the simulation's tokio task in `stele-cluster`) runs the very same one.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::LogError;
use crate::log::Log;

/// How long the queue must stay empty before the header checkpoint is brought up to the
/// durable end with an extra sync. Immediately would double the fsyncs of a lone writer that
/// waits for each append; this delay keeps steady traffic at one fsync per batch.
pub const CHECKPOINT_IDLE: Duration = Duration::from_millis(10);

/// Called with the positions once the records are durable, or with the error.
pub type AppendDone = Box<dyn FnOnce(Result<Vec<u64>, LogError>) + Send>;
/// Called once the truncation is durable, or with the error.
pub type TruncateDone = Box<dyn FnOnce(Result<(), LogError>) + Send>;
/// Called once everything appended before the request is durable, or with the error.
pub type SyncDone = Box<dyn FnOnce(Result<(), LogError>) + Send>;

/// One queued operation of a group commit.
pub enum CommitOp {
    /// Append these records; `done` gets their positions once durable.
    Append(Vec<Vec<u8>>, AppendDone),
    /// Truncate at this position, in order with the operations around it.
    Truncate(u64, TruncateDone),
    /// Make everything appended so far durable (records the caller wrote with
    /// [`Log::append`] included).
    Sync(SyncDone),
}

/// Owns the writer thread over a shared [`Log`]. Dropping it stops the thread after the queued
/// operations are done, like [`GroupCommitter::stop`].
pub struct GroupCommitter {
    sender: Option<SyncSender<CommitOp>>,
    thread: Option<JoinHandle<()>>,
}

impl GroupCommitter {
    /// Starts the writer thread. `queue_capacity` bounds the operations waiting (at least 1);
    /// a full queue blocks the caller of `append`/`truncate` (back-pressure).
    pub fn start(log: Arc<Log>, queue_capacity: usize) -> GroupCommitter {
        let capacity = queue_capacity.max(1);
        let (sender, receiver) = mpsc::sync_channel(capacity);
        #[allow(
            clippy::disallowed_methods,
            reason = "the production writer thread; the simulation commits in a task (CommitMode)"
        )]
        let thread = std::thread::Builder::new()
            .name("stele-log-writer".into())
            .spawn(move || run(&log, &receiver, capacity))
            .expect("spawning the log writer thread");
        GroupCommitter {
            sender: Some(sender),
            thread: Some(thread),
        }
    }

    /// Queues records for appending. `done` runs on the writer thread after they are durable
    /// (after the fsync that covers them), never before. It must be quick, must not block on
    /// this committer, and must not panic (a panic ends the writer thread; later operations then
    /// fail with `Stopped`).
    pub fn append(&self, payloads: Vec<Vec<u8>>, done: AppendDone) {
        if let Err(mpsc::SendError(CommitOp::Append(_, done))) =
            self.send(CommitOp::Append(payloads, done))
        {
            done(Err(LogError::Stopped));
        }
    }

    /// Queues a truncation, performed in order with the appends around it. `done` runs once it
    /// is durable.
    pub fn truncate(&self, position: u64, done: TruncateDone) {
        if let Err(mpsc::SendError(CommitOp::Truncate(_, done))) =
            self.send(CommitOp::Truncate(position, done))
        {
            done(Err(LogError::Stopped));
        }
    }

    /// Queues a request to make durable every record appended so far, including records the
    /// caller wrote itself with [`Log::append`] (a caller that must read its records back at
    /// once, like openraft's log storage, writes them directly and asks only for the sync
    /// here). Concurrent requests share one fsync. `done` runs after that fsync.
    pub fn sync(&self, done: SyncDone) {
        if let Err(mpsc::SendError(CommitOp::Sync(done))) = self.send(CommitOp::Sync(done)) {
            done(Err(LogError::Stopped));
        }
    }

    fn send(&self, op: CommitOp) -> Result<(), mpsc::SendError<CommitOp>> {
        match &self.sender {
            Some(sender) => sender.send(op),
            None => Err(mpsc::SendError(op)),
        }
    }

    /// Finishes the queued operations and stops the thread.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        // Closing the channel lets the thread finish what is queued and exit.
        self.sender.take();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the log writer thread panicked");
            }
        }
    }
}

impl Drop for GroupCommitter {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Appends written but not yet covered by a sync, with their callbacks.
type Pending = Vec<(AppendDone, Result<Vec<u64>, LogError>)>;

fn run(log: &Log, receiver: &Receiver<CommitOp>, batch_ops_max: usize) {
    loop {
        let first = if checkpoint_lags(log) {
            match receiver.recv_timeout(CHECKPOINT_IDLE) {
                Ok(op) => op,
                Err(RecvTimeoutError::Timeout) => {
                    catch_up_checkpoint(log);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match receiver.recv() {
                Ok(op) => op,
                Err(_) => break,
            }
        };
        let mut batch = vec![first];
        while batch.len() < batch_ops_max {
            match receiver.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        perform_batch(log, batch);
    }
    catch_up_checkpoint(log);
}

/// Performs `batch` in order: appends are written, a truncation first makes what came before
/// it durable (and answers it), and one sync at the end covers the rest; every callback runs
/// only after the sync that covers its operation, with that sync's error if it failed.
pub fn perform_batch(log: &Log, batch: Vec<CommitOp>) {
    let mut pending: Pending = Vec::new();
    for op in batch {
        match op {
            CommitOp::Append(payloads, done) => {
                let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
                pending.push((done, log.append(&refs)));
            }
            CommitOp::Sync(done) => {
                // An empty "append" that succeeded: the batch's one sync covers it.
                let done: AppendDone = Box::new(move |result| done(result.map(|_| ())));
                pending.push((done, Ok(Vec::new())));
            }
            CommitOp::Truncate(position, done) => {
                // What came before the truncation is made durable (and acknowledged) first.
                commit(log, &mut pending);
                done(log.truncate(position));
            }
        }
    }
    commit(log, &mut pending);
}

/// One sync for every pending append, then their callbacks in order.
fn commit(log: &Log, pending: &mut Pending) {
    if pending.is_empty() {
        return;
    }
    let synced = if pending.iter().any(|(_, result)| result.is_ok()) {
        log.sync().map(|_| ())
    } else {
        Ok(())
    };
    for (done, result) in pending.drain(..) {
        match (&synced, result) {
            (Ok(()), result) => done(result),
            (Err(error), Ok(_)) => done(Err(error.duplicate())),
            (Err(_), Err(error)) => done(Err(error)),
        }
    }
}

/// Whether the header checkpoint trails the durable end (and the log still works): then an
/// idle queue should [`catch_up_checkpoint`].
pub fn checkpoint_lags(log: &Log) -> bool {
    !log.is_poisoned() && log.checkpoint() < log.durable_end()
}

/// When the queue is idle and the header checkpoint trails the durable end, one more header
/// write and sync lets it catch up, so a restart verifies as much as possible strictly.
pub fn catch_up_checkpoint(log: &Log) {
    if !checkpoint_lags(log) {
        return;
    }
    if let Err(error) = log.sync() {
        tracing::error!(%error, "checkpoint catch-up sync failed");
    }
}
