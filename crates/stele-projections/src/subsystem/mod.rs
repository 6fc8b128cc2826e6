//! The projections subsystem: the definitions and the running projections of the node,
//! while it leads (projections run on the leader only, as in EventStoreDB).
//!
//! A supervisor task checks the node's role every [`SUPERVISE_EVERY`]. When the node becomes
//! leader (and has applied its log) it reads the registry (`$projections-$all`) — writing
//! the system projections on a fresh database — and each definition, and starts the
//! enabled projections from their checkpoints; when it stops leading every run is dropped.
//! Management requests (`commands.rs`) are serialised by the state lock; definitions are
//! written to the log before they take effect, and registry writes carry the expected
//! revision, so a deposed leader cannot overwrite a newer registry.

mod commands;
mod statistics;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use stele_cluster::{Node, ReadError, VNodeState};
use stele_core::ExpectedRevision;
use stele_services::access::AccessControl;
use tokio::sync::Mutex;

use crate::api::{Config, RunProjections};
use crate::definition::{Definition, HandlerType};
use crate::error::ProjectionError;
use crate::handler::Handler;
use crate::js::JsProjection;
use crate::js_handler::JsHandler;
use crate::names;
use crate::native::{self, Native};
use crate::processor::{self, Run, RunContext};
use crate::store::{self, AppendError};
use crate::workers::Workers;

/// How often the supervisor looks at the node's role.
const SUPERVISE_EVERY: Duration = Duration::from_millis(100);
/// How long a request waits for a new leader to apply its log.
const APPLY_WAIT: Duration = Duration::from_secs(2);

/// The node's projections; cheap to clone.
#[derive(Clone)]
pub struct Projections {
    inner: Arc<Inner>,
}

struct Inner {
    node: Node,
    access: AccessControl,
    config: Config,
    workers: Option<Workers>,
    state: Mutex<Option<Running>>,
}

/// The subsystem while the node leads.
struct Running {
    term: u64,
    registry_revision: Option<u64>,
    projections: BTreeMap<String, Managed>,
}

/// What the subsystem holds of one projection.
struct Managed {
    definition: Definition,
    /// The run (also after it ended: its handler holds a completed one-time projection's
    /// state).
    run: Option<Run>,
    /// Set when the projection was stopped without a run (an abort) or could not start.
    stopped: Idle,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Idle {
    /// Stopped with a checkpoint (or never started).
    Stopped,
    /// Disabled without a checkpoint.
    Aborted,
    /// Failed before it ran (the query did not compile).
    Faulted(String),
}

impl Projections {
    /// Starts the supervisor (nothing runs with `RunProjections: None`). It runs until the
    /// last clone is dropped.
    pub fn start(node: Node, access: AccessControl, config: Config) -> Projections {
        let enabled = config.run != RunProjections::None;
        let workers = enabled.then(|| Workers::start(config.threads));
        let projections = Projections {
            inner: Arc::new(Inner {
                node,
                access,
                config,
                workers,
                state: Mutex::new(None),
            }),
        };
        if enabled {
            let weak = Arc::downgrade(&projections.inner);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(SUPERVISE_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else {
                        break;
                    };
                    let supervisor = Projections { inner };
                    let mut state = supervisor.inner.state.lock().await;
                    if let Err(e) = supervisor.sync(&mut state).await {
                        tracing::debug!(error = %e, "projections not running");
                    }
                }
            });
        }
        projections
    }

    /// Whether the subsystem runs (`RunProjections` is not `None`); when it does not, the
    /// Projections service is not served (UNIMPLEMENTED, as EventStoreDB).
    pub fn is_enabled(&self) -> bool {
        self.inner.config.run != RunProjections::None
    }

    /// The state, running: refuses on a node that does not lead, loads on a new leader.
    async fn running(
        &self,
    ) -> Result<tokio::sync::MutexGuard<'_, Option<Running>>, ProjectionError> {
        if !self.is_enabled() {
            return Err(ProjectionError::Disabled);
        }
        let mut state = self.inner.state.lock().await;
        self.sync(&mut state).await?;
        Ok(state)
    }

    /// Brings the state in line with the node's role.
    async fn sync(&self, state: &mut Option<Running>) -> Result<(), ProjectionError> {
        let node = &self.inner.node;
        let mut status = node.status();
        let deadline = tokio::time::Instant::now() + APPLY_WAIT;
        while status.state == VNodeState::PreLeader && tokio::time::Instant::now() < deadline {
            if state
                .as_ref()
                .is_some_and(|r| r.term == status.epoch_number)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            status = node.status();
        }
        let leading = status.state == VNodeState::Leader;
        let still_leading = matches!(status.state, VNodeState::Leader | VNodeState::PreLeader);
        match state.as_ref() {
            Some(running) if still_leading && running.term == status.epoch_number => return Ok(()),
            Some(_) => {
                let running = state.take().expect("matched Some");
                stop_all(running, false).await;
                tracing::info!("projections stopped: this node no longer leads");
            }
            None => {}
        }
        if !leading {
            return Err(not_leader(node));
        }
        if !status.ready {
            return Err(ProjectionError::NotReady);
        }
        *state = Some(self.load(status.epoch_number).await?);
        Ok(())
    }

    /// Reads the registry and definitions (writing the system projections on a fresh
    /// database) and starts the enabled projections.
    async fn load(&self, term: u64) -> Result<Running, ProjectionError> {
        let node = self.inner.node.clone();
        let (registry, definitions) = stele_cluster::blocking::spawn(move || {
            let registry = store::read_registry(&node)?;
            let mut definitions = BTreeMap::new();
            for (name, id) in &registry.projections {
                let definition = match store::read_definition(&node, name)? {
                    Some(definition) => definition,
                    // Registered, its definition not yet written (a leader stopped between
                    // the two writes): a system projection gets its default.
                    None => match native::SYSTEM_PROJECTIONS.iter().find(|(n, _)| n == name) {
                        Some((name, query)) => native::system_definition(name, query, *id),
                        None => continue,
                    },
                };
                definitions.insert(name.clone(), definition);
            }
            Ok::<_, String>((registry, definitions))
        })
        .await
        .map_err(|e| ProjectionError::OperationFailed(e.to_string()))?
        .map_err(|reason| {
            tracing::error!(%reason, "loading the projections failed");
            ProjectionError::NotReady
        })?;
        let mut running = Running {
            term,
            registry_revision: registry.last_revision,
            projections: BTreeMap::new(),
        };
        if !registry.initialized {
            self.initialize(&mut running).await?;
        }
        for (name, definition) in definitions {
            running.projections.insert(
                name,
                Managed {
                    definition,
                    run: None,
                    stopped: Idle::Stopped,
                },
            );
        }
        if self.inner.config.start_standard_projections {
            let disabled: Vec<String> = running
                .projections
                .values()
                .filter(|m| m.definition.is_system() && !m.definition.enabled)
                .map(|m| m.definition.name.clone())
                .collect();
            for name in disabled {
                let managed = running.projections.get_mut(&name).expect("listed");
                managed.definition.enabled = true;
                self.write_definition(&managed.definition).await?;
            }
        }
        let names: Vec<String> = running.projections.keys().cloned().collect();
        let mut started = 0;
        for name in names {
            let managed = running.projections.get_mut(&name).expect("listed");
            if managed.definition.enabled && self.may_run(&managed.definition) {
                self.start_run(managed).await;
                started += 1;
            }
        }
        tracing::info!(
            projections = running.projections.len(),
            started,
            term,
            "projections started"
        );
        Ok(running)
    }

    /// A fresh database: `$ProjectionsInitialized` and the system projections, written as
    /// EventStoreDB writes them at first start.
    async fn initialize(&self, running: &mut Running) -> Result<(), ProjectionError> {
        let mut events = vec![store::event(names::INITIALIZED, Vec::new(), None)];
        for (name, _) in native::SYSTEM_PROJECTIONS {
            events.push(store::event(names::CREATED, name.to_owned(), None));
        }
        let expected = expected(running.registry_revision);
        let last = store::append(&self.inner.node, names::REGISTRY_STREAM, expected, events)
            .await
            .map_err(map_append)?;
        running.registry_revision = last;
        let first_id = last.unwrap_or(0) + 1 - native::SYSTEM_PROJECTIONS.len() as u64;
        for (i, (name, query)) in native::SYSTEM_PROJECTIONS.iter().enumerate() {
            let definition = native::system_definition(name, query, first_id + i as u64);
            self.write_definition(&definition).await?;
            running.projections.insert(
                name.to_string(),
                Managed {
                    definition,
                    run: None,
                    stopped: Idle::Stopped,
                },
            );
        }
        Ok(())
    }

    /// `RunProjections: System` runs only the system projections.
    fn may_run(&self, definition: &Definition) -> bool {
        match self.inner.config.run {
            RunProjections::None => false,
            RunProjections::System => definition.is_system(),
            RunProjections::All => true,
        }
    }

    async fn write_definition(&self, definition: &Definition) -> Result<(), ProjectionError> {
        let event = store::event(names::UPDATED, definition.encode(), None);
        store::append(
            &self.inner.node,
            &names::definition_stream(&definition.name),
            ExpectedRevision::Any,
            vec![event],
        )
        .await
        .map_err(map_append)?;
        Ok(())
    }

    /// Starts a run of the projection; a query that does not compile (or a source that
    /// cannot be read) leaves it faulted.
    async fn start_run(&self, managed: &mut Managed) {
        if let Some(mut run) = managed.run.take() {
            run.stop(false).await;
        }
        match self.make_run(&managed.definition).await {
            Ok(run) => {
                managed.run = Some(run);
                managed.stopped = Idle::Stopped;
            }
            Err(reason) => {
                tracing::warn!(projection = %managed.definition.name, %reason, "projection faulted");
                managed.stopped = Idle::Faulted(reason);
            }
        }
    }

    async fn make_run(&self, definition: &Definition) -> Result<Run, String> {
        let workers = self
            .inner
            .workers
            .as_ref()
            .ok_or("projections are not run on this node")?;
        let checkpoint = {
            let node = self.inner.node.clone();
            let definition = definition.clone();
            stele_cluster::blocking::spawn(move || processor::read_checkpoint(&node, &definition))
                .await
                .map_err(|e| e.to_string())??
        };
        let start_tag = checkpoint.as_ref().map(|c| c.tag);
        let handler = {
            let definition = definition.clone();
            let node = self.inner.node.clone();
            let limits = self.inner.config.js_limits;
            workers
                .create(move || make_handler(node, definition, start_tag, limits))
                .await?
        };
        let query = handler.call(|h| h.definition().clone()).await?;
        processor::start(RunContext {
            node: self.inner.node.clone(),
            access: self.inner.access.clone(),
            definition: definition.clone(),
            handler,
            query,
            checkpoint,
        })
        .await
    }
}

/// Makes a projection's handler (on its worker thread).
fn make_handler(
    node: Node,
    definition: Definition,
    start_tag: Option<u64>,
    limits: crate::js::Limits,
) -> Result<Box<dyn Handler>, String> {
    match definition.handler_type {
        HandlerType::Native => Ok(Box::new(Native::new(&definition.name, &definition.query)?)),
        HandlerType::Js => {
            let js = JsProjection::compile(&definition.query, definition.emit_enabled, limits)
                .map_err(|e| e.to_string())?;
            let name = definition.name.clone();
            let epoch = definition.epoch;
            let load = Box::new(move |partition: &str| match start_tag {
                Some(tag) => store::read_partition_state(&node, &name, partition, epoch, tag),
                None => Ok(None),
            });
            Ok(Box::new(JsHandler::new(js, definition.name.clone(), load)))
        }
    }
}

async fn stop_all(running: Running, checkpoint: bool) {
    for (_, mut managed) in running.projections {
        if let Some(mut run) = managed.run.take() {
            run.stop(checkpoint).await;
        }
    }
}

fn expected(revision: Option<u64>) -> ExpectedRevision {
    match revision {
        Some(revision) => ExpectedRevision::Exact(revision),
        None => ExpectedRevision::NoStream,
    }
}

fn not_leader(node: &Node) -> ProjectionError {
    match node.check_read_routing(true) {
        Err(ReadError::NotLeader { leader }) => ProjectionError::NotLeader { leader },
        _ => ProjectionError::NotLeader { leader: None },
    }
}

fn map_append(e: AppendError) -> ProjectionError {
    match e {
        AppendError::NotLeader { leader } => ProjectionError::NotLeader { leader },
        AppendError::NotReady => ProjectionError::NotReady,
        AppendError::Failed(reason) => ProjectionError::OperationFailed(reason),
    }
}

#[cfg(test)]
mod tests;
