//! What projections keep in the log and read back: the registry, definitions, checkpoints
//! and partition states. Reads are blocking (call them on the blocking pool or a worker
//! thread); writes are async appends on the leader.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use stele_cluster::{
    AppendOutcome, Direction, Node, ReadError, StreamReadRequest, StreamReadResult, StreamStart,
    WriteError,
};
use stele_core::{
    ContentType, DeleteKind, ExpectedRevision, ProposedEvent, RecordedEvent, StreamName,
};

use crate::definition::Definition;
use crate::names;

/// Events of a stream read per page.
const READ_PAGE: u64 = 512;
/// Partition checkpoints read back at most when looking for one that counts.
const PARTITION_CHECKPOINTS_SCANNED: u64 = 16;

pub(crate) fn stream_name(name: &str) -> Result<StreamName, String> {
    StreamName::new(name).map_err(|e| format!("stream name {name:?}: {e}"))
}

/// Every event of a stream, forwards (bounded by the caller's use: registries and tracking
/// lists are small).
pub(crate) fn read_all_of(node: &Node, stream: &str) -> Result<Vec<RecordedEvent>, String> {
    let stream = stream_name(stream)?;
    let mut events = Vec::new();
    let mut from = 0;
    loop {
        let read = node.read_stream(&StreamReadRequest {
            stream: stream.clone(),
            start: StreamStart::Revision(from),
            direction: Direction::Forwards,
            max_count: READ_PAGE,
        });
        let page = match read {
            Ok(StreamReadResult::Events(page)) => page,
            Ok(StreamReadResult::NotFound) | Err(ReadError::StreamDeleted(_)) => break,
            Err(e) => return Err(e.to_string()),
        };
        let n = page.len() as u64;
        if let Some(last) = page.last() {
            from = last.revision.0 + 1;
        }
        events.extend(page);
        if n < READ_PAGE {
            break;
        }
    }
    Ok(events)
}

/// The last `count` events of a stream, newest first.
pub(crate) fn read_last(
    node: &Node,
    stream: &str,
    count: u64,
) -> Result<Vec<RecordedEvent>, String> {
    let read = node.read_stream(&StreamReadRequest {
        stream: stream_name(stream)?,
        start: StreamStart::End,
        direction: Direction::Backwards,
        max_count: count,
    });
    match read {
        Ok(StreamReadResult::Events(events)) => Ok(events),
        Ok(StreamReadResult::NotFound) | Err(ReadError::StreamDeleted(_)) => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    }
}

/// The registry as read: its last revision and the names of live projections, each with
/// its id (the event number of its `$ProjectionCreated`).
pub(crate) struct Registry {
    pub last_revision: Option<u64>,
    pub initialized: bool,
    pub projections: Vec<(String, u64)>,
}

pub(crate) fn read_registry(node: &Node) -> Result<Registry, String> {
    let events = read_all_of(node, names::REGISTRY_STREAM)?;
    let mut registry = Registry {
        last_revision: events.last().map(|e| e.revision.0),
        initialized: false,
        projections: Vec::new(),
    };
    for event in &events {
        let name = String::from_utf8_lossy(&event.record.data).into_owned();
        match event.record.event_type.as_str() {
            names::INITIALIZED => registry.initialized = true,
            names::CREATED => registry.projections.push((name, event.revision.0)),
            names::DELETED => registry.projections.retain(|(n, _)| *n != name),
            _ => {}
        }
    }
    Ok(registry)
}

/// The definition of a projection: the last event of `$projections-<name>`.
pub(crate) fn read_definition(node: &Node, name: &str) -> Result<Option<Definition>, String> {
    let last = read_last(node, &names::definition_stream(name), 1)?;
    last.first()
        .map(|event| Definition::decode(&event.record.data))
        .transpose()
}

pub(crate) fn event(
    event_type: &str,
    data: impl Into<Bytes>,
    metadata: Option<String>,
) -> ProposedEvent {
    ProposedEvent {
        id: stele_cluster::determinism::new_uuid(),
        event_type: event_type.to_owned(),
        content_type: ContentType::Json,
        custom_metadata: metadata.map(Bytes::from).unwrap_or_default(),
        data: data.into(),
    }
}

/// Appends on the leader; a wrong expected revision is an error naming the stream.
pub(crate) async fn append(
    node: &Node,
    stream: &str,
    expected: ExpectedRevision,
    events: Vec<ProposedEvent>,
) -> Result<Option<u64>, AppendError> {
    let name = stream_name(stream).map_err(AppendError::Failed)?;
    match node.append(name, expected, events, true).await {
        Ok(AppendOutcome::Success {
            current_revision, ..
        }) => Ok(current_revision.map(|r| r.0)),
        Ok(AppendOutcome::WrongExpectedVersion { .. }) => Err(AppendError::Failed(format!(
            "{stream} changed on another node; try again"
        ))),
        Err(WriteError::NotLeader { leader }) => Err(AppendError::NotLeader { leader }),
        Err(WriteError::NotReady) => Err(AppendError::NotReady),
        Err(e) => Err(AppendError::Failed(format!("writing to {stream}: {e}"))),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AppendError {
    NotLeader { leader: Option<(String, u16)> },
    NotReady,
    Failed(String),
}

impl std::fmt::Display for AppendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppendError::NotLeader { .. } => f.write_str("this node is no longer the leader"),
            AppendError::NotReady => f.write_str("the node is not ready"),
            AppendError::Failed(reason) => f.write_str(reason),
        }
    }
}

/// Soft-deletes a stream; a stream that is not there is fine.
pub(crate) async fn soft_delete(node: &Node, stream: &str) -> Result<(), String> {
    let name = stream_name(stream)?;
    match node
        .delete(name, ExpectedRevision::Any, DeleteKind::Soft, true)
        .await
    {
        Ok(_) | Err(WriteError::StreamDeleted(_)) => Ok(()),
        Err(e) => Err(format!("deleting {stream}: {e}")),
    }
}

/// Where a projection was, as checkpoints and emitted events record it (metadata keys
/// `$e` epoch and `$t` tag, beside EventStoreDB's `$causedBy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Mark {
    #[serde(rename = "$e")]
    pub epoch: u64,
    #[serde(rename = "$t")]
    pub tag: u64,
}

impl Mark {
    pub fn of(event: &RecordedEvent) -> Option<Mark> {
        serde_json::from_slice(&event.record.custom_metadata).ok()
    }

    pub fn json(self) -> String {
        serde_json::to_string(&self).expect("a mark serializes")
    }
}

/// A checkpoint that counts: the last of the checkpoint stream, if of this epoch.
pub(crate) struct Checkpoint {
    pub tag: u64,
    pub state: String,
}

pub(crate) fn read_checkpoint(
    node: &Node,
    name: &str,
    epoch: u64,
) -> Result<Option<Checkpoint>, String> {
    let last = read_last(node, &names::checkpoint_stream(name), 1)?;
    Ok(last.first().and_then(|event| {
        let mark = Mark::of(event)?;
        (mark.epoch == epoch).then(|| Checkpoint {
            tag: mark.tag,
            state: String::from_utf8_lossy(&event.record.data).into_owned(),
        })
    }))
}

/// A partition's state as of a checkpoint: the newest partition checkpoint of this epoch at
/// or before `tag` (one written after it, by a run that stopped before its own checkpoint,
/// does not count).
pub(crate) fn read_partition_state(
    node: &Node,
    name: &str,
    partition: &str,
    epoch: u64,
    tag: u64,
) -> Result<Option<String>, String> {
    let events = read_last(
        node,
        &names::partition_checkpoint_stream(name, partition),
        PARTITION_CHECKPOINTS_SCANNED,
    )?;
    Ok(events.iter().find_map(|event| {
        let mark = Mark::of(event)?;
        (mark.epoch == epoch && mark.tag <= tag)
            .then(|| String::from_utf8_lossy(&event.record.data).into_owned())
    }))
}
