//! Where the raft vote (and this node's identity) is kept: a small file in the data
//! directory, replaced atomically (write a temporary file, fsync, rename, fsync the
//! directory), or memory for `--mem-db`.

use std::io;
use std::path::PathBuf;

use crate::types::Vote;

pub enum VoteStore {
    File(PathBuf),
    Memory(Option<Vote>),
    /// Held outside the node (the simulation's), as the bytes the file would hold.
    Shared(crate::env::VoteSlot),
}

impl VoteStore {
    pub fn read(&self) -> io::Result<Option<Vote>> {
        match self {
            VoteStore::Memory(vote) => Ok(*vote),
            VoteStore::Shared(slot) => match slot.lock().expect("vote slot lock").as_deref() {
                Some(bytes) => serde_json::from_slice(bytes).map(Some).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("vote does not parse: {e}"),
                    )
                }),
                None => Ok(None),
            },
            VoteStore::File(path) => match std::fs::read(path) {
                Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("vote file {} does not parse: {e}", path.display()),
                    )
                }),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    pub fn save(&mut self, vote: &Vote) -> io::Result<()> {
        match self {
            VoteStore::Memory(slot) => {
                *slot = Some(*vote);
                Ok(())
            }
            VoteStore::Shared(slot) => {
                let bytes = serde_json::to_vec(vote).map_err(io::Error::other)?;
                *slot.lock().expect("vote slot lock") = Some(bytes);
                Ok(())
            }
            VoteStore::File(path) => {
                let bytes = serde_json::to_vec(vote).map_err(io::Error::other)?;
                write_atomically(path, &bytes)
            }
        }
    }
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new content.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
