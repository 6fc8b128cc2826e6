//! How a node reaches its peers: [`Net`] opens and accepts byte streams for the transport
//! (`transport.rs`), and [`GossipClient`] exchanges gossip with another node's HTTP port.
//! Production uses TCP ([`TokioNet`]) and HTTP ([`HttpGossip`]); the deterministic simulation
//! (`crates/stele-sim`) plugs in a simulated network with partitions, delays and crashes.
//! Everything above these traits — framing, handshake, pooling, gossip checks — is the same
//! code in both.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket};

use crate::gossip::GossipMessage;
use crate::tls::Tls;

/// A connected byte stream.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// A connection of the transport.
pub type Conn = Box<dyn Stream>;

/// Opens connections to peers and listens for theirs.
pub trait Net: Send + Sync + 'static {
    /// Connects to `addr` (`host:port`), from `bind_ip` when given, so the peer sees which
    /// node dials it.
    fn connect<'a>(
        &'a self,
        addr: &'a str,
        bind_ip: Option<IpAddr>,
    ) -> BoxFuture<'a, io::Result<Conn>>;

    /// Listens on `addr`.
    fn bind(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn Listener>>>;
}

/// Accepts connections.
pub trait Listener: Send + 'static {
    /// The next connection and where it came from.
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(Conn, String)>>;
}

/// TCP through tokio: the production network.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioNet;

impl Net for TokioNet {
    fn connect<'a>(
        &'a self,
        addr: &'a str,
        bind_ip: Option<IpAddr>,
    ) -> BoxFuture<'a, io::Result<Conn>> {
        Box::pin(async move {
            let target: SocketAddr = tokio::net::lookup_host(addr)
                .await?
                .next()
                .ok_or_else(|| io::Error::other("the name resolves to no address"))?;
            let socket = if target.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            }?;
            // Connect from the internal interface, so that the peer (and a test's proxy) sees
            // which node a connection comes from.
            if let Some(ip) = bind_ip {
                if !ip.is_unspecified() && ip.is_ipv4() == target.is_ipv4() {
                    socket.bind(SocketAddr::new(ip, 0))?;
                }
            }
            let stream = socket.connect(target).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as Conn)
        })
    }

    fn bind(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let listener = TcpListener::bind(addr).await?;
            Ok(Box::new(listener) as Box<dyn Listener>)
        })
    }
}

impl Listener for TcpListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(Conn, String)>> {
        Box::pin(async move {
            let (stream, from) = TcpListener::accept(self).await?;
            stream.set_nodelay(true)?;
            Ok((Box::new(stream) as Conn, from.to_string()))
        })
    }
}

/// Why a gossip exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GossipCallError {
    /// Nothing came back: the member is marked unreachable.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The member answered with a refusal (another cluster, a clock too far off).
    #[error("refused: {0}")]
    Refused(String),
    /// The member answered something that is not gossip.
    #[error("bad reply: {0}")]
    BadReply(String),
}

/// Sends this node's gossip to another node's gossip endpoint and returns its answer.
pub trait GossipClient: Send + Sync + 'static {
    fn exchange<'a>(
        &'a self,
        endpoint: &'a (String, u16),
        message: &'a GossipMessage,
    ) -> BoxFuture<'a, Result<GossipMessage, GossipCallError>>;
}

/// Gossip as EventStoreDB does it: `POST /gossip` with JSON over HTTP/1.1.
/// With TLS (a secure node), `https` with this node's certificate as client identity (the
/// receiver treats the sender as a node only then) and the peer verified as a node.
pub struct HttpGossip {
    client: reqwest::Client,
    scheme: &'static str,
}

impl HttpGossip {
    pub fn new(timeout: Duration, tls: Option<&Tls>) -> Result<HttpGossip, String> {
        let builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout);
        let (builder, scheme) = match tls {
            Some(tls) => {
                let mut config = (*tls.current().peer_client).clone();
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                (builder.use_preconfigured_tls(config), "https")
            }
            None => (builder, "http"),
        };
        builder
            .build()
            .map(|client| HttpGossip { client, scheme })
            .map_err(|e| e.to_string())
    }
}

impl GossipClient for HttpGossip {
    fn exchange<'a>(
        &'a self,
        (host, port): &'a (String, u16),
        message: &'a GossipMessage,
    ) -> BoxFuture<'a, Result<GossipMessage, GossipCallError>> {
        Box::pin(async move {
            let url = format!("{}://{host}:{port}/gossip", self.scheme);
            match self.client.post(&url).json(message).send().await {
                Ok(response) if response.status().is_success() => response
                    .json::<GossipMessage>()
                    .await
                    .map_err(|e| GossipCallError::BadReply(format!("{url}: {e}"))),
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    Err(GossipCallError::Refused(format!("{url}: {status}: {text}")))
                }
                Err(e) => Err(GossipCallError::Unreachable(format!("{url}: {e}"))),
            }
        })
    }
}
