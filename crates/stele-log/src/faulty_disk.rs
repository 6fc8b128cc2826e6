//! [`FaultyDisk`]: an in-memory [`Disk`] that remembers which bytes and which directory entries
//! a power loss would keep, and can inject faults: power loss, a torn last write, a bit flip,
//! a failing write or sync. It is public (not `cfg(test)`) so other crates' tests can use it.
//! It models storage, not the log: it knows nothing of chunks or records.
//!
//! The model: each file has a durable image. `sync_data` applies the file's unsynced writes to
//! its image; `sync_dir` makes the current set of names durable. A crash keeps the durable names
//! with their durable images, so a file created without a later `sync_dir` vanishes and a
//! removed one comes back.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::disk::{Disk, DiskFile};
use crate::mem_disk::MemDisk;

/// A fault-injecting in-memory disk. Clones share the same state.
#[derive(Debug, Clone, Default)]
pub struct FaultyDisk {
    mem: MemDisk,
    state: Arc<Mutex<FaultState>>,
}

#[derive(Debug, Default, Clone)]
struct FaultState {
    next_inode: u64,
    /// Current directory: name → inode.
    live: HashMap<String, u64>,
    /// Directory as of the last `sync_dir`.
    durable_dir: HashMap<String, u64>,
    /// Durable bytes of each inode.
    images: HashMap<u64, Vec<u8>>,
    /// Unsynced operations, in the order they were issued.
    pending: Vec<Pending>,
    /// Syncs (`sync_data`) still to succeed before one fails.
    fail_sync_after: Option<u64>,
    /// Writes still to succeed before one fails.
    fail_write_after: Option<u64>,
    /// Directory syncs still to succeed before one fails.
    fail_sync_dir_after: Option<u64>,
    /// Simulated fsync latency.
    sync_latency: Duration,
    sync_count: u64,
    sync_dir_count: u64,
    write_count: u64,
}

#[derive(Debug, Clone)]
struct Pending {
    inode: u64,
    op: PendingOp,
}

#[derive(Debug, Clone)]
enum PendingOp {
    Write { offset: u64, data: Vec<u8> },
    Allocate { len: u64 },
}

fn apply(image: &mut Vec<u8>, op: &PendingOp) {
    match op {
        PendingOp::Write { offset, data } => {
            let start = *offset as usize;
            let end = start + data.len();
            if image.len() < end {
                image.resize(end, 0);
            }
            image[start..end].copy_from_slice(data);
        }
        PendingOp::Allocate { len } => {
            if (image.len() as u64) < *len {
                image.resize(*len as usize, 0);
            }
        }
    }
}

/// Counts an armed fault down; true when it fires (and disarms it).
fn countdown(fault: &mut Option<u64>) -> bool {
    match fault {
        Some(0) => {
            *fault = None;
            true
        }
        Some(n) => {
            *n -= 1;
            false
        }
        None => false,
    }
}

impl FaultyDisk {
    /// An empty disk.
    pub fn new() -> FaultyDisk {
        FaultyDisk::default()
    }

    fn lock(&self) -> MutexGuard<'_, FaultState> {
        self.state.lock().expect("faulty disk lock")
    }

    /// A disk holding exactly these files, all durable.
    fn from_images(files: Vec<(String, Vec<u8>)>) -> FaultyDisk {
        let mut state = FaultState::default();
        for (name, data) in &files {
            let inode = state.next_inode;
            state.next_inode += 1;
            state.live.insert(name.clone(), inode);
            state.durable_dir.insert(name.clone(), inode);
            state.images.insert(inode, data.clone());
        }
        FaultyDisk {
            mem: MemDisk::from_files(files),
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// Power loss: a new disk holding only what was durable (synced bytes of files whose names
    /// were made durable by `sync_dir`). Handles on this disk keep working but are unrelated.
    pub fn crash(&self) -> FaultyDisk {
        let state = self.lock();
        let files = state
            .durable_dir
            .iter()
            .map(|(name, inode)| (name.clone(), state.images[inode].clone()))
            .collect();
        FaultyDisk::from_images(files)
    }

    /// A process crash, not a power loss: a new disk with everything written so far (the
    /// operating system's page cache survives the process) that still remembers which of it
    /// is not durable, so a later power loss loses it. Handles on this disk keep working but
    /// are unrelated: a dead process's writes never reach the new disk.
    pub fn detach(&self) -> FaultyDisk {
        let mut state = self.lock().clone();
        // A fault armed for the dead process does not carry over to the next one.
        state.fail_sync_after = None;
        state.fail_write_after = None;
        state.fail_sync_dir_after = None;
        let mut names: Vec<&String> = state.live.keys().collect();
        names.sort();
        let files: Vec<(String, Vec<u8>)> = names
            .into_iter()
            .map(|name| (name.clone(), self.mem.contents(name).unwrap_or_default()))
            .collect();
        FaultyDisk {
            mem: MemDisk::from_files(files),
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// Power loss in the middle of the last unsynced write: the unsynced writes before it
    /// reached the disk in order, and only the first `keep_bytes` of the last one did.
    pub fn crash_tearing_last_write(&self, keep_bytes: usize) -> FaultyDisk {
        let state = self.lock();
        let mut images = state.images.clone();
        let last_write = state
            .pending
            .iter()
            .rposition(|p| matches!(p.op, PendingOp::Write { .. }));
        if let Some(last) = last_write {
            for pending in &state.pending[..last] {
                apply(images.entry(pending.inode).or_default(), &pending.op);
            }
            let torn = &state.pending[last];
            if let PendingOp::Write { offset, data } = &torn.op {
                let kept = PendingOp::Write {
                    offset: *offset,
                    data: data[..keep_bytes.min(data.len())].to_vec(),
                };
                apply(images.entry(torn.inode).or_default(), &kept);
            }
        }
        let files = state
            .durable_dir
            .iter()
            .map(|(name, inode)| (name.clone(), images[inode].clone()))
            .collect();
        FaultyDisk::from_images(files)
    }

    /// Power loss where the disk reordered writes: of the unsynced writes, only the last one
    /// reached the disk (say a header rewrite issued after the data it describes).
    pub fn crash_keeping_only_last_write(&self) -> FaultyDisk {
        let state = self.lock();
        let mut images = state.images.clone();
        if let Some(last) = state
            .pending
            .iter()
            .rev()
            .find(|p| matches!(p.op, PendingOp::Write { .. }))
        {
            apply(images.entry(last.inode).or_default(), &last.op);
        }
        let files = state
            .durable_dir
            .iter()
            .map(|(name, inode)| (name.clone(), images[inode].clone()))
            .collect();
        FaultyDisk::from_images(files)
    }

    /// Flips one bit of a file, both in what is read now and in what a crash would keep
    /// (damage on the medium). Panics if the file does not exist.
    pub fn flip_bit(&self, name: &str, offset: u64, bit: u8) {
        let mask = 1u8 << (bit % 8);
        let file = self
            .mem
            .file(name)
            .unwrap_or_else(|| panic!("flip_bit: no file {name}"));
        file.with_data(|data| {
            if let Some(b) = data.get_mut(offset as usize) {
                *b ^= mask;
            }
        });
        let mut state = self.lock();
        if let Some(inode) = state.live.get(name).copied() {
            if let Some(b) = state
                .images
                .get_mut(&inode)
                .and_then(|image| image.get_mut(offset as usize))
            {
                *b ^= mask;
            }
        }
    }

    /// Cancels every armed fault (failing writes and syncs) that has not fired yet.
    pub fn disarm(&self) {
        let mut state = self.lock();
        state.fail_sync_after = None;
        state.fail_write_after = None;
        state.fail_sync_dir_after = None;
    }

    /// Makes the next `sync_data` (on any file) fail.
    pub fn fail_next_sync(&self) {
        self.fail_sync_after(0);
    }

    /// Lets `n` more `sync_data` calls succeed, then makes the next one fail (once).
    pub fn fail_sync_after(&self, n: u64) {
        self.lock().fail_sync_after = Some(n);
    }

    /// Lets `n` more `sync_dir` calls succeed, then makes the next one fail (once) without
    /// making anything durable.
    pub fn fail_sync_dir_after(&self, n: u64) {
        self.lock().fail_sync_dir_after = Some(n);
    }

    /// Makes the next `write_at` (on any file) fail without writing anything.
    pub fn fail_next_write(&self) {
        self.fail_write_after(0);
    }

    /// Lets `n` more `write_at` calls succeed, then makes the next one fail (once) without
    /// writing anything.
    pub fn fail_write_after(&self, n: u64) {
        self.lock().fail_write_after = Some(n);
    }

    /// Makes every `sync_data` take at least `latency` (as a real fsync does), so that tests of
    /// batching do not depend on thread scheduling luck.
    pub fn set_sync_latency(&self, latency: Duration) {
        self.lock().sync_latency = latency;
    }

    /// How many times `sync_data` was called, failed calls included.
    pub fn sync_count(&self) -> u64 {
        self.lock().sync_count
    }

    /// How many times `sync_dir` was called.
    pub fn sync_dir_count(&self) -> u64 {
        self.lock().sync_dir_count
    }

    /// How many times `write_at` was called, failed calls included.
    pub fn write_count(&self) -> u64 {
        self.lock().write_count
    }

    /// The bytes a crash now would keep at `offset..offset + len` of `name` (zeros past the
    /// durable end of the file), or `None` if a crash would lose the file itself.
    pub fn durable_bytes(&self, name: &str, offset: u64, len: usize) -> Option<Vec<u8>> {
        let state = self.lock();
        let inode = state.durable_dir.get(name)?;
        let image = &state.images[inode];
        let mut out = vec![0u8; len];
        let start = offset as usize;
        if start < image.len() {
            let n = len.min(image.len() - start);
            out[..n].copy_from_slice(&image[start..start + n]);
        }
        Some(out)
    }

    /// The current bytes of a file (what a read sees now), if it exists.
    pub fn contents(&self, name: &str) -> Option<Vec<u8>> {
        self.mem.contents(name)
    }
}

impl Disk for FaultyDisk {
    fn list(&self) -> io::Result<Vec<String>> {
        self.mem.list()
    }

    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn DiskFile>> {
        let mut state = self.lock();
        let inode = match state.live.get(name) {
            Some(inode) => *inode,
            None if create => {
                let inode = state.next_inode;
                state.next_inode += 1;
                state.live.insert(name.to_string(), inode);
                state.images.insert(inode, Vec::new());
                inode
            }
            None => return Err(io::Error::new(io::ErrorKind::NotFound, name.to_string())),
        };
        let inner = self.mem.open(name, create)?;
        Ok(Arc::new(FaultyFile {
            inode,
            inner,
            state: self.state.clone(),
        }))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut state = self.lock();
        self.mem.remove(name)?;
        state.live.remove(name);
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut state = self.lock();
        state.sync_dir_count += 1;
        if countdown(&mut state.fail_sync_dir_after) {
            return Err(io::Error::other("injected directory sync failure"));
        }
        state.durable_dir = state.live.clone();
        Ok(())
    }
}

struct FaultyFile {
    inode: u64,
    inner: Arc<dyn DiskFile>,
    state: Arc<Mutex<FaultState>>,
}

impl FaultyFile {
    fn lock(&self) -> MutexGuard<'_, FaultState> {
        self.state.lock().expect("faulty disk lock")
    }
}

impl DiskFile for FaultyFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut state = self.lock();
        state.write_count += 1;
        if countdown(&mut state.fail_write_after) {
            return Err(io::Error::other("injected write failure"));
        }
        self.inner.write_at(buf, offset)?;
        state.pending.push(Pending {
            inode: self.inode,
            op: PendingOp::Write {
                offset,
                data: buf.to_vec(),
            },
        });
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let latency = self.lock().sync_latency;
        if !latency.is_zero() {
            std::thread::sleep(latency);
        }
        let mut state = self.lock();
        state.sync_count += 1;
        if countdown(&mut state.fail_sync_after) {
            return Err(io::Error::other("injected sync failure"));
        }
        let pending = std::mem::take(&mut state.pending);
        let (mine, others): (Vec<Pending>, Vec<Pending>) =
            pending.into_iter().partition(|p| p.inode == self.inode);
        state.pending = others;
        let image = state.images.entry(self.inode).or_default();
        for p in &mine {
            apply(image, &p.op);
        }
        Ok(())
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        let mut state = self.lock();
        self.inner.allocate(len)?;
        state.pending.push(Pending {
            inode: self.inode,
            op: PendingOp::Allocate { len },
        });
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keeps_unsynced_writes_until_a_power_loss_and_ignores_old_handles() {
        let disk = FaultyDisk::new();
        let file = disk.open("f", true).unwrap();
        file.write_at(b"durable", 0).unwrap();
        file.sync_data().unwrap();
        disk.sync_dir().unwrap();
        file.write_at(b"+cached", 7).unwrap();
        let after = disk.detach();
        assert_eq!(after.contents("f").unwrap(), b"durable+cached");
        // The dead process's handle no longer reaches the new disk.
        file.write_at(b"XXXXXXX", 0).unwrap();
        file.sync_data().unwrap();
        assert_eq!(after.contents("f").unwrap(), b"durable+cached");
        // What was never synced is still lost by a power loss after the restart.
        assert_eq!(after.crash().contents("f").unwrap(), b"durable");
    }
}
