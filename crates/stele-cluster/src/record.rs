//! How one raft log entry becomes log records and back (the payload inside the chunk log's
//! record framing; see `docs/format/records.md`).
//!
//! An append of N events becomes N records, one per event, so that every event has its own
//! position: the byte offset of its record (docs/design.md decision 5). Every other entry is one
//! record. Each record starts with the same header — the entry's log id, the part number and
//! the part count — so that an entry can be read back from the position of its first record,
//! and a scan of the log can find entry boundaries without decoding bodies.
//!
//! The encoding (postcard) is deterministic, so the same entry gives the same bytes, and so
//! the same positions, on every node.

use serde::{Deserialize, Serialize};
use stele_core::{Command, DeleteKind, EventRecord, ExpectedRevision, StreamName};

use crate::types::{Entry, LogId, Membership};

/// The fixed part of every record: which entry it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordHeader {
    pub log_id: LogId,
    /// 0-based part number within the entry.
    pub part: u32,
    /// Number of records the entry has.
    pub parts: u32,
}

/// What a record carries. Reaches disk: variants are appended at the end, never reordered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordBody {
    /// A leader's blank entry at the start of its term.
    Blank,
    /// A membership change.
    Membership(Membership),
    /// One event of an append.
    Event {
        expected: ExpectedRevision,
        event: EventRecord,
    },
    /// An append with no events (it still checks the expected revision).
    EmptyAppend {
        stream: StreamName,
        expected: ExpectedRevision,
    },
    /// A delete or tombstone.
    Delete {
        stream: StreamName,
        expected: ExpectedRevision,
        kind: DeleteKind,
        created_ticks: i64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    // The postcard error is printed in the message and is no `source()`: printed once.
    #[error("record does not decode: {0}")]
    Decode(postcard::Error),
    #[error("entry {index} is malformed: {detail}")]
    Malformed { index: u64, detail: String },
}

/// The record bodies of a command: one per event of an append (one `EmptyAppend` for none),
/// one for a delete, and for a write decided with a metadata event, the write's records then
/// one `Event` record of the metadata stream.
fn command_bodies(command: &Command) -> Vec<RecordBody> {
    match command {
        Command::Append {
            stream,
            expected,
            events,
        } => {
            if events.is_empty() {
                vec![RecordBody::EmptyAppend {
                    stream: stream.clone(),
                    expected: *expected,
                }]
            } else {
                events
                    .iter()
                    .map(|event| RecordBody::Event {
                        expected: *expected,
                        event: event.clone(),
                    })
                    .collect()
            }
        }
        Command::Delete {
            stream,
            expected,
            kind,
            created_ticks,
        } => vec![RecordBody::Delete {
            stream: stream.clone(),
            expected: *expected,
            kind: *kind,
            created_ticks: *created_ticks,
        }],
        Command::WithMetadata {
            write,
            metadata,
            metadata_expected,
        } => {
            let mut bodies = command_bodies(write);
            bodies.push(RecordBody::Event {
                expected: *metadata_expected,
                event: metadata.clone(),
            });
            bodies
        }
    }
}

/// Encodes an entry into the payloads of its records.
pub fn encode_entry(entry: &Entry) -> Vec<Vec<u8>> {
    let bodies: Vec<RecordBody> = match &entry.payload {
        openraft::EntryPayload::Blank => vec![RecordBody::Blank],
        openraft::EntryPayload::Membership(m) => vec![RecordBody::Membership(m.clone())],
        openraft::EntryPayload::Normal(command) => command_bodies(command),
    };
    let parts = bodies.len() as u32;
    bodies
        .iter()
        .enumerate()
        .map(|(part, body)| {
            let header = RecordHeader {
                log_id: entry.log_id,
                part: part as u32,
                parts,
            };
            let mut bytes = postcard::to_stdvec(&header).expect("headers always encode");
            postcard::to_io(body, &mut bytes).expect("bodies always encode");
            bytes
        })
        .collect()
}

/// Decodes only the header of a record.
pub fn decode_header(payload: &[u8]) -> Result<(RecordHeader, &[u8]), RecordError> {
    postcard::take_from_bytes::<RecordHeader>(payload).map_err(RecordError::Decode)
}

/// Decodes a whole record.
pub fn decode_record(payload: &[u8]) -> Result<(RecordHeader, RecordBody), RecordError> {
    let (header, rest) = decode_header(payload)?;
    let body = postcard::from_bytes(rest).map_err(RecordError::Decode)?;
    Ok((header, body))
}

/// Rebuilds an entry from its records, in part order.
pub fn decode_entry(records: &[(RecordHeader, RecordBody)]) -> Result<Entry, RecordError> {
    let (first, first_body) = records.first().ok_or(RecordError::Malformed {
        index: 0,
        detail: "no records".into(),
    })?;
    let index = first.log_id.index;
    let malformed = |detail: &str| RecordError::Malformed {
        index,
        detail: detail.to_owned(),
    };
    if records.len() != first.parts as usize {
        return Err(malformed("part count does not match"));
    }
    for (i, (h, _)) in records.iter().enumerate() {
        if h.part as usize != i || h.log_id != first.log_id {
            return Err(malformed("parts out of order"));
        }
    }
    let bodies: Vec<&RecordBody> = records.iter().map(|(_, body)| body).collect();
    let payload = match first_body {
        RecordBody::Blank if bodies.len() == 1 => openraft::EntryPayload::Blank,
        RecordBody::Membership(m) if bodies.len() == 1 => {
            openraft::EntryPayload::Membership(m.clone())
        }
        RecordBody::Blank | RecordBody::Membership(_) => {
            return Err(malformed(
                "a blank or membership entry has more than one record",
            ))
        }
        _ => openraft::EntryPayload::Normal(decode_command(&bodies).map_err(malformed)?),
    };
    Ok(Entry {
        log_id: first.log_id,
        payload,
    })
}

/// Rebuilds a command from its record bodies (see [`command_bodies`]). A write decided with
/// a metadata event is recognised by its last record: an event of the metadata stream of the
/// stream the other records write to.
fn decode_command(bodies: &[&RecordBody]) -> Result<Command, &'static str> {
    let write_stream = match bodies.first() {
        Some(RecordBody::Event { event, .. }) => &event.stream,
        Some(RecordBody::Delete { stream, .. } | RecordBody::EmptyAppend { stream, .. }) => stream,
        _ => return Err("a command entry starts with a record of another kind"),
    };
    if let (true, Some(RecordBody::Event { expected, event })) = (bodies.len() > 1, bodies.last()) {
        if event.stream.metadata_of().as_ref() == Some(write_stream) {
            let write = decode_plain_command(&bodies[..bodies.len() - 1])?;
            return Ok(Command::WithMetadata {
                write: Box::new(write),
                metadata: event.clone(),
                metadata_expected: *expected,
            });
        }
    }
    decode_plain_command(bodies)
}

/// Rebuilds an `Append` or a `Delete` from its record bodies.
fn decode_plain_command(bodies: &[&RecordBody]) -> Result<Command, &'static str> {
    match bodies {
        [RecordBody::EmptyAppend { stream, expected }] => Ok(Command::Append {
            stream: stream.clone(),
            expected: *expected,
            events: Vec::new(),
        }),
        [RecordBody::Delete {
            stream,
            expected,
            kind,
            created_ticks,
        }] => Ok(Command::Delete {
            stream: stream.clone(),
            expected: *expected,
            kind: *kind,
            created_ticks: *created_ticks,
        }),
        [RecordBody::Event { expected, event }, ..] => {
            let mut events = Vec::with_capacity(bodies.len());
            for body in bodies {
                // Events naming another stream are kept as they were logged: the leader
                // refuses such appends now (validation.rs), but a log may hold one from
                // before, and it must replay as it was applied.
                match body {
                    RecordBody::Event { event: e, .. } => events.push(e.clone()),
                    _ => return Err("an append mixes events with other records"),
                }
            }
            Ok(Command::Append {
                stream: event.stream.clone(),
                expected: *expected,
                events,
            })
        }
        _ => Err("a command entry has records that make no command"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use stele_core::ContentType;

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(
            openraft::impls::leader_id_adv::LeaderId { term, node_id: 1 },
            index,
        )
    }

    fn event(stream: &str, n: u8) -> EventRecord {
        EventRecord {
            stream: StreamName::new(stream).unwrap(),
            id: uuid::Uuid::from_bytes([n; 16]),
            event_type: "t".into(),
            content_type: ContentType::Json,
            created_ticks: 7,
            custom_metadata: Bytes::new(),
            data: Bytes::from(vec![n; 10]),
        }
    }

    fn round_trip(entry: Entry) {
        let payloads = encode_entry(&entry);
        let records: Vec<_> = payloads.iter().map(|p| decode_record(p).unwrap()).collect();
        assert_eq!(decode_entry(&records).unwrap(), entry);
        // Deterministic: encoding twice gives the same bytes.
        assert_eq!(encode_entry(&entry), payloads);
    }

    /// The size an append is counted at (stele_core::validation) must bound what each of its
    /// records costs in the log, or a chunk sized for MaxAppendSize could be too small for a
    /// legal append: the worst case of every varint and length prefix.
    #[test]
    fn an_event_record_costs_at_most_what_validation_counts() {
        let mut worst = event("s", 1);
        worst.stream = StreamName::new("x".repeat(stele_core::MAX_STREAM_NAME_BYTES)).unwrap();
        worst.created_ticks = i64::MIN;
        worst.event_type = "t".repeat(70_000);
        worst.custom_metadata = Bytes::from(vec![1; 70_000]);
        worst.data = Bytes::from(vec![2; 3_000_000]);
        let leader = openraft::impls::leader_id_adv::LeaderId {
            term: u64::MAX,
            node_id: u64::MAX,
        };
        let entry = Entry {
            log_id: LogId::new(leader, u64::MAX),
            payload: openraft::EntryPayload::Normal(Command::Append {
                stream: worst.stream.clone(),
                expected: ExpectedRevision::Exact(u64::MAX),
                events: vec![worst.clone(); 2],
            }),
        };
        for payload in encode_entry(&entry) {
            let in_log = payload.len() + stele_log::RECORD_HEADER_BYTES as usize;
            assert!(
                in_log <= worst.stored_size_bytes(),
                "{in_log} bytes in the log, counted as {}",
                worst.stored_size_bytes()
            );
        }
    }

    #[test]
    fn entries_round_trip() {
        round_trip(Entry {
            log_id: log_id(1, 0),
            payload: openraft::EntryPayload::Blank,
        });
        round_trip(Entry {
            log_id: log_id(2, 5),
            payload: openraft::EntryPayload::Normal(Command::Append {
                stream: StreamName::new("s").unwrap(),
                expected: ExpectedRevision::Exact(3),
                events: vec![event("s", 1), event("s", 2), event("s", 3)],
            }),
        });
        round_trip(Entry {
            log_id: log_id(2, 6),
            payload: openraft::EntryPayload::Normal(Command::Append {
                stream: StreamName::new("s").unwrap(),
                expected: ExpectedRevision::Any,
                events: vec![],
            }),
        });
        round_trip(Entry {
            log_id: log_id(3, 9),
            payload: openraft::EntryPayload::Normal(Command::Delete {
                stream: StreamName::new("s").unwrap(),
                expected: ExpectedRevision::NoStream,
                kind: DeleteKind::Hard,
                created_ticks: 1,
            }),
        });
    }

    /// A soft delete, or the append that recreates a soft-deleted stream, is logged with its
    /// `$metadata` event as the entry's last record, and reads back as the same command.
    #[test]
    fn writes_with_a_metadata_event_round_trip() {
        let metadata = event("$$s", 9);
        round_trip(Entry {
            log_id: log_id(4, 1),
            payload: openraft::EntryPayload::Normal(Command::WithMetadata {
                write: Box::new(Command::Delete {
                    stream: StreamName::new("s").unwrap(),
                    expected: ExpectedRevision::Exact(2),
                    kind: DeleteKind::Soft,
                    created_ticks: 5,
                }),
                metadata: metadata.clone(),
                metadata_expected: ExpectedRevision::NoStream,
            }),
        });
        let entry = Entry {
            log_id: log_id(4, 2),
            payload: openraft::EntryPayload::Normal(Command::WithMetadata {
                write: Box::new(Command::Append {
                    stream: StreamName::new("s").unwrap(),
                    expected: ExpectedRevision::Any,
                    events: vec![event("s", 1), event("s", 2)],
                }),
                metadata,
                metadata_expected: ExpectedRevision::Exact(0),
            }),
        };
        assert_eq!(encode_entry(&entry).len(), 3);
        round_trip(entry);
        // An append to a metadata stream alone stays a plain append.
        round_trip(Entry {
            log_id: log_id(4, 3),
            payload: openraft::EntryPayload::Normal(Command::Append {
                stream: StreamName::new("$$s").unwrap(),
                expected: ExpectedRevision::Any,
                events: vec![event("$$s", 1), event("$$s", 2)],
            }),
        });
    }

    #[test]
    fn an_append_is_one_record_per_event() {
        let entry = Entry {
            log_id: log_id(1, 1),
            payload: openraft::EntryPayload::Normal(Command::Append {
                stream: StreamName::new("s").unwrap(),
                expected: ExpectedRevision::Any,
                events: vec![event("s", 1), event("s", 2)],
            }),
        };
        assert_eq!(encode_entry(&entry).len(), 2);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_record(&[0xff, 0xff, 0xff]).is_err());
        assert!(decode_entry(&[]).is_err());
    }
}
