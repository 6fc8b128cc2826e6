//! `event_store.client.persistent_subscriptions.PersistentSubscriptions` (PROTOCOL.md §7):
//! Create, Update, Delete, Read, GetInfo, List, ReplayParked and RestartSubsystem over the
//! [`Subsystem`] engine.
//!
//! What this module owns: turning requests into [`Definition`]s, [`GroupKey`]s and
//! [`ConnectRequest`]s, and the engine's answers into responses, with the details clients
//! depend on. What it does not own: the groups themselves (`crate::persistent`), and the
//! error texts and trailers (`status::persistent_error`).
//!
//! **Create and Update.**
//! - The group's source is `stream` (field 4), `all` (field 5), or, when neither is set, the
//!   deprecated `stream_identifier` (field 1) with `settings.revision` as the start. The Rust
//!   client sends field 1 next to field 4, so field 4 wins.
//! - Create takes the strategy from `consumer_strategy` when it is non-empty, else from the
//!   deprecated enum; Update has only the enum (the Python client sends the string on Create
//!   and the enum on Update). An unknown name fails as EventStoreDB's create and update
//!   fail (`PersistentSubscriptionService` answers `Fail`, which its gRPC layer turns into
//!   the PS-failed status: INTERNAL, `Subscription group <g> on stream <s> failed:
//!   'Consumer strategy X does not exist.'`).
//! - Timeouts come as milliseconds or as .NET ticks (10,000 to the millisecond, truncated as
//!   EventStoreDB truncates). A timeout left unset takes the default of [`Settings`] rather
//!   than EventStoreDB's 0 (which would retry every message at once); no official client
//!   leaves them unset. Negative counts and durations are INVALID_ARGUMENT; everything else
//!   is checked by the engine (`Settings::validate`), whose refusal is the PS-failed status
//!   as EventStoreDB's create failure is.
//! - Start positions: a revision (`u64::MAX` is the end, as EventStoreDB reads it), or a
//!   `$all` commit position (the prepare position is the same in Stele's log).
//! - A `$all` group may have a filter (the window and checkpoint multiplier do not apply to
//!   groups). Update carries no filter: the group keeps its own, as in EventStoreDB, so
//!   Update of a `$all` group reads the current definition first.
//!
//! **Read.** The first client message must be `options` (INVALID_ARGUMENT otherwise; a call
//! closed before any message ends quietly, as in EventStoreDB). The answer is
//! `subscription_confirmation` first, then one `event` per delivery with `retry_count`
//! always set and the position of the link, if any, else of the event. A consumer the
//! group drops ends the call with the engine's error; one whose group goes away without a
//! word ends it with the dropped status too, never with OK: the Rust client panics on a
//! stream that ends cleanly (`unreachable!` in `next_subscription_event`). Event ids are
//! written in the form `uuid_option` asks for (structured when unset, as EventStoreDB does).
//! A task reads the client's acks and nacks (ids in either UUID form; `id` ignored) and
//! hands them to the consumer; the response stream owns the [`Consumer`], so a client that
//! hangs up drops it, and dropping the stream stops that task. A nack with action `Unknown`
//! is a retry, as in EventStoreDB (`PersistentSubscription.HandleNackedMessage`). A bad
//! client message ends the call with INVALID_ARGUMENT. The consumer's `connection-name`
//! header (`<unknown>` without one, as EventStoreDB writes it) and the peer address go to
//! the group's info; EventStoreDB leaves `from` empty over gRPC, the address says more.
//!
//! **Info.** Positions are text (`0`/`-1`/revision, or `C:<p>/P:<p>`), empty when there is
//! none; the strategy is its name. Counters wider than the wire's `int32`/`int64` saturate.
//!
//! Streams named `$all` in Read, Delete, GetInfo, ReplayParked and List mean the `$all`
//! group, as EventStoreDB reads them; Create and Update name `$all` through `all`.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use stele_core::RecordedEvent;
use stele_proto::persistent::persistent_subscriptions_server::PersistentSubscriptions;
use stele_proto::persistent::{
    create_req, delete_req, get_info_req, list_req, read_req, read_resp, replay_parked_req,
    subscription_info, update_req, CreateReq, CreateResp, DeleteReq, DeleteResp, GetInfoReq,
    GetInfoResp, ListReq, ListResp, ReadReq, ReadResp, ReplayParkedReq, ReplayParkedResp,
    SubscriptionInfo, UpdateReq, UpdateResp,
};
use stele_proto::shared::{Empty, StreamIdentifier};
use stele_proto::streams::read_resp::read_event as streams_read_event;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use super::event_filter::{EventFilter, FilterField, FilterSpec};
use super::events;
use super::request_headers::CONNECTION_NAME;
use super::status;
use super::wire_uuid::{self, UuidFormat};
use crate::persistent::{
    ConnectRequest, ConnectionInfo, Consumer, ConsumerHandle, Definition, Delivery, GroupInfo,
    GroupKey, Message, NackAction, PsError, Settings, Source, StartFrom, Strategy, Subsystem,
};

/// .NET ticks (100 ns) in a millisecond.
pub const TICKS_PER_MS: i64 = 10_000;

/// The connection name of a consumer that sent no `connection-name` header.
pub const UNKNOWN_CONNECTION_NAME: &str = "<unknown>";

/// The PersistentSubscriptions service of one node.
#[derive(Clone)]
pub struct PersistentSubscriptionsService {
    subsystem: Subsystem,
}

impl PersistentSubscriptionsService {
    pub fn new(subsystem: Subsystem) -> Self {
        PersistentSubscriptionsService { subsystem }
    }
}

/// The answer stream of one Read call.
pub type ReadStream = Pin<Box<dyn Stream<Item = Result<ReadResp, Status>> + Send + 'static>>;

fn ps_status(error: PsError) -> Status {
    status::persistent_error(&error)
}

#[tonic::async_trait]
impl PersistentSubscriptions for PersistentSubscriptionsService {
    async fn create(&self, request: Request<CreateReq>) -> Result<Response<CreateResp>, Status> {
        let definition = create_definition(request.into_inner())?;
        self.subsystem.create(definition).await.map_err(ps_status)?;
        Ok(Response::new(CreateResp {}))
    }

    async fn update(&self, request: Request<UpdateReq>) -> Result<Response<UpdateResp>, Status> {
        // Updates carry no filter; the engine keeps a `$all` group's own.
        let definition = update_definition(request.into_inner())?;
        self.subsystem.update(definition).await.map_err(ps_status)?;
        Ok(Response::new(UpdateResp {}))
    }

    async fn delete(&self, request: Request<DeleteReq>) -> Result<Response<DeleteResp>, Status> {
        let key = delete_key(request.into_inner())?;
        self.subsystem.delete(&key).await.map_err(ps_status)?;
        Ok(Response::new(DeleteResp {}))
    }

    type ReadStream = ReadStream;

    async fn read(
        &self,
        request: Request<Streaming<ReadReq>>,
    ) -> Result<Response<Self::ReadStream>, Status> {
        let connection_name = connection_name(request.metadata());
        let from = request
            .remote_addr()
            .map_or_else(String::new, |address| address.to_string());
        let mut requests = request.into_inner();
        let Some(first) = requests.message().await? else {
            return Ok(Response::new(Box::pin(futures::stream::empty())));
        };
        let plan = connect_plan(first)?;
        let consumer = self
            .subsystem
            .connect(ConnectRequest {
                key: plan.key.clone(),
                buffer_size: plan.buffer_size,
                connection_name,
                from,
                // No authentication yet (insecure mode): every consumer is anonymous.
                username: String::new(),
            })
            .await
            .map_err(ps_status)?;
        Ok(Response::new(read_stream(
            plan.key,
            consumer,
            requests,
            plan.uuid_format,
        )))
    }

    async fn get_info(
        &self,
        request: Request<GetInfoReq>,
    ) -> Result<Response<GetInfoResp>, Status> {
        let key = get_info_key(request.into_inner())?;
        let info = self.subsystem.info(&key).await.map_err(ps_status)?;
        Ok(Response::new(GetInfoResp {
            subscription_info: Some(subscription_info(&info)),
        }))
    }

    async fn replay_parked(
        &self,
        request: Request<ReplayParkedReq>,
    ) -> Result<Response<ReplayParkedResp>, Status> {
        let (key, stop_at) = replay_parked_plan(request.into_inner())?;
        self.subsystem
            .replay_parked(&key, stop_at)
            .await
            .map_err(ps_status)?;
        Ok(Response::new(ReplayParkedResp {}))
    }

    async fn list(&self, request: Request<ListReq>) -> Result<Response<ListResp>, Status> {
        let source = list_source(request.into_inner())?;
        let infos = self
            .subsystem
            .list(source.as_ref())
            .await
            .map_err(ps_status)?;
        Ok(Response::new(ListResp {
            subscriptions: infos.iter().map(subscription_info).collect(),
        }))
    }

    async fn restart_subsystem(&self, _request: Request<Empty>) -> Result<Response<Empty>, Status> {
        tracing::info!("a client asked to restart the persistent subscriptions");
        self.subsystem.restart().await.map_err(ps_status)?;
        Ok(Response::new(Empty {}))
    }
}

// ---------------------------------------------------------------------------------------
// Sources and keys

/// A stream that a group reads; `$all` means the `$all` group, as EventStoreDB reads it.
fn source_of(identifier: Option<&StreamIdentifier>) -> Result<Source, Status> {
    if identifier.is_some_and(|id| id.stream_name.as_ref() == Source::All.name().as_bytes()) {
        return Ok(Source::All);
    }
    events::stream_name(identifier).map(Source::Stream)
}

/// A stream named by Create or Update: `$all` is named through `all`, not as a stream.
fn stream_source(identifier: Option<&StreamIdentifier>) -> Result<Source, Status> {
    events::stream_name(identifier).map(Source::Stream)
}

fn options_of<T>(options: Option<T>) -> Result<T, Status> {
    options.ok_or_else(|| status::required_argument("options", "Options"))
}

fn missing_oneof(type_name: &str) -> Status {
    status::not_a_valid("None", type_name)
}

pub fn delete_key(request: DeleteReq) -> Result<GroupKey, Status> {
    use delete_req::options::StreamOption;
    let options = options_of(request.options)?;
    let source = match &options.stream_option {
        Some(StreamOption::StreamIdentifier(id)) => source_of(Some(id))?,
        Some(StreamOption::All(_)) => Source::All,
        None => return Err(missing_oneof("StreamOptionOneofCase")),
    };
    Ok(GroupKey::new(source, options.group_name))
}

pub fn get_info_key(request: GetInfoReq) -> Result<GroupKey, Status> {
    use get_info_req::options::StreamOption;
    let options = options_of(request.options)?;
    let source = match &options.stream_option {
        Some(StreamOption::StreamIdentifier(id)) => source_of(Some(id))?,
        Some(StreamOption::All(_)) => Source::All,
        None => return Err(missing_oneof("StreamOptionOneofCase")),
    };
    Ok(GroupKey::new(source, options.group_name))
}

/// The group and how many parked messages to replay at most (`None`: all of them).
pub fn replay_parked_plan(request: ReplayParkedReq) -> Result<(GroupKey, Option<u64>), Status> {
    use replay_parked_req::options::{StopAtOption, StreamOption};
    let options = options_of(request.options)?;
    let source = match &options.stream_option {
        Some(StreamOption::StreamIdentifier(id)) => source_of(Some(id))?,
        Some(StreamOption::All(_)) => Source::All,
        None => return Err(missing_oneof("StreamOptionOneofCase")),
    };
    let stop_at = match options.stop_at_option {
        Some(StopAtOption::StopAt(n)) => {
            Some(u64::try_from(n).map_err(|_| status::not_a_valid(n, "stopAt"))?)
        }
        Some(StopAtOption::NoLimit(_)) => None,
        None => return Err(missing_oneof("StopAtOptionOneofCase")),
    };
    Ok((GroupKey::new(source, options.group_name), stop_at))
}

/// Which groups to list: `None` for all of them.
pub fn list_source(request: ListReq) -> Result<Option<Source>, Status> {
    use list_req::options::ListOption;
    use list_req::stream_option::StreamOption;
    let options = options_of(request.options)?;
    match options.list_option {
        Some(ListOption::ListAllSubscriptions(_)) => Ok(None),
        Some(ListOption::ListForStream(for_stream)) => match &for_stream.stream_option {
            Some(StreamOption::Stream(id)) => source_of(Some(id)).map(Some),
            Some(StreamOption::All(_)) => Ok(Some(Source::All)),
            None => Err(missing_oneof("StreamOptionOneofCase")),
        },
        None => Err(missing_oneof("ListOptionOneofCase")),
    }
}

// ---------------------------------------------------------------------------------------
// Create and Update

/// A duration as the wire gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WireDuration {
    Ticks(i64),
    Ms(i32),
}

impl WireDuration {
    /// Milliseconds; ticks are truncated, as EventStoreDB's `(int)TotalMilliseconds` does.
    fn to_ms(self, name: &str) -> Result<u64, Status> {
        let ms = match self {
            WireDuration::Ticks(ticks) => ticks / TICKS_PER_MS,
            WireDuration::Ms(ms) => i64::from(ms),
        };
        u64::try_from(ms).map_err(|_| status::not_a_valid(ms, name))
    }
}

/// The settings fields Create and Update share (their messages are distinct types).
#[derive(Debug, Clone, PartialEq)]
struct WireSettings {
    resolve_links: bool,
    extra_statistics: bool,
    max_retry_count: i32,
    min_checkpoint_count: i32,
    max_checkpoint_count: i32,
    max_subscriber_count: i32,
    live_buffer_size: i32,
    read_batch_size: i32,
    history_buffer_size: i32,
    message_timeout: Option<WireDuration>,
    checkpoint_after: Option<WireDuration>,
}

/// Create's and Update's settings are distinct generated types with the same fields.
macro_rules! wire_settings_from {
    ($module:ident) => {
        impl From<&$module::Settings> for WireSettings {
            fn from(s: &$module::Settings) -> Self {
                use $module::settings::{CheckpointAfter, MessageTimeout};
                WireSettings {
                    resolve_links: s.resolve_links,
                    extra_statistics: s.extra_statistics,
                    max_retry_count: s.max_retry_count,
                    min_checkpoint_count: s.min_checkpoint_count,
                    max_checkpoint_count: s.max_checkpoint_count,
                    max_subscriber_count: s.max_subscriber_count,
                    live_buffer_size: s.live_buffer_size,
                    read_batch_size: s.read_batch_size,
                    history_buffer_size: s.history_buffer_size,
                    message_timeout: s.message_timeout.map(|t| match t {
                        MessageTimeout::MessageTimeoutTicks(ticks) => WireDuration::Ticks(ticks),
                        MessageTimeout::MessageTimeoutMs(ms) => WireDuration::Ms(ms),
                    }),
                    checkpoint_after: s.checkpoint_after.map(|t| match t {
                        CheckpointAfter::CheckpointAfterTicks(ticks) => WireDuration::Ticks(ticks),
                        CheckpointAfter::CheckpointAfterMs(ms) => WireDuration::Ms(ms),
                    }),
                }
            }
        }
    };
}

wire_settings_from!(create_req);
wire_settings_from!(update_req);

fn count(value: i32, name: &str) -> Result<u32, Status> {
    u32::try_from(value).map_err(|_| status::not_a_valid(value, name))
}

fn settings(
    wire: &WireSettings,
    start_from: StartFrom,
    consumer_strategy: Strategy,
) -> Result<Settings, Status> {
    let defaults = Settings::default();
    let message_timeout_ms = match wire.message_timeout {
        Some(timeout) => timeout.to_ms("messageTimeout")?,
        None => defaults.message_timeout_ms,
    };
    let checkpoint_after_ms = match wire.checkpoint_after {
        Some(after) => after.to_ms("checkpointAfter")?,
        None => defaults.checkpoint_after_ms,
    };
    Ok(Settings {
        start_from,
        resolve_links: wire.resolve_links,
        extra_statistics: wire.extra_statistics,
        message_timeout_ms,
        max_retry_count: count(wire.max_retry_count, "maxRetryCount")?,
        live_buffer_size: count(wire.live_buffer_size, "liveBufferSize")?,
        read_batch_size: count(wire.read_batch_size, "readBatchSize")?,
        history_buffer_size: count(wire.history_buffer_size, "historyBufferSize")?,
        checkpoint_after_ms,
        min_checkpoint_count: count(wire.min_checkpoint_count, "minCheckpointCount")?,
        max_checkpoint_count: count(wire.max_checkpoint_count, "maxCheckpointCount")?,
        max_subscriber_count: count(wire.max_subscriber_count, "maxSubscriberCount")?,
        consumer_strategy,
    })
}

/// A stream revision to start from: `u64::MAX` is the end (EventStoreDB's `-1`).
fn revision_start(revision: u64) -> StartFrom {
    if revision == u64::MAX {
        StartFrom::End
    } else {
        StartFrom::At(revision)
    }
}

/// A `$all` position to start from: a commit position of `u64::MAX` is the end.
fn position_start(commit_position: u64) -> StartFrom {
    if commit_position == u64::MAX {
        StartFrom::End
    } else {
        StartFrom::At(commit_position)
    }
}

/// EventStoreDB's answer to a strategy it does not have (the error carries its name).
fn unknown_strategy(key: &GroupKey, name: &str) -> Status {
    status::persistent_error(&PsError::failed(
        key,
        format!("Consumer strategy {name} does not exist."),
    ))
}

fn strategy_by_name(name: &str) -> Result<Strategy, String> {
    Strategy::from_name(name).ok_or_else(|| name.to_owned())
}

/// The strategy Create asks for, or the name of one that does not exist.
fn create_strategy(settings: &create_req::Settings) -> Result<Strategy, String> {
    use create_req::ConsumerStrategy;
    if !settings.consumer_strategy.is_empty() {
        return strategy_by_name(&settings.consumer_strategy);
    }
    match ConsumerStrategy::try_from(settings.named_consumer_strategy) {
        Ok(ConsumerStrategy::DispatchToSingle) => Ok(Strategy::DispatchToSingle),
        Ok(ConsumerStrategy::RoundRobin) => Ok(Strategy::RoundRobin),
        Ok(ConsumerStrategy::Pinned) => Ok(Strategy::Pinned),
        Err(_) => Err(settings.named_consumer_strategy.to_string()),
    }
}

/// The strategy Update asks for, or the name of one that does not exist.
fn update_strategy(settings: &update_req::Settings) -> Result<Strategy, String> {
    use update_req::ConsumerStrategy;
    match ConsumerStrategy::try_from(settings.named_consumer_strategy) {
        Ok(ConsumerStrategy::DispatchToSingle) => Ok(Strategy::DispatchToSingle),
        Ok(ConsumerStrategy::RoundRobin) => Ok(Strategy::RoundRobin),
        Ok(ConsumerStrategy::Pinned) => Ok(Strategy::Pinned),
        Err(_) => Err(settings.named_consumer_strategy.to_string()),
    }
}

/// The filter of a `$all` group; a bad regular expression is INVALID_ARGUMENT.
fn filter_spec(options: &create_req::all_options::FilterOptions) -> Result<FilterSpec, Status> {
    use create_req::all_options::filter_options::Filter;
    use stele_proto::streams::read_req::options::filter_options::Expression;
    let (on, expression) = match &options.filter {
        Some(Filter::StreamIdentifier(e)) => (FilterField::StreamName, e),
        Some(Filter::EventType(e)) => (FilterField::EventType, e),
        None => return Err(missing_oneof("FilterOneofCase")),
    };
    let spec = FilterSpec::from_expression(
        on,
        &Expression {
            regex: expression.regex.clone(),
            prefix: expression.prefix.clone(),
        },
    );
    EventFilter::from_spec(spec.clone()).map_err(status::invalid_argument)?;
    Ok(spec)
}

/// A Create request as the definition of a new group.
pub fn create_definition(request: CreateReq) -> Result<Definition, Status> {
    use create_req::all_options::{AllOption, FilterOption};
    use create_req::options::StreamOption;
    use create_req::stream_options::RevisionOption;
    let options = options_of(request.options)?;
    let wire_settings = options
        .settings
        .as_ref()
        .ok_or_else(|| status::required_argument("settings", "Settings"))?;
    let (source, start_from, filter) = match &options.stream_option {
        Some(StreamOption::Stream(stream)) => {
            let start = match stream.revision_option {
                Some(RevisionOption::Revision(revision)) => revision_start(revision),
                Some(RevisionOption::Start(_)) => StartFrom::Start,
                Some(RevisionOption::End(_)) => StartFrom::End,
                None => return Err(missing_oneof("RevisionOptionOneofCase")),
            };
            (
                stream_source(stream.stream_identifier.as_ref())?,
                start,
                None,
            )
        }
        Some(StreamOption::All(all)) => {
            let start = match &all.all_option {
                Some(AllOption::Position(p)) => position_start(p.commit_position),
                Some(AllOption::Start(_)) => StartFrom::Start,
                Some(AllOption::End(_)) => StartFrom::End,
                None => return Err(missing_oneof("AllOptionOneofCase")),
            };
            let filter = match &all.filter_option {
                Some(FilterOption::Filter(f)) => Some(filter_spec(f)?),
                Some(FilterOption::NoFilter(_)) | None => None,
            };
            (Source::All, start, filter)
        }
        // The deprecated form: field 1, and the start in the settings.
        None => (
            stream_source(options.stream_identifier.as_ref())?,
            revision_start(wire_settings.revision),
            None,
        ),
    };
    let key = GroupKey::new(source, options.group_name);
    let strategy = create_strategy(wire_settings).map_err(|name| unknown_strategy(&key, &name))?;
    Ok(Definition {
        key,
        filter,
        settings: settings(&WireSettings::from(wire_settings), start_from, strategy)?,
    })
}

/// An Update request as the group's new definition. It has no filter; the service copies
/// the group's own before handing it to the engine.
pub fn update_definition(request: UpdateReq) -> Result<Definition, Status> {
    use update_req::all_options::AllOption;
    use update_req::options::StreamOption;
    use update_req::stream_options::RevisionOption;
    let options = options_of(request.options)?;
    let wire_settings = options
        .settings
        .as_ref()
        .ok_or_else(|| status::required_argument("settings", "Settings"))?;
    let (source, start_from) = match &options.stream_option {
        Some(StreamOption::Stream(stream)) => {
            let start = match stream.revision_option {
                Some(RevisionOption::Revision(revision)) => revision_start(revision),
                Some(RevisionOption::Start(_)) => StartFrom::Start,
                Some(RevisionOption::End(_)) => StartFrom::End,
                None => return Err(missing_oneof("RevisionOptionOneofCase")),
            };
            (stream_source(stream.stream_identifier.as_ref())?, start)
        }
        Some(StreamOption::All(all)) => {
            let start = match &all.all_option {
                Some(AllOption::Position(p)) => position_start(p.commit_position),
                Some(AllOption::Start(_)) => StartFrom::Start,
                Some(AllOption::End(_)) => StartFrom::End,
                None => return Err(missing_oneof("AllOptionOneofCase")),
            };
            (Source::All, start)
        }
        None => (
            stream_source(options.stream_identifier.as_ref())?,
            revision_start(wire_settings.revision),
        ),
    };
    let key = GroupKey::new(source, options.group_name);
    let strategy = update_strategy(wire_settings).map_err(|name| unknown_strategy(&key, &name))?;
    Ok(Definition {
        key,
        filter: None,
        settings: settings(&WireSettings::from(wire_settings), start_from, strategy)?,
    })
}

// ---------------------------------------------------------------------------------------
// Read

/// What a Read call's options ask for.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectPlan {
    pub key: GroupKey,
    pub buffer_size: u32,
    pub uuid_format: UuidFormat,
}

/// The `connection-name` header, or EventStoreDB's `<unknown>`.
pub fn connection_name(headers: &MetadataMap) -> String {
    headers
        .get(CONNECTION_NAME)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .unwrap_or_else(|| UNKNOWN_CONNECTION_NAME.to_owned())
}

/// Reads the first message of a Read call, which must be the options.
pub fn connect_plan(first: ReadReq) -> Result<ConnectPlan, Status> {
    use read_req::options::uuid_option::Content as UuidContent;
    use read_req::options::StreamOption;
    let Some(read_req::Content::Options(options)) = first.content else {
        return Err(status::invalid_argument(
            "The first message of a persistent subscription must be its options",
        ));
    };
    let source = match &options.stream_option {
        Some(StreamOption::StreamIdentifier(id)) => source_of(Some(id))?,
        Some(StreamOption::All(_)) => Source::All,
        None => return Err(missing_oneof("StreamOptionOneofCase")),
    };
    let buffer_size = u32::try_from(options.buffer_size)
        .ok()
        .filter(|&size| size > 0)
        .ok_or_else(|| status::not_a_valid(options.buffer_size, "bufferSize"))?;
    let uuid_format = match options.uuid_option.and_then(|o| o.content) {
        Some(UuidContent::String(_)) => UuidFormat::String,
        Some(UuidContent::Structured(_)) | None => UuidFormat::Structured,
    };
    Ok(ConnectPlan {
        key: GroupKey::new(source, options.group_name),
        buffer_size,
        uuid_format,
    })
}

/// What a consumer sends after its options.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    Ack(Vec<Uuid>),
    Nack {
        ids: Vec<Uuid>,
        action: NackAction,
        reason: String,
    },
}

/// A nack's action. `Unknown` leaves the choice to the server, and EventStoreDB retries.
pub fn nack_action(action: i32) -> Result<NackAction, Status> {
    use read_req::nack::Action;
    match Action::try_from(action) {
        Ok(Action::Unknown | Action::Retry) => Ok(NackAction::Retry),
        Ok(Action::Park) => Ok(NackAction::Park),
        Ok(Action::Skip) => Ok(NackAction::Skip),
        Ok(Action::Stop) => Ok(NackAction::Stop),
        Err(_) => Err(status::not_a_valid(action, "Action")),
    }
}

fn message_ids(ids: &[stele_proto::shared::Uuid]) -> Result<Vec<Uuid>, Status> {
    ids.iter()
        .map(|id| wire_uuid::from_wire(id).map_err(|e| status::invalid_argument(e.to_string())))
        .collect()
}

/// An ack or nack (`id` is ignored: clients fill it differently).
pub fn client_message(request: ReadReq) -> Result<ClientMessage, Status> {
    match request.content {
        Some(read_req::Content::Ack(ack)) => Ok(ClientMessage::Ack(message_ids(&ack.ids)?)),
        Some(read_req::Content::Nack(nack)) => Ok(ClientMessage::Nack {
            ids: message_ids(&nack.ids)?,
            action: nack_action(nack.action)?,
            reason: nack.reason,
        }),
        Some(read_req::Content::Options(_)) => {
            Err(status::not_a_valid("Options", "ContentOneofCase"))
        }
        None => Err(missing_oneof("ContentOneofCase")),
    }
}

/// A recorded event in the PersistentSubscriptions message, which has the same fields as
/// the Streams one (so the same ids, positions and three metadata keys).
fn recorded_event(
    event: &RecordedEvent,
    format: UuidFormat,
) -> read_resp::read_event::RecordedEvent {
    let streams_read_event::RecordedEvent {
        id,
        stream_identifier,
        stream_revision,
        prepare_position,
        commit_position,
        metadata,
        custom_metadata,
        data,
    } = events::recorded_event(event, format);
    read_resp::read_event::RecordedEvent {
        id,
        stream_identifier,
        stream_revision,
        prepare_position,
        commit_position,
        metadata,
        custom_metadata,
        data,
    }
}

/// One delivery: the event and its link, the position of the record the group read (the
/// link's, if any), and the retry count, always set.
pub fn read_event(message: &Message, format: UuidFormat) -> ReadResp {
    use read_resp::read_event::{Count, Position};
    ReadResp {
        content: Some(read_resp::Content::Event(read_resp::ReadEvent {
            event: message.event.as_ref().map(|e| recorded_event(e, format)),
            link: message.link.as_ref().map(|e| recorded_event(e, format)),
            position: Some(Position::CommitPosition(message.original().position.0)),
            count: Some(Count::RetryCount(saturate_i32(u64::from(
                message.retry_count,
            )))),
        })),
    }
}

pub fn confirmation(subscription_id: String) -> ReadResp {
    ReadResp {
        content: Some(read_resp::Content::SubscriptionConfirmation(
            read_resp::SubscriptionConfirmation { subscription_id },
        )),
    }
}

/// Aborts the task reading the client's messages when the answer stream goes away.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct ReadState {
    key: GroupKey,
    confirmation: Option<String>,
    consumer: Consumer,
    format: UuidFormat,
    /// A bad client message ends the call with this status; `None` once the reading task
    /// ended without one (the client closed its side, which ends nothing).
    failure: Option<oneshot::Receiver<Status>>,
    done: bool,
    _reader: AbortOnDrop,
}

/// The answer stream of a Read call: the confirmation, then the consumer's deliveries.
fn read_stream<S>(key: GroupKey, consumer: Consumer, requests: S, format: UuidFormat) -> ReadStream
where
    S: Stream<Item = Result<ReadReq, Status>> + Send + Unpin + 'static,
{
    let (failure_tx, failure_rx) = oneshot::channel();
    let reader = tokio::spawn(pump_client_messages(
        requests,
        consumer.handle(),
        failure_tx,
    ));
    let state = ReadState {
        key,
        confirmation: Some(consumer.subscription_id()),
        consumer,
        format,
        failure: Some(failure_rx),
        done: false,
        _reader: AbortOnDrop(reader),
    };
    Box::pin(futures::stream::unfold(state, next_answer))
}

enum Next {
    Delivery(Option<Delivery>),
    Failed(Result<Status, oneshot::error::RecvError>),
}

async fn next_answer(mut state: ReadState) -> Option<(Result<ReadResp, Status>, ReadState)> {
    if state.done {
        return None;
    }
    if let Some(id) = state.confirmation.take() {
        return Some((Ok(confirmation(id)), state));
    }
    loop {
        let next = match state.failure.as_mut() {
            Some(failure) => tokio::select! {
                delivery = state.consumer.next() => Next::Delivery(delivery),
                failed = failure => Next::Failed(failed),
            },
            None => Next::Delivery(state.consumer.next().await),
        };
        match next {
            Next::Delivery(Some(Delivery::Message(message))) => {
                let answer = read_event(&message, state.format);
                return Some((Ok(answer), state));
            }
            Next::Delivery(Some(Delivery::Dropped(error))) => {
                state.done = true;
                return Some((Err(status::persistent_error(&error)), state));
            }
            Next::Delivery(None) => {
                state.done = true;
                let dropped = PsError::dropped(&state.key);
                return Some((Err(status::persistent_error(&dropped)), state));
            }
            Next::Failed(Ok(status)) => {
                state.done = true;
                return Some((Err(status), state));
            }
            Next::Failed(Err(_)) => state.failure = None,
        }
    }
}

/// Hands the client's acks and nacks to its consumer until the client closes its side. A
/// bad message, or a broken request stream, is reported through `failure`.
async fn pump_client_messages<S>(
    mut requests: S,
    handle: ConsumerHandle,
    failure: oneshot::Sender<Status>,
) where
    S: Stream<Item = Result<ReadReq, Status>> + Send + Unpin + 'static,
{
    while let Some(request) = requests.next().await {
        let message = request.and_then(client_message);
        match message {
            Ok(ClientMessage::Ack(ids)) => handle.ack(ids),
            Ok(ClientMessage::Nack {
                ids,
                action,
                reason,
            }) => handle.nack(ids, action, reason),
            Err(status) => {
                let _ = failure.send(status);
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Info

fn saturate_i32(value: u64) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

fn saturate_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A rate as EventStoreDB sends it: an integer (truncated).
fn rate(per_second: f64) -> i32 {
    per_second as i32
}

fn position_text(source: &Source, position: Option<u64>) -> String {
    position.map_or_else(String::new, |p| source.format_position(p))
}

fn connection_info(connection: &ConnectionInfo) -> subscription_info::ConnectionInfo {
    subscription_info::ConnectionInfo {
        from: connection.from.clone(),
        username: connection.username.clone(),
        average_items_per_second: rate(connection.average_items_per_second),
        total_items: saturate_i64(connection.total_items),
        count_since_last_measurement: saturate_i64(connection.count_since_last_measurement),
        observed_measurements: connection
            .extra_statistics
            .iter()
            .map(|(key, value)| subscription_info::Measurement {
                key: key.clone(),
                value: *value,
            })
            .collect(),
        available_slots: saturate_i32(connection.available_slots),
        in_flight_messages: saturate_i32(connection.in_flight_messages),
        connection_name: connection.connection_name.clone(),
    }
}

/// A group's info as GetInfo and List send it: every field of `SubscriptionInfo`.
pub fn subscription_info(info: &GroupInfo) -> SubscriptionInfo {
    let definition = &info.definition;
    let source = &definition.key.source;
    let settings = &definition.settings;
    SubscriptionInfo {
        event_source: source.name().to_owned(),
        group_name: definition.key.group.clone(),
        status: info.status.clone(),
        connections: info.connections.iter().map(connection_info).collect(),
        average_per_second: rate(info.average_per_second),
        total_items: saturate_i64(info.total_items),
        count_since_last_measurement: saturate_i64(info.count_since_last_measurement),
        last_checkpointed_event_position: position_text(source, info.last_checkpointed_position),
        last_known_event_position: position_text(source, info.last_known_position),
        resolve_link_tos: settings.resolve_links,
        start_from: info.start_from_text(),
        message_timeout_milliseconds: saturate_i32(settings.message_timeout_ms),
        extra_statistics: settings.extra_statistics,
        max_retry_count: saturate_i32(settings.max_retry_count.into()),
        live_buffer_size: saturate_i32(settings.live_buffer_size.into()),
        buffer_size: saturate_i32(settings.history_buffer_size.into()),
        read_batch_size: saturate_i32(settings.read_batch_size.into()),
        check_point_after_milliseconds: saturate_i32(settings.checkpoint_after_ms),
        min_check_point_count: saturate_i32(settings.min_checkpoint_count.into()),
        max_check_point_count: saturate_i32(settings.max_checkpoint_count.into()),
        read_buffer_count: saturate_i32(info.read_buffer_count),
        live_buffer_count: saturate_i64(info.live_buffer_count),
        retry_buffer_count: saturate_i32(info.retry_buffer_count),
        total_in_flight_messages: saturate_i32(info.total_in_flight_messages),
        outstanding_messages_count: saturate_i32(info.outstanding_messages_count),
        named_consumer_strategy: settings.consumer_strategy.name().to_owned(),
        max_subscriber_count: saturate_i32(settings.max_subscriber_count.into()),
        parked_message_count: saturate_i64(info.parked_message_count),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use stele_core::{ContentType, EventRecord, LogPosition, StreamName, StreamRevision};
    use stele_proto::shared;
    use tonic::Code;

    use super::*;

    fn identifier(stream: &str) -> StreamIdentifier {
        events::stream_identifier(stream)
    }

    fn stream(name: &str) -> Source {
        Source::Stream(StreamName::new(name).unwrap())
    }

    /// What the Python client sends on Create: the strategy as a string, milliseconds.
    fn create_settings() -> create_req::Settings {
        create_req::Settings {
            resolve_links: true,
            revision: 0,
            extra_statistics: true,
            max_retry_count: 5,
            min_checkpoint_count: 3,
            max_checkpoint_count: 30,
            max_subscriber_count: 4,
            live_buffer_size: 100,
            read_batch_size: 10,
            history_buffer_size: 200,
            named_consumer_strategy: create_req::ConsumerStrategy::DispatchToSingle as i32,
            consumer_strategy: "Pinned".into(),
            message_timeout: Some(create_req::settings::MessageTimeout::MessageTimeoutMs(
                12_000,
            )),
            checkpoint_after: Some(create_req::settings::CheckpointAfter::CheckpointAfterMs(
                1_500,
            )),
        }
    }

    fn create_on_stream(
        name: &str,
        revision_option: create_req::stream_options::RevisionOption,
        settings: create_req::Settings,
    ) -> CreateReq {
        CreateReq {
            options: Some(create_req::Options {
                stream_option: Some(create_req::options::StreamOption::Stream(
                    create_req::StreamOptions {
                        stream_identifier: Some(identifier(name)),
                        revision_option: Some(revision_option),
                    },
                )),
                stream_identifier: None,
                group_name: "g1".into(),
                settings: Some(settings),
            }),
        }
    }

    fn create_on_all(
        all_option: create_req::all_options::AllOption,
        filter_option: Option<create_req::all_options::FilterOption>,
    ) -> CreateReq {
        CreateReq {
            options: Some(create_req::Options {
                stream_option: Some(create_req::options::StreamOption::All(
                    create_req::AllOptions {
                        all_option: Some(all_option),
                        filter_option,
                    },
                )),
                stream_identifier: None,
                group_name: "g1".into(),
                settings: Some(create_settings()),
            }),
        }
    }

    #[test]
    fn create_reads_every_setting_and_prefers_the_strategy_name() {
        use create_req::stream_options::RevisionOption;
        let definition = create_definition(create_on_stream(
            "orders",
            RevisionOption::Revision(7),
            create_settings(),
        ))
        .unwrap();
        assert_eq!(definition.key, GroupKey::new(stream("orders"), "g1"));
        assert_eq!(definition.filter, None);
        assert_eq!(
            definition.settings,
            Settings {
                start_from: StartFrom::At(7),
                resolve_links: true,
                extra_statistics: true,
                message_timeout_ms: 12_000,
                max_retry_count: 5,
                live_buffer_size: 100,
                read_batch_size: 10,
                history_buffer_size: 200,
                checkpoint_after_ms: 1_500,
                min_checkpoint_count: 3,
                max_checkpoint_count: 30,
                max_subscriber_count: 4,
                // The string wins over the deprecated enum (DispatchToSingle).
                consumer_strategy: Strategy::Pinned,
            }
        );

        let start = create_definition(create_on_stream(
            "orders",
            RevisionOption::Start(Empty {}),
            create_settings(),
        ))
        .unwrap();
        assert_eq!(start.settings.start_from, StartFrom::Start);
        let end = create_definition(create_on_stream(
            "orders",
            RevisionOption::End(Empty {}),
            create_settings(),
        ))
        .unwrap();
        assert_eq!(end.settings.start_from, StartFrom::End);
        // EventStoreDB reads revision u64::MAX as -1, the end.
        let max = create_definition(create_on_stream(
            "orders",
            RevisionOption::Revision(u64::MAX),
            create_settings(),
        ))
        .unwrap();
        assert_eq!(max.settings.start_from, StartFrom::End);
    }

    #[test]
    fn create_strategy_falls_back_to_the_enum_and_names_unknown_ones() {
        use create_req::stream_options::RevisionOption;
        let by_enum = |value: i32| {
            create_definition(create_on_stream(
                "s",
                RevisionOption::Start(Empty {}),
                create_req::Settings {
                    consumer_strategy: String::new(),
                    named_consumer_strategy: value,
                    ..create_settings()
                },
            ))
        };
        assert_eq!(
            by_enum(0).unwrap().settings.consumer_strategy,
            Strategy::DispatchToSingle
        );
        assert_eq!(
            by_enum(1).unwrap().settings.consumer_strategy,
            Strategy::RoundRobin
        );
        assert_eq!(
            by_enum(2).unwrap().settings.consumer_strategy,
            Strategy::Pinned
        );
        // EventStoreDB fails the create: the PS-failed status, with its reason.
        let unknown = by_enum(7).unwrap_err();
        assert_eq!(unknown.code(), Code::Internal);
        assert!(
            unknown
                .message()
                .ends_with("failed: 'Consumer strategy 7 does not exist.'"),
            "{}",
            unknown.message()
        );

        let by_name = |name: &str| {
            create_definition(create_on_stream(
                "s",
                RevisionOption::Start(Empty {}),
                create_req::Settings {
                    consumer_strategy: name.to_owned(),
                    ..create_settings()
                },
            ))
        };
        assert_eq!(
            by_name("PinnedByCorrelation")
                .unwrap()
                .settings
                .consumer_strategy,
            Strategy::PinnedByCorrelation
        );
        assert_eq!(
            by_name("roundrobin").unwrap().settings.consumer_strategy,
            Strategy::RoundRobin
        );
        let unknown = by_name("Random").unwrap_err();
        assert_eq!(unknown.code(), Code::Internal);
        assert!(
            unknown
                .message()
                .ends_with("failed: 'Consumer strategy Random does not exist.'"),
            "{}",
            unknown.message()
        );
    }

    #[test]
    fn ticks_are_ten_thousand_to_the_millisecond_and_unset_timeouts_take_defaults() {
        use create_req::settings::{CheckpointAfter, MessageTimeout};
        use create_req::stream_options::RevisionOption;
        let with = |timeout, after| {
            create_definition(create_on_stream(
                "s",
                RevisionOption::Start(Empty {}),
                create_req::Settings {
                    message_timeout: timeout,
                    checkpoint_after: after,
                    ..create_settings()
                },
            ))
        };
        let ticks = with(
            Some(MessageTimeout::MessageTimeoutTicks(300_000_000)),
            Some(CheckpointAfter::CheckpointAfterTicks(20_009_999)),
        )
        .unwrap();
        assert_eq!(ticks.settings.message_timeout_ms, 30_000);
        // Truncated, as EventStoreDB's `(int)TotalMilliseconds`.
        assert_eq!(ticks.settings.checkpoint_after_ms, 2_000);

        let unset = with(None, None).unwrap();
        assert_eq!(
            unset.settings.message_timeout_ms,
            Settings::default().message_timeout_ms
        );
        assert_eq!(
            unset.settings.checkpoint_after_ms,
            Settings::default().checkpoint_after_ms
        );

        let zero = with(Some(MessageTimeout::MessageTimeoutMs(0)), None).unwrap();
        assert_eq!(zero.settings.message_timeout_ms, 0);

        for bad in [
            with(Some(MessageTimeout::MessageTimeoutMs(-1)), None),
            with(None, Some(CheckpointAfter::CheckpointAfterTicks(-10_000))),
        ] {
            assert_eq!(bad.unwrap_err().code(), Code::InvalidArgument);
        }
    }

    #[test]
    fn negative_counts_are_invalid_arguments() {
        use create_req::stream_options::RevisionOption;
        let status = create_definition(create_on_stream(
            "s",
            RevisionOption::Start(Empty {}),
            create_req::Settings {
                live_buffer_size: -1,
                ..create_settings()
            },
        ))
        .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "'-1' is not a valid liveBufferSize");
    }

    #[test]
    fn create_takes_the_stream_option_over_the_deprecated_identifier() {
        use create_req::stream_options::RevisionOption;
        // The Rust client sends both; field 4 wins.
        let mut request =
            create_on_stream("orders", RevisionOption::Revision(3), create_settings());
        let options = request.options.as_mut().unwrap();
        options.stream_identifier = Some(identifier("other"));
        options.settings.as_mut().unwrap().revision = 9;
        let definition = create_definition(request).unwrap();
        assert_eq!(definition.key.source, stream("orders"));
        assert_eq!(definition.settings.start_from, StartFrom::At(3));

        // Only the deprecated form: field 1 and `settings.revision`.
        let legacy = |revision: u64| CreateReq {
            options: Some(create_req::Options {
                stream_option: None,
                stream_identifier: Some(identifier("legacy")),
                group_name: "g1".into(),
                settings: Some(create_req::Settings {
                    revision,
                    ..create_settings()
                }),
            }),
        };
        let definition = create_definition(legacy(4)).unwrap();
        assert_eq!(definition.key, GroupKey::new(stream("legacy"), "g1"));
        assert_eq!(definition.settings.start_from, StartFrom::At(4));
        assert_eq!(
            create_definition(legacy(u64::MAX))
                .unwrap()
                .settings
                .start_from,
            StartFrom::End
        );
        let mut nothing = legacy(0);
        nothing.options.as_mut().unwrap().stream_identifier = None;
        assert_eq!(
            create_definition(nothing).unwrap_err().code(),
            Code::InvalidArgument
        );
    }

    #[test]
    fn create_requires_options_and_settings_and_a_real_stream() {
        use create_req::stream_options::RevisionOption;
        assert_eq!(
            create_definition(CreateReq { options: None })
                .unwrap_err()
                .code(),
            Code::InvalidArgument
        );
        let mut no_settings =
            create_on_stream("s", RevisionOption::Start(Empty {}), create_settings());
        no_settings.options.as_mut().unwrap().settings = None;
        assert_eq!(
            create_definition(no_settings).unwrap_err().code(),
            Code::InvalidArgument
        );
        // `$all` is named through `all`, never as a stream.
        let all_as_stream =
            create_on_stream("$all", RevisionOption::Start(Empty {}), create_settings());
        assert_eq!(
            create_definition(all_as_stream).unwrap_err().code(),
            Code::InvalidArgument
        );
    }

    #[test]
    fn create_on_all_reads_the_position_and_the_filter() {
        use create_req::all_options::filter_options::{Expression, Filter, Window};
        use create_req::all_options::{AllOption, FilterOption, FilterOptions};
        let position = |commit| {
            AllOption::Position(create_req::Position {
                commit_position: commit,
                prepare_position: commit,
            })
        };
        let filter = |filter: Option<Filter>| {
            Some(FilterOption::Filter(FilterOptions {
                filter,
                window: Some(Window::Max(10)),
                checkpoint_interval_multiplier: 1,
            }))
        };

        let definition = create_definition(create_on_all(position(1234), None)).unwrap();
        assert_eq!(definition.key, GroupKey::new(Source::All, "g1"));
        assert_eq!(definition.settings.start_from, StartFrom::At(1234));
        assert_eq!(definition.filter, None);
        assert_eq!(
            create_definition(create_on_all(position(u64::MAX), None))
                .unwrap()
                .settings
                .start_from,
            StartFrom::End
        );
        assert_eq!(
            create_definition(create_on_all(AllOption::Start(Empty {}), None))
                .unwrap()
                .settings
                .start_from,
            StartFrom::Start
        );
        let no_filter = create_definition(create_on_all(
            AllOption::End(Empty {}),
            Some(FilterOption::NoFilter(Empty {})),
        ))
        .unwrap();
        assert_eq!(no_filter.settings.start_from, StartFrom::End);
        assert_eq!(no_filter.filter, None);

        // The Python client's default filter needs negative lookahead.
        let regex = r"^(?!(\$.+$|PersistentConfig\d+$))";
        let by_type = create_definition(create_on_all(
            AllOption::Start(Empty {}),
            filter(Some(Filter::EventType(Expression {
                regex: regex.into(),
                prefix: vec![],
            }))),
        ))
        .unwrap();
        assert_eq!(
            by_type.filter,
            Some(FilterSpec {
                on: FilterField::EventType,
                regex: regex.into(),
                prefixes: vec![],
            })
        );
        let by_stream = create_definition(create_on_all(
            AllOption::Start(Empty {}),
            filter(Some(Filter::StreamIdentifier(Expression {
                regex: String::new(),
                prefix: vec!["orders-".into(), "customers-".into()],
            }))),
        ))
        .unwrap();
        assert_eq!(
            by_stream.filter,
            Some(FilterSpec {
                on: FilterField::StreamName,
                regex: String::new(),
                prefixes: vec!["orders-".into(), "customers-".into()],
            })
        );

        for bad in [
            filter(Some(Filter::EventType(Expression {
                regex: "(".into(),
                prefix: vec![],
            }))),
            filter(None),
        ] {
            let status =
                create_definition(create_on_all(AllOption::Start(Empty {}), bad)).unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument);
        }
    }

    #[test]
    fn update_uses_the_enum_and_carries_no_filter() {
        use update_req::all_options::AllOption;
        use update_req::options::StreamOption;
        let settings = update_req::Settings {
            resolve_links: false,
            revision: 0,
            extra_statistics: false,
            max_retry_count: 10,
            min_checkpoint_count: 10,
            max_checkpoint_count: 1_000,
            max_subscriber_count: 0,
            live_buffer_size: 500,
            read_batch_size: 20,
            history_buffer_size: 500,
            named_consumer_strategy: update_req::ConsumerStrategy::Pinned as i32,
            message_timeout: Some(update_req::settings::MessageTimeout::MessageTimeoutTicks(
                300_000_000,
            )),
            checkpoint_after: Some(update_req::settings::CheckpointAfter::CheckpointAfterMs(
                2_000,
            )),
        };
        let request = UpdateReq {
            options: Some(update_req::Options {
                stream_option: Some(StreamOption::All(update_req::AllOptions {
                    all_option: Some(AllOption::Position(update_req::Position {
                        commit_position: 99,
                        prepare_position: 99,
                    })),
                })),
                stream_identifier: None,
                group_name: "g2".into(),
                settings: Some(settings),
            }),
        };
        let definition = update_definition(request).unwrap();
        assert_eq!(definition.key, GroupKey::new(Source::All, "g2"));
        assert_eq!(definition.filter, None);
        assert_eq!(
            definition.settings,
            Settings {
                start_from: StartFrom::At(99),
                consumer_strategy: Strategy::Pinned,
                ..Settings::default()
            }
        );

        let legacy = UpdateReq {
            options: Some(update_req::Options {
                stream_option: None,
                stream_identifier: Some(identifier("orders")),
                group_name: "g2".into(),
                settings: Some(update_req::Settings {
                    revision: 5,
                    named_consumer_strategy: 9,
                    ..settings
                }),
            }),
        };
        let status = update_definition(legacy).unwrap_err();
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(
            status.message(),
            "Subscription group g2 on stream orders failed: 'Consumer strategy 9 does not exist.'"
        );
    }

    #[test]
    fn read_options_must_come_first() {
        let ack = ReadReq {
            content: Some(read_req::Content::Ack(read_req::Ack::default())),
        };
        assert_eq!(connect_plan(ack).unwrap_err().code(), Code::InvalidArgument);
        assert_eq!(
            connect_plan(ReadReq { content: None }).unwrap_err().code(),
            Code::InvalidArgument
        );
    }

    fn read_options(
        stream_option: Option<read_req::options::StreamOption>,
        buffer_size: i32,
        uuid: Option<read_req::options::uuid_option::Content>,
    ) -> ReadReq {
        ReadReq {
            content: Some(read_req::Content::Options(read_req::Options {
                group_name: "g1".into(),
                buffer_size,
                uuid_option: uuid.map(|content| read_req::options::UuidOption {
                    content: Some(content),
                }),
                stream_option,
            })),
        }
    }

    #[test]
    fn read_options_name_the_group_buffer_and_uuid_form() {
        use read_req::options::uuid_option::Content;
        use read_req::options::StreamOption;
        let plan = connect_plan(read_options(
            Some(StreamOption::StreamIdentifier(identifier("orders"))),
            10,
            Some(Content::String(Empty {})),
        ))
        .unwrap();
        assert_eq!(
            plan,
            ConnectPlan {
                key: GroupKey::new(stream("orders"), "g1"),
                buffer_size: 10,
                uuid_format: UuidFormat::String,
            }
        );
        let all = connect_plan(read_options(
            Some(StreamOption::All(Empty {})),
            1,
            Some(Content::Structured(Empty {})),
        ))
        .unwrap();
        assert_eq!(all.key.source, Source::All);
        assert_eq!(all.uuid_format, UuidFormat::Structured);
        // No uuid_option: structured, as EventStoreDB answers.
        let unset = connect_plan(read_options(
            Some(StreamOption::StreamIdentifier(identifier("$all"))),
            1,
            None,
        ))
        .unwrap();
        assert_eq!(unset.uuid_format, UuidFormat::Structured);
        assert_eq!(unset.key.source, Source::All);

        for bad in [
            read_options(None, 10, None),
            read_options(Some(StreamOption::All(Empty {})), 0, None),
            read_options(Some(StreamOption::All(Empty {})), -5, None),
        ] {
            assert_eq!(connect_plan(bad).unwrap_err().code(), Code::InvalidArgument);
        }
    }

    #[test]
    fn nack_actions_map_and_unknown_is_a_retry() {
        use read_req::nack::Action;
        assert_eq!(
            nack_action(Action::Unknown as i32).unwrap(),
            NackAction::Retry
        );
        assert_eq!(
            nack_action(Action::Retry as i32).unwrap(),
            NackAction::Retry
        );
        assert_eq!(nack_action(Action::Park as i32).unwrap(), NackAction::Park);
        assert_eq!(nack_action(Action::Skip as i32).unwrap(), NackAction::Skip);
        assert_eq!(nack_action(Action::Stop as i32).unwrap(), NackAction::Stop);
        let bad = nack_action(9).unwrap_err();
        assert_eq!(bad.code(), Code::InvalidArgument);
        assert_eq!(bad.message(), "'9' is not a valid Action");
    }

    #[test]
    fn acks_and_nacks_take_either_uuid_form_and_ignore_id() {
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        let ack = ReadReq {
            content: Some(read_req::Content::Ack(read_req::Ack {
                id: Bytes::from_static(b"orders::g1"),
                ids: vec![wire_uuid::to_structured(a), wire_uuid::to_string_form(b)],
            })),
        };
        assert_eq!(client_message(ack).unwrap(), ClientMessage::Ack(vec![a, b]));
        let nack = ReadReq {
            content: Some(read_req::Content::Nack(read_req::Nack {
                id: Bytes::new(),
                ids: vec![wire_uuid::to_string_form(a)],
                action: read_req::nack::Action::Park as i32,
                reason: "poison".into(),
            })),
        };
        assert_eq!(
            client_message(nack).unwrap(),
            ClientMessage::Nack {
                ids: vec![a],
                action: NackAction::Park,
                reason: "poison".into(),
            }
        );

        let bad_id = ReadReq {
            content: Some(read_req::Content::Ack(read_req::Ack {
                id: Bytes::new(),
                ids: vec![shared::Uuid {
                    value: Some(shared::uuid::Value::String("nope".into())),
                }],
            })),
        };
        assert_eq!(
            client_message(bad_id).unwrap_err().code(),
            Code::InvalidArgument
        );
        let options_again = read_options(None, 1, None);
        assert_eq!(
            client_message(options_again).unwrap_err().code(),
            Code::InvalidArgument
        );
        assert_eq!(
            client_message(ReadReq { content: None })
                .unwrap_err()
                .code(),
            Code::InvalidArgument
        );
    }

    fn recorded(stream: &str, revision: u64, position: u64, event_type: &str) -> RecordedEvent {
        RecordedEvent {
            record: EventRecord {
                stream: StreamName::new(stream).unwrap(),
                id: Uuid::new_v4(),
                event_type: event_type.into(),
                content_type: ContentType::Json,
                created_ticks: 638_000_000_000_000_000,
                custom_metadata: Bytes::from_static(b"m"),
                data: Bytes::from_static(b"{}"),
            },
            revision: StreamRevision(revision),
            position: LogPosition(position),
        }
    }

    fn event_of(resp: ReadResp) -> read_resp::ReadEvent {
        match resp.content {
            Some(read_resp::Content::Event(event)) => event,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    #[test]
    fn deliveries_carry_the_link_position_and_always_a_retry_count() {
        use read_resp::read_event::{Count, Position};
        let target = recorded("orders-1", 2, 100, "OrderPlaced");
        let link = recorded("$ce-orders", 7, 500, "$>");
        let message = Message {
            event: Some(target.clone()),
            link: Some(link.clone()),
            retry_count: 3,
        };
        let event = event_of(read_event(&message, UuidFormat::String));
        assert_eq!(event.position, Some(Position::CommitPosition(500)));
        assert_eq!(event.count, Some(Count::RetryCount(3)));
        let wire_event = event.event.unwrap();
        assert_eq!(
            wire_event.id.unwrap().value,
            Some(shared::uuid::Value::String(target.record.id.to_string()))
        );
        assert_eq!(wire_event.stream_revision, 2);
        assert_eq!(wire_event.commit_position, 100);
        assert_eq!(wire_event.prepare_position, 100);
        assert_eq!(wire_event.metadata.len(), 3);
        assert_eq!(wire_event.metadata["type"], "OrderPlaced");
        assert_eq!(wire_event.metadata["content-type"], "application/json");
        assert_eq!(wire_event.metadata["created"], "638000000000000000");
        assert_eq!(wire_event.data.as_ref(), b"{}");
        assert_eq!(wire_event.custom_metadata.as_ref(), b"m");
        let wire_link = event.link.unwrap();
        assert_eq!(
            wire_link.stream_identifier.unwrap().stream_name.as_ref(),
            b"$ce-orders"
        );
        assert_eq!(wire_link.commit_position, 500);

        // A plain event, first delivery, structured ids.
        let plain = Message {
            event: Some(target.clone()),
            link: None,
            retry_count: 0,
        };
        let event = event_of(read_event(&plain, UuidFormat::Structured));
        assert_eq!(event.position, Some(Position::CommitPosition(100)));
        assert_eq!(event.count, Some(Count::RetryCount(0)));
        assert!(event.link.is_none());
        assert_eq!(
            event.event.unwrap().id.unwrap(),
            wire_uuid::to_structured(target.record.id)
        );

        // A link whose target cannot be read: only the link.
        let unresolved = Message {
            event: None,
            link: Some(link),
            retry_count: 1,
        };
        let event = event_of(read_event(&unresolved, UuidFormat::String));
        assert!(event.event.is_none());
        assert!(event.link.is_some());
        assert_eq!(event.position, Some(Position::CommitPosition(500)));
    }

    #[test]
    fn confirmation_carries_the_subscription_id() {
        let resp = confirmation("$all::g1".into());
        assert_eq!(
            resp.content,
            Some(read_resp::Content::SubscriptionConfirmation(
                read_resp::SubscriptionConfirmation {
                    subscription_id: "$all::g1".into()
                }
            ))
        );
    }

    fn group_info(source: Source) -> GroupInfo {
        GroupInfo {
            definition: Definition {
                key: GroupKey::new(source, "g1"),
                filter: None,
                settings: Settings {
                    start_from: StartFrom::At(42),
                    resolve_links: true,
                    extra_statistics: true,
                    message_timeout_ms: 12_000,
                    max_retry_count: 5,
                    live_buffer_size: 100,
                    read_batch_size: 10,
                    history_buffer_size: 200,
                    checkpoint_after_ms: 1_500,
                    min_checkpoint_count: 3,
                    max_checkpoint_count: 30,
                    max_subscriber_count: 4,
                    consumer_strategy: Strategy::PinnedByCorrelation,
                },
            },
            status: "Live".into(),
            connections: vec![ConnectionInfo {
                from: "127.0.0.1:5000".into(),
                username: "admin".into(),
                connection_name: "worker-1".into(),
                average_items_per_second: 12.9,
                total_items: 40,
                count_since_last_measurement: 2,
                available_slots: 8,
                in_flight_messages: 2,
                extra_statistics: vec![("latency-p50".into(), 7)],
            }],
            average_per_second: 3.5,
            total_items: 41,
            count_since_last_measurement: 6,
            last_checkpointed_position: Some(30),
            last_known_position: Some(40),
            read_buffer_count: 1,
            live_buffer_count: 2,
            buffered_bytes: 100,
            retry_buffer_count: 3,
            total_in_flight_messages: 4,
            outstanding_messages_count: 5,
            parked_message_count: u64::MAX,
        }
    }

    #[test]
    fn info_fills_every_field() {
        let info = subscription_info(&group_info(stream("orders")));
        assert_eq!(
            info,
            SubscriptionInfo {
                event_source: "orders".into(),
                group_name: "g1".into(),
                status: "Live".into(),
                connections: vec![subscription_info::ConnectionInfo {
                    from: "127.0.0.1:5000".into(),
                    username: "admin".into(),
                    average_items_per_second: 12,
                    total_items: 40,
                    count_since_last_measurement: 2,
                    observed_measurements: vec![subscription_info::Measurement {
                        key: "latency-p50".into(),
                        value: 7,
                    }],
                    available_slots: 8,
                    in_flight_messages: 2,
                    connection_name: "worker-1".into(),
                }],
                average_per_second: 3,
                total_items: 41,
                count_since_last_measurement: 6,
                last_checkpointed_event_position: "30".into(),
                last_known_event_position: "40".into(),
                resolve_link_tos: true,
                start_from: "42".into(),
                message_timeout_milliseconds: 12_000,
                extra_statistics: true,
                max_retry_count: 5,
                live_buffer_size: 100,
                buffer_size: 200,
                read_batch_size: 10,
                check_point_after_milliseconds: 1_500,
                min_check_point_count: 3,
                max_check_point_count: 30,
                read_buffer_count: 1,
                live_buffer_count: 2,
                retry_buffer_count: 3,
                total_in_flight_messages: 4,
                outstanding_messages_count: 5,
                named_consumer_strategy: "PinnedByCorrelation".into(),
                max_subscriber_count: 4,
                // Saturated, not wrapped.
                parked_message_count: i64::MAX,
            }
        );
    }

    #[test]
    fn info_positions_are_text_in_each_sources_form() {
        let mut all = group_info(Source::All);
        let info = subscription_info(&all);
        assert_eq!(info.event_source, "$all");
        assert_eq!(info.start_from, "C:42/P:42");
        assert_eq!(info.last_checkpointed_event_position, "C:30/P:30");
        assert_eq!(info.last_known_event_position, "C:40/P:40");

        all.last_checkpointed_position = None;
        all.last_known_position = None;
        all.definition.settings.start_from = StartFrom::End;
        let info = subscription_info(&all);
        assert_eq!(info.last_checkpointed_event_position, "");
        assert_eq!(info.last_known_event_position, "");
        assert_eq!(info.start_from, "C:-1/P:-1");

        let mut on_stream = group_info(stream("orders"));
        on_stream.definition.settings.start_from = StartFrom::End;
        assert_eq!(subscription_info(&on_stream).start_from, "-1");
        on_stream.definition.settings.start_from = StartFrom::Start;
        assert_eq!(subscription_info(&on_stream).start_from, "0");
    }

    #[test]
    fn keys_of_delete_info_replay_and_list() {
        let delete = DeleteReq {
            options: Some(delete_req::Options {
                group_name: "g1".into(),
                stream_option: Some(delete_req::options::StreamOption::StreamIdentifier(
                    identifier("orders"),
                )),
            }),
        };
        assert_eq!(
            delete_key(delete).unwrap(),
            GroupKey::new(stream("orders"), "g1")
        );
        let delete_all = DeleteReq {
            options: Some(delete_req::Options {
                group_name: "g1".into(),
                stream_option: Some(delete_req::options::StreamOption::All(Empty {})),
            }),
        };
        assert_eq!(
            delete_key(delete_all).unwrap(),
            GroupKey::new(Source::All, "g1")
        );

        let info = GetInfoReq {
            options: Some(get_info_req::Options {
                group_name: "g1".into(),
                stream_option: Some(get_info_req::options::StreamOption::StreamIdentifier(
                    identifier("$all"),
                )),
            }),
        };
        assert_eq!(
            get_info_key(info).unwrap(),
            GroupKey::new(Source::All, "g1")
        );
        let no_stream = GetInfoReq {
            options: Some(get_info_req::Options {
                group_name: "g1".into(),
                stream_option: None,
            }),
        };
        assert_eq!(
            get_info_key(no_stream).unwrap_err().code(),
            Code::InvalidArgument
        );

        use replay_parked_req::options::{StopAtOption, StreamOption};
        let replay = |stop_at| ReplayParkedReq {
            options: Some(replay_parked_req::Options {
                group_name: "g1".into(),
                stream_option: Some(StreamOption::StreamIdentifier(identifier("orders"))),
                stop_at_option: stop_at,
            }),
        };
        let key = GroupKey::new(stream("orders"), "g1");
        assert_eq!(
            replay_parked_plan(replay(Some(StopAtOption::StopAt(5)))).unwrap(),
            (key.clone(), Some(5))
        );
        assert_eq!(
            replay_parked_plan(replay(Some(StopAtOption::NoLimit(Empty {})))).unwrap(),
            (key, None)
        );
        for bad in [replay(Some(StopAtOption::StopAt(-1))), replay(None)] {
            assert_eq!(
                replay_parked_plan(bad).unwrap_err().code(),
                Code::InvalidArgument
            );
        }

        use list_req::options::ListOption;
        use list_req::stream_option::StreamOption as ListStream;
        let list = |option| ListReq {
            options: Some(list_req::Options {
                list_option: option,
            }),
        };
        assert_eq!(
            list_source(list(Some(ListOption::ListAllSubscriptions(Empty {})))).unwrap(),
            None
        );
        assert_eq!(
            list_source(list(Some(ListOption::ListForStream(
                list_req::StreamOption {
                    stream_option: Some(ListStream::Stream(identifier("orders"))),
                }
            ))))
            .unwrap(),
            Some(stream("orders"))
        );
        assert_eq!(
            list_source(list(Some(ListOption::ListForStream(
                list_req::StreamOption {
                    stream_option: Some(ListStream::All(Empty {})),
                }
            ))))
            .unwrap(),
            Some(Source::All)
        );
        assert_eq!(
            list_source(list(None)).unwrap_err().code(),
            Code::InvalidArgument
        );
    }

    #[test]
    fn connection_name_defaults_like_eventstoredb() {
        let mut headers = MetadataMap::new();
        assert_eq!(connection_name(&headers), "<unknown>");
        headers.insert(CONNECTION_NAME, "worker-1".parse().unwrap());
        assert_eq!(connection_name(&headers), "worker-1");
    }
}
