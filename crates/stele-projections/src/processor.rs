//! One running projection: its source through the catch-up engine (from its checkpoint),
//! its handler on a worker thread, its writes ([`crate::writer`]) and its checkpoints. A task
//! per projection; the subsystem stops it through [`Control`] and reads [`RunStats`].

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use stele_cluster::Node;
use stele_core::{ExpectedRevision, RecordedEvent};
use stele_services::access::AccessControl;
use stele_services::catchup::{Begin, CatchUp, CatchUpRequest, Item, Step, Target};
use stele_services::filter::EventFilter;
use stele_services::links::{self, Resolution};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::definition::{Definition, Mode};
use crate::handler::{Output, SourceEvent};
use crate::names;
use crate::query::{QueryDefinition, QuerySource};
use crate::store::{self, AppendError, Mark};
use crate::workers::HandlerRef;
use crate::writer::Writer;

/// Events read per step of the source, at most.
const PAGE_EVENTS: usize = 1024;
/// Partition checkpoints written at once, at most.
const CHECKPOINT_WRITES_IN_FLIGHT: usize = 16;

/// What the core of a projection reports (its part of the status text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CoreStatus {
    Starting,
    Running,
    Stopped,
    Completed,
    Faulted(String),
}

/// A run's figures, shared with the subsystem.
#[derive(Debug, Clone)]
pub(crate) struct RunStats {
    pub core: CoreStatus,
    pub position: String,
    pub last_checkpoint: String,
    pub progress: f32,
    pub events_processed: i64,
    pub processing_time_ms: i64,
    pub partitions_cached: i32,
    pub writes_in_progress: i32,
    pub checkpoint_status: String,
}

impl Default for RunStats {
    fn default() -> Self {
        RunStats {
            core: CoreStatus::Starting,
            position: String::new(),
            last_checkpoint: String::new(),
            progress: -1.0,
            events_processed: 0,
            processing_time_ms: 0,
            partitions_cached: 0,
            writes_in_progress: 0,
            checkpoint_status: String::new(),
        }
    }
}

pub(crate) enum Control {
    /// Stop, with a checkpoint first when asked; answers once stopped.
    Stop {
        checkpoint: bool,
        reply: oneshot::Sender<()>,
    },
}

/// A started run.
pub(crate) struct Run {
    pub control: mpsc::Sender<Control>,
    pub task: JoinHandle<()>,
    pub handler: HandlerRef,
    pub stats: Arc<Mutex<RunStats>>,
}

impl Run {
    /// Stops the run (a run that ended already is fine).
    pub async fn stop(&mut self, checkpoint: bool) {
        let (reply, done) = oneshot::channel();
        if self
            .control
            .send(Control::Stop { checkpoint, reply })
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(Duration::from_secs(10), done).await;
        }
        self.task.abort();
        let mut stats = self.stats.lock().expect("stats lock");
        if !matches!(stats.core, CoreStatus::Faulted(_) | CoreStatus::Completed) {
            stats.core = CoreStatus::Stopped;
        }
    }

    pub fn stats(&self) -> RunStats {
        self.stats.lock().expect("stats lock").clone()
    }
}

/// What a run needs.
pub(crate) struct RunContext {
    pub node: Node,
    pub access: AccessControl,
    pub definition: Definition,
    pub handler: HandlerRef,
    pub query: QueryDefinition,
    /// The checkpoint it starts from (see [`read_checkpoint`]).
    pub checkpoint: Option<store::Checkpoint>,
}

/// What else a run needs to know before it starts.
struct Start {
    tracked: Option<HashSet<String>>,
    verify_until: u64,
}

/// The checkpoint a run of `definition` starts from (blocking).
pub(crate) fn read_checkpoint(
    node: &Node,
    definition: &Definition,
) -> Result<Option<store::Checkpoint>, String> {
    if definition.checkpoints_enabled {
        store::read_checkpoint(node, &definition.name, definition.epoch)
    } else {
        Ok(None)
    }
}

/// Starts a run: reads its checkpoint, loads the root state into the handler, spawns the
/// task. An error here faults the projection before it ran.
pub(crate) async fn start(ctx: RunContext) -> Result<Run, String> {
    let stats = Arc::new(Mutex::new(RunStats::default()));
    let definition = ctx.definition.clone();
    let source = Source::of(&ctx.query)?;
    let start = {
        let node = ctx.node.clone();
        let definition = definition.clone();
        let source = source.clone();
        stele_cluster::blocking::spawn(move || read_start(&node, &definition, &source))
            .await
            .map_err(|e| e.to_string())??
    };
    if let Some(checkpoint) = &ctx.checkpoint {
        if !checkpoint.state.is_empty() {
            let state = checkpoint.state.clone();
            ctx.handler
                .call(move |h| {
                    if h.is_partitioned() {
                        Ok(())
                    } else {
                        h.load_root(&state)
                    }
                })
                .await??;
        }
        let mut s = stats.lock().expect("stats lock");
        s.last_checkpoint = source.position_text(checkpoint.tag);
        s.position = s.last_checkpoint.clone();
    }
    let (control, commands) = mpsc::channel(4);
    let writer = Writer::new(
        ctx.node.clone(),
        ctx.access.clone(),
        definition.run_as.principal(),
        definition.name.clone(),
        definition.epoch,
        definition.settings.max_write_batch_length as usize,
        start.verify_until,
        start.tracked,
    );
    let mut processor = Processor {
        node: ctx.node,
        access: ctx.access,
        definition,
        query: ctx.query,
        source,
        handler: ctx.handler.clone(),
        writer,
        stats: stats.clone(),
        tag: ctx.checkpoint.as_ref().map(|c| c.tag),
        checkpointed: ctx.checkpoint.as_ref().map(|c| c.tag),
        since_checkpoint: 0,
        last_checkpoint_at: Instant::now(),
    };
    let task = tokio::spawn(async move {
        let mut commands = commands;
        let outcome = processor.run(&mut commands).await;
        let mut stats = processor.stats.lock().expect("stats lock");
        match outcome {
            Ok(Ended::Stopped(reply)) => {
                stats.core = CoreStatus::Stopped;
                drop(stats);
                let _ = reply.send(());
            }
            Ok(Ended::Dropped) => stats.core = CoreStatus::Stopped,
            Ok(Ended::Completed) => {
                stats.core = CoreStatus::Completed;
                stats.progress = 100.0;
            }
            Err(reason) => {
                tracing::warn!(projection = %processor.definition.name, %reason, "projection faulted");
                stats.core = CoreStatus::Faulted(reason);
            }
        }
    });
    Ok(Run {
        control,
        task,
        handler: ctx.handler,
        stats,
    })
}

fn read_start(node: &Node, definition: &Definition, source: &Source) -> Result<Start, String> {
    let tracked = if definition.track_emitted_streams {
        let events = store::read_all_of(node, &names::emitted_streams_stream(&definition.name))?;
        Some(
            events
                .iter()
                .map(|e| String::from_utf8_lossy(&e.record.data).into_owned())
                .collect(),
        )
    } else {
        None
    };
    let verify_until = match source {
        Source::Stream { stream, .. } => node
            .stream_last_revision(&store::stream_name(stream)?)
            .map_err(|e| e.to_string())?
            .unwrap_or(0),
        _ => node.last_position().0,
    };
    Ok(Start {
        tracked,
        verify_until,
    })
}

/// Where the events come from, and how an event of the catch-up engine becomes a
/// [`SourceEvent`].
#[derive(Debug, Clone)]
enum Source {
    /// `fromAll`: `$all` without system streams (metastreams of other streams stay).
    All,
    /// One stream (links resolved): tags are its revisions.
    Stream {
        stream: String,
        category: Option<String>,
    },
    /// Several streams (or categories), in `$all` order.
    Streams {
        streams: HashSet<String>,
        /// Categories: links are resolved, and the category given to handlers.
        categories: bool,
    },
}

impl Source {
    fn of(query: &QueryDefinition) -> Result<Source, String> {
        Ok(match &query.source {
            QuerySource::All => Source::All,
            QuerySource::Streams(streams) if streams.len() == 1 => Source::Stream {
                stream: streams[0].clone(),
                category: None,
            },
            QuerySource::Categories(categories) if categories.len() == 1 => Source::Stream {
                stream: format!("$ce-{}", categories[0]),
                category: Some(categories[0].clone()),
            },
            QuerySource::Streams(streams) if !streams.is_empty() => Source::Streams {
                streams: streams.iter().cloned().collect(),
                categories: false,
            },
            QuerySource::Categories(categories) if !categories.is_empty() => Source::Streams {
                streams: categories.iter().map(|c| format!("$ce-{c}")).collect(),
                categories: true,
            },
            _ => return Err("the query names no source stream".into()),
        })
    }

    fn position_text(&self, tag: u64) -> String {
        match self {
            Source::Stream { stream, .. } => format!("{stream}: {tag}"),
            _ => format!("C:{tag}/P:{tag}"),
        }
    }
}

/// A non-system stream, or the metastream of one.
fn is_user_stream(stream: &str) -> bool {
    match stream.strip_prefix("$$") {
        Some(rest) => !rest.starts_with('$'),
        None => !stream.starts_with('$'),
    }
}

enum Ended {
    Stopped(oneshot::Sender<()>),
    Completed,
    Dropped,
}

struct Processor {
    node: Node,
    access: AccessControl,
    definition: Definition,
    query: QueryDefinition,
    source: Source,
    handler: HandlerRef,
    writer: Writer,
    stats: Arc<Mutex<RunStats>>,
    /// The tag of the last event considered.
    tag: Option<u64>,
    /// The tag of the last checkpoint.
    checkpointed: Option<u64>,
    since_checkpoint: u64,
    last_checkpoint_at: Instant,
}

type Prepared = Option<SourceEvent>;

impl Processor {
    async fn run(&mut self, commands: &mut mpsc::Receiver<Control>) -> Result<Ended, String> {
        let mut engine = self.engine().await?;
        self.stats.lock().expect("stats lock").core = CoreStatus::Running;
        let finite = self.definition.mode != Mode::Continuous;
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Control::Stop { checkpoint, reply }) => {
                        if checkpoint {
                            self.checkpoint().await?;
                        }
                        return Ok(Ended::Stopped(reply));
                    }
                    // The subsystem let go of the run (the node stops or no longer leads).
                    None => return Ok(Ended::Dropped),
                },
                step = engine.next() => match step.map_err(|e| format!("reading the source: {e}"))? {
                    Step::Events(items) => self.page(items).await?,
                    Step::CaughtUp { .. } => {
                        if finite {
                            return Ok(Ended::Completed);
                        }
                        if self.since_checkpoint > 0 && self.checkpoint_due(true) {
                            self.checkpoint().await?;
                        }
                    }
                    Step::FellBehind { .. } => {}
                },
            }
        }
    }

    async fn engine(&self) -> Result<CatchUp<Prepared>, String> {
        let node = self.node.clone();
        let include_links = self.query.include_links;
        let readable = self
            .access
            .streams_readable_by(&self.definition.run_as.principal());
        let begin = self.tag.map_or(Begin::Start, Begin::After);
        let (target, resolve_links, prepare): (
            Target,
            bool,
            stele_services::catchup::Prepare<Prepared>,
        ) = match self.source.clone() {
            Source::All => (
                Target::All {
                    filter: readable
                        .clone()
                        .map(|r| Arc::new(EventFilter::restricted(None, r))),
                },
                false,
                Arc::new(move |event: &RecordedEvent, _| {
                    let stream = event.record.stream.as_str();
                    if !is_user_stream(stream) || (!include_links && links::is_link(event)) {
                        return None;
                    }
                    Some(SourceEvent {
                        tag: event.position.0,
                        event: event.clone(),
                        link: None,
                        category: None,
                    })
                }),
            ),
            Source::Stream { stream, category } => {
                let name = store::stream_name(&stream)?;
                (
                    Target::Stream(name),
                    true,
                    Arc::new(move |event: &RecordedEvent, resolution| {
                        let tag = event.revision.0;
                        let (event, link) = match resolution {
                            Resolution::AsIs => (event.clone(), None),
                            Resolution::Target(target) => (target, Some(event.clone())),
                            Resolution::Unresolved => return None,
                        };
                        Some(SourceEvent {
                            tag,
                            event,
                            link,
                            category: category.clone(),
                        })
                    }),
                )
            }
            Source::Streams {
                streams,
                categories,
            } => {
                let readable = readable.clone();
                (
                    Target::All { filter: None },
                    false,
                    Arc::new(move |event: &RecordedEvent, _| {
                        let stream = event.record.stream.as_str();
                        if !streams.contains(stream) {
                            return None;
                        }
                        let tag = event.position.0;
                        if !categories {
                            return Some(SourceEvent {
                                tag,
                                event: event.clone(),
                                link: None,
                                category: None,
                            });
                        }
                        let category = stream.strip_prefix("$ce-").map(str::to_owned);
                        match links::resolve(&node, readable.as_deref(), event)
                            .unwrap_or(Resolution::Unresolved)
                        {
                            Resolution::Target(target) => Some(SourceEvent {
                                tag,
                                event: target,
                                link: Some(event.clone()),
                                category,
                            }),
                            Resolution::AsIs => Some(SourceEvent {
                                tag,
                                event: event.clone(),
                                link: None,
                                category,
                            }),
                            Resolution::Unresolved => None,
                        }
                    }),
                )
            }
        };
        CatchUp::start(
            self.node.clone(),
            CatchUpRequest {
                target,
                begin,
                resolve_links,
                link_targets: readable,
                page_events: PAGE_EVENTS,
                prepare,
            },
        )
        .await
        .map_err(|e| format!("starting to read the source: {e}"))
    }

    async fn page(&mut self, items: Vec<Item<Prepared>>) -> Result<(), String> {
        let Some(last) = items.last() else {
            return Ok(());
        };
        let last_tag = match self.source {
            Source::Stream { .. } => last.revision,
            _ => last.position,
        };
        let events: Vec<SourceEvent> = items
            .into_iter()
            .filter_map(|i| i.prepared.flatten())
            .collect();
        let considered = events.len() as i64;
        let started = Instant::now();
        // One trip to the handler's thread per page (none for a page of filtered events).
        let (output, partitions) = if events.is_empty() {
            (Output::default(), None)
        } else {
            self.handler
                .call(move |h| {
                    let mut out = Output::default();
                    for event in &events {
                        h.handle(event, &mut out)?;
                    }
                    Ok::<_, String>((out, Some(h.partitions_cached())))
                })
                .await??
        };
        let spent = started.elapsed();
        let writes = output.writes.len() as i32;
        self.stats.lock().expect("stats lock").writes_in_progress = writes;
        self.writer
            .write(output.writes)
            .await
            .map_err(append_reason)?;
        self.writer.passed(last_tag);
        self.tag = Some(last_tag);
        self.since_checkpoint += considered as u64;
        {
            let mut stats = self.stats.lock().expect("stats lock");
            stats.writes_in_progress = 0;
            stats.events_processed += considered;
            stats.processing_time_ms += spent.as_millis() as i64;
            if let Some(partitions) = partitions {
                stats.partitions_cached = partitions as i32;
            }
            stats.position = self.source.position_text(last_tag);
            stats.progress = self.progress(last_tag);
        }
        if self.checkpoint_due(false) {
            self.checkpoint().await?;
        }
        Ok(())
    }

    fn progress(&self, tag: u64) -> f32 {
        let end = match &self.source {
            Source::Stream { stream, .. } => store::stream_name(stream)
                .ok()
                .and_then(|s| self.node.stream_last_revision(&s).ok().flatten())
                .unwrap_or(tag),
            _ => self.node.last_position().0,
        };
        if end == 0 {
            return 100.0;
        }
        ((tag as f64 / end as f64) * 100.0).min(100.0) as f32
    }

    fn checkpoint_due(&self, caught_up: bool) -> bool {
        if !self.definition.checkpoints_enabled || self.since_checkpoint == 0 {
            return false;
        }
        let settings = &self.definition.settings;
        let waited = self.last_checkpoint_at.elapsed()
            >= Duration::from_millis(settings.checkpoint_after_ms);
        waited && (caught_up || self.since_checkpoint >= settings.checkpoint_handled_threshold)
    }

    /// Writes the dirty partitions' states, then the checkpoint (data: the root state,
    /// metadata: the mark).
    async fn checkpoint(&mut self) -> Result<(), String> {
        let Some(tag) = self.tag else {
            return Ok(());
        };
        if !self.definition.checkpoints_enabled || self.checkpointed == Some(tag) {
            return Ok(());
        }
        self.stats.lock().expect("stats lock").checkpoint_status = "Writing (1)".into();
        let (dirty, root) = self
            .handler
            .call(|h| {
                let dirty = h.take_dirty()?;
                let root = if h.is_partitioned() {
                    String::new()
                } else {
                    h.state("")?.unwrap_or_default()
                };
                Ok::<_, String>((dirty, root))
            })
            .await??;
        let mark = Mark {
            epoch: self.definition.epoch,
            tag,
        };
        let name = self.definition.name.clone();
        let node = self.node.clone();
        use futures::stream::{self, StreamExt};
        let results: Vec<Result<Option<u64>, AppendError>> = stream::iter(dirty)
            .map(|(partition, state)| {
                let node = node.clone();
                let stream = names::partition_checkpoint_stream(&name, &partition);
                async move {
                    let event = store::event(names::PARTITION_CHECKPOINT, state, Some(mark.json()));
                    store::append(&node, &stream, ExpectedRevision::Any, vec![event]).await
                }
            })
            .buffer_unordered(CHECKPOINT_WRITES_IN_FLIGHT)
            .collect()
            .await;
        for result in results {
            result.map_err(append_reason)?;
        }
        let event = store::event(names::CHECKPOINT, root, Some(mark.json()));
        store::append(
            &self.node,
            &names::checkpoint_stream(&name),
            ExpectedRevision::Any,
            vec![event],
        )
        .await
        .map_err(append_reason)?;
        self.checkpointed = Some(tag);
        self.since_checkpoint = 0;
        self.last_checkpoint_at = Instant::now();
        let mut stats = self.stats.lock().expect("stats lock");
        stats.last_checkpoint = self.source.position_text(tag);
        stats.checkpoint_status = String::new();
        Ok(())
    }
}

fn append_reason(e: AppendError) -> String {
    e.to_string()
}
