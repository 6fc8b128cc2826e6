//! A resolved link on the gRPC wire (PROTOCOL.md §4.2): the target as `event`, the link as
//! `link`, with the link's position as the `ReadEvent` position; a link whose target cannot
//! be read has `link` set and `event` empty. Resolving is [`stele_services::links`].

use stele_core::RecordedEvent;
use stele_proto::streams::read_resp::{self, read_event, ReadEvent};
use stele_proto::streams::ReadResp;
pub use stele_services::links::{is_link, resolve, resolve_if, Resolution};

use crate::grpc::events;
use crate::grpc::wire_uuid::UuidFormat;

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

    use stele_core::StreamName;
    use stele_services::links::LINK_EVENT_TYPE;

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
