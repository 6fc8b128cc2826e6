//! Deterministic simulation of whole Stele clusters (issue 5).
//!
//! Every node is the real `stele_cluster::Node` — openraft, the chunk log, the index, the
//! transport's framing and handshake, gossip's checks, the controller — started with
//! [`stele_cluster::Node::start_with`] on one current-thread tokio runtime whose clock is
//! paused (time jumps to the next timer when every task waits) and whose scheduler, like
//! every random draw in the nodes (`stele_cluster::determinism`) and in the harness, is
//! seeded. Disks are `stele_log::FaultyDisk`s kept outside the nodes; the network is
//! [`net::SimNetwork`]. A seed therefore replays exactly: `scripts/sim.sh --seed N`.
//!
//! A run ([`run::run`]): a safety phase in which clients append through random nodes while
//! faults are injected (crashes, power loss, torn and reordered writes, fsync errors,
//! partitions, one-way cuts, delays, connection resets, resignations, priority changes),
//! with "at most one leader per term" checked every 20 ms; then everything heals and within
//! a bound there must be a leader, an acknowledged write and a cluster whose nodes all hold
//! the same `$all`; finally the shared history checker (`stele_testkit::history`) verifies
//! every append against every node, and one catch-up subscription per host (resumed after
//! every crash) must have been delivered exactly the converged `$all`.

#![allow(
    clippy::print_stderr,
    reason = "`--trace` prints the run's events as they happen"
)]

pub mod cluster;
pub mod net;
pub mod persistent_consumer;
pub mod run;
pub mod subscriber;
