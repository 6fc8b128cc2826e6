//! Durability of a node on disk (`--db`): what was acknowledged before a SIGKILL is there
//! after a restart, at the same revisions and positions, once; also under concurrent load
//! with the kill landing mid-flight (DESIGN.md decisions 3–5).

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

/// One acknowledged append of one event.
#[derive(Debug, Clone)]
struct Ack {
    stream: String,
    revision: u64,
    position: Position,
    id: Uuid,
}

const WRITERS: usize = 8;
/// Two writers share this stream with `Any`; the others own a stream each and use exact
/// expected revisions.
const SHARED_STREAM: &str = "load-shared";

async fn writer(client: Client, index: usize, stop: Arc<AtomicBool>) -> Vec<Ack> {
    let shared = index < 2;
    let stream = if shared {
        SHARED_STREAM.to_string()
    } else {
        format!("load-{index}")
    };
    let mut acks = Vec::new();
    let mut next_revision = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let id = Uuid::new_v4();
        let expected = match (shared, next_revision) {
            (true, _) => StreamState::Any,
            (false, 0) => StreamState::NoStream,
            (false, n) => StreamState::StreamRevision(n - 1),
        };
        let options = expecting(expected).deadline(Duration::from_secs(5));
        match client
            .append_to_stream(
                stream.as_str(),
                &options,
                json_event_with_id("load", acks.len() as u64, id),
            )
            .await
        {
            Ok(result) => {
                acks.push(Ack {
                    stream: stream.clone(),
                    revision: result.next_expected_version,
                    position: result.position,
                    id,
                });
                next_revision = result.next_expected_version + 1;
            }
            // The node is gone (or going): stop; only acknowledged appends count.
            Err(_) => break,
        }
    }
    acks
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
    let load_for = Duration::from_millis(1500);
    let started = Instant::now();
    tokio::time::sleep(load_for).await;
    node.kill();
    let killed_after = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut acks = Vec::new();
    for handle in writers {
        acks.extend(handle.await.expect("a writer task"));
    }
    assert!(
        acks.len() >= WRITERS,
        "the load ran: {} acknowledged appends in {killed_after:?}",
        acks.len()
    );

    node.restart().await;
    // A fresh client: the old one may still be reconnecting.
    let client = common::client(&node);
    eprintln!(
        "{} appends acknowledged by {WRITERS} writers before the SIGKILL at {killed_after:?}",
        acks.len()
    );

    // Every stream: contiguous revisions, positions growing, each acknowledged event at its
    // acknowledged revision and position, and at most the in-flight appends beyond them.
    let mut by_stream: HashMap<String, Vec<&Ack>> = HashMap::new();
    for ack in &acks {
        by_stream.entry(ack.stream.clone()).or_default().push(ack);
    }
    for (stream, stream_acks) in &by_stream {
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
        for ack in stream_acks {
            let event = events.get(ack.revision as usize).unwrap_or_else(|| {
                panic!(
                    "{stream}: acknowledged revision {} lost ({} events after restart)",
                    ack.revision,
                    events.len()
                )
            });
            assert_eq!(event.id, ack.id, "{stream}@{}: same event", ack.revision);
            assert_eq!(
                event.position, ack.position,
                "{stream}@{}: same position",
                ack.revision
            );
        }
        let in_flight_max = if stream == SHARED_STREAM { 2 } else { 1 };
        assert!(
            events.len() <= stream_acks.len() + in_flight_max,
            "{stream}: {} events but {} acknowledged and at most {in_flight_max} in flight",
            events.len(),
            stream_acks.len()
        );
    }

    // $all: each acknowledged event once, at its position, in position order.
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
    for ack in &acks {
        let event = by_id
            .get(&ack.id)
            .unwrap_or_else(|| panic!("acknowledged event {ack:?} missing from $all"));
        assert_eq!(event.stream_id(), ack.stream);
        assert_eq!(event.revision, ack.revision);
        assert_eq!(event.position, ack.position);
    }

    // The node takes writes again on every stream.
    for (stream, events) in &by_stream {
        let last = read_stream(
            &client,
            stream,
            &ReadStreamOptions::default()
                .position(kurrentdb::StreamPosition::End)
                .max_count(1),
        )
        .await
        .expect("reading the last event")[0]
            .revision;
        let written = client
            .append_to_stream(
                stream.as_str(),
                &expecting(StreamState::StreamRevision(last)),
                json_event("after", 0),
            )
            .await
            .unwrap_or_else(|e| panic!("appending to {stream} after the crash: {e:?}"));
        assert_eq!(written.next_expected_version, last + 1);
        assert!(!events.is_empty());
    }
}
