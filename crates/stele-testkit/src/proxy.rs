//! [`FaultProxy`]: a TCP proxy in front of one node's internal (replication) port that can
//! cut the node off from some peers or from all of them, and let them back.
//!
//! Peers are told apart by the source address of their connections: each node of a
//! [`crate::TestCluster`] binds its own loopback address (`127.0.0.K`) and opens its outbound
//! replication connections from it. Blocking a source closes the connections it has open
//! through the proxy and closes every new one as soon as it is accepted, so the peer sees a
//! dead link at once rather than a slow one. What the proxy deliberately does not do: delay,
//! reorder or corrupt bytes, or look inside the protocol.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

/// Which sources the proxy refuses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Blocked {
    #[default]
    Nobody,
    Sources(HashSet<IpAddr>),
    Everybody,
}

impl Blocked {
    fn blocks(&self, source: IpAddr) -> bool {
        match self {
            Blocked::Nobody => false,
            Blocked::Sources(sources) => sources.contains(&source),
            Blocked::Everybody => true,
        }
    }
}

/// One proxied connection: where it comes from, and how to cut it.
struct Connection {
    source: SocketAddr,
    abort: AbortHandle,
}

#[derive(Default)]
struct Shared {
    blocked: Mutex<Blocked>,
    connections: Mutex<HashMap<u64, Connection>>,
    /// Connections cut but perhaps not closed yet (their task may be mid-poll).
    dying: Mutex<Vec<AbortHandle>>,
    next_id: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    cut: AtomicU64,
}

impl Shared {
    /// Closes every open connection whose source is now blocked.
    fn cut_blocked(&self) {
        let blocked = self.blocked.lock().expect("proxy lock").clone();
        let mut connections = self.connections.lock().expect("proxy lock");
        let mut dying = self.dying.lock().expect("proxy lock");
        dying.retain(|task| !task.is_finished());
        connections.retain(|_, connection| {
            if blocked.blocks(connection.source.ip()) {
                connection.abort.abort();
                dying.push(connection.abort.clone());
                self.cut.fetch_add(1, Ordering::Relaxed);
                false
            } else {
                true
            }
        });
    }
}

/// Counters, for diagnostics when a test fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted and forwarded.
    pub accepted: u64,
    /// Connections closed as soon as they were accepted because their source was blocked.
    pub refused: u64,
    /// Open connections closed because their source became blocked.
    pub cut: u64,
    /// Connections open right now.
    pub open: u64,
}

/// A TCP proxy from a listening address to a target address, with faults on demand.
/// Dropping it stops it and closes every connection through it.
pub struct FaultProxy {
    listen_addr: SocketAddr,
    target_addr: SocketAddr,
    shared: Arc<Shared>,
    accept_task: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on `listen` (port 0 picks a free port) and forwards every connection to
    /// `target`. Must be called inside a tokio runtime.
    pub async fn start(listen: SocketAddr, target: SocketAddr) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind(listen).await?;
        let listen_addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let accept_task = tokio::spawn(accept_loop(listener, target, Arc::clone(&shared)));
        Ok(FaultProxy {
            listen_addr,
            target_addr: target,
            shared,
            accept_task,
        })
    }

    /// The address peers connect to.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    /// The address connections are forwarded to.
    pub fn target_addr(&self) -> SocketAddr {
        self.target_addr
    }

    /// Adds `sources` to the blocked set: their open connections are closed and new ones
    /// are closed on arrival.
    pub fn block_sources(&self, sources: impl IntoIterator<Item = IpAddr>) {
        {
            let mut blocked = self.shared.blocked.lock().expect("proxy lock");
            let mut set = match &*blocked {
                Blocked::Everybody => return,
                Blocked::Nobody => HashSet::new(),
                Blocked::Sources(set) => set.clone(),
            };
            set.extend(sources);
            *blocked = if set.is_empty() {
                Blocked::Nobody
            } else {
                Blocked::Sources(set)
            };
        }
        self.shared.cut_blocked();
    }

    /// Blocks every source.
    pub fn block_all(&self) {
        *self.shared.blocked.lock().expect("proxy lock") = Blocked::Everybody;
        self.shared.cut_blocked();
    }

    /// Waits until every connection cut so far is closed (a cut takes effect when its
    /// forwarding task is next polled, which is soon but not at once).
    pub async fn settled(&self) {
        loop {
            let open = {
                let mut dying = self.shared.dying.lock().expect("proxy lock");
                dying.retain(|task| !task.is_finished());
                dying.len()
            };
            if open == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Blocks nobody any more. Connections closed while blocked stay closed; peers
    /// reconnect on their own.
    pub fn heal(&self) {
        *self.shared.blocked.lock().expect("proxy lock") = Blocked::Nobody;
    }

    /// Whether new connections from `source` would be refused.
    pub fn is_blocked(&self, source: IpAddr) -> bool {
        self.shared
            .blocked
            .lock()
            .expect("proxy lock")
            .blocks(source)
    }

    /// Connection counters.
    pub fn stats(&self) -> ProxyStats {
        ProxyStats {
            accepted: self.shared.accepted.load(Ordering::Relaxed),
            refused: self.shared.refused.load(Ordering::Relaxed),
            cut: self.shared.cut.load(Ordering::Relaxed),
            open: self.shared.connections.lock().expect("proxy lock").len() as u64,
        }
    }

    /// The sources of the connections open right now.
    pub fn open_sources(&self) -> Vec<SocketAddr> {
        self.shared
            .connections
            .lock()
            .expect("proxy lock")
            .values()
            .map(|c| c.source)
            .collect()
    }
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("listen_addr", &self.listen_addr)
            .field("target_addr", &self.target_addr)
            .field("blocked", &*self.shared.blocked.lock().expect("proxy lock"))
            .field("stats", &self.stats())
            .finish()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept_task.abort();
        for (_, connection) in self.shared.connections.lock().expect("proxy lock").drain() {
            connection.abort.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
    loop {
        let (inbound, source) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                eprintln!("stele-testkit proxy {target}: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        if shared
            .blocked
            .lock()
            .expect("proxy lock")
            .blocks(source.ip())
        {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            drop(inbound);
            continue;
        }
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        // The connection registers itself before it can finish, so that a block that
        // races with the accept still finds and cuts it; the lock orders the two.
        let mut connections = shared.connections.lock().expect("proxy lock");
        let task = tokio::spawn(forward(inbound, source, target, Arc::clone(&shared), id));
        connections.insert(
            id,
            Connection {
                source,
                abort: task.abort_handle(),
            },
        );
        drop(connections);
        // A block may have landed between the check above and the registration.
        shared.cut_blocked();
    }
}

async fn forward(
    mut inbound: TcpStream,
    source: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
    id: u64,
) {
    if let Ok(mut outbound) = connect_from(source.ip(), target).await {
        let _ = inbound.set_nodelay(true);
        let _ = outbound.set_nodelay(true);
        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
    }
    shared.connections.lock().expect("proxy lock").remove(&id);
}

/// Connects to `target` from the peer's own address when possible, so the node behind the
/// proxy sees the same source as it would without the proxy.
async fn connect_from(source_ip: IpAddr, target: SocketAddr) -> io::Result<TcpStream> {
    let socket = match target {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if source_ip.is_loopback() && source_ip.is_ipv4() == target.is_ipv4() {
        // Falls back to the default source if the bind is refused.
        let _ = socket.bind(SocketAddr::new(source_ip, 0));
    }
    socket.connect(target).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let (mut r, mut w) = stream.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn connect_from_ip(ip: Ipv4Addr, addr: SocketAddr) -> TcpStream {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(IpAddr::V4(ip), 0)).unwrap();
        socket.connect(addr).await.unwrap()
    }

    /// Sends one byte and waits for the echo; false if the connection is closed.
    async fn round_trip(stream: &mut TcpStream) -> bool {
        if stream.write_all(b"x").await.is_err() {
            return false;
        }
        let mut buf = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await,
            Ok(Ok(1))
        )
    }

    #[tokio::test]
    async fn forwards_blocks_by_source_and_heals() {
        let target = echo_server().await;
        let proxy = FaultProxy::start((Ipv4Addr::LOCALHOST, 0).into(), target)
            .await
            .unwrap();
        let a = Ipv4Addr::new(127, 0, 0, 2);
        let b = Ipv4Addr::new(127, 0, 0, 3);
        let mut from_a = connect_from_ip(a, proxy.listen_addr()).await;
        let mut from_b = connect_from_ip(b, proxy.listen_addr()).await;
        assert!(round_trip(&mut from_a).await);
        assert!(round_trip(&mut from_b).await);

        proxy.block_sources([IpAddr::V4(a)]);
        proxy.settled().await;
        assert!(!round_trip(&mut from_a).await, "a's open connection is cut");
        assert!(round_trip(&mut from_b).await, "b is not blocked");
        let mut again = connect_from_ip(a, proxy.listen_addr()).await;
        assert!(
            !round_trip(&mut again).await,
            "a's new connection is refused"
        );

        proxy.block_all();
        assert!(!round_trip(&mut from_b).await, "b's open connection is cut");

        proxy.heal();
        let mut healed = connect_from_ip(a, proxy.listen_addr()).await;
        assert!(round_trip(&mut healed).await);
        let stats = proxy.stats();
        assert_eq!(stats.refused, 1, "{stats:?}");
        assert_eq!(stats.cut, 2, "{stats:?}");
        assert_eq!(stats.accepted, 3, "{stats:?}");
    }
}
