//! Handing an [`EventInput`] to the prelude, which builds the event object (§2.3).
//!
//! The processor asks for an event's partition key and then processes the same event, so
//! the prelude keeps the last event object it built; when Rust hands the same event again
//! it passes only a "reuse" flag, sparing the strings' copies and a second `JSON.parse` of
//! the body.

use rquickjs::function::Args;

use crate::query::EventInput;

/// Which event the prelude's last event object was built from: every field is compared, so
/// a reused object always holds what a new one would (the buffers are reused, so recording
/// an event copies without allocating once they have grown).
#[derive(Debug, Default)]
pub(crate) struct LastEvent {
    valid: bool,
    sequence_number: u64,
    stream_id: String,
    event_id: String,
    event_type: String,
    is_json: bool,
    body_raw: String,
    metadata_raw: String,
    link_metadata_raw: Option<String>,
    category: Option<String>,
}

impl LastEvent {
    /// Whether `event` is the one the prelude's last event object was built from.
    pub(crate) fn matches(&self, event: &EventInput<'_>) -> bool {
        self.valid
            && self.sequence_number == event.sequence_number
            && self.event_id == event.event_id
            && self.stream_id == event.stream_id
            && self.event_type == event.event_type
            && self.is_json == event.is_json
            && self.body_raw == event.body_raw
            && self.metadata_raw == event.metadata_raw
            && self.link_metadata_raw.as_deref() == event.link_metadata_raw
            && self.category.as_deref() == event.category
    }

    /// Forgets the last event (before a call that may replace it).
    pub(crate) fn clear(&mut self) {
        self.valid = false;
    }

    /// Records that the prelude built its last event object from `event`.
    pub(crate) fn record(&mut self, event: &EventInput<'_>) {
        self.sequence_number = event.sequence_number;
        replace(&mut self.stream_id, event.stream_id);
        replace(&mut self.event_id, event.event_id);
        replace(&mut self.event_type, event.event_type);
        self.is_json = event.is_json;
        replace(&mut self.body_raw, event.body_raw);
        replace(&mut self.metadata_raw, event.metadata_raw);
        replace_opt(&mut self.link_metadata_raw, event.link_metadata_raw);
        replace_opt(&mut self.category, event.category);
        self.valid = true;
    }
}

fn replace(buffer: &mut String, text: &str) {
    buffer.clear();
    buffer.push_str(text);
}

fn replace_opt(buffer: &mut Option<String>, text: Option<&str>) {
    match (buffer.as_mut(), text) {
        (Some(b), Some(t)) => replace(b, t),
        (_, t) => *buffer = t.map(str::to_owned),
    }
}

/// The number of arguments [`push_event`] pushes at most.
pub(crate) const EVENT_ARGS: usize = 10;

/// Pushes the prelude's event arguments: `reuse, streamId, sequenceNumber, eventType,
/// eventId, isJson, bodyRaw, metadataRaw, linkMetadataRaw, category` (only `reuse` when
/// reusing the last event object).
pub(crate) fn push_event<'js>(
    args: &mut Args<'js>,
    reuse: bool,
    event: &EventInput<'_>,
) -> rquickjs::Result<()> {
    args.push_arg(reuse)?;
    if reuse {
        return Ok(());
    }
    args.push_arg(event.stream_id)?;
    // Event numbers are below 2^53, so a JS number holds them exactly.
    args.push_arg(event.sequence_number as f64)?;
    args.push_arg(event.event_type)?;
    args.push_arg(event.event_id)?;
    args.push_arg(event.is_json)?;
    args.push_arg(event.body_raw)?;
    args.push_arg(event.metadata_raw)?;
    args.push_arg(event.link_metadata_raw)?;
    args.push_arg(event.category)?;
    Ok(())
}

/// JSON events with an empty body reach no handler (PROTOCOL-OPS.md §2.2).
pub(crate) fn is_skipped(event: &EventInput<'_>) -> bool {
    event.is_json && event.body_raw.is_empty()
}
