//! The node's sources of randomness and wall-clock time, in one place so that the
//! deterministic simulation (`crates/stele-sim`) can replace them for the thread it runs on.
//!
//! In production nothing is overridden: randomness comes from the OS-seeded generator and time
//! from the system clock. A simulation calls [`simulate_this_thread`] before starting nodes on
//! its single-threaded runtime; from then on every draw on that thread comes from one seeded
//! generator (election timeouts, node and cluster ids) and the wall clock follows the
//! runtime's (paused, simulated) clock, so a run depends on nothing but its seed.

use std::cell::RefCell;
use std::time::{Duration, SystemTime};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

struct Simulated {
    rng: SmallRng,
    /// The simulated wall clock: this Unix time at this runtime instant.
    epoch: Duration,
    start: tokio::time::Instant,
}

thread_local! {
    static SIMULATED: RefCell<Option<Simulated>> = const { RefCell::new(None) };
}

/// Makes every random draw and wall-clock reading on this thread deterministic: drawn from a
/// generator seeded with `seed`, and `unix_epoch` plus the time elapsed on the tokio clock.
/// Call it inside the (current-thread, paused-clock) runtime of the simulation.
pub fn simulate_this_thread(seed: u64, unix_epoch: Duration) {
    SIMULATED.with(|s| {
        *s.borrow_mut() = Some(Simulated {
            rng: SmallRng::seed_from_u64(seed),
            epoch: unix_epoch,
            start: tokio::time::Instant::now(),
        })
    });
}

/// Ends [`simulate_this_thread`].
pub fn stop_simulating_this_thread() {
    SIMULATED.with(|s| *s.borrow_mut() = None);
}

/// A random u64: seeded under simulation, else from the OS-seeded thread generator.
#[allow(
    clippy::disallowed_methods,
    reason = "the injected environment: the OS generator outside the simulation"
)]
pub fn next_u64() -> u64 {
    SIMULATED.with(|s| match s.borrow_mut().as_mut() {
        Some(sim) => sim.rng.next_u64(),
        None => rand::rng().next_u64(),
    })
}

/// A random (version 4) UUID.
pub fn new_uuid() -> Uuid {
    let bytes = (u128::from(next_u64()) << 64 | u128::from(next_u64())).to_le_bytes();
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// Time since the Unix epoch: the system clock, or the simulated one.
#[allow(
    clippy::disallowed_methods,
    reason = "the injected environment: the system clock outside the simulation"
)]
pub fn unix_now() -> Duration {
    SIMULATED.with(|s| match s.borrow().as_ref() {
        Some(sim) => sim.epoch + sim.start.elapsed(),
        None => SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    })
}

/// [`unix_now`] as a [`SystemTime`].
pub fn system_now() -> SystemTime {
    SystemTime::UNIX_EPOCH + unix_now()
}

/// The generator openraft gets from [`crate::rt::SteleRuntime::thread_rng`].
pub(crate) fn small_rng() -> SmallRng {
    SmallRng::seed_from_u64(next_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_seed_fixes_every_draw_and_the_clock_follows_tokio() {
        let draw = || (next_u64(), new_uuid(), unix_now());
        simulate_this_thread(7, Duration::from_secs(1_000));
        let first = draw();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let later = unix_now();
        simulate_this_thread(7, Duration::from_secs(1_000));
        assert_eq!(draw(), first);
        assert_eq!(later, Duration::from_secs(1_005));
        stop_simulating_this_thread();
        assert_ne!(next_u64(), next_u64());
        assert!(unix_now() > Duration::from_secs(1_700_000_000));
    }
}
