//! `Streams.Read` (PROTOCOL.md §4): finite reads of a stream or `$all`, forwards or
//! backwards, from start, end, a revision or a position, up to `count` events, with an
//! optional filter on `$all`; and, with `count_option = subscription`, catch-up
//! subscriptions, which [`super::subscribe`] serves. `resolve_links` resolves link events
//! in both ([`super::links`]).
//!
//! A read is first checked and turned into a [`ReadPlan`] (bad requests fail the call before
//! any message), then runs as a task that pulls pages of [`READ_PAGE_EVENTS`] events from
//! the services' reader ([`stele_services::reads`]: paging, counts, stream positions) and
//! feeds a bounded channel, so a read of any count holds at most one page plus
//! the channel in memory and a slow client slows the reader instead of filling memory.

use std::sync::Arc;

use stele_cluster::{AllStart, Direction, Node, ReadError, StreamStart};
use stele_core::StreamName;
use stele_proto::streams::read_req::options::{
    all_options::AllOption, stream_options::RevisionOption, uuid_option, CountOption, FilterOption,
    ReadDirection, StreamOption,
};
use stele_proto::streams::read_req::Options;
use stele_proto::streams::read_resp::{self, StreamNotFound};
use stele_proto::streams::{ReadReq, ReadResp};
use tokio::sync::mpsc;
use tonic::Status;

use stele_core::access::StreamAccess;
use stele_services::access::ReadableStreams;
use stele_services::catchup::CatchUpError;
use stele_services::filter::EventFilter;
use stele_services::reads::{Read, ReadRequest, ReadStep, ReadTarget};

use crate::grpc::caller::Caller;

use super::links;
use super::subscribe;
use crate::grpc::events;
use crate::grpc::status;
use crate::grpc::wire_uuid::UuidFormat;

/// Events asked of the node per call.
pub const READ_PAGE_EVENTS: u64 = stele_services::reads::READ_PAGE_EVENTS;

/// Batches of responses buffered between a reading task and its client's connection.
pub const READ_CHANNEL_BATCHES: usize = 4;

/// Responses per batch at most. Responses travel in batches so that the task and the
/// connection hand over a page at a time rather than waking each other for every event; a
/// read holds at most `READ_CHANNEL_BATCHES × READ_BATCH_MESSAGES` responses (plus the one
/// batch each side is working on).
pub const READ_BATCH_MESSAGES: usize = 128;

type Batch = Vec<Result<ReadResp, Status>>;

/// The responses of a read or subscription, as tonic sends them: from a bounded channel of
/// batches.
pub struct ReadStream {
    rx: mpsc::Receiver<Batch>,
    batch: std::vec::IntoIter<Result<ReadResp, Status>>,
}

impl ReadStream {
    /// A bounded channel: the task's [`Out`] and the stream tonic sends.
    pub(super) fn channel() -> (Out, ReadStream) {
        let (tx, rx) = mpsc::channel(READ_CHANNEL_BATCHES);
        (
            Out {
                tx,
                buf: Vec::new(),
            },
            ReadStream {
                rx,
                batch: Vec::new().into_iter(),
            },
        )
    }
}

impl futures::Stream for ReadStream {
    type Item = Result<ReadResp, Status>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        loop {
            if let Some(item) = self.batch.next() {
                return std::task::Poll::Ready(Some(item));
            }
            match std::task::ready!(self.rx.poll_recv(cx)) {
                Some(batch) => self.batch = batch.into_iter(),
                None => return std::task::Poll::Ready(None),
            }
        }
    }
}

/// A checked read request: a finite read or a catch-up subscription.
#[derive(Debug)]
pub enum ReadPlan {
    Read(FiniteRead),
    Subscribe(subscribe::SubscriptionPlan),
}

/// A checked finite read.
#[derive(Debug)]
pub struct FiniteRead {
    target: ReadTarget,
    count: u64,
    uuid_format: UuidFormat,
    resolve_links: bool,
    /// Set by [`authorize`]: the streams links may resolve into (`None`: all).
    link_targets: Option<Arc<ReadableStreams>>,
    /// `ControlOption.compatibility`: at 1 or more, stream reads also report the first and
    /// last stream positions.
    compatibility: u32,
}

/// Checks a request in EventStoreDB's order: options, `uuid_option`, the stream/all choice,
/// the option combination (§4.1 table), then the details of each option.
pub fn plan(request: ReadReq) -> Result<ReadPlan, Status> {
    let options = request
        .options
        .ok_or_else(|| status::required_argument("options", "Options"))?;
    let uuid_format = match options.uuid_option.as_ref() {
        None => return Err(status::required_argument("uuidOption", "UUIDOption")),
        Some(option) => match option.content {
            Some(uuid_option::Content::String(_)) => UuidFormat::String,
            // EventStoreDB answers structured ids unless strings are asked for.
            Some(uuid_option::Content::Structured(_)) | None => UuidFormat::Structured,
        },
    };
    if options.stream_option.is_none() {
        return Err(status::not_a_valid("None", "StreamOptionOneofCase"));
    }
    check_combination(&options)?;
    if matches!(options.count_option, Some(CountOption::Subscription(_))) {
        return subscribe::plan(&options, uuid_format).map(ReadPlan::Subscribe);
    }
    let direction = match options.read_direction() {
        ReadDirection::Forwards => Direction::Forwards,
        ReadDirection::Backwards => Direction::Backwards,
    };
    let count = match options.count_option {
        Some(CountOption::Count(count)) => count,
        _ => unreachable!("check_combination accepts only counted reads here"),
    };
    let compatibility = options.control_option.map_or(0, |c| c.compatibility);
    let target = match options.stream_option {
        Some(StreamOption::Stream(stream)) => {
            let start = stream_start(stream.revision_option.as_ref())?;
            ReadTarget::Stream {
                stream: events::stream_name(stream.stream_identifier.as_ref())?,
                start,
                direction,
            }
        }
        Some(StreamOption::All(all)) => {
            let start = all_start(all.all_option.as_ref())?;
            let filter = match &options.filter_option {
                Some(FilterOption::Filter(filter)) => {
                    Some(Arc::new(crate::grpc::event_filter::from_options(filter)?))
                }
                _ => None,
            };
            ReadTarget::All {
                start,
                direction,
                filter,
            }
        }
        None => unreachable!("checked above"),
    };
    Ok(ReadPlan::Read(FiniteRead {
        target,
        count,
        uuid_format,
        resolve_links: options.resolve_links,
        link_targets: None,
        compatibility,
    }))
}

/// The start of `$all` a request names: `Start`, `End` (also the position (`u64::MAX`,
/// `u64::MAX`)), or a position whose commit and prepare parts are equal (one position per
/// event: a pair that differs names no event).
pub(super) fn all_start(option: Option<&AllOption>) -> Result<AllStart, Status> {
    match option {
        // (u64::MAX, u64::MAX) is how EventStoreDB writes Position.End.
        Some(AllOption::Position(p)) if p.commit_position == u64::MAX => Ok(AllStart::End),
        // Clients resume with prepare = commit.
        Some(AllOption::Position(p)) if p.commit_position != p.prepare_position => {
            Err(status::read_error(&ReadError::InvalidPosition))
        }
        Some(AllOption::Position(p)) => Ok(AllStart::Position(p.commit_position)),
        Some(AllOption::Start(_)) => Ok(AllStart::Start),
        Some(AllOption::End(_)) => Ok(AllStart::End),
        None => Err(status::not_a_valid("None", "AllOptionOneofCase")),
    }
}

/// The start of a stream a request names; the revision `u64::MAX` is `End`.
pub(super) fn stream_start(option: Option<&RevisionOption>) -> Result<StreamStart, Status> {
    match option {
        Some(RevisionOption::Revision(u64::MAX)) | Some(RevisionOption::End(_)) => {
            Ok(StreamStart::End)
        }
        Some(RevisionOption::Revision(revision)) => Ok(StreamStart::Revision(*revision)),
        Some(RevisionOption::Start(_)) => Ok(StreamStart::Start),
        None => Err(status::not_a_valid("None", "RevisionOptionOneofCase")),
    }
}

/// The accepted combinations (PROTOCOL.md §4.1); anything else is INVALID_ARGUMENT with
/// EventStoreDB's text, e.g. `The combination of (Stream, Count, Forwards, Filter) is
/// invalid.`
fn check_combination(options: &Options) -> Result<(), Status> {
    let stream = match options.stream_option {
        None => "None",
        Some(StreamOption::Stream(_)) => "Stream",
        Some(StreamOption::All(_)) => "All",
    };
    let count = match options.count_option {
        None => "None",
        Some(CountOption::Count(_)) => "Count",
        Some(CountOption::Subscription(_)) => "Subscription",
    };
    let direction_name = options.read_direction.to_string();
    let direction = match ReadDirection::try_from(options.read_direction) {
        Ok(ReadDirection::Forwards) => "Forwards",
        Ok(ReadDirection::Backwards) => "Backwards",
        Err(_) => direction_name.as_str(),
    };
    let filter = match options.filter_option {
        None => "None",
        Some(FilterOption::Filter(_)) => "Filter",
        Some(FilterOption::NoFilter(_)) => "NoFilter",
    };
    let accepted = matches!(
        (stream, count, direction, filter),
        ("Stream", "Count", "Forwards" | "Backwards", "NoFilter")
            | (
                "All",
                "Count",
                "Forwards" | "Backwards",
                "NoFilter" | "Filter"
            )
            | ("Stream", "Subscription", "Forwards", "NoFilter")
            | ("All", "Subscription", "Forwards", "NoFilter" | "Filter")
    );
    if accepted {
        Ok(())
    } else {
        Err(status::invalid_combination(&[
            stream, count, direction, filter,
        ]))
    }
}

/// Starts the read (or the subscription) and returns the response stream.
/// Checks that the caller may read what the plan reads (issue 13): a stream needs `$r` on it
/// (a metastream `$mr`); `$all` needs `$r` on `$all`, and a caller who does not bypass
/// stream ACLs sees only events of streams it may read.
pub async fn authorize(plan: ReadPlan, caller: &Caller) -> Result<ReadPlan, Status> {
    match plan {
        ReadPlan::Read(mut read) => {
            let readable = match &mut read.target {
                ReadTarget::Stream { stream, .. } => {
                    caller
                        .may_access(stream.as_str(), StreamAccess::Read)
                        .await?;
                    link_targets(caller, read.resolve_links)
                }
                ReadTarget::All { filter, .. } => {
                    let readable = readable_streams(caller).await?;
                    if let Some(readable) = &readable {
                        *filter = Some(Arc::new(EventFilter::restricted(
                            filter.as_deref(),
                            readable.clone(),
                        )));
                    }
                    readable
                }
            };
            read.link_targets = readable;
            Ok(ReadPlan::Read(read))
        }
        ReadPlan::Subscribe(subscription) => subscribe::authorize(subscription, caller)
            .await
            .map(ReadPlan::Subscribe),
    }
}

/// The streams a stream reader's links may resolve into (issue 13: a link never shows an
/// event its reader could not read); `None` when every stream may be read, or links are not
/// resolved.
pub(crate) fn link_targets(caller: &Caller, resolve_links: bool) -> Option<Arc<ReadableStreams>> {
    if resolve_links {
        caller.access.streams_readable_by(&caller.principal)
    } else {
        None
    }
}

/// For a `$all` reader: `None` when every event may be shown.
pub(crate) async fn readable_streams(
    caller: &Caller,
) -> Result<Option<Arc<ReadableStreams>>, Status> {
    caller
        .access
        .readable_streams(&caller.principal)
        .await
        .map_err(|_| status::access_denied())
}

pub fn spawn(node: Node, plan: ReadPlan) -> ReadStream {
    match plan {
        ReadPlan::Read(read) => spawn_read(node, read),
        ReadPlan::Subscribe(subscription) => subscribe::spawn(node, subscription),
    }
}

fn spawn_read(node: Node, plan: FiniteRead) -> ReadStream {
    let (mut out, stream) = ReadStream::channel();
    let format = plan.uuid_format;
    let stream_name = match &plan.target {
        ReadTarget::Stream { stream, .. } => Some(stream.clone()),
        ReadTarget::All { .. } => None,
    };
    let request = ReadRequest {
        target: plan.target,
        count: plan.count,
        resolve_links: plan.resolve_links,
        link_targets: plan.link_targets,
        report_positions: plan.compatibility >= 1,
        prepare: Arc::new(move |event, resolution| links::read_resp(event, &resolution, format)),
    };
    tokio::spawn(async move {
        match serve_read(node, request, stream_name, &mut out).await {
            Ok(()) => {
                // If the client has gone, nobody is left to tell.
                let _ = out.flush().await;
            }
            Err(Halt::Failed(status)) => out.fail(status).await,
            Err(Halt::ClientGone) => {}
        }
    });
    stream
}

/// The read's steps as responses, a page at a time.
async fn serve_read(
    node: Node,
    request: ReadRequest<ReadResp>,
    stream_name: Option<StreamName>,
    out: &mut Out,
) -> Result<(), Halt> {
    let mut read = Read::start(node, request).await.map_err(halt)?;
    while let Some(steps) = read.next().await.map_err(halt)? {
        for step in steps {
            match step {
                ReadStep::Events(resps) => {
                    for resp in resps {
                        out.send_resp(resp).await?;
                    }
                }
                ReadStep::StreamNotFound => {
                    let name = stream_name.as_ref().map_or("", |s| s.as_str());
                    out.send(read_resp::Content::StreamNotFound(StreamNotFound {
                        stream_identifier: Some(events::stream_identifier(name)),
                    }))
                    .await?;
                }
                ReadStep::FirstStreamPosition(next) => {
                    out.send(read_resp::Content::FirstStreamPosition(next))
                        .await?;
                }
                ReadStep::LastStreamPosition(last) => {
                    out.send(read_resp::Content::LastStreamPosition(last))
                        .await?;
                }
            }
        }
        out.flush().await?;
    }
    Ok(())
}

/// A failure of the services' reader or catch-up engine ends the call with its status.
pub(super) fn halt(error: CatchUpError) -> Halt {
    Halt::Failed(status::services_error(&error))
}

/// Why a read or subscription stopped early.
pub(super) enum Halt {
    ClientGone,
    Failed(Status),
}

/// The sending end of a read's bounded response channel: responses gather into a batch,
/// which goes out when full or on [`Out::flush`]. A task flushes before it waits for
/// anything but the channel (the next page is read on the blocking pool, a subscription
/// waits for live events), so nothing sits in the batch while the client could have it.
pub(super) struct Out {
    tx: mpsc::Sender<Batch>,
    buf: Batch,
}

impl Out {
    pub(super) async fn send(&mut self, content: read_resp::Content) -> Result<(), Halt> {
        self.send_resp(ReadResp {
            content: Some(content),
        })
        .await
    }

    pub(super) async fn send_resp(&mut self, resp: ReadResp) -> Result<(), Halt> {
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(READ_BATCH_MESSAGES);
        }
        self.buf.push(Ok(resp));
        if self.buf.len() >= READ_BATCH_MESSAGES {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends what has gathered.
    pub(super) async fn flush(&mut self) -> Result<(), Halt> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.buf);
        self.tx.send(batch).await.map_err(|_| Halt::ClientGone)
    }

    /// Fails the call with `status` after what has gathered (if the client is still there
    /// to be told).
    pub(super) async fn fail(&mut self, status: Status) {
        self.buf.push(Err(status));
        let _ = self.flush().await;
    }

    /// Completes when the client has gone.
    pub(super) async fn closed(&self) {
        self.tx.closed().await
    }
}

#[cfg(test)]
mod tests {
    use stele_proto::shared::{Empty, StreamIdentifier};
    use stele_proto::streams::read_req::options::{
        filter_options, AllOptions, ControlOption, FilterOptions, StreamOptions,
        SubscriptionOptions, UuidOption,
    };
    use tonic::Code;

    use super::*;

    fn stream_options(name: &str, revision: RevisionOption) -> StreamOption {
        StreamOption::Stream(StreamOptions {
            stream_identifier: Some(StreamIdentifier {
                stream_name: name.to_owned().into(),
            }),
            revision_option: Some(revision),
        })
    }

    fn all_options(all: AllOption) -> StreamOption {
        StreamOption::All(AllOptions {
            all_option: Some(all),
        })
    }

    fn filter() -> FilterOption {
        FilterOption::Filter(FilterOptions {
            filter: Some(filter_options::Filter::EventType(
                filter_options::Expression {
                    regex: "^A".into(),
                    prefix: vec![],
                },
            )),
            window: Some(filter_options::Window::Count(Empty {})),
            checkpoint_interval_multiplier: 1,
        })
    }

    fn request(
        stream: StreamOption,
        count: CountOption,
        direction: ReadDirection,
        filter: FilterOption,
    ) -> ReadReq {
        ReadReq {
            options: Some(Options {
                stream_option: Some(stream),
                read_direction: direction as i32,
                resolve_links: false,
                count_option: Some(count),
                filter_option: Some(filter),
                uuid_option: Some(UuidOption {
                    content: Some(uuid_option::Content::String(Empty {})),
                }),
                control_option: None,
            }),
        }
    }

    fn no_filter() -> FilterOption {
        FilterOption::NoFilter(Empty {})
    }

    fn finite(plan: Result<ReadPlan, Status>) -> FiniteRead {
        match plan.unwrap() {
            ReadPlan::Read(read) => read,
            ReadPlan::Subscribe(_) => panic!("expected a finite read"),
        }
    }

    #[test]
    fn stream_read_plan() {
        let mut req = request(
            stream_options("orders", RevisionOption::Revision(5)),
            CountOption::Count(10),
            ReadDirection::Backwards,
            no_filter(),
        );
        req.options.as_mut().unwrap().control_option = Some(ControlOption { compatibility: 1 });
        req.options.as_mut().unwrap().resolve_links = true;
        let plan = finite(plan(req));
        assert!(plan.resolve_links);
        assert_eq!(plan.count, 10);
        assert_eq!(plan.uuid_format, UuidFormat::String);
        assert_eq!(plan.compatibility, 1);
        let ReadTarget::Stream {
            stream,
            start,
            direction,
        } = plan.target
        else {
            panic!("expected a stream read");
        };
        assert_eq!(stream.as_str(), "orders");
        assert_eq!(start, StreamStart::Revision(5));
        assert_eq!(direction, Direction::Backwards);
    }

    #[test]
    fn end_positions_map_to_end() {
        let plan_for = |stream| {
            finite(plan(request(
                stream,
                CountOption::Count(1),
                ReadDirection::Forwards,
                no_filter(),
            )))
            .target
        };
        assert!(matches!(
            plan_for(stream_options("s", RevisionOption::Revision(u64::MAX))),
            ReadTarget::Stream {
                start: StreamStart::End,
                ..
            }
        ));
        assert!(matches!(
            plan_for(all_options(AllOption::Position(
                stele_proto::streams::read_req::options::Position {
                    commit_position: u64::MAX,
                    prepare_position: u64::MAX,
                }
            ))),
            ReadTarget::All {
                start: AllStart::End,
                ..
            }
        ));
        assert!(matches!(
            plan_for(all_options(AllOption::Position(
                stele_proto::streams::read_req::options::Position {
                    commit_position: 77,
                    prepare_position: 77,
                }
            ))),
            ReadTarget::All {
                start: AllStart::Position(77),
                ..
            }
        ));
    }

    #[test]
    fn filtered_all_read_plan() {
        let plan = finite(plan(request(
            all_options(AllOption::Start(Empty {})),
            CountOption::Count(3),
            ReadDirection::Forwards,
            filter(),
        )));
        assert!(matches!(
            plan.target,
            ReadTarget::All {
                start: AllStart::Start,
                direction: Direction::Forwards,
                filter: Some(_),
            }
        ));
    }

    #[test]
    fn combinations_outside_the_table_are_invalid() {
        let subscription = || CountOption::Subscription(SubscriptionOptions {});
        let cases = [
            (
                request(
                    stream_options("s", RevisionOption::Start(Empty {})),
                    CountOption::Count(1),
                    ReadDirection::Forwards,
                    filter(),
                ),
                "The combination of (Stream, Count, Forwards, Filter) is invalid.",
            ),
            (
                request(
                    stream_options("s", RevisionOption::Start(Empty {})),
                    subscription(),
                    ReadDirection::Backwards,
                    no_filter(),
                ),
                "The combination of (Stream, Subscription, Backwards, NoFilter) is invalid.",
            ),
            (
                request(
                    all_options(AllOption::Start(Empty {})),
                    subscription(),
                    ReadDirection::Backwards,
                    filter(),
                ),
                "The combination of (All, Subscription, Backwards, Filter) is invalid.",
            ),
        ];
        for (req, message) in cases {
            let status = plan(req).unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument);
            assert_eq!(status.message(), message);
        }

        let mut no_filter_option = request(
            stream_options("s", RevisionOption::Start(Empty {})),
            CountOption::Count(1),
            ReadDirection::Forwards,
            no_filter(),
        );
        no_filter_option.options.as_mut().unwrap().filter_option = None;
        assert_eq!(
            plan(no_filter_option).unwrap_err().message(),
            "The combination of (Stream, Count, Forwards, None) is invalid."
        );

        let mut bad_direction = request(
            stream_options("s", RevisionOption::Start(Empty {})),
            CountOption::Count(1),
            ReadDirection::Forwards,
            no_filter(),
        );
        bad_direction.options.as_mut().unwrap().read_direction = 7;
        assert_eq!(
            plan(bad_direction).unwrap_err().code(),
            Code::InvalidArgument
        );
    }

    #[test]
    fn valid_subscriptions_are_planned_as_subscriptions() {
        for (target, filter_option) in [
            (all_options(AllOption::Start(Empty {})), filter()),
            (all_options(AllOption::End(Empty {})), no_filter()),
            (
                stream_options("s", RevisionOption::Revision(3)),
                no_filter(),
            ),
        ] {
            let planned = plan(request(
                target,
                CountOption::Subscription(SubscriptionOptions {}),
                ReadDirection::Forwards,
                filter_option,
            ))
            .unwrap();
            assert!(matches!(planned, ReadPlan::Subscribe(_)), "{planned:?}");
        }

        let mut zero_multiplier = request(
            all_options(AllOption::Start(Empty {})),
            CountOption::Subscription(SubscriptionOptions {}),
            ReadDirection::Forwards,
            filter(),
        );
        if let Some(FilterOption::Filter(f)) =
            &mut zero_multiplier.options.as_mut().unwrap().filter_option
        {
            f.checkpoint_interval_multiplier = 0;
        }
        assert_eq!(
            plan(zero_multiplier).unwrap_err().code(),
            Code::InvalidArgument
        );

        let mut mixed_position = request(
            all_options(AllOption::Position(
                stele_proto::streams::read_req::options::Position {
                    commit_position: 10,
                    prepare_position: 9,
                },
            )),
            CountOption::Subscription(SubscriptionOptions {}),
            ReadDirection::Forwards,
            no_filter(),
        );
        mixed_position.options.as_mut().unwrap().resolve_links = true;
        assert_eq!(
            plan(mixed_position).unwrap_err().code(),
            Code::InvalidArgument
        );
    }

    #[test]
    fn missing_options_are_invalid_arguments() {
        assert_eq!(
            plan(ReadReq { options: None }).unwrap_err().code(),
            Code::InvalidArgument
        );

        let mut no_uuid = request(
            stream_options("s", RevisionOption::Start(Empty {})),
            CountOption::Count(1),
            ReadDirection::Forwards,
            no_filter(),
        );
        no_uuid.options.as_mut().unwrap().uuid_option = None;
        let status = plan(no_uuid).unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "'uuidOption' is a required argument of type UUIDOption"
        );

        let mut no_stream = request(
            stream_options("s", RevisionOption::Start(Empty {})),
            CountOption::Count(1),
            ReadDirection::Forwards,
            no_filter(),
        );
        no_stream.options.as_mut().unwrap().stream_option = None;
        assert_eq!(plan(no_stream).unwrap_err().code(), Code::InvalidArgument);

        let no_revision = request(
            StreamOption::Stream(StreamOptions {
                stream_identifier: Some(StreamIdentifier {
                    stream_name: "s".into(),
                }),
                revision_option: None,
            }),
            CountOption::Count(1),
            ReadDirection::Forwards,
            no_filter(),
        );
        assert_eq!(plan(no_revision).unwrap_err().code(), Code::InvalidArgument);

        let empty_name = request(
            stream_options("", RevisionOption::Start(Empty {})),
            CountOption::Count(1),
            ReadDirection::Forwards,
            no_filter(),
        );
        assert_eq!(plan(empty_name).unwrap_err().code(), Code::InvalidArgument);
    }

    #[test]
    fn structured_ids_unless_strings_are_asked_for() {
        let mut req = request(
            stream_options("s", RevisionOption::Start(Empty {})),
            CountOption::Count(1),
            ReadDirection::Forwards,
            no_filter(),
        );
        req.options.as_mut().unwrap().uuid_option = Some(UuidOption {
            content: Some(uuid_option::Content::Structured(Empty {})),
        });
        assert_eq!(finite(plan(req)).uuid_format, UuidFormat::Structured);
    }
}
