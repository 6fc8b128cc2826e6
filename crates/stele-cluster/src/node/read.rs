//! Reads: a stream (with its metadata's rules) and `$all`, and which reads a node may serve.

use super::*;

/// The event in the record `payload` at `position`, as the index said: revision `revision`.
/// The one place a record becomes a read event (reads here, and catch-up reads in
/// `live.rs`), so a damaged record or an index pointing at the wrong record is reported the
/// same way, with its position.
pub(crate) fn event_at(
    payload: &[u8],
    position: u64,
    revision: u64,
) -> Result<RecordedEvent, ReadError> {
    let (_, body) =
        decode_record(payload).map_err(|e| ReadError::corrupt_at(position, e.to_string()))?;
    match body {
        RecordBody::Event { event, .. } => Ok(RecordedEvent {
            record: event,
            revision: StreamRevision(revision),
            position: LogPosition(position),
        }),
        other => Err(ReadError::corrupt_at(
            position,
            format!("the index points here, at no event but {other:?}"),
        )),
    }
}

/// Events read per index page by `$all` reads.
const ALL_READ_PAGE_EVENTS: usize = 512;

/// The fewest events a `$all` read asks the index for at a time (a filtered read of a few
/// events may have to look at many).
const ALL_READ_MIN_STEP: usize = 32;

impl Node {
    /// The leader's client endpoint, if this node knows who leads.
    pub(super) fn leader_endpoint(
        metrics: &openraft::RaftMetrics<crate::types::TypeConfig>,
    ) -> Option<(String, u16)> {
        metrics.current_leader.and_then(|leader| {
            metrics
                .membership_config
                .membership()
                .get_node(&leader)
                .and_then(|n| split_host_port(&n.http))
        })
    }

    pub(super) fn leader_check(&self) -> Result<(), Option<(String, u16)>> {
        let metrics = self.inner.raft.metrics().borrow_watched().clone();
        if metrics.state == ServerState::Leader {
            return Ok(());
        }
        Err(Self::leader_endpoint(&metrics))
    }

    /// Refuses a read that asked for the leader (`requires-leader: true`) on a node that is
    /// not the leader; any node serves other reads.
    pub fn check_read_routing(&self, requires_leader: bool) -> Result<(), ReadError> {
        if !requires_leader {
            return Ok(());
        }
        // A single node whose log failed (a full disk) has no leader to send readers to and
        // can take no writes anywhere: what it has durable is the latest there is, so it
        // serves reads that ask for the leader (issue 11, item 8).
        if self.inner.config.cluster_size == 1 && self.log_failed() {
            return Ok(());
        }
        self.leader_check()
            .map_err(|leader| ReadError::NotLeader { leader })
    }

    fn read_event(&self, position: u64, revision: u64) -> Result<RecordedEvent, ReadError> {
        let (payload, _) = self.inner.log.log.read(position).map_err(|e| match e {
            // Past what was durable when the log failed: not served until a restart.
            stele_log::LogError::Poisoned => ReadError::NotReady,
            e => ReadError::log(e, Some(position)),
        })?;
        event_at(&payload, position, revision)
    }

    /// Reads a stream, honouring its metadata (`$maxCount`, `$maxAge`, `$tb`).
    pub fn read_stream(&self, request: &StreamReadRequest) -> Result<StreamReadResult, ReadError> {
        let index = &self.inner.index;
        let internal = ReadError::index;
        let state = index.stream_state(&request.stream).map_err(internal)?;
        if state.tombstoned {
            return Err(ReadError::StreamDeleted(request.stream.clone()));
        }
        if !state.exists() {
            return Ok(StreamReadResult::NotFound);
        }
        let last = state
            .last_revision
            .expect("an existing stream has a revision");
        let metadata = index.stream_metadata(&request.stream).map_err(internal)?;
        let first_visible = metadata.first_visible_revision(last, state.deleted_before);
        let count = request.max_count.min(usize::MAX as u64) as usize;
        let range = match request.direction {
            Direction::Forwards => {
                let from = match request.start {
                    StreamStart::Start => first_visible,
                    StreamStart::End => last + 1,
                    StreamStart::Revision(r) => r.max(first_visible),
                };
                if from > last || count == 0 {
                    Vec::new()
                } else {
                    index
                        .stream_range(&request.stream, from, true, count)
                        .map_err(internal)?
                }
            }
            Direction::Backwards => {
                let from = match request.start {
                    StreamStart::Start => 0,
                    StreamStart::End => last,
                    StreamStart::Revision(r) => r.min(last),
                };
                if from < first_visible || count == 0 {
                    Vec::new()
                } else {
                    let mut range = index
                        .stream_range(&request.stream, from, false, count)
                        .map_err(internal)?;
                    range.retain(|&(rev, _)| rev >= first_visible);
                    range
                }
            }
        };
        let now = now_ticks();
        let mut events = Vec::with_capacity(range.len());
        for (revision, position) in range {
            let event = self.read_event(position, revision)?;
            if metadata.is_young_enough(event.record.created_ticks, now) {
                events.push(event);
            }
        }
        Ok(StreamReadResult::Events(events))
    }

    /// Reads `$all`, keeping only the events `filter` accepts (and counting only those).
    pub fn read_all(
        &self,
        request: &AllReadRequest,
        filter: &dyn Fn(&RecordedEvent) -> bool,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        let index = &self.inner.index;
        let internal = ReadError::index;
        let forwards = request.direction == Direction::Forwards;
        let want = request.max_count.min(usize::MAX as u64) as usize;
        let mut from = match (request.start, forwards) {
            (AllStart::Start, true) => 0,
            (AllStart::Start, false) => return Ok(Vec::new()),
            (AllStart::End, true) => return Ok(Vec::new()),
            (AllStart::End, false) => u64::MAX,
            (AllStart::Position(p), _) => p,
        };
        let mut events = Vec::new();
        while events.len() < want {
            // A small read (the last event, say) reads a small page.
            let step = ALL_READ_PAGE_EVENTS.min((want - events.len()).max(ALL_READ_MIN_STEP));
            let page = index.all_range(from, forwards, step).map_err(internal)?;
            let page_len = page.len();
            // One sequential pass over the log, as catch-up reads do (`live.rs`).
            let mut ascending = page.clone();
            if !forwards {
                ascending.reverse();
            }
            let mut read = self.read_events_at(&ascending)?;
            if !forwards {
                read.reverse();
            }
            for event in read {
                if filter(&event) {
                    events.push(event);
                    if events.len() == want {
                        break;
                    }
                }
            }
            if page_len < step {
                break;
            }
            let &(last_position, _) = page.last().expect("a full page");
            from = if forwards {
                last_position + 1
            } else if last_position == 0 {
                break;
            } else {
                last_position - 1
            };
        }
        Ok(events)
    }

    /// Checks that a `$all` position a client sent is one the log gave out: the start, an
    /// event's position, or at or past the end.
    pub fn check_all_position(&self, position: u64) -> Result<(), ReadError> {
        let end = self.inner.applied.event_end.load(Ordering::Acquire);
        if position == 0 || position >= end {
            return Ok(());
        }
        let at = self
            .inner
            .index
            .all_range(position, true, 1)
            .map_err(ReadError::index)?;
        match at.first() {
            Some(&(p, _)) if p == position => Ok(()),
            _ => Err(ReadError::InvalidPosition),
        }
    }

    /// The change counter of `stream`'s metadata (and, for a system stream, of the stream
    /// itself): see [`crate::stream_versions`]. Take it before reading what it guards.
    pub fn stream_version(&self, stream: &str) -> u64 {
        self.inner.applied.stream_versions.version(stream)
    }

    /// Position of the last event in `$all` (what `End` means), 0 when there is none.
    pub fn last_position(&self) -> LogPosition {
        LogPosition(
            self.inner
                .applied
                .event_end
                .load(Ordering::Acquire)
                .saturating_sub(1),
        )
    }
}
