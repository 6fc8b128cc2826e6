//! The clients' workload: appends through random live nodes with every kind of expected
//! revision, retried with the same ids after an unknown outcome (as real clients do), and
//! now and then stream metadata, a soft delete or a tombstone.

use super::*;

pub(crate) fn stream_name(s: &str) -> StreamName {
    StreamName::new(s).expect("a valid stream name")
}

pub(crate) fn events(n: usize) -> Vec<ProposedEvent> {
    (0..n)
        .map(|_| ProposedEvent {
            id: stele_cluster::determinism::new_uuid(),
            event_type: "sim".into(),
            content_type: ContentType::Json,
            custom_metadata: bytes::Bytes::new(),
            data: bytes::Bytes::from_static(b"{\"simulated\":true}"),
        })
        .collect()
}

/// What a client learned from one append.
pub(crate) struct Sent {
    pub(crate) acked: bool,
    /// The stream's revision, when the answer told it (acknowledged or wrong expected
    /// version).
    pub(crate) revision: Option<u64>,
}

/// Attempts of one append at most: the first and two retries.
pub(crate) const APPEND_ATTEMPTS_MAX: usize = 3;

/// Sends one append through `node` and records it in the history. When the outcome is
/// unknown (a timeout, a lost connection, a leader change), the client usually retries as
/// real clients do: the same events (the same ids) with the same expected revision, through
/// any live node. The server must answer a retry of a written append with the original
/// result, and a node that replays both after a crash must decide as it first did (issue 11,
/// item 1). The history records the attempts as one append: sent at the first, answered at
/// the last.
pub(crate) async fn append(
    shared: &Shared,
    client: usize,
    node: &Node,
    stream: &str,
    expected: Expected,
    count: usize,
) -> Sent {
    let events = events(count);
    let ids = events.iter().map(|e| e.id).collect();
    let pending = shared.history.begin(stream, ids, expected);
    let wire = match expected {
        Expected::Any => ExpectedRevision::Any,
        Expected::NoStream => ExpectedRevision::NoStream,
        Expected::StreamExists => ExpectedRevision::StreamExists,
        Expected::Exact(r) => ExpectedRevision::Exact(r),
    };
    let mut node = node.clone();
    let mut attempt = 1;
    let (outcome, revision) = loop {
        let call = node.append(stream_name(stream), wire, events.clone(), false);
        let result = tokio::time::timeout(Duration::from_secs(10), call).await;
        let (outcome, revision) = match result {
            Err(_) => (Outcome::Unknown("client timeout".into()), None),
            Ok(Ok(AppendOutcome::Success {
                current_revision: Some(revision),
                position: Some(position),
            })) => (
                Outcome::Acked {
                    position: position.0,
                    next_expected_version: revision.0,
                },
                Some(revision.0),
            ),
            Ok(Ok(AppendOutcome::Success { .. })) => {
                (Outcome::Unknown("success without a position".into()), None)
            }
            Ok(Ok(AppendOutcome::WrongExpectedVersion { current, .. })) => (
                Outcome::Failed("wrong expected version".into()),
                current.map(|c| c.0),
            ),
            Ok(Err(e @ WriteError::StreamDeleted(_))) => (Outcome::Failed(e.to_string()), None),
            Ok(Err(e)) => (Outcome::Unknown(e.to_string()), None),
        };
        if !matches!(outcome, Outcome::Unknown(_)) || attempt == APPEND_ATTEMPTS_MAX {
            // A refusal of a retry says nothing of the earlier attempt, which may have been
            // written before the stream was deleted or moved on.
            let outcome = match outcome {
                Outcome::Failed(why) if attempt > 1 => {
                    Outcome::Unknown(format!("retry refused ({why}) after an unknown outcome"))
                }
                other => other,
            };
            break (outcome, revision);
        }
        let (retry, pause) = shared.rand(|r| (r.random_range(0..10) < 7, r.random_range(0..500)));
        let live = shared.cluster.live();
        if !retry || live.is_empty() {
            break (outcome, revision);
        }
        shared.note(format!(
            "client {client} {stream} {expected:?} -> {outcome:?}; retrying with the same ids"
        ));
        shared.count("append retried with the same ids");
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let pick = shared.rand(|r| r.random_range(0..live.len()));
        node = live[pick].1.clone();
        attempt += 1;
    };
    shared.note(format!(
        "client {client} {stream} {expected:?} -> {outcome:?}"
    ));
    let acked = outcome.is_acked();
    shared.history.finish(pending, outcome);
    Sent { acked, revision }
}

/// What the clients did besides appending, counted with the faults but reported apart.
pub const WORKLOAD_COUNTS: [&str; 4] = [
    "append retried with the same ids",
    "metadata written",
    "stream soft-deleted",
    "stream tombstoned",
];

/// Streams the clients append to; soft deletes and metadata go to all of them.
pub(crate) const STREAMS: u64 = 6;

/// Streams from this one on may also be tombstoned (then every append to them is refused).
pub(crate) const FIRST_TOMBSTONABLE_STREAM: u64 = 4;

/// A client: appends to a few shared streams through random live nodes, with every kind of
/// expected revision, and now and then does what applications also do — sets a stream's
/// metadata, soft-deletes a stream, tombstones one — until told to stop.
pub(crate) async fn client(shared: Arc<Shared>, id: usize) {
    let mut known: BTreeMap<String, u64> = BTreeMap::new();
    while !shared.stop_clients.load(Ordering::SeqCst) {
        let live = shared.cluster.live();
        if live.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let (pick, n, kind, count, pause) = shared.rand(|r| {
            (
                r.random_range(0..live.len()),
                r.random_range(0..STREAMS),
                r.random_range(0..100),
                r.random_range(1..=3),
                r.random_range(0..30),
            )
        });
        let stream = format!("stream-{n}");
        let node = live[pick].1.clone();
        match kind {
            0..=2 => set_metadata(&shared, id, &node, &stream).await,
            3..=4 => {
                delete(
                    &shared,
                    id,
                    &node,
                    &stream,
                    DeleteKind::Soft,
                    known.get(&stream),
                )
                .await
            }
            5 if n >= FIRST_TOMBSTONABLE_STREAM => {
                delete(
                    &shared,
                    id,
                    &node,
                    &stream,
                    DeleteKind::Hard,
                    known.get(&stream),
                )
                .await
            }
            _ => {
                let expected = match kind % 10 {
                    0..=4 => Expected::Any,
                    5..=7 => known
                        .get(&stream)
                        .map_or(Expected::NoStream, |&r| Expected::Exact(r)),
                    8 => Expected::NoStream,
                    _ => Expected::StreamExists,
                };
                // A wrong expected version tells the current revision too.
                if let Some(r) = append(&shared, id, &node, &stream, expected, count)
                    .await
                    .revision
                {
                    known.insert(stream.clone(), r);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// Writes metadata to `$$stream` (a `$maxCount` that keeps everything the checks read, and a
/// custom key), as applications do. Its events are in `$all` as system events.
pub(crate) async fn set_metadata(shared: &Shared, client: usize, node: &Node, stream: &str) {
    let metadata = ProposedEvent {
        id: stele_cluster::determinism::new_uuid(),
        event_type: stele_core::metadata::METADATA_EVENT_TYPE.into(),
        content_type: ContentType::Json,
        custom_metadata: bytes::Bytes::new(),
        data: bytes::Bytes::from(format!("{{\"$maxCount\":100000,\"client\":{client}}}")),
    };
    let call = node.append(
        stream_name(stream).metadata_stream(),
        ExpectedRevision::Any,
        vec![metadata],
        false,
    );
    let result = tokio::time::timeout(Duration::from_secs(10), call).await;
    shared.count("metadata written");
    shared.note(format!(
        "client {client} metadata of {stream} -> {result:?}"
    ));
}

/// Soft-deletes or tombstones `stream`, expecting any revision or the last one this client
/// knows. The history learns of soft deletes, after which `NoStream` holds again.
pub(crate) async fn delete(
    shared: &Shared,
    client: usize,
    node: &Node,
    stream: &str,
    kind: DeleteKind,
    known: Option<&u64>,
) {
    let expected = match known {
        Some(&r) if shared.rand(|r| r.random_range(0..2)) == 0 => ExpectedRevision::Exact(r),
        _ => ExpectedRevision::Any,
    };
    if kind == DeleteKind::Soft {
        shared.history.note_soft_delete(stream);
    }
    let call = node.delete(stream_name(stream), expected, kind, false);
    let result = tokio::time::timeout(Duration::from_secs(10), call).await;
    shared.count(match kind {
        DeleteKind::Soft => "stream soft-deleted",
        DeleteKind::Hard => "stream tombstoned",
    });
    shared.note(format!(
        "client {client} {kind:?} delete of {stream} {expected:?} -> {result:?}"
    ));
}
