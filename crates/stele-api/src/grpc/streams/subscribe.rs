//! Catch-up subscriptions: `Streams.Read` with `count_option = subscription` (PROTOCOL.md
//! §4), to a stream or to `$all` (optionally filtered), from the start, the end, or after a
//! revision or position (exclusive).
//!
//! The answer is `confirmation` first, then the history, then `caught_up`, then live events;
//! a filtered `$all` subscription also sends a `checkpoint` every `window × multiplier`
//! events considered (matched or not), one when it goes live and one when it falls behind,
//! as EventStoreDB does (`Enumerator.AllSubscriptionFiltered`). A stream that does not exist
//! yet is waited for (never `stream_not_found`); a tombstoned stream ends the subscription
//! with the stream-deleted status, at the start or when it is tombstoned later.
//!
//! **Hand-over without gap or duplicate.** The task subscribes to the node's live feed
//! ([`stele_cluster::live`]) *before* it reads any history, and keeps `seen_end`: every
//! event below that position has been considered. History is read from the log and index
//! up to `$all`'s end; live batches then continue from there. A batch that ends at or
//! below `seen_end` was already read; one that starts beyond it (batches lost because this
//! subscriber lagged, or published before it subscribed) first has the missing range read
//! from the log. Events are sent only above `seen_end` (for `$all`) or from the next
//! expected revision on (for a stream), so each is sent once, in order.
//!
//! **Bounded.** Each subscription sends through its own bounded channel (as reads do:
//! [`super::read::READ_CHANNEL_BATCHES`] batches of at most
//! [`super::read::READ_BATCH_MESSAGES`] responses); history is read
//! [`SUBSCRIPTION_PAGE_EVENTS`] at a time.
//! A client that does not read fills only its own channel: its task stops receiving from
//! the live feed, falls more than the feed's capacity behind (`Lagged`), and later catches
//! up from the log again, like any new subscriber. Writers and other subscribers never
//! wait for it. (EventStoreDB sends no `fell_behind` to clients, and neither does this; a
//! subscription that catches up again sends `caught_up` again, as EventStoreDB does.)

use std::sync::Arc;

use stele_cluster::{
    AllStart, Direction, Live, LiveBatch, LiveReceiver, Node, ReadError, StreamReadRequest,
    StreamReadResult, StreamStart,
};
use stele_core::{RecordedEvent, StreamName};
use stele_proto::streams::read_req::options::filter_options::Window;
use stele_proto::streams::read_req::options::{FilterOption, StreamOption};
use stele_proto::streams::read_req::Options;
use stele_proto::streams::read_resp::{self, CaughtUp, Checkpoint, SubscriptionConfirmation};
use stele_proto::streams::ReadResp;
use tonic::Status;

use super::links::{self, Resolution};
use super::read::{all_start, blocking, stream_start, Halt, Out, ReadStream};
use crate::grpc::events;
use crate::grpc::status;
use crate::grpc::wire_uuid::UuidFormat;
use stele_services::filter::EventFilter;

/// Events read from the log per step while catching up.
pub const SUBSCRIPTION_PAGE_EVENTS: usize = 1024;

/// The search window of a filter that asks for the default (`window.count`): EventStoreDB's
/// read batch size.
pub const DEFAULT_FILTER_WINDOW: u32 = 32;

/// A checked subscription request.
#[derive(Debug)]
pub struct SubscriptionPlan {
    target: Target,
    resolve_links: bool,
    uuid_format: UuidFormat,
}

#[derive(Debug)]
enum Target {
    Stream { stream: StreamName, from: From },
    All { from: From, filter: Option<Filter> },
}

/// Where a subscription starts: the events *after* it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum From {
    Start,
    End,
    /// After this revision (stream) or position (`$all`), exclusive.
    After(u64),
}

#[derive(Debug)]
struct Filter {
    filter: Arc<EventFilter>,
    /// Events considered between checkpoints: window × multiplier.
    checkpoint_interval: u64,
}

/// Turns a request whose combination was already checked into a plan.
pub fn plan(options: &Options, uuid_format: UuidFormat) -> Result<SubscriptionPlan, Status> {
    let target = match &options.stream_option {
        Some(StreamOption::Stream(stream)) => {
            let from = match stream_start(stream.revision_option.as_ref())? {
                StreamStart::Start => From::Start,
                StreamStart::End => From::End,
                StreamStart::Revision(revision) => From::After(revision),
            };
            Target::Stream {
                stream: events::stream_name(stream.stream_identifier.as_ref())?,
                from,
            }
        }
        Some(StreamOption::All(all)) => {
            let from = match all_start(all.all_option.as_ref())? {
                AllStart::Start => From::Start,
                AllStart::End => From::End,
                AllStart::Position(position) => From::After(position),
            };
            let filter = match &options.filter_option {
                Some(FilterOption::Filter(options)) => {
                    if options.checkpoint_interval_multiplier == 0 {
                        return Err(status::not_a_valid(0, "checkpointIntervalMultiplier"));
                    }
                    let window = match options.window {
                        Some(Window::Max(max)) => max,
                        Some(Window::Count(_)) | None => DEFAULT_FILTER_WINDOW,
                    };
                    Some(Filter {
                        filter: Arc::new(crate::grpc::event_filter::from_options(options)?),
                        checkpoint_interval: (u64::from(window)
                            * u64::from(options.checkpoint_interval_multiplier))
                        .max(1),
                    })
                }
                _ => None,
            };
            Target::All { from, filter }
        }
        None => return Err(status::not_a_valid("None", "StreamOptionOneofCase")),
    };
    Ok(SubscriptionPlan {
        target,
        resolve_links: options.resolve_links,
        uuid_format,
    })
}

/// Starts the subscription and returns its response stream.
pub fn spawn(node: Node, plan: SubscriptionPlan) -> ReadStream {
    let (out, stream) = ReadStream::channel();
    // Before any history is read (see the module docs).
    let live = node.subscribe_live();
    tokio::spawn(async move {
        let common = Common {
            node,
            out,
            live,
            resolve_links: plan.resolve_links,
            format: plan.uuid_format,
            seen_end: 0,
        };
        let result = match plan.target {
            Target::Stream { stream, from } => {
                StreamSubscription {
                    common,
                    stream,
                    next_revision: 0,
                }
                .run(from)
                .await
            }
            Target::All { from, filter } => {
                AllSubscription {
                    common,
                    filter,
                    considered: 0,
                    last_event: None,
                    last_checkpoint: None,
                }
                .run(from)
                .await
            }
        };
        if let Err((mut out, Halt::Failed(status))) = result {
            out.fail(status).await;
        }
    });
    stream
}

fn now() -> prost_types::Timestamp {
    prost_types::Timestamp::from(stele_cluster::determinism::system_now())
}

/// The id a confirmation gives the subscription; clients only echo it.
#[allow(
    clippy::disallowed_methods,
    reason = "never observed by the simulation; a seeded draw would shift every later one"
)]
fn subscription_id() -> uuid::Uuid {
    uuid::Uuid::new_v4()
}

fn position(p: u64) -> read_resp::Position {
    read_resp::Position {
        commit_position: p,
        prepare_position: p,
    }
}

/// What both kinds of subscription hold.
struct Common {
    node: Node,
    out: Out,
    live: LiveReceiver,
    resolve_links: bool,
    format: UuidFormat,
    /// Every event below this position has been considered.
    seen_end: u64,
}

/// What the live feed gave next, or that the client left.
enum Next {
    Live(Live),
    ClientGone,
}

impl Common {
    async fn confirm(&mut self) -> Result<(), Halt> {
        self.out
            .send(read_resp::Content::Confirmation(SubscriptionConfirmation {
                subscription_id: subscription_id().to_string(),
            }))
            .await
    }

    /// Sends what has gathered, then waits for the next live batch; a client that goes away
    /// while the feed is idle ends the wait.
    async fn next_live(&mut self) -> Next {
        if self.out.flush().await.is_err() {
            return Next::ClientGone;
        }
        tokio::select! {
            live = self.live.recv() => Next::Live(live),
            _ = self.out.closed() => Next::ClientGone,
        }
    }

    /// Runs a blocking node call on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Node) -> Result<T, ReadError> + Send + 'static,
    ) -> Result<T, Halt> {
        let node = self.node.clone();
        blocking(move || f(&node)).await
    }
}

/// Gives the channel back with a failure, so the caller can tell the client.
type RunResult = Result<(), (Out, Halt)>;

// ---------------------------------------------------------------------------------------
// $all

struct AllSubscription {
    common: Common,
    filter: Option<Filter>,
    /// Events considered since the last checkpoint (filtered subscriptions).
    considered: u64,
    /// Position of the last event considered: where a checkpoint may point.
    last_event: Option<u64>,
    last_checkpoint: Option<u64>,
}

/// One event of a catch-up page, prepared on the blocking pool.
struct Considered {
    position: u64,
    /// The response to send, when the event passes the filter.
    resp: Option<ReadResp>,
}

/// A page of `$all` read and prepared on the blocking pool.
struct PreparedPage {
    items: Vec<Considered>,
    next: u64,
    at_end: bool,
}

/// The outcome of a blocking read started with `stele_cluster::blocking::spawn`.
fn joined<T>(result: Result<Result<T, ReadError>, tokio::task::JoinError>) -> Result<T, Halt> {
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(Halt::Failed(status::read_error(&error))),
        Err(join) => Err(Halt::Failed(status::internal(&format!(
            "read task failed: {join}"
        )))),
    }
}

impl AllSubscription {
    async fn run(mut self, from: From) -> RunResult {
        match self.serve(from).await {
            Ok(()) | Err(Halt::ClientGone) => Ok(()),
            Err(halt) => Err((self.common.out, halt)),
        }
    }

    async fn serve(&mut self, from: From) -> Result<(), Halt> {
        let end = self.common.node.all_end();
        match from {
            From::Start => {}
            From::End => {
                self.common.seen_end = end;
                self.last_event = end.checked_sub(1);
            }
            From::After(position) => {
                // A position the log never gave out fails the call, as for reads.
                self.common
                    .blocking(move |node| node.check_all_position(position))
                    .await?;
                self.common.seen_end = position.saturating_add(1);
                self.last_event = if position < end {
                    Some(position)
                } else {
                    end.checked_sub(1)
                };
            }
        }
        self.common.confirm().await?;
        loop {
            self.catch_up(None).await?;
            self.checkpoint().await?;
            self.common
                .out
                .send(read_resp::Content::CaughtUp(CaughtUp {
                    timestamp: Some(now()),
                    stream_revision: None,
                    position: self.last_event.map(position),
                }))
                .await?;
            loop {
                match self.common.next_live().await {
                    Next::ClientGone => return Err(Halt::ClientGone),
                    Next::Live(Live::Batch(batch)) => self.live_batch(&batch).await?,
                    Next::Live(Live::Lagged(batches)) => {
                        tracing::debug!(
                            batches,
                            seen_end = self.common.seen_end,
                            "$all subscription fell behind the live feed; reading the log"
                        );
                        self.checkpoint().await?;
                        break;
                    }
                    Next::Live(Live::Closed) => return Err(Halt::Failed(status::not_ready())),
                }
            }
        }
    }

    /// Reads `$all` from `seen_end` up to `to` (or its end) and sends what passes the filter.
    /// The next page is read (on the blocking pool) while this one is sent.
    async fn catch_up(&mut self, to: Option<u64>) -> Result<(), Halt> {
        let mut reading = Some(self.read_page(self.common.seen_end, to));
        while let Some(page) = reading.take() {
            let page = joined(page.await)?;
            if !page.at_end {
                reading = Some(self.read_page(page.next, to));
            }
            for item in page.items {
                self.consider(item.position, item.resp).await?;
            }
            self.common.out.flush().await?;
            self.common.seen_end = self.common.seen_end.max(page.next);
        }
        Ok(())
    }

    /// Starts reading a page of `$all` at `from` (up to `to`), filtered and ready to send.
    fn read_page(
        &self,
        from: u64,
        to: Option<u64>,
    ) -> tokio::task::JoinHandle<Result<PreparedPage, ReadError>> {
        let node = self.common.node.clone();
        let filter = self.filter.as_ref().map(|f| f.filter.clone());
        let resolve_links = self.common.resolve_links;
        let format = self.common.format;
        stele_cluster::blocking::spawn(move || {
            let page = node.read_all_range(from, to, SUBSCRIPTION_PAGE_EVENTS)?;
            let items = page
                .events
                .into_iter()
                .map(|event| {
                    let passes = filter.as_ref().is_none_or(|f| f.accepts(&event));
                    let resp = if passes {
                        let resolution = links::resolve_if(&node, resolve_links, &event)?;
                        Some(links::read_resp(&event, &resolution, format))
                    } else {
                        None
                    };
                    Ok(Considered {
                        position: event.position.0,
                        resp,
                    })
                })
                .collect::<Result<Vec<_>, ReadError>>()?;
            Ok(PreparedPage {
                items,
                next: page.next,
                at_end: page.at_end,
            })
        })
    }

    /// Handles one live batch: the range it misses first, from the log; then its events above
    /// what was seen.
    async fn live_batch(&mut self, batch: &Arc<LiveBatch>) -> Result<(), Halt> {
        if batch.end <= self.common.seen_end {
            return Ok(());
        }
        let Some(events) = &batch.events else {
            return self.catch_up(Some(batch.end)).await;
        };
        if batch.from > self.common.seen_end {
            self.catch_up(Some(batch.from)).await?;
        }
        let start = events.partition_point(|e| e.position.0 < self.common.seen_end);
        let fresh = &events[start..];
        let needs_links = self.common.resolve_links && fresh.iter().any(links::is_link);
        let costly_filter = self.filter.as_ref().is_some_and(|f| f.filter.is_costly());
        if needs_links || costly_filter {
            // Resolving reads the log, and a backtracking filter may take up to its budget
            // per event: do either on the blocking pool, for the whole batch, so that the
            // async workers (which acknowledge appends) never wait for it.
            let batch = batch.clone();
            let filter = self.filter.as_ref().map(|f| f.filter.clone());
            let format = self.common.format;
            let resolve_links = self.common.resolve_links;
            let items = self
                .common
                .blocking(move |node| {
                    let events = batch.events.as_deref().unwrap_or_default();
                    events[start..]
                        .iter()
                        .map(|event| {
                            let passes = filter.as_ref().is_none_or(|f| f.accepts(event));
                            let resp = if passes {
                                let resolution = links::resolve_if(node, resolve_links, event)?;
                                Some(links::read_resp(event, &resolution, format))
                            } else {
                                None
                            };
                            Ok(Considered {
                                position: event.position.0,
                                resp,
                            })
                        })
                        .collect::<Result<Vec<_>, ReadError>>()
                })
                .await?;
            for item in items {
                self.consider(item.position, item.resp).await?;
            }
        } else {
            for event in fresh {
                let passes = self.filter.as_ref().is_none_or(|f| f.filter.accepts(event));
                let resp =
                    passes.then(|| links::read_resp(event, &Resolution::AsIs, self.common.format));
                self.consider(event.position.0, resp).await?;
            }
        }
        self.common.seen_end = self.common.seen_end.max(batch.end);
        Ok(())
    }

    /// One event considered: sent if it passed the filter; a checkpoint every interval.
    async fn consider(&mut self, position: u64, resp: Option<ReadResp>) -> Result<(), Halt> {
        if position < self.common.seen_end {
            // Already considered (the log and the live feed overlap at the hand-over).
            return Ok(());
        }
        if let Some(resp) = resp {
            self.common.out.send_resp(resp).await?;
        }
        self.last_event = Some(position);
        self.common.seen_end = position + 1;
        if let Some(filter) = &self.filter {
            self.considered += 1;
            if self.considered >= filter.checkpoint_interval {
                self.considered = 0;
                self.checkpoint().await?;
            }
        }
        Ok(())
    }

    /// A checkpoint at the last event considered (filtered subscriptions only; never twice
    /// at the same position, never before any event).
    async fn checkpoint(&mut self) -> Result<(), Halt> {
        if self.filter.is_none() {
            return Ok(());
        }
        let Some(at) = self.last_event else {
            return Ok(());
        };
        if self.last_checkpoint.is_some_and(|last| last >= at) {
            return Ok(());
        }
        self.last_checkpoint = Some(at);
        self.common
            .out
            .send(read_resp::Content::Checkpoint(Checkpoint {
                commit_position: at,
                prepare_position: at,
                timestamp: Some(now()),
            }))
            .await
    }
}

// ---------------------------------------------------------------------------------------
// One stream

struct StreamSubscription {
    common: Common,
    stream: StreamName,
    /// The revision to send next; lower ones were sent (or were before the start).
    next_revision: u64,
}

impl StreamSubscription {
    async fn run(mut self, from: From) -> RunResult {
        match self.serve(from).await {
            Ok(()) | Err(Halt::ClientGone) => Ok(()),
            Err(halt) => Err((self.common.out, halt)),
        }
    }

    async fn serve(&mut self, from: From) -> Result<(), Halt> {
        self.next_revision = match from {
            From::Start => 0,
            From::After(revision) => revision.saturating_add(1),
            From::End => {
                let stream = self.stream.clone();
                let end = self.common.node.all_end();
                let last = self
                    .common
                    .blocking(move |node| node.stream_last_revision(&stream))
                    .await?;
                self.common.seen_end = end;
                last.map_or(0, |last| last + 1)
            }
        };
        self.common.confirm().await?;
        loop {
            let last = self.catch_up().await?;
            self.common
                .out
                .send(read_resp::Content::CaughtUp(CaughtUp {
                    timestamp: Some(now()),
                    stream_revision: last.map(|r| r.min(i64::MAX as u64) as i64),
                    position: None,
                }))
                .await?;
            loop {
                match self.common.next_live().await {
                    Next::ClientGone => return Err(Halt::ClientGone),
                    Next::Live(Live::Batch(batch)) => self.live_batch(&batch).await?,
                    Next::Live(Live::Lagged(batches)) => {
                        tracing::debug!(
                            batches,
                            stream = %self.stream,
                            "stream subscription fell behind the live feed; reading the log"
                        );
                        break;
                    }
                    Next::Live(Live::Closed) => return Err(Halt::Failed(status::not_ready())),
                }
            }
        }
    }

    /// Reads the stream from `next_revision` to its end (honouring its metadata, like reads)
    /// and sends it; returns the stream's last revision, if it has events.
    async fn catch_up(&mut self) -> Result<Option<u64>, Halt> {
        loop {
            let stream = self.stream.clone();
            let from = self.next_revision;
            let resolve_links = self.common.resolve_links;
            let format = self.common.format;
            let (end, last, resps) = self
                .common
                .blocking(move |node| {
                    // Loaded before reading: the stream holds every event below it.
                    let end = node.all_end();
                    let last = node.stream_last_revision(&stream)?;
                    let events = match last {
                        Some(last) if from <= last => {
                            match node.read_stream(&StreamReadRequest {
                                stream,
                                start: StreamStart::Revision(from),
                                direction: Direction::Forwards,
                                max_count: SUBSCRIPTION_PAGE_EVENTS as u64,
                            })? {
                                StreamReadResult::Events(events) => events,
                                StreamReadResult::NotFound => Vec::new(),
                            }
                        }
                        _ => Vec::new(),
                    };
                    let resps = events
                        .iter()
                        .map(|event| {
                            let resolution = links::resolve_if(node, resolve_links, event)?;
                            Ok((
                                event.revision.0,
                                links::read_resp(event, &resolution, format),
                            ))
                        })
                        .collect::<Result<Vec<_>, ReadError>>()?;
                    Ok((end, last, resps))
                })
                .await?;
            let read_any = !resps.is_empty();
            for (revision, resp) in resps {
                self.send(revision, resp).await?;
            }
            self.common.out.flush().await?;
            let Some(last) = last else {
                // Never written (or soft-deleted and not written since): wait for it.
                self.common.seen_end = self.common.seen_end.max(end);
                return Ok(None);
            };
            if !read_any && self.next_revision <= last {
                // Nothing visible in this page (`$maxAge`, or a soft-deleted stream): skip
                // past it, never past the stream's end (a soft-deleted stream continues
                // after it).
                self.next_revision = (from + SUBSCRIPTION_PAGE_EVENTS as u64).min(last + 1);
            }
            if self.next_revision > last {
                self.common.seen_end = self.common.seen_end.max(end);
                return Ok(Some(last));
            }
        }
    }

    async fn live_batch(&mut self, batch: &Arc<LiveBatch>) -> Result<(), Halt> {
        if batch.tombstoned.contains(&self.stream) {
            return Err(Halt::Failed(status::stream_deleted(self.stream.as_str())));
        }
        if batch.end <= self.common.seen_end {
            return Ok(());
        }
        let events = match &batch.events {
            Some(events) if batch.from <= self.common.seen_end => events,
            // Missed part of `$all` (or the batch was published without its events): read
            // the stream; the batch's events of it are then at or below what was read.
            _ => {
                self.catch_up().await?;
                match &batch.events {
                    Some(events) => events,
                    None => {
                        self.common.seen_end = self.common.seen_end.max(batch.end);
                        return Ok(());
                    }
                }
            }
        };
        let mine: Vec<&RecordedEvent> = events
            .iter()
            .filter(|e| e.record.stream == self.stream && e.revision.0 >= self.next_revision)
            .collect();
        if mine.is_empty() {
            self.common.seen_end = self.common.seen_end.max(batch.end);
            return Ok(());
        }
        let needs_links = self.common.resolve_links && mine.iter().any(|e| links::is_link(e));
        if needs_links {
            let batch = batch.clone();
            let stream = self.stream.clone();
            let next_revision = self.next_revision;
            let format = self.common.format;
            let resps = self
                .common
                .blocking(move |node| {
                    batch
                        .events
                        .as_deref()
                        .unwrap_or_default()
                        .iter()
                        .filter(|e| e.record.stream == stream && e.revision.0 >= next_revision)
                        .map(|event| {
                            let resolution = links::resolve(node, event)?;
                            Ok((
                                event.revision.0,
                                links::read_resp(event, &resolution, format),
                            ))
                        })
                        .collect::<Result<Vec<_>, ReadError>>()
                })
                .await?;
            for (revision, resp) in resps {
                self.send(revision, resp).await?;
            }
        } else {
            let resps: Vec<_> = mine
                .into_iter()
                .map(|event| {
                    (
                        event.revision.0,
                        links::read_resp(event, &Resolution::AsIs, self.common.format),
                    )
                })
                .collect();
            for (revision, resp) in resps {
                self.send(revision, resp).await?;
            }
        }
        self.common.seen_end = self.common.seen_end.max(batch.end);
        Ok(())
    }

    async fn send(&mut self, revision: u64, resp: ReadResp) -> Result<(), Halt> {
        if revision < self.next_revision {
            return Ok(());
        }
        self.common.out.send_resp(resp).await?;
        self.next_revision = revision + 1;
        Ok(())
    }
}
