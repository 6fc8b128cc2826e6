//! [`MemDisk`]: files held in memory, for `--mem-db` and tests. Syncs are no-ops; nothing
//! survives the process. Clones share the same files.
//!
//! Files are sparse: `allocate` (a chunk's preallocation) only sets the length, and the zeros
//! past what was written take no memory. An empty `--mem-db` node held a zeroed 256 MiB chunk
//! and took most of a second to write it (issue 11, item 10).

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
        files.get(name).map(|f| f.with_data(|data| data.clone()))
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

/// One in-memory file: the bytes written so far and the file's length, which preallocation
/// may set past them (the rest reads as zeros).
#[derive(Debug)]
pub(crate) struct MemFile {
    inner: RwLock<Sparse>,
}

#[derive(Debug)]
struct Sparse {
    /// Never longer than `len`.
    data: Vec<u8>,
    len: usize,
}

impl MemFile {
    fn new(data: Vec<u8>) -> MemFile {
        let len = data.len();
        MemFile {
            inner: RwLock::new(Sparse { data, len }),
        }
    }

    /// The whole file's bytes, zeros included, mutated in place (bit flips in `FaultyDisk`).
    pub(crate) fn with_data<R>(&self, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        let mut inner = self.inner.write().expect("mem file lock");
        let len = inner.len;
        inner.data.resize(len, 0);
        let result = f(&mut inner.data);
        inner.len = inner.data.len();
        result
    }
}

impl DiskFile for MemFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let inner = self.inner.read().expect("mem file lock");
        let Ok(start) = usize::try_from(offset) else {
            return Ok(0);
        };
        if start >= inner.len {
            return Ok(0);
        }
        let n = buf.len().min(inner.len - start);
        let written = inner.data.len().saturating_sub(start).min(n);
        if written > 0 {
            buf[..written].copy_from_slice(&inner.data[start..start + written]);
        }
        buf[written..n].fill(0);
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
        let mut inner = self.inner.write().expect("mem file lock");
        let end = start + buf.len();
        if inner.data.len() < end {
            inner.data.resize(end, 0);
        }
        inner.data[start..end].copy_from_slice(buf);
        inner.len = inner.len.max(end);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "length too large"))?;
        let mut inner = self.inner.write().expect("mem file lock");
        inner.len = inner.len.max(len);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.inner.read().expect("mem file lock").len as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Preallocating a chunk costs no memory; the preallocated part reads as zeros.
    #[test]
    fn allocation_is_sparse() {
        let disk = MemDisk::new();
        let file = disk.open("chunk", true).unwrap();
        file.allocate(256 * 1024 * 1024).unwrap();
        assert_eq!(file.len().unwrap(), 256 * 1024 * 1024);
        file.write_at(b"abc", 10).unwrap();
        let mut buf = [9u8; 20];
        assert_eq!(file.read_at(&mut buf, 5).unwrap(), 20);
        assert_eq!(&buf[..8], &[0, 0, 0, 0, 0, b'a', b'b', b'c']);
        assert!(buf[8..].iter().all(|&b| b == 0));
        let mut tail = [9u8; 4];
        assert_eq!(file.read_at(&mut tail, 256 * 1024 * 1024 - 2).unwrap(), 2);
        assert_eq!(&tail[..2], &[0, 0]);
        let inner = disk.file("chunk").unwrap();
        assert_eq!(
            inner.inner.read().unwrap().data.len(),
            13,
            "only what was written is held"
        );
    }
}
