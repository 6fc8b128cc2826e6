//! A group's reader: its source (a stream, or `$all` through its filter) from a position
//! onwards, through the one catch-up engine ([`crate::catchup`]: history, then live events
//! without a gap), gathered into pages handed to the group through a channel of
//! [`READER_PAGES`] pages, so it never reads further ahead than the group takes.
//!
//! **Bounded in bytes.** A page holds at most the group's `read_batch_size` events (a
//! client may ask for 2^31-1), and stops early once it holds [`PAGE_MAX_BYTES`]; the engine
//! gives [`READ_STEP_EVENTS`] events at a time, so a page never passes that bound by more
//! than one step. Once live, each step goes out as its own page.
//!
//! A page says when the source's end was reached (the group is then live). A tombstoned
//! stream has nothing more to give: the reader waits like at any end.

use std::sync::Arc;

use stele_cluster::{Node, ReadError};
use stele_core::RecordedEvent;
use tokio::sync::mpsc;

use super::{Message, Source};
use crate::access::ReadableStreams;
use crate::catchup::{Begin, CatchUp, CatchUpError, CatchUpRequest, Step, Target};
use crate::filter::EventFilter;
use crate::links::{self, Resolution};

/// Pages read ahead of the group, at most.
const READER_PAGES: usize = 2;

/// A page stops growing once its messages hold this many bytes.
pub(crate) const PAGE_MAX_BYTES: usize = 4 * 1024 * 1024;

/// Events the engine gives at a time while a page is filled.
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
    /// The streams the group's creator may read (`None`: all): a `$all` group sees only
    /// their events, links resolve only into them, and a stream group whose creator may
    /// not read its stream fails.
    pub rights: Option<Arc<ReadableStreams>>,
    /// The first position to read.
    pub from: u64,
    pub batch: usize,
}

/// Starts reading; the reader stops when the receiver is dropped. An error ends the
/// channel after it.
pub(crate) fn spawn(config: ReaderConfig) -> mpsc::Receiver<Result<Page, String>> {
    let (tx, rx) = mpsc::channel(READER_PAGES);
    let in_stream = matches!(config.source, Source::Stream(_));
    let denied_stream = match (&config.source, &config.rights) {
        (Source::Stream(stream), Some(rights)) => Some((stream.clone(), rights.clone())),
        _ => None,
    };
    let request = CatchUpRequest {
        target: match config.source {
            Source::Stream(stream) => Target::Stream(stream),
            Source::All => Target::All {
                filter: match &config.rights {
                    Some(rights) => Some(Arc::new(EventFilter::restricted(
                        config.filter.as_deref(),
                        rights.clone(),
                    ))),
                    None => config.filter,
                },
            },
        },
        begin: Begin::At(config.from),
        resolve_links: config.resolve_links,
        link_targets: config.rights,
        page_events: config.batch.clamp(1, READ_STEP_EVENTS),
        prepare: Arc::new(|event, resolution| message(event.clone(), resolution)),
    };
    let pages = Pages {
        tx,
        batch: config.batch.max(1),
        in_stream,
        messages: Vec::new(),
        bytes: 0,
        said_live: false,
    };
    tokio::spawn(async move {
        if let Some((stream, rights)) = denied_stream {
            let readable = {
                let stream = stream.clone();
                stele_cluster::blocking::spawn(move || rights.may_read(stream.as_str())).await
            };
            if !matches!(readable, Ok(true)) {
                let reason = format!("Access Denied: the group's creator may not read {stream}");
                let _ = pages.tx.send(Err(reason)).await;
                return;
            }
        }
        pages.run(config.node, request).await;
    });
    rx
}

/// Gathers the engine's steps into pages.
struct Pages {
    tx: mpsc::Sender<Result<Page, String>>,
    batch: usize,
    /// Positions in the source are revisions (else `$all` positions).
    in_stream: bool,
    messages: Vec<(u64, Message)>,
    bytes: usize,
    said_live: bool,
}

impl Pages {
    async fn run(mut self, node: Node, request: CatchUpRequest<Message>) {
        let mut engine = match CatchUp::start(node, request).await {
            Ok(engine) => engine,
            Err(error) => return self.failed(error).await,
        };
        loop {
            let step = tokio::select! {
                step = engine.next() => step,
                () = self.tx.closed() => return,
            };
            let sent = match step {
                Ok(Step::Events(items)) => {
                    for item in items {
                        let Some(message) = item.prepared else {
                            continue;
                        };
                        let at = if self.in_stream {
                            item.revision
                        } else {
                            item.position
                        };
                        self.bytes += message.size_bytes();
                        self.messages.push((at, message));
                    }
                    let live = engine.is_live();
                    if live || self.messages.len() >= self.batch || self.bytes >= PAGE_MAX_BYTES {
                        self.send(live).await
                    } else {
                        Ok(())
                    }
                }
                Ok(Step::CaughtUp { .. }) => self.send(true).await,
                Ok(Step::FellBehind { .. }) => self.send(false).await,
                Err(error) => return self.failed(error).await,
            };
            if sent.is_err() {
                return;
            }
        }
    }

    /// The engine stopped: a tombstoned stream has nothing more to give (the group waits
    /// like at any end); a stopping node ends the channel; anything else is reported.
    async fn failed(mut self, error: CatchUpError) {
        match error {
            CatchUpError::Read(ReadError::StreamDeleted(_)) => {
                if self.send(true).await.is_ok() {
                    self.tx.closed().await;
                }
            }
            CatchUpError::Stopping => {}
            error => {
                let _ = self.tx.send(Err(error.to_string())).await;
            }
        }
    }

    /// Sends what has gathered, or only that the source's end was reached.
    async fn send(&mut self, live: bool) -> Result<(), ()> {
        if self.messages.is_empty() && (!live || self.said_live) {
            self.said_live &= live;
            return Ok(());
        }
        let page = Page {
            messages: std::mem::take(&mut self.messages),
            live,
        };
        self.bytes = 0;
        self.said_live = live;
        self.tx.send(Ok(page)).await.map_err(|_| ())
    }
}

/// The message for a record the group read and what its link resolved to.
fn message(event: RecordedEvent, resolution: Resolution) -> Message {
    match resolution {
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
    }
}

/// Reads what a parked link points at and turns it into a message to deliver again:
/// the parked record itself (a link when the group resolves links), resolved as the group
/// would. `None` when the record is gone.
pub(crate) fn unpark(
    node: &Node,
    resolve_links: bool,
    rights: Option<&ReadableStreams>,
    parked_link: &RecordedEvent,
) -> Result<Option<Message>, ReadError> {
    // The parked record is one the group delivered, so its creator may read it (unless its
    // rights changed since: then it is skipped, as a record that is gone).
    let original = match links::resolve(node, rights, parked_link)? {
        Resolution::Target(original) => original,
        Resolution::AsIs | Resolution::Unresolved => return Ok(None),
    };
    let resolution = links::resolve_if(node, resolve_links, rights, &original)?;
    Ok(Some(message(original, resolution)))
}
