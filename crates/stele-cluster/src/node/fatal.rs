//! The fatal lane: what a node does when its consensus engine stops for a reason other than
//! the node shutting down (openraft's `Fatal`: a storage error under it, the state machine
//! failing, a panic). It does not limp on: it logs one error line with the cause, takes no
//! more writes (each is answered [`WriteError::Fatal`]) and reports not ready, so
//! `/health/live` answers 503, until it is restarted — the lane a node whose log failed
//! already takes ([`WriteError::LogFailed`]). Reads of what it applied go on.
//!
//! Two paths lead here, whichever comes first: a write that gets `RaftError::Fatal` back
//! (`write.rs`), and the engine's metrics channel closing under
//! `controller::follow_cluster_id`, which every node runs (so an idle node finds out too).

use super::*;

impl Node {
    /// Records that the consensus engine stopped with `cause`, unless the node is shutting
    /// down (then the engine stopped because it was told to). The first cause is kept and
    /// logged, once; later ones are dropped.
    pub(crate) fn stop_on_fatal(&self, cause: String) {
        if *self.inner.shutdown.borrow() {
            return;
        }
        if self.inner.fatal.set(cause).is_err() {
            return;
        }
        let cause = self.inner.fatal.get().expect("just set");
        if self.inner.log.log.is_poisoned() {
            // The engine stopped because the log failed: that failure has its own lane and
            // its own line (the server's log watch).
            tracing::info!(%cause, "the consensus engine stopped after the log failed");
            return;
        }
        tracing::error!(
            %cause,
            "the consensus engine stopped: this node takes no more writes and reports not \
             ready until it is restarted"
        );
    }

    /// Called when the consensus engine's task has ended (its metrics channel closed): the
    /// cause is the one it reported, or a panic when it reported none.
    pub(crate) fn engine_ended(&self) {
        let running = self
            .inner
            .raft
            .metrics()
            .borrow_watched()
            .running_state
            .clone();
        let cause = match running {
            Err(fatal) => render_chain(&fatal),
            Ok(()) => "its task ended without reporting why (a panic)".to_owned(),
        };
        self.stop_on_fatal(cause);
    }

    /// Why the consensus engine stopped, once it stopped other than by a shutdown: the node
    /// then takes no writes and reports not ready until it is restarted.
    pub fn fatal_failure(&self) -> Option<String> {
        self.inner.fatal.get().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stele_core::{ContentType, ExpectedRevision, ProposedEvent, StreamName};

    fn event() -> ProposedEvent {
        ProposedEvent {
            id: Uuid::new_v4(),
            event_type: "t".into(),
            content_type: ContentType::Json,
            custom_metadata: bytes::Bytes::new(),
            data: bytes::Bytes::from_static(b"{}"),
        }
    }

    async fn append(node: &Node) -> Result<AppendOutcome, WriteError> {
        let stream = StreamName::new("orders").unwrap();
        node.append(stream, ExpectedRevision::Any, vec![event()], false)
            .await
    }

    async fn wait_for_fatal(node: &Node) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(cause) = node.fatal_failure() {
                return cause;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the node never noticed its engine stopped"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Pins the fatal lane (issue 12, item 5): a consensus engine that stopped on its own
    /// left the node answering every write "not ready" with an ERROR line per write and
    /// nothing that said it must be restarted; now the node records the cause once, refuses
    /// writes as fatal and reports not ready (`/health/live` 503).
    #[tokio::test(flavor = "multi_thread")]
    async fn an_engine_that_stops_moves_the_node_to_the_stopped_state() {
        let node = Node::start(crate::fuzzing::single_node_config())
            .await
            .expect("node starts");
        assert!(node.wait_ready(Duration::from_secs(10)).await);
        append(&node).await.expect("a healthy node takes writes");
        assert_eq!(node.fatal_failure(), None);

        // The engine stops under the node, as a storage error or a panic in it would stop
        // it: the node itself was not shut down.
        node.raft().shutdown().await.expect("the engine stops");
        let cause = wait_for_fatal(&node).await;
        assert!(cause.contains("raft stopped"), "{cause}");

        assert!(!node.status().ready, "a stopped node reports not ready");
        let refused = append(&node)
            .await
            .expect_err("a stopped node takes no writes");
        assert_eq!(refused, WriteError::Fatal(cause.clone()));
        assert!(refused.is_fatal() && !refused.is_retryable());
        // The cause stays the first one.
        node.stop_on_fatal("a later cause".into());
        assert_eq!(node.fatal_failure(), Some(cause));
    }

    /// Pins that the lane is the node's own, not openraft's metrics: a fatal cause recorded
    /// while the engine still reports itself leader (a write saw `RaftError::Fatal` before
    /// the metrics changed) already refuses writes and readiness.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_recorded_fatal_cause_alone_stops_writes_and_readiness() {
        let node = Node::start(crate::fuzzing::single_node_config())
            .await
            .expect("node starts");
        assert!(node.wait_ready(Duration::from_secs(10)).await);
        node.stop_on_fatal("storage error: the state machine failed".into());
        assert_eq!(node.status().state, VNodeState::Leader);
        assert!(!node.status().ready);
        assert_eq!(
            append(&node).await,
            Err(WriteError::Fatal(
                "storage error: the state machine failed".into()
            ))
        );
        // A follower that forwarded a write here hears "not ready", as it did before the
        // lane existed, and sends its client elsewhere.
        let forwarded = stele_core::Command::Append {
            stream: StreamName::new("orders").unwrap(),
            expected: ExpectedRevision::Any,
            events: Vec::new(),
        };
        assert_eq!(
            node.handle_forward(forwarded).await,
            Err(ForwardError::NotReady)
        );
        node.shutdown().await;
    }

    /// Pins that a shutdown is not a fatal stop: the engine stops because it was told to,
    /// and nothing is recorded or logged.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_shutdown_is_not_fatal() {
        let node = Node::start(crate::fuzzing::single_node_config())
            .await
            .expect("node starts");
        assert!(node.wait_ready(Duration::from_secs(10)).await);
        node.shutdown().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        node.engine_ended();
        assert_eq!(node.fatal_failure(), None);
        let refused = append(&node)
            .await
            .expect_err("a stopped node takes no writes");
        assert_eq!(refused, WriteError::NotReady);
    }
}
