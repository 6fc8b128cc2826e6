//! `resolve_links` (PROTOCOL.md §4.2): a link event has the type `$>` and the data
//! `<revision>@<stream>`. Resolved, an answer carries the target as its event and the link
//! as its link, at the link's position (each adapter renders that on its wire). A link whose target cannot
//! be read (stream deleted, event truncated by `$maxCount`/`$tb`/`$maxAge`, bad data) is sent
//! as EventStoreDB sends it: `link` set and `event` empty.
//!
//! A target is resolved only if the reader may read its stream (issue 13): a reader
//! restricted by a [`ReadableStreams`] gets a link into a stream it may not read as an
//! unresolved link, as EventStoreDB answers one whose target it refuses.
//!
//! Resolving reads the target stream, so it runs where node reads run: on the blocking pool.

use stele_cluster::{Direction, Node, ReadError, StreamReadRequest, StreamReadResult, StreamStart};
use stele_core::{RecordedEvent, StreamName};

use crate::access::ReadableStreams;

/// The event type of a link.
pub const LINK_EVENT_TYPE: &str = "$>";

/// What a link points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Not asked to resolve, or not a link: the event is sent as it is.
    AsIs,
    /// The link's target.
    Target(RecordedEvent),
    /// A link whose target cannot be read.
    Unresolved,
}

pub fn is_link(event: &RecordedEvent) -> bool {
    event.record.event_type == LINK_EVENT_TYPE
}

/// `<revision>@<stream>`.
pub fn parse_link(data: &[u8]) -> Option<(u64, StreamName)> {
    let text = std::str::from_utf8(data).ok()?;
    let (revision, stream) = text.trim().split_once('@')?;
    Some((revision.parse().ok()?, StreamName::new(stream).ok()?))
}

/// Resolves `event` if it is a link (blocking: reads the target stream). `readable`, when
/// given, says which target streams the reader may see (`None`: every stream).
pub fn resolve(
    node: &Node,
    readable: Option<&ReadableStreams>,
    event: &RecordedEvent,
) -> Result<Resolution, ReadError> {
    if !is_link(event) {
        return Ok(Resolution::AsIs);
    }
    let Some((revision, stream)) = parse_link(&event.record.data) else {
        return Ok(Resolution::Unresolved);
    };
    if readable.is_some_and(|readable| !readable.may_read(stream.as_str())) {
        return Ok(Resolution::Unresolved);
    }
    let read = node.read_stream(&StreamReadRequest {
        stream,
        start: StreamStart::Revision(revision),
        direction: Direction::Forwards,
        max_count: 1,
    });
    match read {
        Ok(StreamReadResult::Events(mut found))
            if found.first().is_some_and(|e| e.revision.0 == revision) =>
        {
            Ok(Resolution::Target(found.swap_remove(0)))
        }
        Ok(_) | Err(ReadError::StreamDeleted(_)) => Ok(Resolution::Unresolved),
        Err(other) => Err(other),
    }
}

/// Resolves when asked to, else leaves the event as it is.
pub fn resolve_if(
    node: &Node,
    resolve_links: bool,
    readable: Option<&ReadableStreams>,
    event: &RecordedEvent,
) -> Result<Resolution, ReadError> {
    if resolve_links {
        resolve(node, readable, event)
    } else {
        Ok(Resolution::AsIs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_data_is_revision_at_stream() {
        assert_eq!(
            parse_link(b"12@orders-1"),
            Some((12, StreamName::new("orders-1").unwrap()))
        );
        assert_eq!(
            parse_link(b"0@a@b"),
            Some((0, StreamName::new("a@b").unwrap()))
        );
        assert_eq!(parse_link(b"x@orders"), None);
        assert_eq!(parse_link(b"12"), None);
        assert_eq!(parse_link(b"12@"), None);
        assert_eq!(parse_link(&[0xff, b'@', b'a']), None);
    }
}
