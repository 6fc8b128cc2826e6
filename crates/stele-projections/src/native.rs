//! The system projections in native code (PROTOCOL-OPS.md §2.6): `$by_category`,
//! `$by_event_type`, `$stream_by_category`, `$streams` and `$by_correlation_id`. Each reads
//! `fromAll` (system streams dropped by the processor, links included) and writes links.

use bytes::Bytes;
use stele_services::links;

use crate::definition::{Definition, HandlerType, Mode, RunAs, Settings};
use crate::handler::{no_dirty, Handler, Output, SourceEvent, Write, WriteKind};
use crate::names::{LINK, STREAM_LINK};
use crate::query::{QueryDefinition, QuerySource};

/// The system projections, with their default source text.
pub const SYSTEM_PROJECTIONS: [(&str, &str); 5] = [
    ("$streams", ""),
    ("$stream_by_category", "first\r\n-"),
    ("$by_category", "first\r\n-"),
    ("$by_event_type", ""),
    (
        "$by_correlation_id",
        r#"{"correlationIdProperty":"$correlationId"}"#,
    ),
];

/// The definition a system projection is first written with: continuous, emit on,
/// checkpoints on, disabled (PROTOCOL-OPS.md §2.6).
pub fn system_definition(name: &str, query: &str, id: u64) -> Definition {
    Definition {
        name: name.to_owned(),
        id,
        mode: Mode::Continuous,
        handler_type: HandlerType::Native,
        query: query.to_owned(),
        enabled: false,
        emit_enabled: true,
        track_emitted_streams: false,
        checkpoints_enabled: true,
        version: 0,
        epoch: 0,
        run_as: RunAs::System,
        settings: Settings::default(),
    }
}

/// Which end of the stream name the category comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Split {
    First,
    Last,
}

/// `first\r\n-`: where to split and on what.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CategoryRule {
    split: Split,
    separator: String,
}

impl CategoryRule {
    fn parse(query: &str) -> Result<CategoryRule, String> {
        let text = query.trim();
        if text.is_empty() {
            return Ok(CategoryRule {
                split: Split::First,
                separator: "-".into(),
            });
        }
        let mut lines = text.lines();
        let split = match lines.next().map(str::trim) {
            Some("first") => Split::First,
            Some("last") => Split::Last,
            other => {
                return Err(format!(
                    "the first line must be 'first' or 'last', not {:?}",
                    other.unwrap_or("")
                ))
            }
        };
        let separator = lines.next().map(str::trim).unwrap_or("-");
        if separator.is_empty() {
            return Err("the separator (second line) is empty".into());
        }
        Ok(CategoryRule {
            split,
            separator: separator.to_owned(),
        })
    }

    /// The category of a stream: none for system streams and where the separator is
    /// missing or first.
    fn category<'a>(&self, stream: &'a str) -> Option<&'a str> {
        if stream.starts_with('$') {
            return None;
        }
        let at = match self.split {
            Split::First => stream.find(self.separator.as_str()),
            Split::Last => stream.rfind(self.separator.as_str()),
        }?;
        (at > 0).then(|| &stream[..at])
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    ByCategory(CategoryRule),
    StreamByCategory(CategoryRule),
    ByEventType,
    Streams,
    ByCorrelationId { property: String },
}

/// A system projection.
pub(crate) struct Native {
    kind: Kind,
    definition: QueryDefinition,
}

impl Native {
    pub fn new(name: &str, query: &str) -> Result<Native, String> {
        let kind = match name {
            "$by_category" => Kind::ByCategory(CategoryRule::parse(query)?),
            "$stream_by_category" => Kind::StreamByCategory(CategoryRule::parse(query)?),
            "$by_event_type" => Kind::ByEventType,
            "$streams" => Kind::Streams,
            "$by_correlation_id" => {
                let property = if query.trim().is_empty() {
                    "$correlationId".to_owned()
                } else {
                    let value: serde_json::Value = serde_json::from_str(query)
                        .map_err(|e| format!("the source is not JSON: {e}"))?;
                    value
                        .get("correlationIdProperty")
                        .and_then(|p| p.as_str())
                        .unwrap_or("$correlationId")
                        .to_owned()
                };
                Kind::ByCorrelationId { property }
            }
            other => return Err(format!("no system projection is named {other}")),
        };
        Ok(Native {
            kind,
            definition: QueryDefinition {
                source: QuerySource::All,
                include_links: true,
                ..QueryDefinition::default()
            },
        })
    }
}

fn link_to(stream: String, data: Bytes, event: &SourceEvent) -> Write {
    Write {
        kind: WriteKind::Emit,
        stream,
        event_type: LINK.to_owned(),
        data,
        is_json: false,
        metadata: None,
        caused_by: event.caused_by(),
        tag: event.tag,
    }
}

/// `<revision>@<stream>` of the event, or of the original for a link.
fn link_data(event: &SourceEvent) -> Bytes {
    let e = &event.event;
    if links::is_link(e) {
        return e.record.data.clone();
    }
    Bytes::from(format!("{}@{}", e.revision.0, e.record.stream.as_str()))
}

impl Handler for Native {
    fn definition(&self) -> &QueryDefinition {
        &self.definition
    }

    fn handle(&mut self, source: &SourceEvent, out: &mut Output) -> Result<(), String> {
        let event = &source.event;
        let stream = event.record.stream.as_str();
        let is_link = links::is_link(event);
        let write = match &self.kind {
            Kind::ByCategory(rule) => rule
                .category(stream)
                .map(|c| link_to(format!("$ce-{c}"), link_data(source), source)),
            Kind::ByEventType => (!is_link && !stream.starts_with('$')).then(|| {
                link_to(
                    format!("$et-{}", event.record.event_type),
                    link_data(source),
                    source,
                )
            }),
            Kind::StreamByCategory(rule) => (event.revision.0 == 0 && !is_link)
                .then(|| rule.category(stream))
                .flatten()
                .map(|c| Write {
                    event_type: STREAM_LINK.to_owned(),
                    data: Bytes::from(stream.to_owned()),
                    ..link_to(format!("$category-{c}"), Bytes::new(), source)
                }),
            Kind::Streams => (event.revision.0 == 0 && !is_link && !stream.starts_with('$'))
                .then(|| link_to("$streams".to_owned(), link_data(source), source)),
            Kind::ByCorrelationId { property } => correlation_id(event, property)
                .map(|id| link_to(format!("$bc-{id}"), link_data(source), source)),
        };
        if let Some(write) = write {
            out.handled += 1;
            out.writes.push(write);
        }
        Ok(())
    }

    fn state(&mut self, _partition: &str) -> Result<Option<String>, String> {
        Ok(None)
    }

    fn result(&mut self, _partition: &str) -> Result<Option<String>, String> {
        Ok(None)
    }

    fn load_root(&mut self, _state: &str) -> Result<(), String> {
        Ok(())
    }

    fn take_dirty(&mut self) -> Result<Vec<(String, String)>, String> {
        no_dirty()
    }

    fn partitions_cached(&self) -> usize {
        0
    }
}

/// The correlation id in a JSON event's metadata, if a non-empty string.
fn correlation_id(event: &stele_core::RecordedEvent, property: &str) -> Option<String> {
    if event.record.custom_metadata.is_empty() || event.record.stream.as_str().starts_with('$') {
        return None;
    }
    let metadata: serde_json::Value = serde_json::from_slice(&event.record.custom_metadata).ok()?;
    let id = metadata.get(property)?.as_str()?;
    (!id.is_empty()).then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_split_on_the_first_or_last_separator() {
        let first = CategoryRule::parse("first\r\n-").unwrap();
        let last = CategoryRule::parse("last\r\n-").unwrap();
        assert_eq!(first.category("account-9E76"), Some("account"));
        assert_eq!(first.category("shopping-cart-1"), Some("shopping"));
        assert_eq!(last.category("shopping-cart-1"), Some("shopping-cart"));
        assert_eq!(first.category("nodash"), None);
        assert_eq!(first.category("-lead"), None);
        assert_eq!(first.category("$ce-x"), None);
        assert!(CategoryRule::parse("middle\r\n-").is_err());
    }
}
