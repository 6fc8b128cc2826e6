//! A group's reader: reads its source (a stream, or `$all` through its filter) from a
//! position onwards, page by page, and hands the pages to the group through a channel of
//! [`READER_PAGES`] pages, so it never reads further ahead than the group takes.
//!
//! **Bounded in bytes.** A page holds at most the group's `read_batch_size` events (a
//! client may ask for 2^31-1), and stops early once it holds [`PAGE_MAX_BYTES`]; the log
//! is read [`READ_STEP_EVENTS`] events at a time, so a page never passes that bound by
//! more than one step.
//!
//! When it reaches the end it says so once (the group is then live) and waits for the
//! node's live feed to report newly applied events before it reads again. It subscribes to
//! the feed before its first read, so no wake-up is lost between a read and the wait.

use std::sync::Arc;

use stele_cluster::{
    Direction, Live, Node, ReadError, StreamReadRequest, StreamReadResult, StreamStart,
};
use stele_core::{RecordedEvent, StreamName};
use tokio::sync::mpsc;

use super::{Message, Source};
use crate::filter::EventFilter;
use crate::links::{self, Resolution};

/// Pages read ahead of the group, at most.
const READER_PAGES: usize = 2;

/// A page stops growing once its messages hold this many bytes.
pub(crate) const PAGE_MAX_BYTES: usize = 4 * 1024 * 1024;

/// Events read from the log at a time while a page is filled.
const READ_STEP_EVENTS: usize = 32;

/// One page of the source.
#[derive(Debug)]
pub(crate) struct Page {
    /// `(position in the source, message)`: the revision in a stream, the log position in
    /// `$all`.
    pub messages: Vec<(u64, Message)>,
    /// The read reached the source's end.
    pub live: bool,
}

pub(crate) struct ReaderConfig {
    pub node: Node,
    pub source: Source,
    pub filter: Option<Arc<EventFilter>>,
    pub resolve_links: bool,
    /// The first position to read.
    pub from: u64,
    pub batch: usize,
}

/// Starts reading; the reader stops when the receiver is dropped. An error ends the
/// channel after it.
pub(crate) fn spawn(config: ReaderConfig) -> mpsc::Receiver<Result<Page, String>> {
    let (tx, rx) = mpsc::channel(READER_PAGES);
    tokio::spawn(run(config, tx));
    rx
}

async fn run(config: ReaderConfig, tx: mpsc::Sender<Result<Page, String>>) {
    let mut live = config.node.subscribe_live();
    let config = Arc::new(config);
    let mut from = config.from;
    let mut said_live = false;
    loop {
        let page_config = config.clone();
        let read = stele_cluster::blocking::spawn(move || read_page(&page_config, from)).await;
        let (messages, next, at_end) = match read {
            Ok(Ok(page)) => page,
            Ok(Err(e)) => {
                let _ = tx.send(Err(e.to_string())).await;
                return;
            }
            Err(e) => {
                let _ = tx.send(Err(format!("reading the source: {e}"))).await;
                return;
            }
        };
        from = next;
        if !messages.is_empty() || (at_end && !said_live) {
            let page = Page {
                messages,
                live: at_end,
            };
            if tx.send(Ok(page)).await.is_err() {
                return;
            }
            said_live = at_end;
        }
        if at_end {
            tokio::select! {
                () = tx.closed() => return,
                got = live.recv() => if matches!(got, Live::Closed) { return },
            }
            // Everything applied so far is covered by the next read.
            while let Some(got) = live.try_recv() {
                if matches!(got, Live::Closed) {
                    return;
                }
            }
        }
    }
}

/// One read: the messages with their source positions, where the next read starts, and
/// whether the source's end was reached.
type ReadOutcome = (Vec<(u64, Message)>, u64, bool);

/// Reads one page from `from`.
fn read_page(config: &ReaderConfig, from: u64) -> Result<ReadOutcome, ReadError> {
    let node = &config.node;
    match &config.source {
        Source::Stream(stream) => read_stream_page(config, stream, from),
        Source::All => {
            let mut messages = Vec::new();
            let mut bytes = 0;
            let mut read = 0;
            let mut from = from;
            loop {
                let step = (config.batch - read).min(READ_STEP_EVENTS);
                let page = node.read_all_range(from, None, step)?;
                read += page.events.len();
                let read_nothing = page.events.is_empty();
                for event in page.events {
                    if config.filter.as_ref().is_some_and(|f| !f.accepts(&event)) {
                        continue;
                    }
                    let position = event.position.0;
                    let message = message(node, config.resolve_links, event)?;
                    bytes += message.size_bytes();
                    messages.push((position, message));
                }
                from = page.next;
                if page.at_end || read_nothing || read >= config.batch || bytes >= PAGE_MAX_BYTES {
                    return Ok((messages, page.next, page.at_end));
                }
            }
        }
    }
}

fn read_stream_page(
    config: &ReaderConfig,
    stream: &StreamName,
    from: u64,
) -> Result<ReadOutcome, ReadError> {
    let node = &config.node;
    let last = match node.stream_last_revision(stream) {
        Ok(last) => last,
        // A tombstoned stream has nothing more to give; the group waits like at any end.
        Err(ReadError::StreamDeleted(_)) => return Ok((Vec::new(), from, true)),
        Err(e) => return Err(e),
    };
    let Some(last) = last.filter(|&last| from <= last) else {
        return Ok((Vec::new(), from, true));
    };
    let read = node.read_stream(&StreamReadRequest {
        stream: stream.clone(),
        start: StreamStart::Revision(from),
        direction: Direction::Forwards,
        max_count: config.batch.min(READ_STEP_EVENTS) as u64,
    });
    let events = match read {
        Ok(StreamReadResult::Events(events)) => events,
        Ok(StreamReadResult::NotFound) | Err(ReadError::StreamDeleted(_)) => Vec::new(),
        Err(e) => return Err(e),
    };
    // Events hidden by `$maxAge` leave a page short or empty; step over the range read.
    let next = match events.last() {
        Some(event) => event.revision.0 + 1,
        None => from + config.batch.min(READ_STEP_EVENTS) as u64,
    };
    let mut messages = Vec::with_capacity(events.len());
    for event in events {
        messages.push((
            event.revision.0,
            message(node, config.resolve_links, event)?,
        ));
    }
    Ok((messages, next, next > last))
}

/// The message for a record the group read, its link resolved when the group asks for it.
fn message(node: &Node, resolve_links: bool, event: RecordedEvent) -> Result<Message, ReadError> {
    let resolution = links::resolve_if(node, resolve_links, &event)?;
    Ok(match resolution {
        Resolution::AsIs => Message {
            event: Some(event),
            link: None,
            retry_count: 0,
        },
        Resolution::Target(target) => Message {
            event: Some(target),
            link: Some(event),
            retry_count: 0,
        },
        Resolution::Unresolved => Message {
            event: None,
            link: Some(event),
            retry_count: 0,
        },
    })
}

/// Reads what a parked link points at and turns it into a message to deliver again:
/// the parked record itself (a link when the group resolves links), resolved as the group
/// would. `None` when the record is gone.
pub(crate) fn unpark(
    node: &Node,
    resolve_links: bool,
    parked_link: &RecordedEvent,
) -> Result<Option<Message>, ReadError> {
    let original = match links::resolve(node, parked_link)? {
        Resolution::Target(original) => original,
        Resolution::AsIs | Resolution::Unresolved => return Ok(None),
    };
    message(node, resolve_links, original).map(Some)
}
