//! Replays of a group's parked stream (effects: reads of the parked stream and appends of
//! its truncate-before), a page at a time: the next page is read once the retry queue has
//! been delivered, so a long parked stream never sits in memory whole. The replayed
//! messages join the [`Flow`](super::flow::Flow)'s retry queue.

use bytes::Bytes;
use stele_core::{ContentType, ProposedEvent};

use super::{Command, Group};
use crate::persistent::storage::{append, read_parked, ParkedPage, REPLAY_PAGE_MESSAGES};
use crate::persistent::PsError;

impl Group {
    /// Starts replaying the parked stream: `stop_at` messages at most, else all there now.
    /// It is read [`REPLAY_PAGE_MESSAGES`] links (and at most a reader page of bytes) at a
    /// time, the next page once the retry queue has been delivered, so a long parked stream
    /// never sits in memory whole.
    pub(super) fn replay(&mut self, stop_at: Option<u64>) -> Result<(), PsError> {
        if self.replaying {
            return Ok(());
        }
        self.replaying = true;
        self.read_parked_page(None, stop_at);
        Ok(())
    }

    pub(super) fn read_parked_page(&mut self, from: Option<u64>, remaining: Option<u64>) {
        let max = remaining.map_or(REPLAY_PAGE_MESSAGES, |r| r.min(REPLAY_PAGE_MESSAGES));
        if max == 0 {
            self.replaying = false;
            return;
        }
        let node = self.node.clone();
        let stream = self.key.parked_stream();
        let resolve_links = self.definition.settings.resolve_links;
        let rights = self.rights.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let result = stele_cluster::blocking::spawn(move || {
                read_parked(&node, &stream, resolve_links, rights.as_deref(), from, max)
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
            let _ = tx.send(Command::Replayed { result, remaining });
        });
    }

    pub(super) fn replayed(&mut self, result: Result<ParkedPage, String>, remaining: Option<u64>) {
        let page = match result {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(group = %self.key.id(), error = %e, "replaying parked messages failed");
                self.replaying = false;
                return;
            }
        };
        let count = page.messages.len() as u64;
        self.flow.replayed(page.messages);
        self.parked = self.parked.saturating_sub(count);
        let remaining = remaining.map(|r| r.saturating_sub(page.links_read));
        match page.next {
            Some(next) => {
                self.truncate_parked(next);
                if page.full && remaining != Some(0) {
                    self.replay_next = Some((next, remaining));
                } else {
                    self.replaying = false;
                }
            }
            None => self.replaying = false,
        }
    }

    /// Replayed messages leave the parked stream: moves its start (`$tb`) past them.
    fn truncate_parked(&self, truncate_before: u64) {
        let node = self.node.clone();
        let stream = self.key.parked_stream();
        let group = self.key.id();
        let written = self.parked_truncated.clone();
        tokio::spawn(async move {
            let mut written = written.lock().await;
            if *written >= truncate_before {
                return;
            }
            let metadata = serde_json::json!({ "$tb": truncate_before }).to_string();
            let event = ProposedEvent {
                id: stele_cluster::determinism::new_uuid(),
                event_type: "$metadata".to_owned(),
                content_type: ContentType::Json,
                custom_metadata: Bytes::new(),
                data: Bytes::from(metadata.into_bytes()),
            };
            match append(&node, stream.metadata_stream(), vec![event]).await {
                Ok(()) => *written = truncate_before,
                Err(e) => {
                    tracing::warn!(%group, error = %e, "truncating the parked stream after a replay failed")
                }
            }
        });
    }
}
