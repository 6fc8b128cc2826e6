//! Blocking work (reads that touch the disk) kept off the async workers: on tokio's blocking
//! pool in production; inline in a task on a current-thread runtime — the deterministic
//! simulation's — where a thread of the blocking pool would run outside the simulated
//! scheduler and make runs irreproducible.

/// Runs `f` on the blocking pool, or in a task of a current-thread runtime.
#[allow(
    clippy::disallowed_methods,
    reason = "the injected environment: the blocking pool outside the simulation"
)]
pub fn spawn<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    if tokio::runtime::Handle::current().runtime_flavor()
        == tokio::runtime::RuntimeFlavor::CurrentThread
    {
        tokio::spawn(async move { f() })
    } else {
        tokio::task::spawn_blocking(f)
    }
}
