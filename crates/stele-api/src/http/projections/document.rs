//! A projection's statistics as EventStoreDB's HTTP API writes them (its
//! `ProjectionStatistics` in camelCase JSON, with the links the web UI follows), and the
//! `{"projections": [...]}` list of them.

use serde::Serialize;
use stele_projections::Statistics;

use crate::http::subscriptions::document::escape_segment;

/// One projection's statistics.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StatisticsDocument {
    core_processing_time: i64,
    version: i64,
    epoch: i64,
    effective_name: String,
    writes_in_progress: i32,
    reads_in_progress: i32,
    partitions_cached: i32,
    status: String,
    state_reason: String,
    name: String,
    mode: String,
    position: String,
    progress: f32,
    last_checkpoint: String,
    events_processed_after_restart: i64,
    status_url: String,
    state_url: String,
    result_url: String,
    query_url: String,
    enable_command_url: String,
    disable_command_url: String,
    checkpoint_status: String,
    buffered_events: i64,
    write_pending_events_before_checkpoint: i32,
    write_pending_events_after_checkpoint: i32,
}

/// `{"projections": [...]}`.
#[derive(Debug, Serialize)]
pub(super) struct StatisticsList {
    pub projections: Vec<StatisticsDocument>,
}

/// The statistics of one projection, its links under `base` (`http://host:port`).
pub(super) fn document(base: &str, s: Statistics) -> StatisticsDocument {
    let url = format!("{base}/projection/{}", escape_segment(&s.name));
    StatisticsDocument {
        core_processing_time: s.core_processing_time,
        version: s.version,
        epoch: s.epoch,
        effective_name: s.effective_name,
        writes_in_progress: s.writes_in_progress,
        reads_in_progress: s.reads_in_progress,
        partitions_cached: s.partitions_cached,
        status: s.status,
        state_reason: s.state_reason,
        name: s.name,
        mode: s.mode,
        position: s.position,
        progress: s.progress,
        last_checkpoint: s.last_checkpoint,
        events_processed_after_restart: s.events_processed_after_restart,
        state_url: format!("{url}/state"),
        result_url: format!("{url}/result"),
        query_url: format!("{url}/query?config=yes"),
        enable_command_url: format!("{url}/command/enable"),
        disable_command_url: format!("{url}/command/disable"),
        status_url: url,
        checkpoint_status: s.checkpoint_status,
        buffered_events: s.buffered_events,
        write_pending_events_before_checkpoint: s.write_pending_events_before_checkpoint,
        write_pending_events_after_checkpoint: s.write_pending_events_after_checkpoint,
    }
}

/// The list of `all`'s statistics.
pub(super) fn list(base: &str, all: Vec<Statistics>) -> StatisticsList {
    StatisticsList {
        projections: all.into_iter().map(|s| document(base, s)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_have_eventstoredbs_names_and_links() {
        let json = serde_json::to_value(list(
            "http://node:2113",
            vec![Statistics {
                name: "my counter".into(),
                effective_name: "my counter".into(),
                status: "Running".into(),
                mode: "Continuous".into(),
                version: 1,
                epoch: -1,
                progress: 100.0,
                ..Default::default()
            }],
        ))
        .unwrap();
        let p = &json["projections"][0];
        let keys: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
        for key in [
            "coreProcessingTime",
            "version",
            "epoch",
            "effectiveName",
            "writesInProgress",
            "readsInProgress",
            "partitionsCached",
            "status",
            "stateReason",
            "name",
            "mode",
            "position",
            "progress",
            "lastCheckpoint",
            "eventsProcessedAfterRestart",
            "statusUrl",
            "stateUrl",
            "resultUrl",
            "queryUrl",
            "enableCommandUrl",
            "disableCommandUrl",
            "checkpointStatus",
            "bufferedEvents",
            "writePendingEventsBeforeCheckpoint",
            "writePendingEventsAfterCheckpoint",
        ] {
            assert!(keys.contains(&key), "{key} missing from {p}");
        }
        assert_eq!(keys.len(), 25, "{p}");
        assert_eq!(p["status"], "Running");
        assert_eq!(p["epoch"], -1);
        assert_eq!(p["statusUrl"], "http://node:2113/projection/my%20counter");
        assert_eq!(
            p["stateUrl"],
            "http://node:2113/projection/my%20counter/state"
        );
        assert_eq!(
            p["queryUrl"],
            "http://node:2113/projection/my%20counter/query?config=yes"
        );
        assert_eq!(
            p["disableCommandUrl"],
            "http://node:2113/projection/my%20counter/command/disable"
        );
    }
}
