//! Catch-up subscriptions: `Streams.Read` with `count_option = subscription` (PROTOCOL.md
//! §4), to a stream or to `$all` (optionally filtered), from the start, the end, or after a
//! revision or position (exclusive) — the gRPC adapter over the services' one catch-up
//! engine ([`stele_services::catchup`]), which reads the history, hands over to the live
//! feed without a gap or a duplicate and goes back to the log for a reader that falls
//! behind.
//!
//! The answer is `confirmation` first, then the history, then `caught_up`, then live events;
//! a filtered `$all` subscription also sends a `checkpoint` every `window × multiplier`
//! events considered (matched or not), one when it goes live and one when it falls behind,
//! as EventStoreDB does (`Enumerator.AllSubscriptionFiltered`). A stream that does not exist
//! yet is waited for (never `stream_not_found`); a tombstoned stream ends the subscription
//! with the stream-deleted status, at the start or when it is tombstoned later.
//!
//! **Bounded.** Each subscription sends through its own bounded channel (as reads do:
//! [`super::read::READ_CHANNEL_BATCHES`] batches of at most
//! [`super::read::READ_BATCH_MESSAGES`] responses); history is read
//! [`SUBSCRIPTION_PAGE_EVENTS`] at a time, and each event becomes its `ReadResp` where it
//! was read (on the blocking pool). A client that does not read fills only its own channel:
//! its task stops pulling from the engine, falls more than the live feed's capacity behind,
//! and later catches up from the log again, like any new subscriber. Writers and other
//! subscribers never wait for it. (EventStoreDB sends no `fell_behind` to clients, and
//! neither does this; a subscription that catches up again sends `caught_up` again, as
//! EventStoreDB does.)

use std::sync::Arc;

use stele_services::catchup;

use stele_cluster::{AllStart, Node, StreamStart};
use stele_core::access::StreamAccess;
use stele_core::StreamName;
use stele_proto::streams::read_req::options::filter_options::Window;
use stele_proto::streams::read_req::options::{FilterOption, StreamOption};
use stele_proto::streams::read_req::Options;
use stele_proto::streams::read_resp::{self, CaughtUp, Checkpoint, SubscriptionConfirmation};
use stele_proto::streams::ReadResp;
use stele_services::access::ReadableStreams;
use stele_services::catchup::{Begin, CatchUp, CatchUpRequest, Step};
use stele_services::filter::EventFilter;

use crate::grpc::caller::Caller;
use tonic::Status;

use super::links;
use super::read::{all_start, halt, stream_start, Halt, Out, ReadStream};
use crate::grpc::events;
use crate::grpc::status;
use crate::grpc::wire_uuid::UuidFormat;

/// Events read from the log per step while catching up.
pub const SUBSCRIPTION_PAGE_EVENTS: usize = stele_services::catchup::DEFAULT_PAGE_EVENTS;

/// The search window of a filter that asks for the default (`window.count`): EventStoreDB's
/// read batch size.
pub const DEFAULT_FILTER_WINDOW: u32 = 32;

/// A checked subscription request.
#[derive(Debug)]
pub struct SubscriptionPlan {
    target: Target,
    resolve_links: bool,
    /// Set by [`authorize`]: the streams links may resolve into (`None`: all).
    link_targets: Option<Arc<ReadableStreams>>,
    uuid_format: UuidFormat,
}

#[derive(Debug)]
enum Target {
    Stream {
        stream: StreamName,
        from: From,
    },
    All {
        from: From,
        filter: Option<Filter>,
        /// Set by [`authorize`] for a caller who does not bypass stream ACLs.
        readable: Option<Arc<ReadableStreams>>,
    },
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
            Target::All {
                from,
                filter,
                readable: None,
            }
        }
        None => return Err(status::not_a_valid("None", "StreamOptionOneofCase")),
    };
    Ok(SubscriptionPlan {
        target,
        resolve_links: options.resolve_links,
        link_targets: None,
        uuid_format,
    })
}

/// Checks that the caller may subscribe to what the plan follows (see `read::authorize`).
pub async fn authorize(
    mut plan: SubscriptionPlan,
    caller: &Caller,
) -> Result<SubscriptionPlan, Status> {
    plan.link_targets = match &mut plan.target {
        Target::Stream { stream, .. } => {
            caller
                .may_access(stream.as_str(), StreamAccess::Read)
                .await?;
            super::read::link_targets(caller, plan.resolve_links)
        }
        Target::All { readable, .. } => {
            *readable = super::read::readable_streams(caller).await?;
            readable.clone()
        }
    };
    Ok(plan)
}

/// Starts the subscription and returns its response stream.
pub fn spawn(node: Node, plan: SubscriptionPlan) -> ReadStream {
    let (out, stream) = ReadStream::channel();
    let format = plan.uuid_format;
    let (target, begin, checkpoints) = match plan.target {
        Target::Stream { stream, from } => (catchup::Target::Stream(stream), from, None),
        Target::All {
            from,
            filter,
            readable,
        } => {
            let (engine_filter, checkpoints) = match filter {
                Some(Filter {
                    filter,
                    checkpoint_interval,
                }) => (
                    Some(filter),
                    Some(Checkpoints {
                        interval: checkpoint_interval,
                        considered: 0,
                        last_event: None,
                        last_checkpoint: None,
                    }),
                ),
                None => (None, None),
            };
            // Events of streams the caller may not read never pass, whatever the client's
            // own filter; checkpoints still count them, as they count filtered-out events.
            let engine_filter = match readable {
                Some(readable) => Some(Arc::new(EventFilter::restricted(
                    engine_filter.as_deref(),
                    readable,
                ))),
                None => engine_filter,
            };
            let target = catchup::Target::All {
                filter: engine_filter,
            };
            (target, from, checkpoints)
        }
    };
    let is_all = matches!(target, catchup::Target::All { .. });
    let request = CatchUpRequest {
        target,
        begin: match begin {
            From::Start => Begin::Start,
            From::End => Begin::End,
            From::After(after) => Begin::After(after),
        },
        resolve_links: plan.resolve_links,
        link_targets: plan.link_targets,
        page_events: SUBSCRIPTION_PAGE_EVENTS,
        prepare: Arc::new(move |event, resolution| links::read_resp(event, &resolution, format)),
    };
    tokio::spawn(async move {
        let mut subscription = Subscription {
            out,
            is_all,
            checkpoints,
        };
        // Subscribes to the live feed before any history is read; a start the log never
        // gave out fails before the confirmation.
        let served = match CatchUp::start(node, request).await {
            Ok(engine) => subscription.serve(engine).await,
            Err(error) => Err(halt(error)),
        };
        if let Err(Halt::Failed(status)) = served {
            subscription.out.fail(status).await;
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

/// A subscription's sending side: the engine's steps as responses.
struct Subscription {
    out: Out,
    is_all: bool,
    /// Filtered `$all` subscriptions only.
    checkpoints: Option<Checkpoints>,
}

/// Where a filtered subscription's checkpoints are.
struct Checkpoints {
    /// Events considered between checkpoints: window × multiplier.
    interval: u64,
    /// Events considered since the last checkpoint.
    considered: u64,
    /// Position of the last event considered: where a checkpoint may point.
    last_event: Option<u64>,
    last_checkpoint: Option<u64>,
}

impl Subscription {
    async fn serve(&mut self, mut engine: CatchUp<ReadResp>) -> Result<(), Halt> {
        self.out
            .send(read_resp::Content::Confirmation(SubscriptionConfirmation {
                subscription_id: subscription_id().to_string(),
            }))
            .await?;
        loop {
            // Everything gathered goes out before the engine may wait (for a page or for
            // live events).
            self.out.flush().await?;
            let step = tokio::select! {
                step = engine.next() => step.map_err(halt)?,
                () = self.out.closed() => return Err(Halt::ClientGone),
            };
            match step {
                Step::Events(items) => {
                    for item in items {
                        if let Some(resp) = item.prepared {
                            self.out.send_resp(resp).await?;
                        }
                        self.considered(item.position).await?;
                    }
                }
                Step::CaughtUp { last } => {
                    self.checkpoint_at(last).await?;
                    let caught_up = if self.is_all {
                        CaughtUp {
                            timestamp: Some(now()),
                            stream_revision: None,
                            position: last.map(position),
                        }
                    } else {
                        CaughtUp {
                            timestamp: Some(now()),
                            stream_revision: last.map(|r| r.min(i64::MAX as u64) as i64),
                            position: None,
                        }
                    };
                    self.out
                        .send(read_resp::Content::CaughtUp(caught_up))
                        .await?;
                }
                Step::FellBehind { last } => self.checkpoint_at(last).await?,
            }
        }
    }

    /// One event considered by a filtered subscription: a checkpoint every interval.
    async fn considered(&mut self, at: u64) -> Result<(), Halt> {
        let Some(checkpoints) = &mut self.checkpoints else {
            return Ok(());
        };
        checkpoints.last_event = Some(at);
        checkpoints.considered += 1;
        if checkpoints.considered < checkpoints.interval {
            return Ok(());
        }
        checkpoints.considered = 0;
        self.checkpoint_at(Some(at)).await
    }

    /// A checkpoint at the last event considered (filtered subscriptions only; never twice
    /// at the same position, never before any event).
    async fn checkpoint_at(&mut self, last: Option<u64>) -> Result<(), Halt> {
        let Some(checkpoints) = &mut self.checkpoints else {
            return Ok(());
        };
        let Some(at) = last.or(checkpoints.last_event) else {
            return Ok(());
        };
        checkpoints.last_event = Some(at);
        if checkpoints.last_checkpoint.is_some_and(|last| last >= at) {
            return Ok(());
        }
        checkpoints.last_checkpoint = Some(at);
        self.out
            .send(read_resp::Content::Checkpoint(Checkpoint {
                commit_position: at,
                prepare_position: at,
                timestamp: Some(now()),
            }))
            .await
    }
}
