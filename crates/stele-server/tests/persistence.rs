//! Durability of a node on disk (`--db`): what was acknowledged before a SIGKILL is there
//! after a restart, at the same revisions and positions, once; also under concurrent load
//! with the kill landing mid-flight (docs/design.md decisions 3–5).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use kurrentdb::{
    AppendToStreamOptions, Client, DeleteStreamOptions, Error, Position, ReadAllOptions,
    ReadStreamOptions, RecordedEvent, StreamMetadata, StreamState, TombstoneStreamOptions,
};
use stele_testkit::TestNode;
use uuid::Uuid;

/// What a test compares before and after a restart.
type Snapshot = (String, u64, Uuid, Position, String, bytes::Bytes);

fn snapshot(event: &RecordedEvent) -> Snapshot {
    (
        event.stream_id().to_string(),
        event.revision,
        event.id,
        event.position,
        event.event_type.clone(),
        event.data.clone(),
    )
}

async fn snapshots_of_stream(client: &Client, stream: &str) -> kurrentdb::Result<Vec<Snapshot>> {
    Ok(read_stream(client, stream, &ReadStreamOptions::default())
        .await?
        .iter()
        .map(snapshot)
        .collect())
}

async fn snapshots_of_all(client: &Client) -> Vec<Snapshot> {
    read_all(client, &ReadAllOptions::default())
        .await
        .expect("reading $all")
        .iter()
        .map(snapshot)
        .collect()
}

fn expecting(state: StreamState) -> AppendToStreamOptions {
    AppendToStreamOptions::default().stream_state(state)
}

#[tokio::test(flavor = "multi_thread")]
async fn everything_acknowledged_survives_sigkill_and_restart() {
    // Small chunks, so the log spans several chunk files and recovery crosses them.
    let mut node = TestNode::start(persistent().chunk_size_bytes(1024 * 1024)).await;
    let client = client(&node);

    // ~2.5 MiB of events over two streams, so the data spans at least three chunks.
    let payload = |n: u64| {
        kurrentdb::EventData::binary("blob", vec![(n % 251) as u8; 64 * 1024].into())
            .id(Uuid::new_v4())
    };
    for n in 0..40 {
        let stream = if n % 2 == 0 { "even" } else { "odd" };
        client
            .append_to_stream(stream, &expecting(StreamState::Any), payload(n))
            .await
            .expect("appending a blob");
    }
    let batch = client
        .append_to_stream(
            "small",
            &expecting(StreamState::NoStream),
            (0..5).map(|n| json_event("s", n)).collect::<Vec<_>>(),
        )
        .await
        .expect("appending a batch");
    assert_eq!(batch.next_expected_version, 4);

    client
        .append_to_stream(
            "soft",
            &expecting(StreamState::NoStream),
            json_event("t", 0),
        )
        .await
        .expect("appending to soft");
    client
        .delete_stream("soft", &DeleteStreamOptions::default())
        .await
        .expect("soft delete");
    client
        .append_to_stream(
            "tomb",
            &expecting(StreamState::NoStream),
            json_event("t", 0),
        )
        .await
        .expect("appending to tomb");
    client
        .tombstone_stream("tomb", &TombstoneStreamOptions::default())
        .await
        .expect("tombstone");
    client
        .append_to_stream(
            "capped",
            &expecting(StreamState::NoStream),
            (0..4).map(|n| json_event("c", n)).collect::<Vec<_>>(),
        )
        .await
        .expect("appending to capped");
    let capped_metadata = StreamMetadata::builder().max_count(2).build();
    client
        .set_stream_metadata(
            "capped",
            &AppendToStreamOptions::default(),
            &capped_metadata,
        )
        .await
        .expect("setting $maxCount");

    let streams = ["even", "odd", "small", "capped"];
    let mut before = BTreeMap::new();
    for stream in streams {
        before.insert(
            stream,
            snapshots_of_stream(&client, stream)
                .await
                .expect("reading before the kill"),
        );
    }
    assert_eq!(before["even"].len(), 20);
    assert_eq!(before["capped"].len(), 2);
    let all_before = snapshots_of_all(&client).await;
    assert!(all_before.len() >= 40 + 5 + 4);
    drop(client);

    node.kill();
    node.restart().await;
    // A fresh client: the old one may still be reconnecting.
    let client = common::client(&node);

    for stream in streams {
        let after = snapshots_of_stream(&client, stream)
            .await
            .expect("reading after the restart");
        assert_eq!(after, before[stream], "stream {stream} after the restart");
    }
    let all_after = snapshots_of_all(&client).await;
    assert_eq!(all_after, all_before, "$all after the restart");
    assert!(
        matches!(
            read_stream(&client, "soft", &ReadStreamOptions::default()).await,
            Err(Error::ResourceNotFound)
        ),
        "a soft delete survives the restart"
    );
    assert!(
        matches!(
            read_stream(&client, "tomb", &ReadStreamOptions::default()).await,
            Err(Error::ResourceDeleted)
        ),
        "a tombstone survives the restart"
    );
    assert!(matches!(
        client
            .append_to_stream("tomb", &expecting(StreamState::Any), json_event("t", 1))
            .await,
        Err(Error::ResourceDeleted)
    ));

    // The node carries on where it stopped: revisions continue, positions grow.
    let next = client
        .append_to_stream(
            "small",
            &expecting(StreamState::StreamRevision(4)),
            json_event("s", 5),
        )
        .await
        .expect("appending after the restart");
    assert_eq!(next.next_expected_version, 5);
    let last_before = all_before.last().expect("$all was not empty").3;
    assert!(
        next.position > last_before,
        "new events come after the old ones"
    );
    let soft_again = client
        .append_to_stream("soft", &expecting(StreamState::Any), json_event("t", 1))
        .await
        .expect("appending to the soft-deleted stream after the restart");
    assert_eq!(soft_again.next_expected_version, 1);
}

/// One append a writer sent: its events' ids and, if acknowledged, what the node answered.
#[derive(Debug, Clone)]
struct Sent {
    stream: String,
    ids: Vec<Uuid>,
    /// `(last revision, position)` from the acknowledgement; `None` for the append that was
    /// in flight when the node died (it may or may not have been written, but only whole).
    ack: Option<(u64, Position)>,
}

const WRITERS: usize = 8;
/// Two writers share this stream with `Any`; the others own a stream each and use exact
/// expected revisions.
const SHARED_STREAM: &str = "load-shared";

/// Appends batches of 1 to 4 events until `stop` or the first error; returns every append
/// it sent, the last one possibly unacknowledged.
async fn writer(client: Client, index: usize, stop: Arc<AtomicBool>) -> Vec<Sent> {
    let shared = index < 2;
    let stream = if shared {
        SHARED_STREAM.to_string()
    } else {
        format!("load-{index}")
    };
    let mut sent = Vec::new();
    let mut last_revision: Option<u64> = None;
    while !stop.load(Ordering::Relaxed) {
        let ids: Vec<Uuid> = (0..1 + sent.len() % 4).map(|_| Uuid::new_v4()).collect();
        let expected = match (shared, last_revision) {
            (true, _) => StreamState::Any,
            (false, None) => StreamState::NoStream,
            (false, Some(n)) => StreamState::StreamRevision(n),
        };
        let events: Vec<_> = ids
            .iter()
            .enumerate()
            .map(|(n, id)| json_event_with_id("load", n as u64, *id))
            .collect();
        let result = client
            .append_to_stream(
                stream.as_str(),
                &expecting(expected).deadline(Duration::from_secs(5)),
                events,
            )
            .await;
        match result {
            Ok(result) => {
                last_revision = Some(result.next_expected_version);
                sent.push(Sent {
                    stream: stream.clone(),
                    ids,
                    ack: Some((result.next_expected_version, result.position)),
                });
            }
            // The node is gone (or going): stop; this append may or may not be there.
            Err(_) => {
                sent.push(Sent {
                    stream: stream.clone(),
                    ids,
                    ack: None,
                });
                break;
            }
        }
    }
    sent
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_appends_survive_a_sigkill_under_concurrent_load() {
    let mut node = TestNode::start(persistent()).await;
    let client = client(&node);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|index| tokio::spawn(writer(client.clone(), index, stop.clone())))
        .collect();

    // Let the writers run, then kill the node under them, mid-flight.
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    node.kill();
    let killed_after = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut sent = Vec::new();
    for handle in writers {
        sent.extend(handle.await.expect("a writer task"));
    }
    let acked = sent.iter().filter(|s| s.ack.is_some()).count();
    assert!(
        acked >= WRITERS,
        "the load ran: {acked} acknowledged appends in {killed_after:?}"
    );

    node.restart().await;
    // A fresh client: the old one may still be reconnecting.
    let client = common::client(&node);
    eprintln!(
        "{acked} appends acknowledged by {WRITERS} writers before the SIGKILL at \
         {killed_after:?}; {} in flight",
        sent.len() - acked
    );

    let mut streams: Vec<String> = sent.iter().map(|s| s.stream.clone()).collect();
    streams.sort();
    streams.dedup();
    let mut read_back: HashMap<String, Vec<RecordedEvent>> = HashMap::new();
    for stream in &streams {
        let events = read_stream(&client, stream, &ReadStreamOptions::default())
            .await
            .unwrap_or_else(|e| panic!("reading {stream} after the crash: {e:?}"));
        assert_eq!(
            revisions(&events),
            (0..events.len() as u64).collect::<Vec<_>>(),
            "{stream}: revisions are contiguous from 0"
        );
        for pair in events.windows(2) {
            assert!(
                pair[0].position < pair[1].position,
                "{stream}: positions grow"
            );
        }
        read_back.insert(stream.clone(), events);
    }

    // Each append is whole or absent; acknowledged ones are present, at the acknowledged
    // revisions, ending at the acknowledged position.
    let mut expected_len: HashMap<&str, usize> = HashMap::new();
    for append in &sent {
        let events = &read_back[&append.stream];
        let first_id = append.ids[0];
        let found = events.iter().position(|e| e.id == first_id);
        match (found, append.ack) {
            (Some(start), _) => {
                let stored: Vec<Uuid> = events
                    .iter()
                    .skip(start)
                    .take(append.ids.len())
                    .map(|e| e.id)
                    .collect();
                assert_eq!(
                    stored, append.ids,
                    "{}: an append's events are stored together and whole",
                    append.stream
                );
                if let Some((last_revision, position)) = append.ack {
                    let last = &events[start + append.ids.len() - 1];
                    assert_eq!(
                        last.revision, last_revision,
                        "{}: same revision",
                        append.stream
                    );
                    assert_eq!(last.position, position, "{}: same position", append.stream);
                }
                *expected_len.entry(append.stream.as_str()).or_default() += append.ids.len();
            }
            (None, Some(ack)) => panic!(
                "{}: acknowledged append {ack:?} of {} events is lost",
                append.stream,
                append.ids.len()
            ),
            (None, None) => {
                let partly: Vec<_> = append
                    .ids
                    .iter()
                    .filter(|id| events.iter().any(|e| e.id == **id))
                    .collect();
                assert!(
                    partly.is_empty(),
                    "{}: an unacknowledged append is partly stored: {partly:?}",
                    append.stream
                );
            }
        }
    }
    for stream in &streams {
        assert_eq!(
            read_back[stream].len(),
            expected_len.get(stream.as_str()).copied().unwrap_or(0),
            "{stream}: nothing but the appends sent, each once"
        );
    }

    // $all: each event once, at the position the stream read gives, in position order.
    let all = read_all(&client, &ReadAllOptions::default())
        .await
        .expect("reading $all after the crash");
    for pair in all.windows(2) {
        assert!(pair[0].position < pair[1].position, "$all positions grow");
    }
    let mut seen = HashSet::new();
    for event in &all {
        assert!(seen.insert(event.id), "event {} is in $all twice", event.id);
    }
    let by_id: HashMap<Uuid, &RecordedEvent> = all.iter().map(|e| (e.id, e)).collect();
    for (stream, events) in &read_back {
        for event in events {
            let in_all = by_id
                .get(&event.id)
                .unwrap_or_else(|| panic!("{stream}@{} missing from $all", event.revision));
            assert_eq!(in_all.stream_id(), stream);
            assert_eq!(in_all.revision, event.revision);
            assert_eq!(in_all.position, event.position);
        }
    }

    // The node takes writes again on every stream, right after what survived.
    for (stream, events) in &read_back {
        let last = events.last().expect("every stream got an append").revision;
        let written = client
            .append_to_stream(
                stream.as_str(),
                &expecting(StreamState::StreamRevision(last)),
                json_event("after", 0),
            )
            .await
            .unwrap_or_else(|e| panic!("appending to {stream} after the crash: {e:?}"));
        assert_eq!(written.next_expected_version, last + 1);
    }
}

/// Issue 11, item 1: a node never served again after a crash that followed an idempotent
/// retry. After a SIGKILL the index is rebuilt from the log, and the original append and
/// its same-id retry were replayed in one index transaction; the retry's answer was read
/// from the committed index, which did not hold the original yet, so replay failed ("index
/// lost revision 1 of idem-1 in a retry"), openraft stopped, and `/health/live` stayed 503
/// after every restart.
#[tokio::test(flavor = "multi_thread")]
async fn a_crash_after_an_idempotent_retry_restarts_and_serves() {
    let mut node = TestNode::start(persistent()).await;
    let first = client(&node);
    first
        .append_to_stream(
            "idem-1",
            &expecting(StreamState::NoStream),
            json_event("first", 0),
        )
        .await
        .expect("appending the first event");
    let x = json_event_with_id("x", 1, Uuid::new_v4());
    let written = first
        .append_to_stream(
            "idem-1",
            &expecting(StreamState::StreamRevision(0)),
            x.clone(),
        )
        .await
        .expect("appending X");
    // What a client does when its first attempt timed out: the same event, the same
    // expected revision. It is answered as the original was.
    let retried = first
        .append_to_stream("idem-1", &expecting(StreamState::StreamRevision(0)), x)
        .await
        .expect("retrying X");
    assert_eq!(retried.next_expected_version, written.next_expected_version);
    assert_eq!(retried.position, written.position);

    for round in 0..2 {
        node.sigkill();
        node.restart().await;
        let client = client(&node);
        let events = read_stream(&client, "idem-1", &ReadStreamOptions::default())
            .await
            .unwrap_or_else(|e| panic!("reading idem-1 after restart {round}: {e:?}"));
        assert_eq!(revisions(&events), vec![0, 1], "restart {round}");
        // The retry is still answered with the original position after the replay.
        let again = client
            .append_to_stream(
                "idem-1",
                &expecting(StreamState::StreamRevision(0)),
                json_event_with_id("x", 1, events[1].id),
            )
            .await
            .unwrap_or_else(|e| panic!("retrying X after restart {round}: {e:?}"));
        assert_eq!(again.position, written.position, "restart {round}");
    }
}
