//! Writes: appends and deletes, validated and proposed on the leader (with the metadata event
//! a soft delete or a recreation records, `metadata_writes.rs`), forwarded to it from other
//! nodes.

use super::*;

/// .NET ticks since the Unix epoch, now.
pub fn now_ticks() -> i64 {
    let since = crate::determinism::unix_now();
    since.as_secs() as i64 * TICKS_PER_SECOND + since.subsec_nanos() as i64 / 100
}

impl Node {
    /// Writes a command: on the leader directly; elsewhere NotLeader when the client asked
    /// for the leader, else forwarded to the leader over the internal port.
    async fn write(
        &self,
        command: Command,
        requires_leader: bool,
    ) -> Result<CommandResult, WriteError> {
        if let Some(cause) = self.inner.log.log.poison_cause() {
            return Err(WriteError::LogFailed(cause.message.clone()));
        }
        if let Some(cause) = self.inner.fatal.get() {
            return Err(WriteError::Fatal(cause.clone()));
        }
        // Every command is checked here, whichever way it came: a client's through the API,
        // or a peer's forwarded one (deserialised, so never checked by StreamName::new).
        stele_core::validate_command(&command, &self.write_limits())?;
        match self.leader_check() {
            Ok(()) => self.write_local(command).await,
            Err(leader) if requires_leader => Err(WriteError::NotLeader { leader }),
            Err(_) => self.forward(command).await,
        }
    }

    /// Proposes a write on this node, the leader: with the metadata event it must record
    /// (`metadata_writes.rs`), merged again if the metadata stream moved before it applied.
    async fn write_local(&self, command: Command) -> Result<CommandResult, WriteError> {
        let stream = command.stream().clone();
        let mut command = command;
        for _ in 0..crate::metadata_writes::METADATA_MERGE_ATTEMPTS {
            let proposed = crate::metadata_writes::with_metadata(
                &self.inner.index,
                &self.inner.log.log,
                command,
            )
            .map_err(|cause| WriteError::MetadataUnreadable {
                stream: stream.clone(),
                cause,
            })?;
            // Only a write with a metadata event can come back to be merged again: only it
            // keeps a copy (an ordinary append is proposed as it is, never cloned).
            let Command::WithMetadata { write, .. } = &proposed else {
                return self.propose(proposed).await;
            };
            let again = (**write).clone();
            match self.propose(proposed).await? {
                CommandResult::MetadataMoved => command = again,
                result => return Ok(result),
            }
        }
        Err(WriteError::MetadataContended { stream })
    }

    async fn propose(&self, command: Command) -> Result<CommandResult, WriteError> {
        let write = self.inner.raft.client_write(command);
        match tokio::time::timeout(self.inner.config.write_timeout, write).await {
            Err(_) => Err(WriteError::Timeout),
            Ok(Ok(response)) => Ok(response.data),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                Err(WriteError::NotLeader {
                    leader: f.leader_node.and_then(|n| split_host_port(&n.http)),
                })
            }
            Ok(Err(RaftError::APIError(e))) => Err(WriteError::Refused(render_chain(&e))),
            // Stopped because the node is shutting down: not ready, as before it started.
            Ok(Err(RaftError::Fatal(_))) if *self.inner.shutdown.borrow() => {
                Err(WriteError::NotReady)
            }
            Ok(Err(RaftError::Fatal(e))) => {
                let cause = render_chain(&e);
                self.stop_on_fatal(cause);
                let cause = self.inner.fatal.get().cloned().unwrap_or_default();
                Err(WriteError::Fatal(cause))
            }
        }
    }

    /// Sends a write to the leader and waits for its outcome.
    async fn forward(&self, command: Command) -> Result<CommandResult, WriteError> {
        let metrics = self.inner.raft.metrics().borrow_watched().clone();
        let leader = metrics.current_leader.and_then(|id| {
            metrics
                .membership_config
                .membership()
                .get_node(&id)
                .map(|n| (id, n.clone()))
        });
        let Some((leader_id, leader_addr)) = leader else {
            return Err(WriteError::NotLeader { leader: None });
        };
        if leader_id == self.inner.identity.node_id {
            return self.write_local(command).await;
        }
        let peer = self.inner.peers.get(leader_id, &leader_addr.internal);
        // The leader gives up after its own write timeout; allow for the round trip.
        let timeout = self.inner.config.write_timeout + Duration::from_secs(1);
        match peer.call(&Request::Forward(command), timeout).await {
            Ok(Reply::Forwarded(Ok(result))) => Ok(result),
            Ok(Reply::Forwarded(Err(e))) => Err(match e {
                ForwardError::NotLeader { leader } => WriteError::NotLeader { leader },
                ForwardError::NotReady => WriteError::NotReady,
                ForwardError::Timeout => WriteError::Timeout,
                ForwardError::Failed(e) => WriteError::LeaderFailed(e),
            }),
            Ok(other) => Err(WriteError::ForwardUnanswered(format!(
                "the leader answered with {other:?}"
            ))),
            // Never sent: the client may retry anywhere.
            Err(
                CallError::Connect { .. } | CallError::Refused { .. } | CallError::Backoff { .. },
            ) => Err(WriteError::NotReady),
            // Sent, outcome unknown.
            Err(CallError::Io { .. } | CallError::Timeout { .. }) => Err(WriteError::Timeout),
        }
    }

    /// Handles a write another node forwarded to this one.
    pub(crate) async fn handle_forward(
        &self,
        command: Command,
    ) -> Result<CommandResult, ForwardError> {
        self.write(command, true).await.map_err(|e| match e {
            WriteError::NotLeader { leader } => ForwardError::NotLeader { leader },
            // A leader whose engine stopped is not ready, as it answered before it had a
            // fatal lane; the follower's client goes elsewhere.
            WriteError::NotReady | WriteError::Fatal(_) => ForwardError::NotReady,
            WriteError::Timeout => ForwardError::Timeout,
            other => ForwardError::Failed(other.to_string()),
        })
    }

    /// Appends events to a stream. The answer comes once a quorum has the events on disk and
    /// the leader has applied them. A node that is not the leader forwards the append to the
    /// leader, unless `requires_leader` (then it answers NotLeader).
    pub async fn append(
        &self,
        stream: StreamName,
        expected: ExpectedRevision,
        events: Vec<ProposedEvent>,
        requires_leader: bool,
    ) -> Result<AppendOutcome, WriteError> {
        let created = now_ticks();
        let records = events
            .into_iter()
            .map(|e| EventRecord::from_proposed(stream.clone(), e, created))
            .collect();
        let command = Command::Append {
            stream: stream.clone(),
            expected,
            events: records,
        };
        match self.write(command, requires_leader).await? {
            CommandResult::Appended {
                last_revision,
                last_position,
                ..
            } => Ok(AppendOutcome::Success {
                current_revision: Some(last_revision),
                position: Some(last_position),
            }),
            CommandResult::AppendedNothing { current } => Ok(AppendOutcome::Success {
                current_revision: current,
                position: None,
            }),
            CommandResult::WrongExpectedVersion { current, expected } => {
                Ok(AppendOutcome::WrongExpectedVersion { current, expected })
            }
            CommandResult::StreamDeleted => Err(WriteError::StreamDeleted(stream)),
            other => Err(WriteError::UnexpectedResult {
                operation: "an append",
                result: format!("{other:?}"),
            }),
        }
    }

    /// Soft-deletes (`DeleteKind::Soft`) or tombstones (`DeleteKind::Hard`) a stream.
    pub async fn delete(
        &self,
        stream: StreamName,
        expected: ExpectedRevision,
        kind: DeleteKind,
        requires_leader: bool,
    ) -> Result<DeleteOutcome, WriteError> {
        let command = Command::Delete {
            stream: stream.clone(),
            expected,
            kind,
            created_ticks: now_ticks(),
        };
        match self.write(command, requires_leader).await? {
            CommandResult::Deleted { position } => Ok(DeleteOutcome::Deleted { position }),
            CommandResult::WrongExpectedVersion { current, expected } => {
                Ok(DeleteOutcome::WrongExpectedVersion { current, expected })
            }
            CommandResult::StreamDeleted => Err(WriteError::StreamDeleted(stream)),
            other => Err(WriteError::UnexpectedResult {
                operation: "a delete",
                result: format!("{other:?}"),
            }),
        }
    }
}
