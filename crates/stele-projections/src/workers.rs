//! The threads that run projection handlers (`ProjectionThreads`, as EventStoreDB's
//! projection worker threads): each projection is placed on one of them and its handler
//! (which may hold a JavaScript runtime, not `Send`) is made, called and dropped there. An
//! async caller hands a job over a bounded queue and awaits the answer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::handler::Handler;

/// Jobs queued per worker thread, at most; a caller beyond it waits.
pub const WORKER_QUEUE_JOBS: usize = 64;

type Handlers = HashMap<u64, Box<dyn Handler>>;
type Job = Box<dyn FnOnce(&mut Handlers) + Send>;

/// The worker threads; cheap to clone. The threads end when the last clone and every
/// [`HandlerRef`] are dropped.
#[derive(Clone)]
pub(crate) struct Workers {
    queues: Arc<Vec<mpsc::Sender<Job>>>,
    next_thread: Arc<AtomicUsize>,
    next_key: Arc<AtomicU64>,
}

impl Workers {
    pub fn start(threads: usize) -> Workers {
        let mut queues = Vec::new();
        for i in 0..threads.max(1) {
            let (tx, mut rx) = mpsc::channel::<Job>(WORKER_QUEUE_JOBS);
            // A thread of its own: a JavaScript runtime is not `Send`, so a projection's
            // handler stays on one thread for its life. (The simulation runs no projections.)
            #[allow(clippy::disallowed_methods)]
            std::thread::Builder::new()
                .name(format!("projections-{i}"))
                .spawn(move || {
                    let mut handlers = Handlers::new();
                    while let Some(job) = rx.blocking_recv() {
                        // A job that panics loses its answer (its caller sees the handler
                        // gone), not the thread and the other projections on it.
                        let run = std::panic::AssertUnwindSafe(|| job(&mut handlers));
                        if std::panic::catch_unwind(run).is_err() {
                            tracing::error!("a projection handler panicked");
                        }
                    }
                })
                .expect("spawning a projection worker thread");
            queues.push(tx);
        }
        Workers {
            queues: Arc::new(queues),
            next_thread: Arc::new(AtomicUsize::new(0)),
            next_key: Arc::new(AtomicU64::new(1)),
        }
    }

    /// Makes a handler on the next thread (round robin).
    pub async fn create(
        &self,
        make: impl FnOnce() -> Result<Box<dyn Handler>, String> + Send + 'static,
    ) -> Result<HandlerRef, String> {
        let thread = self.next_thread.fetch_add(1, Ordering::Relaxed) % self.queues.len();
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let queue = self.queues[thread].clone();
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |handlers| {
            let made = make().map(|handler| {
                handlers.insert(key, handler);
            });
            let _ = tx.send(made);
        });
        queue
            .send(job)
            .await
            .map_err(|_| "the projection workers stopped".to_owned())?;
        rx.await
            .map_err(|_| "a projection worker failed".to_owned())??;
        Ok(HandlerRef {
            inner: Arc::new(RefInner { queue, key }),
        })
    }
}

/// A handler on its worker thread; dropping the last clone drops the handler.
#[derive(Clone)]
pub(crate) struct HandlerRef {
    inner: Arc<RefInner>,
}

struct RefInner {
    queue: mpsc::Sender<Job>,
    key: u64,
}

impl Drop for RefInner {
    fn drop(&mut self) {
        let key = self.key;
        let job: Job = Box::new(move |handlers| {
            handlers.remove(&key);
        });
        // A full queue: the job waits on a thread of its own (rare; a handler must not leak).
        if let Err(mpsc::error::TrySendError::Full(job)) = self.queue.try_send(job) {
            let queue = self.queue.clone();
            #[allow(clippy::disallowed_methods)] // a drop may run outside any runtime
            std::thread::spawn(move || {
                let _ = queue.blocking_send(job);
            });
        }
    }
}

impl HandlerRef {
    /// Runs `f` on the handler, on its thread.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Handler) -> R + Send + 'static,
    ) -> Result<R, String> {
        let key = self.inner.key;
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |handlers| {
            if let Some(handler) = handlers.get_mut(&key) {
                let _ = tx.send(f(handler.as_mut()));
            }
        });
        self.inner
            .queue
            .send(job)
            .await
            .map_err(|_| "the projection workers stopped".to_owned())?;
        rx.await
            .map_err(|_| "the projection's handler is gone (a worker failed)".to_owned())
    }
}
