//! What a group keeps in the log and reads back from it: checkpoints, parked messages,
//! and where a group starts. Blocking reads, except [`append`].

use bytes::Bytes;
use stele_cluster::{AppendOutcome, Node, WriteError};
use stele_core::{ContentType, ExpectedRevision, ProposedEvent, StreamName};

use super::group::Start;
use super::reader;
use super::{Definition, GroupKey, Message, Source, CHECKPOINT_EVENT_TYPE};
use crate::access::ReadableStreams;

pub(crate) fn checkpoint_event(key: &GroupKey, position: u64) -> ProposedEvent {
    let data =
        serde_json::to_vec(&key.source.format_position(position)).expect("a string serializes");
    ProposedEvent {
        id: stele_cluster::determinism::new_uuid(),
        event_type: CHECKPOINT_EVENT_TYPE.to_owned(),
        content_type: ContentType::Json,
        custom_metadata: Bytes::new(),
        data: Bytes::from(data),
    }
}

/// Appends on the leader only: a group runs on the leader, and a node that lost the lead
/// must not write for it.
pub(crate) async fn append(
    node: &Node,
    stream: StreamName,
    events: Vec<ProposedEvent>,
) -> Result<(), String> {
    match node
        .append(stream, ExpectedRevision::Any, events, true)
        .await
    {
        Ok(AppendOutcome::Success { .. }) => Ok(()),
        Ok(AppendOutcome::WrongExpectedVersion { .. }) => {
            Err("wrong expected version for an append expecting any".to_owned())
        }
        Err(WriteError::NotLeader { .. }) => Err("this node is no longer the leader".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// Parked links read at most per page of a replay.
pub(crate) const REPLAY_PAGE_MESSAGES: u64 = 256;

/// One page of a replay of parked messages.
pub(crate) struct ParkedPage {
    /// The messages to deliver again, in the order they were parked.
    pub messages: Vec<Message>,
    /// The parked stream's revision after the last link read (where the next page starts
    /// and its new truncate-before); `None` when no link was read.
    pub next: Option<u64>,
    /// Links read (some may point at records that are gone).
    pub links_read: u64,
    /// The page stopped at its count or byte bound: more may follow.
    pub full: bool,
}

/// Reads up to `max` parked links from `from` (the first visible one when `None`), and
/// stops early once the messages hold [`reader::PAGE_MAX_BYTES`].
pub(crate) fn read_parked(
    node: &Node,
    stream: &StreamName,
    resolve_links: bool,
    rights: Option<&ReadableStreams>,
    from: Option<u64>,
    max: u64,
) -> Result<ParkedPage, String> {
    use stele_cluster::{Direction, StreamReadRequest, StreamReadResult, StreamStart};
    let read = node
        .read_stream(&StreamReadRequest {
            stream: stream.clone(),
            start: from.map_or(StreamStart::Start, StreamStart::Revision),
            direction: Direction::Forwards,
            max_count: max,
        })
        .map_err(|e| e.to_string())?;
    let links = match read {
        StreamReadResult::Events(events) => events,
        StreamReadResult::NotFound => Vec::new(),
    };
    let mut page = ParkedPage {
        messages: Vec::new(),
        next: None,
        links_read: 0,
        full: links.len() as u64 >= max,
    };
    let mut bytes = 0;
    for link in &links {
        page.links_read += 1;
        page.next = Some(link.revision.0 + 1);
        if let Some(message) =
            reader::unpark(node, resolve_links, rights, link).map_err(|e| e.to_string())?
        {
            bytes += message.size_bytes();
            page.messages.push(message);
        }
        if bytes >= reader::PAGE_MAX_BYTES {
            page.full = true;
            break;
        }
    }
    Ok(page)
}

/// How many messages the parked stream holds (its events after its truncate-before).
pub(crate) fn parked_count(node: &Node, key: &GroupKey) -> u64 {
    use stele_cluster::{Direction, StreamReadRequest, StreamReadResult, StreamStart};
    let stream = key.parked_stream();
    let Ok(Some(last)) = node.stream_last_revision(&stream) else {
        return 0;
    };
    let first = node.read_stream(&StreamReadRequest {
        stream,
        start: StreamStart::Start,
        direction: Direction::Forwards,
        max_count: 1,
    });
    match first {
        Ok(StreamReadResult::Events(events)) => events
            .first()
            .map_or(0, |first| last + 1 - first.revision.0),
        _ => 0,
    }
}

/// The last checkpoint a group wrote, if any.
pub(crate) fn read_checkpoint(node: &Node, key: &GroupKey) -> Result<Option<u64>, String> {
    use stele_cluster::{Direction, StreamReadRequest, StreamReadResult, StreamStart};
    let read = node
        .read_stream(&StreamReadRequest {
            stream: key.checkpoint_stream(),
            start: StreamStart::End,
            direction: Direction::Backwards,
            max_count: 1,
        })
        .map_err(|e| e.to_string())?;
    let StreamReadResult::Events(events) = read else {
        return Ok(None);
    };
    let Some(event) = events.first() else {
        return Ok(None);
    };
    let text: String = serde_json::from_slice(&event.record.data).map_err(|e| {
        format!(
            "checkpoint of {} at log position {} is not a JSON string: {e}",
            key.id(),
            event.position.0
        )
    })?;
    key.source.parse_position(&text).map(Some).ok_or_else(|| {
        format!(
            "checkpoint of {} at log position {} is not a position: '{text}'",
            key.id(),
            event.position.0
        )
    })
}

/// Where a group starts reading when it has no checkpoint.
pub(crate) fn start_position(node: &Node, definition: &Definition) -> Result<u64, String> {
    use super::StartFrom;
    Ok(
        match (definition.settings.start_from, &definition.key.source) {
            (StartFrom::Start, _) => 0,
            (StartFrom::At(p), _) => p,
            (StartFrom::End, Source::All) => node.all_end(),
            (StartFrom::End, Source::Stream(stream)) => match node.stream_last_revision(stream) {
                Ok(Some(last)) => last + 1,
                Ok(None) | Err(stele_cluster::ReadError::StreamDeleted(_)) => 0,
                Err(e) => return Err(e.to_string()),
            },
        },
    )
}

/// Loads what a group needs to start (blocking reads).
pub(crate) fn load_start(node: &Node, definition: &Definition) -> Result<Start, String> {
    let checkpoint = read_checkpoint(node, &definition.key)?;
    let from = match checkpoint {
        Some(position) => position + 1,
        None => start_position(node, definition)?,
    };
    Ok(Start {
        checkpoint,
        from,
        parked: parked_count(node, &definition.key),
    })
}
