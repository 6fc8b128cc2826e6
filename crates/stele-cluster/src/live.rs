//! The live feed behind catch-up subscriptions, and the reads that subscriptions catch up
//! with.
//!
//! After every applied batch (one index transaction) the state machine publishes a
//! [`LiveBatch`] on a bounded `tokio::sync::broadcast` channel of [`LIVE_FEED_BATCHES`]
//! batches: the events the batch made visible, with their revisions and positions, and the
//! streams it tombstoned. Live subscribers are fed from it, from memory (docs/design.md,
//! "Performance model"). Publishing never waits: a subscriber that falls more than
//! [`LIVE_FEED_BATCHES`] batches behind loses the oldest ones (`Lagged`) and reads them from
//! the log and index instead, so writers are never blocked by subscribers (decision 12).
//! The events the feed holds are also bounded in bytes ([`LIVE_FEED_MAX_BYTES`]): a batch
//! that would go over is published without its events, as a range to read from the log
//! (what a node replaying a long log does anyway).
//!
//! Every batch says which part of `$all` it covers: `from` is `$all`'s end (the position
//! after the last event) before the batch and `end` the one after it, so batches tile `$all`
//! without gaps. A subscriber keeps the end up to which it has seen everything; a batch
//! that starts beyond it (batches lost to lag, or published before it subscribed) tells it
//! exactly which range to read from the log. When nobody is subscribed the state machine does
//! not copy the events at all and publishes only the range (`events: None`).
//!
//! The history reads here are shaped for subscriptions: [`Node::read_all_range`] reads a
//! window of `$all` sequentially through the chunk files (the index gives the positions, a
//! buffered iterator reads the records in order) and reports how far it has looked, so a
//! filtered subscription can count the events it considered and send checkpoints.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use stele_core::{RecordedEvent, StreamName};
use tokio::sync::broadcast;

use crate::node::{Node, ReadError};

/// Batches the live feed holds for subscribers that have not received them yet. A batch is
/// one index transaction (at most the state machine's batch of entries). A subscriber more
/// than this many batches behind reads from the log instead.
pub const LIVE_FEED_BATCHES: usize = 1024;

/// Bytes of events (data, metadata, names) the live feed holds at most, over all the
/// batches not yet received by every subscriber.
pub const LIVE_FEED_MAX_BYTES: usize = 64 * 1024 * 1024;

/// What one event costs the feed beyond its data, metadata and names.
const EVENT_OVERHEAD_BYTES: usize = 128;

/// What one applied batch made visible.
#[derive(Debug)]
pub struct LiveBatch {
    /// `$all`'s end (position after the last event) before this batch.
    pub from: u64,
    /// `$all`'s end after this batch; every event of the batch lies in `from..end`.
    pub end: u64,
    /// The batch's events in `$all` order, or `None` when nobody was subscribed as the batch
    /// was applied: whoever subscribed since reads `from..end` from the log.
    pub events: Option<Vec<RecordedEvent>>,
    /// Streams tombstoned by this batch (always filled: they are rare and cheap).
    pub tombstoned: Vec<StreamName>,
    /// The bytes of `events` counted against [`LIVE_FEED_MAX_BYTES`] while the batch lives.
    held: Option<Held>,
}

/// Bytes a batch holds, given back when the last subscriber drops it.
#[derive(Debug)]
struct Held {
    bytes: usize,
    total: Arc<AtomicUsize>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.total.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

fn event_bytes(event: &RecordedEvent) -> usize {
    let record = &event.record;
    record.data.len()
        + record.custom_metadata.len()
        + record.event_type.len()
        + record.stream.as_str().len()
        + EVENT_OVERHEAD_BYTES
}

impl LiveBatch {
    /// Whether the batch has anything to tell subscribers.
    pub fn is_empty(&self) -> bool {
        self.from == self.end && self.tombstoned.is_empty()
    }
}

/// The sending side of the live feed; lives in the state machine's shared state.
#[derive(Debug)]
pub struct LiveFeed {
    tx: broadcast::Sender<Arc<LiveBatch>>,
    /// Bytes of events held by published batches that some subscriber has not dropped.
    held: Arc<AtomicUsize>,
    max_bytes: usize,
}

impl Default for LiveFeed {
    fn default() -> Self {
        LiveFeed::with_max_bytes(LIVE_FEED_MAX_BYTES)
    }
}

impl LiveFeed {
    /// Whether anyone listens; when not, the state machine does not copy events.
    pub fn has_subscribers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    fn with_max_bytes(max_bytes: usize) -> LiveFeed {
        let (tx, _) = broadcast::channel(LIVE_FEED_BATCHES);
        LiveFeed {
            tx,
            held: Arc::new(AtomicUsize::new(0)),
            max_bytes,
        }
    }

    /// Publishes what a batch made visible (`$all` from `from` to `end`); never waits (a
    /// full feed drops its oldest batch for lagging receivers). Events that would take the
    /// feed over its byte bound are left out: subscribers read `from..end` from the log.
    pub fn publish(
        &self,
        from: u64,
        end: u64,
        events: Option<Vec<RecordedEvent>>,
        tombstoned: Vec<StreamName>,
    ) {
        let mut batch = LiveBatch {
            from,
            end,
            events: None,
            tombstoned,
            held: None,
        };
        if batch.is_empty() || !self.has_subscribers() {
            return;
        }
        if let Some(events) = events {
            let bytes: usize = events.iter().map(event_bytes).sum();
            let before = self.held.fetch_add(bytes, Ordering::AcqRel);
            // Given back when the batch is dropped: by the last subscriber, or here when the
            // events do not fit.
            let held = Held {
                bytes,
                total: self.held.clone(),
            };
            if before.saturating_add(bytes) <= self.max_bytes {
                batch.events = Some(events);
                batch.held = Some(held);
            }
        }
        // An error only means that nobody is subscribed any more.
        let _ = self.tx.send(Arc::new(batch));
    }

    /// Bytes of events the feed holds now.
    pub fn held_bytes(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    fn subscribe(&self) -> LiveReceiver {
        LiveReceiver {
            rx: self.tx.subscribe(),
        }
    }
}

/// One subscriber's end of the live feed.
#[derive(Debug)]
pub struct LiveReceiver {
    rx: broadcast::Receiver<Arc<LiveBatch>>,
}

/// What a subscriber receives from the live feed.
#[derive(Debug)]
pub enum Live {
    Batch(Arc<LiveBatch>),
    /// This many batches were dropped before this subscriber received them: read from the
    /// log up to the next batch's `from`.
    Lagged(u64),
    /// The node is stopping.
    Closed,
}

impl LiveReceiver {
    /// The next batch; waits for one.
    pub async fn recv(&mut self) -> Live {
        match self.rx.recv().await {
            Ok(batch) => Live::Batch(batch),
            Err(broadcast::error::RecvError::Lagged(n)) => Live::Lagged(n),
            Err(broadcast::error::RecvError::Closed) => Live::Closed,
        }
    }

    /// The next batch if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Live> {
        match self.rx.try_recv() {
            Ok(batch) => Some(Live::Batch(batch)),
            Err(broadcast::error::TryRecvError::Empty) => None,
            Err(broadcast::error::TryRecvError::Lagged(n)) => Some(Live::Lagged(n)),
            Err(broadcast::error::TryRecvError::Closed) => Some(Live::Closed),
        }
    }
}

/// A window of `$all` read by [`Node::read_all_range`].
#[derive(Debug)]
pub struct AllPage {
    /// The events in the window, in `$all` order.
    pub events: Vec<RecordedEvent>,
    /// Every event before this position has been read (it is never less than the `from`
    /// asked for): where the next read starts.
    pub next: u64,
    /// True when the read reached `$all`'s end (or the bound it was given).
    pub at_end: bool,
}

impl Node {
    /// Subscribes to the live feed. Subscribe *before* reading history: every batch applied
    /// after this call is then either received or reported lost (`Lagged`).
    pub fn subscribe_live(&self) -> LiveReceiver {
        self.inner.applied.live.subscribe()
    }

    /// `$all`'s end: the position after the last applied event (0 when there is none).
    pub fn all_end(&self) -> u64 {
        self.inner.applied.event_end.load(Ordering::Acquire)
    }

    /// The revision of a stream's last event, `None` when it has none (never written).
    /// A tombstoned stream is `StreamDeleted`.
    pub fn stream_last_revision(&self, stream: &StreamName) -> Result<Option<u64>, ReadError> {
        let state = self
            .inner
            .index
            .stream_state(stream)
            .map_err(ReadError::index)?;
        if state.tombstoned {
            return Err(ReadError::StreamDeleted(stream.clone()));
        }
        Ok(state.last_revision)
    }

    /// Reads at most `max_events` events of `$all` at positions `from..to` (`to`: `None` for
    /// no bound), in order, sequentially through the chunk files.
    ///
    /// `next` in the answer covers everything read: when the read reached the end, it is at
    /// least `$all`'s end as of the call, so that a subscriber can continue from there with
    /// the live feed. A caller that passes `to` must know that every event below it has
    /// been applied (a live batch's `from`).
    pub fn read_all_range(
        &self,
        from: u64,
        to: Option<u64>,
        max_events: usize,
    ) -> Result<AllPage, ReadError> {
        // Loaded before the index is read: the index holds at least every event below it.
        let end_before = self.all_end();
        let bound = to.unwrap_or(u64::MAX);
        let mut positions = self
            .inner
            .index
            .all_range(from, true, max_events.max(1))
            .map_err(ReadError::index)?;
        let full = positions.len() >= max_events.max(1);
        let before_bound = positions.len();
        positions.retain(|&(p, _)| p < bound);
        let bounded = positions.len() < before_bound;
        let at_end = !full || bounded;
        let next = match (positions.last(), at_end) {
            (_, true) if to.is_some() => bound.max(from),
            (Some(&(last, _)), true) => (last + 1).max(end_before).max(from),
            (None, true) => end_before.max(from),
            (Some(&(last, _)), false) => last + 1,
            (None, false) => unreachable!("a full page has events"),
        };
        let events = self.read_events_at(&positions)?;
        Ok(AllPage {
            events,
            next,
            at_end,
        })
    }

    /// Reads the events at `positions` (ascending `(position, revision)` pairs) with one
    /// buffered pass over the log, skipping the records between them (other entries,
    /// appends that were refused).
    pub(crate) fn read_events_at(
        &self,
        positions: &[(u64, u64)],
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        let Some(&(first, _)) = positions.first() else {
            return Ok(Vec::new());
        };
        let mut events = Vec::with_capacity(positions.len());
        let mut wanted = positions.iter().peekable();
        for record in self.inner.log.log.iter(first) {
            let Some(&&(want, revision)) = wanted.peek() else {
                break;
            };
            // A damaged record names its chunk file and offset; the position read is the
            // next one wanted at the latest.
            let (position, payload) = record.map_err(|e| ReadError::log(e, None))?;
            if position < want {
                continue;
            }
            if position > want {
                return Err(ReadError::corrupt_at(
                    want,
                    "the index points here, which is not a record boundary",
                ));
            }
            wanted.next();
            events.push(crate::node::event_at(&payload, position, revision)?);
        }
        if wanted.peek().is_some() {
            let &&(want, _) = wanted.peek().expect("peeked");
            return Err(ReadError::corrupt_at(
                want,
                format!(
                    "the index points past the end of the log ({} events unread)",
                    wanted.count()
                ),
            ));
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stele_core::{LogPosition, StreamRevision};

    fn publish(feed: &LiveFeed, from: u64, end: u64) {
        feed.publish(from, end, Some(Vec::new()), Vec::new());
    }

    fn event(bytes: usize) -> RecordedEvent {
        RecordedEvent {
            record: stele_core::EventRecord {
                stream: StreamName::new("s").unwrap(),
                id: uuid::Uuid::nil(),
                event_type: "t".into(),
                content_type: stele_core::ContentType::Binary,
                created_ticks: 0,
                custom_metadata: Default::default(),
                data: vec![0; bytes].into(),
            },
            revision: StreamRevision(0),
            position: LogPosition(0),
        }
    }

    #[tokio::test]
    async fn a_feed_without_subscribers_keeps_nothing_and_a_subscriber_gets_what_follows() {
        let feed = LiveFeed::default();
        assert!(!feed.has_subscribers());
        publish(&feed, 0, 10);
        let mut rx = feed.subscribe();
        assert!(feed.has_subscribers());
        publish(&feed, 10, 20);
        publish(&feed, 20, 20); // nothing to tell: not sent
        publish(&feed, 20, 30);
        for (from, end) in [(10, 20), (20, 30)] {
            match rx.recv().await {
                Live::Batch(b) => assert_eq!((b.from, b.end), (from, end)),
                other => panic!("expected a batch, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_how_far() {
        let feed = LiveFeed::default();
        let mut rx = feed.subscribe();
        let batches = LIVE_FEED_BATCHES as u64 + 10;
        for n in 0..batches {
            publish(&feed, n * 10, n * 10 + 10);
        }
        match rx.recv().await {
            Live::Lagged(n) => assert_eq!(n, 10),
            other => panic!("expected Lagged, got {other:?}"),
        }
        match rx.recv().await {
            // The batch after the lost ones starts beyond what was seen: a gap to read.
            Live::Batch(b) => assert_eq!(b.from, 100),
            other => panic!("expected a batch, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn events_over_the_byte_bound_are_left_for_the_log_and_bytes_come_back() {
        let feed = LiveFeed::with_max_bytes(10_000);
        let mut rx = feed.subscribe();
        let sized = |n: usize| Some(vec![event(1000); n]);
        feed.publish(0, 10, sized(5), Vec::new());
        let held_one = feed.held_bytes();
        assert!(held_one > 5000);
        // Would go over: published as a range only.
        feed.publish(10, 20, sized(9), Vec::new());
        assert_eq!(feed.held_bytes(), held_one);
        let first = match rx.recv().await {
            Live::Batch(b) => b,
            other => panic!("{other:?}"),
        };
        assert_eq!(first.events.as_ref().map(Vec::len), Some(5));
        match rx.recv().await {
            Live::Batch(b) => assert!(b.events.is_none() && (b.from, b.end) == (10, 20)),
            other => panic!("{other:?}"),
        }
        // Still in the ring (the channel keeps a batch until every receiver has it) until the
        // receiver lets go of the one it holds.
        drop(first);
        assert_eq!(feed.held_bytes(), 0);
        feed.publish(20, 30, sized(8), Vec::new());
        match rx.recv().await {
            Live::Batch(b) => assert_eq!(b.events.as_ref().map(Vec::len), Some(8)),
            other => panic!("{other:?}"),
        }
    }
}
