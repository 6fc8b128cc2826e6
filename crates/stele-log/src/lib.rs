//! stele-log: the record log of Stele, stored in chunk files.
//!
//! It owns the on-disk format (see `docs/format/log.md`): chunk files with a fixed header and
//! checksummed records, deterministic positions, durable appends with group commit, truncation,
//! and crash recovery. Storage is reached only through the [`Disk`] trait, so tests can inject
//! faults with [`FaultyDisk`].
//!
//! It is synchronous and knows nothing of tokio, the consensus engine or what the payloads mean.
//!
//! Module map: `record` (record codec), `chunk` (chunk names and header), `layout` (positions
//! and placement), `chunk_reader` (verified reads of one chunk), `recovery` (`Log::open`),
//! `log` (the `Log` and reads), `writer` (append, sync, truncate), `iter` (forward iteration),
//! `group_commit` (the writer thread), and the disks: `disk` (traits), `fs_disk`, `mem_disk`,
//! `faulty_disk`.

#![cfg_attr(
    test,
    allow(
        clippy::disallowed_methods,
        reason = "tests may use the clock, random ids and threads"
    )
)]

mod chunk;
mod chunk_reader;
mod disk;
mod error;
mod faulty_disk;
#[allow(
    unsafe_code,
    reason = "posix_fallocate through libc, with its SAFETY comment"
)]
mod fs_disk;
mod group_commit;
mod iter;
mod layout;
mod log;
mod mem_disk;
mod record;
mod recovery;
mod writer;

pub use chunk::{chunk_file_name, CHUNK_FORMAT_VERSION, CHUNK_HEADER_BYTES, CHUNK_MAGIC};
pub use disk::{Disk, DiskFile};
pub use error::{Corruption, IoOp, LogError};
pub use faulty_disk::FaultyDisk;
pub use fs_disk::FsDisk;
pub use group_commit::{
    catch_up_checkpoint, checkpoint_lags, perform_batch, AppendDone, CommitOp, GroupCommitter,
    SyncDone, TruncateDone, CHECKPOINT_IDLE,
};
pub use iter::LogIter;
pub use log::{Log, LogConfig, PoisonCause, CHUNK_SIZE_BYTES_MAX, CHUNK_SIZE_BYTES_MIN};
pub use mem_disk::MemDisk;
pub use record::RECORD_HEADER_BYTES;
pub use recovery::RecoveryReport;

#[cfg(test)]
mod tests {
    #[test]
    fn shared_types_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<crate::Log>();
        assert_send_sync::<crate::GroupCommitter>();
        assert_send_sync::<crate::LogIter>();
        assert_send_sync::<crate::FaultyDisk>();
        assert_send_sync::<crate::LogError>();
    }
}
