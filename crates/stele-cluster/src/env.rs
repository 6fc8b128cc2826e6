//! [`NodeEnv`]: what a node is given besides its configuration — the network, the gossip
//! client, storage and how the log is made durable. [`NodeEnv::production`] is what the
//! `stele` binary uses (TCP, HTTP gossip, files or memory from the configuration, a writer
//! thread); the deterministic simulation (`crates/stele-sim`) injects a simulated network, a
//! fault-injecting disk and a committer task, and keeps them across the node's restarts.

use std::sync::{Arc, Mutex};

use stele_index::IndexOptions;
use stele_log::Disk;

pub use crate::committer::CommitMode;
use crate::identity::Identity;
use crate::net::{GossipClient, Net, TokioNet};
use crate::tls::{Tls, TlsNet};

/// The vote, kept by whoever injects storage so that it survives the node's restarts. It is
/// replaced whole (the file store's atomic rename), as the JSON the file would hold.
pub type VoteSlot = Arc<Mutex<Option<Vec<u8>>>>;

/// Storage handed to a node instead of the data directory.
#[derive(Clone)]
pub struct InjectedStorage {
    /// Where the chunk files live.
    pub disk: Arc<dyn Disk>,
    pub vote: VoteSlot,
    pub identity: Identity,
    pub index_options: IndexOptions,
    /// The index's redb file, kept by whoever injects storage: a restart opens the index
    /// as it was last flushed and replays the log from its checkpoint. `None`: a fresh
    /// index in memory, rebuilt from the whole log at every start.
    pub index_file: Option<stele_index::SharedMemFile>,
}

/// What a node runs on.
#[derive(Clone)]
pub struct NodeEnv {
    pub net: Arc<dyn Net>,
    /// `None`: gossip over HTTP with the configured timeout.
    pub gossip: Option<Arc<dyn GossipClient>>,
    /// `None`: the data directory (or memory) the configuration names.
    pub storage: Option<InjectedStorage>,
    pub commit: CommitMode,
    /// `Some`: the node is secure — mutual TLS on the internal port and HTTPS gossip with
    /// this node's certificate (issue 13).
    pub tls: Option<Arc<Tls>>,
}

impl NodeEnv {
    /// TCP, HTTP gossip, the configured storage, a writer thread.
    pub fn production() -> NodeEnv {
        NodeEnv {
            net: Arc::new(TokioNet),
            gossip: None,
            storage: None,
            commit: CommitMode::Thread,
            tls: None,
        }
    }

    /// As [`NodeEnv::production`], with mutual TLS between nodes.
    pub fn production_tls(tls: Arc<Tls>) -> NodeEnv {
        NodeEnv {
            net: Arc::new(TlsNet::new(TokioNet, tls.clone())),
            tls: Some(tls),
            ..NodeEnv::production()
        }
    }
}
