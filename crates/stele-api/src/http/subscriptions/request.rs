//! Requests as the engine's terms: path segments as a group's [`GroupKey`], PUT and POST
//! bodies as its [`Settings`].
//!
//! Bodies are EventStoreDB's `SubscriptionConfigData` (`resolveLinktos`, `startFrom`,
//! `startPosition`, `messageTimeoutMilliseconds`, `extraStatistics`, `maxRetryCount`,
//! `liveBufferSize`, `bufferSize`, `readBatchSize`, `preferRoundRobin`,
//! `checkPointAfterMilliseconds`, `minCheckPointCount`, `maxCheckPointCount`,
//! `maxSubscriberCount`, `namedConsumerStrategy`); a missing field or an empty body takes
//! [`Settings::default`], unknown fields are ignored, and an update replaces every setting
//! as EventStoreDB's does (a `$all` group keeps its filter, which HTTP cannot express).
//! `startPosition` wins over `startFrom`; either is `0`/`C:0/P:0` (start), `-1`/`C:-1/P:-1`
//! (end), a revision or a `$all` position. EventStoreDB's HTTP checks apply too: the three
//! buffer sizes positive and `bufferSize` above `readBatchSize`. A refusal is a message for
//! a 400.

use serde::Deserialize;
use stele_core::StreamName;

use stele_services::persistent::{GroupKey, Settings, Source, StartFrom, Strategy};

/// `$all` or a stream (already percent-decoded by the router).
pub(super) fn parse_source(stream: &str) -> Result<Source, String> {
    if stream == "$all" {
        return Ok(Source::All);
    }
    StreamName::new(stream)
        .map(Source::Stream)
        .map_err(|_| format!("Invalid stream name '{stream}'"))
}

pub(super) fn parse_key(stream: &str, group: String) -> Result<GroupKey, String> {
    if group.is_empty() {
        return Err("Group name cannot be empty".into());
    }
    Ok(GroupKey::new(parse_source(stream)?, group))
}

pub(super) fn parse_key_and_settings(
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
