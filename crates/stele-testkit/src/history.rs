//! [`History`]: what clients asked for and were told, checked against what every node of a
//! cluster ended up with.
//!
//! Writers record each append attempt ([`History::begin`], then [`History::finish`] with an
//! [`Outcome`]); after the faults, the test reads `$all` from every node ([`ReadEvent`]) and
//! calls [`History::verify`]. The checks are the promises a client relies on: an
//! acknowledged append is on every node exactly once at the position it was told; a rejected
//! append is nowhere; an append whose outcome the client could not learn is whole or absent;
//! streams have no holes; every node has the same `$all`; and an append acknowledged before
//! another began is ordered before it.
//!
//! Real time is a logical clock: one counter ticks at every `begin` and `finish`, so "A was
//! acknowledged before B began" is `A.finished_at < B.started_at`, exact and reproducible.
//! What it deliberately does not check: event contents (other tests do), and reads made
//! while the faults were going on.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use uuid::Uuid;

/// At most this many errors of one kind are reported, so that one broken node does not
/// bury the others in thousands of lines.
const MAX_ERRORS_PER_CHECK: usize = 20;

/// The expected revision an append was sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    Any,
    NoStream,
    StreamExists,
    /// The revision of the stream's last event.
    Exact(u64),
}

impl From<Expected> for kurrentdb::StreamState {
    fn from(expected: Expected) -> kurrentdb::StreamState {
        match expected {
            Expected::Any => kurrentdb::StreamState::Any,
            Expected::NoStream => kurrentdb::StreamState::NoStream,
            Expected::StreamExists => kurrentdb::StreamState::StreamExists,
            Expected::Exact(revision) => kurrentdb::StreamState::StreamRevision(revision),
        }
    }
}

/// What the client learned about one append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server acknowledged it: `position` is the position of its last event, and
    /// `next_expected_version` the revision of its last event.
    Acked {
        position: u64,
        next_expected_version: u64,
    },
    /// The server refused it and definitely wrote nothing (for example a wrong expected
    /// version).
    Failed(String),
    /// The client cannot tell (timeout, connection lost, server error): it may or may not
    /// have been written, but if it was, it was written whole and once.
    Unknown(String),
}

impl Outcome {
    /// Classifies a `kurrentdb` append result. Only answers that say the server decided
    /// against the append count as [`Outcome::Failed`]; everything else — including "not
    /// leader", which a leader stepping down may give for an entry it already replicated —
    /// is [`Outcome::Unknown`].
    pub fn from_append(result: &kurrentdb::Result<kurrentdb::WriteResult>) -> Outcome {
        match result {
            Ok(write) => Outcome::Acked {
                position: write.position.commit,
                next_expected_version: write.next_expected_version,
            },
            Err(
                e @ (kurrentdb::Error::WrongExpectedVersion { .. }
                | kurrentdb::Error::ResourceDeleted
                | kurrentdb::Error::AccessDenied),
            ) => Outcome::Failed(e.to_string()),
            Err(e) => Outcome::Unknown(format!("{e:?}")),
        }
    }

    pub fn is_acked(&self) -> bool {
        matches!(self, Outcome::Acked { .. })
    }
}

/// One append attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Append {
    pub stream: String,
    pub event_ids: Vec<Uuid>,
    pub expected: Expected,
    /// Logical time the append was sent.
    pub started_at: u64,
    /// Logical time the outcome was learned; `None` while in flight (verified as unknown).
    pub finished_at: Option<u64>,
    pub outcome: Option<Outcome>,
}

/// A handle for an append in flight, returned by [`History::begin`].
#[derive(Debug)]
#[must_use = "finish the append with History::finish"]
pub struct Pending {
    index: usize,
}

/// One event as a node's `$all` read returned it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReadEvent {
    pub stream: String,
    pub revision: u64,
    pub position: u64,
    pub event_id: Uuid,
}

/// Counts from a successful [`History::verify`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    pub appends: usize,
    pub acked: usize,
    pub failed: usize,
    pub unknown: usize,
    /// Unknown appends found written (on every node, since nodes agree).
    pub unknown_present: usize,
    /// User events in each node's `$all`.
    pub events: usize,
    pub nodes: usize,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} appends: {} acked, {} failed, {} unknown ({} of them written); \
             {} events on each of {} nodes",
            self.appends,
            self.acked,
            self.failed,
            self.unknown,
            self.unknown_present,
            self.events,
            self.nodes
        )
    }
}

/// The record of every append attempt of a test. Shared by concurrent writers (`&History`
/// or `Arc<History>`).
#[derive(Debug, Default)]
pub struct History {
    clock: AtomicU64,
    appends: Mutex<Vec<Append>>,
    /// Streams a client tried to soft-delete: after a soft delete `NoStream` holds again at
    /// the next revision, so only `Any` and exact revisions are checked for them.
    soft_deleted: Mutex<HashSet<String>>,
}

impl History {
    pub fn new() -> History {
        History::default()
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }

    /// Records that an append of `event_ids` to `stream` is about to be sent. Call it just
    /// before sending, and [`History::finish`] as soon as the outcome is known.
    pub fn begin(&self, stream: &str, event_ids: Vec<Uuid>, expected: Expected) -> Pending {
        let mut appends = self.appends.lock().expect("history lock");
        let started_at = self.tick();
        appends.push(Append {
            stream: stream.to_string(),
            event_ids,
            expected,
            started_at,
            finished_at: None,
            outcome: None,
        });
        Pending {
            index: appends.len() - 1,
        }
    }

    /// Records the outcome of an append.
    pub fn finish(&self, pending: Pending, outcome: Outcome) {
        let mut appends = self.appends.lock().expect("history lock");
        let finished_at = self.tick();
        let append = &mut appends[pending.index];
        append.finished_at = Some(finished_at);
        append.outcome = Some(outcome);
    }

    /// Records a whole append at once (for crafted histories and sequential writers).
    pub fn record(&self, stream: &str, event_ids: Vec<Uuid>, expected: Expected, outcome: Outcome) {
        let pending = self.begin(stream, event_ids, expected);
        self.finish(pending, outcome);
    }

    /// Records that a soft delete of `stream` was sent (whatever its outcome).
    pub fn note_soft_delete(&self, stream: &str) {
        self.soft_deleted
            .lock()
            .expect("history lock")
            .insert(stream.to_string());
    }

    /// A copy of every append recorded so far.
    pub fn appends(&self) -> Vec<Append> {
        self.appends.lock().expect("history lock").clone()
    }

    /// Checks the history against each node's full `$all` (events of streams starting with
    /// `$` are ignored). Returns counts, or every broken promise found.
    pub fn verify(&self, node_reads: &[(String, Vec<ReadEvent>)]) -> Result<Report, Vec<String>> {
        let appends = self.appends();
        let mut errors = Errors::default();

        let nodes: Vec<(&str, Vec<&ReadEvent>)> = node_reads
            .iter()
            .map(|(name, events)| {
                (
                    name.as_str(),
                    events
                        .iter()
                        .filter(|e| !e.stream.starts_with('$'))
                        .collect(),
                )
            })
            .collect();
        if nodes.is_empty() {
            errors.push("history", "no node reads to verify against".to_string());
        }

        // Which append each event id belongs to.
        let mut owner: HashMap<Uuid, usize> = HashMap::new();
        for (index, append) in appends.iter().enumerate() {
            if append.event_ids.is_empty() {
                errors.push(
                    "history",
                    format!("append #{index} to {} has no events", append.stream),
                );
            }
            for id in &append.event_ids {
                if let Some(other) = owner.insert(*id, index) {
                    errors.push(
                        "history",
                        format!("event {id} is in appends #{other} and #{index}"),
                    );
                }
            }
        }

        let mut report = Report {
            appends: appends.len(),
            nodes: nodes.len(),
            ..Report::default()
        };
        for append in &appends {
            match &append.outcome {
                Some(Outcome::Acked { .. }) => report.acked += 1,
                Some(Outcome::Failed(_)) => report.failed += 1,
                Some(Outcome::Unknown(_)) | None => report.unknown += 1,
            }
        }

        let soft_deleted = self.soft_deleted.lock().expect("history lock").clone();
        for (name, events) in &nodes {
            check_node(name, events, &appends, &owner, &soft_deleted, &mut errors);
        }
        check_nodes_agree(&nodes, &mut errors);

        if let Some((_, events)) = nodes.first() {
            report.events = events.len();
            let present: HashSet<Uuid> = events.iter().map(|e| e.event_id).collect();
            report.unknown_present = appends
                .iter()
                .filter(|a| !matches!(a.outcome, Some(Outcome::Acked { .. } | Outcome::Failed(_))))
                .filter(|a| a.event_ids.iter().any(|id| present.contains(id)))
                .count();
        }

        errors.into_result(report)
    }
}

/// Checks what a subscription to `$all` delivered, `(position, event id)` in order, against a
/// node's full `$all`: it must be exactly that sequence (or, with `prefix`, a prefix of it) —
/// no gap, no duplicate, nothing reordered, nothing that is not in the log.
pub fn verify_delivery(
    name: &str,
    delivered: &[(u64, Uuid)],
    all: &[ReadEvent],
    prefix: bool,
) -> Result<(), Vec<String>> {
    let mut errors = Errors::default();
    let mut seen: HashSet<Uuid> = HashSet::new();
    for window in delivered.windows(2) {
        if window[1].0 <= window[0].0 {
            errors.push(
                "subscription-order",
                format!(
                    "{name}: position {} delivered after {}",
                    window[1].0, window[0].0
                ),
            );
        }
    }
    for (position, id) in delivered {
        if !seen.insert(*id) {
            errors.push(
                "subscription-duplicate",
                format!("{name}: event {id} at {position} delivered twice"),
            );
        }
    }
    let expected: Vec<(u64, Uuid)> = all.iter().map(|e| (e.position, e.event_id)).collect();
    match delivered.iter().zip(&expected).position(|(a, b)| a != b) {
        Some(at) => errors.push(
            "subscription-gap",
            format!(
                "{name}: delivered {:?} at index {at} where $all has {:?}",
                delivered[at], expected[at]
            ),
        ),
        None if delivered.len() > expected.len() => errors.push(
            "subscription-extra",
            format!(
                "{name}: delivered {} events, $all has {}",
                delivered.len(),
                expected.len()
            ),
        ),
        None if !prefix && delivered.len() < expected.len() => errors.push(
            "subscription-gap",
            format!(
                "{name}: delivered {} events, $all has {}; missing from {:?}",
                delivered.len(),
                expected.len(),
                expected[delivered.len()]
            ),
        ),
        None => {}
    }
    errors.into_result(())
}

/// Errors grouped by check, each group capped at [`MAX_ERRORS_PER_CHECK`].
#[derive(Default)]
struct Errors {
    by_check: BTreeMap<&'static str, (usize, Vec<String>)>,
}

impl Errors {
    fn push(&mut self, check: &'static str, message: String) {
        let (count, messages) = self.by_check.entry(check).or_default();
        *count += 1;
        if messages.len() < MAX_ERRORS_PER_CHECK {
            messages.push(format!("[{check}] {message}"));
        }
    }

    fn into_result<T>(self, report: T) -> Result<T, Vec<String>> {
        if self.by_check.is_empty() {
            return Ok(report);
        }
        let mut all = Vec::new();
        for (check, (count, messages)) in self.by_check {
            all.extend(messages);
            if count > MAX_ERRORS_PER_CHECK {
                all.push(format!(
                    "[{check}] ... and {} more",
                    count - MAX_ERRORS_PER_CHECK
                ));
            }
        }
        Err(all)
    }
}

/// Everything that can be checked on one node's `$all` alone.
fn check_node(
    node: &str,
    events: &[&ReadEvent],
    appends: &[Append],
    owner: &HashMap<Uuid, usize>,
    soft_deleted: &HashSet<String>,
    errors: &mut Errors,
) {
    // Where each event is: index in $all.
    let mut at: HashMap<Uuid, usize> = HashMap::new();
    let mut next_revision: HashMap<&str, u64> = HashMap::new();
    let mut previous_position: Option<u64> = None;
    for (index, event) in events.iter().enumerate() {
        if let Some(first) = at.insert(event.event_id, index) {
            errors.push(
                "duplicate",
                format!(
                    "{node}: event {} appears twice in $all (at {} and {}; positions {} and {})",
                    event.event_id, first, index, events[first].position, event.position
                ),
            );
        }
        if let Some(previous) = previous_position {
            if event.position <= previous {
                errors.push(
                    "order",
                    format!(
                        "{node}: $all position {} at index {index} does not follow {previous}",
                        event.position
                    ),
                );
            }
        }
        previous_position = Some(event.position);
        let expected = next_revision.entry(event.stream.as_str()).or_insert(0);
        if event.revision != *expected {
            errors.push(
                "gap",
                format!(
                    "{node}: stream {} has revision {} where {} was due (event {} at {})",
                    event.stream, event.revision, expected, event.event_id, event.position
                ),
            );
        }
        *expected = event.revision + 1;
        match owner.get(&event.event_id) {
            None => errors.push(
                "unknown-event",
                format!(
                    "{node}: event {} in {} at {} was never appended by the test",
                    event.event_id, event.stream, event.position
                ),
            ),
            Some(&a) if appends[a].stream != event.stream => errors.push(
                "wrong-stream",
                format!(
                    "{node}: event {} is in {} but was appended to {}",
                    event.event_id, event.stream, appends[a].stream
                ),
            ),
            Some(_) => {}
        }
    }

    for (index, append) in appends.iter().enumerate() {
        let found: Vec<Option<&ReadEvent>> = append
            .event_ids
            .iter()
            .map(|id| at.get(id).map(|&i| events[i]))
            .collect();
        let present = found.iter().filter(|f| f.is_some()).count();
        let describe = || {
            format!(
                "append #{index} to {} ({} events, first {})",
                append.stream,
                append.event_ids.len(),
                append
                    .event_ids
                    .first()
                    .map(Uuid::to_string)
                    .unwrap_or_default()
            )
        };
        match &append.outcome {
            Some(Outcome::Acked {
                position,
                next_expected_version,
            }) => {
                if present != append.event_ids.len() {
                    errors.push(
                        "lost",
                        format!(
                            "{node}: acknowledged {} is missing {} of its events",
                            describe(),
                            append.event_ids.len() - present
                        ),
                    );
                    continue;
                }
                let last = found.last().copied().flatten().expect("all present");
                if last.position != *position {
                    errors.push(
                        "position",
                        format!(
                            "{node}: acknowledged {} at position {position}, its last event is at {}",
                            describe(),
                            last.position
                        ),
                    );
                }
                if last.revision != *next_expected_version {
                    errors.push(
                        "revision",
                        format!(
                            "{node}: acknowledged {} with next expected version \
                             {next_expected_version}, its last event has revision {}",
                            describe(),
                            last.revision
                        ),
                    );
                }
            }
            Some(Outcome::Failed(reason)) => {
                if present > 0 {
                    errors.push(
                        "failed-present",
                        format!(
                            "{node}: {} failed ({reason}) but {present} of its events are in $all",
                            describe()
                        ),
                    );
                }
            }
            Some(Outcome::Unknown(_)) | None => {
                if present != 0 && present != append.event_ids.len() {
                    errors.push(
                        "torn",
                        format!(
                            "{node}: {} (outcome unknown) is partly written: {present} of {} events",
                            describe(),
                            append.event_ids.len()
                        ),
                    );
                }
            }
        }
        // A written append honoured its expected revision. Revisions are counts unless the
        // stream was soft-deleted: then it has no stream again from its next revision on.
        if let Some(first) = found.first().copied().flatten() {
            let soft = soft_deleted.contains(&append.stream);
            let honoured = match append.expected {
                Expected::Any => true,
                Expected::NoStream => first.revision == 0 || soft,
                Expected::StreamExists => first.revision > 0,
                Expected::Exact(revision) => first.revision == revision + 1,
            };
            if !honoured {
                errors.push(
                    "expected-version",
                    format!(
                        "{node}: {} was sent expecting {:?} but its first event has revision {}",
                        describe(),
                        append.expected,
                        first.revision
                    ),
                );
            }
        }
        // An append's events are consecutive in its stream.
        if present == append.event_ids.len() && present > 1 {
            let revisions: Vec<u64> = found.iter().flatten().map(|e| e.revision).collect();
            if revisions.windows(2).any(|w| w[1] != w[0] + 1) {
                errors.push(
                    "torn",
                    format!(
                        "{node}: {} is not consecutive in its stream: revisions {revisions:?}",
                        describe()
                    ),
                );
            }
        }
    }

    check_real_time_order(node, &at, events, appends, errors);
}

/// If A was acknowledged before B began, every event of B comes after A's position.
fn check_real_time_order(
    node: &str,
    at: &HashMap<Uuid, usize>,
    events: &[&ReadEvent],
    appends: &[Append],
    errors: &mut Errors,
) {
    // Acknowledged appends by the time they finished, with the highest position
    // acknowledged up to then (and which append had it).
    let mut acked: Vec<(u64, u64, usize)> = appends
        .iter()
        .enumerate()
        .filter_map(|(index, a)| match (&a.outcome, a.finished_at) {
            (Some(Outcome::Acked { position, .. }), Some(finished)) => {
                Some((finished, *position, index))
            }
            _ => None,
        })
        .collect();
    acked.sort_unstable();
    let mut prefix_max: Vec<(u64, usize)> = Vec::with_capacity(acked.len());
    for &(_, position, index) in &acked {
        let best = match prefix_max.last() {
            Some(&(max, max_index)) if max >= position => (max, max_index),
            _ => (position, index),
        };
        prefix_max.push(best);
    }

    for (index, append) in appends.iter().enumerate() {
        let Some(first_position) = append
            .event_ids
            .iter()
            .filter_map(|id| at.get(id).map(|&i| events[i].position))
            .min()
        else {
            continue;
        };
        // Acknowledged appends that finished before this one started.
        let before = acked.partition_point(|&(finished, _, _)| finished < append.started_at);
        if before == 0 {
            continue;
        }
        let (max_position, max_index) = prefix_max[before - 1];
        if max_position >= first_position {
            errors.push(
                "real-time",
                format!(
                    "{node}: append #{max_index} to {} was acknowledged at position \
                     {max_position} before append #{index} to {} began, but the latter has an \
                     event at {first_position}",
                    appends[max_index].stream, append.stream
                ),
            );
        }
    }
}

/// Every node's `$all` is the same sequence of (event, stream, revision, position).
fn check_nodes_agree(nodes: &[(&str, Vec<&ReadEvent>)], errors: &mut Errors) {
    let Some((first_name, first)) = nodes.first() else {
        return;
    };
    for (name, events) in &nodes[1..] {
        let common = first.len().min(events.len());
        if let Some(i) = (0..common).find(|&i| first[i] != events[i]) {
            errors.push(
                "divergent",
                format!(
                    "{name} differs from {first_name} at $all index {i}: {:?} vs {:?}",
                    events[i], first[i]
                ),
            );
        } else if first.len() != events.len() {
            errors.push(
                "divergent",
                format!(
                    "{name} has {} user events in $all, {first_name} has {} (same prefix)",
                    events.len(),
                    first.len()
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny fake cluster log: appends events and hands out positions like a server.
    struct Log {
        events: Vec<ReadEvent>,
        next_position: u64,
        revisions: HashMap<String, u64>,
    }

    impl Log {
        fn new() -> Log {
            Log {
                events: Vec::new(),
                next_position: 100,
                revisions: HashMap::new(),
            }
        }

        /// Writes the events and returns the Acked outcome a server would give.
        fn write(&mut self, stream: &str, ids: &[Uuid]) -> Outcome {
            for id in ids {
                let revision = self.revisions.entry(stream.to_string()).or_insert(0);
                self.events.push(ReadEvent {
                    stream: stream.to_string(),
                    revision: *revision,
                    position: self.next_position,
                    event_id: *id,
                });
                *revision += 1;
                self.next_position += 10;
            }
            let last = self.events.last().unwrap();
            Outcome::Acked {
                position: last.position,
                next_expected_version: last.revision,
            }
        }
    }

    fn ids(n: usize) -> Vec<Uuid> {
        (0..n).map(|_| Uuid::new_v4()).collect()
    }

    fn three(events: &[ReadEvent]) -> Vec<(String, Vec<ReadEvent>)> {
        ["n0", "n1", "n2"]
            .iter()
            .map(|n| (n.to_string(), events.to_vec()))
            .collect()
    }

    fn expect_error(result: Result<Report, Vec<String>>, check: &str) {
        match result {
            Ok(report) => panic!("expected a [{check}] error, verify passed: {report}"),
            Err(errors) => assert!(
                errors.iter().any(|e| e.starts_with(&format!("[{check}]"))),
                "expected a [{check}] error, got {errors:#?}"
            ),
        }
    }

    /// A good history: two streams, acked, failed, unknown-written, unknown-absent, in
    /// flight; plus a system stream event to be ignored.
    fn good() -> (History, Log) {
        let history = History::new();
        let mut log = Log::new();
        let a = ids(2);
        let outcome = log.write("a", &a);
        history.record("a", a, Expected::NoStream, outcome);
        let b = ids(1);
        let outcome = log.write("b", &b);
        history.record("b", b, Expected::Any, outcome);
        history.record(
            "a",
            ids(1),
            Expected::Exact(0),
            Outcome::Failed("wrong expected version".into()),
        );
        let unknown_written = ids(3);
        log.write("a", &unknown_written);
        history.record(
            "a",
            unknown_written,
            Expected::Exact(1),
            Outcome::Unknown("timeout".into()),
        );
        history.record(
            "b",
            ids(2),
            Expected::Exact(0),
            Outcome::Unknown("connection lost".into()),
        );
        let c = ids(1);
        let pending = history.begin("c", c.clone(), Expected::Any);
        let outcome = log.write("c", &c);
        history.finish(pending, outcome);
        let _in_flight = history.begin("c", ids(1), Expected::Exact(0));
        log.events.push(ReadEvent {
            stream: "$stats-127.0.0.1:2113".into(),
            revision: 0,
            position: 5,
            event_id: Uuid::new_v4(),
        });
        (history, log)
    }

    #[test]
    fn a_subscription_must_deliver_exactly_all() {
        let mut log = Log::new();
        log.write("a", &ids(4));
        let all = &log.events;
        let exact: Vec<(u64, Uuid)> = all.iter().map(|e| (e.position, e.event_id)).collect();
        assert!(verify_delivery("s", &exact, all, false).is_ok());
        assert!(verify_delivery("s", &exact[..2], all, true).is_ok());
        let check = |delivered: Vec<(u64, Uuid)>, prefix: bool, check: &str| {
            let errors = verify_delivery("s", &delivered, all, prefix).unwrap_err();
            assert!(
                errors.iter().any(|e| e.starts_with(&format!("[{check}]"))),
                "expected [{check}]: {errors:?}"
            );
        };
        check(exact[..3].to_vec(), false, "subscription-gap");
        check(vec![exact[0], exact[2], exact[3]], true, "subscription-gap");
        check(
            vec![exact[0], exact[1], exact[1]],
            true,
            "subscription-duplicate",
        );
        check(vec![exact[1], exact[0]], true, "subscription-order");
        let mut extra = exact.clone();
        extra.push((1_000, Uuid::new_v4()));
        check(extra, false, "subscription-extra");
    }

    #[test]
    fn an_append_written_against_its_expected_revision_is_caught() {
        let history = History::new();
        let mut log = Log::new();
        let a = ids(1);
        let outcome = log.write("a", &a);
        history.record("a", a, Expected::Any, outcome);
        // Acknowledged as if the stream had been at revision 4: it was at 0.
        let b = ids(1);
        let outcome = log.write("a", &b);
        history.record("a", b, Expected::Exact(4), outcome);
        expect_error(history.verify(&three(&log.events)), "expected-version");
        // The same for an unknown outcome that was written, and for NoStream.
        let history = History::new();
        let mut log = Log::new();
        log.write("x", &ids(1));
        let c = ids(1);
        log.write("x", &c);
        history.record(
            "x",
            c,
            Expected::NoStream,
            Outcome::Unknown("timeout".into()),
        );
        let result = history.verify(&three(&log.events));
        expect_error(result, "expected-version");
    }

    #[test]
    fn a_consistent_history_passes_with_counts() {
        let (history, log) = good();
        let report = history.verify(&three(&log.events)).expect("verify passes");
        assert_eq!(
            report,
            Report {
                appends: 7,
                acked: 3,
                failed: 1,
                unknown: 3,
                unknown_present: 1,
                events: 7,
                nodes: 3,
            }
        );
    }

    #[test]
    fn catches_a_lost_acknowledged_append() {
        let (history, mut log) = good();
        let lost = ids(1);
        let outcome = log.write("d", &lost);
        history.record("d", lost, Expected::Any, outcome);
        log.events.pop();
        expect_error(history.verify(&three(&log.events)), "lost");
    }

    #[test]
    fn catches_an_ack_lost_on_one_node_only() {
        let (history, log) = good();
        let mut reads = three(&log.events);
        let acked_c = history.appends()[5].event_ids[0];
        reads[2].1.retain(|e| e.event_id != acked_c);
        let errors = history.verify(&reads).unwrap_err();
        assert!(
            errors.iter().any(|e| e.starts_with("[lost] n2")),
            "{errors:#?}"
        );
        assert!(
            errors.iter().any(|e| e.starts_with("[divergent]")),
            "{errors:#?}"
        );
    }

    #[test]
    fn catches_a_duplicate() {
        let (history, mut log) = good();
        // b's acknowledged event, written a second time as b@1.
        let mut dup = log
            .events
            .iter()
            .find(|e| e.stream == "b")
            .expect("b has an event")
            .clone();
        dup.position = log.next_position;
        dup.revision = 1;
        log.events.push(dup);
        expect_error(history.verify(&three(&log.events)), "duplicate");
    }

    #[test]
    fn catches_a_failed_append_that_was_written() {
        let (history, mut log) = good();
        let failed = history.appends()[2].event_ids.clone();
        log.write("a", &failed);
        expect_error(history.verify(&three(&log.events)), "failed-present");
    }

    #[test]
    fn catches_a_torn_unknown_append() {
        let history = History::new();
        let mut log = Log::new();
        let torn = ids(3);
        log.write("a", &torn[..2]);
        history.record("a", torn, Expected::Any, Outcome::Unknown("timeout".into()));
        expect_error(history.verify(&three(&log.events)), "torn");
    }

    #[test]
    fn catches_a_divergent_node() {
        let (history, log) = good();
        let mut reads = three(&log.events);
        // Same events, but n1 put two of them the other way round (positions swapped).
        let (i, j) = (2, 3);
        let (pi, pj) = (reads[1].1[i].position, reads[1].1[j].position);
        reads[1].1[i].position = pj;
        reads[1].1[j].position = pi;
        reads[1].1.swap(i, j);
        expect_error(history.verify(&reads), "divergent");
    }

    #[test]
    fn catches_a_node_that_is_behind() {
        let (history, log) = good();
        let mut reads = three(&log.events);
        let last_user_event = reads[0]
            .1
            .iter()
            .rposition(|e| !e.stream.starts_with('$'))
            .expect("user events");
        reads[0].1.remove(last_user_event);
        expect_error(history.verify(&reads), "divergent");
    }

    #[test]
    fn catches_a_revision_gap() {
        let (history, mut log) = good();
        let first_of_a = log
            .events
            .iter()
            .position(|e| e.stream == "a")
            .expect("a has events");
        // Event a@1 disappears, so a@2 follows a@0; the acked append is lost too.
        log.events.remove(first_of_a + 1);
        expect_error(history.verify(&three(&log.events)), "gap");
    }

    #[test]
    fn catches_a_wrong_acknowledged_position() {
        let history = History::new();
        let mut log = Log::new();
        let a = ids(1);
        log.write("a", &a);
        history.record(
            "a",
            a,
            Expected::Any,
            Outcome::Acked {
                position: 12345,
                next_expected_version: 0,
            },
        );
        expect_error(history.verify(&three(&log.events)), "position");
    }

    #[test]
    fn catches_a_real_time_order_violation() {
        let history = History::new();
        let mut log = Log::new();
        // B is written first (lower position) but only started after A was acknowledged.
        let (a, b) = (ids(1), ids(1));
        let b_outcome = log.write("b", &b);
        let a_outcome = log.write("a", &a);
        history.record("a", a, Expected::Any, a_outcome);
        history.record("b", b, Expected::Any, b_outcome);
        expect_error(history.verify(&three(&log.events)), "real-time");
    }

    #[test]
    fn concurrent_appends_may_be_ordered_either_way() {
        let history = History::new();
        let mut log = Log::new();
        let (a, b) = (ids(1), ids(1));
        let pa = history.begin("a", a.clone(), Expected::Any);
        let pb = history.begin("b", b.clone(), Expected::Any);
        let b_outcome = log.write("b", &b);
        let a_outcome = log.write("a", &a);
        history.finish(pa, a_outcome);
        history.finish(pb, b_outcome);
        history.verify(&three(&log.events)).expect("verify passes");
    }

    #[test]
    fn catches_an_event_the_test_never_wrote() {
        let (history, mut log) = good();
        log.write("a", &ids(1));
        expect_error(history.verify(&three(&log.events)), "unknown-event");
    }
}
