//! The node-to-node transport on `IntIp:IntTcpPort`: raft RPCs (append entries, vote,
//! pre-vote, leadership transfer) and writes a follower forwards to the leader.
//!
//! Framing: every message is a little-endian `u32` length followed by that many bytes of
//! postcard. A connection opens with a [`Hello`] naming the sender, the node it meant to
//! reach and the cluster it belongs to; the receiver refuses a connection meant for another
//! node (a wiped node came back at the same address under a new id) or from another cluster.
//! After the handshake a connection carries one request and its reply at a time; a caller that
//! needs concurrency takes another connection from the pool ([`Peer`]).
//!
//! Bounded: frames are at most [`MAX_FRAME_BYTES`], idle connections per peer at most
//! [`MAX_IDLE_CONNECTIONS`] (DESIGN.md decision 12).

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest, VoteResponse};
use openraft::raft::{StreamAppendResult, TransferLeaderRequest, TransferLeaderResponse};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use stele_core::{Command, CommandResult};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use uuid::Uuid;

use crate::net::{Conn, Listener, Net};
use crate::types::TypeConfig;

/// Largest message either way. An append entries request carries at most
/// `max_payload_entries` entries, each at most one client append (`MaxAppendSize`).
pub const MAX_FRAME_BYTES: u32 = 512 * 1024 * 1024;
/// The most `read_frame` reserves before a frame's bytes arrive.
const FRAME_PREALLOCATION_BYTES_MAX: usize = 64 * 1024;
/// Idle connections kept per peer; more may be open while calls are in flight.
const MAX_IDLE_CONNECTIONS: usize = 8;
const MAGIC: u32 = 0x5354_454c; // "STEL"
const PROTOCOL_VERSION: u16 = 1;

/// The first message on a connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    pub magic: u32,
    pub version: u16,
    pub from: u64,
    pub to: u64,
    /// The sender's cluster, once it belongs to one.
    pub cluster_id: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum HelloReply {
    Accepted,
    Refused(String),
}

/// Why a forwarded write failed on the leader, as the API needs to tell its client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ForwardError {
    NotLeader { leader: Option<(String, u16)> },
    NotReady,
    Timeout,
    Internal(String),
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<TypeConfig>),
    PreVote(VoteRequest<TypeConfig>),
    TransferLeader(TransferLeaderRequest<TypeConfig>),
    /// A client write a follower received without `requires-leader`.
    Forward(Command),
    /// Switches the connection to streaming replication: every later frame from the leader
    /// is an `AppendEntriesRequest`, every frame back a [`StreamReply`], in order, until the
    /// leader closes its side.
    StreamAppend,
}

/// One answer on a streaming-replication connection.
pub type StreamReply = Result<StreamAppendResult<TypeConfig>, String>;

#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    AppendEntries(AppendEntriesResponse<TypeConfig>),
    Vote(VoteResponse<TypeConfig>),
    TransferLeader(TransferLeaderResponse<TypeConfig>),
    Forwarded(Result<CommandResult, ForwardError>),
    /// The receiver could not handle the request (its consensus engine stopped, say).
    Failed(String),
}

pub async fn write_frame<T: Serialize>(
    stream: &mut (impl AsyncWrite + Unpin),
    message: &T,
) -> io::Result<()> {
    let mut bytes = vec![0u8; 4];
    postcard::to_io(message, &mut bytes).map_err(io::Error::other)?;
    let len = u32::try_from(bytes.len() - 4)
        .ok()
        .filter(|&l| l <= MAX_FRAME_BYTES)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "message of {} bytes exceeds the {MAX_FRAME_BYTES}-byte frame limit",
                    bytes.len() - 4
                ),
            )
        })?;
    bytes[..4].copy_from_slice(&len.to_le_bytes());
    stream.write_all(&bytes).await
}

pub async fn read_frame<T: DeserializeOwned>(
    stream: &mut (impl AsyncRead + Unpin),
) -> io::Result<T> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len);
    if len > MAX_FRAME_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the {MAX_FRAME_BYTES}-byte limit"),
        ));
    }
    // The length is the sender's claim: the buffer grows with the bytes that arrive, so a
    // peer (or anyone reaching the port before the handshake) cannot make us reserve
    // MAX_FRAME_BYTES with a 4-byte header.
    let mut bytes = Vec::with_capacity((len as usize).min(FRAME_PREALLOCATION_BYTES_MAX));
    (&mut *stream)
        .take(u64::from(len))
        .read_to_end(&mut bytes)
        .await?;
    if bytes.len() != len as usize {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("frame of {len} bytes ended after {} bytes", bytes.len()),
        ));
    }
    postcard::from_bytes(&bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("undecodable message: {e}"),
        )
    })
}

/// Why a call to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("{addr} refused the connection: {reason}")]
    Refused { addr: String, reason: String },
    #[error("connection to {addr} failed: {source}")]
    Io {
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("no answer from {addr} within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
}

/// What a node knows of itself when it dials or accepts connections.
pub trait LocalIdentity: Send + Sync + 'static {
    fn node_id(&self) -> u64;
    fn cluster_id(&self) -> Option<Uuid>;
}

/// Connections to one peer node.
pub struct Peer {
    net: Arc<dyn Net>,
    local: Arc<dyn LocalIdentity>,
    target: u64,
    addr: String,
    bind_ip: Option<IpAddr>,
    idle: Mutex<Vec<Conn>>,
}

impl Peer {
    pub fn new(
        net: Arc<dyn Net>,
        local: Arc<dyn LocalIdentity>,
        target: u64,
        addr: String,
        bind_ip: Option<IpAddr>,
    ) -> Peer {
        Peer {
            net,
            local,
            target,
            addr,
            bind_ip,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Opens a new connection to the peer, handshake done.
    pub async fn connect(&self) -> Result<Conn, CallError> {
        let mut stream = self
            .net
            .connect(&self.addr, self.bind_ip)
            .await
            .map_err(|source| CallError::Connect {
                addr: self.addr.clone(),
                source,
            })?;
        let hello = Hello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            from: self.local.node_id(),
            to: self.target,
            cluster_id: self.local.cluster_id(),
        };
        let io_err = |source| CallError::Io {
            addr: self.addr.clone(),
            source,
        };
        write_frame(&mut stream, &hello).await.map_err(io_err)?;
        match read_frame::<HelloReply>(&mut stream)
            .await
            .map_err(io_err)?
        {
            HelloReply::Accepted => Ok(stream),
            HelloReply::Refused(reason) => Err(CallError::Refused {
                addr: self.addr.clone(),
                reason,
            }),
        }
    }

    /// Sends one request and waits for its reply, for at most `timeout` in all.
    pub async fn call(&self, request: &Request, timeout: Duration) -> Result<Reply, CallError> {
        let exchange = async {
            let pooled = self.idle.lock().expect("peer pool lock").pop();
            let mut stream = match pooled {
                Some(stream) => stream,
                None => self.connect().await?,
            };
            let io_err = |source| CallError::Io {
                addr: self.addr.clone(),
                source,
            };
            write_frame(&mut stream, request).await.map_err(io_err)?;
            let reply = read_frame::<Reply>(&mut stream).await.map_err(io_err)?;
            let mut idle = self.idle.lock().expect("peer pool lock");
            if idle.len() < MAX_IDLE_CONNECTIONS {
                idle.push(stream);
            }
            Ok(reply)
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout {
                addr: self.addr.clone(),
                timeout,
            }),
        }
    }

    /// Drops idle connections (after the peer's address or identity changed).
    pub fn reset(&self) {
        self.idle.lock().expect("peer pool lock").clear();
    }
}

pub type Handler =
    Arc<dyn Fn(Request) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync + 'static>;

/// Serves a streaming-replication connection: takes the requests read from the connection,
/// gives back the replies to write, in order.
pub type StreamHandler = Arc<
    dyn Fn(
            Pin<Box<dyn futures::Stream<Item = AppendEntriesRequest<TypeConfig>> + Send>>,
        ) -> Pin<Box<dyn futures::Stream<Item = StreamReply> + Send>>
        + Send
        + Sync
        + 'static,
>;

/// Accepts peer connections until `shutdown` fires.
pub async fn serve(
    mut listener: Box<dyn Listener>,
    local: Arc<dyn LocalIdentity>,
    handler: Handler,
    streams: StreamHandler,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let (stream, from) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a peer connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let local = local.clone();
        let handler = handler.clone();
        let streams = streams.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_connection(stream, local, handler, streams, shutdown).await {
                if e.kind() != io::ErrorKind::UnexpectedEof {
                    tracing::debug!(%from, error = %e, "peer connection closed");
                }
            }
        });
    }
}

async fn serve_connection(
    mut stream: Conn,
    local: Arc<dyn LocalIdentity>,
    handler: Handler,
    streams: StreamHandler,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> io::Result<()> {
    let hello: Hello = read_frame(&mut stream).await?;
    if let Some(reason) = refusal(&hello, local.node_id(), local.cluster_id()) {
        tracing::warn!(from = hello.from, %reason, "refused a peer connection");
        write_frame(&mut stream, &HelloReply::Refused(reason)).await?;
        return Ok(());
    }
    write_frame(&mut stream, &HelloReply::Accepted).await?;
    loop {
        let request: Request = tokio::select! {
            request = read_frame(&mut stream) => request?,
            _ = shutdown.changed() => return Ok(()),
        };
        if let Request::StreamAppend = request {
            return serve_stream(stream, streams, shutdown).await;
        }
        let reply = handler(request).await;
        write_frame(&mut stream, &reply).await?;
    }
}

async fn serve_stream(
    stream: Conn,
    streams: StreamHandler,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> io::Result<()> {
    use futures::StreamExt;
    let (read, mut write) = tokio::io::split(stream);
    let requests = futures::stream::unfold(read, |mut read| async move {
        match read_frame::<AppendEntriesRequest<TypeConfig>>(&mut read).await {
            Ok(request) => Some((request, read)),
            Err(e) => {
                if e.kind() != io::ErrorKind::UnexpectedEof {
                    tracing::debug!(error = %e, "replication stream ended");
                }
                None
            }
        }
    });
    let mut replies = streams(Box::pin(requests));
    loop {
        let reply = tokio::select! {
            reply = replies.next() => reply,
            _ = shutdown.changed() => return Ok(()),
        };
        let Some(reply) = reply else {
            return Ok(());
        };
        let stop = !matches!(reply, Ok(Ok(_)));
        write_frame(&mut write, &reply).await?;
        if stop {
            return Ok(());
        }
    }
}

/// Why a connection must be refused, if it must.
fn refusal(hello: &Hello, me: u64, cluster: Option<Uuid>) -> Option<String> {
    if hello.magic != MAGIC {
        return Some("not a Stele peer (bad magic)".into());
    }
    if hello.version != PROTOCOL_VERSION {
        return Some(format!(
            "peer protocol version {} is not {PROTOCOL_VERSION}",
            hello.version
        ));
    }
    if hello.to != me {
        return Some(format!(
            "this is node {me:016x}, not node {:016x} (its data directory was replaced?)",
            hello.to
        ));
    }
    match (hello.cluster_id, cluster) {
        (Some(theirs), Some(ours)) if theirs != ours => Some(format!(
            "node {:016x} belongs to cluster {theirs}, this node to cluster {ours}",
            hello.from
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(to: u64, cluster_id: Option<Uuid>) -> Hello {
        Hello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            from: 7,
            to,
            cluster_id,
        }
    }

    #[test]
    fn refuses_other_clusters_and_other_nodes() {
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        assert!(refusal(&hello(1, Some(a)), 1, Some(a)).is_none());
        assert!(refusal(&hello(1, None), 1, Some(a)).is_none());
        assert!(refusal(&hello(1, Some(a)), 1, None).is_none());
        assert!(refusal(&hello(1, Some(a)), 1, Some(b))
            .unwrap()
            .contains("belongs to cluster"));
        assert!(refusal(&hello(2, Some(a)), 1, Some(a))
            .unwrap()
            .contains("not node"));
        let mut bad = hello(1, None);
        bad.magic = 1;
        assert!(refusal(&bad, 1, None).is_some());
    }

    #[tokio::test]
    async fn a_frame_length_is_not_reserved_before_its_bytes_arrive() {
        // Found by the transport_frame fuzz target: `read_frame` allocated the length a frame
        // header claimed (up to MAX_FRAME_BYTES) before reading anything, so 4 bytes from any
        // connection made the node reserve 512 MiB. Now the buffer follows the bytes read.
        let mut input: &[u8] = &[0x0e, 0x00, 0x00, 0x0c, 4, b'r', b'a', b'f', b't'];
        let error = read_frame::<Reply>(&mut input).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        assert!(error.to_string().contains("ended after 5 bytes"), "{error}");
    }

    #[tokio::test]
    async fn frames_round_trip_through_read_frame() {
        let mut bytes = Vec::new();
        write_frame(&mut bytes, &Reply::Failed("stopped".into()))
            .await
            .unwrap();
        write_frame(&mut bytes, &HelloReply::Accepted)
            .await
            .unwrap();
        let mut input = bytes.as_slice();
        let reply: Reply = read_frame(&mut input).await.unwrap();
        assert!(matches!(reply, Reply::Failed(reason) if reason == "stopped"));
        let hello: HelloReply = read_frame(&mut input).await.unwrap();
        assert!(matches!(hello, HelloReply::Accepted));
        assert!(input.is_empty());
    }

    struct Me(u64, Option<Uuid>);
    impl LocalIdentity for Me {
        fn node_id(&self) -> u64 {
            self.0
        }
        fn cluster_id(&self) -> Option<Uuid> {
            self.1
        }
    }

    #[tokio::test]
    async fn calls_round_trip_and_handshake_refusals_surface() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let net: Arc<dyn Net> = Arc::new(crate::net::TokioNet);
        let cluster = Uuid::new_v4();
        let handler: Handler = Arc::new(|request| {
            Box::pin(async move {
                match request {
                    Request::Forward(_) => Reply::Forwarded(Err(ForwardError::NotReady)),
                    _ => Reply::Failed("unexpected".into()),
                }
            })
        });
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let streams: StreamHandler = Arc::new(|_requests| Box::pin(futures::stream::empty()));
        tokio::spawn(serve(
            Box::new(listener),
            Arc::new(Me(1, Some(cluster))),
            handler,
            streams,
            rx,
        ));
        let command = Command::Delete {
            stream: stele_core::StreamName::new("s").unwrap(),
            expected: stele_core::ExpectedRevision::Any,
            kind: stele_core::DeleteKind::Soft,
            created_ticks: 0,
        };
        let peer = Peer::new(net.clone(), Arc::new(Me(2, None)), 1, addr.clone(), None);
        for _ in 0..3 {
            let reply = peer
                .call(&Request::Forward(command.clone()), Duration::from_secs(5))
                .await
                .unwrap();
            assert!(matches!(
                reply,
                Reply::Forwarded(Err(ForwardError::NotReady))
            ));
        }
        let wrong_node = Peer::new(net.clone(), Arc::new(Me(2, None)), 9, addr.clone(), None);
        let err = wrong_node
            .call(&Request::Forward(command.clone()), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, CallError::Refused { .. }), "{err}");
        let other_cluster = Peer::new(
            net.clone(),
            Arc::new(Me(2, Some(Uuid::new_v4()))),
            1,
            addr,
            None,
        );
        let err = other_cluster
            .call(&Request::Forward(command), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("belongs to cluster"), "{err}");
    }
}
