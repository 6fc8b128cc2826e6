//! EventStoreDB's HTTP API for persistent subscriptions (PROTOCOL.md §7 "Feature gating",
//! §12): the management endpoints operators call and the official Rust client falls back to
//! when `ServerFeatures` does not list the gRPC List/GetInfo/ReplayParked/RestartSubsystem
//! methods.
//!
//! | endpoint | answer |
//! |---|---|
//! | `GET /subscriptions` | 200, every group (`?offset=&count=`: one page, see below) |
//! | `GET /subscriptions/{stream}` | 200, the groups of `stream` (`$all` for `$all`); 404 if none |
//! | `GET /subscriptions/{stream}/{group}/info` | 200, one group; 404 |
//! | `PUT /subscriptions/{stream}/{group}` | 201 + `Location`; 409 if it exists; 400 bad settings |
//! | `POST /subscriptions/{stream}/{group}` | 200 + `Location`; 404; 400 |
//! | `DELETE /subscriptions/{stream}/{group}` | 200; 404 |
//! | `POST /subscriptions/{stream}/{group}/replayParked?stopAt=N` | 200; 404; 400 bad `stopAt` |
//! | `POST /subscriptions/restart` | 200 `"Restarting"` |
//!
//! **JSON.** A group is EventStoreDB's `SubscriptionInfo` document (camelCase): the fields
//! the Rust client's `PersistentSubscriptionInfoHttpJson` requires (`eventStreamId`,
//! `groupName`, `status`, `averageItemsPerSecond`, `totalItemsProcessed`,
//! `lastProcessedEventNumber`, `lastKnownEventNumber`, `totalInFlightMessages`, and inside
//! `config` every setting with `startFrom`, `preferRoundRobin` and
//! `namedConsumerStrategy`), plus the ones it reads when present (`connections`,
//! `connectionCount`, the buffer counts, `lastCheckpointedEventPosition`,
//! `lastKnownEventPosition`, `config.startPosition`). Positions are strings as EventStoreDB
//! shows them: a revision for a stream, `C:<p>/P:<p>` for `$all`, `null` while unknown. The
//! obsolete numeric `lastProcessedEventNumber`/`lastKnownEventNumber`/`config.startFrom` are
//! what EventStoreDB derives from those strings (`long.TryParse`, else 0): the revision for
//! a stream, 0 for `$all` or when unknown (the client casts them to `u64`, so never -1 —
//! except `startFrom`, where -1 is "end" as EventStoreDB writes it).
//! Differences from EventStoreDB, on purpose: the list endpoints answer the full document
//! (EventStoreDB's shorter `SubscriptionSummary` lacks `config`), and `parkedMessageUri` /
//! `getMessagesUri` are left out because they point at AtomPub and competing-consumer routes
//! Stele does not serve; `links` holds only `detail` and `replayParked`.
//!
//! **Settings in PUT/POST bodies** are EventStoreDB's `SubscriptionConfigData`
//! (`resolveLinktos`, `startFrom`, `startPosition`, `messageTimeoutMilliseconds`,
//! `extraStatistics`, `maxRetryCount`, `liveBufferSize`, `bufferSize`, `readBatchSize`,
//! `preferRoundRobin`, `checkPointAfterMilliseconds`, `minCheckPointCount`,
//! `maxCheckPointCount`, `maxSubscriberCount`, `namedConsumerStrategy`); a missing field or an
//! empty body takes [`Settings::default`], unknown fields are ignored, and an update
//! replaces every setting as EventStoreDB's does (a `$all` group keeps its filter, which
//! HTTP cannot express). `startPosition` wins over `startFrom`; either is `0`/`C:0/P:0`
//! (start), `-1`/`C:-1/P:-1` (end), a revision or a `$all` position. EventStoreDB's HTTP
//! checks apply too: the three buffer sizes positive and `bufferSize` above `readBatchSize`.
//!
//! **Not the leader.** Groups run on the leader only. EventStoreDB forwards these requests
//! to the leader itself; Stele answers **307 Temporary Redirect** with `Location` set to the
//! same path and query on the leader (307 keeps the method and body; reqwest, curl `-L` and
//! browsers follow it), or 503 when no leader is known.
//!
//! What this module owns: the routes, the JSON shapes and [`error_response`], the one place
//! a [`PsError`] becomes an HTTP answer. What it does not own: the groups themselves
//! ([`crate::persistent::Subsystem`]), reading or acknowledging messages over HTTP (the
//! competing-consumer AtomPub routes, not served), viewing parked messages
//! (`/subscriptions/viewparkedmessages/...`, not served), and authentication (insecure mode
//! only, as everywhere in [`super`]).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header::{HOST, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use stele_core::StreamName;

use crate::persistent::{
    ConnectionInfo, Definition, GroupInfo, GroupKey, PsError, Settings, Source, StartFrom,
    Strategy, Subsystem,
};

/// The persistent-subscription routes.
pub(crate) fn routes(persistent: Subsystem) -> Router {
    Router::new()
        .route("/subscriptions", get(list_all))
        // The static segment wins over `{stream}`: a stream named `restart` is still listed
        // by GET.
        .route(
            "/subscriptions/restart",
            post(restart).get(list_restart_stream),
        )
        .route("/subscriptions/{stream}", get(list_stream))
        .route(
            "/subscriptions/{stream}/{group}",
            put(create).post(update).delete(delete),
        )
        .route("/subscriptions/{stream}/{group}/info", get(info))
        .route(
            "/subscriptions/{stream}/{group}/replayParked",
            post(replay_parked),
        )
        .with_state(persistent)
}

// ---------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------

/// `GET /subscriptions`: every group; with `offset` or `count`, EventStoreDB's paged form.
async fn list_all(
    State(persistent): State<Subsystem>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let paging = match Paging::from_query(&query) {
        Ok(paging) => paging,
        Err(message) => return bad_request(message),
    };
    let mut groups = match persistent.list(None).await {
        Ok(groups) => groups,
        Err(error) => return error_response(error, &uri),
    };
    sort(&mut groups);
    let base = base_url(&headers);
    match paging {
        None => Json(documents(&base, &groups)).into_response(),
        Some(paging) => Json(paging.page(&base, &groups)).into_response(),
    }
}

/// `GET /subscriptions/{stream}`: the groups of one stream; 404 when it has none, as
/// EventStoreDB answers.
async fn list_stream(
    State(persistent): State<Subsystem>,
    Path(stream): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    list_groups_of(&persistent, &stream, &headers, &uri).await
}

/// `GET /subscriptions/restart`: the groups of the stream `restart`, whose path the restart
/// route takes.
async fn list_restart_stream(
    State(persistent): State<Subsystem>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    list_groups_of(&persistent, "restart", &headers, &uri).await
}

async fn list_groups_of(
    persistent: &Subsystem,
    stream: &str,
    headers: &HeaderMap,
    uri: &Uri,
) -> Response {
    let source = match parse_source(stream) {
        Ok(source) => source,
        Err(message) => return bad_request(message),
    };
    let mut groups = match persistent.list(Some(&source)).await {
        Ok(groups) => groups,
        // No group on the stream: the 404 below.
        Err(PsError::DoesNotExist { .. }) => Vec::new(),
        Err(error) => return error_response(error, uri),
    };
    if groups.is_empty() {
        return (
            StatusCode::NOT_FOUND,
            format!("No subscription groups on stream {stream}."),
        )
            .into_response();
    }
    sort(&mut groups);
    Json(documents(&base_url(headers), &groups)).into_response()
}

/// `GET /subscriptions/{stream}/{group}/info`.
async fn info(
    State(persistent): State<Subsystem>,
    Path((stream, group)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let key = match parse_key(&stream, group) {
        Ok(key) => key,
        Err(message) => return bad_request(message),
    };
    match persistent.info(&key).await {
        Ok(group) => Json(SubscriptionInfo::new(&base_url(&headers), &group)).into_response(),
        Err(error) => error_response(error, &uri),
    }
}

/// `PUT /subscriptions/{stream}/{group}`: 201 with the group's URL in `Location`.
async fn create(
    State(persistent): State<Subsystem>,
    Path((stream, group)): Path<(String, String)>,
    uri: Uri,
    body: Bytes,
) -> Response {
    write(persistent, Write::Create, &stream, group, &uri, &body).await
}

/// `POST /subscriptions/{stream}/{group}`: replaces the settings (a `$all` group keeps its
/// filter: updates carry none, and the engine keeps the group's own).
async fn update(
    State(persistent): State<Subsystem>,
    Path((stream, group)): Path<(String, String)>,
    uri: Uri,
    body: Bytes,
) -> Response {
    write(persistent, Write::Update, &stream, group, &uri, &body).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    Create,
    Update,
}

/// Creates or updates a group from a settings body; answers with its URL in `Location`.
async fn write(
    persistent: Subsystem,
    write: Write,
    stream: &str,
    group: String,
    uri: &Uri,
    body: &[u8],
) -> Response {
    let (key, settings) = match parse_key_and_settings(stream, group, body) {
        Ok(parsed) => parsed,
        Err(message) => return bad_request(message),
    };
    let location = group_path(&key);
    tracing::info!(group = %key.id(), ?write, "writing a persistent subscription (HTTP)");
    let definition = Definition {
        key,
        filter: None,
        settings,
    };
    let (result, success) = match write {
        Write::Create => (persistent.create(definition).await, StatusCode::CREATED),
        Write::Update => (persistent.update(definition).await, StatusCode::OK),
    };
    match result {
        Ok(()) => with_location(success, &location),
        Err(error) => error_response(error, uri),
    }
}

/// `DELETE /subscriptions/{stream}/{group}`.
async fn delete(
    State(persistent): State<Subsystem>,
    Path((stream, group)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let key = match parse_key(&stream, group) {
        Ok(key) => key,
        Err(message) => return bad_request(message),
    };
    tracing::info!(group = %key.id(), "deleting a persistent subscription (HTTP)");
    match persistent.delete(&key).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(error) => error_response(error, &uri),
    }
}

/// `POST /subscriptions/{stream}/{group}/replayParked?stopAt=N`: `stopAt`, when given, is a
/// non-negative integer (EventStoreDB's check and message).
async fn replay_parked(
    State(persistent): State<Subsystem>,
    Path((stream, group)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
) -> Response {
    let key = match parse_key(&stream, group) {
        Ok(key) => key,
        Err(message) => return bad_request(message),
    };
    let stop_at = match query.get("stopAt") {
        None => None,
        Some(text) => match text.trim().parse::<u64>() {
            Ok(stop_at) => Some(stop_at),
            Err(_) => {
                return bad_request("stopAt should be a properly formed positive long".into())
            }
        },
    };
    tracing::info!(group = %key.id(), ?stop_at, "replaying parked messages (HTTP)");
    match persistent.replay_parked(&key, stop_at).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(error) => error_response(error, &uri),
    }
}

/// `POST /subscriptions/restart`: 200 with the JSON string `"Restarting"`, as EventStoreDB.
async fn restart(State(persistent): State<Subsystem>, uri: Uri) -> Response {
    tracing::info!("restarting the persistent subscriptions subsystem (HTTP)");
    match persistent.restart().await {
        Ok(()) => Json("Restarting").into_response(),
        Err(error) => error_response(error, &uri),
    }
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Where a [`PsError`] becomes an HTTP answer (plain text, the error's message):
/// - does not exist → 404, exists → 409, a bad argument or too many consumers → 400 (what
///   EventStoreDB answers for its `Fail` results);
/// - not leader → 307 to the same path and query on the leader, 503 if none is known;
/// - not ready, or the group dropped under the request (a restart racing it) → 503, to be
///   retried;
/// - the subsystem failed → 500, with the detail in the log too.
///
/// `uri` is the request's, for the redirect.
pub(crate) fn error_response(error: PsError, uri: &Uri) -> Response {
    let status = match &error {
        PsError::DoesNotExist { .. } => StatusCode::NOT_FOUND,
        PsError::AlreadyExists { .. } => StatusCode::CONFLICT,
        PsError::InvalidArgument(_) | PsError::MaximumSubscribersReached { .. } => {
            StatusCode::BAD_REQUEST
        }
        PsError::NotLeader {
            leader: Some(leader),
        } => return redirect_to_leader(leader, uri),
        PsError::NotLeader { leader: None } => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "Not the leader, and no leader is known; try again.",
            )
                .into_response()
        }
        PsError::NotReady => StatusCode::SERVICE_UNAVAILABLE,
        PsError::Dropped { .. } => StatusCode::SERVICE_UNAVAILABLE,
        PsError::Failed { .. } => {
            tracing::error!(%error, "a persistent subscription request failed (HTTP)");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    (status, error.to_string()).into_response()
}

/// 307 to `uri`'s path and query on the leader's HTTP endpoint.
fn redirect_to_leader((host, port): &(String, u16), uri: &Uri) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]") // an IPv6 address
    } else {
        host.clone()
    };
    let location = format!("http://{host}:{port}{path}");
    match HeaderValue::from_str(&location) {
        Ok(value) => (
            StatusCode::TEMPORARY_REDIRECT,
            [(LOCATION, value)],
            format!("Not the leader; the leader is at {host}:{port}."),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Not the leader, and the leader's address is not a valid URL.",
        )
            .into_response(),
    }
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, message).into_response()
}

fn with_location(status: StatusCode, path: &str) -> Response {
    match HeaderValue::from_str(path) {
        Ok(value) => (status, [(LOCATION, value)]).into_response(),
        Err(_) => status.into_response(),
    }
}

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

/// `$all` or a stream (already percent-decoded by the router).
fn parse_source(stream: &str) -> Result<Source, String> {
    if stream == "$all" {
        return Ok(Source::All);
    }
    StreamName::new(stream)
        .map(Source::Stream)
        .map_err(|_| format!("Invalid stream name '{stream}'"))
}

fn parse_key(stream: &str, group: String) -> Result<GroupKey, String> {
    if group.is_empty() {
        return Err("Group name cannot be empty".into());
    }
    Ok(GroupKey::new(parse_source(stream)?, group))
}

fn parse_key_and_settings(
    stream: &str,
    group: String,
    body: &[u8],
) -> Result<(GroupKey, Settings), String> {
    let key = parse_key(stream, group)?;
    let config: ConfigBody = if body.iter().all(u8::is_ascii_whitespace) {
        ConfigBody::default()
    } else {
        serde_json::from_slice::<Option<ConfigBody>>(body)
            .map_err(|e| format!("Invalid subscription settings: {e}"))?
            .unwrap_or_default()
    };
    let settings = config.into_settings(&key.source)?;
    Ok((key, settings))
}

/// EventStoreDB's `SubscriptionConfigData` as a request body. Every field is optional;
/// `null` counts as missing. Aliases take the spellings the gRPC and client APIs use.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ConfigBody {
    #[serde(alias = "resolveLinkTos")]
    resolve_linktos: Option<bool>,
    /// A number (revision, `0` start, `-1` end) or a position string.
    start_from: Option<serde_json::Value>,
    start_position: Option<String>,
    message_timeout_milliseconds: Option<u64>,
    extra_statistics: Option<bool>,
    max_retry_count: Option<u32>,
    live_buffer_size: Option<u32>,
    #[serde(alias = "historyBufferSize")]
    buffer_size: Option<u32>,
    read_batch_size: Option<u32>,
    prefer_round_robin: Option<bool>,
    #[serde(
        rename = "checkPointAfterMilliseconds",
        alias = "checkpointAfterMilliseconds"
    )]
    checkpoint_after_milliseconds: Option<u64>,
    #[serde(rename = "minCheckPointCount", alias = "minCheckpointCount")]
    min_checkpoint_count: Option<u32>,
    #[serde(rename = "maxCheckPointCount", alias = "maxCheckpointCount")]
    max_checkpoint_count: Option<u32>,
    max_subscriber_count: Option<u32>,
    #[serde(alias = "consumerStrategy")]
    named_consumer_strategy: Option<String>,
}

impl ConfigBody {
    fn into_settings(self, source: &Source) -> Result<Settings, String> {
        let defaults = Settings::default();
        let start_from = match (self.start_position, self.start_from) {
            (Some(text), _) => parse_start_text(source, &text)?,
            (None, Some(value)) => parse_start_value(source, &value)?,
            (None, None) => defaults.start_from,
        };
        // EventStoreDB: a named strategy wins; without one, `preferRoundRobin` chooses
        // between RoundRobin and DispatchToSingle.
        let consumer_strategy = match self.named_consumer_strategy.filter(|s| !s.is_empty()) {
            Some(name) => Strategy::from_name(&name)
                .ok_or_else(|| format!("Unknown consumer strategy '{name}'"))?,
            None => match self.prefer_round_robin {
                Some(true) => Strategy::RoundRobin,
                Some(false) => Strategy::DispatchToSingle,
                None => defaults.consumer_strategy,
            },
        };
        let settings = Settings {
            start_from,
            resolve_links: self.resolve_linktos.unwrap_or(defaults.resolve_links),
            extra_statistics: self.extra_statistics.unwrap_or(defaults.extra_statistics),
            message_timeout_ms: self
                .message_timeout_milliseconds
                .unwrap_or(defaults.message_timeout_ms),
            max_retry_count: self.max_retry_count.unwrap_or(defaults.max_retry_count),
            live_buffer_size: self.live_buffer_size.unwrap_or(defaults.live_buffer_size),
            read_batch_size: self.read_batch_size.unwrap_or(defaults.read_batch_size),
            history_buffer_size: self.buffer_size.unwrap_or(defaults.history_buffer_size),
            checkpoint_after_ms: self
                .checkpoint_after_milliseconds
                .unwrap_or(defaults.checkpoint_after_ms),
            min_checkpoint_count: self
                .min_checkpoint_count
                .unwrap_or(defaults.min_checkpoint_count),
            max_checkpoint_count: self
                .max_checkpoint_count
                .unwrap_or(defaults.max_checkpoint_count),
            max_subscriber_count: self
                .max_subscriber_count
                .unwrap_or(defaults.max_subscriber_count),
            consumer_strategy,
        };
        check_http_settings(&settings)?;
        settings.validate()?;
        Ok(settings)
    }
}

/// The checks EventStoreDB's HTTP controller makes before it passes settings on, with its
/// messages.
fn check_http_settings(settings: &Settings) -> Result<(), String> {
    if settings.history_buffer_size == 0 {
        return Err("Buffer Size (0) must be positive".into());
    }
    if settings.live_buffer_size == 0 {
        return Err("Live Buffer Size (0) must be positive".into());
    }
    if settings.read_batch_size == 0 {
        return Err("Read Batch Size (0) must be positive".into());
    }
    if settings.history_buffer_size <= settings.read_batch_size {
        return Err(format!(
            "BufferSize ({}) must be larger than ReadBatchSize ({})",
            settings.history_buffer_size, settings.read_batch_size
        ));
    }
    Ok(())
}

/// `startFrom` as a JSON number or string.
fn parse_start_value(source: &Source, value: &serde_json::Value) -> Result<StartFrom, String> {
    match value {
        serde_json::Value::Null => Ok(Settings::default().start_from),
        serde_json::Value::String(text) => parse_start_text(source, text),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(-1) => Ok(StartFrom::End),
            Some(0) => Ok(StartFrom::Start),
            _ => match n.as_u64() {
                Some(position) => Ok(StartFrom::At(position)),
                None => Err(format!("Invalid startFrom {n}")),
            },
        },
        other => Err(format!("Invalid startFrom {other}")),
    }
}

/// `0`/`C:0/P:0` start, `-1`/`C:-1/P:-1` end, else a revision or a `$all` position.
fn parse_start_text(source: &Source, text: &str) -> Result<StartFrom, String> {
    match text.trim() {
        "0" | "C:0/P:0" => Ok(StartFrom::Start),
        "-1" | "C:-1/P:-1" => Ok(StartFrom::End),
        trimmed => trimmed
            .parse::<u64>()
            .ok()
            .or_else(|| source.parse_position(trimmed))
            .map(StartFrom::At)
            .ok_or_else(|| format!("Invalid start position '{text}'")),
    }
}

/// `?offset=&count=` of `GET /subscriptions` (EventStoreDB's paged listing).
struct Paging {
    offset: usize,
    count: usize,
}

impl Paging {
    /// `None` when neither is given (the plain list); EventStoreDB's checks and messages.
    fn from_query(query: &HashMap<String, String>) -> Result<Option<Paging>, String> {
        let (offset, count) = (query.get("offset"), query.get("count"));
        if offset.is_none() && count.is_none() {
            return Ok(None);
        }
        let offset = match offset {
            None => 0,
            Some(text) => text
                .parse::<usize>()
                .map_err(|_| format!("Offset \"{text}\" must be a non-negative integer"))?,
        };
        let count_text = count.map_or("", String::as_str);
        let count = match count_text.parse::<usize>() {
            Ok(count) if count >= 1 => count,
            _ => return Err(format!("Count \"{count_text}\" must be a positive integer")),
        };
        Ok(Some(Paging { offset, count }))
    }

    fn page(&self, base: &str, groups: &[GroupInfo]) -> PagedSubscriptionInfo {
        let Paging { offset, count } = *self;
        let total = groups.len();
        let page_url =
            |offset: usize| format!("{base}/subscriptions?offset={offset}&count={count}");
        let mut links = vec![
            RelLink::new(page_url(offset), "self"),
            RelLink::new(page_url(0), "first"),
        ];
        if offset > 0 {
            links.push(RelLink::new(
                page_url(offset.saturating_sub(count)),
                "previous",
            ));
        }
        if offset.saturating_add(count) < total {
            links.push(RelLink::new(page_url(offset + count), "next"));
        }
        let end = offset.saturating_add(count).min(total);
        let page = groups.get(offset.min(total)..end).unwrap_or_default();
        PagedSubscriptionInfo {
            links,
            offset,
            count,
            total,
            subscriptions: documents(base, page),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PagedSubscriptionInfo {
    links: Vec<RelLink>,
    offset: usize,
    count: usize,
    total: usize,
    subscriptions: Vec<SubscriptionInfo>,
}

#[derive(Debug, Serialize)]
struct RelLink {
    href: String,
    rel: &'static str,
}

impl RelLink {
    fn new(href: String, rel: &'static str) -> RelLink {
        RelLink { href, rel }
    }
}

/// One group: EventStoreDB's `SubscriptionInfo`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionInfo {
    links: Vec<RelLink>,
    config: SubscriptionConfig,
    event_stream_id: String,
    group_name: String,
    status: String,
    average_items_per_second: f64,
    total_items_processed: u64,
    count_since_last_measurement: u64,
    /// Obsolete in EventStoreDB: the checkpoint as a revision; 0 for `$all` or none.
    last_processed_event_number: i64,
    last_checkpointed_event_position: Option<String>,
    /// Obsolete in EventStoreDB: the last known event as a revision; 0 for `$all` or none.
    last_known_event_number: i64,
    last_known_event_position: Option<String>,
    read_buffer_count: u64,
    live_buffer_count: u64,
    retry_buffer_count: u64,
    total_in_flight_messages: u64,
    outstanding_messages_count: u64,
    connections: Vec<Connection>,
    connection_count: usize,
    parked_message_count: u64,
}

impl SubscriptionInfo {
    fn new(base: &str, group: &GroupInfo) -> SubscriptionInfo {
        let key = &group.definition.key;
        let source = &key.source;
        let path = group_path(key);
        let event_number = |position: Option<u64>| match (source, position) {
            (Source::Stream(_), Some(revision)) => i64::try_from(revision).unwrap_or(i64::MAX),
            _ => 0,
        };
        SubscriptionInfo {
            links: vec![
                RelLink::new(format!("{base}{path}/info"), "detail"),
                RelLink::new(format!("{base}{path}/replayParked"), "replayParked"),
            ],
            config: SubscriptionConfig::new(group),
            event_stream_id: source.name().to_owned(),
            group_name: key.group.clone(),
            status: group.status.clone(),
            average_items_per_second: group.average_per_second,
            total_items_processed: group.total_items,
            count_since_last_measurement: group.count_since_last_measurement,
            last_processed_event_number: event_number(group.last_checkpointed_position),
            last_checkpointed_event_position: group
                .last_checkpointed_position
                .map(|p| source.format_position(p)),
            last_known_event_number: event_number(group.last_known_position),
            last_known_event_position: group.last_known_position.map(|p| source.format_position(p)),
            read_buffer_count: group.read_buffer_count,
            live_buffer_count: group.live_buffer_count,
            retry_buffer_count: group.retry_buffer_count,
            total_in_flight_messages: group.total_in_flight_messages,
            outstanding_messages_count: group.outstanding_messages_count,
            connections: group.connections.iter().map(Connection::new).collect(),
            connection_count: group.connections.len(),
            parked_message_count: group.parked_message_count,
        }
    }
}

/// A group's settings: EventStoreDB's `SubscriptionConfigData`, the same shape the PUT and
/// POST bodies take.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionConfig {
    resolve_linktos: bool,
    /// Obsolete in EventStoreDB: the revision for a stream (`0` start, `-1` end); 0 for `$all`.
    start_from: i64,
    /// [`GroupInfo::start_from_text`].
    start_position: String,
    message_timeout_milliseconds: u64,
    extra_statistics: bool,
    max_retry_count: u32,
    live_buffer_size: u32,
    buffer_size: u32,
    read_batch_size: u32,
    prefer_round_robin: bool,
    #[serde(rename = "checkPointAfterMilliseconds")]
    checkpoint_after_milliseconds: u64,
    #[serde(rename = "minCheckPointCount")]
    min_checkpoint_count: u32,
    #[serde(rename = "maxCheckPointCount")]
    max_checkpoint_count: u32,
    max_subscriber_count: u32,
    named_consumer_strategy: &'static str,
}

impl SubscriptionConfig {
    fn new(group: &GroupInfo) -> SubscriptionConfig {
        let settings = &group.definition.settings;
        let start_from = match (&group.definition.key.source, settings.start_from) {
            (Source::All, _) | (_, StartFrom::Start) => 0,
            (Source::Stream(_), StartFrom::End) => -1,
            (Source::Stream(_), StartFrom::At(revision)) => {
                i64::try_from(revision).unwrap_or(i64::MAX)
            }
        };
        SubscriptionConfig {
            resolve_linktos: settings.resolve_links,
            start_from,
            start_position: group.start_from_text(),
            message_timeout_milliseconds: settings.message_timeout_ms,
            extra_statistics: settings.extra_statistics,
            max_retry_count: settings.max_retry_count,
            live_buffer_size: settings.live_buffer_size,
            buffer_size: settings.history_buffer_size,
            read_batch_size: settings.read_batch_size,
            prefer_round_robin: settings.consumer_strategy == Strategy::RoundRobin,
            checkpoint_after_milliseconds: settings.checkpoint_after_ms,
            min_checkpoint_count: settings.min_checkpoint_count,
            max_checkpoint_count: settings.max_checkpoint_count,
            max_subscriber_count: settings.max_subscriber_count,
            named_consumer_strategy: settings.consumer_strategy.name(),
        }
    }
}

/// One consumer: EventStoreDB's `ConnectionInfo`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Connection {
    from: String,
    username: String,
    average_items_per_second: f64,
    total_items_processed: u64,
    count_since_last_measurement: u64,
    /// Latency measurements (`extraStatistics` groups only) as `{key, value}` pairs.
    extra_statistics: Vec<Measurement>,
    available_slots: u64,
    in_flight_messages: u64,
    connection_name: String,
}

#[derive(Debug, Serialize)]
struct Measurement {
    key: String,
    value: i64,
}

impl Connection {
    fn new(connection: &ConnectionInfo) -> Connection {
        Connection {
            from: connection.from.clone(),
            username: connection.username.clone(),
            average_items_per_second: connection.average_items_per_second,
            total_items_processed: connection.total_items,
            count_since_last_measurement: connection.count_since_last_measurement,
            extra_statistics: connection
                .extra_statistics
                .iter()
                .map(|(key, value)| Measurement {
                    key: key.clone(),
                    value: *value,
                })
                .collect(),
            available_slots: connection.available_slots,
            in_flight_messages: connection.in_flight_messages,
            connection_name: connection.connection_name.clone(),
        }
    }
}

fn documents(base: &str, groups: &[GroupInfo]) -> Vec<SubscriptionInfo> {
    groups
        .iter()
        .map(|group| SubscriptionInfo::new(base, group))
        .collect()
}

/// Lists in a stable order: by stream name, then group.
fn sort(groups: &mut [GroupInfo]) {
    groups.sort_by(|a, b| {
        let (a, b) = (&a.definition.key, &b.definition.key);
        (a.source.name(), &a.group).cmp(&(b.source.name(), &b.group))
    });
}

/// `http://<Host header>` for absolute links, as EventStoreDB makes them; empty (relative
/// links) when the request has no `Host`.
fn base_url(headers: &HeaderMap) -> String {
    headers
        .get(HOST)
        .and_then(|host| host.to_str().ok())
        .map(|host| format!("http://{host}"))
        .unwrap_or_default()
}

/// `/subscriptions/<stream>/<group>`, each escaped as a path segment.
fn group_path(key: &GroupKey) -> String {
    format!(
        "/subscriptions/{}/{}",
        escape_segment(key.source.name()),
        escape_segment(&key.group)
    )
}

/// Percent-encodes everything but RFC 3986's unreserved characters, as .NET's
/// `Uri.EscapeDataString` (which EventStoreDB uses for these links) does.
fn escape_segment(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            escaped.push(char::from(byte));
        } else {
            escaped.push_str(&format!("%{byte:02X}"));
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    //! Route tests against a real in-memory node (a single node needs no network) and the
    //! real subsystem; the JSON is read back through the same shape the official Rust
    //! client's HTTP fallback deserializes.

    use std::time::{Duration, Instant};

    use axum::body::Body;
    use axum::http::{Method, Request};
    use http_body_util::BodyExt;
    use serde::Deserialize;
    use stele_cluster::{GossipConfig, Node, NodeConfig};
    use stele_core::{ContentType, ExpectedRevision, ProposedEvent};
    use tower::ServiceExt;
    use uuid::Uuid;

    use super::*;
    use crate::persistent::{ConnectRequest, Delivery, NackAction};

    /// How long a condition may take to hold.
    const DEADLINE: Duration = Duration::from_secs(10);

    // The shape `kurrentdb` 1.2's `PersistentSubscriptionInfoHttpJson` and
    // `PersistentSubscriptionConfig` deserialize (src/types.rs), field for field: required
    // fields without `Option`/`default` must be present, with these types.
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct ClientInfo {
        event_stream_id: String,
        group_name: String,
        status: String,
        average_items_per_second: f64,
        total_items_processed: usize,
        last_processed_event_number: i64,
        last_checkpointed_event_position: Option<String>,
        last_known_event_position: Option<String>,
        last_known_event_number: i64,
        #[serde(default)]
        connection_count: usize,
        total_in_flight_messages: usize,
        config: Option<ClientConfig>,
        #[serde(default)]
        read_buffer_count: usize,
        #[serde(default)]
        live_buffer_count: usize,
        #[serde(default)]
        retry_buffer_count: usize,
        #[serde(default)]
        outstanding_messages_count: usize,
        #[serde(default)]
        parked_message_count: usize,
        #[serde(default)]
        count_since_last_measurement: usize,
        #[serde(default)]
        connections: Vec<ClientConnection>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct ClientConfig {
        resolve_linktos: bool,
        /// The client takes a number (`0` start, `-1` end, a revision) or a position string.
        start_from: serde_json::Value,
        #[serde(default)]
        start_position: String,
        message_timeout_milliseconds: i64,
        extra_statistics: bool,
        max_retry_count: i64,
        live_buffer_size: i64,
        buffer_size: i64,
        read_batch_size: i64,
        prefer_round_robin: bool,
        #[serde(rename = "checkPointAfterMilliseconds")]
        checkpoint_after_milliseconds: i64,
        #[serde(rename = "minCheckPointCount")]
        min_checkpoint_count: i64,
        #[serde(rename = "maxCheckPointCount")]
        max_checkpoint_count: i64,
        max_subscriber_count: i64,
        /// An externally tagged enum in the client: one of its unit variant names.
        named_consumer_strategy: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct ClientConnection {
        from: String,
        username: String,
        average_items_per_second: f64,
        #[serde(rename = "totalItemsProcessed")]
        total_items: usize,
        count_since_last_measurement: usize,
        available_slots: usize,
        in_flight_messages: usize,
        connection_name: String,
        #[serde(default)]
        extra_statistics: Vec<ClientMeasurement>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct ClientMeasurement {
        key: String,
        value: i64,
    }

    /// What the client accepts for `config.startFrom`.
    fn client_accepts_start_from(value: &serde_json::Value) -> bool {
        value.is_i64() || value.is_u64() || value.is_string()
    }

    /// What the client accepts as a `$all` position (`parse_position`).
    fn client_parses_position(text: &str) -> bool {
        text.strip_prefix("C:")
            .and_then(|rest| rest.split_once("/P:"))
            .is_some_and(|(c, p)| c.parse::<u64>().is_ok() && p.parse::<u64>().is_ok())
    }

    /// The client's `parse_stream_position`, used on `config.startPosition` for `$all`.
    fn client_parses_stream_position(text: &str) -> bool {
        matches!(text, "-1" | "C:-1/P:-1" | "0" | "C:0/P:0")
            || text.parse::<u64>().is_ok()
            || client_parses_position(text)
    }

    const STRATEGIES: [&str; 4] = [
        "DispatchToSingle",
        "RoundRobin",
        "Pinned",
        "PinnedByCorrelation",
    ];

    fn check_client_shape(info: &ClientInfo) {
        let config = info.config.as_ref().expect("a group's config");
        assert!(client_accepts_start_from(&config.start_from), "{config:?}");
        assert!(STRATEGIES.contains(&config.named_consumer_strategy.as_str()));
        assert_eq!(info.connection_count, info.connections.len());
        if info.event_stream_id == "$all" {
            assert!(client_parses_stream_position(&config.start_position));
            for position in [
                &info.last_checkpointed_event_position,
                &info.last_known_event_position,
            ]
            .into_iter()
            .flatten()
            {
                assert!(client_parses_position(position), "{position}");
            }
        } else {
            // The client casts these to u64.
            assert!(info.last_processed_event_number >= 0);
            assert!(info.last_known_event_number >= 0);
        }
    }

    struct Fixture {
        node: Node,
        persistent: Subsystem,
    }

    async fn start() -> Fixture {
        let config = NodeConfig {
            db_dir: None,
            index_dir: None,
            chunk_size_bytes: 1024 * 1024,
            max_append_size_bytes: 1024 * 1024,
            max_append_event_size_bytes: 512 * 1024,
            cluster_size: 1,
            http_advertised: ("127.0.0.1".into(), 2113),
            gossip_advertised: ("127.0.0.1".into(), 2113),
            internal_bind: ("127.0.0.1".parse().unwrap(), 0),
            internal_advertised: ("127.0.0.1".into(), 1112),
            gossip: GossipConfig::default(),
            node_priority: 0,
            read_only_replica: false,
            leader_election_timeout_ms: 100,
            write_timeout: Duration::from_secs(10),
        };
        let node = Node::start(config).await.expect("an in-memory node starts");
        assert!(node.wait_ready(DEADLINE).await, "the node becomes ready");
        let persistent = Subsystem::start(node.clone());
        // The subsystem starts its groups once it sees the node lead; wait for that, so
        // that the first request does not race it.
        let deadline = Instant::now() + DEADLINE;
        while let Err(error) = persistent.list(None).await {
            assert!(
                Instant::now() < deadline,
                "the subsystem does not start: {error}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Fixture { node, persistent }
    }

    impl Fixture {
        /// One request.
        async fn call(
            &self,
            method: Method,
            uri: &str,
            body: &str,
        ) -> (StatusCode, HeaderMap, String) {
            self.call_once(method, uri, body).await
        }

        async fn call_once(
            &self,
            method: Method,
            uri: &str,
            body: &str,
        ) -> (StatusCode, HeaderMap, String) {
            let response = routes(self.persistent.clone())
                .oneshot(
                    Request::builder()
                        .method(method)
                        .uri(uri)
                        .header(HOST, "node.test:2113")
                        .body(Body::from(body.to_owned()))
                        .unwrap(),
                )
                .await
                .unwrap();
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, headers, String::from_utf8(body.to_vec()).unwrap())
        }

        async fn status(&self, method: Method, uri: &str, body: &str) -> StatusCode {
            self.call(method, uri, body).await.0
        }

        /// A group's info, checked against the client's shape.
        async fn info(&self, path: &str) -> (ClientInfo, serde_json::Value) {
            let (status, _, body) = self.call(Method::GET, &format!("{path}/info"), "").await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let info: ClientInfo = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("the Rust client's shape reads {body}: {e}"));
            check_client_shape(&info);
            (info, serde_json::from_str(&body).unwrap())
        }

        async fn list(&self, uri: &str) -> Vec<ClientInfo> {
            let (status, _, body) = self.call(Method::GET, uri, "").await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let infos: Vec<ClientInfo> = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("the Rust client's shape reads {body}: {e}"));
            infos.iter().for_each(check_client_shape);
            infos
        }

        async fn append(&self, stream: &str, count: usize) {
            let events = (0..count)
                .map(|n| ProposedEvent {
                    id: Uuid::new_v4(),
                    event_type: "test".into(),
                    content_type: ContentType::Json,
                    custom_metadata: Bytes::new(),
                    data: Bytes::from(format!("{{\"n\":{n}}}")),
                })
                .collect();
            self.node
                .append(
                    StreamName::new(stream).unwrap(),
                    ExpectedRevision::Any,
                    events,
                    true,
                )
                .await
                .expect("the append succeeds");
        }

        /// Polls a group's info until `done` holds.
        async fn wait_for(
            &self,
            path: &str,
            what: &str,
            done: impl Fn(&ClientInfo) -> bool,
        ) -> ClientInfo {
            let deadline = Instant::now() + DEADLINE;
            loop {
                let (info, _) = self.info(path).await;
                if done(&info) {
                    return info;
                }
                assert!(Instant::now() < deadline, "{what}: last info {info:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    async fn next_message(
        consumer: &mut crate::persistent::Consumer,
    ) -> crate::persistent::Message {
        match tokio::time::timeout(DEADLINE, consumer.next()).await {
            Ok(Some(Delivery::Message(message))) => *message,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_group_is_created_read_updated_and_deleted() {
        let f = start().await;
        let body = r#"{"startFrom": 0, "resolveLinktos": true, "messageTimeoutMilliseconds": 5000,
            "extraStatistics": true, "maxRetryCount": 7, "liveBufferSize": 50, "bufferSize": 100,
            "readBatchSize": 10, "checkPointAfterMilliseconds": 500, "minCheckPointCount": 2,
            "maxCheckPointCount": 20, "maxSubscriberCount": 4,
            "namedConsumerStrategy": "DispatchToSingle"}"#;
        let (status, headers, text) = f
            .call(Method::PUT, "/subscriptions/orders-1/workers", body)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{text}");
        assert_eq!(headers[LOCATION], "/subscriptions/orders-1/workers");
        assert_eq!(
            f.status(Method::PUT, "/subscriptions/orders-1/workers", body)
                .await,
            StatusCode::CONFLICT
        );

        let (info, json) = f.info("/subscriptions/orders-1/workers").await;
        assert_eq!(info.event_stream_id, "orders-1");
        assert_eq!(info.group_name, "workers");
        let config = info.config.as_ref().unwrap();
        assert!(config.resolve_linktos && config.extra_statistics);
        assert_eq!(config.start_from, serde_json::json!(0));
        assert_eq!(config.start_position, "0");
        assert_eq!(config.message_timeout_milliseconds, 5000);
        assert_eq!(config.max_retry_count, 7);
        assert_eq!(config.live_buffer_size, 50);
        assert_eq!(config.buffer_size, 100);
        assert_eq!(config.read_batch_size, 10);
        assert_eq!(config.checkpoint_after_milliseconds, 500);
        assert_eq!(config.min_checkpoint_count, 2);
        assert_eq!(config.max_checkpoint_count, 20);
        assert_eq!(config.max_subscriber_count, 4);
        assert_eq!(config.named_consumer_strategy, "DispatchToSingle");
        assert!(!config.prefer_round_robin);
        assert_eq!(
            json["links"][0]["href"],
            "http://node.test:2113/subscriptions/orders-1/workers/info"
        );
        assert_eq!(json["links"][1]["rel"], "replayParked");

        let listed = f.list("/subscriptions").await;
        assert!(listed.iter().any(|i| i.group_name == "workers"));
        let listed = f.list("/subscriptions/orders-1").await;
        assert_eq!(listed.len(), 1);
        assert_eq!(
            f.status(Method::GET, "/subscriptions/orders-2", "").await,
            StatusCode::NOT_FOUND
        );

        // An update replaces every setting: what the body leaves out is the default again.
        assert_eq!(
            f.status(
                Method::POST,
                "/subscriptions/orders-1/workers",
                r#"{"startFrom": -1, "maxRetryCount": 3, "preferRoundRobin": true, "namedConsumerStrategy": ""}"#
            )
            .await,
            StatusCode::OK
        );
        let (info, _) = f.info("/subscriptions/orders-1/workers").await;
        let config = info.config.unwrap();
        assert_eq!(config.start_from, serde_json::json!(-1));
        assert_eq!(config.start_position, "-1");
        assert_eq!(config.max_retry_count, 3);
        assert_eq!(
            config.message_timeout_milliseconds,
            Settings::default().message_timeout_ms as i64
        );
        assert_eq!(config.named_consumer_strategy, "RoundRobin");
        assert!(config.prefer_round_robin);

        for (method, uri) in [
            (Method::POST, "/subscriptions/orders-1/nobody"),
            (Method::DELETE, "/subscriptions/orders-1/nobody"),
            (Method::GET, "/subscriptions/orders-1/nobody/info"),
            (Method::POST, "/subscriptions/orders-1/nobody/replayParked"),
        ] {
            assert_eq!(
                f.status(method.clone(), uri, "").await,
                StatusCode::NOT_FOUND,
                "{method} {uri}"
            );
        }

        assert_eq!(
            f.status(Method::DELETE, "/subscriptions/orders-1/workers", "")
                .await,
            StatusCode::OK
        );
        assert_eq!(
            f.status(Method::GET, "/subscriptions/orders-1/workers/info", "")
                .await,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            f.status(Method::GET, "/subscriptions/orders-1", "").await,
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn all_groups_and_names_that_need_escaping() {
        let f = start().await;
        let (status, _, body) = f
            .call(
                Method::PUT,
                "/subscriptions/%24all/audit",
                r#"{"startPosition": "C:0/P:0"}"#,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (info, _) = f.info("/subscriptions/%24all/audit").await;
        assert_eq!(info.event_stream_id, "$all");
        let config = info.config.unwrap();
        assert_eq!(config.start_position, "C:0/P:0");
        assert_eq!(info.last_processed_event_number, 0);
        assert_eq!(f.list("/subscriptions/$all").await.len(), 1);

        // `$`, `-`, `::`, `/` and a space in the stream; `/` in the group.
        let path = "/subscriptions/%24ce-a%3A%3Ab%2Fc%20d/g%2F1";
        let (status, headers, body) = f.call(Method::PUT, path, "").await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(headers[LOCATION], path);
        let (info, _) = f.info(path).await;
        assert_eq!(info.event_stream_id, "$ce-a::b/c d");
        assert_eq!(info.group_name, "g/1");
        let listed = f.list("/subscriptions/%24ce-a%3A%3Ab%2Fc%20d").await;
        assert_eq!(listed[0].group_name, "g/1");
        assert_eq!(f.list("/subscriptions").await.len(), 2);

        // A stream named like the restart route is still listed by GET.
        assert_eq!(
            f.status(Method::PUT, "/subscriptions/restart/g", "").await,
            StatusCode::CREATED
        );
        assert_eq!(f.list("/subscriptions/restart").await.len(), 1);

        // EventStoreDB's paged listing: the middle one of three groups.
        let (status, _, body) = f
            .call(Method::GET, "/subscriptions?offset=1&count=1", "")
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let page: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (page["offset"].as_u64(), page["total"].as_u64()),
            (Some(1), Some(3))
        );
        assert_eq!(page["subscriptions"].as_array().unwrap().len(), 1);
        let rels: Vec<&str> = page["links"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["rel"].as_str().unwrap())
            .collect();
        assert_eq!(rels, ["self", "first", "previous", "next"]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_update_keeps_the_filter_of_an_all_group() {
        let f = start().await;
        let key = GroupKey::new(Source::All, "filtered");
        let filter = crate::grpc::event_filter::FilterSpec {
            on: crate::grpc::event_filter::FilterField::StreamName,
            regex: String::new(),
            prefixes: vec!["orders-".to_owned()],
        };
        f.persistent
            .create(Definition {
                key: key.clone(),
                filter: Some(filter.clone()),
                settings: Settings::default(),
            })
            .await
            .expect("create");
        let (status, _, body) = f
            .call(
                Method::POST,
                "/subscriptions/%24all/filtered",
                r#"{"maxRetryCount": 3}"#,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let info = f.persistent.info(&key).await.expect("info");
        assert_eq!(info.definition.settings.max_retry_count, 3);
        assert_eq!(info.definition.filter, Some(filter));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_body_missing_or_empty_takes_the_defaults_and_bad_settings_are_400() {
        let f = start().await;
        assert_eq!(
            f.status(Method::PUT, "/subscriptions/s/empty", "").await,
            StatusCode::CREATED
        );
        let (info, _) = f.info("/subscriptions/s/empty").await;
        let config = info.config.unwrap();
        let defaults = Settings::default();
        assert_eq!(config.start_position, "-1");
        assert_eq!(config.buffer_size, i64::from(defaults.history_buffer_size));
        assert_eq!(
            config.max_checkpoint_count,
            i64::from(defaults.max_checkpoint_count)
        );
        assert_eq!(
            config.named_consumer_strategy,
            defaults.consumer_strategy.name()
        );

        for (body, expected) in [
            ("{not json", "Invalid subscription settings"),
            (
                r#"{"bufferSize": 10, "readBatchSize": 20}"#,
                "BufferSize (10) must be larger",
            ),
            (r#"{"liveBufferSize": 0}"#, "Live Buffer Size (0)"),
            (
                r#"{"namedConsumerStrategy": "Random"}"#,
                "Unknown consumer strategy",
            ),
            (r#"{"startFrom": "C:1/P:x"}"#, "Invalid start position"),
            (r#"{"maxRetryCount": -1}"#, "Invalid subscription settings"),
        ] {
            let (status, _, text) = f.call(Method::PUT, "/subscriptions/s/bad", body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert!(text.contains(expected), "{body}: {text}");
        }
        assert_eq!(
            f.status(Method::GET, "/subscriptions/s/bad/info", "").await,
            StatusCode::NOT_FOUND
        );
        let (status, _, text) = f.call(Method::GET, "/subscriptions?count=0", "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(text.contains("must be a positive integer"), "{text}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn parked_messages_are_replayed_and_restart_drops_consumers() {
        let f = start().await;
        f.append("parking-1", 3).await;
        let path = "/subscriptions/parking-1/g";
        assert_eq!(
            f.status(Method::PUT, path, r#"{"startFrom": 0}"#).await,
            StatusCode::CREATED
        );
        let key = GroupKey::new(Source::Stream(StreamName::new("parking-1").unwrap()), "g");
        let mut consumer = f
            .persistent
            .connect(ConnectRequest {
                key,
                buffer_size: 10,
                connection_name: "http-test".into(),
                from: "127.0.0.1:5000".into(),
                username: String::new(),
            })
            .await
            .expect("a consumer connects");
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(next_message(&mut consumer).await.ack_id());
        }
        consumer
            .handle()
            .nack(ids, NackAction::Park, "parked by the test".into());
        let info = f
            .wait_for(path, "three messages parked", |i| {
                i.parked_message_count == 3
            })
            .await;
        assert_eq!(info.connection_count, 1);
        assert_eq!(info.connections[0].connection_name, "http-test");
        assert_eq!(info.connections[0].from, "127.0.0.1:5000");
        assert_eq!(info.last_known_event_number, 2);
        assert_eq!(info.last_known_event_position.as_deref(), Some("2"));

        let (status, _, text) = f
            .call(Method::POST, &format!("{path}/replayParked?stopAt=abc"), "")
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(text, "stopAt should be a properly formed positive long");

        // Two of the three come back, then the rest.
        assert_eq!(
            f.status(Method::POST, &format!("{path}/replayParked?stopAt=2"), "")
                .await,
            StatusCode::OK
        );
        for _ in 0..2 {
            let message = next_message(&mut consumer).await;
            consumer.handle().ack(vec![message.ack_id()]);
        }
        assert_eq!(
            f.status(Method::POST, &format!("{path}/replayParked"), "")
                .await,
            StatusCode::OK
        );
        let message = next_message(&mut consumer).await;
        consumer.handle().ack(vec![message.ack_id()]);

        let (status, _, body) = f.call(Method::POST, "/subscriptions/restart", "").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, "\"Restarting\"");
        let dropped = tokio::time::timeout(DEADLINE, async {
            loop {
                match consumer.next().await {
                    Some(Delivery::Message(_)) => continue,
                    other => return other,
                }
            }
        })
        .await
        .expect("the consumer hears of the restart");
        assert!(
            matches!(dropped, Some(Delivery::Dropped(_)) | None),
            "{dropped:?}"
        );
        let (info, _) = f.info(path).await;
        assert_eq!(info.connection_count, 0);
    }

    #[test]
    fn errors_map_to_eventstoredb_status_codes() {
        let uri: Uri = "/subscriptions/s/g/replayParked?stopAt=3".parse().unwrap();
        let key = GroupKey::new(Source::All, "g");
        let cases = [
            (PsError::does_not_exist(&key), StatusCode::NOT_FOUND),
            (PsError::already_exists(&key), StatusCode::CONFLICT),
            (
                PsError::InvalidArgument("x".into()),
                StatusCode::BAD_REQUEST,
            ),
            (PsError::NotReady, StatusCode::SERVICE_UNAVAILABLE),
            (
                PsError::NotLeader { leader: None },
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                PsError::failed(&key, "disk"),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(
                error_response(error.clone(), &uri).status(),
                status,
                "{error:?}"
            );
        }
        let redirect = error_response(
            PsError::NotLeader {
                leader: Some(("10.0.0.2".into(), 2113)),
            },
            &uri,
        );
        assert_eq!(redirect.status(), StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(
            redirect.headers()[LOCATION],
            "http://10.0.0.2:2113/subscriptions/s/g/replayParked?stopAt=3"
        );
    }

    #[test]
    fn start_positions_read_as_eventstoredb_writes_them() {
        let stream = Source::Stream(StreamName::new("s").unwrap());
        assert_eq!(parse_start_text(&stream, "0"), Ok(StartFrom::Start));
        assert_eq!(parse_start_text(&stream, "-1"), Ok(StartFrom::End));
        assert_eq!(parse_start_text(&stream, "42"), Ok(StartFrom::At(42)));
        assert!(parse_start_text(&stream, "C:5/P:5").is_err());
        assert_eq!(
            parse_start_text(&Source::All, "C:0/P:0"),
            Ok(StartFrom::Start)
        );
        assert_eq!(
            parse_start_text(&Source::All, "C:-1/P:-1"),
            Ok(StartFrom::End)
        );
        assert_eq!(
            parse_start_text(&Source::All, "C:5/P:5"),
            Ok(StartFrom::At(5))
        );
        assert!(parse_start_text(&Source::All, "-2").is_err());
        assert_eq!(
            parse_start_value(&stream, &serde_json::json!(-1)),
            Ok(StartFrom::End)
        );
        assert_eq!(
            parse_start_value(&stream, &serde_json::json!(7)),
            Ok(StartFrom::At(7))
        );
        assert!(parse_start_value(&stream, &serde_json::json!(-5)).is_err());
        assert!(parse_start_value(&stream, &serde_json::json!(true)).is_err());
    }

    #[test]
    fn path_segments_are_escaped_like_dotnet_escape_data_string() {
        assert_eq!(escape_segment("$all"), "%24all");
        assert_eq!(escape_segment("a::b/c d~_.-"), "a%3A%3Ab%2Fc%20d~_.-");
        assert_eq!(escape_segment("é"), "%C3%A9");
    }
}
