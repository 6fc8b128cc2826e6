//! Writes what a projection's handler asked for: emitted events and links, results and
//! partition registrations — through the normal append path (quorum; the run-as's rights
//! for emitted streams), in source order per stream.
//!
//! **Exactly once across restarts.** Every event written carries its [`Mark`] (the epoch
//! and the source tag that caused it). A run restarts from its last checkpoint, so events
//! caused after that checkpoint may already be written by the run before (a failover, a
//! crash). Until the run passes the log's end as it was when it started (`verify_until`),
//! the first write to each stream reads that stream's last event and drops what its mark
//! already covers. The events a tag causes in one stream are written in one append, so a
//! tag is either wholly written or not at all.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use serde_json::{Map, Value};
use stele_cluster::Node;
use stele_core::access::{Principal, StreamAccess};
use stele_core::{ContentType, ExpectedRevision, ProposedEvent};
use stele_services::access::AccessControl;

use crate::handler::{Write, WriteKind};
use crate::names;
use crate::store::{self, AppendError, Mark};

/// Streams written at once, at most.
pub const MAX_WRITES_IN_FLIGHT: usize = 16;
/// Streams whose last event was checked, remembered at most (beyond, checks repeat).
const CHECKED_STREAMS_MAX: usize = 100_000;

pub(crate) struct Writer {
    node: Node,
    access: AccessControl,
    run_as: Principal,
    name: String,
    epoch: u64,
    max_batch: usize,
    /// Writes at tags up to this one may repeat an earlier run's.
    verify_until: u64,
    checked: HashMap<String, Option<u64>>,
    /// Streams tracked in `$projections-<name>-emittedstreams` (tracking on).
    tracked: Option<HashSet<String>>,
    /// Streams the run-as may write, checked once per run.
    allowed: HashSet<String>,
}

impl Writer {
    /// `tracked`: the streams already listed (tracking on), read at start.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        node: Node,
        access: AccessControl,
        run_as: Principal,
        name: String,
        epoch: u64,
        max_batch: usize,
        verify_until: u64,
        tracked: Option<HashSet<String>>,
    ) -> Writer {
        Writer {
            node,
            access,
            run_as,
            name,
            epoch,
            max_batch: max_batch.max(1),
            verify_until,
            checked: HashMap::new(),
            tracked,
            allowed: HashSet::new(),
        }
    }

    /// Writes a page's writes; `Err` faults the projection (or stops it: not leader).
    pub async fn write(&mut self, writes: Vec<Write>) -> Result<(), AppendError> {
        if writes.is_empty() {
            return Ok(());
        }
        // Per stream, in order.
        let mut order: Vec<String> = Vec::new();
        let mut by_stream: HashMap<String, Vec<Write>> = HashMap::new();
        for write in writes {
            let list = by_stream.entry(write.stream.clone()).or_insert_with(|| {
                order.push(write.stream.clone());
                Vec::new()
            });
            list.push(write);
        }
        for stream in &order {
            let first = &by_stream[stream][0];
            if first.kind == WriteKind::Emit {
                self.check_allowed(stream).await?;
                self.track(stream).await?;
            }
        }
        let mut jobs = Vec::new();
        for stream in order {
            let writes = by_stream.remove(&stream).unwrap_or_default();
            let needs_check =
                writes[0].tag <= self.verify_until && !self.checked.contains_key(&stream);
            let known = self.checked.get(&stream).copied().flatten();
            jobs.push((stream, writes, needs_check, known));
        }
        let node = self.node.clone();
        let epoch = self.epoch;
        let max_batch = self.max_batch;
        let results: Vec<Result<(String, Option<u64>), AppendError>> = stream::iter(jobs)
            .map(|(stream, writes, needs_check, known)| {
                let node = node.clone();
                async move {
                    let written = if needs_check {
                        let n = node.clone();
                        let s = stream.clone();
                        stele_cluster::blocking::spawn(move || last_mark(&n, &s, epoch))
                            .await
                            .map_err(|e| AppendError::Failed(e.to_string()))?
                            .map_err(AppendError::Failed)?
                    } else {
                        known
                    };
                    let last = writes.last().map(|w| w.tag);
                    write_stream(&node, &stream, writes, written, epoch, max_batch).await?;
                    Ok((stream, last.or(written)))
                }
            })
            .buffer_unordered(MAX_WRITES_IN_FLIGHT)
            .collect()
            .await;
        for result in results {
            let (stream, tag) = result?;
            if let Some(tag) = tag.filter(|t| *t <= self.verify_until) {
                if self.checked.len() < CHECKED_STREAMS_MAX {
                    self.checked.insert(stream, Some(tag));
                }
            } else {
                self.checked.remove(&stream);
            }
        }
        Ok(())
    }

    /// The run has passed `tag`: once past `verify_until` nothing can repeat.
    pub fn passed(&mut self, tag: u64) {
        if tag > self.verify_until && !self.checked.is_empty() {
            self.checked = HashMap::new();
        }
    }

    async fn check_allowed(&mut self, stream: &str) -> Result<(), AppendError> {
        if self.allowed.contains(stream) {
            return Ok(());
        }
        self.access
            .check_stream(&self.run_as, stream, StreamAccess::Write)
            .await
            .map_err(|_| {
                AppendError::Failed(format!(
                    "the projection runs as {} who may not write to {stream}",
                    self.run_as.name()
                ))
            })?;
        if self.allowed.len() < CHECKED_STREAMS_MAX {
            self.allowed.insert(stream.to_owned());
        }
        Ok(())
    }

    async fn track(&mut self, stream: &str) -> Result<(), AppendError> {
        let Some(tracked) = &mut self.tracked else {
            return Ok(());
        };
        if tracked.contains(stream) {
            return Ok(());
        }
        let event = store::event(names::STREAM_TRACKED, stream.to_owned(), None);
        store::append(
            &self.node,
            &names::emitted_streams_stream(&self.name),
            ExpectedRevision::Any,
            vec![event],
        )
        .await?;
        tracked.insert(stream.to_owned());
        Ok(())
    }
}

/// The tag of the stream's last event if this epoch wrote it.
fn last_mark(node: &Node, stream: &str, epoch: u64) -> Result<Option<u64>, String> {
    let last = store::read_last(node, stream, 1)?;
    Ok(last
        .first()
        .and_then(Mark::of)
        .filter(|mark| mark.epoch == epoch)
        .map(|mark| mark.tag))
}

/// Writes one stream's events, skipping tags at or below `written`, in appends of at most
/// `max_batch` events that end on a tag's last event (a tag is written whole or not at all).
async fn write_stream(
    node: &Node,
    stream: &str,
    writes: Vec<Write>,
    written: Option<u64>,
    epoch: u64,
    max_batch: usize,
) -> Result<(), AppendError> {
    let mut batch: Vec<ProposedEvent> = Vec::new();
    let mut writes = writes
        .into_iter()
        .filter(|w| written.is_none_or(|t| w.tag > t))
        .peekable();
    while let Some(write) = writes.next() {
        let tag = write.tag;
        batch.push(proposed(write, epoch));
        let tag_ends = writes.peek().is_none_or(|next| next.tag != tag);
        if tag_ends && (batch.len() >= max_batch || writes.peek().is_none()) {
            store::append(
                node,
                stream,
                ExpectedRevision::Any,
                std::mem::take(&mut batch),
            )
            .await?;
        }
    }
    Ok(())
}

fn proposed(write: Write, epoch: u64) -> ProposedEvent {
    let mut metadata = write
        .metadata
        .as_deref()
        .and_then(|m| serde_json::from_str::<Map<String, Value>>(m).ok())
        .unwrap_or_default();
    metadata.insert(
        "$causedBy".into(),
        Value::String(write.caused_by.to_string()),
    );
    metadata.insert("$e".into(), Value::from(epoch));
    metadata.insert("$t".into(), Value::from(write.tag));
    ProposedEvent {
        id: stele_cluster::determinism::new_uuid(),
        event_type: write.event_type,
        content_type: if write.is_json {
            ContentType::Json
        } else {
            ContentType::Binary
        },
        custom_metadata: Bytes::from(serde_json::to_vec(&Value::Object(metadata)).expect("JSON")),
        data: write.data,
    }
}
