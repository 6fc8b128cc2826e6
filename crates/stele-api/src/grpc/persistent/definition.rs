//! Create and Update: a request as the [`Definition`] of a group.
//!
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
//!   groups). Update carries no filter: the group keeps its own, as in EventStoreDB (the
//!   engine copies it from the current definition).

use stele_core::access::Principal;
use stele_proto::persistent::{create_req, update_req, CreateReq, UpdateReq};
use tonic::Status;

use super::keys::{missing_oneof, options_of, stream_source};
use crate::grpc::status;
use stele_services::filter::{EventFilter, FilterField, FilterSpec};
use stele_services::persistent::{
    Definition, GroupKey, PsError, Settings, Source, StartFrom, Strategy,
};

/// .NET ticks (100 ns) in a millisecond.
pub const TICKS_PER_MS: i64 = 10_000;

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
    let (on, expression) = match &options.filter {
        Some(Filter::StreamIdentifier(e)) => (FilterField::StreamName, e),
        Some(Filter::EventType(e)) => (FilterField::EventType, e),
        None => return Err(missing_oneof("FilterOneofCase")),
    };
    let spec = FilterSpec {
        on,
        regex: expression.regex.clone(),
        prefixes: expression.prefix.clone(),
    };
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
        // The least of rights until the service sets the caller (an update keeps the
        // group's creator).
        creator: Principal::Anonymous,
    })
}

/// An Update request as the group's new definition. It has no filter; the engine keeps the
/// group's own.
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
        // The least of rights until the service sets the caller (an update keeps the
        // group's creator).
        creator: Principal::Anonymous,
    })
}

#[cfg(test)]
mod tests {
    use stele_core::StreamName;
    use stele_proto::shared::{Empty, StreamIdentifier};
    use tonic::Code;

    use super::*;
    use crate::grpc::events;

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
}
