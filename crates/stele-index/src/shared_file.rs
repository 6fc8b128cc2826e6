//! [`SharedMemFile`]: an in-memory redb file that outlives the [`Index`](crate::Index) that
//! opened it, so that the deterministic simulation can restart a node on the index it had —
//! with its last durable flush as the checkpoint, older than the log — instead of always
//! rebuilding the index from the log. What was written but not synced is lost in a power
//! loss ([`SharedMemFile::after_crash`]), as with a real file.

use std::io;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Contents {
    current: Vec<u8>,
    /// What the last `sync_data` made durable.
    synced: Vec<u8>,
}

/// A redb storage backend in memory, shared by clones.
#[derive(Debug, Clone, Default)]
pub struct SharedMemFile(Arc<Mutex<Contents>>);

impl SharedMemFile {
    pub fn new() -> SharedMemFile {
        SharedMemFile::default()
    }

    /// Empties the file, durably: the next open creates a fresh index.
    pub fn clear(&self) {
        let mut c = self.contents();
        c.current.clear();
        c.synced.clear();
    }

    /// Whether nothing was ever written (a fresh index).
    pub fn is_empty(&self) -> bool {
        self.contents().current.is_empty()
    }

    /// The file as the next start finds it after a crash, apart from this one (which the
    /// crashed node may still hold and write to; nobody reads it again): after a process
    /// crash, everything written; after a power loss, what was last synced.
    pub fn after_crash(&self, power_loss: bool) -> SharedMemFile {
        let c = self.contents();
        let current = match power_loss {
            true => c.synced.clone(),
            false => c.current.clone(),
        };
        SharedMemFile(Arc::new(Mutex::new(Contents {
            current,
            synced: c.synced.clone(),
        })))
    }

    fn contents(&self) -> std::sync::MutexGuard<'_, Contents> {
        self.0.lock().expect("shared index file lock poisoned")
    }
}

fn out_of_range() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "past the end of the index file",
    )
}

impl redb::StorageBackend for SharedMemFile {
    fn len(&self) -> Result<u64, io::Error> {
        Ok(self.contents().current.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        let c = self.contents();
        let start = usize::try_from(offset).map_err(|_| out_of_range())?;
        let end = start.checked_add(out.len()).ok_or_else(out_of_range)?;
        out.copy_from_slice(c.current.get(start..end).ok_or_else(out_of_range)?);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let len = usize::try_from(len).map_err(|_| out_of_range())?;
        self.contents().current.resize(len, 0);
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        let mut c = self.contents();
        c.synced = c.current.clone();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let mut c = self.contents();
        let start = usize::try_from(offset).map_err(|_| out_of_range())?;
        let end = start.checked_add(data.len()).ok_or_else(out_of_range)?;
        c.current
            .get_mut(start..end)
            .ok_or_else(out_of_range)?
            .copy_from_slice(data);
        Ok(())
    }
}
