//! How one committed command changes the index: the decisions are stele-core's pure
//! functions (`decide_append`, `decide_delete`, `records_metadata`, `decide_metadata`) over
//! what the index writer holds; the effects (index puts, what the live feed publishes) are
//! here. Every node runs this on the same log and so decides the same; a replay after a
//! crash must decide exactly as the first apply did, which is why every read goes through
//! the writer (its own pending puts included), never the committed index.

use std::io;

use stele_core::{
    decide_append, decide_delete, decide_metadata, records_metadata, AppendDecision, Command,
    CommandResult, DeleteDecision, DeleteKind, EventRecord, ExpectedRevision, LogPosition,
    MetadataDecision, RecordedEvent, StreamMetadata, StreamName, StreamRevision, StreamState,
};
use stele_index::IndexWriter;

/// What one batch makes visible, gathered while it is applied for the live feed.
pub(crate) struct Published {
    /// `None` when nobody is subscribed: the events are not copied.
    pub events: Option<Vec<RecordedEvent>>,
    pub tombstoned: Vec<StreamName>,
}

type ApplyResult<T> = Result<T, io::Error>;

fn index_err(e: stele_index::IndexError) -> io::Error {
    io::Error::other(format!("index: {e}"))
}

/// The index writer of the batch being applied, and what the batch gathers.
pub(crate) struct Apply<'w, 'i> {
    pub w: &'w mut IndexWriter<'i>,
    /// Position of the last event applied + 1, so far in this batch.
    pub event_end: &'w mut u64,
    pub published: &'w mut Published,
    /// The committed index, read only by an injected bug.
    #[cfg_attr(not(feature = "injected-bugs"), allow(dead_code))]
    pub committed: &'w stele_index::Index,
}

impl Apply<'_, '_> {
    /// Applies `command`, whose records are at `positions` (one per record, in order).
    pub fn command(&mut self, command: &Command, positions: &[u64]) -> ApplyResult<CommandResult> {
        match command {
            Command::Append {
                stream,
                expected,
                events,
            } => {
                let state = self.w.stream_state(stream).map_err(index_err)?;
                let decision = self.decide_append(&state, stream, *expected, events)?;
                self.append(stream, *expected, events, positions, state, decision)
            }
            Command::Delete {
                stream,
                expected,
                kind,
                ..
            } => {
                let state = self.w.stream_state(stream).map_err(index_err)?;
                let decision = decide_delete(&state, *expected);
                self.delete(stream, *expected, *kind, positions[0], state, decision)
            }
            Command::WithMetadata {
                write,
                metadata,
                metadata_expected,
            } => self.with_metadata(write, metadata, *metadata_expected, positions),
        }
    }

    /// A write and its metadata event, all or nothing: the write is decided first; if it
    /// records metadata and the metadata stream is where the leader found it, both are
    /// written, the metadata event at the entry's last position.
    fn with_metadata(
        &mut self,
        write: &Command,
        metadata: &EventRecord,
        metadata_expected: ExpectedRevision,
        positions: &[u64],
    ) -> ApplyResult<CommandResult> {
        let (&metadata_position, write_positions) = positions
            .split_last()
            .ok_or_else(|| io::Error::other("a write with metadata has no records"))?;
        let stream = write.stream();
        let state = self.w.stream_state(stream).map_err(index_err)?;
        let meta_state = self.w.stream_state(&metadata.stream).map_err(index_err)?;
        let (result, records) = match write {
            Command::Append {
                expected, events, ..
            } => {
                let decision = self.decide_append(&state, stream, *expected, events)?;
                let records = records_metadata(&state, Some(&decision), None) && !events.is_empty();
                let metadata = match records {
                    true => decide_metadata(&meta_state, metadata_expected),
                    false => MetadataDecision::Skip,
                };
                if metadata == MetadataDecision::Moved {
                    return Ok(CommandResult::MetadataMoved);
                }
                let result =
                    self.append(stream, *expected, events, write_positions, state, decision)?;
                (result, metadata)
            }
            Command::Delete { expected, kind, .. } => {
                let decision = decide_delete(&state, *expected);
                let records =
                    *kind == DeleteKind::Soft && records_metadata(&state, None, Some(&decision));
                let metadata = match records {
                    true => decide_metadata(&meta_state, metadata_expected),
                    false => MetadataDecision::Skip,
                };
                if metadata == MetadataDecision::Moved {
                    return Ok(CommandResult::MetadataMoved);
                }
                let result = self.delete(
                    stream,
                    *expected,
                    *kind,
                    write_positions[0],
                    state,
                    decision,
                )?;
                (result, metadata)
            }
            Command::WithMetadata { .. } => {
                return Err(io::Error::other("a write with metadata nests another"))
            }
        };
        if let MetadataDecision::Write { revision } = records {
            self.write_events(
                &metadata.stream,
                meta_state,
                revision,
                std::slice::from_ref(metadata),
                &[metadata_position],
            )?;
        }
        Ok(result)
    }

    /// Decides an append, recognising an idempotent retry (same event ids at consecutive
    /// revisions of this stream) by the writer's view, pending events included.
    fn decide_append(
        &self,
        state: &StreamState,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: &[EventRecord],
    ) -> ApplyResult<AppendDecision> {
        let (existing_first, all_follow) = match events.first() {
            Some(first) => match self.w.event_revision(&first.id).map_err(index_err)? {
                Some((s, rev)) if &s == stream => {
                    let mut all = true;
                    for (i, e) in events.iter().enumerate().skip(1) {
                        let found = self.w.event_revision(&e.id).map_err(index_err)?;
                        if found != Some((stream.clone(), rev + i as u64)) {
                            all = false;
                            break;
                        }
                    }
                    (Some(rev), all)
                }
                _ => (None, false),
            },
            None => (None, false),
        };
        Ok(decide_append(
            state,
            expected,
            events.len(),
            existing_first,
            all_follow,
        ))
    }

    fn append(
        &mut self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: &[EventRecord],
        positions: &[u64],
        state: StreamState,
        decision: AppendDecision,
    ) -> ApplyResult<CommandResult> {
        match decision {
            AppendDecision::Write { first_revision } => {
                if events.is_empty() {
                    return Ok(CommandResult::AppendedNothing {
                        current: state.last_revision.map(StreamRevision),
                    });
                }
                self.write_events(stream, state, first_revision, events, positions)
            }
            AppendDecision::AlreadyWritten {
                first_revision,
                last_revision,
            } => {
                let first_id = &events[0].id;
                let last_id = &events[events.len() - 1].id;
                Ok(CommandResult::Appended {
                    first_revision: StreamRevision(first_revision),
                    last_revision: StreamRevision(last_revision),
                    first_position: LogPosition(self.retried(stream, first_revision, first_id)?),
                    last_position: LogPosition(self.retried(stream, last_revision, last_id)?),
                })
            }
            AppendDecision::WrongExpectedVersion { current } => {
                Ok(CommandResult::WrongExpectedVersion { current, expected })
            }
            AppendDecision::StreamDeleted => Ok(CommandResult::StreamDeleted),
        }
    }

    /// The position of an event an idempotent retry wrote before. Read through the writer:
    /// the original append may be in this very batch (a replay after a crash applies both
    /// together), and the replay must decide exactly as the first apply did.
    fn retried(&self, stream: &StreamName, revision: u64, id: &uuid::Uuid) -> ApplyResult<u64> {
        let lost = || {
            io::Error::other(format!(
                "index lost revision {revision} of {stream} in a retry"
            ))
        };
        #[cfg(feature = "injected-bugs")]
        if crate::bugs::active(crate::bugs::Bug::RetryReadsCommittedIndex) {
            return self
                .committed
                .stream_range(stream, revision, true, 1)
                .map_err(index_err)?
                .first()
                .map(|&(_, p)| p)
                .ok_or_else(lost);
        }
        self.w
            .event_position(stream, revision, id)
            .map_err(index_err)?
            .ok_or_else(lost)
    }

    /// Writes `events` at consecutive revisions from `first_revision`, at `positions`.
    fn write_events(
        &mut self,
        stream: &StreamName,
        state: StreamState,
        first_revision: u64,
        events: &[EventRecord],
        positions: &[u64],
    ) -> ApplyResult<CommandResult> {
        if state.awaits_recreation() {
            self.recreate(stream, &state)?;
        }
        for (i, event) in events.iter().enumerate() {
            let revision = first_revision + i as u64;
            self.w
                .put_event(stream, revision, positions[i], &event.id)
                .map_err(index_err)?;
            if let Some(published) = &mut self.published.events {
                published.push(RecordedEvent {
                    record: event.clone(),
                    revision: StreamRevision(revision),
                    position: LogPosition(positions[i]),
                });
            }
            if event.event_type == stele_core::metadata::METADATA_EVENT_TYPE {
                if let Some(target) = stream.metadata_of() {
                    self.w
                        .put_stream_metadata(&target, &StreamMetadata::from_json(&event.data))
                        .map_err(index_err)?;
                }
            }
        }
        let last_revision = first_revision + events.len() as u64 - 1;
        let mut new_state = state;
        new_state.last_revision = Some(last_revision);
        self.w
            .put_stream_state(stream, &new_state)
            .map_err(index_err)?;
        let last_position = positions[events.len() - 1];
        *self.event_end = (*self.event_end).max(last_position + 1);
        Ok(CommandResult::Appended {
            first_revision: StreamRevision(first_revision),
            last_revision: StreamRevision(last_revision),
            first_position: LogPosition(positions[0]),
            last_position: LogPosition(last_position),
        })
    }

    /// A soft-deleted stream comes back. Its metadata's `$tb` still says "deleted" when the
    /// append that recreates it carries no metadata event (logged before Stele recorded soft
    /// deletes in the metadata, or proposed while the delete was still in flight): the index
    /// then keeps `$tb` at the first new revision itself, so the stream is readable; the
    /// appended `$metadata` event of a [`Command::WithMetadata`] says the same and follows.
    fn recreate(&mut self, stream: &StreamName, state: &StreamState) -> ApplyResult<()> {
        let mut metadata = self.w.stream_metadata(stream).map_err(index_err)?;
        if metadata.says_soft_deleted() {
            metadata.truncate_before = state.deleted_before;
            self.w
                .put_stream_metadata(stream, &metadata)
                .map_err(index_err)?;
        }
        Ok(())
    }

    fn delete(
        &mut self,
        stream: &StreamName,
        expected: ExpectedRevision,
        kind: DeleteKind,
        position: u64,
        state: StreamState,
        decision: DeleteDecision,
    ) -> ApplyResult<CommandResult> {
        match decision {
            DeleteDecision::Delete => {
                let mut new_state = state.clone();
                match kind {
                    DeleteKind::Soft => new_state.deleted_before = Some(state.next_revision()),
                    DeleteKind::Hard => {
                        new_state.tombstoned = true;
                        self.published.tombstoned.push(stream.clone());
                    }
                }
                self.w
                    .put_stream_state(stream, &new_state)
                    .map_err(index_err)?;
                Ok(CommandResult::Deleted {
                    position: LogPosition(position),
                })
            }
            DeleteDecision::WrongExpectedVersion { current } => {
                Ok(CommandResult::WrongExpectedVersion { current, expected })
            }
            DeleteDecision::StreamDeleted => Ok(CommandResult::StreamDeleted),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use stele_core::metadata::SOFT_DELETED_TRUNCATE_BEFORE;
    use stele_core::ContentType;
    use stele_index::Index;

    use super::*;

    fn name(s: &str) -> StreamName {
        StreamName::new(s).unwrap()
    }

    fn event(stream: &str, n: u8, event_type: &str, data: &str) -> EventRecord {
        EventRecord {
            stream: name(stream),
            id: uuid::Uuid::from_bytes([n; 16]),
            event_type: event_type.into(),
            content_type: ContentType::Json,
            created_ticks: 1,
            custom_metadata: Bytes::new(),
            data: Bytes::from(data.to_owned()),
        }
    }

    fn metadata(n: u8, tb: u64) -> EventRecord {
        event("$$s", n, "$metadata", &format!(r#"{{"$tb":{tb},"k":1}}"#))
    }

    /// Applies each command in its own index transaction, its records at consecutive
    /// positions from `*next`, and returns the results.
    fn apply(index: &Index, next: &mut u64, commands: &[Command]) -> Vec<CommandResult> {
        let mut results = Vec::new();
        for command in commands {
            let records = crate::record::encode_entry(&crate::types::Entry {
                log_id: crate::types::LogId::new(
                    openraft::impls::leader_id_adv::LeaderId {
                        term: 1,
                        node_id: 1,
                    },
                    *next,
                ),
                payload: openraft::EntryPayload::Normal(command.clone()),
            });
            let positions: Vec<u64> = (0..records.len() as u64).map(|i| *next + i).collect();
            *next += records.len() as u64;
            let mut w = index.begin().unwrap();
            let (mut end, mut published) = (
                0,
                Published {
                    events: None,
                    tombstoned: Vec::new(),
                },
            );
            let result = Apply {
                w: &mut w,
                event_end: &mut end,
                published: &mut published,
                committed: index,
            }
            .command(command, &positions)
            .unwrap();
            w.commit().unwrap();
            results.push(result);
        }
        results
    }

    fn append(stream: &str, expected: ExpectedRevision, n: u8) -> Command {
        Command::Append {
            stream: name(stream),
            expected,
            events: vec![event(stream, n, "t", "{}")],
        }
    }

    fn soft_delete(expected: ExpectedRevision) -> Command {
        Command::Delete {
            stream: name("s"),
            expected,
            kind: DeleteKind::Soft,
            created_ticks: 1,
        }
    }

    fn with(write: Command, metadata: EventRecord, expected: ExpectedRevision) -> Command {
        Command::WithMetadata {
            write: Box::new(write),
            metadata,
            metadata_expected: expected,
        }
    }

    /// A soft delete and the append that recreates the stream each write their `$metadata`
    /// event with them, at the next revision of `$$s`, and the index's `$tb` follows.
    #[test]
    fn a_soft_delete_and_a_recreation_write_their_metadata_events() {
        let index = Index::in_memory().unwrap();
        let mut next = 0;
        use ExpectedRevision::{Exact, NoStream};
        let results = apply(
            &index,
            &mut next,
            &[
                append("s", NoStream, 1),
                with(
                    soft_delete(Exact(0)),
                    metadata(2, SOFT_DELETED_TRUNCATE_BEFORE),
                    NoStream,
                ),
            ],
        );
        assert!(matches!(results[1], CommandResult::Deleted { .. }));
        let meta = index.stream_state(&name("$$s")).unwrap();
        assert_eq!(meta.last_revision, Some(0), "the soft delete wrote $$s@0");
        assert!(index
            .stream_metadata(&name("s"))
            .unwrap()
            .says_soft_deleted());

        let results = apply(
            &index,
            &mut next,
            &[with(
                append("s", ExpectedRevision::Any, 3),
                metadata(4, 1),
                Exact(0),
            )],
        );
        assert!(
            matches!(
                results[0],
                CommandResult::Appended {
                    first_revision: StreamRevision(1),
                    ..
                }
            ),
            "{results:?}"
        );
        assert_eq!(
            index.stream_state(&name("$$s")).unwrap().last_revision,
            Some(1)
        );
        assert_eq!(
            index.stream_metadata(&name("s")).unwrap().truncate_before,
            Some(1)
        );
    }

    /// When the metadata stream moved after the leader merged the event (a metadata write in
    /// between), nothing of the command is written: neither the delete nor the event.
    #[test]
    fn a_moved_metadata_stream_writes_nothing() {
        let index = Index::in_memory().unwrap();
        let mut next = 0;
        use ExpectedRevision::{Exact, NoStream};
        let results = apply(
            &index,
            &mut next,
            &[
                append("s", NoStream, 1),
                append("$$s", NoStream, 2),
                with(
                    soft_delete(Exact(0)),
                    metadata(3, SOFT_DELETED_TRUNCATE_BEFORE),
                    NoStream,
                ),
            ],
        );
        assert_eq!(results[2], CommandResult::MetadataMoved);
        let state = index.stream_state(&name("s")).unwrap();
        assert!(state.exists(), "the stream is not deleted");
        assert_eq!(
            index.stream_state(&name("$$s")).unwrap().last_revision,
            Some(0)
        );
    }

    /// A refused delete writes no metadata; an append to a stream that is not awaiting
    /// recreation (someone recreated it first) writes its events but not the event.
    #[test]
    fn metadata_is_written_only_when_the_write_records_it() {
        let index = Index::in_memory().unwrap();
        let mut next = 0;
        use ExpectedRevision::{Any, Exact, NoStream};
        let results = apply(
            &index,
            &mut next,
            &[
                append("s", NoStream, 1),
                with(
                    soft_delete(Exact(7)),
                    metadata(2, SOFT_DELETED_TRUNCATE_BEFORE),
                    NoStream,
                ),
                with(append("s", Any, 3), metadata(4, 1), NoStream),
            ],
        );
        assert!(matches!(
            results[1],
            CommandResult::WrongExpectedVersion { .. }
        ));
        assert!(matches!(results[2], CommandResult::Appended { .. }));
        assert_eq!(
            index.stream_state(&name("$$s")).unwrap().last_revision,
            None
        );
    }

    /// An append logged without a metadata event recreates a soft-deleted stream as before
    /// (a log written before soft deletes were recorded in metadata replays unchanged), and
    /// the index's `$tb` stops saying "deleted" so the new events are readable.
    #[test]
    fn a_plain_append_still_recreates_a_soft_deleted_stream() {
        let index = Index::in_memory().unwrap();
        let mut next = 0;
        use ExpectedRevision::{Any, Exact, NoStream};
        let results = apply(
            &index,
            &mut next,
            &[
                append("s", NoStream, 1),
                with(
                    soft_delete(Exact(0)),
                    metadata(2, SOFT_DELETED_TRUNCATE_BEFORE),
                    NoStream,
                ),
                append("s", Any, 3),
            ],
        );
        assert!(matches!(
            results[2],
            CommandResult::Appended {
                first_revision: StreamRevision(1),
                ..
            }
        ));
        assert_eq!(
            index.stream_metadata(&name("s")).unwrap().truncate_before,
            Some(1)
        );
    }
}
