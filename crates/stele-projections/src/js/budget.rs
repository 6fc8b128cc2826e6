//! The time budget of one call into JavaScript, enforced through QuickJS's interrupt handler.
//!
//! QuickJS calls the interrupt handler every few thousand bytecode steps. Arming a call
//! only bumps a generation counter (no clock read per event); the handler reads the clock
//! the first time it runs in a new generation and interrupts once the call has run longer
//! than its limit. A call is thus measured from its first interrupt check, a few
//! microseconds after it starts, which is well within the budget's precision.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Shared between the projection and the runtime's interrupt handler.
#[derive(Debug)]
pub(crate) struct Budget {
    /// Bumped when a call is armed.
    generation: Cell<u64>,
    /// The generation the handler last saw, and when it first saw it.
    seen: Cell<u64>,
    started: Cell<Option<Instant>>,
    limit: Cell<Duration>,
    armed: Cell<bool>,
    /// Set when the handler interrupted the current call.
    fired: Cell<bool>,
}

impl Budget {
    pub(crate) fn new() -> Rc<Budget> {
        Rc::new(Budget {
            generation: Cell::new(0),
            seen: Cell::new(0),
            started: Cell::new(None),
            limit: Cell::new(Duration::ZERO),
            armed: Cell::new(false),
            fired: Cell::new(false),
        })
    }

    /// Starts a call allowed to run for `limit`.
    pub(crate) fn arm(&self, limit: Duration) {
        self.generation.set(self.generation.get().wrapping_add(1));
        self.limit.set(limit);
        self.fired.set(false);
        self.armed.set(true);
    }

    /// Ends the current call; returns whether it was interrupted.
    pub(crate) fn disarm(&self) -> bool {
        self.armed.set(false);
        self.fired.get()
    }

    /// The interrupt handler's body: true stops the running JavaScript.
    pub(crate) fn should_interrupt(&self) -> bool {
        if !self.armed.get() {
            return false;
        }
        if self.fired.get() {
            return true;
        }
        let generation = self.generation.get();
        // The real clock, on purpose: a runaway handler is a synchronous loop on the
        // projection's own thread, during which a simulated (paused) clock never advances,
        // so a budget measured on it would never run out.
        #[allow(
            clippy::disallowed_methods,
            reason = "a runaway handler must be stopped in real time"
        )]
        let now = Instant::now();
        if self.seen.get() != generation {
            self.seen.set(generation);
            self.started.set(Some(now));
            return false;
        }
        let over = match self.started.get() {
            Some(started) => now.duration_since(started) > self.limit.get(),
            None => false,
        };
        if over {
            self.fired.set(true);
        }
        over
    }
}
