//! One running group: a task that owns the group's state and takes commands (connect,
//! ack, nack, disconnect, info, replay, stop) from a channel, so nothing in it is shared.
//!
//! **Messages.** The [`reader`](super::reader) fills `buffer` with what the source holds
//! after the group's position, at most [`Settings::read_ahead`] messages and
//! [`BUFFER_MAX_BYTES`] (plus one page) ahead; messages in flight stop being sent at
//! [`IN_FLIGHT_MAX_BYTES`], whatever the consumers' buffer sizes. `retry`
//! holds messages to deliver again (nacked, timed out, left behind by a consumer that went
//! away, replayed from the parked stream); it goes first. A message sent to a consumer is
//! `in_flight` until it is acknowledged, nacked or times out.
//!
//! **Timeouts.** A message not acknowledged within the group's message timeout is retried
//! at the next of the checks made every [`TIMEOUT_CHECK_INTERVAL`], as in EventStoreDB.
//!
//! **Checkpoints.** Every message read from the source has its source position in
//! `window` until it is done (acknowledged, skipped, or parked and the park written).
//! `processed_upto` is the highest position below which everything is done: a checkpoint
//! writes it, and a group started again reads the source from just after it. So a
//! restart or failover redelivers only messages after the checkpoint, and never skips one.
//! A checkpoint is written when `max_checkpoint_count` messages were done since the last,
//! or every `checkpoint_after` when at least `min_checkpoint_count` were.
//!
//! **Consumers.** Each has a number of free slots (its `buffer_size` minus its messages in
//! flight); the [`Picker`](super::strategy::Picker) chooses among them.
//!
//! **Parking.** Messages to park wait in `parking`, in the order they were parked; one
//! append at a time writes all that waited, in that order, so the parked stream (and a
//! replay of it) keeps the order in which messages were parked. A replay reads the parked
//! stream a page at a time (see [`Group::replay`]). Deliveries go
//! through an unbounded channel per consumer whose length the slots bound.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use stele_cluster::Node;
use stele_core::{ContentType, ProposedEvent};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::reader::{self, Page, ReaderConfig};
use super::storage::{append, checkpoint_event, read_parked, ParkedPage, REPLAY_PAGE_MESSAGES};
use super::strategy::{Candidate, Picker};
use super::{
    ConnectRequest, ConnectionInfo, Definition, Delivery, GroupInfo, GroupKey, Message, NackAction,
    PsError, BUFFER_MAX_BYTES, IN_FLIGHT_MAX_BYTES,
};
use crate::filter::EventFilter;
use crate::links::LINK_EVENT_TYPE;

/// How often message timeouts are checked, as EventStoreDB's persistent subscription timer
/// ticks (once a second): a message is retried at the first check after its timeout, so a
/// client that acknowledges in batches (the Python client: every 0.2 s) is not raced by a
/// timeout that just passed.
pub const TIMEOUT_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What a group's task is asked to do.
pub(crate) enum Command {
    Connect {
        request: ConnectRequest,
        reply: oneshot::Sender<Result<Consumer, PsError>>,
    },
    /// Any consumer may acknowledge any message (EventStoreDB does not check either).
    Ack {
        ids: Vec<Uuid>,
    },
    Nack {
        consumer: u64,
        ids: Vec<Uuid>,
        action: NackAction,
        reason: String,
    },
    Disconnect {
        consumer: u64,
    },
    Info {
        reply: oneshot::Sender<GroupInfo>,
    },
    ReplayParked {
        stop_at: Option<u64>,
        reply: oneshot::Sender<Result<(), PsError>>,
    },
    /// Drops every consumer with `reason` and ends the task; with `checkpoint`, writes the
    /// group's progress first.
    Stop {
        reason: PsError,
        checkpoint: bool,
        done: oneshot::Sender<()>,
    },
    // Completions of the work the task hands to other tasks.
    /// The messages of one parking append, in the order they were parked.
    Parked {
        pending: Vec<Pending>,
        result: Result<(), String>,
    },
    CheckpointWritten {
        position: u64,
        result: Result<(), String>,
    },
    /// A page of a replay of parked messages.
    Replayed {
        result: Result<ParkedPage, String>,
        /// Messages still to replay after the page (`None`: all there are).
        remaining: Option<u64>,
    },
}

/// A consumer's end: what it is sent, and how it answers.
pub struct Consumer {
    subscription_id: String,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
    handle: ConsumerHandle,
}

impl Consumer {
    /// `<stream>::<group>`.
    pub fn subscription_id(&self) -> String {
        self.subscription_id.clone()
    }

    /// The next delivery; `None` once the group is gone.
    pub async fn next(&mut self) -> Option<Delivery> {
        self.deliveries.recv().await
    }

    pub fn handle(&self) -> ConsumerHandle {
        self.handle.clone()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.handle.tx.send(Command::Disconnect {
            consumer: self.handle.id,
        });
    }
}

/// Acknowledges and nacks for one consumer; cheap to clone.
#[derive(Clone)]
pub struct ConsumerHandle {
    id: u64,
    tx: mpsc::UnboundedSender<Command>,
}

impl ConsumerHandle {
    pub fn ack(&self, ids: Vec<Uuid>) {
        let _ = self.tx.send(Command::Ack { ids });
    }

    pub fn nack(&self, ids: Vec<Uuid>, action: NackAction, reason: String) {
        let _ = self.tx.send(Command::Nack {
            consumer: self.id,
            ids,
            action,
            reason,
        });
    }
}

/// The running group, as the subsystem holds it.
pub(crate) struct GroupHandle {
    pub tx: mpsc::UnboundedSender<Command>,
}

/// A message waiting to be delivered.
#[derive(Debug)]
pub(crate) struct Pending {
    message: Message,
    /// Its position in the source; `None` for a message replayed from the parked stream.
    key: Option<u64>,
}

struct InFlight {
    pending: Pending,
    consumer: u64,
    /// Tells this delivery's timeout apart from a later delivery's.
    delivery: u64,
}

struct ConsumerState {
    id: u64,
    tx: mpsc::UnboundedSender<Delivery>,
    buffer_size: u32,
    in_flight: u32,
    request: ConnectRequest,
    stats: Rate,
}

/// A count and its rate since the last look.
#[derive(Default)]
struct Rate {
    total: u64,
    at_last_measurement: u64,
    measured_at: Option<Instant>,
}

impl Rate {
    /// `(per second, count since last measurement)`, and starts a new measurement.
    fn measure(&mut self) -> (f64, u64) {
        let now = Instant::now();
        let since = self.total - self.at_last_measurement;
        let rate = match self.measured_at {
            Some(at) if now > at => since as f64 / (now - at).as_secs_f64(),
            _ => 0.0,
        };
        self.at_last_measurement = self.total;
        self.measured_at = Some(now);
        (rate, since)
    }
}

/// Where a group starts and what it knows of its parked stream, loaded before it runs.
pub(crate) struct Start {
    /// The last checkpoint written, if any.
    pub checkpoint: Option<u64>,
    /// The first position to read.
    pub from: u64,
    /// Messages in the parked stream.
    pub parked: u64,
}

struct Group {
    node: Node,
    definition: Definition,
    key: GroupKey,
    tx: mpsc::UnboundedSender<Command>,
    consumers: Vec<ConsumerState>,
    next_consumer: u64,
    picker: Picker,
    /// Reused by `dispatch` for every message.
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
    next_delivery: u64,
    /// `(deadline, id, delivery)` in delivery order (one timeout for all, so deadlines
    /// ascend).
    timeouts: VecDeque<(Instant, Uuid, u64)>,
    /// Source positions read and not done yet (`false`), or done while an earlier one is
    /// not (`true`).
    window: BTreeMap<u64, bool>,
    processed_upto: Option<u64>,
    done_since_checkpoint: u64,
    last_checkpoint: Option<u64>,
    checkpoint_writing: bool,
    last_known: Option<u64>,
    reader: Option<mpsc::Receiver<Result<Page, String>>>,
    live: bool,
    replaying: bool,
    /// The next page of a replay, read once the retry queue is empty: where it starts in
    /// the parked stream, and how many messages are still to replay (`None`: all).
    replay_next: Option<(u64, Option<u64>)>,
    /// The parked stream's truncate-before written last; appends of it are serialised so
    /// that it only moves forwards.
    parked_truncated: Arc<tokio::sync::Mutex<u64>>,
    parked: u64,
    delivered: Rate,
    failed: Option<String>,
}

/// Starts a group's task.
pub(crate) fn spawn(node: Node, definition: Definition, start: Start) -> GroupHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let filter = definition
        .filter
        .clone()
        .and_then(|spec| EventFilter::from_spec(spec).ok())
        .map(Arc::new);
    let reader = reader::spawn(ReaderConfig {
        node: node.clone(),
        source: definition.key.source.clone(),
        filter,
        resolve_links: definition.settings.resolve_links,
        from: start.from,
        batch: definition.settings.read_batch_size.max(1) as usize,
    });
    let group = Group {
        key: definition.key.clone(),
        picker: Picker::new(definition.settings.consumer_strategy),
        candidates: Vec::new(),
        node,
        definition,
        tx: tx.clone(),
        consumers: Vec::new(),
        next_consumer: 0,
        retry: VecDeque::new(),
        buffer: VecDeque::new(),
        in_flight: HashMap::new(),
        buffer_bytes: 0,
        in_flight_bytes: 0,
        parking: Vec::new(),
        parking_now: false,
        next_delivery: 0,
        timeouts: VecDeque::new(),
        window: BTreeMap::new(),
        processed_upto: start.checkpoint,
        done_since_checkpoint: 0,
        last_checkpoint: start.checkpoint,
        checkpoint_writing: false,
        last_known: start.checkpoint,
        reader: Some(reader),
        live: false,
        replaying: false,
        replay_next: None,
        parked_truncated: Arc::new(tokio::sync::Mutex::new(0)),
        parked: start.parked,
        delivered: Rate::default(),
        failed: None,
    };
    tokio::spawn(group.run(rx));
    GroupHandle { tx }
}

impl Group {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        let settings = &self.definition.settings;
        let mut checkpoint_timer =
            tokio::time::interval(Duration::from_millis(settings.checkpoint_after_ms.max(10)));
        checkpoint_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut timeout_timer = tokio::time::interval(TIMEOUT_CHECK_INTERVAL);
        timeout_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let wants_more = self.buffer.len() < self.definition.settings.read_ahead()
                && self.buffer_bytes < BUFFER_MAX_BYTES;
            tokio::select! {
                command = rx.recv() => {
                    let Some(command) = command else { return };
                    if let Some((done, checkpoint)) = self.handle(command) {
                        if checkpoint {
                            self.final_checkpoint().await;
                        }
                        let _ = done.send(());
                        return;
                    }
                }
                page = recv_page(&mut self.reader), if wants_more => self.take_page(page),
                _ = timeout_timer.tick(), if !self.timeouts.is_empty() => self.expire(),
                _ = checkpoint_timer.tick() => self.maybe_checkpoint(true),
            }
            self.prune_timeouts();
            self.dispatch();
            if self.retry.is_empty() {
                if let Some((from, remaining)) = self.replay_next.take() {
                    self.read_parked_page(Some(from), remaining);
                }
            }
        }
    }

    /// Drops timeouts of deliveries already answered from the front of the queue, so the
    /// queue stays about as long as the messages in flight (acknowledgements mostly come
    /// in delivery order).
    fn prune_timeouts(&mut self) {
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

    /// Handles one command; when the group is to stop, returns the completion to signal
    /// and whether to write a checkpoint first.
    fn handle(&mut self, command: Command) -> Option<(oneshot::Sender<()>, bool)> {
        match command {
            Command::Connect { request, reply } => {
                let _ = reply.send(self.connect(request));
            }
            Command::Ack { ids } => {
                for id in ids {
                    if let Some(flight) = self.take_in_flight(id) {
                        self.done(flight.pending.key);
                    }
                }
                self.maybe_checkpoint(false);
            }
            Command::Nack {
                consumer,
                ids,
                action,
                reason,
            } => self.nack(consumer, ids, action, &reason),
            Command::Disconnect { consumer } => self.disconnect(consumer),
            Command::Info { reply } => {
                let _ = reply.send(self.info());
            }
            Command::ReplayParked { stop_at, reply } => {
                let _ = reply.send(self.replay(stop_at));
            }
            Command::Stop {
                reason,
                checkpoint,
                done,
            } => {
                for consumer in self.consumers.drain(..) {
                    let _ = consumer.tx.send(Delivery::Dropped(reason.clone()));
                }
                return Some((done, checkpoint));
            }
            Command::Parked { pending, result } => {
                self.parking_now = false;
                match result {
                    Ok(()) => {
                        for parked in pending {
                            self.parked += 1;
                            self.done(parked.key);
                        }
                        self.maybe_checkpoint(false);
                    }
                    Err(e) => {
                        tracing::warn!(group = %self.key.id(), error = %e, "parking messages failed; they will be retried");
                        for parked in pending.into_iter().rev() {
                            self.retry.push_front(parked);
                        }
                    }
                }
                self.write_parked();
            }
            Command::CheckpointWritten { position, result } => {
                self.checkpoint_writing = false;
                match result {
                    Ok(()) => self.last_checkpoint = Some(position),
                    Err(e) => {
                        tracing::warn!(group = %self.key.id(), error = %e, "writing a checkpoint failed")
                    }
                }
            }
            Command::Replayed { result, remaining } => self.replayed(result, remaining),
        }
        None
    }

    fn connect(&mut self, request: ConnectRequest) -> Result<Consumer, PsError> {
        if let Some(reason) = &self.failed {
            return Err(PsError::failed(&self.key, reason.clone()));
        }
        let max = self.definition.settings.max_subscriber_count;
        if max > 0 && self.consumers.len() >= max as usize {
            return Err(PsError::maximum_subscribers(&self.key));
        }
        let id = self.next_consumer;
        self.next_consumer += 1;
        let (tx, deliveries) = mpsc::unbounded_channel();
        self.consumers.push(ConsumerState {
            id,
            tx,
            buffer_size: request.buffer_size.max(1),
            in_flight: 0,
            request,
            stats: Rate::default(),
        });
        Ok(Consumer {
            subscription_id: self.key.id(),
            deliveries,
            handle: ConsumerHandle {
                id,
                tx: self.tx.clone(),
            },
        })
    }

    fn disconnect(&mut self, consumer: u64) {
        let Some(index) = self.consumers.iter().position(|c| c.id == consumer) else {
            return;
        };
        self.consumers.remove(index);
        // Its messages go to the others, in source order, ahead of anything else.
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

    fn nack(&mut self, consumer: u64, ids: Vec<Uuid>, action: NackAction, reason: &str) {
        for id in ids {
            let Some(flight) = self.take_in_flight(id) else {
                continue;
            };
            match action {
                NackAction::Park => self.park(flight.pending, reason),
                NackAction::Retry => self.retry_or_park(flight.pending, reason),
                NackAction::Skip => self.done(flight.pending.key),
                NackAction::Stop => self.retry.push_front(flight.pending),
            }
        }
        if action == NackAction::Stop {
            if let Some(c) = self.consumers.iter().find(|c| c.id == consumer) {
                let _ = c.tx.send(Delivery::Dropped(PsError::dropped(&self.key)));
            }
            self.disconnect(consumer);
        }
        self.maybe_checkpoint(false);
    }

    fn retry_or_park(&mut self, mut pending: Pending, reason: &str) {
        pending.message.retry_count += 1;
        if pending.message.retry_count > self.definition.settings.max_retry_count {
            pending.message.retry_count -= 1;
            self.park(pending, &format!("max retry count reached ({reason})"));
        } else {
            self.retry.push_back(pending);
        }
    }

    /// Queues the message to be parked: a link to it in the parked stream, written in
    /// parking order; the message is done once its link is written.
    fn park(&mut self, pending: Pending, reason: &str) {
        self.parking.push((pending, reason.to_owned()));
        self.write_parked();
    }

    /// Writes every queued park in one append, unless one is being written.
    fn write_parked(&mut self) {
        if self.parking_now || self.parking.is_empty() {
            return;
        }
        self.parking_now = true;
        let (pending, links): (Vec<Pending>, Vec<ProposedEvent>) = self
            .parking
            .drain(..)
            .map(|(pending, reason)| {
                let link = parked_link(&pending, &reason);
                (pending, link)
            })
            .unzip();
        let node = self.node.clone();
        let stream = self.key.parked_stream();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let result = append(&node, stream, links).await;
            let _ = tx.send(Command::Parked { pending, result });
        });
    }

    /// Marks a source position done and moves `processed_upto` over every done position
    /// at the start of the window.
    fn done(&mut self, key: Option<u64>) {
        let Some(key) = key else { return };
        if let Some(done) = self.window.get_mut(&key) {
            *done = true;
        }
        while let Some(entry) = self.window.first_entry() {
            if !*entry.get() {
                break;
            }
            let (position, _) = entry.remove_entry();
            self.processed_upto = Some(position);
            self.done_since_checkpoint += 1;
        }
    }

    fn take_page(&mut self, page: Option<Result<Page, String>>) {
        match page {
            Some(Ok(page)) => {
                for (key, message) in page.messages {
                    self.window.insert(key, false);
                    self.buffer_bytes += message.size_bytes();
                    self.last_known = Some(key);
                    self.buffer.push_back(Pending {
                        message,
                        key: Some(key),
                    });
                }
                self.live = page.live;
            }
            Some(Err(e)) => {
                tracing::error!(group = %self.key.id(), error = %e, "reading the group's source failed");
                self.failed = Some(e);
                self.reader = None;
            }
            None => self.reader = None,
        }
    }

    /// Retries every message whose delivery timed out.
    fn expire(&mut self) {
        let now = Instant::now();
        while let Some(&(at, id, delivery)) = self.timeouts.front() {
            if at > now {
                break;
            }
            self.timeouts.pop_front();
            let current = self
                .in_flight
                .get(&id)
                .is_some_and(|f| f.delivery == delivery);
            if current {
                let flight = self.take_in_flight(id).expect("checked above");
                self.retry_or_park(flight.pending, "message timeout");
            }
        }
    }

    /// Sends messages while there are some and a consumer can take them.
    fn dispatch(&mut self) {
        let timeout = Duration::from_millis(self.definition.settings.message_timeout_ms);
        loop {
            let from_retry = !self.retry.is_empty();
            let Some(next) = self.retry.front().or(self.buffer.front()) else {
                return;
            };
            let id = next.message.ack_id();
            if self.in_flight_bytes >= IN_FLIGHT_MAX_BYTES {
                // Consumers hold enough unacknowledged; wait for acks or timeouts.
                return;
            }
            if self.in_flight.contains_key(&id) {
                // The same record is still out (parked and replayed meanwhile): wait for it.
                return;
            }
            self.candidates.clear();
            self.candidates
                .extend(self.consumers.iter().map(|c| Candidate {
                    id: c.id,
                    free_slots: c.buffer_size.saturating_sub(c.in_flight),
                }));
            let Some(index) = self.picker.pick(&self.candidates, &next.message) else {
                return;
            };
            let pending = if from_retry {
                self.retry.pop_front()
            } else {
                self.buffer.pop_front().inspect(|p| {
                    self.buffer_bytes -= p.message.size_bytes();
                })
            }
            .expect("peeked above");
            let consumer = &mut self.consumers[index];
            if consumer
                .tx
                .send(Delivery::Message(Box::new(pending.message.clone())))
                .is_err()
            {
                // Gone; its disconnect is on the way.
                let id = consumer.id;
                if from_retry {
                    self.retry.push_front(pending);
                } else {
                    self.buffer_bytes += pending.message.size_bytes();
                    self.buffer.push_front(pending);
                }
                self.disconnect(id);
                continue;
            }
            consumer.in_flight += 1;
            consumer.stats.total += 1;
            self.delivered.total += 1;
            let delivery = self.next_delivery;
            self.next_delivery += 1;
            if self.definition.settings.message_timeout_ms > 0 {
                self.timeouts
                    .push_back((Instant::now() + timeout, id, delivery));
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
    }

    fn maybe_checkpoint(&mut self, timed: bool) {
        let settings = &self.definition.settings;
        let due = if timed {
            self.done_since_checkpoint >= u64::from(settings.min_checkpoint_count.max(1))
        } else {
            self.done_since_checkpoint >= u64::from(settings.max_checkpoint_count.max(1))
        };
        if due {
            self.write_checkpoint();
        }
    }

    fn write_checkpoint(&mut self) {
        let Some(position) = self.processed_upto else {
            return;
        };
        if self.checkpoint_writing || self.last_checkpoint == Some(position) {
            return;
        }
        self.checkpoint_writing = true;
        self.done_since_checkpoint = 0;
        let event = checkpoint_event(&self.key, position);
        let node = self.node.clone();
        let stream = self.key.checkpoint_stream();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let result = append(&node, stream, vec![event]).await;
            let _ = tx.send(Command::CheckpointWritten { position, result });
        });
    }

    /// Writes the group's progress and waits for it (the group is stopping).
    async fn final_checkpoint(&mut self) {
        let Some(position) = self.processed_upto else {
            return;
        };
        if self.last_checkpoint == Some(position) {
            return;
        }
        let event = checkpoint_event(&self.key, position);
        if let Err(e) = append(&self.node, self.key.checkpoint_stream(), vec![event]).await {
            tracing::warn!(group = %self.key.id(), error = %e, "writing the last checkpoint failed");
        }
    }

    /// Starts replaying the parked stream: `stop_at` messages at most, else all there now.
    /// It is read [`REPLAY_PAGE_MESSAGES`] links (and at most a reader page of bytes) at a
    /// time, the next page once the retry queue has been delivered, so a long parked stream
    /// never sits in memory whole.
    fn replay(&mut self, stop_at: Option<u64>) -> Result<(), PsError> {
        if self.replaying {
            return Ok(());
        }
        self.replaying = true;
        self.read_parked_page(None, stop_at);
        Ok(())
    }

    fn read_parked_page(&mut self, from: Option<u64>, remaining: Option<u64>) {
        let max = remaining.map_or(REPLAY_PAGE_MESSAGES, |r| r.min(REPLAY_PAGE_MESSAGES));
        if max == 0 {
            self.replaying = false;
            return;
        }
        let node = self.node.clone();
        let stream = self.key.parked_stream();
        let resolve_links = self.definition.settings.resolve_links;
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let result = stele_cluster::blocking::spawn(move || {
                read_parked(&node, &stream, resolve_links, from, max)
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
            let _ = tx.send(Command::Replayed { result, remaining });
        });
    }

    fn replayed(&mut self, result: Result<ParkedPage, String>, remaining: Option<u64>) {
        let page = match result {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(group = %self.key.id(), error = %e, "replaying parked messages failed");
                self.replaying = false;
                return;
            }
        };
        let count = page.messages.len() as u64;
        for message in page.messages {
            self.retry.push_back(Pending { message, key: None });
        }
        self.parked = self.parked.saturating_sub(count);
        let remaining = remaining.map(|r| r.saturating_sub(page.links_read));
        match page.next {
            Some(next) => {
                self.truncate_parked(next);
                if page.full && remaining != Some(0) {
                    self.replay_next = Some((next, remaining));
                } else {
                    self.replaying = false;
                }
            }
            None => self.replaying = false,
        }
    }

    /// Replayed messages leave the parked stream: moves its start (`$tb`) past them.
    fn truncate_parked(&self, truncate_before: u64) {
        let node = self.node.clone();
        let stream = self.key.parked_stream();
        let group = self.key.id();
        let written = self.parked_truncated.clone();
        tokio::spawn(async move {
            let mut written = written.lock().await;
            if *written >= truncate_before {
                return;
            }
            let metadata = serde_json::json!({ "$tb": truncate_before }).to_string();
            let event = ProposedEvent {
                id: stele_cluster::determinism::new_uuid(),
                event_type: "$metadata".to_owned(),
                content_type: ContentType::Json,
                custom_metadata: Bytes::new(),
                data: Bytes::from(metadata.into_bytes()),
            };
            match append(&node, stream.metadata_stream(), vec![event]).await {
                Ok(()) => *written = truncate_before,
                Err(e) => {
                    tracing::warn!(%group, error = %e, "truncating the parked stream after a replay failed")
                }
            }
        });
    }

    fn info(&mut self) -> GroupInfo {
        let (average_per_second, count_since_last_measurement) = self.delivered.measure();
        let connections = self
            .consumers
            .iter_mut()
            .map(|c| {
                let (rate, since) = c.stats.measure();
                ConnectionInfo {
                    from: c.request.from.clone(),
                    username: c.request.username.clone(),
                    connection_name: c.request.connection_name.clone(),
                    average_items_per_second: rate,
                    total_items: c.stats.total,
                    count_since_last_measurement: since,
                    available_slots: u64::from(c.buffer_size.saturating_sub(c.in_flight)),
                    in_flight_messages: u64::from(c.in_flight),
                    extra_statistics: Vec::new(),
                }
            })
            .collect();
        let status = if self.failed.is_some() {
            "Failed"
        } else if self.replaying {
            "ReplayingParkedMessages"
        } else if self.live {
            "Live"
        } else {
            "CatchingUp"
        };
        let (read_buffer_count, live_buffer_count) = if self.live {
            (0, self.buffer.len() as u64)
        } else {
            (self.buffer.len() as u64, 0)
        };
        GroupInfo {
            definition: self.definition.clone(),
            status: status.to_owned(),
            connections,
            average_per_second,
            total_items: self.delivered.total,
            count_since_last_measurement,
            last_checkpointed_position: self.last_checkpoint,
            last_known_position: self.last_known,
            read_buffer_count,
            live_buffer_count,
            buffered_bytes: self.buffer_bytes as u64,
            retry_buffer_count: self.retry.len() as u64,
            total_in_flight_messages: self.in_flight.len() as u64,
            outstanding_messages_count: self.in_flight.len() as u64,
            parked_message_count: self.parked,
        }
    }
}

async fn recv_page(
    reader: &mut Option<mpsc::Receiver<Result<Page, String>>>,
) -> Option<Result<Page, String>> {
    match reader {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The link that parks a message, with the reason in its metadata.
fn parked_link(pending: &Pending, reason: &str) -> ProposedEvent {
    let original = pending.message.original();
    ProposedEvent {
        id: stele_cluster::determinism::new_uuid(),
        event_type: LINK_EVENT_TYPE.to_owned(),
        content_type: ContentType::Binary,
        custom_metadata: Bytes::from(
            serde_json::json!({ "$reason": reason })
                .to_string()
                .into_bytes(),
        ),
        data: Bytes::from(
            format!("{}@{}", original.revision.0, original.record.stream).into_bytes(),
        ),
    }
}
