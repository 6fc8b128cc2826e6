//! Events and stream names between the wire and the domain (PROTOCOL.md §3): proposed
//! messages become [`ProposedEvent`]s, [`RecordedEvent`]s become `ReadResp` events with
//! exactly the three system metadata keys clients expect.

use std::collections::HashMap;

use bytes::Bytes;
use stele_core::{ContentType, ProposedEvent, RecordedEvent, StreamName};
use stele_proto::shared::StreamIdentifier;
use stele_proto::streams::read_resp::{self, read_event, ReadEvent};
use stele_proto::streams::ReadResp;
use tonic::Status;

use super::status;
use super::wire_uuid::{self, UuidFormat};

/// System metadata keys on proposed and recorded events.
pub mod metadata_key {
    pub const TYPE: &str = "type";
    pub const CONTENT_TYPE: &str = "content-type";
    pub const CREATED: &str = "created";
}

/// The stream a request names. A missing identifier, an empty or non-UTF-8 name and `$all`
/// are INVALID_ARGUMENT.
pub fn stream_name(identifier: Option<&StreamIdentifier>) -> Result<StreamName, Status> {
    let identifier = identifier
        .ok_or_else(|| status::required_argument("streamIdentifier", "StreamIdentifier"))?;
    StreamName::from_bytes(&identifier.stream_name)
        .map_err(|e| status::invalid_argument(capitalise(&e.to_string())))
}

pub fn stream_identifier(stream: &str) -> StreamIdentifier {
    StreamIdentifier {
        stream_name: Bytes::copy_from_slice(stream.as_bytes()),
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A proposed message of Append or BatchAppend. `type` and `content-type` are required and
/// checked in that order, then the id.
pub fn proposed_event(
    id: Option<&stele_proto::shared::Uuid>,
    metadata: &HashMap<String, String>,
    custom_metadata: Bytes,
    data: Bytes,
) -> Result<ProposedEvent, Status> {
    let event_type = metadata
        .get(metadata_key::TYPE)
        .ok_or_else(|| status::missing_required_metadata(metadata_key::TYPE))?;
    let content_type = metadata
        .get(metadata_key::CONTENT_TYPE)
        .ok_or_else(|| status::missing_required_metadata(metadata_key::CONTENT_TYPE))?;
    let id = wire_uuid::from_wire_opt(id)
        .map_err(|e| status::invalid_argument(capitalise(&e.to_string())))?;
    Ok(ProposedEvent {
        id,
        event_type: event_type.clone(),
        content_type: ContentType::from_mime(content_type),
        custom_metadata,
        data,
    })
}

/// The wire form of a recorded event: ids in the requested form, both positions set to the
/// event's one log position, and metadata of exactly `type`, `created` (decimal .NET ticks)
/// and `content-type`.
pub fn recorded_event(event: &RecordedEvent, format: UuidFormat) -> read_event::RecordedEvent {
    let record = &event.record;
    let metadata = HashMap::from([
        (metadata_key::TYPE.to_owned(), record.event_type.clone()),
        (
            metadata_key::CREATED.to_owned(),
            record.created_ticks.to_string(),
        ),
        (
            metadata_key::CONTENT_TYPE.to_owned(),
            record.content_type.as_mime().to_owned(),
        ),
    ]);
    read_event::RecordedEvent {
        id: Some(format.encode(record.id)),
        stream_identifier: Some(stream_identifier(record.stream.as_str())),
        stream_revision: event.revision.0,
        prepare_position: event.position.0,
        commit_position: event.position.0,
        metadata,
        custom_metadata: record.custom_metadata.clone(),
        data: record.data.clone(),
    }
}

/// A `ReadResp` carrying one event, with the `commit_position` oneof set (the Python client
/// reads it; servers before 22.10 sent `no_position` on stream reads). Link resolution is not
/// done yet, so `link` stays empty.
pub fn read_resp_event(event: &RecordedEvent, format: UuidFormat) -> ReadResp {
    ReadResp {
        content: Some(read_resp::Content::Event(ReadEvent {
            event: Some(recorded_event(event, format)),
            link: None,
            position: Some(read_event::Position::CommitPosition(event.position.0)),
        })),
    }
}

#[cfg(test)]
mod tests {
    use stele_core::{EventRecord, LogPosition, StreamRevision};
    use stele_proto::shared;
    use tonic::Code;
    use uuid::Uuid;

    use super::*;

    fn metadata(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn proposed_event_reads_type_content_type_and_either_id_form() {
        let id = Uuid::new_v4();
        for wire in [wire_uuid::to_structured(id), wire_uuid::to_string_form(id)] {
            let event = proposed_event(
                Some(&wire),
                &metadata(&[
                    ("type", "OrderPlaced"),
                    ("content-type", "application/json"),
                ]),
                Bytes::from_static(b"m"),
                Bytes::from_static(b"{}"),
            )
            .unwrap();
            assert_eq!(event.id, id);
            assert_eq!(event.event_type, "OrderPlaced");
            assert_eq!(event.content_type, ContentType::Json);
            assert_eq!(event.custom_metadata.as_ref(), b"m");
            assert_eq!(event.data.as_ref(), b"{}");
        }
        let binary = proposed_event(
            Some(&wire_uuid::to_structured(id)),
            &metadata(&[("type", "T"), ("content-type", "application/octet-stream")]),
            Bytes::new(),
            Bytes::new(),
        )
        .unwrap();
        assert_eq!(binary.content_type, ContentType::Binary);
    }

    #[test]
    fn proposed_event_rejects_missing_metadata_then_bad_ids() {
        let id = wire_uuid::to_structured(Uuid::new_v4());
        let no_type = proposed_event(
            Some(&id),
            &metadata(&[("content-type", "application/json")]),
            Bytes::new(),
            Bytes::new(),
        )
        .unwrap_err();
        assert_eq!(
            no_type.message(),
            "Required Metadata Property 'type' is missing"
        );
        let no_content_type = proposed_event(
            Some(&id),
            &metadata(&[("type", "T")]),
            Bytes::new(),
            Bytes::new(),
        )
        .unwrap_err();
        assert_eq!(
            no_content_type.message(),
            "Required Metadata Property 'content-type' is missing"
        );
        let bad_id = proposed_event(
            Some(&shared::Uuid {
                value: Some(shared::uuid::Value::String("x".into())),
            }),
            &metadata(&[("type", "T"), ("content-type", "application/json")]),
            Bytes::new(),
            Bytes::new(),
        )
        .unwrap_err();
        assert_eq!(bad_id.code(), Code::InvalidArgument);
        let no_id = proposed_event(
            None,
            &metadata(&[("type", "T"), ("content-type", "application/json")]),
            Bytes::new(),
            Bytes::new(),
        )
        .unwrap_err();
        assert_eq!(no_id.code(), Code::InvalidArgument);
    }

    #[test]
    fn stream_names_are_validated() {
        assert_eq!(
            stream_name(Some(&stream_identifier("orders")))
                .unwrap()
                .as_str(),
            "orders"
        );
        for bad in [
            None,
            Some(stream_identifier("")),
            Some(stream_identifier("$all")),
            Some(StreamIdentifier {
                stream_name: Bytes::from_static(&[0xff]),
            }),
        ] {
            assert_eq!(
                stream_name(bad.as_ref()).unwrap_err().code(),
                Code::InvalidArgument
            );
        }
    }

    #[test]
    fn recorded_event_has_exactly_three_metadata_keys_and_one_position() {
        let id = Uuid::new_v4();
        let event = RecordedEvent {
            record: EventRecord {
                stream: StreamName::new("orders-1").unwrap(),
                id,
                event_type: "OrderPlaced".into(),
                content_type: ContentType::Binary,
                created_ticks: 638_000_000_000_000_000,
                custom_metadata: Bytes::from_static(b"meta"),
                data: Bytes::from_static(b"data"),
            },
            revision: StreamRevision(4),
            position: LogPosition(1234),
        };
        let resp = read_resp_event(&event, UuidFormat::String);
        let Some(read_resp::Content::Event(read)) = resp.content else {
            panic!("expected an event");
        };
        assert_eq!(
            read.position,
            Some(read_event::Position::CommitPosition(1234))
        );
        assert!(read.link.is_none());
        let wire = read.event.unwrap();
        assert_eq!(
            wire.id.unwrap().value,
            Some(shared::uuid::Value::String(id.to_string()))
        );
        assert_eq!(
            wire.stream_identifier.unwrap().stream_name.as_ref(),
            b"orders-1"
        );
        assert_eq!(wire.stream_revision, 4);
        assert_eq!(wire.commit_position, 1234);
        assert_eq!(wire.prepare_position, 1234);
        assert_eq!(wire.metadata.len(), 3);
        assert_eq!(wire.metadata["type"], "OrderPlaced");
        assert_eq!(wire.metadata["created"], "638000000000000000");
        assert_eq!(wire.metadata["content-type"], "application/octet-stream");
        assert_eq!(wire.custom_metadata.as_ref(), b"meta");
        assert_eq!(wire.data.as_ref(), b"data");

        let structured = recorded_event(&event, UuidFormat::Structured);
        assert!(matches!(
            structured.id.unwrap().value,
            Some(shared::uuid::Value::Structured(_))
        ));
    }
}
