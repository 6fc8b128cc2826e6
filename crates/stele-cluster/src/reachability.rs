//! Whether a peer answers, and how long to wait before dialing it again (issue 11, item 2).
//!
//! A peer that is down (stopped for maintenance, killed, or back under a new identity that
//! refuses the old one's handshake) is dialed again only after a capped exponential backoff:
//! [`BACKOFF_FIRST`] after the first failure, doubling up to [`BACKOFF_MAX`]. The same series
//! is what the raft network gives openraft as its replication backoff. A peer going down is
//! logged once (WARN), and coming back once (INFO) with the number of failed attempts that
//! were not logged in between; every attempt is at debug level.
//!
//! [`RateLimitedWarn`] is the same idea for the listening side: a refused or surplus
//! connection is logged at most once per [`WARN_INTERVAL`], with the count suppressed.

use std::sync::Mutex;
use std::time::Duration;

// tokio's clock: the real one in production, the simulated one under simulation.
use tokio::time::Instant;

/// The wait before the second attempt after a failure.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(50);
/// The longest wait between two attempts to reach a down peer.
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// A repeated warning is logged at most this often.
pub const WARN_INTERVAL: Duration = Duration::from_secs(60);

/// The `n`th wait (from 0) of the backoff series: 50 ms, 100 ms, … up to [`BACKOFF_MAX`].
pub fn backoff_delay(n: u32) -> Duration {
    BACKOFF_FIRST
        .saturating_mul(1u32.checked_shl(n.min(16)).unwrap_or(u32::MAX))
        .min(BACKOFF_MAX)
}

/// The whole backoff series, endless.
pub fn backoff_series() -> impl Iterator<Item = Duration> + Send + 'static {
    (0u32..).map(backoff_delay)
}

#[derive(Debug, Default)]
struct State {
    /// Consecutive failed attempts; 0 while the peer answers.
    failures: u32,
    /// No new attempt before this.
    next_attempt: Option<Instant>,
    /// When the current outage was first seen.
    down_since: Option<Instant>,
}

/// One peer's reachability.
#[derive(Debug, Default)]
pub struct Reachability {
    state: Mutex<State>,
}

impl Reachability {
    /// How long to wait before the peer may be dialed again (zero when it may be now).
    pub fn wait(&self) -> Duration {
        let state = self.state.lock().expect("reachability lock");
        state
            .next_attempt
            .map(|at| at.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::ZERO)
    }

    /// Records a failed attempt to reach the peer `name`; logs only the first of an outage.
    pub fn failed(&self, name: &str, error: &dyn std::fmt::Display) {
        let mut state = self.state.lock().expect("reachability lock");
        let now = Instant::now();
        let delay = backoff_delay(state.failures);
        state.failures = state.failures.saturating_add(1);
        state.next_attempt = Some(now + delay);
        if state.down_since.is_none() {
            state.down_since = Some(now);
            tracing::warn!(
                peer = name,
                error = %error,
                "peer unreachable; retrying with backoff up to {BACKOFF_MAX:?}, not logging \
                 further failures until it is back"
            );
        } else {
            tracing::debug!(peer = name, error = %error, failures = state.failures, "peer still unreachable");
        }
    }

    /// Records a successful connection; logs the end of an outage once.
    pub fn succeeded(&self, name: &str) {
        let mut state = self.state.lock().expect("reachability lock");
        if let Some(since) = state.down_since.take() {
            tracing::info!(
                peer = name,
                failed_attempts = state.failures,
                down_ms = since.elapsed().as_millis() as u64,
                "peer reachable again"
            );
        }
        state.failures = 0;
        state.next_attempt = None;
    }

    /// Whether the peer is in an outage.
    pub fn is_down(&self) -> bool {
        self.state
            .lock()
            .expect("reachability lock")
            .down_since
            .is_some()
    }
}

/// A warning logged at most once per [`WARN_INTERVAL`], with how many were suppressed.
#[derive(Debug, Default)]
pub struct RateLimitedWarn {
    state: Mutex<(Option<Instant>, u64)>,
}

impl RateLimitedWarn {
    /// Logs `message` at WARN unless it was logged less than [`WARN_INTERVAL`] ago (then at
    /// debug, counted).
    pub fn warn(&self, message: &str, detail: &dyn std::fmt::Display) {
        let mut state = self.state.lock().expect("rate-limited warn lock");
        let now = Instant::now();
        match state.0 {
            Some(last) if now.duration_since(last) < WARN_INTERVAL => {
                state.1 += 1;
                tracing::debug!(%detail, "{message}");
            }
            _ => {
                let suppressed = std::mem::take(&mut state.1);
                state.0 = Some(now);
                tracing::warn!(%detail, suppressed_since_last_warning = suppressed, "{message}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_50_ms_to_a_2_s_cap() {
        let series: Vec<u64> = backoff_series()
            .take(8)
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(series, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(backoff_delay(u32::MAX), BACKOFF_MAX);
    }

    #[tokio::test(start_paused = true)]
    async fn a_down_peer_is_dialed_again_only_after_the_backoff() {
        // The leader redialed a killed follower as fast as openraft asked, ~80,000 times a
        // second, logging each failure (issue 11 item 2): now each failure pushes the next
        // attempt out, and only the first failure and the recovery are logged.
        let peer = Reachability::default();
        assert_eq!(peer.wait(), Duration::ZERO);
        for _ in 0..10 {
            peer.failed("n", &"connection refused");
        }
        assert!(peer.is_down());
        assert_eq!(peer.wait(), BACKOFF_MAX);
        tokio::time::advance(BACKOFF_MAX).await;
        assert_eq!(peer.wait(), Duration::ZERO);
        peer.succeeded("n");
        assert!(!peer.is_down());
        peer.failed("n", &"connection refused");
        assert_eq!(peer.wait(), BACKOFF_FIRST);
    }
}
