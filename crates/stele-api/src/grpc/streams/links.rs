//! `resolve_links` (PROTOCOL.md §4.2): a link event has the type `$>` and the data
//! `<revision>@<stream>`. Resolved, the answer carries the target as `event` and the link as
//! `link`, with the link's position as the `ReadEvent` position. A link whose target cannot
//! be read (stream deleted, event truncated by `$maxCount`/`$tb`/`$maxAge`, bad data) is sent
//! as EventStoreDB sends it: `link` set and `event` empty.
//!
//! Resolving reads the target stream, so it runs where node reads run: on the blocking pool.

use stele_cluster::{Direction, Node, ReadError, StreamReadRequest, StreamReadResult, StreamStart};
use stele_core::{RecordedEvent, StreamName};
use stele_proto::streams::read_resp::{self, read_event, ReadEvent};
use stele_proto::streams::ReadResp;

use crate::grpc::events;
use crate::grpc::wire_uuid::UuidFormat;

/// The event type of a link.
pub const LINK_EVENT_TYPE: &str = "$>";

/// What a link points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Not asked to resolve, or not a link: the event is sent as it is.
    AsIs,
    /// The link's target.
    Target(RecordedEvent),
    /// A link whose target cannot be read.
    Unresolved,
}

pub fn is_link(event: &RecordedEvent) -> bool {
    event.record.event_type == LINK_EVENT_TYPE
}

/// `<revision>@<stream>`.
pub fn parse_link(data: &[u8]) -> Option<(u64, StreamName)> {
    let text = std::str::from_utf8(data).ok()?;
    let (revision, stream) = text.trim().split_once('@')?;
    Some((revision.parse().ok()?, StreamName::new(stream).ok()?))
}

/// Resolves `event` if it is a link (blocking: reads the target stream).
pub fn resolve(node: &Node, event: &RecordedEvent) -> Result<Resolution, ReadError> {
    if !is_link(event) {
        return Ok(Resolution::AsIs);
    }
    let Some((revision, stream)) = parse_link(&event.record.data) else {
        return Ok(Resolution::Unresolved);
    };
    let read = node.read_stream(&StreamReadRequest {
        stream,
        start: StreamStart::Revision(revision),
        direction: Direction::Forwards,
        max_count: 1,
    });
    match read {
        Ok(StreamReadResult::Events(mut found))
            if found.first().is_some_and(|e| e.revision.0 == revision) =>
        {
            Ok(Resolution::Target(found.swap_remove(0)))
        }
        Ok(_) | Err(ReadError::StreamDeleted(_)) => Ok(Resolution::Unresolved),
        Err(other) => Err(other),
    }
}

/// Resolves when asked to, else leaves the event as it is.
pub fn resolve_if(
    node: &Node,
    resolve_links: bool,
    event: &RecordedEvent,
) -> Result<Resolution, ReadError> {
    if resolve_links {
        resolve(node, event)
    } else {
        Ok(Resolution::AsIs)
    }
}

/// The `ReadResp` for an event and what its link resolved to.
pub fn read_resp(event: &RecordedEvent, resolution: &Resolution, format: UuidFormat) -> ReadResp {
    let (event_field, link) = match resolution {
        Resolution::AsIs => return events::read_resp_event(event, format),
        Resolution::Target(target) => (
            Some(events::recorded_event(target, format)),
            Some(events::recorded_event(event, format)),
        ),
        Resolution::Unresolved => (None, Some(events::recorded_event(event, format))),
    };
    ReadResp {
        content: Some(read_resp::Content::Event(ReadEvent {
            event: event_field,
            link,
            position: Some(read_event::Position::CommitPosition(event.position.0)),
        })),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use stele_core::{ContentType, EventRecord, LogPosition, StreamRevision};

    use super::*;

    fn event(
        stream: &str,
        revision: u64,
        position: u64,
        event_type: &str,
        data: &str,
    ) -> RecordedEvent {
        RecordedEvent {
            record: EventRecord {
                stream: StreamName::new(stream).unwrap(),
                id: uuid::Uuid::new_v4(),
                event_type: event_type.to_owned(),
                content_type: ContentType::Binary,
                created_ticks: 0,
                custom_metadata: Bytes::new(),
                data: Bytes::copy_from_slice(data.as_bytes()),
            },
            revision: StreamRevision(revision),
            position: LogPosition(position),
        }
    }

    #[test]
    fn link_data_is_revision_at_stream() {
        assert_eq!(
            parse_link(b"12@orders-1"),
            Some((12, StreamName::new("orders-1").unwrap()))
        );
        assert_eq!(
            parse_link(b"0@a@b"),
            Some((0, StreamName::new("a@b").unwrap()))
        );
        assert_eq!(parse_link(b"x@orders"), None);
        assert_eq!(parse_link(b"12"), None);
        assert_eq!(parse_link(b"12@"), None);
        assert_eq!(parse_link(&[0xff, b'@', b'a']), None);
    }

    #[test]
    fn a_resolved_link_carries_both_events_and_the_link_position() {
        let link = event("$et-Placed", 3, 900, LINK_EVENT_TYPE, "0@orders-1");
        let target = event("orders-1", 0, 100, "Placed", "{}");
        let resp = read_resp(
            &link,
            &Resolution::Target(target.clone()),
            UuidFormat::String,
        );
        let Some(read_resp::Content::Event(read)) = resp.content else {
            panic!("an event")
        };
        assert_eq!(read.event.unwrap().commit_position, 100);
        assert_eq!(read.link.unwrap().commit_position, 900);
        assert_eq!(
            read.position,
            Some(read_event::Position::CommitPosition(900))
        );

        let resp = read_resp(&link, &Resolution::Unresolved, UuidFormat::String);
        let Some(read_resp::Content::Event(read)) = resp.content else {
            panic!("an event")
        };
        assert!(read.event.is_none());
        assert_eq!(read.link.unwrap().stream_revision, 3);
    }
}
