//! A group's messages and consumers, as plain data: the decisions of the group's task
//! without its effects. No channel, no node, no clock: the task passes in what happened
//! (a page read, a consumer connected or gone, acks, nacks, the time of a timeout check, a
//! park written) and carries out what this decides (a delivery to send, an append of
//! parked messages to write, a checkpoint from the [`Window`]).
//!
//! **Messages.** `buffer` holds what the reader read after the group's position, at most
//! [`Limits::read_ahead`] messages and [`Limits::buffer_max_bytes`] (plus one page) ahead;
//! messages in flight stop being sent at [`Limits::in_flight_max_bytes`], whatever the
//! consumers' buffer sizes. `retry` holds messages to deliver again (nacked, timed out,
//! left behind by a consumer that went away, replayed from the parked stream); it goes
//! first. A message sent to a consumer is in flight until it is acknowledged, nacked or
//! times out.
//!
//! **Dispatch** ([`Flow::pick`]): the next message (retry first) goes to the consumer the
//! [`Picker`] chooses among those with free slots (its buffer size minus its messages in
//! flight), unless the bytes in flight are at the bound or the same record is still out.
//!
//! **Nacks and timeouts** ([`nack_fate`], [`retry_fate`]): a message is retried with its
//! retry count one higher until the count passes the group's maximum, then parked.
//!
//! **Parking.** Messages to park wait in order; one append at a time writes all that
//! waited ([`Flow::take_park_write`]), so the parked stream keeps the parking order. A
//! parked message is done once its link is written.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use super::super::strategy::{Candidate, Picker};
use super::super::{Message, NackAction, Strategy};
use super::window::Window;

/// A message waiting to be delivered.
#[derive(Debug)]
pub(crate) struct Pending {
    pub message: Message,
    /// Its position in the source; `None` for a message replayed from the parked stream.
    pub key: Option<u64>,
}

struct InFlight {
    pending: Pending,
    consumer: u64,
    /// Tells this delivery's timeout apart from a later delivery's.
    delivery: u64,
}

/// A consumer as the decisions see it, with what the task keeps for it (`link`: its
/// channel and statistics; `()` in tests).
pub(crate) struct Slot<C> {
    pub id: u64,
    pub buffer_size: u32,
    pub in_flight: u32,
    pub link: C,
}

impl<C> Slot<C> {
    /// Messages it may still be sent before it acknowledges some.
    pub fn free_slots(&self) -> u32 {
        self.buffer_size.saturating_sub(self.in_flight)
    }
}

/// The bounds a group runs with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Messages read ahead of the consumers, at most.
    pub read_ahead: usize,
    /// Bytes read ahead at which reading stops (a page may pass it).
    pub buffer_max_bytes: usize,
    /// Bytes in flight at which sending stops.
    pub in_flight_max_bytes: usize,
    pub max_retry_count: u32,
    /// `None`: messages never time out.
    pub message_timeout: Option<Duration>,
}

/// What becomes of a nacked or timed-out message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Delivered again, after the others waiting to be, with its retry count one higher.
    Retry,
    /// Delivered again before anything else, its retry count unchanged.
    RetryFirst,
    /// Written to the parked stream with this reason.
    Park(String),
    /// Handled.
    Done,
}

/// A message retried (nacked with Retry, or timed out with `reason` "message timeout") is
/// retried while its retry count stays within `max_retry_count`, else parked.
pub(crate) fn retry_fate(retry_count: u32, max_retry_count: u32, reason: &str) -> Fate {
    if retry_count.saturating_add(1) > max_retry_count {
        Fate::Park(format!("max retry count reached ({reason})"))
    } else {
        Fate::Retry
    }
}

/// What a nack with `action` does to a message: Park parks it, Retry retries or parks it
/// ([`retry_fate`]), Skip treats it as handled, Stop gives it back to be delivered first
/// (the consumer is dropped by the task).
pub(crate) fn nack_fate(
    action: NackAction,
    retry_count: u32,
    max_retry_count: u32,
    reason: &str,
) -> Fate {
    match action {
        NackAction::Park => Fate::Park(reason.to_owned()),
        NackAction::Retry => retry_fate(retry_count, max_retry_count, reason),
        NackAction::Skip => Fate::Done,
        NackAction::Stop => Fate::RetryFirst,
    }
}

/// A dispatch decision: the message at the front of `retry` (else of `buffer`) goes to
/// the consumer at index `consumer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pick {
    pub from_retry: bool,
    pub consumer: usize,
}

/// The state the decisions change.
pub(crate) struct Flow<C> {
    limits: Limits,
    consumers: Vec<Slot<C>>,
    picker: Picker,
    /// Reused by `pick` for every message.
    candidates: Vec<Candidate>,
    retry: VecDeque<Pending>,
    buffer: VecDeque<Pending>,
    in_flight: HashMap<Uuid, InFlight>,
    /// Bytes of the messages in `buffer` and in `in_flight`.
    buffer_bytes: usize,
    in_flight_bytes: usize,
    /// Messages to park with their reasons, in order; `parking_now` while an append of
    /// earlier ones runs.
    parking: Vec<(Pending, String)>,
    parking_now: bool,
    /// An append of parked messages to start, taken by the task.
    park_write: Option<Vec<(Pending, String)>>,
    next_delivery: u64,
    /// `(deadline, id, delivery)` in delivery order (one timeout for all, so deadlines
    /// ascend).
    timeouts: VecDeque<(Instant, Uuid, u64)>,
    pub window: Window,
}

impl<C> Flow<C> {
    pub fn new(limits: Limits, strategy: Strategy, checkpoint: Option<u64>) -> Flow<C> {
        Flow {
            limits,
            consumers: Vec::new(),
            picker: Picker::new(strategy),
            candidates: Vec::new(),
            retry: VecDeque::new(),
            buffer: VecDeque::new(),
            in_flight: HashMap::new(),
            buffer_bytes: 0,
            in_flight_bytes: 0,
            parking: Vec::new(),
            parking_now: false,
            park_write: None,
            next_delivery: 0,
            timeouts: VecDeque::new(),
            window: Window::new(checkpoint),
        }
    }

    /// Whether the reader may hand over more: fewer than the read-ahead messages and bytes
    /// are buffered.
    pub fn wants_more(&self) -> bool {
        self.buffer.len() < self.limits.read_ahead
            && self.buffer_bytes < self.limits.buffer_max_bytes
    }

    /// A message read from the source at `key`.
    pub fn read(&mut self, key: u64, message: Message) {
        self.window.read(key);
        self.buffer_bytes += message.size_bytes();
        self.buffer.push_back(Pending {
            message,
            key: Some(key),
        });
    }

    /// Messages replayed from the parked stream, delivered after those retried already.
    pub fn replayed(&mut self, messages: impl IntoIterator<Item = Message>) {
        for message in messages {
            self.retry.push_back(Pending { message, key: None });
        }
    }

    pub fn consumers_mut(&mut self) -> &mut [Slot<C>] {
        &mut self.consumers
    }

    pub fn consumer(&self, id: u64) -> Option<&Slot<C>> {
        self.consumers.iter().find(|c| c.id == id)
    }

    /// Whether `max_subscriber_count` consumers are connected (0 is no limit).
    pub fn full(&self, max_subscriber_count: u32) -> bool {
        max_subscriber_count > 0 && self.consumers.len() >= max_subscriber_count as usize
    }

    pub fn connect(&mut self, id: u64, buffer_size: u32, link: C) {
        self.consumers.push(Slot {
            id,
            buffer_size: buffer_size.max(1),
            in_flight: 0,
            link,
        });
    }

    /// Removes every consumer (the group stops; their messages stay where they are).
    pub fn drain_consumers(&mut self) -> Vec<Slot<C>> {
        std::mem::take(&mut self.consumers)
    }

    /// Removes a consumer; its messages in flight go to the others, in delivery order,
    /// ahead of anything else.
    pub fn disconnect(&mut self, consumer: u64) -> Option<Slot<C>> {
        let index = self.consumers.iter().position(|c| c.id == consumer)?;
        let slot = self.consumers.remove(index);
        let mut orphans: Vec<Uuid> = self
            .in_flight
            .iter()
            .filter(|(_, f)| f.consumer == consumer)
            .map(|(id, _)| *id)
            .collect();
        orphans.sort_by_key(|id| self.in_flight[id].delivery);
        for id in orphans.into_iter().rev() {
            let flight = self.in_flight.remove(&id).expect("listed above");
            self.in_flight_bytes -= flight.pending.message.size_bytes();
            self.retry.push_front(flight.pending);
        }
        Some(slot)
    }

    /// Removes a message from flight, freeing its consumer's slot.
    fn take_in_flight(&mut self, id: Uuid) -> Option<InFlight> {
        let flight = self.in_flight.remove(&id)?;
        self.in_flight_bytes -= flight.pending.message.size_bytes();
        if let Some(c) = self.consumers.iter_mut().find(|c| c.id == flight.consumer) {
            c.in_flight = c.in_flight.saturating_sub(1);
        }
        Some(flight)
    }

    /// Acknowledgements (from any consumer: EventStoreDB does not check either).
    pub fn ack(&mut self, ids: impl IntoIterator<Item = Uuid>) {
        for id in ids {
            if let Some(flight) = self.take_in_flight(id) {
                self.window.done(flight.pending.key);
            }
        }
    }

    /// Nacks of messages in flight (others are ignored). With Stop, the task drops the
    /// consumer afterwards.
    pub fn nack(&mut self, ids: impl IntoIterator<Item = Uuid>, action: NackAction, reason: &str) {
        for id in ids {
            let Some(flight) = self.take_in_flight(id) else {
                continue;
            };
            let fate = nack_fate(
                action,
                flight.pending.message.retry_count,
                self.limits.max_retry_count,
                reason,
            );
            self.apply(flight.pending, fate);
        }
    }

    fn apply(&mut self, mut pending: Pending, fate: Fate) {
        match fate {
            Fate::Retry => {
                pending.message.retry_count += 1;
                self.retry.push_back(pending);
            }
            Fate::RetryFirst => self.retry.push_front(pending),
            Fate::Park(reason) => self.park(pending, reason),
            Fate::Done => self.window.done(pending.key),
        }
    }

    /// Queues the message to be parked, and starts an append unless one runs.
    fn park(&mut self, pending: Pending, reason: String) {
        self.parking.push((pending, reason));
        self.start_park_write();
    }

    fn start_park_write(&mut self) {
        if self.parking_now || self.parking.is_empty() {
            return;
        }
        self.parking_now = true;
        self.park_write = Some(std::mem::take(&mut self.parking));
    }

    /// The append of parked messages to start now, if there is one: every message that
    /// waited, in parking order.
    pub fn take_park_write(&mut self) -> Option<Vec<(Pending, String)>> {
        self.park_write.take()
    }

    /// The append of `pending` ended. Written, they are done (returns how many were
    /// parked); failed, they go back to be delivered first. The next append starts.
    pub fn parked(&mut self, pending: Vec<Pending>, ok: bool) -> u64 {
        self.parking_now = false;
        let mut count = 0;
        if ok {
            for parked in pending {
                count += 1;
                self.window.done(parked.key);
            }
        } else {
            for parked in pending.into_iter().rev() {
                self.retry.push_front(parked);
            }
        }
        self.start_park_write();
        count
    }

    /// Retries (or parks) every message whose delivery timed out by `now`.
    pub fn expire(&mut self, now: Instant) {
        while let Some(&(at, id, delivery)) = self.timeouts.front() {
            if at > now {
                break;
            }
            self.timeouts.pop_front();
            if self
                .in_flight
                .get(&id)
                .is_some_and(|f| f.delivery == delivery)
            {
                let flight = self.take_in_flight(id).expect("checked above");
                let fate = retry_fate(
                    flight.pending.message.retry_count,
                    self.limits.max_retry_count,
                    "message timeout",
                );
                self.apply(flight.pending, fate);
            }
        }
    }

    /// Whether a timeout is pending (the task checks them only then).
    pub fn has_timeouts(&self) -> bool {
        !self.timeouts.is_empty()
    }

    /// Drops timeouts of deliveries already answered from the front of the queue, so the
    /// queue stays about as long as the messages in flight (acknowledgements mostly come
    /// in delivery order).
    pub fn prune_timeouts(&mut self) {
        while let Some(&(_, id, delivery)) = self.timeouts.front() {
            if self
                .in_flight
                .get(&id)
                .is_some_and(|f| f.delivery == delivery)
            {
                break;
            }
            self.timeouts.pop_front();
        }
    }

    /// Which message goes to which consumer next, if one can go: not while the bytes in
    /// flight are at the bound, nor while the same record is still out (parked and
    /// replayed meanwhile), nor when the picker finds no consumer with a free slot.
    pub fn pick(&mut self) -> Option<Pick> {
        let from_retry = !self.retry.is_empty();
        let next = self.retry.front().or(self.buffer.front())?;
        if self.in_flight_bytes >= self.limits.in_flight_max_bytes {
            return None;
        }
        if self.in_flight.contains_key(&next.message.ack_id()) {
            return None;
        }
        self.candidates.clear();
        self.candidates
            .extend(self.consumers.iter().map(|c| Candidate {
                id: c.id,
                free_slots: c.free_slots(),
            }));
        let consumer = self.picker.pick(&self.candidates, &next.message)?;
        Some(Pick {
            from_retry,
            consumer,
        })
    }

    /// Takes the message `pick` chose off its queue, to be sent.
    pub fn take(&mut self, pick: Pick) -> Pending {
        if pick.from_retry {
            self.retry.pop_front()
        } else {
            self.buffer.pop_front().inspect(|p| {
                self.buffer_bytes -= p.message.size_bytes();
            })
        }
        .expect("picked")
    }

    /// Puts a message taken back where it was (its consumer is gone).
    pub fn put_back(&mut self, pick: Pick, pending: Pending) {
        if pick.from_retry {
            self.retry.push_front(pending);
        } else {
            self.buffer_bytes += pending.message.size_bytes();
            self.buffer.push_front(pending);
        }
    }

    /// Records a message sent at `now` to the consumer `pick` chose: in flight, timing
    /// out after the message timeout.
    pub fn delivered(&mut self, pick: Pick, pending: Pending, now: Instant) {
        let consumer = &mut self.consumers[pick.consumer];
        consumer.in_flight += 1;
        let id = pending.message.ack_id();
        let delivery = self.next_delivery;
        self.next_delivery += 1;
        if let Some(timeout) = self.limits.message_timeout {
            self.timeouts.push_back((now + timeout, id, delivery));
        }
        self.in_flight_bytes += pending.message.size_bytes();
        self.in_flight.insert(
            id,
            InFlight {
                pending,
                consumer: consumer.id,
                delivery,
            },
        );
    }

    pub fn retry_len(&self) -> usize {
        self.retry.len()
    }

    pub fn buffer_len(&self) -> usize {
        self.buffer.len()
    }

    pub fn buffer_bytes(&self) -> usize {
        self.buffer_bytes
    }

    pub fn in_flight_len(&self) -> usize {
        self.in_flight.len()
    }
}

#[cfg(test)]
#[path = "flow_tests.rs"]
mod tests;
