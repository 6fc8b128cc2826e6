//! Finite reads of a stream or `$all` (PROTOCOL.md §4), page by page: forwards or
//! backwards, from the start, the end, a revision or a position, up to a count, through an
//! optional `$all` filter, links resolved when asked. The node applies the stream's metadata
//! (`$maxCount`, `$maxAge`, `$tb`, soft deletes) to every page; this adds the paging, the
//! count, and what EventStoreDB reports around a stream read (not found, the first and last
//! stream positions).
//!
//! **Pull, a page at a time.** [`Read::next`] gives the next [`ReadStep`]s, or `None` when
//! the read is done; each page is at most [`READ_PAGE_EVENTS`] events, read (and turned
//! into what the caller sends, by its `prepare`) on [`stele_cluster::blocking`]. A caller
//! that sends slowly reads slowly: a read of any count holds one page.
//!
//! **Stream reads.** A missing or soft-deleted stream gives one [`ReadStep::StreamNotFound`]
//! and ends; a tombstoned one fails with [`ReadError::StreamDeleted`]; a stream deleted
//! while it is read just ends. When asked to report positions (the gRPC `compatibility`
//! option, as EventStoreDB does): a forwards read whose first page is empty reports
//! [`ReadStep::FirstStreamPosition`] (the revision after the last one) when that differs
//! from where the read started, and every read that completes reports
//! [`ReadStep::LastStreamPosition`].

use std::sync::Arc;

use stele_cluster::{
    AllReadRequest, AllStart, Direction, Node, ReadError, StreamReadRequest, StreamReadResult,
    StreamStart,
};
use stele_core::{RecordedEvent, StreamName};

use crate::access::ReadableStreams;
use crate::catchup::{joined, CatchUpError, Prepare};
use crate::filter::EventFilter;
use crate::links;

/// Events asked of the node per page.
pub const READ_PAGE_EVENTS: u64 = 500;

#[cfg(test)]
mod tests;

/// What to read.
#[derive(Debug, Clone)]
pub enum ReadTarget {
    Stream {
        stream: StreamName,
        start: StreamStart,
        direction: Direction,
    },
    All {
        start: AllStart,
        direction: Direction,
        filter: Option<Arc<EventFilter>>,
    },
}

/// A read.
pub struct ReadRequest<T> {
    pub target: ReadTarget,
    /// Events at most (a filtered `$all` read counts the events that pass).
    pub count: u64,
    pub resolve_links: bool,
    /// The streams links may resolve into: a link into any other is given unresolved
    /// (`None`: every stream; see [`crate::links`]).
    pub link_targets: Option<Arc<ReadableStreams>>,
    /// Report the first and last stream positions (see the module docs).
    pub report_positions: bool,
    pub prepare: Prepare<T>,
}

/// What a read gives, in order.
#[derive(Debug)]
pub enum ReadStep<T> {
    /// The next events (never empty).
    Events(Vec<T>),
    /// The stream does not exist (or was soft-deleted): the read's only answer.
    StreamNotFound,
    FirstStreamPosition(u64),
    LastStreamPosition(u64),
}

/// A read in progress.
pub struct Read<T> {
    shared: Arc<Shared<T>>,
    remaining: u64,
    /// Where the next page starts; `None` once the read is done.
    next: Option<Next>,
    first_page: bool,
}

#[derive(Debug, Clone, Copy)]
enum Next {
    Stream(StreamStart),
    All(AllStart),
}

struct Shared<T> {
    node: Node,
    target: ReadTarget,
    resolve_links: bool,
    link_targets: Option<Arc<ReadableStreams>>,
    report_positions: bool,
    prepare: Prepare<T>,
}

/// One page read on the blocking pool: what to give, where the next starts.
struct Page<T> {
    steps: Vec<ReadStep<T>>,
    read: u64,
    next: Option<Next>,
}

impl<T: Send + 'static> Read<T> {
    /// Starts a read; a `$all` position the log never gave out fails here.
    pub async fn start(node: Node, request: ReadRequest<T>) -> Result<Read<T>, CatchUpError> {
        let next = match &request.target {
            ReadTarget::Stream { start, .. } => Some(Next::Stream(*start)),
            ReadTarget::All {
                start, direction, ..
            } => {
                if let AllStart::Position(position) = *start {
                    // A client's position must be one the log gave out: an event's, or the
                    // start or end.
                    let checking = node.clone();
                    joined(
                        stele_cluster::blocking::spawn(move || {
                            checking.check_all_position(position)
                        })
                        .await,
                    )?;
                }
                match (*start, direction) {
                    // EventStoreDB reads `$all` backwards from a position *excluding* the
                    // event there (a position names the boundary before its event).
                    (AllStart::Position(position), Direction::Backwards) => position
                        .checked_sub(1)
                        .map(|below| Next::All(AllStart::Position(below))),
                    (start, _) => Some(Next::All(start)),
                }
            }
        };
        // The first page is read whatever the count: a read of no events still says whether
        // the stream exists and where it ends.
        Ok(Read {
            remaining: request.count,
            next,
            first_page: true,
            shared: Arc::new(Shared {
                node,
                target: request.target,
                resolve_links: request.resolve_links,
                link_targets: request.link_targets,
                report_positions: request.report_positions,
                prepare: request.prepare,
            }),
        })
    }

    /// The next page's steps; `None` when the read is done.
    pub async fn next(&mut self) -> Result<Option<Vec<ReadStep<T>>>, CatchUpError> {
        let Some(next) = self.next else {
            return Ok(None);
        };
        let shared = self.shared.clone();
        let (remaining, first_page) = (self.remaining, self.first_page);
        let page = joined(
            stele_cluster::blocking::spawn(move || shared.page(next, remaining, first_page)).await,
        )?;
        self.first_page = false;
        self.remaining -= page.read.min(self.remaining);
        self.next = page.next.filter(|_| self.remaining > 0);
        Ok(Some(page.steps))
    }
}

impl<T> Shared<T> {
    fn page(&self, next: Next, remaining: u64, first_page: bool) -> Result<Page<T>, ReadError> {
        match (next, &self.target) {
            (
                Next::Stream(start),
                ReadTarget::Stream {
                    stream, direction, ..
                },
            ) => self.stream_page(stream, start, *direction, remaining, first_page),
            (
                Next::All(start),
                ReadTarget::All {
                    direction, filter, ..
                },
            ) => self.all_page(start, *direction, filter.as_deref(), remaining),
            _ => unreachable!("a read's next page is of its own target"),
        }
    }

    fn stream_page(
        &self,
        stream: &StreamName,
        start: StreamStart,
        direction: Direction,
        remaining: u64,
        first_page: bool,
    ) -> Result<Page<T>, ReadError> {
        let page = remaining.min(READ_PAGE_EVENTS);
        let mut steps = Vec::new();
        let result = self.node.read_stream(&StreamReadRequest {
            stream: stream.clone(),
            start,
            direction,
            max_count: page,
        })?;
        let mut events = match result {
            StreamReadResult::Events(events) => events,
            StreamReadResult::NotFound if first_page => {
                steps.push(ReadStep::StreamNotFound);
                return Ok(done(steps));
            }
            // Deleted while it was being read: what was given stands, the read just ends.
            StreamReadResult::NotFound => return Ok(done(steps)),
        };
        if first_page
            && self.report_positions
            && direction == Direction::Forwards
            && events.is_empty()
        {
            if let Some(last) = self.last_revision(stream)? {
                let next = last + 1;
                let requested = match start {
                    StreamStart::Start => 0,
                    StreamStart::End => u64::MAX,
                    StreamStart::Revision(r) => r,
                };
                if requested != next {
                    steps.push(ReadStep::FirstStreamPosition(next));
                }
            }
        }
        // Never more than asked, whatever the node returns.
        events.truncate(page as usize);
        let read = events.len() as u64;
        let last_read = events.last().map(|e| e.revision.0);
        let reached_end = read < page;
        self.push_events(&mut steps, &events)?;
        let next = match (last_read, direction) {
            (Some(r), Direction::Forwards) => r.checked_add(1).map(StreamStart::Revision),
            (Some(r), Direction::Backwards) => r.checked_sub(1).map(StreamStart::Revision),
            (None, _) => None,
        };
        match next {
            Some(next) if remaining > read && !reached_end => Ok(Page {
                steps,
                read,
                next: Some(Next::Stream(next)),
            }),
            _ => {
                if self.report_positions {
                    let last = match (direction, reached_end, last_read) {
                        // A forwards read that ran out of events ended at the last one.
                        (Direction::Forwards, true, Some(last)) => Some(last),
                        _ => self.last_revision(stream)?,
                    };
                    if let Some(last) = last {
                        steps.push(ReadStep::LastStreamPosition(last));
                    }
                }
                Ok(Page {
                    steps,
                    read,
                    next: None,
                })
            }
        }
    }

    fn all_page(
        &self,
        start: AllStart,
        direction: Direction,
        filter: Option<&EventFilter>,
        remaining: u64,
    ) -> Result<Page<T>, ReadError> {
        let page = remaining.min(READ_PAGE_EVENTS);
        let request = AllReadRequest {
            start,
            direction,
            max_count: page,
        };
        let mut events = match filter {
            Some(filter) => self.node.read_all(&request, &|e| filter.accepts(e))?,
            None => self.node.read_all(&request, &|_| true)?,
        };
        events.truncate(page as usize);
        let read = events.len() as u64;
        let reached_end = read < page;
        // Positions are byte offsets of records longer than one byte, so one past (or one
        // before) the last event is strictly between it and its neighbour: the next page
        // neither repeats nor skips an event, whether the node reads the bound inclusively
        // or not.
        let next = match (events.last(), direction) {
            (Some(e), Direction::Forwards) => e.position.0.checked_add(1).map(AllStart::Position),
            (Some(e), Direction::Backwards) => e.position.0.checked_sub(1).map(AllStart::Position),
            (None, _) => None,
        };
        let mut steps = Vec::new();
        self.push_events(&mut steps, &events)?;
        Ok(Page {
            steps,
            read,
            next: next.filter(|_| !reached_end).map(Next::All),
        })
    }

    /// The events prepared, their links resolved when asked.
    fn push_events(
        &self,
        steps: &mut Vec<ReadStep<T>>,
        events: &[RecordedEvent],
    ) -> Result<(), ReadError> {
        if events.is_empty() {
            return Ok(());
        }
        let prepared = events
            .iter()
            .map(|event| {
                let resolution = links::resolve_if(
                    &self.node,
                    self.resolve_links,
                    self.link_targets.as_deref(),
                    event,
                )?;
                Ok((self.prepare)(event, resolution))
            })
            .collect::<Result<Vec<_>, ReadError>>()?;
        steps.push(ReadStep::Events(prepared));
        Ok(())
    }

    /// The revision of the stream's last readable event.
    fn last_revision(&self, stream: &StreamName) -> Result<Option<u64>, ReadError> {
        let result = self.node.read_stream(&StreamReadRequest {
            stream: stream.clone(),
            start: StreamStart::End,
            direction: Direction::Backwards,
            max_count: 1,
        })?;
        Ok(match result {
            StreamReadResult::Events(events) => events.first().map(|e| e.revision.0),
            StreamReadResult::NotFound => None,
        })
    }
}

fn done<T>(steps: Vec<ReadStep<T>>) -> Page<T> {
    Page {
        steps,
        read: 0,
        next: None,
    }
}
