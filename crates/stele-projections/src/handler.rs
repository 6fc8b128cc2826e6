//! What runs a projection's query, native or JavaScript: a [`Handler`] gets the source's
//! events one at a time and says what to write. Handlers live on a projection worker thread
//! (`workers.rs`) and are called there only.

use bytes::Bytes;
use stele_core::RecordedEvent;
use uuid::Uuid;

use crate::query::QueryDefinition;

/// An event of the source as the processor hands it to a handler.
#[derive(Debug, Clone)]
pub(crate) struct SourceEvent {
    /// Where the source is: the `$all` position for `$all` and multi-stream sources, the
    /// revision in the stream for a one-stream source. Emits carry it, checkpoints name it.
    pub tag: u64,
    /// The event (for a resolved link, its target).
    pub event: RecordedEvent,
    /// The link it was reached through.
    pub link: Option<RecordedEvent>,
    /// The category, for `fromCategory` sources.
    pub category: Option<String>,
}

impl SourceEvent {
    /// The id of the event that caused a write (`$causedBy`).
    pub fn caused_by(&self) -> Uuid {
        self.link.as_ref().unwrap_or(&self.event).record.id
    }
}

/// Why something is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteKind {
    /// `emit`, `linkTo`, a system projection's link: checked against the run-as's rights and
    /// tracked when tracking is on.
    Emit,
    /// A result (`Result` events) or a partition's registration (`$partition`): the
    /// projection's own streams.
    Own,
}

/// One event a handler asks to be written.
#[derive(Debug, Clone)]
pub(crate) struct Write {
    pub kind: WriteKind,
    pub stream: String,
    pub event_type: String,
    pub data: Bytes,
    pub is_json: bool,
    /// A JSON object's text to which the projection's own keys are added.
    pub metadata: Option<String>,
    pub caused_by: Uuid,
    pub tag: u64,
}

/// What handling a page of events gave.
#[derive(Debug, Default)]
pub(crate) struct Output {
    pub writes: Vec<Write>,
    /// Events a handler ran for.
    pub handled: u64,
}

/// A projection's query.
pub(crate) trait Handler {
    fn definition(&self) -> &QueryDefinition;

    /// Handles one event.
    fn handle(&mut self, event: &SourceEvent, out: &mut Output) -> Result<(), String>;

    /// A partition's state as JSON text, if held (`""` for the root partition = none).
    fn state(&mut self, partition: &str) -> Result<Option<String>, String>;

    /// A partition's result as JSON text, if held.
    fn result(&mut self, partition: &str) -> Result<Option<String>, String>;

    /// Sets the root state from a checkpoint.
    fn load_root(&mut self, state: &str) -> Result<(), String>;

    /// The partitions changed since the last call, with their states, for a checkpoint.
    fn take_dirty(&mut self) -> Result<Vec<(String, String)>, String>;

    /// Partition states held.
    fn partitions_cached(&self) -> usize;

    /// Whether the state is kept per partition (partition checkpoints are written).
    fn is_partitioned(&self) -> bool {
        let definition = self.definition();
        definition.by_stream || definition.partitioned
    }
}

/// A stateless handler (the system projections) has no dirty partitions.
pub(crate) fn no_dirty() -> Result<Vec<(String, String)>, String> {
    Ok(Vec::new())
}

/// Reads a partition's state as of the run's starting checkpoint (blocking; on the worker).
pub(crate) type LoadPartition = Box<dyn FnMut(&str) -> Result<Option<String>, String> + Send>;
