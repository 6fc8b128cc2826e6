//! Client-side helpers over the official Rust client (`kurrentdb`): read a node's whole
//! `$all` as [`ReadEvent`]s, append while recording the attempt in a [`History`], and
//! record what a subscription to `$all` delivers ([`AllSubscriber`]).
//!
//! Appends are deliberately never retried: a test that wants retries writes them, so that
//! every attempt is recorded as what it was. The subscriber does subscribe again after a
//! failure (that is what is being checked: no gap, no duplicate across it) and counts it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kurrentdb::{
    AppendToStreamOptions, Client, ClientSettings, EventData, Position, ReadAllOptions,
    StreamPosition, SubscribeToAllOptions,
};
use uuid::Uuid;

use crate::history::{Expected, History, Outcome, ReadEvent};

/// A client for `connection_string`. Must be called inside a tokio runtime.
pub fn connect(connection_string: &str) -> Result<Client, String> {
    let settings: ClientSettings = connection_string
        .parse()
        .map_err(|e| format!("parsing {connection_string}: {e}"))?;
    Client::new(settings).map_err(|e| format!("creating a client for {connection_string}: {e}"))
}

/// Every event of user streams (names not starting with `$`) in `$all`, forwards, read
/// from whichever node `client` talks to without asking for the leader (a single-host
/// connection string with `nodePreference=follower` reads exactly that node).
pub async fn read_all_events(client: &Client) -> kurrentdb::Result<Vec<ReadEvent>> {
    let options = ReadAllOptions::default().forwards().requires_leader(false);
    let mut read = client.read_all(&options).await?;
    let mut events = Vec::new();
    while let Some(resolved) = read.next().await? {
        let Some(event) = resolved.event else {
            continue;
        };
        if event.stream_id().starts_with('$') {
            continue;
        }
        events.push(ReadEvent {
            stream: event.stream_id().to_string(),
            revision: event.revision,
            position: event.position.commit,
            event_id: event.id,
        });
    }
    Ok(events)
}

/// [`read_all_events`] through a fresh client for `connection_string`, retried until
/// `timeout` passes (a node just restarted may refuse reads for a moment).
pub async fn read_all_from(
    connection_string: &str,
    timeout: Duration,
) -> Result<Vec<ReadEvent>, String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let attempt = async {
            let client = connect(connection_string)?;
            read_all_events(&client)
                .await
                .map_err(|e| format!("reading $all from {connection_string}: {e:?}"))
        };
        let error = match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(events)) => return Ok(events),
            Ok(Err(e)) => e,
            Err(_) => format!("reading $all from {connection_string}: timed out after {timeout:?}"),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(error);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `n` JSON events of type `event_type`, with fresh ids, returned with their ids.
pub fn json_events(event_type: &str, n: usize) -> (Vec<Uuid>, Vec<EventData>) {
    (0..n)
        .map(|i| {
            let id = Uuid::new_v4();
            let event = EventData::json(event_type, &serde_json::json!({ "i": i }))
                .expect("serialising an event body")
                .id(id);
            (id, event)
        })
        .unzip()
}

/// Appends `n` fresh JSON events to `stream` with `expected`, recording the attempt in
/// `history`. A call that has not answered after `deadline` is recorded as unknown (the
/// client cannot tell whether it was written) and abandoned. Returns the outcome and the
/// client's error, if any (for example to adopt the current revision a wrong expected
/// version reports, or to replace a client whose connection is closed).
pub async fn append_recorded(
    client: &Client,
    history: &History,
    stream: &str,
    expected: Expected,
    n: usize,
    deadline: Duration,
) -> (Outcome, Option<kurrentdb::Error>) {
    let (ids, events) = json_events("test-event", n);
    let options = AppendToStreamOptions::default()
        .stream_state(expected.into())
        .deadline(deadline);
    let pending = history.begin(stream, ids, expected);
    // The client's own deadline ends the call; the outer timeout only guards against a
    // client that hangs while it (re)connects.
    let (outcome, error) = match tokio::time::timeout(
        deadline + Duration::from_secs(1),
        client.append_to_stream(stream, &options, events),
    )
    .await
    {
        Ok(result) => (Outcome::from_append(&result), result.err()),
        Err(_) => (
            Outcome::Unknown(format!("no answer within {deadline:?}")),
            None,
        ),
    };
    history.finish(pending, outcome.clone());
    (outcome, error)
}

/// A subscription to `$all` on one node, from the start, that records every user event
/// (stream not starting with `$`) it is delivered as `(commit position, event id)`, for
/// [`crate::history::verify_delivery`]. When the subscription fails or ends it subscribes
/// again after the last position it recorded, as an application does, and counts that.
/// Dropping it stops it.
pub struct AllSubscriber {
    delivered: Arc<Mutex<Vec<(u64, Uuid)>>>,
    resubscriptions: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl AllSubscriber {
    /// Starts subscribing through `connection_string` (a single-node string with
    /// `nodePreference=follower` subscribes on exactly that node). Must be called inside a
    /// tokio runtime.
    pub fn start(connection_string: String) -> AllSubscriber {
        let delivered = Arc::new(Mutex::new(Vec::new()));
        let resubscriptions = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(subscribe_all_loop(
            connection_string,
            Arc::clone(&delivered),
            Arc::clone(&resubscriptions),
        ));
        AllSubscriber {
            delivered,
            resubscriptions,
            task,
        }
    }

    /// What has been delivered so far, in delivery order.
    pub fn delivered(&self) -> Vec<(u64, Uuid)> {
        self.delivered.lock().expect("delivered lock").clone()
    }

    /// How many times the subscription was made again after a failure or an end.
    pub fn resubscriptions(&self) -> u64 {
        self.resubscriptions.load(Ordering::SeqCst)
    }
}

impl Drop for AllSubscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn subscribe_all_loop(
    connection_string: String,
    delivered: Arc<Mutex<Vec<(u64, Uuid)>>>,
    resubscriptions: Arc<AtomicU64>,
) {
    let mut first = true;
    loop {
        if !first {
            resubscriptions.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        first = false;
        let Ok(client) = connect(&connection_string) else {
            continue;
        };
        let last = delivered.lock().expect("delivered lock").last().copied();
        let from = match last {
            Some((commit, _)) => StreamPosition::Position(Position {
                commit,
                prepare: commit,
            }),
            None => StreamPosition::Start,
        };
        let options = SubscribeToAllOptions::default()
            .position(from)
            .requires_leader(false);
        let mut subscription = client.subscribe_to_all(&options).await;
        while let Ok(resolved) = subscription.next().await {
            let event = resolved.get_original_event();
            if event.stream_id().starts_with('$') {
                continue;
            }
            delivered
                .lock()
                .expect("delivered lock")
                .push((event.position.commit, event.id));
        }
    }
}
