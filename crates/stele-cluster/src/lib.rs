//! The cluster layer: the openraft adapter (log storage over the chunk log, the state machine
//! over the index), node states, the live feed of applied events that catch-up
//! subscriptions follow ([`live`]), and [`Node`], the facade the client API calls.
//!
//! openraft's types stay inside this crate (docs/design.md decision 1): the API sees only
//! [`Node`] and the domain types of `stele-core`.

#![cfg_attr(
    test,
    allow(
        clippy::disallowed_methods,
        reason = "tests may use the clock, random ids and threads"
    )
)]

mod apply;
pub mod blocking;
#[cfg(feature = "injected-bugs")]
pub mod bugs;
mod committer;
mod controller;
pub mod determinism;
mod entry_map;
pub mod env;
#[doc(hidden)]
pub mod fuzzing;
pub mod gossip;
mod guard;
mod identity;
pub mod live;
mod log_store;
mod metadata_writes;
pub mod net;
mod network;
pub mod node;
#[cfg(test)]
mod openraft_suite;
mod reachability;
mod record;
mod rt;
pub mod state;
mod state_machine;
pub mod stream_versions;
pub mod tls;
pub mod transport;
mod types;
mod vote_store;

pub use env::{CommitMode, InjectedStorage, NodeEnv, VoteSlot};
pub use gossip::{GossipConfig, GossipMessage, GossipRefused};
pub use live::{AllPage, Live, LiveBatch, LiveReceiver, LIVE_FEED_BATCHES};
pub use node::NodeIdentity;
pub use node::{
    now_ticks, AdminError, AllReadRequest, AllStart, AppendOutcome, DeleteOutcome, Direction, Node,
    NodeConfig, NodeStatus, ReadError, StartError, StreamReadRequest, StreamReadResult,
    StreamStart, WriteError,
};
pub use state::VNodeState;
