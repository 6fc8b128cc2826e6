//! The server-side filter of a `$all` read (`ReadReq.Options.FilterOptions`, PROTOCOL.md
//! §4.1): on the stream name or on the event type, by regular expression or by a list of
//! prefixes. As in EventStoreDB, a non-empty regex wins over the prefixes; an empty prefix
//! list matches nothing.
//!
//! Regexes run on `fancy-regex`, which has look-around: the Python client's default `$all`
//! filter, `^(?!(\$.+$|PersistentConfig\d+$))` on the event type, needs negative lookahead.
//! A regex matches anywhere in the text unless anchored, like .NET's `Regex.IsMatch`.
//!
//! The window and checkpoint multiplier only shape subscriptions, so reads ignore them.

use fancy_regex::Regex;
use stele_core::RecordedEvent;
use stele_proto::streams::read_req::options::filter_options::{Expression, Filter};
use stele_proto::streams::read_req::options::FilterOptions;
use tonic::Status;

use super::status;

#[derive(Debug)]
pub struct EventFilter {
    spec: FilterSpec,
    matcher: Matcher,
}

/// What a filter tests: the stream name or the event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FilterField {
    StreamName,
    EventType,
}

/// A filter as it is stored (persistent subscriptions keep theirs in the log): a non-empty
/// `regex` wins over `prefixes`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterSpec {
    pub on: FilterField,
    pub regex: String,
    pub prefixes: Vec<String>,
}

#[derive(Debug)]
enum Matcher {
    Regex(Regex),
    Prefixes(Vec<String>),
}

impl EventFilter {
    pub fn from_options(options: &FilterOptions) -> Result<EventFilter, Status> {
        let (on, expression) = match &options.filter {
            Some(Filter::StreamIdentifier(expression)) => (FilterField::StreamName, expression),
            Some(Filter::EventType(expression)) => (FilterField::EventType, expression),
            None => return Err(status::not_a_valid("None", "FilterOneofCase")),
        };
        EventFilter::from_spec(FilterSpec::from_expression(on, expression))
            .map_err(status::invalid_argument)
    }

    /// Builds a filter from its stored form; the error names a bad regular expression.
    pub fn from_spec(spec: FilterSpec) -> Result<EventFilter, String> {
        let matcher = if spec.regex.is_empty() {
            Matcher::Prefixes(spec.prefixes.clone())
        } else {
            Regex::new(&spec.regex)
                .map(Matcher::Regex)
                .map_err(|e| format!("'{}' is not a valid regular expression: {e}", spec.regex))?
        };
        Ok(EventFilter { spec, matcher })
    }

    pub fn spec(&self) -> &FilterSpec {
        &self.spec
    }

    pub fn accepts(&self, event: &RecordedEvent) -> bool {
        let text = match self.spec.on {
            FilterField::StreamName => event.record.stream.as_str(),
            FilterField::EventType => event.record.event_type.as_str(),
        };
        self.matcher.matches(text)
    }
}

impl FilterSpec {
    pub fn from_expression(on: FilterField, expression: &Expression) -> FilterSpec {
        FilterSpec {
            on,
            regex: expression.regex.clone(),
            prefixes: expression.prefix.clone(),
        }
    }
}

impl Matcher {
    fn matches(&self, text: &str) -> bool {
        match self {
            // A regex that exhausts its backtracking budget matches nothing rather than
            // failing the whole read.
            Matcher::Regex(regex) => regex.is_match(text).unwrap_or(false),
            Matcher::Prefixes(prefixes) => prefixes.iter().any(|p| text.starts_with(p.as_str())),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use stele_core::{ContentType, EventRecord, LogPosition, StreamName, StreamRevision};
    use stele_proto::streams::read_req::options::filter_options::Window;
    use tonic::Code;

    use super::*;

    fn event(stream: &str, event_type: &str) -> RecordedEvent {
        RecordedEvent {
            record: EventRecord {
                stream: StreamName::new(stream).unwrap(),
                id: uuid::Uuid::nil(),
                event_type: event_type.to_owned(),
                content_type: ContentType::Json,
                created_ticks: 0,
                custom_metadata: Bytes::new(),
                data: Bytes::new(),
            },
            revision: StreamRevision(0),
            position: LogPosition(0),
        }
    }

    fn options(filter: Filter) -> FilterOptions {
        FilterOptions {
            filter: Some(filter),
            window: Some(Window::Max(30)),
            checkpoint_interval_multiplier: 5,
        }
    }

    fn expression(regex: &str, prefix: &[&str]) -> Expression {
        Expression {
            regex: regex.to_owned(),
            prefix: prefix.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    #[test]
    fn python_default_exclude_filter_needs_lookahead() {
        let filter = EventFilter::from_options(&options(Filter::EventType(expression(
            r"^(?!(\$.+$|PersistentConfig\d+$))",
            &[],
        ))))
        .unwrap();
        assert!(filter.accepts(&event("orders-1", "OrderPlaced")));
        assert!(!filter.accepts(&event("$$orders-1", "$metadata")));
        assert!(!filter.accepts(&event("$persistentSubscriptionConfig", "PersistentConfig1")));
        assert!(filter.accepts(&event("x", "PersistentConfigX")));
    }

    #[test]
    fn regex_wins_over_prefixes_and_matches_anywhere() {
        let filter = EventFilter::from_options(&options(Filter::StreamIdentifier(expression(
            "der",
            &["zzz"],
        ))))
        .unwrap();
        assert!(filter.accepts(&event("orders-1", "A")));
        assert!(!filter.accepts(&event("zzz-1", "A")));
    }

    #[test]
    fn prefixes_match_any_and_an_empty_list_matches_nothing() {
        let filter = EventFilter::from_options(&options(Filter::StreamIdentifier(expression(
            "",
            &["ord", "cust"],
        ))))
        .unwrap();
        assert!(filter.accepts(&event("orders-1", "A")));
        assert!(filter.accepts(&event("customer-1", "A")));
        assert!(!filter.accepts(&event("x-orders", "A")));

        let none =
            EventFilter::from_options(&options(Filter::EventType(expression("", &[])))).unwrap();
        assert!(!none.accepts(&event("orders-1", "A")));
    }

    #[test]
    fn bad_regex_and_missing_filter_are_invalid_arguments() {
        let bad = EventFilter::from_options(&options(Filter::EventType(expression("(", &[]))));
        assert_eq!(bad.unwrap_err().code(), Code::InvalidArgument);
        let missing = EventFilter::from_options(&FilterOptions::default());
        assert_eq!(missing.unwrap_err().code(), Code::InvalidArgument);
    }

    #[test]
    fn filter_can_cross_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<EventFilter>();
    }
}
