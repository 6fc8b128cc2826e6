//! Persistent subscriptions (PROTOCOL.md §7): server-side consumer groups that remember
//! where they are, deliver each event to one of their consumers, retry what is not
//! acknowledged in time and park what keeps failing.
//!
//! This module is the engine; the gRPC service (`grpc::persistent`) and the HTTP
//! `/subscriptions` endpoints (`http::subscriptions`) are thin translations over
//! [`Subsystem`].
//!
//! **Where things live.** Everything a group needs to survive a restart or a failover is in
//! the log, replicated like any event:
//! - definitions: the whole set, one JSON document per change, in
//!   [`CONFIG_STREAM`] (`$persistentSubscriptionConfig`, event type [`CONFIG_EVENT_TYPE`]);
//!   the last event is the truth;
//! - checkpoints: `$persistentsubscription-<stream>::<group>-checkpoint`, event type
//!   `$SubscriptionCheckpoint`, data the JSON string of the last processed position
//!   (a revision, or `C:<p>/P:<p>` for `$all`);
//! - parked messages: links (`$>`, `<revision>@<stream>`) in
//!   `$persistentsubscription-<stream>::<group>-parked`; a replay moves the stream's
//!   truncate-before (`$tb`) past what it replayed.
//!
//! **Where groups run.** Only on the leader, as in EventStoreDB: the [`Subsystem`] loads the
//! definitions when its node becomes leader and starts one task per group; when the node
//! stops leading it drops every consumer and stops the groups. Requests to another node are
//! answered with not-leader and the leader's address, which the official clients follow.
//!
//! **Whose rights.** A group reads with the rights of the principal that created it
//! (issue 13; stored with its definition, kept by updates): creating needs read access to
//! the source, a `$all` group of a user who does not bypass ACLs sees only the events of
//! streams that user may read, links resolve only into such streams, and a stream group
//! whose creator may no longer read its stream fails. Definitions written before groups had
//! creators run as the system.
//!
//! The group itself is in [`group`] (its decisions, on plain data, in `group::flow` and
//! `group::window`; its effects in the group's task); which consumer gets a message, in
//! [`strategy`].

mod config;
mod group;
mod reader;
#[cfg(test)]
mod rights_tests;
pub mod settings;
mod storage;
pub mod strategy;
mod subsystem;
#[cfg(test)]
mod tests;

use stele_core::access::Principal;
use stele_core::{RecordedEvent, StreamName};
use uuid::Uuid;

pub use group::{Consumer, ConsumerHandle};
pub use settings::{Settings, StartFrom, Strategy};
pub use subsystem::Subsystem;

use crate::filter::FilterSpec;

/// The stream every definition change is written to.
pub const CONFIG_STREAM: &str = "$persistentSubscriptionConfig";
/// The type of those events (the Python client's default `$all` filter leaves out
/// `PersistentConfig\d+`).
pub const CONFIG_EVENT_TYPE: &str = "PersistentConfig1";
/// The type of checkpoint events.
pub const CHECKPOINT_EVENT_TYPE: &str = "$SubscriptionCheckpoint";

/// The messages a group reads ahead of its consumers stop being read once they hold this
/// many bytes, whatever the group's buffer sizes (which count events, up to 2^31-1).
pub const BUFFER_MAX_BYTES: usize = 32 * 1024 * 1024;

/// Messages out to consumers stop being sent once those unacknowledged hold this many
/// bytes, whatever the consumers' buffer sizes.
pub const IN_FLIGHT_MAX_BYTES: usize = 64 * 1024 * 1024;

/// What a group reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Stream(StreamName),
    All,
}

impl Source {
    /// The name in ids, stream names and info: the stream, or `$all`.
    pub fn name(&self) -> &str {
        match self {
            Source::Stream(stream) => stream.as_str(),
            Source::All => "$all",
        }
    }

    /// A position as EventStoreDB shows it: a revision for a stream, `C:<p>/P:<p>` for `$all`.
    pub fn format_position(&self, position: u64) -> String {
        match self {
            Source::Stream(_) => position.to_string(),
            Source::All => format!("C:{position}/P:{position}"),
        }
    }

    /// Reads [`Source::format_position`]'s form back.
    pub fn parse_position(&self, text: &str) -> Option<u64> {
        match self {
            Source::Stream(_) => text.trim().parse().ok(),
            Source::All => {
                let rest = text.trim().strip_prefix("C:")?;
                let (commit, prepare) = rest.split_once("/P:")?;
                let commit: u64 = commit.parse().ok()?;
                let _: u64 = prepare.parse().ok()?;
                Some(commit)
            }
        }
    }
}

/// A group: its source and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    pub source: Source,
    pub group: String,
}

impl GroupKey {
    pub fn new(source: Source, group: impl Into<String>) -> GroupKey {
        GroupKey {
            source,
            group: group.into(),
        }
    }

    /// `<stream>::<group>`: the subscription id clients are given (the Python client checks
    /// it) and the stem of the checkpoint and parked streams.
    pub fn id(&self) -> String {
        format!("{}::{}", self.source.name(), self.group)
    }

    pub fn checkpoint_stream(&self) -> StreamName {
        StreamName::new(format!("$persistentsubscription-{}-checkpoint", self.id()))
            .expect("a non-empty stream name")
    }

    pub fn parked_stream(&self) -> StreamName {
        StreamName::new(format!("$persistentsubscription-{}-parked", self.id()))
            .expect("a non-empty stream name")
    }
}

/// A group's definition, as stored in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    pub key: GroupKey,
    /// Only for `$all`: which events the group sees.
    pub filter: Option<FilterSpec>,
    pub settings: Settings,
    /// Who created it: the group reads with its rights (see the module docs).
    pub creator: Principal,
}

/// Why a request failed; `grpc::status` and the HTTP routes turn these into wire answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PsError {
    #[error("Subscription group {group} on stream {stream} does not exist.")]
    DoesNotExist { stream: String, group: String },
    #[error("Subscription group {group} on stream {stream} exists.")]
    AlreadyExists { stream: String, group: String },
    #[error("Maximum subscriptions reached for subscription group {group} on stream {stream}.")]
    MaximumSubscribersReached { stream: String, group: String },
    #[error("Subscription group {group} on stream {stream} was dropped.")]
    Dropped { stream: String, group: String },
    #[error("this node is not the leader")]
    NotLeader { leader: Option<(String, u16)> },
    #[error("server is not ready")]
    NotReady,
    #[error("{0}")]
    InvalidArgument(String),
    /// The creator may not read the group's source.
    #[error("Access Denied")]
    AccessDenied,
    #[error("Subscription group {group} on stream {stream} failed: '{reason}'")]
    Failed {
        stream: String,
        group: String,
        reason: String,
    },
}

impl PsError {
    pub fn does_not_exist(key: &GroupKey) -> PsError {
        PsError::DoesNotExist {
            stream: key.source.name().to_owned(),
            group: key.group.clone(),
        }
    }
    pub fn already_exists(key: &GroupKey) -> PsError {
        PsError::AlreadyExists {
            stream: key.source.name().to_owned(),
            group: key.group.clone(),
        }
    }
    pub fn maximum_subscribers(key: &GroupKey) -> PsError {
        PsError::MaximumSubscribersReached {
            stream: key.source.name().to_owned(),
            group: key.group.clone(),
        }
    }
    pub fn dropped(key: &GroupKey) -> PsError {
        PsError::Dropped {
            stream: key.source.name().to_owned(),
            group: key.group.clone(),
        }
    }
    pub fn failed(key: &GroupKey, reason: impl Into<String>) -> PsError {
        PsError::Failed {
            stream: key.source.name().to_owned(),
            group: key.group.clone(),
            reason: reason.into(),
        }
    }
}

/// What a consumer sends back for messages it could not handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NackAction {
    /// Write it to the parked stream; the group goes on.
    Park,
    /// Deliver it again (to any consumer), with its retry count one higher; parked once the
    /// count passes the group's maximum.
    Retry,
    /// Treat it as handled.
    Skip,
    /// Stop this consumer: it is dropped, and the message goes back to be retried.
    Stop,
}

/// A consumer joining a group (one `PersistentSubscriptions.Read` call).
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    pub key: GroupKey,
    /// Messages the consumer may have unacknowledged at once (`buffer_size`).
    pub buffer_size: u32,
    /// The `connection-name` header, for info.
    pub connection_name: String,
    /// The client's address, for info.
    pub from: String,
    /// The authenticated user, for info (empty when anonymous).
    pub username: String,
}

/// One message to a consumer.
#[derive(Debug, Clone)]
pub struct Message {
    /// The event, or a link's target; `None` for a link whose target cannot be read.
    pub event: Option<RecordedEvent>,
    /// The link the event came through, when the group resolves links.
    pub link: Option<RecordedEvent>,
    /// Times this message was delivered before (0 the first time).
    pub retry_count: u32,
}

impl Message {
    /// The id a consumer acknowledges: the link's when there is one.
    pub fn ack_id(&self) -> Uuid {
        self.original().record.id
    }

    /// What the message holds in memory (the event and its link: payloads, names and the
    /// records themselves), for the group's byte bounds.
    pub fn size_bytes(&self) -> usize {
        [self.event.as_ref(), self.link.as_ref()]
            .into_iter()
            .flatten()
            .map(|e| {
                std::mem::size_of::<RecordedEvent>()
                    + e.record.data.len()
                    + e.record.custom_metadata.len()
                    + e.record.event_type.len()
                    + e.record.stream.as_str().len()
            })
            .sum()
    }

    /// The record the group read: the link if there is one, else the event.
    pub fn original(&self) -> &RecordedEvent {
        self.link
            .as_ref()
            .or(self.event.as_ref())
            .expect("a message has an event or a link")
    }
}

/// What a consumer receives.
#[derive(Debug, Clone)]
pub enum Delivery {
    Message(Box<Message>),
    /// The consumer was dropped (the group was updated, deleted or restarted, the node
    /// stopped leading, or the consumer nacked with Stop); nothing follows.
    Dropped(PsError),
}

/// One consumer in a group's info.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectionInfo {
    pub from: String,
    pub username: String,
    pub connection_name: String,
    pub average_items_per_second: f64,
    pub total_items: u64,
    pub count_since_last_measurement: u64,
    pub available_slots: u64,
    pub in_flight_messages: u64,
    /// Latency measurements, only with `extra_statistics`.
    pub extra_statistics: Vec<(String, i64)>,
}

/// A group's definition and state (GetInfo, List, `/subscriptions`).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupInfo {
    pub definition: Definition,
    /// `Live`, `CatchingUp`, `ReplayingParkedMessages` or `NotReady`.
    pub status: String,
    pub connections: Vec<ConnectionInfo>,
    pub average_per_second: f64,
    pub total_items: u64,
    pub count_since_last_measurement: u64,
    /// The last position every message up to which was handled, as written in the log.
    pub last_checkpointed_position: Option<u64>,
    /// The position of the last event the group read.
    pub last_known_position: Option<u64>,
    pub read_buffer_count: u64,
    pub live_buffer_count: u64,
    /// Bytes of the messages read ahead (the read or live buffer), at most
    /// [`BUFFER_MAX_BYTES`] plus one page.
    pub buffered_bytes: u64,
    pub retry_buffer_count: u64,
    pub total_in_flight_messages: u64,
    pub outstanding_messages_count: u64,
    pub parked_message_count: u64,
}

impl GroupInfo {
    /// `start_from` as EventStoreDB shows it: `0`/`-1`/revision, or `C:0/P:0`,
    /// `C:-1/P:-1`, `C:<p>/P:<p>` for `$all`.
    pub fn start_from_text(&self) -> String {
        let source = &self.definition.key.source;
        match (self.definition.settings.start_from, source) {
            (StartFrom::Start, Source::Stream(_)) => "0".to_owned(),
            (StartFrom::End, Source::Stream(_)) => "-1".to_owned(),
            (StartFrom::Start, Source::All) => "C:0/P:0".to_owned(),
            (StartFrom::End, Source::All) => "C:-1/P:-1".to_owned(),
            (StartFrom::At(p), _) => source.format_position(p),
        }
    }
}
