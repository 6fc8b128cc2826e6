//! One running group: a task that owns the group's state and takes commands (connect,
//! ack, nack, disconnect, info, replay, stop) from a channel, so nothing in it is shared.
//!
//! **Decisions apart from effects** (issue 12, item 3; the shape of `stele-core`'s
//! `decision.rs`): what to do is decided on plain data, with no channel, node or clock —
//! [`flow`] (which message goes to which consumer, what a nack or a timeout does, when the
//! reader may hand over more, which parked messages an append writes) and [`window`]
//! (`processed_upto`, and when a checkpoint is due and at what position). This task feeds
//! them what happened (commands, pages from the [`reader`], timer ticks and
//! the current time, completions of appends) and carries out what they decide: sends to
//! consumers' channels, appends of checkpoints, parked links and the parked stream's
//! truncation, reads of the parked stream.
//!
//! **Timeouts.** A message not acknowledged within the group's message timeout is retried
//! at the next of the checks made every [`TIMEOUT_CHECK_INTERVAL`], as in EventStoreDB.
//!
//! **Checkpoints** are considered after messages are done and every `checkpoint_after`;
//! [`window`] says when one is due. A group started again reads the source from just after
//! its checkpoint, so a restart or failover redelivers only messages after it, and never
//! skips one.
//!
//! **Bounds.** The reader reads at most
//! [`Settings::read_ahead`](super::Settings::read_ahead) messages and [`BUFFER_MAX_BYTES`]
//! (plus one page) ahead of the consumers; sending stops at [`IN_FLIGHT_MAX_BYTES`] in
//! flight, whatever the consumers' buffer sizes (the task passes these to [`flow`] as its
//! `Limits`). Deliveries go through an unbounded channel per consumer whose length the
//! consumer's slots bound.
//!
//! **Replays** of the parked stream read it a page at a time, the next page once the retry
//! queue has been delivered ([`replay`]). What the group shows of itself is in [`info`].

mod flow;
mod info;
mod replay;
mod window;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use stele_cluster::Node;
use stele_core::{ContentType, ProposedEvent};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use uuid::Uuid;

pub(crate) use self::flow::Pending;
use self::flow::{Flow, Limits};
use self::window::Check;
use super::reader::{self, Page, ReaderConfig};
use super::storage::{append, checkpoint_event, ParkedPage};
use super::{
    ConnectRequest, Definition, Delivery, GroupInfo, GroupKey, NackAction, PsError,
    BUFFER_MAX_BYTES, IN_FLIGHT_MAX_BYTES,
};
use crate::access::ReadableStreams;
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

use self::info::Rate;

/// What the task keeps for a consumer: its channel, and what info shows of it.
struct Link {
    tx: mpsc::UnboundedSender<Delivery>,
    request: ConnectRequest,
    stats: Rate,
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
    /// The streams its creator may read (`None`: all).
    rights: Option<Arc<ReadableStreams>>,
    key: GroupKey,
    tx: mpsc::UnboundedSender<Command>,
    /// The decisions' state: messages, consumers, timeouts, parking, the checkpoint window.
    flow: Flow<Link>,
    next_consumer: u64,
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
pub(crate) fn spawn(
    node: Node,
    definition: Definition,
    start: Start,
    rights: Option<Arc<ReadableStreams>>,
) -> GroupHandle {
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
        rights: rights.clone(),
        from: start.from,
        batch: definition.settings.read_batch_size.max(1) as usize,
    });
    let settings = &definition.settings;
    let limits = Limits {
        read_ahead: settings.read_ahead(),
        buffer_max_bytes: BUFFER_MAX_BYTES,
        in_flight_max_bytes: IN_FLIGHT_MAX_BYTES,
        max_retry_count: settings.max_retry_count,
        message_timeout: (settings.message_timeout_ms > 0)
            .then(|| Duration::from_millis(settings.message_timeout_ms)),
    };
    let group = Group {
        key: definition.key.clone(),
        flow: Flow::new(limits, settings.consumer_strategy, start.checkpoint),
        node,
        definition,
        rights,
        tx: tx.clone(),
        next_consumer: 0,
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
            let wants_more = self.flow.wants_more();
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
                _ = timeout_timer.tick(), if self.flow.has_timeouts() => {
                    self.flow.expire(Instant::now());
                    self.write_parked();
                }
                _ = checkpoint_timer.tick() => self.maybe_checkpoint(Check::Interval),
            }
            self.flow.prune_timeouts();
            self.dispatch();
            if self.flow.retry_len() == 0 {
                if let Some((from, remaining)) = self.replay_next.take() {
                    self.read_parked_page(Some(from), remaining);
                }
            }
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
                self.flow.ack(ids);
                self.maybe_checkpoint(Check::Done);
            }
            Command::Nack {
                consumer,
                ids,
                action,
                reason,
            } => self.nack(consumer, ids, action, &reason),
            Command::Disconnect { consumer } => {
                self.flow.disconnect(consumer);
            }
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
                for consumer in self.flow.drain_consumers() {
                    let _ = consumer.link.tx.send(Delivery::Dropped(reason.clone()));
                }
                return Some((done, checkpoint));
            }
            Command::Parked { pending, result } => {
                if let Err(e) = &result {
                    tracing::warn!(group = %self.key.id(), error = %e, "parking messages failed; they will be retried");
                }
                self.parked += self.flow.parked(pending, result.is_ok());
                if result.is_ok() {
                    self.maybe_checkpoint(Check::Done);
                }
                self.write_parked();
            }
            Command::CheckpointWritten { position, result } => {
                if let Err(e) = &result {
                    tracing::warn!(group = %self.key.id(), error = %e, "writing a checkpoint failed")
                }
                self.flow.window.written(position, result.is_ok());
            }
            Command::Replayed { result, remaining } => self.replayed(result, remaining),
        }
        None
    }

    fn connect(&mut self, request: ConnectRequest) -> Result<Consumer, PsError> {
        if let Some(reason) = &self.failed {
            return Err(PsError::failed(&self.key, reason.clone()));
        }
        if self
            .flow
            .full(self.definition.settings.max_subscriber_count)
        {
            return Err(PsError::maximum_subscribers(&self.key));
        }
        let id = self.next_consumer;
        self.next_consumer += 1;
        let (tx, deliveries) = mpsc::unbounded_channel();
        let buffer_size = request.buffer_size;
        self.flow.connect(
            id,
            buffer_size,
            Link {
                tx,
                request,
                stats: Rate::default(),
            },
        );
        Ok(Consumer {
            subscription_id: self.key.id(),
            deliveries,
            handle: ConsumerHandle {
                id,
                tx: self.tx.clone(),
            },
        })
    }

    fn nack(&mut self, consumer: u64, ids: Vec<Uuid>, action: NackAction, reason: &str) {
        self.flow.nack(ids, action, reason);
        self.write_parked();
        if action == NackAction::Stop {
            if let Some(c) = self.flow.consumer(consumer) {
                let _ = c
                    .link
                    .tx
                    .send(Delivery::Dropped(PsError::dropped(&self.key)));
            }
            self.flow.disconnect(consumer);
        }
        self.maybe_checkpoint(Check::Done);
    }

    /// Starts the append of parked messages the flow decided on, if it did: links to them
    /// in the parked stream, in parking order.
    fn write_parked(&mut self) {
        let Some(parking) = self.flow.take_park_write() else {
            return;
        };
        let (pending, links): (Vec<Pending>, Vec<ProposedEvent>) = parking
            .into_iter()
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

    fn take_page(&mut self, page: Option<Result<Page, String>>) {
        match page {
            Some(Ok(page)) => {
                for (key, message) in page.messages {
                    self.last_known = Some(key);
                    self.flow.read(key, message);
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

    /// Sends messages while there are some and a consumer can take them.
    fn dispatch(&mut self) {
        while let Some(pick) = self.flow.pick() {
            let pending = self.flow.take(pick);
            let consumer = &mut self.flow.consumers_mut()[pick.consumer];
            if consumer
                .link
                .tx
                .send(Delivery::Message(Box::new(pending.message.clone())))
                .is_err()
            {
                // Gone; its disconnect is on the way.
                let id = consumer.id;
                self.flow.put_back(pick, pending);
                self.flow.disconnect(id);
                continue;
            }
            consumer.link.stats.total += 1;
            self.delivered.total += 1;
            self.flow.delivered(pick, pending, Instant::now());
        }
    }

    /// Writes a checkpoint if the window says one is due.
    fn maybe_checkpoint(&mut self, check: Check) {
        let settings = &self.definition.settings;
        let Some(position) = self.flow.window.checkpoint_due(
            check,
            settings.min_checkpoint_count,
            settings.max_checkpoint_count,
        ) else {
            return;
        };
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
        let Some(position) = self.flow.window.final_checkpoint() else {
            return;
        };
        let event = checkpoint_event(&self.key, position);
        if let Err(e) = append(&self.node, self.key.checkpoint_stream(), vec![event]).await {
            tracing::warn!(group = %self.key.id(), error = %e, "writing the last checkpoint failed");
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
