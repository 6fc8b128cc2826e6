//! TLS on the client port (issue 13): every admitted connection ([`crate::connections`])
//! is handshaken with the node's current client-port configuration
//! (`stele_cluster::tls::Tls`: ALPN `h2` and `http/1.1`, an optional client certificate)
//! before tonic's server sees it. A client that presents a node certificate is marked as a
//! node ([`ConnectionInfo::peer_is_node`]): its requests (gossip from other nodes) run as
//! the system.
//!
//! Handshakes run concurrently, each within [`CLIENT_TLS_HANDSHAKE_TIMEOUT`]; they are
//! bounded by the connection limit, since a connection is admitted (and counted) before its
//! handshake, and the idle check closes one whose handshake never finishes. A plaintext
//! client fails its handshake and is closed; that is logged at debug level only.
//!
//! Certificates are taken from [`Tls::current`] at each handshake, so after a reload new
//! connections get the new certificate and open ones keep theirs.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use stele_cluster::tls::Tls;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tonic::transport::server::Connected;

use crate::connections::{self, ClientConnection, ConnectionInfo, Registry};

/// A client's TLS handshake must complete within this.
pub const CLIENT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the server to take them.
const ACCEPTED_QUEUE: usize = 64;

/// A client connection, plaintext (`--insecure`) or TLS.
#[derive(Debug)]
pub enum ClientStream {
    Plain(ClientConnection),
    Tls(Box<TlsStream<ClientConnection>>),
}

/// The connections to serve: plaintext when `tls` is `None`.
pub fn incoming(
    listener: TcpListener,
    registry: Arc<Registry>,
    tls: Option<Arc<Tls>>,
) -> Pin<Box<dyn Stream<Item = io::Result<ClientStream>> + Send>> {
    let Some(tls) = tls else {
        return connections::incoming(listener, registry)
            .map(|connection| connection.map(ClientStream::Plain))
            .boxed();
    };
    connections::watch_timeouts(&registry);
    let (sender, receiver) = mpsc::channel(ACCEPTED_QUEUE);
    tokio::spawn(async move {
        loop {
            let connection = tokio::select! {
                connection = connections::accept(&listener, &registry) => connection,
                () = sender.closed() => return,
            };
            let tls = tls.clone();
            let sender = sender.clone();
            tokio::spawn(async move {
                if let Some(stream) = handshake(&tls, connection).await {
                    let _ = sender.send(Ok(ClientStream::Tls(Box::new(stream)))).await;
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver).boxed()
}

async fn handshake(tls: &Tls, connection: ClientConnection) -> Option<TlsStream<ClientConnection>> {
    let acceptor = TlsAcceptor::from(tls.current().client_port.clone());
    let peer = connection.connect_info().tcp().remote_addr;
    let mut stream =
        match tokio::time::timeout(CLIENT_TLS_HANDSHAKE_TIMEOUT, acceptor.accept(connection)).await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(?peer, error = %e, "client TLS handshake failed");
                return None;
            }
            Err(_) => {
                tracing::debug!(?peer, "client TLS handshake timed out");
                return None;
            }
        };
    let is_node = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .is_some_and(|leaf| tls.is_node(leaf));
    if is_node {
        stream.get_mut().0.set_peer_is_node();
    }
    Some(stream)
}

impl Connected for ClientStream {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        match self {
            ClientStream::Plain(connection) => connection.connect_info(),
            ClientStream::Tls(stream) => stream.get_ref().0.connect_info(),
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(c) => Pin::new(c).poll_read(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(c) => Pin::new(c).poll_write(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(c) => Pin::new(c).poll_write_vectored(cx, bufs),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ClientStream::Plain(c) => c.is_write_vectored(),
            ClientStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(c) => Pin::new(c).poll_flush(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(c) => Pin::new(c).poll_shutdown(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
