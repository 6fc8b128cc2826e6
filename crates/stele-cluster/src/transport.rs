//! The node-to-node transport on `IntIp:IntTcpPort`: raft RPCs (append entries, vote,
//! pre-vote, leadership transfer) and writes a follower forwards to the leader.
//!
//! Framing: every message is a little-endian `u32` length followed by that many bytes of
//! postcard. A connection opens with a [`Hello`] naming the sender, the node it meant to
//! reach and the cluster it belongs to; the receiver refuses a connection meant for another
//! node (a wiped node came back at the same address under a new id), from another cluster, or,
//! once the receiver belongs to a cluster, one that names no cluster. The refusal names
//! nothing (no node id, no cluster id): the dialer knows what it asked for.
//! After the handshake a connection carries one request and its reply at a time; a caller that
//! needs concurrency takes another connection from the pool ([`Peer`]). Each request reaches
//! the handler with the node id the handshake named, which `guard.rs` checks against the
//! request's own claim and the membership.
//!
//! Bounded (docs/design.md decision 12; issue 11 item 5): frames are at most [`MAX_FRAME_BYTES`],
//! and at most [`MAX_HANDSHAKE_FRAME_BYTES`] before a handshake succeeded; a frame's buffer
//! grows only as its bytes arrive; a handshake must complete within [`HANDSHAKE_TIMEOUT`]; an
//! accepted connection that carries no request for [`INBOUND_IDLE_TIMEOUT`] is closed (the
//! dialer drops pooled connections idle for half that); at most [`MAX_INBOUND_CONNECTIONS`]
//! are served at once, and idle connections per peer are at most [`MAX_IDLE_CONNECTIONS`].
//!
//! A peer that cannot be reached (or refuses the handshake) is dialed again only after a
//! capped exponential backoff, and logged once per outage (`reachability.rs`).

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
use tokio::time::Instant;
use uuid::Uuid;

use crate::net::{Conn, Listener, Net};
use crate::reachability::{RateLimitedWarn, Reachability};
use crate::types::TypeConfig;

/// Largest message either way. An append entries request carries at most
/// `max_payload_entries` entries, each at most one client append (`MaxAppendSize`).
pub const MAX_FRAME_BYTES: u32 = 512 * 1024 * 1024;
/// The most `read_frame` reserves before a frame's bytes arrive.
const FRAME_PREALLOCATION_BYTES_MAX: usize = 64 * 1024;
/// Largest frame accepted before the handshake succeeded (the [`Hello`] is a few dozen bytes).
pub const MAX_HANDSHAKE_FRAME_BYTES: u32 = 64 * 1024;
/// A connection's handshake must be read and answered within this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// An accepted connection waiting this long for its next request is closed. Streaming
/// replication connections are exempt: the leader keeps them open between writes.
pub const INBOUND_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Pooled connections idle longer than this are not reused: the other side may be closing
/// them ([`INBOUND_IDLE_TIMEOUT`]).
const POOLED_IDLE_MAX: Duration = Duration::from_secs(30);
/// Accepted connections served at once; more are closed at once.
pub const MAX_INBOUND_CONNECTIONS: usize = 256;
/// Idle connections kept per peer; more may be open while calls are in flight.
const MAX_IDLE_CONNECTIONS: usize = 8;
/// What a refused handshake is told.
const REFUSED: &str = "refused";
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
///
/// On the wire (postcard names a variant by its place): a variant is only ever added at the
/// end, never moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ForwardError {
    NotLeader {
        leader: Option<(String, u16)>,
    },
    /// The leader is not ready, or its consensus engine stopped.
    NotReady,
    Timeout,
    /// The leader could not carry out the write for a reason of its own (its log failed,
    /// its index failed, the metadata kept moving): its error's text.
    Failed(String),
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
    read_frame_limited(stream, MAX_FRAME_BYTES).await
}

/// [`read_frame`] for frames of at most `limit` bytes.
pub async fn read_frame_limited<T: DeserializeOwned>(
    stream: &mut (impl AsyncRead + Unpin),
    limit: u32,
) -> io::Result<T> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len);
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the {limit}-byte limit"),
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
    // The I/O error is printed in the message and is no `source()`, so it is printed once.
    #[error("cannot connect to {addr}: {error}")]
    Connect { addr: String, error: io::Error },
    #[error("{addr} refused the connection: {reason}")]
    Refused { addr: String, reason: String },
    #[error("connection to {addr} failed: {error}")]
    Io { addr: String, error: io::Error },
    #[error("no answer from {addr} within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("{addr} is down; next attempt in {retry_in:?}")]
    Backoff { addr: String, retry_in: Duration },
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
    idle: Mutex<Vec<(Conn, Instant)>>,
    reachability: Reachability,
    /// `node <id> at <addr>`, for the log.
    name: String,
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
            name: format!("node {target:016x} at {addr}"),
            net,
            local,
            target,
            addr,
            bind_ip,
            idle: Mutex::new(Vec::new()),
            reachability: Reachability::default(),
        }
    }

    /// Whether the peer is in an outage (its last connection attempt failed).
    pub fn is_down(&self) -> bool {
        self.reachability.is_down()
    }

    /// Waits until the peer may be dialed again (see [`Peer::connect`]).
    pub async fn backoff(&self) {
        let wait = self.reachability.wait();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Opens a new connection to the peer, handshake done. While the peer is down and its
    /// backoff has not elapsed, fails at once without dialing ([`CallError::Backoff`]).
    pub async fn connect(&self) -> Result<Conn, CallError> {
        let retry_in = self.reachability.wait();
        if !retry_in.is_zero() {
            return Err(CallError::Backoff {
                addr: self.addr.clone(),
                retry_in,
            });
        }
        // A refused handshake is the same outage as a refused connection: the node we know
        // is not there (it came back under a new identity, say).
        match self.dial().await {
            Ok(stream) => {
                self.reachability.succeeded(&self.name);
                Ok(stream)
            }
            Err(e) => {
                self.reachability.failed(&self.name, &e);
                Err(e)
            }
        }
    }

    async fn dial(&self) -> Result<Conn, CallError> {
        let mut stream = self
            .net
            .connect(&self.addr, self.bind_ip)
            .await
            .map_err(|error| CallError::Connect {
                addr: self.addr.clone(),
                error,
            })?;
        let hello = Hello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            from: self.local.node_id(),
            to: self.target,
            cluster_id: self.local.cluster_id(),
        };
        let io_err = |error| CallError::Io {
            addr: self.addr.clone(),
            error,
        };
        let handshake = async {
            write_frame(&mut stream, &hello).await?;
            read_frame_limited::<HelloReply>(&mut stream, MAX_HANDSHAKE_FRAME_BYTES).await
        };
        let reply = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
            Ok(reply) => reply.map_err(io_err)?,
            Err(_) => {
                return Err(CallError::Timeout {
                    addr: self.addr.clone(),
                    timeout: HANDSHAKE_TIMEOUT,
                })
            }
        };
        match reply {
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
            let pooled = {
                let mut idle = self.idle.lock().expect("peer pool lock");
                idle.retain(|(_, since)| since.elapsed() < POOLED_IDLE_MAX);
                idle.pop().map(|(stream, _)| stream)
            };
            let mut stream = match pooled {
                Some(stream) => stream,
                None => self.connect().await?,
            };
            let io_err = |error| CallError::Io {
                addr: self.addr.clone(),
                error,
            };
            write_frame(&mut stream, request).await.map_err(io_err)?;
            let reply = read_frame::<Reply>(&mut stream).await.map_err(io_err)?;
            let mut idle = self.idle.lock().expect("peer pool lock");
            if idle.len() < MAX_IDLE_CONNECTIONS {
                idle.push((stream, Instant::now()));
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

/// Serves one request; the first argument is the node id the connection's handshake named.
pub type Handler = Arc<
    dyn Fn(u64, Request) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync + 'static,
>;

/// Serves a streaming-replication connection: takes the requests read from the connection
/// (whose handshake named the node id given first), gives back the replies to write, in order.
pub type StreamHandler = Arc<
    dyn Fn(
            u64,
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
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_INBOUND_CONNECTIONS));
    let surplus = Arc::new(RateLimitedWarn::default());
    let refused = Arc::new(RateLimitedWarn::default());
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
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            surplus.warn(
                "closed a peer connection: MAX_INBOUND_CONNECTIONS are open",
                &from,
            );
            drop(stream);
            continue;
        };
        let local = local.clone();
        let handler = handler.clone();
        let streams = streams.clone();
        let shutdown = shutdown.clone();
        let refused = refused.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let served = serve_connection(stream, local, handler, streams, shutdown, &refused);
            if let Err(e) = served.await {
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
    refused: &RateLimitedWarn,
) -> io::Result<()> {
    let timed_out = |what: &str| io::Error::new(io::ErrorKind::TimedOut, what.to_owned());
    let handshake = async {
        let hello: Hello = read_frame_limited(&mut stream, MAX_HANDSHAKE_FRAME_BYTES).await?;
        let refusal = refusal(&hello, local.node_id(), local.cluster_id());
        let reply = match &refusal {
            Some(_) => HelloReply::Refused(REFUSED.into()),
            None => HelloReply::Accepted,
        };
        write_frame(&mut stream, &reply).await?;
        Ok::<_, io::Error>((hello.from, refusal))
    };
    let from = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Err(_) => return Err(timed_out("handshake timed out")),
        Ok(Err(e)) => return Err(e),
        Ok(Ok((_, Some(reason)))) => {
            refused.warn("refused a peer connection", &reason);
            return Ok(());
        }
        Ok(Ok((from, None))) => from,
    };
    loop {
        let request: Request = tokio::select! {
            request = tokio::time::timeout(INBOUND_IDLE_TIMEOUT, read_frame(&mut stream)) => {
                request.map_err(|_| timed_out("idle connection closed"))??
            }
            _ = shutdown.changed() => return Ok(()),
        };
        if let Request::StreamAppend = request {
            return serve_stream(stream, from, streams, shutdown).await;
        }
        let reply = handler(from, request).await;
        write_frame(&mut stream, &reply).await?;
    }
}

async fn serve_stream(
    stream: Conn,
    from: u64,
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
    let mut replies = streams(from, Box::pin(requests));
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

/// Why a connection must be refused, if it must: for this node's log only (the dialer is
/// told [`REFUSED`] and nothing else).
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
            "a peer asked for node {:016x}, this is node {me:016x} (its data directory was \
             replaced?)",
            hello.to
        ));
    }
    match (hello.cluster_id, cluster) {
        (Some(theirs), Some(ours)) if theirs != ours => Some(format!(
            "node {:016x} belongs to cluster {theirs}, this node to cluster {ours}",
            hello.from
        )),
        (None, Some(_)) => Some(format!(
            "node {:016x} names no cluster, and this node belongs to one",
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
        assert!(refusal(&hello(1, Some(a)), 1, None).is_none());
        assert!(refusal(&hello(1, None), 1, None).is_none());
        assert!(refusal(&hello(1, Some(a)), 1, Some(b))
            .unwrap()
            .contains("belongs to cluster"));
        assert!(refusal(&hello(2, Some(a)), 1, Some(a))
            .unwrap()
            .contains("asked for node"));
        let mut bad = hello(1, None);
        bad.magic = 1;
        assert!(refusal(&bad, 1, None).is_some());
    }

    #[test]
    fn a_handshake_without_a_cluster_is_refused_by_a_member_of_one() {
        // A handshake naming no cluster was accepted by a node of a formed cluster, so any
        // process could open a connection and send raft requests (issue 11 item 5).
        let ours = Uuid::new_v4();
        assert!(refusal(&hello(1, None), 1, Some(ours))
            .unwrap()
            .contains("names no cluster"));
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

    fn test_handlers() -> (Handler, StreamHandler) {
        let handler: Handler =
            Arc::new(|_from, _request| Box::pin(async { Reply::Failed("unexpected".into()) }));
        let streams: StreamHandler =
            Arc::new(|_from, _requests| Box::pin(futures::stream::empty()));
        (handler, streams)
    }

    /// Serves one in-memory connection as `serve` would; returns the client's end and how
    /// the server's side ended.
    fn serve_one(
        cluster: Option<Uuid>,
    ) -> (
        tokio::io::DuplexStream,
        tokio::task::JoinHandle<io::Result<()>>,
    ) {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (handler, streams) = test_handlers();
        let (tx, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let _tx = tx;
            let refused = RateLimitedWarn::default();
            let local: Arc<dyn LocalIdentity> = Arc::new(Me(1, cluster));
            serve_connection(Box::new(server), local, handler, streams, rx, &refused).await
        });
        (client, task)
    }

    #[tokio::test]
    async fn frames_before_the_handshake_are_capped_small() {
        // Three connections announcing 512 MiB frames before any handshake raised a node's
        // memory from 334 MB to 2.6 GB (issue 11 item 5): before the handshake a frame may be
        // MAX_HANDSHAKE_FRAME_BYTES at most, and the connection closes at its header.
        let (mut client, task) = serve_one(Some(Uuid::new_v4()));
        client
            .write_all(&(MAX_FRAME_BYTES - 1).to_le_bytes())
            .await
            .unwrap();
        let error = task.await.unwrap().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
        assert!(error.to_string().contains("65536-byte limit"), "{error}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_times_out_before_and_after_the_handshake() {
        // Connections that sent nothing stayed open for good (issue 11 item 5).
        let (_client, task) = serve_one(None);
        let error = task.await.unwrap().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
        assert!(error.to_string().contains("handshake"), "{error}");

        let (mut client, task) = serve_one(None);
        write_frame(&mut client, &hello(1, None)).await.unwrap();
        let reply: HelloReply = read_frame(&mut client).await.unwrap();
        assert!(matches!(reply, HelloReply::Accepted));
        let started = Instant::now();
        let error = task.await.unwrap().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
        assert!(started.elapsed() >= INBOUND_IDLE_TIMEOUT);
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_are_closed_at_once() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (handler, streams) = test_handlers();
        let (_tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(serve(
            Box::new(listener),
            Arc::new(Me(1, None)),
            handler,
            streams,
            rx,
        ));
        let mut open = Vec::new();
        for _ in 0..MAX_INBOUND_CONNECTIONS {
            open.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        // Let the listener take them all before the next one.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut surplus = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(2), surplus.read(&mut byte))
            .await
            .expect("the surplus connection is closed well before the handshake timeout");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        // The ones within the cap are still being served (waiting for their handshake).
        let in_cap =
            tokio::time::timeout(Duration::from_millis(100), open[0].read(&mut byte)).await;
        assert!(in_cap.is_err(), "{in_cap:?}");
    }

    #[tokio::test]
    async fn calls_round_trip_and_handshake_refusals_surface() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let net: Arc<dyn Net> = Arc::new(crate::net::TokioNet);
        let cluster = Uuid::new_v4();
        let handler: Handler = Arc::new(|_from, request| {
            Box::pin(async move {
                match request {
                    Request::Forward(_) => Reply::Forwarded(Err(ForwardError::NotReady)),
                    _ => Reply::Failed("unexpected".into()),
                }
            })
        });
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let streams: StreamHandler =
            Arc::new(|_from, _requests| Box::pin(futures::stream::empty()));
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
        let peer = Peer::new(
            net.clone(),
            Arc::new(Me(2, Some(cluster))),
            1,
            addr.clone(),
            None,
        );
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
        // The refusal names nothing: not this node's id, not its cluster.
        let wrong_node = Peer::new(
            net.clone(),
            Arc::new(Me(2, Some(cluster))),
            9,
            addr.clone(),
            None,
        );
        let err = wrong_node
            .call(&Request::Forward(command.clone()), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CallError::Refused { reason, .. } if reason == REFUSED),
            "{err}"
        );
        // A refused peer is down: the next call does not dial until the backoff elapsed.
        let err = wrong_node
            .call(&Request::Forward(command.clone()), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, CallError::Backoff { .. }), "{err}");
        let other_cluster = Peer::new(
            net.clone(),
            Arc::new(Me(2, Some(Uuid::new_v4()))),
            1,
            addr.clone(),
            None,
        );
        let err = other_cluster
            .call(&Request::Forward(command.clone()), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CallError::Refused { reason, .. } if reason == REFUSED),
            "{err}"
        );
        let no_cluster = Peer::new(net.clone(), Arc::new(Me(2, None)), 1, addr, None);
        let err = no_cluster
            .call(&Request::Forward(command), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, CallError::Refused { .. }), "{err}");
    }

    /// Pins the forwarded-write error's wire form: the variant the leader's own failures
    /// travel in (once `Internal`, now `Failed`) keeps its place, so nodes of either build
    /// read each other's answers.
    #[test]
    fn a_forward_errors_variants_keep_their_wire_places() {
        let encoded = |e: &ForwardError| postcard::to_allocvec(e).expect("encodes")[0];
        assert_eq!(encoded(&ForwardError::NotLeader { leader: None }), 0);
        assert_eq!(encoded(&ForwardError::NotReady), 1);
        assert_eq!(encoded(&ForwardError::Timeout), 2);
        assert_eq!(encoded(&ForwardError::Failed("its log failed".into())), 3);
    }
}
