//! GetInfo and List: a group's [`GroupInfo`] as `SubscriptionInfo`. Positions are text
//! (`0`/`-1`/revision, or `C:<p>/P:<p>`), empty when there is none; the strategy is its name.
//! Counters wider than the wire's `int32`/`int64` saturate.

use stele_proto::persistent::{subscription_info, SubscriptionInfo};

use stele_services::persistent::{ConnectionInfo, GroupInfo, Source};

pub(super) fn saturate_i32(value: u64) -> i32 {
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
    use stele_core::StreamName;

    use super::*;
    use stele_services::persistent::{Definition, GroupKey, Settings, StartFrom, Strategy};

    fn stream(name: &str) -> Source {
        Source::Stream(StreamName::new(name).unwrap())
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
                creator: stele_core::access::Principal::System,
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
}
