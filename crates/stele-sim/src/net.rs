//! The simulated network: byte streams between hosts that run through relay tasks on the
//! simulated clock, so the harness can delay them, cut them one direction at a time
//! (partitions), reset them (message loss) and fence a crashed host's connections.
//!
//! A direction of a connection that lost bytes to a partition stays dead, as a TCP stream
//! that lost a segment and never retransmits: its reader waits until its own timeout. A reset
//! (loss, or a crashed end) ends both directions at once.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use stele_cluster::net::{Conn, Listener, Net};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

/// A host is its index in the simulation.
pub type HostId = usize;

/// How long a connection attempt across a partition takes to fail.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const PIPE_BYTES: usize = 256 * 1024;

/// Per-message delay and loss in force.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conditions {
    pub latency_min: Duration,
    pub latency_max: Duration,
    /// Probability that a chunk of bytes resets its connection.
    pub reset_rate: f64,
}

impl Default for Conditions {
    fn default() -> Self {
        Conditions {
            latency_min: Duration::from_micros(200),
            latency_max: Duration::from_millis(2),
            reset_rate: 0.0,
        }
    }
}

struct ConnCtl {
    ends: (HostId, HostId),
    reset: AtomicBool,
    notify: Notify,
}

impl ConnCtl {
    fn reset(&self) {
        self.reset.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
    fn is_reset(&self) -> bool {
        self.reset.load(Ordering::SeqCst)
    }
}

/// Where a listener hands its accepted connections.
type AcceptQueue = mpsc::UnboundedSender<(Conn, String)>;

struct State {
    /// Listening sockets: address → (host, incarnation, queue of accepted connections).
    listeners: BTreeMap<SocketAddr, (HostId, u64, AcceptQueue)>,
    /// Directed cuts: bytes from `.0` to `.1` are dropped.
    cut: BTreeSet<(HostId, HostId)>,
    /// Each host's incarnation; a handle of an older one is fenced off.
    incarnation: Vec<u64>,
    hosts_by_ip: BTreeMap<IpAddr, HostId>,
    conns: Vec<Weak<ConnCtl>>,
    conditions: Conditions,
    rng: SmallRng,
    next_port: u16,
}

/// The network every simulated host shares.
#[derive(Clone)]
pub struct SimNetwork {
    state: Arc<Mutex<State>>,
}

impl SimNetwork {
    pub fn new(seed: u64, host_ips: &[IpAddr]) -> SimNetwork {
        SimNetwork {
            state: Arc::new(Mutex::new(State {
                listeners: BTreeMap::new(),
                cut: BTreeSet::new(),
                incarnation: vec![0; host_ips.len()],
                hosts_by_ip: host_ips
                    .iter()
                    .enumerate()
                    .map(|(i, ip)| (*ip, i))
                    .collect(),
                conns: Vec::new(),
                conditions: Conditions::default(),
                rng: SmallRng::seed_from_u64(seed),
                next_port: 40_000,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("network lock")
    }

    /// A handle for the current incarnation of `host`.
    pub fn handle(&self, host: HostId) -> HostNet {
        let incarnation = self.lock().incarnation[host];
        HostNet {
            network: self.clone(),
            host,
            incarnation,
        }
    }

    /// The host crashed: its listeners close, its connections reset, its old handles stop
    /// working.
    pub fn crash(&self, host: HostId) {
        let mut state = self.lock();
        state.incarnation[host] += 1;
        state.listeners.retain(|_, (h, _, _)| *h != host);
        state.conns.retain(|c| match c.upgrade() {
            Some(ctl) => {
                if ctl.ends.0 == host || ctl.ends.1 == host {
                    ctl.reset();
                    false
                } else {
                    true
                }
            }
            None => false,
        });
    }

    /// Drops bytes from `from` to `to` until [`SimNetwork::heal`].
    pub fn cut(&self, from: HostId, to: HostId) {
        self.lock().cut.insert((from, to));
    }

    pub fn heal(&self) {
        self.lock().cut.clear();
    }

    pub fn set_conditions(&self, conditions: Conditions) {
        self.lock().conditions = conditions;
    }

    /// Whether bytes flow from `from` to `to` now.
    pub fn flows(&self, from: HostId, to: HostId) -> bool {
        !self.lock().cut.contains(&(from, to))
    }

    pub fn is_current(&self, host: HostId, incarnation: u64) -> bool {
        self.lock().incarnation[host] == incarnation
    }

    /// A delay drawn from the conditions in force.
    pub fn latency(&self) -> Duration {
        let mut state = self.lock();
        let (min, max) = (state.conditions.latency_min, state.conditions.latency_max);
        if max <= min {
            return min;
        }
        let span = (max - min).as_micros() as u64;
        min + Duration::from_micros(state.rng.random_range(0..=span))
    }

    fn resets_now(&self) -> bool {
        let mut state = self.lock();
        let rate = state.conditions.reset_rate;
        rate > 0.0 && state.rng.random_bool(rate)
    }

    pub fn host_of(&self, ip: IpAddr) -> Option<HostId> {
        self.lock().hosts_by_ip.get(&ip).copied()
    }
}

/// One host's view of the network, for one incarnation.
#[derive(Clone)]
pub struct HostNet {
    network: SimNetwork,
    host: HostId,
    incarnation: u64,
}

impl HostNet {
    /// Whether the host has not crashed since this handle was made.
    pub fn is_current(&self) -> bool {
        self.network.is_current(self.host, self.incarnation)
    }

    fn fenced(&self) -> io::Result<()> {
        if self.network.is_current(self.host, self.incarnation) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the host crashed since this handle was made",
            ))
        }
    }
}

impl Net for HostNet {
    fn connect<'a>(
        &'a self,
        addr: &'a str,
        _bind_ip: Option<IpAddr>,
    ) -> BoxFuture<'a, io::Result<Conn>> {
        Box::pin(async move {
            self.fenced()?;
            let target: SocketAddr = addr
                .parse()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{addr}: {e}")))?;
            let network = &self.network;
            let Some(to) = network.host_of(target.ip()) else {
                tokio::time::sleep(CONNECT_TIMEOUT).await;
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no such host"));
            };
            let from = self.host;
            // SYN and SYN-ACK must both get through.
            if !network.flows(from, to) || !network.flows(to, from) {
                tokio::time::sleep(CONNECT_TIMEOUT).await;
                return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"));
            }
            tokio::time::sleep(network.latency() * 2).await;
            self.fenced()?;
            let client = {
                let mut state = network.lock();
                if state.conns.len() > 4096 {
                    state.conns.retain(|c| c.strong_count() > 0);
                }
                let Some((_, _, queue)) = state.listeners.get(&target) else {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionRefused,
                        format!("nothing listens on {target}"),
                    ));
                };
                let queue = queue.clone();
                let ctl = Arc::new(ConnCtl {
                    ends: (from, to),
                    reset: AtomicBool::new(false),
                    notify: Notify::new(),
                });
                state.conns.push(Arc::downgrade(&ctl));
                let port = state.next_port;
                state.next_port = state.next_port.checked_add(1).unwrap_or(40_000);
                let (client, server) = pipe(network, &ctl);
                let source = format!("{}:{port}", ip_of(&state, from));
                if queue.send((server, source)).is_err() {
                    ctl.reset();
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionRefused,
                        "listener gone",
                    ));
                }
                client
            };
            Ok(client)
        })
    }

    fn bind(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            self.fenced()?;
            let (tx, rx) = mpsc::unbounded_channel();
            let mut state = self.network.lock();
            if state.listeners.contains_key(&addr) {
                return Err(io::Error::new(io::ErrorKind::AddrInUse, addr.to_string()));
            }
            state
                .listeners
                .insert(addr, (self.host, self.incarnation, tx));
            Ok(Box::new(SimListener { rx }) as Box<dyn Listener>)
        })
    }
}

fn ip_of(state: &State, host: HostId) -> IpAddr {
    state
        .hosts_by_ip
        .iter()
        .find(|(_, h)| **h == host)
        .map(|(ip, _)| *ip)
        .expect("every host has an address")
}

struct SimListener {
    rx: mpsc::UnboundedReceiver<(Conn, String)>,
}

impl Listener for SimListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(Conn, String)>> {
        Box::pin(async move {
            match self.rx.recv().await {
                Some(accepted) => Ok(accepted),
                // The host crashed: this listener never accepts again.
                None => std::future::pending().await,
            }
        })
    }
}

/// A connection: each direction is a pipe from the writer to a relay task and a pipe from
/// the relay to the reader; the relay applies delays, cuts and resets.
fn pipe(network: &SimNetwork, ctl: &Arc<ConnCtl>) -> (Conn, Conn) {
    let (a_read, a_write) = direction(network, ctl, ctl.ends.0, ctl.ends.1);
    let (b_read, b_write) = direction(network, ctl, ctl.ends.1, ctl.ends.0);
    let a: Conn = Box::new(tokio::io::join(b_read, a_write));
    let b: Conn = Box::new(tokio::io::join(a_read, b_write));
    (a, b)
}

type ReadEnd = tokio::io::ReadHalf<tokio::io::SimplexStream>;
type WriteEnd = tokio::io::WriteHalf<tokio::io::SimplexStream>;

/// Bytes from `from` to `to`: returns (what `to` reads, what `from` writes).
fn direction(
    network: &SimNetwork,
    ctl: &Arc<ConnCtl>,
    from: HostId,
    to: HostId,
) -> (ReadEnd, WriteEnd) {
    let (mut relay_in, writer) = tokio::io::simplex(PIPE_BYTES);
    let (reader, mut relay_out) = tokio::io::simplex(PIPE_BYTES);
    let (chunks_tx, mut chunks_rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    // Takes what the writer wrote, stamps each chunk with its arrival time.
    let (net, c) = (network.clone(), ctl.clone());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut dead = false;
        let mut last_arrival = Instant::now();
        loop {
            let notified = c.notify.notified();
            if c.is_reset() {
                break;
            }
            let n = tokio::select! {
                biased;
                _ = notified => 0,
                n = relay_in.read(&mut buf) => n.unwrap_or(0),
            };
            if n == 0 || c.is_reset() {
                break;
            }
            if dead || !net.flows(from, to) {
                // Lost to a partition: this direction never delivers again.
                dead = true;
                continue;
            }
            if net.resets_now() {
                c.reset();
                break;
            }
            let arrival = (Instant::now() + net.latency()).max(last_arrival);
            last_arrival = arrival;
            if chunks_tx.send((arrival, buf[..n].to_vec())).is_err() {
                break;
            }
        }
    });
    // Delivers chunks at their arrival time, in order.
    let c = ctl.clone();
    tokio::spawn(async move {
        loop {
            let notified = c.notify.notified();
            if c.is_reset() {
                break;
            }
            let next = tokio::select! {
                biased;
                _ = notified => None,
                next = chunks_rx.recv() => next,
            };
            let Some((arrival, bytes)) = next else { break };
            let notified = c.notify.notified();
            if c.is_reset() {
                break;
            }
            tokio::select! {
                biased;
                _ = notified => break,
                _ = tokio::time::sleep_until(arrival) => {}
            }
            if c.is_reset() || relay_out.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = relay_out.shutdown().await;
    });
    (reader, writer)
}
