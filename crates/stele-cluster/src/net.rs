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
use std::sync::Arc;

use crate::tls::{Tls, TlsConfigs};

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
/// receiver treats the sender as a node only then) and the peer verified as a node. A
/// reloaded certificate (`POST /admin/reloadconfig`) is used from the next exchange on: the
/// client is built again when the configurations in force change.
pub struct HttpGossip {
    timeout: Duration,
    tls: Option<Arc<Tls>>,
    /// The client, and the configurations it was built with.
    client: std::sync::Mutex<(reqwest::Client, Option<Arc<TlsConfigs>>)>,
    scheme: &'static str,
}

impl HttpGossip {
    pub fn new(timeout: Duration, tls: Option<Arc<Tls>>) -> Result<HttpGossip, String> {
        let configs = tls.as_ref().map(|tls| tls.current());
        let client = gossip_client(timeout, configs.as_deref())?;
        Ok(HttpGossip {
            timeout,
            scheme: if tls.is_some() { "https" } else { "http" },
            tls,
            client: std::sync::Mutex::new((client, configs)),
        })
    }

    /// The client for the configurations in force (rebuilt after a reload).
    fn client(&self) -> reqwest::Client {
        let mut cached = self.client.lock().expect("gossip client lock");
        if let Some(tls) = &self.tls {
            let current = tls.current();
            let stale = cached
                .1
                .as_ref()
                .is_none_or(|used| !Arc::ptr_eq(used, &current));
            if stale {
                match gossip_client(self.timeout, Some(&current)) {
                    Ok(client) => *cached = (client, Some(current)),
                    // The old client keeps working with the old certificate.
                    Err(error) => {
                        tracing::warn!(%error, "gossip client not rebuilt after a reload");
                        cached.1 = Some(current);
                    }
                }
            }
        }
        cached.0.clone()
    }
}

fn gossip_client(timeout: Duration, tls: Option<&TlsConfigs>) -> Result<reqwest::Client, String> {
    let builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout);
    let builder = match tls {
        Some(configs) => {
            let mut config = (*configs.peer_client).clone();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            builder.use_preconfigured_tls(config)
        }
        None => builder,
    };
    builder.build().map_err(|e| e.to_string())
}

impl GossipClient for HttpGossip {
    fn exchange<'a>(
        &'a self,
        (host, port): &'a (String, u16),
        message: &'a GossipMessage,
    ) -> BoxFuture<'a, Result<GossipMessage, GossipCallError>> {
        Box::pin(async move {
            let url = format!("{}://{host}:{port}/gossip", self.scheme);
            match self.client().post(&url).json(message).send().await {
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

#[cfg(test)]
mod tests {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    use super::*;
    use crate::tls::TlsSource;

    fn dev_tls() -> Arc<Tls> {
        let key = rcgen::KeyPair::generate().expect("a key");
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        let certificate = params.self_signed(&key).expect("a certificate");
        let source = TlsSource::InMemory {
            chain: vec![CertificateDer::from(certificate.der().to_vec())],
            key: Arc::new(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                key.serialize_der(),
            ))),
        };
        Tls::load(source, "").expect("the configurations build")
    }

    fn built_with(gossip: &HttpGossip) -> Option<Arc<TlsConfigs>> {
        gossip.client.lock().unwrap().1.clone()
    }

    #[tokio::test]
    async fn the_gossip_client_follows_a_certificate_reload() {
        let tls = dev_tls();
        let gossip = HttpGossip::new(Duration::from_secs(1), Some(tls.clone())).unwrap();
        let first = tls.current();
        gossip.client();
        assert!(Arc::ptr_eq(&built_with(&gossip).unwrap(), &first));
        tls.reload().expect("reload");
        let reloaded = tls.current();
        assert!(!Arc::ptr_eq(&first, &reloaded));
        gossip.client();
        assert!(
            Arc::ptr_eq(&built_with(&gossip).unwrap(), &reloaded),
            "the next exchange uses the reloaded certificate"
        );
    }
}
