//! The raft network over the node-to-node transport (`transport.rs`): openraft asks for a
//! client per target node, and every RPC becomes one request on a pooled connection to the
//! target's internal endpoint.
//!
//! A peer that cannot be reached is reported as openraft's `Unreachable`, and [`backoff`]
//! gives openraft the same capped exponential series the transport dials with
//! (`reachability.rs`): openraft waits on it between replication attempts, and a new
//! replication stream to a down peer first waits out the peer's own backoff. Without both, the
//! leader redialed a killed follower in a loop (issue 11 item 2).
//!
//! [`backoff`]: RaftNetworkV2::backoff

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use openraft::base::{BoxFuture, BoxStream};
use openraft::errors::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RPCTypes, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse};
use openraft::raft::{
    StreamAppendResult, TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Append entries requests in flight on one replication stream at most.
const PIPELINE_DEPTH: usize = 64;

type StreamItem = Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>;

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct StreamState {
    read: tokio::io::ReadHalf<Conn>,
    pending: tokio::sync::mpsc::Receiver<()>,
    _writer: AbortOnDrop,
    done: bool,
}

use crate::net::{Conn, Net};
use crate::transport::{
    read_frame, write_frame, CallError, LocalIdentity, Peer, Reply, Request, StreamReply,
};
use crate::types::{NodeAddr, TypeConfig, Vote};

/// Every peer this node talks to, by node id; shared by the raft network and write
/// forwarding so both reuse the same connections.
pub struct Peers {
    net: Arc<dyn Net>,
    local: Arc<dyn LocalIdentity>,
    bind_ip: Option<IpAddr>,
    by_id: Mutex<HashMap<u64, Arc<Peer>>>,
}

impl Peers {
    pub fn new(
        net: Arc<dyn Net>,
        local: Arc<dyn LocalIdentity>,
        bind_ip: Option<IpAddr>,
    ) -> Arc<Peers> {
        Arc::new(Peers {
            net,
            local,
            bind_ip,
            by_id: Mutex::new(HashMap::new()),
        })
    }

    /// The peer `target` at `addr` (a new one if the address changed).
    pub fn get(&self, target: u64, addr: &str) -> Arc<Peer> {
        let mut by_id = self.by_id.lock().expect("peers lock");
        match by_id.get(&target) {
            Some(peer) if peer.addr() == addr => peer.clone(),
            _ => {
                let peer = Arc::new(Peer::new(
                    self.net.clone(),
                    self.local.clone(),
                    target,
                    addr.to_owned(),
                    self.bind_ip,
                ));
                by_id.insert(target, peer.clone());
                peer
            }
        }
    }
}

#[derive(Clone)]
pub struct Network {
    peers: Arc<Peers>,
}

impl Network {
    pub fn new(peers: Arc<Peers>) -> Network {
        Network { peers }
    }
}

pub struct NetworkClient {
    peer: Arc<Peer>,
    me: u64,
    target: u64,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = NetworkClient;

    async fn new_client(&mut self, target: u64, node: &NodeAddr) -> Self::Network {
        NetworkClient {
            peer: self.peers.get(target, &node.internal),
            me: self.peers.local.node_id(),
            target,
        }
    }
}

impl NetworkClient {
    async fn call(
        &self,
        action: RPCTypes,
        request: Request,
        option: &RPCOption,
    ) -> Result<Reply, RPCError<TypeConfig>> {
        let timeout = option.hard_ttl();
        self.peer
            .call(&request, timeout)
            .await
            .map_err(|e| match e {
                CallError::Timeout { .. } => RPCError::Timeout(Timeout {
                    action,
                    id: self.me,
                    target: self.target,
                    timeout,
                }),
                CallError::Connect { .. }
                | CallError::Refused { .. }
                | CallError::Backoff { .. } => RPCError::Unreachable(Unreachable::new(&e)),
                CallError::Io { .. } => {
                    self.peer.reset();
                    RPCError::Network(NetworkError::new(&e))
                }
            })
    }
}

fn unexpected(reply: Reply) -> RPCError<TypeConfig> {
    match reply {
        Reply::Failed(reason) => RPCError::Network(NetworkError::from_string(reason)),
        other => RPCError::Network(NetworkError::from_string(format!(
            "unexpected reply {other:?}"
        ))),
    }
}

impl RaftNetworkV2<TypeConfig> for NetworkClient {
    type SnapshotData = ();

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self
            .call(
                RPCTypes::AppendEntries,
                Request::AppendEntries(rpc),
                &option,
            )
            .await?
        {
            Reply::AppendEntries(response) => Ok(response),
            other => Err(unexpected(other)),
        }
    }

    /// Pipelined replication: requests go out on a dedicated connection as openraft produces
    /// them, without waiting for the previous answer (at most [`PIPELINE_DEPTH`] in flight);
    /// the follower hands them to its own `stream_append` and answers in order.
    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<'s, Result<BoxStream<'s, StreamItem>, RPCError<TypeConfig>>>
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
    {
        #[cfg(feature = "injected-bugs")]
        if crate::bugs::active(crate::bugs::Bug::CommitWithoutQuorum) {
            // Injected bug: the follower is counted as holding every entry, never sent.
            let replies = input.map(|request| {
                let last = request
                    .entries
                    .last()
                    .map(|e| e.log_id)
                    .or(request.prev_log_id);
                Ok(Ok(last))
            });
            return Box::pin(async move { Ok(Box::pin(replies) as BoxStream<'s, StreamItem>) });
        }
        let peer = self.peer.clone();
        let (me, target) = (self.me, self.target);
        let response_timeout = (option.hard_ttl() * 10).max(Duration::from_secs(1));
        Box::pin(async move {
            // A down peer is dialed again only once its backoff elapsed: openraft opens a new
            // stream as soon as the last one failed, and waits on its own backoff only between
            // requests of an open stream.
            peer.backoff().await;
            // Bounded: a connection whose handshake reply is lost (a partition that began
            // mid-handshake) would otherwise stall replication to this follower for good.
            // Found by the deterministic simulation.
            let open = async {
                let mut conn = peer
                    .connect()
                    .await
                    .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
                write_frame(&mut conn, &Request::StreamAppend)
                    .await
                    .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
                Ok::<_, RPCError<TypeConfig>>(conn)
            };
            let conn = match tokio::time::timeout(response_timeout, open).await {
                Ok(conn) => conn?,
                Err(_) => {
                    return Err(RPCError::Timeout(Timeout {
                        action: RPCTypes::AppendEntries,
                        id: me,
                        target,
                        timeout: response_timeout,
                    }))
                }
            };
            let (read, mut write) = tokio::io::split(conn);
            let (pending_tx, pending_rx) = tokio::sync::mpsc::channel::<()>(PIPELINE_DEPTH);
            let writer = tokio::spawn(async move {
                let mut input = input;
                while let Some(request) = input.next().await {
                    // Tell the reader to expect one more answer, then send.
                    if pending_tx.send(()).await.is_err() {
                        break;
                    }
                    if let Err(e) = write_frame(&mut write, &request).await {
                        tracing::debug!(error = %e, "replication stream write failed");
                        break;
                    }
                }
                let _ = write.shutdown().await;
            });
            let state = StreamState {
                read,
                pending: pending_rx,
                _writer: AbortOnDrop(writer),
                done: false,
            };
            let replies = futures::stream::unfold(state, move |mut state| async move {
                if state.done {
                    return None;
                }
                state.pending.recv().await?;
                let frame = tokio::time::timeout(
                    response_timeout,
                    read_frame::<StreamReply>(&mut state.read),
                )
                .await;
                let item: StreamItem = match frame {
                    Ok(Ok(Ok(result))) => {
                        state.done = result.is_err();
                        Ok(result)
                    }
                    Ok(Ok(Err(fatal))) => {
                        state.done = true;
                        Err(RPCError::Network(NetworkError::from_string(fatal)))
                    }
                    Ok(Err(e)) => {
                        state.done = true;
                        Err(RPCError::Network(NetworkError::new(&e)))
                    }
                    Err(_) => {
                        state.done = true;
                        Err(RPCError::Timeout(Timeout {
                            action: RPCTypes::AppendEntries,
                            id: me,
                            target,
                            timeout: response_timeout,
                        }))
                    }
                };
                Some((item, state))
            });
            let replies: BoxStream<'s, StreamItem> = Box::pin(replies);
            Ok(replies)
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self
            .call(RPCTypes::Vote, Request::Vote(rpc), &option)
            .await?
        {
            Reply::Vote(response) => Ok(response),
            other => Err(unexpected(other)),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self
            .call(RPCTypes::Vote, Request::PreVote(rpc), &option)
            .await?
        {
            Reply::Vote(response) => Ok(response),
            other => Err(unexpected(other)),
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self
            .call(
                RPCTypes::TransferLeader,
                Request::TransferLeader(req),
                &option,
            )
            .await?
        {
            Reply::TransferLeader(response) => Ok(response),
            other => Err(unexpected(other)),
        }
    }

    fn backoff(&self) -> Option<Backoff> {
        Some(Backoff::new(crate::reachability::backoff_series()))
    }

    async fn full_snapshot(
        &mut self,
        _vote: Vote,
        _snapshot: openraft::type_config::alias::SnapshotOf<TypeConfig, ()>,
        _cancel: impl std::future::Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        // Snapshots are never built (docs/design.md decision 2): a lagging node streams the log.
        Err(StreamingError::Unreachable(Unreachable::new(
            &std::io::Error::other("Stele never sends snapshots"),
        )))
    }
}
