//! Groups as the JSON documents EventStoreDB's HTTP API answers with.
//!
//! A group is EventStoreDB's `SubscriptionInfo` document (camelCase): the fields the Rust
//! client's `PersistentSubscriptionInfoHttpJson` requires (`eventStreamId`, `groupName`,
//! `status`, `averageItemsPerSecond`, `totalItemsProcessed`, `lastProcessedEventNumber`,
//! `lastKnownEventNumber`, `totalInFlightMessages`, and inside `config` every setting with
//! `startFrom`, `preferRoundRobin` and `namedConsumerStrategy`), plus the ones it reads when
//! present (`connections`, `connectionCount`, the buffer counts,
//! `lastCheckpointedEventPosition`, `lastKnownEventPosition`, `config.startPosition`).
//! Positions are strings as EventStoreDB shows them: a revision for a stream, `C:<p>/P:<p>`
//! for `$all`, `null` while unknown. The obsolete numeric `lastProcessedEventNumber`/
//! `lastKnownEventNumber`/`config.startFrom` are what EventStoreDB derives from those strings
//! (`long.TryParse`, else 0): the revision for a stream, 0 for `$all` or when unknown (the
//! client casts them to `u64`, so never -1 — except `startFrom`, where -1 is "end" as
//! EventStoreDB writes it).
//!
//! Differences from EventStoreDB, on purpose: the list endpoints answer the full document
//! (EventStoreDB's shorter `SubscriptionSummary` lacks `config`), and `parkedMessageUri` /
//! `getMessagesUri` are left out because they point at AtomPub and competing-consumer routes
//! Stele does not serve; `links` holds only `detail` and `replayParked`.

use std::collections::HashMap;

use axum::http::header::HOST;
use axum::http::HeaderMap;
use serde::Serialize;

use stele_services::persistent::{
    ConnectionInfo, GroupInfo, GroupKey, Source, StartFrom, Strategy,
};

/// `?offset=&count=` of `GET /subscriptions` (EventStoreDB's paged listing).
pub(super) struct Paging {
    offset: usize,
    count: usize,
}

impl Paging {
    /// `None` when neither is given (the plain list); EventStoreDB's checks and messages.
    pub(super) fn from_query(query: &HashMap<String, String>) -> Result<Option<Paging>, String> {
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

    pub(super) fn page(&self, base: &str, groups: &[GroupInfo]) -> PagedSubscriptionInfo {
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PagedSubscriptionInfo {
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
pub(super) struct SubscriptionInfo {
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
    pub(super) fn new(base: &str, group: &GroupInfo) -> SubscriptionInfo {
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

pub(super) fn documents(base: &str, groups: &[GroupInfo]) -> Vec<SubscriptionInfo> {
    groups
        .iter()
        .map(|group| SubscriptionInfo::new(base, group))
        .collect()
}

/// Lists in a stable order: by stream name, then group.
pub(super) fn sort(groups: &mut [GroupInfo]) {
    groups.sort_by(|a, b| {
        let (a, b) = (&a.definition.key, &b.definition.key);
        (a.source.name(), &a.group).cmp(&(b.source.name(), &b.group))
    });
}

/// `http://<Host header>` for absolute links, as EventStoreDB makes them (`https://` on a
/// secure node, whose every port is TLS); empty (relative links) when the request has no
/// `Host`.
pub(in crate::http) struct BaseUrl(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for BaseUrl {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let secure = parts
            .extensions
            .get::<crate::http::info::SecurityMode>()
            .is_some_and(|mode| mode.secure);
        Ok(BaseUrl(base_url(&parts.headers, secure)))
    }
}

fn base_url(headers: &HeaderMap, secure: bool) -> String {
    let scheme = if secure { "https" } else { "http" };
    headers
        .get(HOST)
        .and_then(|host| host.to_str().ok())
        .map(|host| format!("{scheme}://{host}"))
        .unwrap_or_default()
}

/// `/subscriptions/<stream>/<group>`, each escaped as a path segment.
pub(super) fn group_path(key: &GroupKey) -> String {
    format!(
        "/subscriptions/{}/{}",
        escape_segment(key.source.name()),
        escape_segment(&key.group)
    )
}

/// Percent-encodes everything but RFC 3986's unreserved characters, as .NET's
/// `Uri.EscapeDataString` (which EventStoreDB uses for these links) does.
pub(in crate::http) fn escape_segment(text: &str) -> String {
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
    use super::*;

    #[test]
    fn path_segments_are_escaped_like_dotnet_escape_data_string() {
        assert_eq!(escape_segment("$all"), "%24all");
        assert_eq!(escape_segment("a::b/c d~_.-"), "a%3A%3Ab%2Fc%20d~_.-");
        assert_eq!(escape_segment("é"), "%C3%A9");
    }

    #[tokio::test]
    async fn links_are_https_on_a_secure_node() {
        use axum::extract::FromRequestParts;
        for (mode, expected) in [
            (None, "http://node:2113"),
            (Some(false), "http://node:2113"),
            (Some(true), "https://node:2113"),
        ] {
            let mut request = axum::http::Request::builder().header(HOST, "node:2113");
            if let Some(secure) = mode {
                request = request.extension(crate::http::info::SecurityMode { secure });
            }
            let (mut parts, ()) = request.body(()).unwrap().into_parts();
            let BaseUrl(base) = BaseUrl::from_request_parts(&mut parts, &()).await.unwrap();
            assert_eq!(base, expected);
        }
        let (mut parts, ()) = axum::http::Request::new(()).into_parts();
        let BaseUrl(base) = BaseUrl::from_request_parts(&mut parts, &()).await.unwrap();
        assert_eq!(base, "", "no Host: relative links");
    }
}
