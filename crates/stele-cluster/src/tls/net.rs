//! Mutual TLS for the internal port: [`TlsNet`] wraps another [`Net`] (TCP in production)
//! so that every transport connection is TLS with node certificates on both sides. A dialer
//! checks the peer with [`super::PeerNodeVerifier`]; a listener requires a client
//! certificate that chains to the trusted roots and then checks it is a node's, and drops
//! the connection otherwise — before a single transport frame is read. So a stranger cannot
//! join, vote, replicate or forward writes.
//!
//! Handshakes on the listening side run concurrently (at most
//! [`MAX_PENDING_TLS_HANDSHAKES`], each bounded by [`TLS_HANDSHAKE_TIMEOUT`]), so a slow or
//! silent dialer cannot hold up the accept loop.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rustls::pki_types::ServerName;
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::Tls;
use crate::net::{Conn, Listener, Net};

/// A TLS handshake (either side) must complete within this.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Handshakes in progress on one listener at most; further connections are closed at once.
pub const MAX_PENDING_TLS_HANDSHAKES: usize = 64;
/// Established connections waiting for the transport to take them.
const ACCEPTED_QUEUE: usize = 16;

/// A [`Net`] whose connections are mutual TLS between nodes.
pub struct TlsNet<N> {
    inner: Arc<N>,
    tls: Arc<Tls>,
}

impl<N: Net> TlsNet<N> {
    pub fn new(inner: N, tls: Arc<Tls>) -> TlsNet<N> {
        TlsNet {
            inner: Arc::new(inner),
            tls,
        }
    }
}

/// The server name to send: the host of `addr` (the verifier does not check it).
fn server_name(addr: &str) -> ServerName<'static> {
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return ServerName::IpAddress(ip.into());
    }
    ServerName::try_from(host.to_owned())
        .unwrap_or_else(|_| ServerName::try_from("node").expect("a valid DNS name"))
}

impl<N: Net> Net for TlsNet<N> {
    fn connect<'a>(
        &'a self,
        addr: &'a str,
        bind_ip: Option<IpAddr>,
    ) -> BoxFuture<'a, io::Result<Conn>> {
        Box::pin(async move {
            let tcp = self.inner.connect(addr, bind_ip).await?;
            let connector = TlsConnector::from(self.tls.current().peer_client.clone());
            let tls = tokio::time::timeout(
                TLS_HANDSHAKE_TIMEOUT,
                connector.connect(server_name(addr), tcp),
            )
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
            Ok(Box::new(tls) as Conn)
        })
    }

    fn bind(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let inner = self.inner.bind(addr).await?;
            let (sender, receiver) = mpsc::channel(ACCEPTED_QUEUE);
            let task = tokio::spawn(accept_loop(inner, self.tls.clone(), sender));
            Ok(Box::new(TlsListener { receiver, task }) as Box<dyn Listener>)
        })
    }
}

/// Accepted, handshaken, node-checked connections.
struct TlsListener {
    receiver: mpsc::Receiver<io::Result<(Conn, String)>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Listener for TlsListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(Conn, String)>> {
        Box::pin(async move {
            self.receiver
                .recv()
                .await
                .unwrap_or_else(|| Err(io::Error::other("the TLS listener stopped")))
        })
    }
}

async fn accept_loop(
    mut inner: Box<dyn Listener>,
    tls: Arc<Tls>,
    sender: mpsc::Sender<io::Result<(Conn, String)>>,
) {
    let pending = Arc::new(Semaphore::new(MAX_PENDING_TLS_HANDSHAKES));
    loop {
        let (tcp, from) = match inner.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                if sender.send(Err(e)).await.is_err() {
                    return;
                }
                continue;
            }
        };
        let Ok(permit) = pending.clone().try_acquire_owned() else {
            tracing::debug!(%from, "too many TLS handshakes in progress: closing a connection");
            continue;
        };
        let tls = tls.clone();
        let sender = sender.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Some(conn) = handshake(&tls, tcp, &from).await {
                let _ = sender.send(Ok((conn, from))).await;
            }
        });
    }
}

/// The server side of one handshake; `None` (and the connection dropped) unless the peer
/// presented a node certificate.
async fn handshake(tls: &Tls, tcp: Conn, from: &str) -> Option<Conn> {
    let acceptor = TlsAcceptor::from(tls.current().internal_server.clone());
    let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(%from, error = %e, "internal TLS handshake failed");
            return None;
        }
        Err(_) => {
            tracing::debug!(%from, "internal TLS handshake timed out");
            return None;
        }
    };
    let is_node = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .is_some_and(|leaf| tls.is_node(leaf));
    if !is_node {
        tracing::debug!(%from, "refused an internal connection: the peer's certificate is not a node certificate");
        return None;
    }
    Some(Box::new(stream) as Conn)
}
