//! Events as clients propose them, as the log stores them, and as reads return them.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{LogPosition, StreamName, StreamRevision};

/// How an event's data is encoded. Reaches disk: explicit discriminants, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum ContentType {
    Binary = 0,
    Json = 1,
}

impl ContentType {
    /// `application/json` marks JSON; anything else is binary (PROTOCOL.md §3).
    pub fn from_mime(mime: &str) -> ContentType {
        if mime == "application/json" {
            ContentType::Json
        } else {
            ContentType::Binary
        }
    }

    pub fn as_mime(self) -> &'static str {
        match self {
            ContentType::Json => "application/json",
            ContentType::Binary => "application/octet-stream",
        }
    }
}

/// An event as a client sends it, before the node that takes the request stamps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposedEvent {
    pub id: Uuid,
    pub event_type: String,
    pub content_type: ContentType,
    pub custom_metadata: Bytes,
    pub data: Bytes,
}

impl ProposedEvent {
    /// Bytes this event adds to an append, for the maximum-append-size check.
    pub fn size_bytes(&self) -> usize {
        self.data.len() + self.custom_metadata.len() + self.event_type.len()
    }
}

/// An event as it is written into the log. Its revision is not stored: the state machine
/// assigns it when the append is applied, and the index keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub stream: StreamName,
    pub id: Uuid,
    pub event_type: String,
    pub content_type: ContentType,
    /// .NET ticks since the Unix epoch, stamped by the node that took the append (the
    /// leader, or a follower that forwarded it) before it was proposed.
    pub created_ticks: i64,
    pub custom_metadata: Bytes,
    pub data: Bytes,
}

impl EventRecord {
    pub fn from_proposed(stream: StreamName, event: ProposedEvent, created_ticks: i64) -> Self {
        EventRecord {
            stream,
            id: event.id,
            event_type: event.event_type,
            content_type: event.content_type,
            created_ticks,
            custom_metadata: event.custom_metadata,
            data: event.data,
        }
    }
}

/// An event as reads return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub record: EventRecord,
    pub revision: StreamRevision,
    pub position: LogPosition,
}
