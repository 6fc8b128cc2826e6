//! The subsystem: the definitions and the running groups of the node, while it leads.
//!
//! A supervisor task checks the node's role every [`SUPERVISE_EVERY`]. When the node
//! becomes leader (and has applied its log, so the definitions and checkpoints it reads
//! are current) it loads the definitions and starts every group; when it stops leading, or
//! leads again in a later term, every consumer is dropped and the groups stop. A request
//! that arrives before the supervisor noticed a new leadership loads them itself.
//!
//! A group is created only if its creator may read its source, and runs with the
//! creator's rights ([`AccessControl::streams_readable_by`]).
//!
//! Definition changes are serialised by the state lock and written with the expected
//! revision of the definitions stream the subsystem loaded, so a deposed leader can never
//! overwrite a newer set.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use stele_cluster::{
    AppendOutcome, Direction, Node, ReadError, StreamReadRequest, StreamReadResult, StreamStart,
    VNodeState, WriteError,
};
use stele_core::access::{StreamAccess, ALL_STREAM};
use stele_core::{ContentType, DeleteKind, ExpectedRevision, ProposedEvent, StreamName};
use tokio::sync::{oneshot, Mutex};

use super::group::{self, Command, Consumer, GroupHandle};
use super::storage;
use super::{
    config, ConnectRequest, Definition, GroupInfo, GroupKey, PsError, Source, CONFIG_EVENT_TYPE,
    CONFIG_STREAM,
};
use crate::access::AccessControl;
use crate::filter::EventFilter;

/// How often the supervisor looks at the node's role.
const SUPERVISE_EVERY: Duration = Duration::from_millis(100);

/// How long a request waits for a new leader to apply its log.
const APPLY_WAIT: Duration = Duration::from_secs(2);

/// How long stopping a group may take before it is left to finish alone.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The node's persistent subscriptions; cheap to clone.
#[derive(Clone)]
pub struct Subsystem {
    inner: Arc<Inner>,
}

struct Inner {
    node: Node,
    access: AccessControl,
    state: Mutex<Option<Running>>,
}

struct Running {
    /// The term in which this node leads.
    term: u64,
    /// The revision of the definitions stream's last event, `None` when it has none.
    config_revision: Option<u64>,
    definitions: BTreeMap<GroupKey, Definition>,
    groups: HashMap<GroupKey, GroupHandle>,
}

impl Subsystem {
    /// Starts the supervisor. It runs until the last clone of the subsystem is dropped (the
    /// `stele` binary keeps one for the process's life; the simulation one per node start).
    pub fn start(node: Node, access: AccessControl) -> Subsystem {
        let subsystem = Subsystem {
            inner: Arc::new(Inner {
                node,
                access,
                state: Mutex::new(None),
            }),
        };
        let weak = Arc::downgrade(&subsystem.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SUPERVISE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else {
                    break;
                };
                let supervisor = Subsystem { inner };
                let mut state = supervisor.inner.state.lock().await;
                if let Err(e) = supervisor.sync(&mut state).await {
                    tracing::debug!(error = %e, "persistent subscriptions not running");
                }
            }
        });
        subsystem
    }

    pub async fn create(&self, definition: Definition) -> Result<(), PsError> {
        check_definition(&definition)?;
        self.may_read_source(&definition).await?;
        let mut state = self.running().await?;
        let running = state.as_mut().expect("running() checked");
        let key = definition.key.clone();
        if running.definitions.contains_key(&key) {
            return Err(PsError::already_exists(&key));
        }
        // Where it starts is read before the definition is written, so that a group that is
        // defined is always running. (A group of the same name deleted earlier left no
        // checkpoint: delete removes it.)
        let start = self.load_start(&definition).await?;
        let mut definitions = running.definitions.clone();
        definitions.insert(key.clone(), definition.clone());
        self.write_definitions(running, definitions).await?;
        let group = self.spawn_group(definition, start);
        running.groups.insert(key, group);
        Ok(())
    }

    /// A group reads with its creator's rights, so its creator must be able to read its
    /// source: a stream (`$r`), or `$all` (whose events of streams the creator may not read
    /// the group then never sees).
    async fn may_read_source(&self, definition: &Definition) -> Result<(), PsError> {
        let stream = match &definition.key.source {
            Source::Stream(stream) => stream.as_str(),
            Source::All => ALL_STREAM,
        };
        self.inner
            .access
            .check_stream(&definition.creator, stream, StreamAccess::Read)
            .await
            .map_err(|_| PsError::AccessDenied)
    }

    /// Changes a group's settings. Updates carry no filter, so a `$all` group keeps its
    /// own (as in EventStoreDB).
    pub async fn update(&self, mut definition: Definition) -> Result<(), PsError> {
        let mut state = self.running().await?;
        let running = state.as_mut().expect("running() checked");
        let key = definition.key.clone();
        let Some(existing) = running.definitions.get(&key) else {
            return Err(PsError::does_not_exist(&key));
        };
        if definition.filter.is_none() {
            definition.filter = existing.filter.clone();
        }
        // The group keeps reading with its creator's rights.
        definition.creator = existing.creator.clone();
        check_definition(&definition)?;
        let mut definitions = running.definitions.clone();
        definitions.insert(key.clone(), definition.clone());
        self.write_definitions(running, definitions).await?;
        // Consumers are dropped (as EventStoreDB does) and reconnect to the new settings;
        // the group keeps its place.
        if let Some(old) = running.groups.remove(&key) {
            stop(old, PsError::dropped(&key), true).await;
        }
        let group = self.start_group(definition).await?;
        running.groups.insert(key, group);
        Ok(())
    }

    pub async fn delete(&self, key: &GroupKey) -> Result<(), PsError> {
        let mut state = self.running().await?;
        let running = state.as_mut().expect("running() checked");
        if !running.definitions.contains_key(key) {
            return Err(PsError::does_not_exist(key));
        }
        let mut definitions = running.definitions.clone();
        definitions.remove(key);
        self.write_definitions(running, definitions).await?;
        if let Some(old) = running.groups.remove(key) {
            stop(old, PsError::dropped(key), false).await;
        }
        // A group created again under this name starts afresh.
        for stream in [key.checkpoint_stream(), key.parked_stream()] {
            self.soft_delete(stream).await;
        }
        Ok(())
    }

    pub async fn connect(&self, request: ConnectRequest) -> Result<Consumer, PsError> {
        let key = request.key.clone();
        let (reply, answer) = oneshot::channel();
        self.send(&key, Command::Connect { request, reply }).await?;
        answer.await.map_err(|_| PsError::dropped(&key))?
    }

    pub async fn info(&self, key: &GroupKey) -> Result<GroupInfo, PsError> {
        let (reply, answer) = oneshot::channel();
        self.send(key, Command::Info { reply }).await?;
        answer.await.map_err(|_| PsError::dropped(key))
    }

    /// Every group's info, or those of one source. A source with no group is
    /// `DoesNotExist` (with an empty group name), as EventStoreDB answers it; the list of
    /// all groups may be empty.
    pub async fn list(&self, source: Option<&Source>) -> Result<Vec<GroupInfo>, PsError> {
        let keys: Vec<GroupKey> = {
            let state = self.running().await?;
            let running = state.as_ref().expect("running() checked");
            running
                .definitions
                .keys()
                .filter(|k| source.is_none_or(|s| &k.source == s))
                .cloned()
                .collect()
        };
        if let (Some(source), true) = (source, keys.is_empty()) {
            return Err(PsError::DoesNotExist {
                stream: source.name().to_owned(),
                group: String::new(),
            });
        }
        let mut infos = Vec::with_capacity(keys.len());
        for key in keys {
            match self.info(&key).await {
                Ok(info) => infos.push(info),
                // Deleted meanwhile.
                Err(PsError::DoesNotExist { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(infos)
    }

    /// Delivers parked messages again: `stop_at` of them at most, else all.
    pub async fn replay_parked(&self, key: &GroupKey, stop_at: Option<u64>) -> Result<(), PsError> {
        let (reply, answer) = oneshot::channel();
        self.send(key, Command::ReplayParked { stop_at, reply })
            .await?;
        answer.await.map_err(|_| PsError::dropped(key))?
    }

    /// Drops every consumer, reloads the definitions and starts every group again.
    pub async fn restart(&self) -> Result<(), PsError> {
        let mut state = self.running().await?;
        if let Some(running) = state.take() {
            stop_all(running, PsError::dropped, true).await;
        }
        self.sync(&mut state).await
    }

    /// Sends a command to a running group.
    async fn send(&self, key: &GroupKey, command: Command) -> Result<(), PsError> {
        let state = self.running().await?;
        let running = state.as_ref().expect("running() checked");
        let group = running
            .groups
            .get(key)
            .ok_or_else(|| PsError::does_not_exist(key))?;
        group.tx.send(command).map_err(|_| PsError::dropped(key))
    }

    /// The state, running: refuses on a node that does not lead, loads on a new leader.
    async fn running(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Running>>, PsError> {
        let mut state = self.inner.state.lock().await;
        self.sync(&mut state).await?;
        Ok(state)
    }

    /// Brings the state in line with the node's role.
    async fn sync(&self, state: &mut Option<Running>) -> Result<(), PsError> {
        let node = &self.inner.node;
        let mut status = node.status();
        // A new leader applies its log before it reports Leader (and so does a busy one,
        // for a moment after a write): wait for that rather than refuse.
        let deadline = tokio::time::Instant::now() + APPLY_WAIT;
        while status.state == VNodeState::PreLeader && tokio::time::Instant::now() < deadline {
            if state
                .as_ref()
                .is_some_and(|running| running.term == status.epoch_number)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            status = node.status();
        }
        let leading = status.state == VNodeState::Leader;
        // A leader busy applying reports PreLeader for a moment; it still leads.
        let still_leading = matches!(status.state, VNodeState::Leader | VNodeState::PreLeader);
        match state.as_ref() {
            Some(running) if still_leading && running.term == status.epoch_number => return Ok(()),
            Some(_) => {
                let error = not_leader(node);
                let running = state.take().expect("matched Some");
                stop_all(running, |_| error.clone(), false).await;
            }
            None => {}
        }
        if !leading {
            return Err(not_leader(node));
        }
        if !status.ready {
            return Err(PsError::NotReady);
        }
        let loaded = self.load(status.epoch_number).await?;
        *state = Some(loaded);
        Ok(())
    }

    /// Reads the definitions and starts every group.
    async fn load(&self, term: u64) -> Result<Running, PsError> {
        let node = self.inner.node.clone();
        let (config_revision, definitions) =
            stele_cluster::blocking::spawn(move || read_definitions(&node))
                .await
                .map_err(|e| PsError::Failed {
                    stream: CONFIG_STREAM.to_owned(),
                    group: String::new(),
                    reason: e.to_string(),
                })?
                .map_err(|reason| {
                    tracing::error!(%reason, "loading persistent subscription definitions failed");
                    PsError::NotReady
                })?;
        let mut groups = HashMap::new();
        for definition in definitions.values() {
            groups.insert(
                definition.key.clone(),
                self.start_group(definition.clone()).await?,
            );
        }
        tracing::info!(
            groups = groups.len(),
            term,
            "persistent subscriptions started"
        );
        Ok(Running {
            term,
            config_revision,
            definitions,
            groups,
        })
    }

    async fn start_group(&self, definition: Definition) -> Result<GroupHandle, PsError> {
        let start = self.load_start(&definition).await?;
        Ok(self.spawn_group(definition, start))
    }

    fn spawn_group(&self, definition: Definition, start: group::Start) -> GroupHandle {
        let rights = self.inner.access.streams_readable_by(&definition.creator);
        group::spawn(self.inner.node.clone(), definition, start, rights)
    }

    async fn load_start(&self, definition: &Definition) -> Result<group::Start, PsError> {
        let node = self.inner.node.clone();
        let key = definition.key.clone();
        let definition = definition.clone();
        stele_cluster::blocking::spawn(move || storage::load_start(&node, &definition))
            .await
            .map_err(|e| PsError::failed(&key, e.to_string()))?
            .map_err(|e| PsError::failed(&key, e))
    }

    async fn write_definitions(
        &self,
        running: &mut Running,
        definitions: BTreeMap<GroupKey, Definition>,
    ) -> Result<(), PsError> {
        let event = ProposedEvent {
            id: stele_cluster::determinism::new_uuid(),
            event_type: CONFIG_EVENT_TYPE.to_owned(),
            content_type: ContentType::Json,
            custom_metadata: Bytes::new(),
            data: Bytes::from(config::encode(&definitions)),
        };
        let expected = match running.config_revision {
            Some(revision) => ExpectedRevision::Exact(revision),
            None => ExpectedRevision::NoStream,
        };
        let stream = StreamName::new(CONFIG_STREAM).expect("a valid name");
        let failed = |reason: String| PsError::Failed {
            stream: CONFIG_STREAM.to_owned(),
            group: String::new(),
            reason,
        };
        match self
            .inner
            .node
            .append(stream, expected, vec![event], true)
            .await
        {
            Ok(AppendOutcome::Success {
                current_revision, ..
            }) => {
                running.config_revision = current_revision.map(|r| r.0);
                running.definitions = definitions;
                Ok(())
            }
            Ok(AppendOutcome::WrongExpectedVersion { .. }) => Err(failed(
                "the definitions changed on another node; try again".to_owned(),
            )),
            Err(WriteError::NotLeader { leader }) => Err(PsError::NotLeader { leader }),
            Err(WriteError::NotReady) => Err(PsError::NotReady),
            Err(e) => Err(failed(e.to_string())),
        }
    }

    async fn soft_delete(&self, stream: StreamName) {
        let result = self
            .inner
            .node
            .delete(
                stream.clone(),
                ExpectedRevision::Any,
                DeleteKind::Soft,
                true,
            )
            .await;
        if let Err(e) = result {
            tracing::debug!(%stream, error = %e, "deleting a deleted group's stream");
        }
    }
}

fn check_definition(definition: &Definition) -> Result<(), PsError> {
    // Settings a group cannot run with fail the request as EventStoreDB's create and update
    // do when building the group throws: its `Fail` result, the PS-failed status on gRPC.
    // (The HTTP API checks them first, with EventStoreDB's HTTP messages.)
    definition
        .settings
        .validate()
        .map_err(|reason| PsError::failed(&definition.key, reason))?;
    if definition.key.group.is_empty() {
        return Err(PsError::InvalidArgument(
            "Group name cannot be empty".to_owned(),
        ));
    }
    if let Some(filter) = &definition.filter {
        if definition.key.source != Source::All {
            return Err(PsError::InvalidArgument(
                "Only subscriptions to $all can have a filter".to_owned(),
            ));
        }
        EventFilter::from_spec(filter.clone()).map_err(PsError::InvalidArgument)?;
    }
    Ok(())
}

fn not_leader(node: &Node) -> PsError {
    match node.check_read_routing(true) {
        Err(ReadError::NotLeader { leader }) => PsError::NotLeader { leader },
        _ => PsError::NotLeader { leader: None },
    }
}

/// The last definitions document and its revision.
#[allow(clippy::type_complexity)]
fn read_definitions(node: &Node) -> Result<(Option<u64>, BTreeMap<GroupKey, Definition>), String> {
    let read = node
        .read_stream(&StreamReadRequest {
            stream: StreamName::new(CONFIG_STREAM).expect("a valid name"),
            start: StreamStart::End,
            direction: Direction::Backwards,
            max_count: 1,
        })
        .map_err(|e| e.to_string())?;
    let StreamReadResult::Events(events) = read else {
        return Ok((None, BTreeMap::new()));
    };
    let Some(event) = events.first() else {
        return Ok((None, BTreeMap::new()));
    };
    let definitions = config::decode(&event.record.data)
        .map_err(|e| format!("{CONFIG_STREAM} at log position {}: {e}", event.position.0))?;
    Ok((Some(event.revision.0), definitions))
}

async fn stop(group: GroupHandle, reason: PsError, checkpoint: bool) {
    let (done, stopped) = oneshot::channel();
    if group
        .tx
        .send(Command::Stop {
            reason,
            checkpoint,
            done,
        })
        .is_ok()
    {
        let _ = tokio::time::timeout(STOP_TIMEOUT, stopped).await;
    }
}

async fn stop_all(running: Running, reason: impl Fn(&GroupKey) -> PsError, checkpoint: bool) {
    for (key, group) in running.groups {
        stop(group, reason(&key), checkpoint).await;
    }
}
