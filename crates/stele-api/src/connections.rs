//! Client connections on the client port: how many may be open, and how long one may sit
//! without a request (issue 11, item 9).
//!
//! Every accepted TCP connection is wrapped in a [`ClientConnection`] and registered. The
//! serving layer ([`crate::serve`]) counts the requests each connection has in flight, from
//! the moment its headers are complete until the response body is done (a subscription is
//! in flight for as long as it runs). A connection with nothing in flight is *idle*:
//!
//! - before its first request, it gets [`ConnectionLimits::header_read_timeout`] to
//!   complete that request's headers (a slowloris client sending a header byte by byte, or
//!   an HTTP/2 client that never finishes its preface, is closed then);
//! - after that, it is closed once it has been idle for
//!   [`ConnectionLimits::idle_timeout`] (HTTP/1.1 keep-alive and HTTP/2 alike: a client's
//!   HTTP/2 PINGs do not count as requests).
//!
//! These are Kestrel's defaults (`RequestHeadersTimeout` 30 s, `KeepAliveTimeout` 130 s),
//! which EventStoreDB serves with; EventStoreDB has no options for them, so Stele's are
//! named `ClientHeaderReadTimeoutMs` and `ClientIdleTimeoutMs`.
//!
//! **The limit.** At most [`ConnectionLimits::max_connections`] connections are open
//! (`MaxClientConnections`; EventStoreDB has no such option either). A connection accepted
//! at the limit first closes the connection that has been idle longest; only when every
//! open connection has a request in flight is the new one refused (closed at once). So
//! idle or half-open connections can never lock out a new client, or a load balancer's
//! `/health/live`.
//!
//! A connection is closed by making its next read (and write) fail, which ends hyper's
//! connection task; nothing here touches a connection that has a request in flight.
//!
//! **Quick ACKs.** Every read that returns data is acknowledged at once
//! ([`acknowledge_now`], `TCP_QUICKACK`), so that a client with Nagle's algorithm on (the
//! official Rust client's default) never waits for the node's delayed ACK between the pieces
//! of one request (issue 18).

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::task::AtomicWaker;
use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Connections open at once, by default (`MaxClientConnections`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Time to complete the first request's headers, by default (`ClientHeaderReadTimeoutMs`;
/// Kestrel's `RequestHeadersTimeout`).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Time without a request in flight before a connection is closed, by default
/// (`ClientIdleTimeoutMs`; Kestrel's `KeepAliveTimeout`).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(130);

/// After a failed `accept` (out of file descriptors, most often), wait this long before the
/// next: retrying at once would spin a core while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
/// The timeouts are checked this often at most (and four times per shortest timeout when
/// that is shorter), so a connection lives at most this much past its timeout.
const CHECK_INTERVAL_MAX: Duration = Duration::from_secs(1);
const CHECK_INTERVAL_MIN: Duration = Duration::from_millis(5);

/// The limits on client connections; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

impl ConnectionLimits {
    fn check_interval(&self) -> Duration {
        (self.header_read_timeout.min(self.idle_timeout) / 4)
            .clamp(CHECK_INTERVAL_MIN, CHECK_INTERVAL_MAX)
    }
}

/// One connection's state, shared by its IO, its requests and the registry.
#[derive(Debug)]
struct State {
    id: u64,
    activity: Mutex<Activity>,
    closed: AtomicBool,
    /// The connection's reader, woken when it is closed.
    reader: AtomicWaker,
}

#[derive(Debug)]
struct Activity {
    in_flight: usize,
    /// A request has been dispatched on this connection.
    served: bool,
    /// When `in_flight` last became 0 (or the connection was accepted).
    idle_since: Instant,
}

impl State {
    /// Closes the connection if it is past its timeout with nothing in flight: the check and
    /// the close are one step under the lock, so a request that starts meanwhile is never
    /// cut.
    fn close_if_idle(&self, now: Instant, limits: &ConnectionLimits) -> bool {
        let activity = self.activity.lock().expect("connection state lock");
        let timeout = if activity.served {
            limits.idle_timeout
        } else {
            limits.header_read_timeout
        };
        if activity.in_flight > 0 || activity.idle_since + timeout > now {
            return false;
        }
        self.close();
        true
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.reader.wake();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// A request in flight on a connection; dropping it ends the request.
#[derive(Debug)]
pub struct RequestGuard {
    state: Arc<State>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let mut activity = self.state.activity.lock().expect("connection state lock");
        activity.in_flight -= 1;
        if activity.in_flight == 0 {
            activity.idle_since = Instant::now();
        }
    }
}

/// What a request learns of its connection (a request extension).
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    tcp: TcpConnectInfo,
    state: Arc<State>,
    /// The client presented a node certificate in the TLS handshake (another node: its
    /// requests run as the system).
    peer_is_node: bool,
}

impl ConnectionInfo {
    /// The TCP addresses, as tonic's `Request::remote_addr` expects them.
    pub fn tcp(&self) -> TcpConnectInfo {
        self.tcp.clone()
    }

    /// Whether the client presented a node certificate (TLS only).
    pub fn peer_is_node(&self) -> bool {
        self.peer_is_node
    }

    /// Counts a request in flight until the guard is dropped.
    pub fn begin_request(&self) -> RequestGuard {
        let mut activity = self.state.activity.lock().expect("connection state lock");
        activity.in_flight += 1;
        activity.served = true;
        RequestGuard {
            state: self.state.clone(),
        }
    }
}

/// The open connections.
#[derive(Debug)]
pub struct Registry {
    limits: ConnectionLimits,
    open: Mutex<HashMap<u64, Arc<State>>>,
    next_id: AtomicU64,
}

impl Registry {
    pub fn new(limits: ConnectionLimits) -> Arc<Registry> {
        Arc::new(Registry {
            limits,
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        })
    }

    /// Connections open now (closed ones leave as soon as their task ends).
    pub fn open_connections(&self) -> usize {
        self.open
            .lock()
            .expect("registry lock")
            .values()
            .filter(|s| !s.is_closed())
            .count()
    }

    /// Admits a new connection, closing the longest-idle one at the limit; `None` when the
    /// limit is reached and every connection is busy.
    fn admit(self: &Arc<Registry>, tcp: TcpStream) -> Option<ClientConnection> {
        let mut open = self.open.lock().expect("registry lock");
        let counted = open.values().filter(|s| !s.is_closed()).count();
        if counted >= self.limits.max_connections {
            let longest_idle = open
                .values()
                .filter(|s| !s.is_closed())
                .filter_map(|s| {
                    let activity = s.activity.lock().expect("connection state lock");
                    (activity.in_flight == 0).then_some((activity.idle_since, s.clone()))
                })
                .min_by_key(|(since, _)| *since);
            match longest_idle {
                Some((_, state)) => {
                    tracing::debug!(
                        connection = state.id,
                        "connection limit reached: closing the longest-idle connection"
                    );
                    state.close();
                }
                None => {
                    tracing::debug!(
                        "connection limit reached and every connection is busy: refusing one"
                    );
                    return None;
                }
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(State {
            id,
            activity: Mutex::new(Activity {
                in_flight: 0,
                served: false,
                idle_since: Instant::now(),
            }),
            closed: AtomicBool::new(false),
            reader: AtomicWaker::new(),
        });
        open.insert(id, state.clone());
        drop(open);
        let tcp_info = TcpConnectInfo {
            local_addr: tcp.local_addr().ok(),
            remote_addr: tcp.peer_addr().ok(),
        };
        Some(ClientConnection {
            tcp,
            info: ConnectionInfo {
                tcp: tcp_info,
                state,
                peer_is_node: false,
            },
            registry: Arc::downgrade(self),
        })
    }

    /// Closes every connection past its timeout; returns how many.
    fn close_expired(&self) -> usize {
        let now = Instant::now();
        let open = self.open.lock().expect("registry lock");
        open.values()
            .filter(|s| !s.is_closed() && s.close_if_idle(now, &self.limits))
            .count()
    }

    fn remove(&self, id: u64) {
        self.open.lock().expect("registry lock").remove(&id);
    }
}

/// Checks the timeouts until the registry is gone.
async fn watch(registry: Weak<Registry>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(registry) = registry.upgrade() else {
            return;
        };
        let closed = registry.close_expired();
        if closed > 0 {
            tracing::debug!(closed, "closed client connections past their timeout");
        }
    }
}

/// Accepted connections, admitted by the registry, for tonic's server. Accept errors are
/// waited out here (tonic's loop would retry them at once).
pub fn incoming(
    listener: TcpListener,
    registry: Arc<Registry>,
) -> impl Stream<Item = io::Result<ClientConnection>> + Send + 'static {
    watch_timeouts(&registry);
    futures::stream::unfold((listener, registry), |(listener, registry)| async move {
        let connection = accept(&listener, &registry).await;
        Some((Ok(connection), (listener, registry)))
    })
}

/// The next admitted connection.
pub(crate) async fn accept(listener: &TcpListener, registry: &Arc<Registry>) -> ClientConnection {
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => {
                let _ = tcp.set_nodelay(true);
                if let Some(connection) = registry.admit(tcp) {
                    return connection;
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "accepting a client connection failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

/// Starts closing the registry's connections past their timeouts (until it is dropped).
pub(crate) fn watch_timeouts(registry: &Arc<Registry>) {
    tokio::spawn(watch(
        Arc::downgrade(registry),
        registry.limits.check_interval(),
    ));
}

/// A client's TCP connection, registered until dropped.
#[derive(Debug)]
pub struct ClientConnection {
    tcp: TcpStream,
    info: ConnectionInfo,
    registry: Weak<Registry>,
}

fn closed_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "client connection closed: idle or header-read timeout, or connection limit",
    )
}

impl ClientConnection {
    /// Notes that the client presented a node certificate.
    pub(crate) fn set_peer_is_node(&mut self) {
        self.info.peer_is_node = true;
    }
}

impl Drop for ClientConnection {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            registry.remove(self.info.state.id);
        }
    }
}

impl Connected for ClientConnection {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        self.info.clone()
    }
}

impl AsyncRead for ClientConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.info.state.reader.register(cx.waker());
        if self.info.state.is_closed() {
            return Poll::Ready(Err(closed_error()));
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            acknowledge_now(&self.tcp);
        }
        read
    }
}

impl AsyncWrite for ClientConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.info.state.is_closed() {
            return Poll::Ready(Err(closed_error()));
        }
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.info.state.is_closed() {
            return Poll::Ready(Err(closed_error()));
        }
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// Acknowledges what has just been read at once instead of after the delayed-ACK timer
/// (40 ms on Linux), and keeps the socket out of delayed-ACK mode until the next read.
///
/// Why (issue 18): the official Rust client (`kurrentdb`, hyper's HTTP/2 client) leaves
/// Nagle's algorithm on and writes an `Append` call in two pieces: the HEADERS frame (about
/// 48 bytes), then the messages with END_STREAM. Nagle holds the second piece until the
/// first is acknowledged. The node has nothing to send before the whole request is in, and
/// Linux, having seen this connection answer requests quickly, is in its "pingpong"
/// (interactive) mode where it delays ACKs hoping to piggyback them on a reply: so the ACK
/// of the HEADERS left only when the delayed-ACK timer fired, and every append took 44 ms
/// (22 appends/s for one writer). `TCP_QUICKACK` sends the pending ACK now and leaves
/// pingpong mode, but the kernel enters it again as soon as the node replies (the flag is
/// not sticky), so it is set after every read that returned data: one `setsockopt` per read
/// and one pure ACK per request, measured as no change in throughput at 32 writers. A
/// one-time set on the accepted socket was measured too: no effect after the first reply.
///
/// Errors are ignored: at worst the client waits for the delayed ACK, as before. Other
/// systems have no `TCP_QUICKACK`; there this does nothing.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn acknowledge_now(tcp: &TcpStream) {
    let _ = socket2::SockRef::from(tcp).set_tcp_quickack(true);
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn acknowledge_now(_tcp: &TcpStream) {}
