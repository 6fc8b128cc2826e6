//! The checks every write passes before it enters the log, whichever way it arrived: from a
//! client through the API, or from a follower that forwarded it over the internal port (whose
//! commands were deserialised, so [`StreamName`]'s rules were never run on them). The leader
//! runs [`validate_command`] on every command it proposes (issue 11, items 5 and 6).
//!
//! Sizes count what an append costs in the log, not only what the client sent: every event
//! record carries its stream's name and a fixed framing, so an append of many empty events to
//! a long name is as large as it is on disk.

use uuid::Uuid;

use crate::{Command, EventRecord, ProposedEvent, StreamName, StreamNameError};

/// An upper bound on what one event record costs in the log beyond its stream name, event
/// type, metadata and data: the chunk log's record header (8 bytes), the record's entry
/// header (log id and part numbers, at most 40 bytes of varints), and the event's own framing
/// (expected revision, id, content type, timestamp and length prefixes, at most 60 bytes).
/// `stele-cluster`'s record tests check the encoding against it.
pub const EVENT_RECORD_OVERHEAD_BYTES: usize = 128;

/// The node's limits on writes (`MaxAppendSize`, `MaxAppendEventSize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteLimits {
    /// The most an append may cost in the log, every record counted in full.
    pub max_append_size_bytes: u32,
    /// The most one event's data, metadata and type may add up to (EventStoreDB's measure).
    pub max_append_event_size_bytes: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCommand {
    #[error(transparent)]
    StreamName(#[from] StreamNameError),
    #[error("event {event_id} names stream '{event_stream}', not the stream appended to")]
    EventStreamMismatch {
        event_id: Uuid,
        event_stream: StreamName,
    },
    #[error(
        "event {event_id} of {size_bytes} bytes exceeds the maximum event size of {max_bytes}"
    )]
    EventTooLarge {
        event_id: Uuid,
        size_bytes: u32,
        max_bytes: u32,
    },
    #[error("maximum append size of {max_bytes} exceeded")]
    AppendTooLarge { max_bytes: u32 },
    /// A [`Command::WithMetadata`] from outside: only the leader builds those, from the
    /// metadata it has applied.
    #[error("a write with a metadata event is built by the leader, never sent to it")]
    LeaderBuilt,
}

/// What one event of `stream` costs in the log.
pub fn stored_size_bytes(stream: &StreamName, event_size_bytes: usize) -> usize {
    event_size_bytes
        .saturating_add(stream.len_bytes())
        .saturating_add(EVENT_RECORD_OVERHEAD_BYTES)
}

impl ProposedEvent {
    /// What this event will cost in the log as an event of `stream`.
    pub fn stored_size_bytes(&self, stream: &StreamName) -> usize {
        stored_size_bytes(stream, self.size_bytes())
    }
}

impl EventRecord {
    /// The event's data, metadata and type: what `MaxAppendEventSize` limits.
    pub fn size_bytes(&self) -> usize {
        self.data.len() + self.custom_metadata.len() + self.event_type.len()
    }

    /// What this event costs in the log.
    pub fn stored_size_bytes(&self) -> usize {
        stored_size_bytes(&self.stream, self.size_bytes())
    }
}

/// Checks a proposed event against the per-event limit.
pub fn check_event_size(
    event_id: Uuid,
    size_bytes: usize,
    limits: &WriteLimits,
) -> Result<(), InvalidCommand> {
    let max_bytes = limits.max_append_event_size_bytes;
    if size_bytes > max_bytes as usize {
        return Err(InvalidCommand::EventTooLarge {
            event_id,
            size_bytes: size_bytes.min(u32::MAX as usize) as u32,
            max_bytes,
        });
    }
    Ok(())
}

/// Checks a command as the leader must before proposing it.
pub fn validate_command(command: &Command, limits: &WriteLimits) -> Result<(), InvalidCommand> {
    match command {
        Command::Append { stream, events, .. } => {
            stream.check()?;
            let mut total = 0usize;
            for event in events {
                if event.stream != *stream {
                    return Err(InvalidCommand::EventStreamMismatch {
                        event_id: event.id,
                        event_stream: event.stream.clone(),
                    });
                }
                check_event_size(event.id, event.size_bytes(), limits)?;
                total = total.saturating_add(event.stored_size_bytes());
                if total > limits.max_append_size_bytes as usize {
                    return Err(InvalidCommand::AppendTooLarge {
                        max_bytes: limits.max_append_size_bytes,
                    });
                }
            }
            Ok(())
        }
        Command::Delete { stream, .. } => Ok(stream.check()?),
        Command::WithMetadata { .. } => Err(InvalidCommand::LeaderBuilt),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::{ContentType, ExpectedRevision};

    const LIMITS: WriteLimits = WriteLimits {
        max_append_size_bytes: 1024 * 1024,
        max_append_event_size_bytes: 512 * 1024,
    };

    fn event(stream: &str, data_bytes: usize) -> EventRecord {
        EventRecord {
            stream: StreamName::new(stream).unwrap(),
            id: Uuid::new_v4(),
            event_type: "t".into(),
            content_type: ContentType::Binary,
            created_ticks: 0,
            custom_metadata: Bytes::new(),
            data: Bytes::from(vec![0u8; data_bytes]),
        }
    }

    fn append(stream: &str, events: Vec<EventRecord>) -> Command {
        Command::Append {
            stream: serde_json::from_value(serde_json::json!(stream)).unwrap(),
            expected: ExpectedRevision::Any,
            events,
        }
    }

    #[test]
    fn a_forwarded_append_is_checked_like_a_clients() {
        assert_eq!(
            validate_command(&append("s", vec![event("s", 10)]), &LIMITS),
            Ok(())
        );
        // Names a deserialised command could carry that no client request can.
        assert_eq!(
            validate_command(&append("", vec![]), &LIMITS),
            Err(InvalidCommand::StreamName(StreamNameError::Empty))
        );
        assert_eq!(
            validate_command(&append("$all", vec![]), &LIMITS),
            Err(InvalidCommand::StreamName(StreamNameError::All))
        );
        let stray = event("other", 1);
        assert!(matches!(
            validate_command(&append("s", vec![stray]), &LIMITS),
            Err(InvalidCommand::EventStreamMismatch { .. })
        ));
        assert!(matches!(
            validate_command(&append("s", vec![event("s", 600 * 1024)]), &LIMITS),
            Err(InvalidCommand::EventTooLarge { .. })
        ));
    }

    #[test]
    fn an_append_counts_every_record_in_full() {
        // 150 empty events to a 4 KiB name: nothing much sent in data, 600 KiB in the log.
        let name = "n".repeat(crate::stream::MAX_STREAM_NAME_BYTES);
        let events: Vec<_> = (0..150).map(|_| event(&name, 0)).collect();
        let limits = WriteLimits {
            max_append_size_bytes: 512 * 1024,
            ..LIMITS
        };
        assert_eq!(
            validate_command(&append(&name, events), &limits),
            Err(InvalidCommand::AppendTooLarge {
                max_bytes: 512 * 1024
            })
        );
        // Many tiny events are bounded by their framing too.
        let events: Vec<_> = (0..30_000).map(|_| event("s", 0)).collect();
        assert!(matches!(
            validate_command(&append("s", events), &LIMITS),
            Err(InvalidCommand::AppendTooLarge { .. })
        ));
    }
}
