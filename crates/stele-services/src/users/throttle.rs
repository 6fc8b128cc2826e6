//! Brakes on failed logins: per login, at most [`MAX_FAILED_LOGINS`] password verifications
//! that did not succeed in a [`FAILED_LOGIN_WINDOW`] (each is counted before it runs; a
//! success clears the count), after which the login's attempts are refused without hashing
//! until the window ends; and at most [`FAILED_LOGIN_LOG_LINES`] log lines about failed logins in a
//! [`FAILED_LOGIN_LOG_WINDOW`], the lines left out counted in the next one.
//!
//! Only verifications of existing, enabled users are counted: those are the attempts that
//! cost Argon2 time (an unknown or disabled login is refused without hashing), so the
//! logins tracked are at most the users there are; [`MAX_TRACKED_LOGINS`] bounds them
//! anyway. Time is tokio's (the simulation's clock under the simulation).

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// Wrong passwords allowed per login in one [`FAILED_LOGIN_WINDOW`].
pub const MAX_FAILED_LOGINS: u32 = 5;
/// The window failed logins are counted in.
pub const FAILED_LOGIN_WINDOW: Duration = Duration::from_secs(1);
/// The most logins whose failures are tracked (beyond it, the stalest is forgotten).
pub const MAX_TRACKED_LOGINS: usize = 10_000;
/// Log lines about failed logins per [`FAILED_LOGIN_LOG_WINDOW`].
pub const FAILED_LOGIN_LOG_LINES: u32 = 10;
/// The window of [`FAILED_LOGIN_LOG_LINES`].
pub const FAILED_LOGIN_LOG_WINDOW: Duration = Duration::from_secs(60);

#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    count: u32,
}

impl Window {
    /// The count in the window that holds `now` (a new one once this has ended).
    fn current(self, now: Instant, length: Duration) -> Window {
        if now.duration_since(self.start) >= length {
            Window {
                start: now,
                count: 0,
            }
        } else {
            self
        }
    }
}

/// Failed logins per login.
pub(crate) struct FailedLogins {
    windows: HashMap<String, Window>,
}

impl FailedLogins {
    pub(crate) fn new() -> FailedLogins {
        FailedLogins {
            windows: HashMap::new(),
        }
    }

    /// Counts a verification of `login`'s password about to run, unless the login has used
    /// up its [`MAX_FAILED_LOGINS`] for the current window (then `false`: do not verify).
    pub(crate) fn try_attempt(&mut self, login: &str, now: Instant) -> bool {
        let current = self
            .windows
            .get(login)
            .map(|w| w.current(now, FAILED_LOGIN_WINDOW));
        if current.is_some_and(|w| w.count >= MAX_FAILED_LOGINS) {
            return false;
        }
        if current.is_none() && self.windows.len() >= MAX_TRACKED_LOGINS {
            self.make_room(now);
        }
        let mut window = current.unwrap_or(Window {
            start: now,
            count: 0,
        });
        window.count += 1;
        self.windows.insert(login.to_owned(), window);
        true
    }

    /// Forgets the logins whose window ended, or else the stalest one.
    fn make_room(&mut self, now: Instant) {
        self.windows
            .retain(|_, w| now.duration_since(w.start) < FAILED_LOGIN_WINDOW);
        if self.windows.len() >= MAX_TRACKED_LOGINS {
            let stalest = self
                .windows
                .iter()
                .min_by_key(|(_, w)| w.start)
                .map(|(login, _)| login.clone());
            if let Some(stalest) = stalest {
                self.windows.remove(&stalest);
            }
        }
    }

    /// Forgets `login`'s failures (after a correct password).
    pub(crate) fn clear(&mut self, login: &str) {
        self.windows.remove(login);
    }
}

/// How many log lines about failed logins may be written.
pub(crate) struct LogBudget {
    window: Window,
    suppressed: u64,
}

impl LogBudget {
    pub(crate) fn new(now: Instant) -> LogBudget {
        LogBudget {
            window: Window {
                start: now,
                count: 0,
            },
            suppressed: 0,
        }
    }

    /// `Some(lines left out since the last one)` when a line may be written now.
    pub(crate) fn take(&mut self, now: Instant) -> Option<u64> {
        self.window = self.window.current(now, FAILED_LOGIN_LOG_WINDOW);
        if self.window.count >= FAILED_LOGIN_LOG_LINES {
            self.suppressed += 1;
            return None;
        }
        self.window.count += 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_is_limited_for_the_rest_of_its_window() {
        let start = Instant::now();
        let mut failed = FailedLogins::new();
        for _ in 0..MAX_FAILED_LOGINS {
            assert!(failed.try_attempt("u", start));
        }
        assert!(!failed.try_attempt("u", start));
        assert!(failed.try_attempt("other", start));
        let later = start + FAILED_LOGIN_WINDOW;
        assert!(failed.try_attempt("u", later));
        failed.clear("u");
        assert!(!failed.windows.contains_key("u"));
    }

    #[test]
    fn tracked_logins_stay_bounded() {
        let now = Instant::now();
        let mut failed = FailedLogins::new();
        for i in 0..MAX_TRACKED_LOGINS + 10 {
            assert!(failed.try_attempt(&format!("u{i}"), now));
        }
        assert!(failed.windows.len() <= MAX_TRACKED_LOGINS);
    }

    #[test]
    fn the_log_budget_counts_what_it_left_out() {
        let start = Instant::now();
        let mut budget = LogBudget::new(start);
        for _ in 0..FAILED_LOGIN_LOG_LINES {
            assert_eq!(budget.take(start), Some(0));
        }
        assert_eq!(budget.take(start), None);
        assert_eq!(budget.take(start), None);
        assert_eq!(budget.take(start + FAILED_LOGIN_LOG_WINDOW), Some(2));
    }
}
