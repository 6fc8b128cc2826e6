//! The node's identity: a random raft node id and instance id chosen the first time a data
//! directory is used, kept in `node.json`. A wiped data directory gets a new identity, so a
//! node never rejoins under an old id with an empty log (docs/design.md decision 8).

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub node_id: u64,
    pub instance_id: Uuid,
}

impl Identity {
    pub fn fresh() -> Identity {
        let instance_id = crate::determinism::new_uuid();
        let bytes = instance_id.as_bytes();
        // Non-zero, from the instance id's random bits.
        let node_id = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) | 1;
        Identity {
            node_id,
            instance_id,
        }
    }

    pub fn load_or_create(path: &Path) -> io::Result<Identity> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} does not parse: {e}", path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let identity = Identity::fresh();
                let bytes = serde_json::to_vec_pretty(&identity).map_err(io::Error::other)?;
                crate::vote_store::write_atomically(path, &bytes)?;
                Ok(identity)
            }
            Err(e) => Err(e),
        }
    }
}
