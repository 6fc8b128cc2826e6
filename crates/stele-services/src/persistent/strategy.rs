//! Which consumer of a group gets the next message (EventStoreDB's named consumer
//! strategies). Pure: the group passes its consumers, in the order they connected, with the
//! slots each has free.

use super::{Message, Strategy};

/// A consumer as the strategy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub id: u64,
    /// Messages it may still be sent before it acknowledges some.
    pub free_slots: u32,
}

/// A strategy with the state it keeps between messages.
#[derive(Debug)]
pub struct Picker {
    strategy: Strategy,
    /// RoundRobin: the consumer after the one served last.
    cursor: usize,
}

impl Picker {
    pub fn new(strategy: Strategy) -> Picker {
        Picker {
            strategy,
            cursor: 0,
        }
    }

    /// The index (into `consumers`) of the consumer to send `message` to, or `None` when
    /// the message has to wait: every consumer is full, or (pinned) its consumer is.
    pub fn pick(&mut self, consumers: &[Candidate], message: &Message) -> Option<usize> {
        if consumers.is_empty() {
            return None;
        }
        match self.strategy {
            Strategy::DispatchToSingle => consumers.iter().position(|c| c.free_slots > 0),
            Strategy::RoundRobin => {
                let n = consumers.len();
                let start = self.cursor % n;
                let found = (0..n)
                    .map(|i| (start + i) % n)
                    .find(|&i| consumers[i].free_slots > 0)?;
                self.cursor = found + 1;
                Some(found)
            }
            Strategy::Pinned | Strategy::PinnedByCorrelation => {
                let key = self.pin_key(message);
                let index = (fnv1a(key.as_bytes()) % consumers.len() as u64) as usize;
                (consumers[index].free_slots > 0).then_some(index)
            }
        }
    }

    /// What pins a message: its stream, or (PinnedByCorrelation) its `$correlationId`.
    fn pin_key(&self, message: &Message) -> String {
        let event = message
            .event
            .as_ref()
            .or(message.link.as_ref())
            .expect("a message has an event or a link");
        if self.strategy == Strategy::PinnedByCorrelation {
            if let Some(id) = correlation_id(&event.record.custom_metadata) {
                return id;
            }
        }
        event.record.stream.as_str().to_owned()
    }
}

/// `$correlationId` of an event's JSON metadata, if it has one.
fn correlation_id(metadata: &[u8]) -> Option<String> {
    if metadata.is_empty() {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(metadata).ok()?;
    match value.get("$correlationId")? {
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// FNV-1a: stable across processes, so a stream keeps its consumer after a leader change
/// when the consumers are the same.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use stele_core::{
        ContentType, EventRecord, LogPosition, RecordedEvent, StreamName, StreamRevision,
    };

    use super::*;

    fn message(stream: &str, metadata: &str) -> Message {
        Message {
            event: Some(RecordedEvent {
                record: EventRecord {
                    stream: StreamName::new(stream).unwrap(),
                    id: stele_cluster::determinism::new_uuid(),
                    event_type: "t".to_owned(),
                    content_type: ContentType::Json,
                    created_ticks: 0,
                    custom_metadata: Bytes::copy_from_slice(metadata.as_bytes()),
                    data: Bytes::new(),
                },
                revision: StreamRevision(0),
                position: LogPosition(0),
            }),
            link: None,
            retry_count: 0,
        }
    }

    fn consumers(slots: &[u32]) -> Vec<Candidate> {
        slots
            .iter()
            .enumerate()
            .map(|(i, &free_slots)| Candidate {
                id: i as u64,
                free_slots,
            })
            .collect()
    }

    #[test]
    fn round_robin_takes_turns_and_skips_full_consumers() {
        let mut picker = Picker::new(Strategy::RoundRobin);
        let m = message("s", "");
        let all = consumers(&[5, 5, 5]);
        let picks: Vec<_> = (0..6).map(|_| picker.pick(&all, &m).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
        let middle_full = consumers(&[5, 0, 5]);
        let picks: Vec<_> = (0..4)
            .map(|_| picker.pick(&middle_full, &m).unwrap())
            .collect();
        assert_eq!(picks, vec![0, 2, 0, 2]);
        assert_eq!(picker.pick(&consumers(&[0, 0]), &m), None);
    }

    #[test]
    fn dispatch_to_single_fills_the_first_consumer_first() {
        let mut picker = Picker::new(Strategy::DispatchToSingle);
        let m = message("s", "");
        assert_eq!(picker.pick(&consumers(&[3, 3]), &m), Some(0));
        assert_eq!(picker.pick(&consumers(&[3, 3]), &m), Some(0));
        assert_eq!(picker.pick(&consumers(&[0, 3]), &m), Some(1));
    }

    #[test]
    fn pinned_keeps_a_stream_on_one_consumer_and_waits_when_it_is_full() {
        let mut picker = Picker::new(Strategy::Pinned);
        let all = consumers(&[5, 5, 5, 5]);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..40 {
            let stream = format!("stream-{i}");
            let first = picker.pick(&all, &message(&stream, "")).unwrap();
            for _ in 0..3 {
                assert_eq!(picker.pick(&all, &message(&stream, "")), Some(first));
            }
            seen.insert(first);
            let mut full = all.clone();
            full[first].free_slots = 0;
            assert_eq!(picker.pick(&full, &message(&stream, "")), None);
        }
        assert!(seen.len() > 1, "streams spread over consumers");
    }

    #[test]
    fn pinned_by_correlation_uses_the_correlation_id_then_the_stream() {
        let mut picker = Picker::new(Strategy::PinnedByCorrelation);
        let all = consumers(&[5; 8]);
        let meta = r#"{"$correlationId":"c-1"}"#;
        let a = picker.pick(&all, &message("a", meta)).unwrap();
        for stream in ["b", "c", "d", "e", "f"] {
            assert_eq!(picker.pick(&all, &message(stream, meta)), Some(a));
        }
        let by_stream = picker.pick(&all, &message("x", "not json")).unwrap();
        assert_eq!(picker.pick(&all, &message("x", "")), Some(by_stream));
    }
}
