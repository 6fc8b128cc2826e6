//! Unit tests of [`Flow`](super::Flow) and the nack and timeout fates: plain data, no
//! node, no runtime, no network.

use std::time::Duration;

use bytes::Bytes;
use stele_core::{
    ContentType, EventRecord, LogPosition, RecordedEvent, StreamName, StreamRevision,
};
use tokio::time::Instant;
use uuid::Uuid;

use super::*;

/// A message of `bytes` payload bytes whose ack id is `Uuid::from_u128(id)`.
fn message(id: u128, bytes: usize) -> Message {
    Message {
        event: Some(RecordedEvent {
            record: EventRecord {
                stream: StreamName::new("s").unwrap(),
                id: Uuid::from_u128(id),
                event_type: "t".to_owned(),
                content_type: ContentType::Json,
                created_ticks: 0,
                custom_metadata: Bytes::new(),
                data: Bytes::from(vec![0; bytes]),
            },
            revision: StreamRevision(id as u64),
            position: LogPosition(id as u64),
        }),
        link: None,
        retry_count: 0,
    }
}

fn limits() -> Limits {
    Limits {
        read_ahead: 100,
        buffer_max_bytes: 1 << 20,
        in_flight_max_bytes: 1 << 20,
        max_retry_count: 2,
        message_timeout: Some(Duration::from_secs(10)),
    }
}

/// A flow with consumers of these buffer sizes (ids 0, 1, ...) and messages 0..n read at
/// positions 0..n.
fn flow(strategy: Strategy, buffers: &[u32], n: u128) -> Flow<()> {
    let mut flow = Flow::new(limits(), strategy, None);
    for (id, &size) in buffers.iter().enumerate() {
        flow.connect(id as u64, size, ());
    }
    for i in 0..n {
        flow.read(i as u64, message(i, 10));
    }
    flow
}

/// Dispatches everything that can go at `now`: `(consumer id, ack id as u128, retry count)`.
fn dispatch(flow: &mut Flow<()>, now: Instant) -> Vec<(u64, u128, u32)> {
    let mut sent = Vec::new();
    while let Some(pick) = flow.pick() {
        let pending = flow.take(pick);
        let consumer = flow.consumers_mut()[pick.consumer].id;
        sent.push((
            consumer,
            pending.message.ack_id().as_u128(),
            pending.message.retry_count,
        ));
        flow.delivered(pick, pending, now);
    }
    sent
}

fn ids(ids: &[u128]) -> Vec<Uuid> {
    ids.iter().map(|&i| Uuid::from_u128(i)).collect()
}

/// A retried message is retried while its count stays within the maximum, then parked
/// with the reason saying so.
#[test]
fn a_retry_is_parked_once_its_count_passes_the_maximum() {
    assert_eq!(retry_fate(0, 2, "x"), Fate::Retry);
    assert_eq!(retry_fate(1, 2, "x"), Fate::Retry);
    assert_eq!(
        retry_fate(2, 2, "message timeout"),
        Fate::Park("max retry count reached (message timeout)".to_owned())
    );
    assert_eq!(
        retry_fate(0, 0, "x"),
        Fate::Park("max retry count reached (x)".to_owned())
    );
}

/// Park parks with the client's reason, Retry retries or parks, Skip is done, Stop gives
/// the message back to be delivered first.
#[test]
fn each_nack_action_has_its_fate() {
    assert_eq!(
        nack_fate(NackAction::Park, 0, 5, "bad"),
        Fate::Park("bad".to_owned())
    );
    assert_eq!(nack_fate(NackAction::Retry, 0, 5, "bad"), Fate::Retry);
    assert!(matches!(
        nack_fate(NackAction::Retry, 5, 5, "bad"),
        Fate::Park(_)
    ));
    assert_eq!(nack_fate(NackAction::Skip, 9, 5, "bad"), Fate::Done);
    assert_eq!(nack_fate(NackAction::Stop, 9, 5, "bad"), Fate::RetryFirst);
}

/// Round robin spreads messages over consumers' free slots and stops when all are full;
/// an ack frees a slot and moves the checkpoint window.
#[test]
fn dispatch_fills_free_slots_and_acks_free_them() {
    let mut flow = flow(Strategy::RoundRobin, &[2, 1], 5);
    let now = Instant::now();
    assert_eq!(dispatch(&mut flow, now), [(0, 0, 0), (1, 1, 0), (0, 2, 0)]);
    assert_eq!(flow.in_flight_len(), 3);
    assert_eq!(flow.buffer_len(), 2);
    flow.ack(ids(&[1]));
    assert_eq!(flow.window.final_checkpoint(), None, "0 is not done");
    assert_eq!(dispatch(&mut flow, now), [(1, 3, 0)]);
    flow.ack(ids(&[0, 2]));
    assert_eq!(flow.window.final_checkpoint(), Some(2));
    assert_eq!(dispatch(&mut flow, now), [(0, 4, 0)]);
}

/// Messages to retry go before the buffer, and a retried message carries its count.
#[test]
fn retries_go_first() {
    let mut flow = flow(Strategy::DispatchToSingle, &[1], 3);
    let now = Instant::now();
    assert_eq!(dispatch(&mut flow, now), [(0, 0, 0)]);
    flow.nack(ids(&[0]), NackAction::Retry, "again");
    assert_eq!(flow.retry_len(), 1);
    assert_eq!(dispatch(&mut flow, now), [(0, 0, 1)]);
}

/// Sending stops while the bytes in flight are at the bound, whatever the free slots.
#[test]
fn sending_stops_at_the_in_flight_byte_bound() {
    let mut flow: Flow<()> = Flow::new(
        Limits {
            in_flight_max_bytes: 2 * message(0, 1000).size_bytes(),
            ..limits()
        },
        Strategy::RoundRobin,
        None,
    );
    flow.connect(0, 100, ());
    for i in 0..5 {
        flow.read(i as u64, message(i, 1000));
    }
    let now = Instant::now();
    assert_eq!(dispatch(&mut flow, now).len(), 2);
    assert_eq!(flow.pick(), None);
    flow.ack(ids(&[0]));
    assert_eq!(dispatch(&mut flow, now), [(0, 2, 0)]);
}

/// A record still out (parked and replayed meanwhile) is not sent a second time until the
/// first delivery is answered.
#[test]
fn the_same_record_is_not_in_flight_twice() {
    let mut flow = flow(Strategy::RoundRobin, &[5], 1);
    let now = Instant::now();
    assert_eq!(dispatch(&mut flow, now).len(), 1);
    flow.replayed([message(0, 10)]);
    assert_eq!(flow.pick(), None);
    flow.ack(ids(&[0]));
    assert_eq!(dispatch(&mut flow, now), [(0, 0, 0)]);
}

/// A message whose consumer is gone goes back to the front of the queue it came from,
/// with its bytes.
#[test]
fn a_message_put_back_is_where_it_was() {
    let mut flow = flow(Strategy::RoundRobin, &[5], 2);
    let bytes = flow.buffer_bytes();
    let pick = flow.pick().unwrap();
    assert!(!pick.from_retry);
    let pending = flow.take(pick);
    assert!(flow.buffer_bytes() < bytes);
    flow.put_back(pick, pending);
    assert_eq!(flow.buffer_bytes(), bytes);
    assert_eq!(flow.pick(), Some(pick));
    assert_eq!(flow.take(pick).message.ack_id(), Uuid::from_u128(0));
}

/// A consumer that goes away leaves its messages to the others, in delivery order, ahead
/// of anything else.
#[test]
fn a_disconnected_consumers_messages_go_first_in_delivery_order() {
    let mut flow = flow(Strategy::RoundRobin, &[3, 3], 8);
    let now = Instant::now();
    assert_eq!(dispatch(&mut flow, now).len(), 6);
    flow.nack(ids(&[1]), NackAction::Retry, "r");
    assert!(flow.disconnect(0).is_some());
    assert!(flow.disconnect(0).is_none());
    let sent = dispatch(&mut flow, now);
    assert_eq!(sent, [(1, 0, 0)], "one slot free on consumer 1");
    flow.ack(ids(&[3, 5]));
    assert_eq!(dispatch(&mut flow, now), [(1, 2, 0), (1, 4, 0)]);
    flow.ack(ids(&[0, 2, 4]));
    assert_eq!(
        dispatch(&mut flow, now),
        [(1, 1, 1), (1, 6, 0), (1, 7, 0)],
        "the earlier retry, then the buffer"
    );
}

/// Nacks with Stop put the message back first, unchanged; with Skip it is done; nacks of
/// messages not in flight are ignored.
#[test]
fn stop_retries_first_and_skip_is_done() {
    let mut flow = flow(Strategy::RoundRobin, &[3], 3);
    let now = Instant::now();
    assert_eq!(dispatch(&mut flow, now).len(), 3);
    flow.nack(ids(&[0]), NackAction::Skip, "");
    flow.nack(ids(&[0, 9]), NackAction::Park, "not in flight");
    assert_eq!(flow.take_park_write().map(|w| w.len()), None);
    assert_eq!(flow.window.final_checkpoint(), Some(0));
    flow.nack(ids(&[1]), NackAction::Retry, "");
    flow.nack(ids(&[2]), NackAction::Stop, "");
    assert_eq!(dispatch(&mut flow, now), [(0, 2, 0), (0, 1, 1)]);
}

/// One parking append at a time: parks made while one runs wait and go together, in
/// order; written, they are done; failed, they go back to be delivered first.
#[test]
fn parks_are_written_one_append_at_a_time_in_order() {
    let mut flow = flow(Strategy::RoundRobin, &[5], 4);
    let now = Instant::now();
    assert_eq!(dispatch(&mut flow, now).len(), 4);
    flow.nack(ids(&[2, 0, 1]), NackAction::Park, "bad");
    let first = flow.take_park_write().unwrap();
    assert_eq!(first.len(), 1, "the first park starts an append alone");
    assert_eq!(first[0].1, "bad");
    assert!(flow.take_park_write().is_none(), "the rest wait");
    assert_eq!(
        flow.parked(first.into_iter().map(|(p, _)| p).collect(), true),
        1
    );
    let second = flow.take_park_write().unwrap();
    let order: Vec<_> = second.iter().map(|(p, _)| p.key).collect();
    assert_eq!(order, [Some(0), Some(1)]);
    assert_eq!(
        flow.window.final_checkpoint(),
        None,
        "0 and 1 not written yet"
    );
    assert_eq!(
        flow.parked(second.into_iter().map(|(p, _)| p).collect(), false),
        0
    );
    assert_eq!(flow.retry_len(), 2);
    flow.ack(ids(&[3]));
    assert_eq!(dispatch(&mut flow, now), [(0, 0, 0), (0, 1, 0)]);
}

/// A delivery not answered by its deadline is retried at the first check after it, with
/// its count one higher, and parked once the count passes the maximum; a later delivery
/// of the same message is not expired by the earlier deadline.
#[test]
fn timed_out_messages_are_retried_then_parked() {
    let mut flow = flow(Strategy::RoundRobin, &[5], 1);
    let t0 = Instant::now();
    let second = Duration::from_secs(1);
    assert_eq!(dispatch(&mut flow, t0), [(0, 0, 0)]);
    flow.expire(t0 + 9 * second);
    assert_eq!(flow.in_flight_len(), 1, "not yet");
    flow.expire(t0 + 10 * second);
    assert_eq!(dispatch(&mut flow, t0 + 10 * second), [(0, 0, 1)]);
    assert_eq!(dispatch(&mut flow, t0), []);
    flow.expire(t0 + 15 * second);
    assert_eq!(flow.in_flight_len(), 1, "the first deadline is gone");
    flow.expire(t0 + 20 * second);
    assert_eq!(dispatch(&mut flow, t0 + 20 * second), [(0, 0, 2)]);
    flow.expire(t0 + 30 * second);
    let park = flow.take_park_write().unwrap();
    assert_eq!(park[0].1, "max retry count reached (message timeout)");
    assert_eq!(park[0].0.message.retry_count, 2);
}

/// Answered deliveries leave the timeout queue from its front; no timeout, no queue.
#[test]
fn answered_timeouts_are_pruned_and_no_timeout_queues_nothing() {
    let mut flow = flow(Strategy::RoundRobin, &[5], 2);
    let now = Instant::now();
    dispatch(&mut flow, now);
    flow.ack(ids(&[0, 1]));
    assert!(flow.has_timeouts());
    flow.prune_timeouts();
    assert!(!flow.has_timeouts());
    let mut flow: Flow<()> = Flow::new(
        Limits {
            message_timeout: None,
            ..limits()
        },
        Strategy::RoundRobin,
        None,
    );
    flow.connect(0, 5, ());
    flow.read(0, message(0, 1));
    dispatch(&mut flow, now);
    assert!(!flow.has_timeouts());
}

/// The reader may hand over more while fewer than the read-ahead messages and fewer than
/// the byte bound are buffered.
#[test]
fn reading_stops_at_the_read_ahead_count_and_bytes() {
    let mut flow: Flow<()> = Flow::new(
        Limits {
            read_ahead: 3,
            buffer_max_bytes: 2 * message(0, 500).size_bytes(),
            ..limits()
        },
        Strategy::RoundRobin,
        None,
    );
    assert!(flow.wants_more());
    flow.read(0, message(0, 1));
    flow.read(1, message(1, 1));
    assert!(flow.wants_more());
    flow.read(2, message(2, 1));
    assert!(!flow.wants_more(), "three messages");
    let mut flow: Flow<()> = Flow::new(
        Limits {
            read_ahead: 3,
            buffer_max_bytes: 2 * message(0, 500).size_bytes(),
            ..limits()
        },
        Strategy::RoundRobin,
        None,
    );
    flow.read(0, message(0, 500));
    assert!(flow.wants_more());
    flow.read(1, message(1, 500));
    assert!(!flow.wants_more(), "the byte bound");
    assert!(!flow.full(0));
}
