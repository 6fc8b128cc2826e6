//! What a projection's handler sees and gives, whatever runs it (the native system
//! projections in `native/`, user JavaScript in `js/`): the query's definition, the event
//! handed to a handler, and what a handler emits.

use serde::{Deserialize, Serialize};

/// Where a query reads from (`fromAll`, `fromStream(s)`, `fromCategory`/`fromCategories`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuerySource {
    /// Every event of non-system streams (and metastreams of non-system streams).
    All,
    /// One or more streams, in log order.
    Streams(Vec<String>),
    /// One or more categories: the `$ce-<category>` streams, links resolved.
    Categories(Vec<String>),
}

/// What a query's definition calls said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryDefinition {
    pub source: QuerySource,
    /// `foreachStream()`: one partition per source stream (the key is the stream name).
    pub by_stream: bool,
    /// `partitionBy(fn)`: the key is what the function returns.
    pub partitioned: bool,
    /// The event types with a handler of their own; `None` when `$any` is given (or no
    /// `when` at all), so every type is handled.
    pub handled_types: Option<Vec<String>>,
    /// `$deleted` is given.
    pub handles_deleted: bool,
    /// `$created` is given.
    pub handles_created: bool,
    /// `$initShared` is given (bi-state).
    pub bi_state: bool,
    /// `outputState()`, `transformBy` or `filterBy`: results are written.
    pub output_state: bool,
    /// `options({$includeLinks})`.
    pub include_links: bool,
    /// `options({reorderEvents})`.
    pub reorder_events: bool,
    /// `options({processingLag})`, in milliseconds.
    pub processing_lag_ms: u64,
    /// `options({resultStreamName})` or `outputTo(stream)`.
    pub result_stream: Option<String>,
    /// `outputTo(stream, pattern)`: the per-partition result stream, `{0}` = the partition.
    pub partition_result_pattern: Option<String>,
}

impl Default for QueryDefinition {
    fn default() -> Self {
        QueryDefinition {
            source: QuerySource::All,
            by_stream: false,
            partitioned: false,
            handled_types: None,
            handles_deleted: false,
            handles_created: false,
            bi_state: false,
            output_state: false,
            include_links: false,
            reorder_events: false,
            processing_lag_ms: 500,
            result_stream: None,
            partition_result_pattern: None,
        }
    }
}

/// The event handed to a handler (PROTOCOL-OPS.md §2.3). Bodies are text: JSON events are
/// parsed by the handler's runtime only when it looks at them.
#[derive(Debug, Clone)]
pub struct EventInput<'a> {
    /// The event's stream (for a link read through `fromCategory`, the target's stream).
    pub stream_id: &'a str,
    pub sequence_number: u64,
    pub event_type: &'a str,
    /// `D`-format UUID text.
    pub event_id: &'a str,
    pub is_json: bool,
    pub body_raw: &'a str,
    pub metadata_raw: &'a str,
    /// The link's metadata, when the event was reached through a link.
    pub link_metadata_raw: Option<&'a str>,
    /// The category, for `fromCategory` sources.
    pub category: Option<&'a str>,
}

/// What a handler asks to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emitted {
    /// `emit(stream, type, body, metadata)`: a JSON event.
    Event {
        stream: String,
        event_type: String,
        /// JSON text.
        data: String,
        /// JSON object text, when given.
        metadata: Option<String>,
    },
    /// `linkTo(stream, event, metadata)`: a `$>` link to `revision@target_stream`.
    Link {
        stream: String,
        target_stream: String,
        target_revision: u64,
        metadata: Option<String>,
    },
    /// `linkStreamTo(stream, linkedStream, metadata)`: a `$@` event naming a stream.
    StreamLink {
        stream: String,
        linked_stream: String,
        metadata: Option<String>,
    },
}
