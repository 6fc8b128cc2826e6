//! The management requests of the Projections service (PROTOCOL-OPS.md §1.4).

use stele_core::access::Principal;

use super::{expected, map_append, Idle, Managed, Projections, Running};
use crate::api::{CreateMode, CreateRequest, DeleteRequest, QueryInfo, UpdateRequest};
use crate::definition::{Definition, HandlerType, Mode, RunAs, Settings};
use crate::error::ProjectionError;
use crate::names;
use crate::processor::CoreStatus;
use crate::store;

/// Continuous and one-time projections are created and updated by `$admins` and `$ops`
/// only (EventStoreDB's RunAs check).
fn may_run_persistently(caller: &Principal) -> bool {
    caller.is_admin() || caller.has_role("$ops")
}

impl Projections {
    /// Creates a projection and starts it; answers its name (made up for one-time).
    pub async fn create(
        &self,
        request: CreateRequest,
        caller: &Principal,
    ) -> Result<String, ProjectionError> {
        let (name, mode, emit, track) = match request.mode {
            CreateMode::OneTime => (
                stele_cluster::determinism::new_uuid().to_string(),
                Mode::OneTime,
                false,
                false,
            ),
            CreateMode::Transient { name } => (name, Mode::Transient, false, false),
            CreateMode::Continuous {
                name,
                emit_enabled,
                track_emitted_streams,
            } => (name, Mode::Continuous, emit_enabled, track_emitted_streams),
        };
        if track && !emit {
            return Err(ProjectionError::InvalidRequest(
                "tracking emitted streams needs emit enabled".into(),
            ));
        }
        check_name(&name)?;
        if mode != Mode::Transient && !may_run_persistently(caller) {
            return Err(ProjectionError::NotAuthorized);
        }
        let mut state = self.running().await?;
        let running = state.as_mut().expect("running() checked");
        if running.projections.contains_key(&name) {
            return Err(ProjectionError::Conflict(name));
        }
        let id = self.record(running, names::CREATED, &name).await?;
        let definition = Definition {
            name: name.clone(),
            id: id.unwrap_or(0),
            mode,
            handler_type: HandlerType::Js,
            query: request.query,
            enabled: true,
            emit_enabled: emit,
            track_emitted_streams: track,
            checkpoints_enabled: mode == Mode::Continuous,
            version: 0,
            epoch: 0,
            run_as: RunAs::of(caller),
            settings: Settings::default(),
        };
        self.write_definition(&definition).await?;
        let mut managed = Managed {
            definition,
            run: None,
            stopped: Idle::Stopped,
        };
        if self.may_run(&managed.definition) {
            self.start_run(&mut managed).await;
        }
        running.projections.insert(name.clone(), managed);
        Ok(name)
    }

    pub async fn update(
        &self,
        request: UpdateRequest,
        caller: &Principal,
    ) -> Result<(), ProjectionError> {
        let mut state = self.running().await?;
        let running = state.as_mut().expect("running() checked");
        let managed = find(running, &request.name)?;
        if managed.definition.mode != Mode::Transient && !may_run_persistently(caller) {
            return Err(ProjectionError::NotAuthorized);
        }
        if managed.definition.handler_type == HandlerType::Native {
            // A system projection's source text is its configuration (e.g. `last\r\n-`).
            check_native(&managed.definition.name, &request.query)?;
        }
        let was_running = is_running(managed);
        if let Some(run) = managed.run.as_mut() {
            run.stop(true).await;
        }
        managed.definition.query = request.query;
        if let Some(emit) = request.emit_enabled {
            managed.definition.emit_enabled = emit;
        }
        managed.definition.version += 1;
        let definition = managed.definition.clone();
        self.write_definition(&definition).await?;
        if was_running && self.may_run(&definition) {
            self.start_run(managed).await;
        }
        Ok(())
    }

    pub async fn delete(&self, request: DeleteRequest) -> Result<(), ProjectionError> {
        if request.name.is_empty() {
            return Err(ProjectionError::OperationFailed(
                "Projection name is required".into(),
            ));
        }
        let mut state = self.running().await?;
        let running = state.as_mut().expect("running() checked");
        let managed = find(running, &request.name)?;
        if managed.definition.is_system() {
            return Err(ProjectionError::OperationFailed(
                "We currently don't allow for the deletion of System Projections.".into(),
            ));
        }
        if is_running(managed) && managed.definition.mode != Mode::Transient {
            return Err(ProjectionError::OperationFailed(
                "Cannot delete a projection that hasn't been stopped or faulted.".into(),
            ));
        }
        self.record(running, names::DELETED, &request.name).await?;
        let mut managed = running
            .projections
            .remove(&request.name)
            .expect("found above");
        if let Some(mut run) = managed.run.take() {
            run.stop(false).await;
        }
        self.delete_streams(&managed.definition, &request).await
    }

    /// Appends a `$ProjectionCreated`/`$ProjectionDeleted` to the registry at the revision
    /// this leader last saw; answers the event's number (a new projection's id).
    async fn record(
        &self,
        running: &mut Running,
        event_type: &str,
        name: &str,
    ) -> Result<Option<u64>, ProjectionError> {
        let event = store::event(event_type, name.to_owned(), None);
        let revision = store::append(
            &self.inner.node,
            names::REGISTRY_STREAM,
            expected(running.registry_revision),
            vec![event],
        )
        .await
        .map_err(map_append)?;
        running.registry_revision = revision;
        Ok(revision)
    }

    /// The streams a delete removes: the definition, and on request the checkpoints and
    /// the emitted streams. The result stream stays (EventStoreDB never acts on
    /// `delete_state_stream`).
    async fn delete_streams(
        &self,
        definition: &Definition,
        request: &DeleteRequest,
    ) -> Result<(), ProjectionError> {
        let node = &self.inner.node;
        let name = &definition.name;
        let mut streams = vec![names::definition_stream(name)];
        if request.delete_checkpoint_stream {
            streams.push(names::checkpoint_stream(name));
            for partition in self.listed(&names::partitions_stream(name)).await? {
                streams.push(names::partition_checkpoint_stream(name, &partition));
            }
        }
        if request.delete_emitted_streams {
            streams.extend(self.listed(&names::emitted_streams_stream(name)).await?);
            streams.push(names::emitted_streams_stream(name));
        }
        for stream in streams {
            store::soft_delete(node, &stream)
                .await
                .map_err(ProjectionError::OperationFailed)?;
        }
        Ok(())
    }

    /// The data of every event of a list stream (partitions, tracked streams).
    async fn listed(&self, stream: &str) -> Result<Vec<String>, ProjectionError> {
        let node = self.inner.node.clone();
        let stream = stream.to_owned();
        let events = stele_cluster::blocking::spawn(move || store::read_all_of(&node, &stream))
            .await
            .map_err(|e| ProjectionError::OperationFailed(e.to_string()))?
            .map_err(ProjectionError::OperationFailed)?;
        let mut names: Vec<String> = events
            .iter()
            .map(|e| String::from_utf8_lossy(&e.record.data).into_owned())
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Stops a projection: with a checkpoint (`Stopped`) or aborted (`Aborted`).
    pub async fn disable(&self, name: &str, write_checkpoint: bool) -> Result<(), ProjectionError> {
        let mut state = self.running().await?;
        let running = state.as_mut().expect("running() checked");
        let managed = find(running, name)?;
        if let Some(run) = managed.run.as_mut() {
            run.stop(write_checkpoint).await;
        }
        managed.stopped = if write_checkpoint {
            Idle::Stopped
        } else {
            Idle::Aborted
        };
        if managed.definition.enabled {
            managed.definition.enabled = false;
            let definition = managed.definition.clone();
            self.write_definition(&definition).await?;
        }
        Ok(())
    }

    pub async fn enable(&self, name: &str) -> Result<(), ProjectionError> {
        let mut state = self.running().await?;
        let running = state.as_mut().expect("running() checked");
        let managed = find(running, name)?;
        if !managed.definition.enabled {
            managed.definition.enabled = true;
            let definition = managed.definition.clone();
            self.write_definition(&definition).await?;
        }
        if !is_running(managed) && self.may_run(&managed.definition) {
            self.start_run(managed).await;
        }
        Ok(())
    }

    /// Starts over: a new epoch (older checkpoints and emits no longer count), the result,
    /// partition and tracked emitted streams deleted; a running projection runs again from
    /// the beginning, a stopped one stays stopped with no state.
    pub async fn reset(&self, name: &str) -> Result<(), ProjectionError> {
        let mut state = self.running().await?;
        let running = state.as_mut().expect("running() checked");
        let managed = find(running, name)?;
        let was_running = is_running(managed);
        if let Some(mut run) = managed.run.take() {
            run.stop(false).await;
        }
        managed.definition.version += 1;
        managed.definition.epoch = managed.definition.version;
        let definition = managed.definition.clone();
        self.write_definition(&definition).await?;
        let mut streams = vec![names::result_stream(&definition.name, None)];
        for partition in self
            .listed(&names::partitions_stream(&definition.name))
            .await?
        {
            streams.push(names::partition_result_stream(
                &definition.name,
                &partition,
                None,
            ));
        }
        streams.push(names::partitions_stream(&definition.name));
        if definition.track_emitted_streams {
            streams.extend(
                self.listed(&names::emitted_streams_stream(&definition.name))
                    .await?,
            );
            streams.push(names::emitted_streams_stream(&definition.name));
        }
        for stream in streams {
            store::soft_delete(&self.inner.node, &stream)
                .await
                .map_err(ProjectionError::OperationFailed)?;
        }
        let running = state.as_mut().expect("running() checked");
        let managed = find(running, name)?;
        if was_running && self.may_run(&managed.definition) {
            self.start_run(managed).await;
        }
        Ok(())
    }

    /// A partition's state as JSON text (`""` when it has none).
    pub async fn state(&self, name: &str, partition: &str) -> Result<String, ProjectionError> {
        self.state_or_result(name, partition, false).await
    }

    /// A partition's result (the state after `transformBy`/`filterBy`) as JSON text.
    pub async fn result(&self, name: &str, partition: &str) -> Result<String, ProjectionError> {
        self.state_or_result(name, partition, true).await
    }

    async fn state_or_result(
        &self,
        name: &str,
        partition: &str,
        result: bool,
    ) -> Result<String, ProjectionError> {
        let mut state = self.running().await?;
        let running = state.as_mut().expect("running() checked");
        let managed = find(running, name)?;
        if let Some(run) = &managed.run {
            let partition = partition.to_owned();
            let answer = run
                .handler
                .call(move |h| {
                    if result {
                        h.result(&partition)
                    } else {
                        h.state(&partition)
                    }
                })
                .await
                .map_err(ProjectionError::OperationFailed)?
                .map_err(ProjectionError::OperationFailed)?;
            return Ok(answer.unwrap_or_default());
        }
        // Not running: the state as of its last checkpoint.
        let node = self.inner.node.clone();
        let definition = managed.definition.clone();
        let partition = partition.to_owned();
        stele_cluster::blocking::spawn(move || {
            let Some(checkpoint) =
                store::read_checkpoint(&node, &definition.name, definition.epoch)?
            else {
                return Ok(String::new());
            };
            if partition.is_empty() {
                return Ok(checkpoint.state);
            }
            Ok(store::read_partition_state(
                &node,
                &definition.name,
                &partition,
                definition.epoch,
                checkpoint.tag,
            )?
            .unwrap_or_default())
        })
        .await
        .map_err(|e| ProjectionError::OperationFailed(e.to_string()))?
        .map_err(ProjectionError::OperationFailed)
    }

    pub async fn query(&self, name: &str) -> Result<QueryInfo, ProjectionError> {
        let mut state = self.running().await?;
        let running = state.as_mut().expect("running() checked");
        let definition = &find(running, name)?.definition;
        Ok(QueryInfo {
            name: definition.name.clone(),
            query: definition.query.clone(),
            mode: definition.mode,
            emit_enabled: definition.emit_enabled,
            track_emitted_streams: definition.track_emitted_streams,
        })
    }

    /// Stops every projection (with checkpoints) and loads them again from the log.
    pub async fn restart_subsystem(&self) -> Result<(), ProjectionError> {
        let mut state = self.running().await?;
        let running = state.take().expect("running() checked");
        let term = running.term;
        super::stop_all(running, true).await;
        *state = Some(self.load(term).await?);
        Ok(())
    }
}

fn find<'a>(running: &'a mut Running, name: &str) -> Result<&'a mut Managed, ProjectionError> {
    running
        .projections
        .get_mut(name)
        .ok_or_else(|| ProjectionError::NotFound(name.to_owned()))
}

/// Whether the projection has a run that is going (not ended, stopped or faulted).
fn is_running(managed: &Managed) -> bool {
    managed
        .run
        .as_ref()
        .is_some_and(|run| matches!(run.stats().core, CoreStatus::Starting | CoreStatus::Running))
}

/// Names become stream names: no empty name, no control characters, bounded length.
fn check_name(name: &str) -> Result<(), ProjectionError> {
    const MAX_NAME_BYTES: usize = 256;
    if name.is_empty() {
        return Err(ProjectionError::OperationFailed(
            "Projection name is required".into(),
        ));
    }
    if name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control) {
        return Err(ProjectionError::OperationFailed(format!(
            "a projection name is at most {MAX_NAME_BYTES} bytes without control characters"
        )));
    }
    Ok(())
}

fn check_native(name: &str, query: &str) -> Result<(), ProjectionError> {
    crate::native::Native::new(name, query)
        .map(|_| ())
        .map_err(ProjectionError::OperationFailed)
}
