//! [`MemDisk`]: files held in memory, for `--mem-db` and tests. Syncs are no-ops; nothing
//! survives the process. Clones share the same files.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, RwLock};

use crate::disk::{Disk, DiskFile};

/// An in-memory directory. Cloning gives another handle on the same files.
#[derive(Debug, Clone, Default)]
pub struct MemDisk {
    files: Arc<Mutex<BTreeMap<String, Arc<MemFile>>>>,
}

impl MemDisk {
    pub fn new() -> MemDisk {
        MemDisk::default()
    }

    /// A directory holding exactly these files (used by `FaultyDisk` to build what survived).
    pub fn from_files(files: impl IntoIterator<Item = (String, Vec<u8>)>) -> MemDisk {
        let map = files
            .into_iter()
            .map(|(name, data)| (name, Arc::new(MemFile::new(data))))
            .collect();
        MemDisk {
            files: Arc::new(Mutex::new(map)),
        }
    }

    /// A copy of a file's bytes, if it exists.
    pub fn contents(&self, name: &str) -> Option<Vec<u8>> {
        let files = self.files.lock().expect("mem disk lock");
        files
            .get(name)
            .map(|f| f.data.read().expect("mem file lock").clone())
    }

    pub(crate) fn file(&self, name: &str) -> Option<Arc<MemFile>> {
        self.files.lock().expect("mem disk lock").get(name).cloned()
    }
}

impl Disk for MemDisk {
    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self
            .files
            .lock()
            .expect("mem disk lock")
            .keys()
            .cloned()
            .collect())
    }

    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn DiskFile>> {
        let mut files = self.files.lock().expect("mem disk lock");
        if let Some(file) = files.get(name) {
            return Ok(file.clone());
        }
        if !create {
            return Err(io::Error::new(io::ErrorKind::NotFound, name.to_string()));
        }
        let file = Arc::new(MemFile::new(Vec::new()));
        files.insert(name.to_string(), file.clone());
        Ok(file)
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        match self.files.lock().expect("mem disk lock").remove(name) {
            Some(_) => Ok(()),
            None => Err(io::Error::new(io::ErrorKind::NotFound, name.to_string())),
        }
    }

    fn sync_dir(&self) -> io::Result<()> {
        Ok(())
    }
}

/// One in-memory file.
#[derive(Debug)]
pub(crate) struct MemFile {
    data: RwLock<Vec<u8>>,
}

impl MemFile {
    fn new(data: Vec<u8>) -> MemFile {
        MemFile {
            data: RwLock::new(data),
        }
    }

    /// Mutates the bytes in place (bit flips in `FaultyDisk`).
    pub(crate) fn with_data<R>(&self, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        f(&mut self.data.write().expect("mem file lock"))
    }
}

impl DiskFile for MemFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let data = self.data.read().expect("mem file lock");
        let Ok(start) = usize::try_from(offset) else {
            return Ok(0);
        };
        if start >= data.len() {
            return Ok(0);
        }
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
        let mut data = self.data.write().expect("mem file lock");
        let end = start + buf.len();
        if data.len() < end {
            data.resize(end, 0);
        }
        data[start..end].copy_from_slice(buf);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "length too large"))?;
        let mut data = self.data.write().expect("mem file lock");
        if data.len() < len {
            data.resize(len, 0);
        }
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.data.read().expect("mem file lock").len() as u64)
    }
}
