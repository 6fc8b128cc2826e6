//! A group's checkpoint window, as plain data: which source positions are read and not done
//! yet, how far everything is done (`processed_upto`), and when a checkpoint is due and at
//! what position. No clock, no node: the group's task says what happened (a position read
//! or done, a check after messages were done or after the checkpoint interval, a write's
//! outcome) and writes the checkpoints this decides.
//!
//! Every message read from the source has its position in the window until it is done
//! (acknowledged, skipped, or parked and the park written). `processed_upto` is the highest
//! position below which everything is done: a checkpoint writes it, and a group started
//! again reads the source from just after it, so a restart or failover redelivers only
//! messages after the checkpoint and never skips one.

use std::collections::BTreeMap;

/// Why a checkpoint is considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Messages were done: due at `max_checkpoint_count` done since the last checkpoint.
    Done,
    /// The checkpoint interval (`checkpoint_after`) passed: due at `min_checkpoint_count`.
    Interval,
}

/// The window and the checkpoint bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct Window {
    /// Source positions read and not done yet (`false`), or done while an earlier one is
    /// not (`true`).
    positions: BTreeMap<u64, bool>,
    processed_upto: Option<u64>,
    done_since_checkpoint: u64,
    last_checkpoint: Option<u64>,
    writing: bool,
}

impl Window {
    /// A window after the checkpoint a group starts from, if it has one.
    pub fn new(checkpoint: Option<u64>) -> Window {
        Window {
            processed_upto: checkpoint,
            last_checkpoint: checkpoint,
            ..Window::default()
        }
    }

    /// A message at `position` was read from the source.
    pub fn read(&mut self, position: u64) {
        self.positions.insert(position, false);
    }

    /// Marks a source position done (`None`: a replayed parked message, outside the
    /// window) and moves `processed_upto` over every done position at the window's start.
    pub fn done(&mut self, position: Option<u64>) {
        let Some(position) = position else { return };
        if let Some(done) = self.positions.get_mut(&position) {
            *done = true;
        }
        while let Some(entry) = self.positions.first_entry() {
            if !*entry.get() {
                break;
            }
            let (position, _) = entry.remove_entry();
            self.processed_upto = Some(position);
            self.done_since_checkpoint += 1;
        }
    }

    /// Whether a checkpoint is due, and at what position: enough messages were done since
    /// the last (`max_count` on [`Check::Done`], `min_count` on [`Check::Interval`]; 0 counts
    /// as 1), none is being written, and the position moved since the last. A position
    /// returned is being written from then on (until [`Window::written`]) and the count
    /// starts again.
    pub fn checkpoint_due(&mut self, check: Check, min_count: u32, max_count: u32) -> Option<u64> {
        let needed = match check {
            Check::Done => max_count,
            Check::Interval => min_count,
        };
        if self.done_since_checkpoint < u64::from(needed.max(1)) {
            return None;
        }
        let position = self.processed_upto?;
        if self.writing || self.last_checkpoint == Some(position) {
            return None;
        }
        self.writing = true;
        self.done_since_checkpoint = 0;
        Some(position)
    }

    /// The write of the checkpoint at `position` ended; written, it is the last checkpoint.
    pub fn written(&mut self, position: u64, ok: bool) {
        self.writing = false;
        if ok {
            self.last_checkpoint = Some(position);
        }
    }

    /// The position a stopping group writes, unless it is already written.
    pub fn final_checkpoint(&self) -> Option<u64> {
        let position = self.processed_upto?;
        (self.last_checkpoint != Some(position)).then_some(position)
    }

    /// The last checkpoint written, for info.
    pub fn last_checkpoint(&self) -> Option<u64> {
        self.last_checkpoint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(window: &mut Window, positions: impl IntoIterator<Item = u64>) {
        for p in positions {
            window.read(p);
        }
    }

    /// `processed_upto` stops below the first position not done, however many after it are.
    #[test]
    fn processed_upto_stops_at_the_first_position_not_done() {
        let mut window = Window::new(None);
        read(&mut window, [3, 5, 8, 9]);
        window.done(Some(5));
        window.done(Some(8));
        assert_eq!(window.processed_upto, None);
        window.done(Some(3));
        assert_eq!(window.processed_upto, Some(8));
        assert_eq!(window.done_since_checkpoint, 3);
        window.done(Some(9));
        assert_eq!(window.processed_upto, Some(9));
        assert!(window.positions.is_empty());
    }

    /// A replayed parked message (no position) and a position never read change nothing.
    #[test]
    fn done_outside_the_window_changes_nothing() {
        let mut window = Window::new(Some(2));
        read(&mut window, [4]);
        window.done(None);
        window.done(Some(7));
        assert_eq!(window.processed_upto, Some(2));
        assert_eq!(window.done_since_checkpoint, 0);
        assert_eq!(
            window.final_checkpoint(),
            None,
            "the start checkpoint is written"
        );
    }

    /// Done messages trigger a checkpoint at the maximum count; the interval at the
    /// minimum; both count a zero as one.
    #[test]
    fn a_checkpoint_is_due_at_max_on_done_and_at_min_on_the_interval() {
        let mut window = Window::new(None);
        read(&mut window, 0..10);
        for p in 0..3 {
            window.done(Some(p));
        }
        assert_eq!(window.checkpoint_due(Check::Done, 2, 5), None);
        assert_eq!(window.checkpoint_due(Check::Interval, 4, 5), None);
        assert_eq!(window.checkpoint_due(Check::Interval, 3, 5), Some(2));
        window.written(2, true);
        for p in 3..8 {
            window.done(Some(p));
        }
        assert_eq!(window.checkpoint_due(Check::Done, 100, 5), Some(7));
        window.written(7, true);
        window.done(Some(8));
        assert_eq!(window.checkpoint_due(Check::Done, 0, 0), Some(8));
    }

    /// One checkpoint is written at a time; a failed write leaves the last one where it was
    /// and the next check writes again once enough more messages are done.
    #[test]
    fn one_checkpoint_write_at_a_time_and_a_failed_one_is_not_the_last() {
        let mut window = Window::new(None);
        read(&mut window, 0..4);
        window.done(Some(0));
        assert_eq!(window.checkpoint_due(Check::Done, 1, 1), Some(0));
        window.done(Some(1));
        assert_eq!(window.checkpoint_due(Check::Done, 1, 1), None, "writing");
        window.written(0, false);
        assert_eq!(window.last_checkpoint(), None);
        assert_eq!(window.checkpoint_due(Check::Done, 1, 1), Some(1));
        window.written(1, true);
        assert_eq!(window.last_checkpoint(), Some(1));
    }

    /// No checkpoint repeats the last position, and the count is kept until one is written.
    #[test]
    fn no_checkpoint_at_the_position_already_written() {
        let mut window = Window::new(Some(5));
        read(&mut window, [6]);
        window.done(Some(6));
        assert_eq!(window.checkpoint_due(Check::Done, 1, 1), Some(6));
        window.written(6, true);
        window.done_since_checkpoint = 3;
        assert_eq!(window.checkpoint_due(Check::Interval, 1, 1), None);
        assert_eq!(window.done_since_checkpoint, 3);
        assert_eq!(window.final_checkpoint(), None);
    }

    /// A stopping group writes how far it got, unless that is the last checkpoint.
    #[test]
    fn the_final_checkpoint_is_processed_upto_when_it_moved() {
        let mut window = Window::new(None);
        assert_eq!(window.final_checkpoint(), None, "nothing done");
        read(&mut window, [10, 11]);
        window.done(Some(10));
        assert_eq!(window.final_checkpoint(), Some(10));
        window.done(Some(11));
        assert_eq!(window.checkpoint_due(Check::Done, 1, 1), Some(11));
        assert_eq!(window.final_checkpoint(), Some(11), "still being written");
        window.written(11, true);
        assert_eq!(window.final_checkpoint(), None);
    }
}
