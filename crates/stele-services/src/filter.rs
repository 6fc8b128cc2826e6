//! The server-side filter of a `$all` read, catch-up or persistent subscription
//! (`ReadReq.Options.FilterOptions` on the wire, PROTOCOL.md §4.1; the gRPC adapter builds a
//! [`FilterSpec`] from it): on the stream name or on the event type, by regular expression or by a list of
//! prefixes. As in EventStoreDB, a non-empty regex wins over the prefixes; an empty prefix
//! list matches nothing.
//!
//! **Bounded cost.** A regex runs on the `regex` crate, whose matching is linear in the text,
//! whenever the pattern compiles with it. Only a pattern that needs what a linear engine
//! cannot do (look-around, backreferences) runs on `fancy-regex`: the Python client's
//! default `$all` filter, `^(?!(\$.+$|PersistentConfig\d+$))` on the event type, needs
//! negative lookahead. Backtracking is then capped at [`BACKTRACK_LIMIT`] steps per match,
//! and a match that reaches the cap counts as **no match** (for reads, catch-up and
//! persistent subscriptions alike): a pathological pattern such as `(a+)+(?=b)` costs its
//! own subscription a bounded amount per event and never fails or slows anyone else.
//! [`EventFilter::is_costly`] tells callers to run such a filter off the async workers.
//! A regex matches anywhere in the text unless anchored, like .NET's `Regex.IsMatch`.
//!
//! The window and checkpoint multiplier only shape subscriptions, so reads ignore them.

use std::sync::Arc;

use stele_core::RecordedEvent;

use crate::access::ReadableStreams;

/// Backtracking steps one match of a look-around or backreference pattern may take (see
/// the module docs). fancy-regex's own default is 1,000,000, about 15 ms of CPU for
/// `(a+)+(?=b)` against a 30-letter name; this keeps a match under about 0.2 ms, and is
/// far above what ordinary look-ahead filters (the Python client's default) take on names
/// and event types.
pub const BACKTRACK_LIMIT: usize = 10_000;

#[derive(Debug)]
pub struct EventFilter {
    spec: FilterSpec,
    matcher: Matcher,
    /// The streams the reader may see (issue 13): set for a `$all` reader who does not
    /// bypass stream ACLs; an event of another stream never passes, whatever the spec says.
    readable: Option<Arc<ReadableStreams>>,
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

#[derive(Debug, Clone)]
enum Matcher {
    /// Linear time in the text.
    Linear(regex::Regex),
    /// Look-around or backreferences: backtracking, capped at [`BACKTRACK_LIMIT`].
    Backtracking(fancy_regex::Regex),
    Prefixes(Vec<String>),
    /// No client filter: only [`EventFilter::readable`] decides.
    Everything,
}

impl EventFilter {
    /// Builds a filter from its stored form; the error names a bad regular expression.
    pub fn from_spec(spec: FilterSpec) -> Result<EventFilter, String> {
        let matcher = if spec.regex.is_empty() {
            Matcher::Prefixes(spec.prefixes.clone())
        } else {
            compile(&spec.regex)?
        };
        Ok(EventFilter {
            spec,
            matcher,
            readable: None,
        })
    }

    /// `filter` (or, without one, every event) restricted to the streams `readable` allows.
    pub fn restricted(filter: Option<&EventFilter>, readable: Arc<ReadableStreams>) -> EventFilter {
        match filter {
            Some(filter) => EventFilter {
                spec: filter.spec.clone(),
                matcher: filter.matcher.clone(),
                readable: Some(readable),
            },
            None => EventFilter {
                spec: FilterSpec {
                    on: FilterField::StreamName,
                    regex: String::new(),
                    prefixes: Vec::new(),
                },
                matcher: Matcher::Everything,
                readable: Some(readable),
            },
        }
    }

    /// Whether matching may backtrack (up to [`BACKTRACK_LIMIT`] steps per event): such a
    /// filter is best run on the blocking pool rather than on an async worker.
    pub fn is_costly(&self) -> bool {
        // Checking a stream's ACL reads the log.
        matches!(self.matcher, Matcher::Backtracking(_)) || self.readable.is_some()
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
            && self
                .readable
                .as_ref()
                .is_none_or(|readable| readable.may_read(event.record.stream.as_str()))
    }
}

/// The linear engine when the pattern allows it, else the bounded backtracking one.
fn compile(pattern: &str) -> Result<Matcher, String> {
    if let Ok(linear) = regex::Regex::new(pattern) {
        return Ok(Matcher::Linear(linear));
    }
    fancy_regex::RegexBuilder::new(pattern)
        .backtrack_limit(BACKTRACK_LIMIT)
        .build()
        .map(Matcher::Backtracking)
        .map_err(|e| format!("'{pattern}' is not a valid regular expression: {e}"))
}

impl Matcher {
    fn matches(&self, text: &str) -> bool {
        match self {
            Matcher::Linear(regex) => regex.is_match(text),
            // A regex that exhausts its backtracking budget matches nothing rather than
            // failing the whole read or subscription.
            Matcher::Backtracking(regex) => regex.is_match(text).unwrap_or(false),
            Matcher::Prefixes(prefixes) => prefixes.iter().any(|p| text.starts_with(p.as_str())),
            Matcher::Everything => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use stele_core::{ContentType, EventRecord, LogPosition, StreamName, StreamRevision};

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

    fn filter(on: FilterField, regex: &str, prefixes: &[&str]) -> EventFilter {
        EventFilter::from_spec(FilterSpec {
            on,
            regex: regex.to_owned(),
            prefixes: prefixes.iter().map(|p| (*p).to_owned()).collect(),
        })
        .unwrap()
    }

    #[test]
    fn python_default_exclude_filter_needs_lookahead() {
        let filter = filter(
            FilterField::EventType,
            r"^(?!(\$.+$|PersistentConfig\d+$))",
            &[],
        );
        assert!(filter.accepts(&event("orders-1", "OrderPlaced")));
        assert!(!filter.accepts(&event("$$orders-1", "$metadata")));
        assert!(!filter.accepts(&event("$persistentSubscriptionConfig", "PersistentConfig1")));
        assert!(filter.accepts(&event("x", "PersistentConfigX")));
    }

    #[test]
    fn regex_wins_over_prefixes_and_matches_anywhere() {
        let filter = filter(FilterField::StreamName, "der", &["zzz"]);
        assert!(filter.accepts(&event("orders-1", "A")));
        assert!(!filter.accepts(&event("zzz-1", "A")));
    }

    #[test]
    fn prefixes_match_any_and_an_empty_list_matches_nothing() {
        let prefixes = filter(FilterField::StreamName, "", &["ord", "cust"]);
        assert!(prefixes.accepts(&event("orders-1", "A")));
        assert!(prefixes.accepts(&event("customer-1", "A")));
        assert!(!prefixes.accepts(&event("x-orders", "A")));

        let none = filter(FilterField::EventType, "", &[]);
        assert!(!none.accepts(&event("orders-1", "A")));
    }

    #[test]
    fn a_bad_regex_is_named_in_the_error() {
        let bad = EventFilter::from_spec(FilterSpec {
            on: FilterField::EventType,
            regex: "(".to_owned(),
            prefixes: Vec::new(),
        });
        assert!(bad
            .unwrap_err()
            .contains("'(' is not a valid regular expression"));
    }

    /// A filter with nested quantifiers and look-ahead cost ~15 ms per event (fancy-regex's
    /// default budget of a million steps), so 100 live subscriptions with it made 40 appends
    /// take 47 s: its backtracking must be capped, and patterns a linear engine can run
    /// must run on one.
    #[test]
    fn pathological_patterns_cost_a_bounded_time_per_event() {
        let lookahead = filter(FilterField::EventType, "(a+)+(?=b)", &[]);
        assert!(lookahead.is_costly());
        let nested = filter(FilterField::EventType, "^(a+)+$", &[]);
        assert!(!nested.is_costly(), "no look-around: the linear engine");

        let hostile = event("s", &format!("{}c", "a".repeat(40)));
        let started = std::time::Instant::now();
        for _ in 0..100 {
            // Hits the budget: no match.
            assert!(!lookahead.accepts(&hostile));
            assert!(!nested.accepts(&hostile));
        }
        let per_event = started.elapsed() / 100;
        // Without a budget, 40 `a`s cost (a+)+ about 2^40 steps: hours, not milliseconds. The
        // bound is loose so that a loaded CI machine never trips it; it still tells the two
        // apart by orders of magnitude.
        assert!(
            per_event < std::time::Duration::from_millis(250),
            "{per_event:?} per event"
        );
        // A real match still matches.
        assert!(lookahead.accepts(&event("s", "aaab")));
        assert!(nested.accepts(&event("s", "aaaa")));
    }

    #[test]
    fn filter_can_cross_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<EventFilter>();
    }
}
