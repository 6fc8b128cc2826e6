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
    on: Field,
    matcher: Matcher,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    StreamName,
    EventType,
}

#[derive(Debug)]
enum Matcher {
    Regex(Regex),
    Prefixes(Vec<String>),
}

impl EventFilter {
    pub fn from_options(options: &FilterOptions) -> Result<EventFilter, Status> {
        let (on, expression) = match &options.filter {
            Some(Filter::StreamIdentifier(expression)) => (Field::StreamName, expression),
            Some(Filter::EventType(expression)) => (Field::EventType, expression),
            None => return Err(status::not_a_valid("None", "FilterOneofCase")),
        };
        Ok(EventFilter {
            on,
            matcher: Matcher::from_expression(expression)?,
        })
    }

    pub fn accepts(&self, event: &RecordedEvent) -> bool {
        let text = match self.on {
            Field::StreamName => event.record.stream.as_str(),
            Field::EventType => event.record.event_type.as_str(),
        };
        self.matcher.matches(text)
    }
}

impl Matcher {
    fn from_expression(expression: &Expression) -> Result<Matcher, Status> {
        if expression.regex.is_empty() {
            return Ok(Matcher::Prefixes(expression.prefix.clone()));
        }
        Regex::new(&expression.regex)
            .map(Matcher::Regex)
            .map_err(|e| {
                status::invalid_argument(format!(
                    "'{}' is not a valid regular expression: {e}",
                    expression.regex
                ))
            })
    }

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
