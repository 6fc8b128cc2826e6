//! The [`Disk`] and [`DiskFile`] traits: the only way the log touches storage, so that tests can
//! swap the file system for memory or for a fault-injecting double. Implementations live in
//! `fs_disk`, `mem_disk` and `faulty_disk`; this module also holds the small read helper every
//! reader shares. It knows nothing of chunks or records.

use std::io;
use std::sync::Arc;

/// A flat directory of files: the log directory.
pub trait Disk: Send + Sync + 'static {
    /// The names of the files in the directory.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Opens a file for reading and writing; with `create`, creates it (empty) if missing.
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn DiskFile>>;
    /// Removes a file. Durable only after [`Disk::sync_dir`].
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Makes creations and removals durable (fsync of the directory).
    fn sync_dir(&self) -> io::Result<()>;
}

/// One open file. All offsets are absolute; there is no cursor, so reads and writes may run
/// from several threads at once.
// `len` is fallible and means "file size", not "number of items"; an `is_empty` would add nothing.
#[allow(clippy::len_without_is_empty)]
pub trait DiskFile: Send + Sync {
    /// Reads into `buf` from `offset`; returns how many bytes were read (0 at the end of file).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes the whole buffer at `offset`, growing the file if needed. Not durable until
    /// [`DiskFile::sync_data`].
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes every write so far durable (fdatasync).
    fn sync_data(&self) -> io::Result<()>;
    /// Ensures the file is at least `len` bytes long with its blocks allocated, so that a later
    /// fdatasync need not update the file's size.
    fn allocate(&self, len: u64) -> io::Result<()>;
    /// The file's length in bytes.
    fn len(&self) -> io::Result<u64>;
}

/// Fills `buf` from `offset`, reading bytes past the end of the file as zeros (an unallocated
/// tail is indistinguishable from zeroed space to the record format).
pub(crate) fn read_full(file: &dyn DiskFile, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => {
                buf[done..].fill(0);
                return Ok(());
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
