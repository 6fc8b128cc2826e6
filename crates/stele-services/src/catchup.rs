//! The one catch-up engine: a stream, or `$all` through an optional filter, from a starting
//! point onwards — first the history from the log and index, then the node's live feed,
//! without a gap or a duplicate at the hand-over, and back to the log whenever the reader
//! falls behind the feed. Catch-up subscriptions (gRPC), persistent subscriptions (their
//! reader) and the simulation's subscribers pull from it; projections will.
//!
//! **Pull, one step at a time.** [`CatchUp::next`] gives the next [`Step`]: a page of events
//! (at most `page_events`), [`Step::CaughtUp`] when the history is read and live events
//! follow, or [`Step::FellBehind`] when the reader lagged so far behind the live feed that
//! batches were dropped for it (the engine then reads the log again, and says `CaughtUp`
//! again). A reader that does not pull holds only its own place: writers and other readers
//! never wait for it.
//!
//! **Hand-over without gap or duplicate.** The engine subscribes to the live feed
//! ([`stele_cluster::live`]) *before* it reads any history (and again, afresh, before it
//! reads the log after falling behind), and keeps `seen_end`: every event
//! below that position has been considered. History is read up to `$all`'s end; live batches
//! then continue from there. A batch that ends at or below `seen_end` was already read; one
//! that starts beyond it (published before the engine subscribed, or without its events
//! because nobody listened then) first has the missing range read from the log. Events are
//! given only above `seen_end` (for `$all`) or from the next expected revision on (for a
//! stream), so each is given once, in order.
//!
//! **Where the work runs.** Reading, filtering with a costly (backtracking) filter, resolving
//! links and the caller's `prepare` (turning an event into what the caller sends: a wire
//! message, a persistent-subscription message) run on [`stele_cluster::blocking`], never on
//! the async workers that acknowledge appends; the next history page is read while the
//! caller handles the current one. A live batch that needs none of that is prepared inline.
//!
//! **Streams.** A stream is read like a read would (its metadata — `$maxCount`, `$maxAge`,
//! `$tb` — applies); a stream that does not exist yet is waited for; a tombstoned stream ends
//! the engine with [`ReadError::StreamDeleted`], at the start or when it is tombstoned later.
//!
//! `next()` is cancel-safe: a step abandoned at an await (a timeout, a client that went away)
//! loses nothing, and the next call goes on from where it was.

use std::collections::VecDeque;
use std::sync::Arc;

use stele_cluster::{
    Direction, Live, LiveBatch, LiveReceiver, Node, ReadError, StreamReadRequest, StreamReadResult,
    StreamStart,
};
use stele_core::{RecordedEvent, StreamName};
use tokio::task::JoinHandle;

use crate::access::ReadableStreams;
use crate::filter::EventFilter;
use crate::links::{self, Resolution};

/// Events read from the log per history page, unless the caller asks for fewer.
pub const DEFAULT_PAGE_EVENTS: usize = 1024;

#[cfg(test)]
mod tests;

/// What to follow.
#[derive(Debug, Clone)]
pub enum Target {
    Stream(StreamName),
    /// `$all`; events the filter refuses are still given, without their prepared form, so
    /// that callers can count them (filtered subscriptions checkpoint every N considered).
    All {
        filter: Option<Arc<EventFilter>>,
    },
}

/// Where to begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begin {
    /// From the first event.
    Start,
    /// With the events written from now on.
    End,
    /// After this revision (stream) or position (`$all`), exclusive. A `$all` position the
    /// log never gave out fails with [`ReadError::InvalidPosition`], as reads do.
    After(u64),
    /// From this revision or position, inclusive (a persistent subscription's next event).
    At(u64),
}

/// Turns an event and what its link resolved to into what the caller hands on.
pub type Prepare<T> = Arc<dyn Fn(&RecordedEvent, Resolution) -> T + Send + Sync>;

/// One event given.
#[derive(Debug)]
pub struct Item<T> {
    /// Its position in `$all`.
    pub position: u64,
    /// Its revision in its stream.
    pub revision: u64,
    /// What `prepare` made of it; `None` when the `$all` filter refused it.
    pub prepared: Option<T>,
}

/// What [`CatchUp::next`] gives.
#[derive(Debug)]
pub enum Step<T> {
    /// Events in order, each once (never empty, at most `page_events`).
    Events(Vec<Item<T>>),
    /// The history is read; live events follow. `last` is the stream's last revision, or for
    /// `$all` the position of the last event considered (none before the start).
    CaughtUp { last: Option<u64> },
    /// Live batches were lost for this reader; it reads the log again and will catch up
    /// again. `last` as for `CaughtUp` (for `$all`: where a checkpoint may point).
    FellBehind { last: Option<u64> },
}

/// Why the engine stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatchUpError {
    /// A read failed: the stream was tombstoned, the start position is not one the log gave
    /// out, the node is not ready, or the log could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The node is stopping: its live feed closed.
    #[error("the node is stopping")]
    Stopping,
    /// A read task on the blocking pool panicked or was cancelled.
    #[error("a read task failed: {0}")]
    Task(String),
}

/// The request.
pub struct CatchUpRequest<T> {
    pub target: Target,
    pub begin: Begin,
    pub resolve_links: bool,
    /// The streams links may resolve into: a link into any other is given unresolved
    /// (`None`: every stream; see [`crate::links`]).
    pub link_targets: Option<Arc<ReadableStreams>>,
    /// Events per step, at most (history pages and live batches alike).
    pub page_events: usize,
    pub prepare: Prepare<T>,
}

/// The engine: see the module docs.
pub struct CatchUp<T> {
    shared: Arc<Shared<T>>,
    live: LiveReceiver,
    phase: Phase,
    /// Every event below this position has been considered.
    seen_end: u64,
    /// Streams: the revision to give next.
    next_revision: u64,
    /// Streams: the last revision the last history read found.
    stream_last: Option<u64>,
    /// `$all`: the position of the last event considered.
    last_event: Option<u64>,
    /// `$all`: the history page being read ahead.
    reading: Option<JoinHandle<Result<Page<T>, ReadError>>>,
    /// The live batch being handled (kept until it is, so a cancelled step loses nothing).
    pending: Option<Arc<LiveBatch>>,
    out: VecDeque<Out<T>>,
}

/// What the blocking reads need.
struct Shared<T> {
    node: Node,
    target: Target,
    resolve_links: bool,
    link_targets: Option<Arc<ReadableStreams>>,
    page_events: usize,
    prepare: Prepare<T>,
}

#[derive(Clone)]
enum Phase {
    /// Reading the log: for `$all` up to `until` (or its end); for a stream to its end, and
    /// then `seen_end` is at least `until`. Then `then`'s events (a live batch that arrived
    /// beyond what was seen), and `CaughtUp` when `announce`.
    History {
        until: Option<u64>,
        then: Option<Arc<LiveBatch>>,
        announce: bool,
    },
    Live,
}

enum Out<T> {
    /// Events in order (as read: a page is handed on without copying when it fits a step).
    Items(std::vec::IntoIter<Item<T>>),
    Step(Step<T>),
}

/// A `$all` history page, filtered and prepared on the blocking pool.
struct Page<T> {
    items: Vec<Item<T>>,
    next: u64,
    at_end: bool,
}

impl<T: Send + 'static> CatchUp<T> {
    /// Subscribes to the live feed, then finds where to begin (before any history is read;
    /// a `$all` position the log never gave out fails here, before the caller confirms
    /// anything to its client).
    pub async fn start(node: Node, request: CatchUpRequest<T>) -> Result<CatchUp<T>, CatchUpError> {
        let live = node.subscribe_live();
        let mut engine = CatchUp {
            shared: Arc::new(Shared {
                node,
                target: request.target,
                resolve_links: request.resolve_links,
                link_targets: request.link_targets,
                page_events: request.page_events.max(1),
                prepare: request.prepare,
            }),
            live,
            phase: Phase::History {
                until: None,
                then: None,
                announce: true,
            },
            seen_end: 0,
            next_revision: 0,
            stream_last: None,
            last_event: None,
            reading: None,
            pending: None,
            out: VecDeque::new(),
        };
        engine.begin(request.begin).await?;
        Ok(engine)
    }

    /// The next step; waits for live events once the history is read.
    pub async fn next(&mut self) -> Result<Step<T>, CatchUpError> {
        loop {
            if let Some(step) = self.take_out() {
                return Ok(step);
            }
            self.advance().await?;
        }
    }

    /// Every event below this position has been given (or was before the start).
    pub fn seen_end(&self) -> u64 {
        self.seen_end
    }

    /// Whether the history is read and the engine follows the live feed (events still queued
    /// are given first).
    pub fn is_live(&self) -> bool {
        matches!(self.phase, Phase::Live)
    }

    /// Up to a page of queued events, or the queued marker.
    fn take_out(&mut self) -> Option<Step<T>> {
        match self.out.pop_front()? {
            Out::Step(step) => Some(step),
            Out::Items(mut items) => {
                let page = self.shared.page_events;
                if items.len() <= page {
                    // Reuses the page's allocation.
                    return Some(Step::Events(items.collect()));
                }
                let first: Vec<_> = items.by_ref().take(page).collect();
                self.out.push_front(Out::Items(items));
                Some(Step::Events(first))
            }
        }
    }

    /// One step of work. Cancel-safe: state changes only after the awaits that may be
    /// abandoned, or in a form that is repeated harmlessly (a history page is read again
    /// from `seen_end`; a live batch being handled is kept in `pending` until it is done).
    async fn advance(&mut self) -> Result<(), CatchUpError> {
        match &self.phase {
            Phase::History {
                until,
                then,
                announce,
            } => {
                let (until, then, announce) = (*until, then.clone(), *announce);
                let done = match &self.shared.target {
                    Target::All { .. } => self.all_history_page(until).await?,
                    Target::Stream(_) => self.stream_history_page().await?,
                };
                if !done {
                    return Ok(());
                }
                if let Some(until) = until {
                    self.seen_end = self.seen_end.max(until);
                }
                if let Some(batch) = then {
                    self.fresh_events(&batch).await?;
                }
                self.phase = Phase::Live;
                if announce {
                    let last = match &self.shared.target {
                        Target::All { .. } => self.last_event,
                        Target::Stream(_) => self.stream_last,
                    };
                    self.out.push_back(Out::Step(Step::CaughtUp { last }));
                }
                Ok(())
            }
            Phase::Live => {
                let batch = match self.pending.take() {
                    Some(batch) => batch,
                    None => match self.live.recv().await {
                        Live::Batch(batch) => batch,
                        Live::Lagged(batches) => {
                            self.fell_behind(batches);
                            return Ok(());
                        }
                        Live::Closed => return Err(CatchUpError::Stopping),
                    },
                };
                self.pending = Some(batch.clone());
                self.live_batch(batch).await?;
                self.pending = None;
                Ok(())
            }
        }
    }

    fn fell_behind(&mut self, batches: u64) {
        tracing::debug!(
            batches,
            seen_end = self.seen_end,
            "a catch-up reader fell behind the live feed; reading the log"
        );
        let last = match &self.shared.target {
            Target::All { .. } => self.last_event,
            Target::Stream(_) => self.next_revision.checked_sub(1),
        };
        self.out.push_back(Out::Step(Step::FellBehind { last }));
        // A fresh place at the feed's tail, taken before the log is read (the hand-over
        // argument again): the batches still queued for the old one are all in the log, and
        // holding them would only make this reader lag again as soon as one more is
        // published.
        self.live = self.shared.node.subscribe_live();
        self.phase = Phase::History {
            until: None,
            then: None,
            announce: true,
        };
    }
}

impl<T: Send + 'static> CatchUp<T> {
    async fn begin(&mut self, begin: Begin) -> Result<(), CatchUpError> {
        let end = self.shared.node.all_end();
        match (&self.shared.target, begin) {
            (_, Begin::Start) => {}
            (Target::All { .. }, Begin::End) => {
                self.seen_end = end;
                self.last_event = end.checked_sub(1);
            }
            (Target::All { .. }, Begin::After(position)) => {
                self.blocking(move |shared| shared.node.check_all_position(position))
                    .await?;
                self.seen_end = position.saturating_add(1);
                self.last_event = if position < end {
                    Some(position)
                } else {
                    end.checked_sub(1)
                };
            }
            (Target::All { .. }, Begin::At(position)) => self.seen_end = position,
            (Target::Stream(_), Begin::End) => {
                let last = self
                    .blocking(|shared| shared.node.stream_last_revision(shared.stream()))
                    .await?;
                self.seen_end = end;
                self.next_revision = last.map_or(0, |last| last + 1);
            }
            (Target::Stream(_), Begin::After(revision)) => {
                self.next_revision = revision.saturating_add(1);
            }
            (Target::Stream(_), Begin::At(revision)) => self.next_revision = revision,
        }
        Ok(())
    }

    /// Runs a node call on the blocking pool.
    async fn blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Shared<T>) -> Result<R, ReadError> + Send + 'static,
    ) -> Result<R, CatchUpError> {
        let shared = self.shared.clone();
        joined(stele_cluster::blocking::spawn(move || f(&shared)).await)
    }

    // -----------------------------------------------------------------------------------
    // $all

    /// Gives one page of `$all` history; true when the read reached `until` (or the end).
    async fn all_history_page(&mut self, until: Option<u64>) -> Result<bool, CatchUpError> {
        let reading = match &mut self.reading {
            Some(reading) => reading,
            None => self
                .reading
                .insert(self.read_all_page(self.seen_end, until)),
        };
        let page = joined(reading.await);
        self.reading = None;
        let page = page?;
        if !page.at_end {
            self.reading = Some(self.read_all_page(page.next, until));
        }
        self.consider(page.items);
        self.seen_end = self.seen_end.max(page.next);
        Ok(page.at_end)
    }

    /// Starts reading a page of `$all` at `from` (up to `to`), filtered and prepared.
    fn read_all_page(&self, from: u64, to: Option<u64>) -> JoinHandle<Result<Page<T>, ReadError>> {
        let shared = self.shared.clone();
        stele_cluster::blocking::spawn(move || {
            let page = shared.node.read_all_range(from, to, shared.page_events)?;
            let items = page
                .events
                .iter()
                .map(|event| shared.considered(event))
                .collect::<Result<Vec<_>, ReadError>>()?;
            Ok(Page {
                items,
                next: page.next,
                at_end: page.at_end,
            })
        })
    }

    /// `$all` events considered (the log and the live feed overlap at the hand-over: what
    /// is below `seen_end` was given already).
    fn consider(&mut self, mut items: Vec<Item<T>>) {
        items.retain(|item| {
            if item.position < self.seen_end {
                return false;
            }
            self.last_event = Some(item.position);
            self.seen_end = item.position + 1;
            true
        });
        self.queue(items);
    }

    /// Queues events to give.
    fn queue(&mut self, items: Vec<Item<T>>) {
        if !items.is_empty() {
            self.out.push_back(Out::Items(items.into_iter()));
        }
    }

    // -----------------------------------------------------------------------------------
    // One stream

    /// Gives one page of the stream from `next_revision` (honouring its metadata, like
    /// reads); true when the stream's end was reached.
    async fn stream_history_page(&mut self) -> Result<bool, CatchUpError> {
        let from = self.next_revision;
        let (end, last, items) = self
            .blocking(move |shared| {
                // Loaded before reading: the stream holds every event below it.
                let end = shared.node.all_end();
                let last = shared.node.stream_last_revision(shared.stream())?;
                let events = match last {
                    Some(last) if from <= last => {
                        match shared.node.read_stream(&StreamReadRequest {
                            stream: shared.stream().clone(),
                            start: StreamStart::Revision(from),
                            direction: Direction::Forwards,
                            max_count: shared.page_events as u64,
                        })? {
                            StreamReadResult::Events(events) => events,
                            StreamReadResult::NotFound => Vec::new(),
                        }
                    }
                    _ => Vec::new(),
                };
                let items = events
                    .iter()
                    .map(|event| shared.prepared(event))
                    .collect::<Result<Vec<_>, ReadError>>()?;
                Ok((end, last, items))
            })
            .await?;
        let read_any = !items.is_empty();
        self.give_revisions(items);
        self.stream_last = last;
        let Some(last) = last else {
            // Never written (or soft-deleted and not written since): wait for it.
            self.seen_end = self.seen_end.max(end);
            return Ok(true);
        };
        if !read_any && self.next_revision <= last {
            // Nothing visible in this page (`$maxAge`, or a soft-deleted stream): skip past
            // it, never past the stream's end (a soft-deleted stream continues after it).
            self.next_revision = (from + self.shared.page_events as u64).min(last + 1);
        }
        if self.next_revision > last {
            self.seen_end = self.seen_end.max(end);
            return Ok(true);
        }
        Ok(false)
    }

    /// A stream's events from the next revision on.
    fn give_revisions(&mut self, mut items: Vec<Item<T>>) {
        items.retain(|item| {
            if item.revision < self.next_revision {
                return false;
            }
            self.next_revision = item.revision + 1;
            true
        });
        self.queue(items);
    }

    // -----------------------------------------------------------------------------------
    // Live

    /// One live batch: given at once when it continues what was seen; else the range it
    /// misses is read from the log first.
    async fn live_batch(&mut self, batch: Arc<LiveBatch>) -> Result<(), CatchUpError> {
        if let Target::Stream(stream) = &self.shared.target {
            if batch.tombstoned.contains(stream) {
                return Err(ReadError::StreamDeleted(stream.clone()).into());
            }
        }
        if batch.end <= self.seen_end {
            return Ok(());
        }
        let history = |until, then| Phase::History {
            until,
            then,
            announce: false,
        };
        match (&self.shared.target, &batch.events) {
            (_, None) => self.phase = history(Some(batch.end), None),
            (_, Some(_)) if batch.from <= self.seen_end => self.fresh_events(&batch).await?,
            (Target::All { .. }, Some(_)) => {
                self.phase = history(Some(batch.from), Some(batch));
            }
            // A stream is read to its end; the batch's events of it are then at or below
            // what was read.
            (Target::Stream(_), Some(_)) => self.phase = history(None, Some(batch)),
        }
        Ok(())
    }

    /// Gives a batch's events above what was seen (the batch starts at or below it).
    async fn fresh_events(&mut self, batch: &Arc<LiveBatch>) -> Result<(), CatchUpError> {
        let events = batch.events.as_deref().unwrap_or_default();
        let (start, next_revision) = (
            events.partition_point(|e| e.position.0 < self.seen_end),
            self.next_revision,
        );
        let shared = &self.shared;
        let mine = |e: &&RecordedEvent| shared.is_mine(e, next_revision);
        let needs_links =
            shared.resolve_links && events[start..].iter().filter(mine).any(links::is_link);
        let costly_filter =
            matches!(&shared.target, Target::All { filter: Some(f) } if f.is_costly());
        let items = if needs_links || costly_filter {
            // Resolving reads the log, and a backtracking filter may take up to its budget
            // per event: either runs on the blocking pool, for the whole batch.
            let batch = batch.clone();
            self.blocking(move |shared| {
                let events = batch.events.as_deref().unwrap_or_default();
                events[start..]
                    .iter()
                    .filter(|e| shared.is_mine(e, next_revision))
                    .map(|event| shared.considered(event))
                    .collect::<Result<Vec<_>, ReadError>>()
            })
            .await?
        } else {
            events[start..]
                .iter()
                .filter(mine)
                .map(|event| shared.considered(event))
                .collect::<Result<Vec<_>, ReadError>>()?
        };
        match self.shared.target {
            Target::All { .. } => self.consider(items),
            Target::Stream(_) => self.give_revisions(items),
        }
        self.seen_end = self.seen_end.max(batch.end);
        Ok(())
    }
}

impl<T> Shared<T> {
    fn stream(&self) -> &StreamName {
        match &self.target {
            Target::Stream(stream) => stream,
            Target::All { .. } => unreachable!("only stream targets read a stream"),
        }
    }

    /// Whether a live event belongs to what is followed (from the next revision on).
    fn is_mine(&self, event: &RecordedEvent, next_revision: u64) -> bool {
        match &self.target {
            Target::All { .. } => true,
            Target::Stream(stream) => {
                event.record.stream == *stream && event.revision.0 >= next_revision
            }
        }
    }

    /// An event through the filter (refused: given without a prepared form), its link
    /// resolved when asked (blocking when it is a link).
    fn considered(&self, event: &RecordedEvent) -> Result<Item<T>, ReadError> {
        let passes = match &self.target {
            Target::All {
                filter: Some(filter),
            } => filter.accepts(event),
            _ => true,
        };
        if passes {
            self.prepared(event)
        } else {
            Ok(Item {
                position: event.position.0,
                revision: event.revision.0,
                prepared: None,
            })
        }
    }

    fn prepared(&self, event: &RecordedEvent) -> Result<Item<T>, ReadError> {
        let resolution = links::resolve_if(
            &self.node,
            self.resolve_links,
            self.link_targets.as_deref(),
            event,
        )?;
        Ok(Item {
            position: event.position.0,
            revision: event.revision.0,
            prepared: Some((self.prepare)(event, resolution)),
        })
    }
}

/// The outcome of a read on the blocking pool.
pub(crate) fn joined<R>(
    result: Result<Result<R, ReadError>, tokio::task::JoinError>,
) -> Result<R, CatchUpError> {
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.into()),
        Err(join) => Err(CatchUpError::Task(join.to_string())),
    }
}
