//! The query's definition as the prelude reports it (JSON), turned into a
//! [`QueryDefinition`].

use serde::Deserialize;

use super::JsError;
use crate::query::{QueryDefinition, QuerySource};

/// The prelude's `definition()` JSON.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Reported {
    source: Option<String>,
    names: Vec<String>,
    by_stream: bool,
    partitioned: bool,
    handled_types: Option<Vec<String>>,
    handles_deleted: bool,
    handles_created: bool,
    bi_state: bool,
    output_state: bool,
    include_links: bool,
    reorder_events: bool,
    processing_lag: f64,
    result_stream: Option<String>,
    partition_pattern: Option<String>,
}

/// Parses the prelude's report; a query that never called a `from*` function is invalid.
pub(crate) fn parse(json: &str) -> Result<QueryDefinition, JsError> {
    let reported: Reported = serde_json::from_str(json)
        .map_err(|e| JsError::Compile(format!("unreadable definition: {e}")))?;
    let source = match reported.source.as_deref() {
        Some("all") => QuerySource::All,
        Some("streams") => QuerySource::Streams(reported.names),
        Some("categories") => QuerySource::Categories(reported.names),
        _ => {
            return Err(JsError::Compile(
                "the query defines no source: call fromAll(), fromStream(), fromStreams(), fromCategory() or fromCategories()"
                    .to_owned(),
            ))
        }
    };
    Ok(QueryDefinition {
        source,
        by_stream: reported.by_stream,
        partitioned: reported.partitioned,
        handled_types: reported.handled_types,
        handles_deleted: reported.handles_deleted,
        handles_created: reported.handles_created,
        bi_state: reported.bi_state,
        output_state: reported.output_state,
        include_links: reported.include_links,
        reorder_events: reported.reorder_events,
        // The prelude checked it is a non-negative number (floored).
        processing_lag_ms: reported.processing_lag as u64,
        result_stream: reported.result_stream,
        partition_result_pattern: reported.partition_pattern,
    })
}
