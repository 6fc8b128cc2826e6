//! What the node does when its log stops after an I/O error (issue 11, item 8).
//!
//! A failed write or fsync poisons the log: the node takes no more writes (each is answered
//! with the cause) and goes on serving reads of what was durable. It never retries an fsync
//! itself (docs/design.md decision 4); a restart does, after recovery has checked the log. So:
//!
//! - **Out of space** (the common case): the node keeps serving reads while it waits for
//!   space; once the database directory has room for a new chunk again it exits with an
//!   error saying so, and its supervisor (systemd's `Restart=on-failure`, Kubernetes) starts
//!   it again. Freeing space therefore brings writes back without an operator's restart.
//! - **Any other I/O error**: it exits at once with the cause; the disk may be failing and a
//!   restart's recovery is the check that tells.
//! - **The consensus engine stopped** (openraft's fatal lane: a storage error it cannot
//!   recover from, a panic inside it) with the log healthy: the node already refuses writes
//!   and reports not ready; it exits at once with the cause, and a restart recovers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use stele_cluster::Node;

/// How often the node checks whether its log failed.
const LOG_CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// How often a node whose disk is full checks for free space.
const FREE_SPACE_CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// Room beyond one chunk that must be free before a full-disk node restarts: the index and
/// the chunk header need some too.
const FREE_SPACE_MARGIN_BYTES: u64 = 16 * 1024 * 1024;

/// Waits until the node should exit because its log failed; returns the message to exit
/// with. Never returns for a healthy node.
pub async fn wait_for_failure(
    node: Node,
    db_dir: Option<PathBuf>,
    chunk_size_bytes: u64,
) -> String {
    let cause = loop {
        // The log first: a failed log also stops the engine, and its own lane (waiting for
        // space) applies.
        if let Some(cause) = node.log_failure() {
            break cause;
        }
        if let Some(cause) = node.fatal_failure() {
            return format!(
                "the consensus engine stopped ({cause}); exiting so that a restart recovers"
            );
        }
        tokio::time::sleep(LOG_CHECK_INTERVAL).await;
    };
    let Some(dir) = db_dir.filter(|_| cause.out_of_space) else {
        return format!(
            "the log stopped after an I/O error ({}); exiting so that a restart checks the log",
            cause.message
        );
    };
    let needed = chunk_size_bytes.saturating_add(FREE_SPACE_MARGIN_BYTES);
    tracing::error!(
        cause = %cause.message,
        db = %dir.display(),
        needed_bytes = needed,
        "the disk is full: writes are refused, reads go on; free space and the node restarts \
         itself (it exits once {needed} bytes are free, for its supervisor to start it again)"
    );
    loop {
        tokio::time::sleep(FREE_SPACE_CHECK_INTERVAL).await;
        match free_bytes(&dir) {
            Ok(free) if free >= needed => {
                return format!(
                    "the disk was full ({}); {free} bytes are free again: exiting so that the \
                     supervisor restarts the node and writes resume",
                    cause.message
                )
            }
            Ok(_) => {}
            Err(e) => {
                return format!(
                    "the disk was full ({}) and its free space cannot be read ({e}): exiting",
                    cause.message
                )
            }
        }
    }
}

/// Bytes available to this process on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statvfs is a plain C struct, for which all-zero bytes are a valid value.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid C string and `stat` a properly sized, writable struct that
    // statvfs fills in; neither outlives the call.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut stat) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // The field widths differ between platforms (u64 on Linux, u32 on macOS).
    #[allow(clippy::useless_conversion)]
    Ok(u64::from(stat.f_bavail).saturating_mul(u64::from(stat.f_frsize)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node whose consensus engine stopped (with a healthy log) refused writes forever and
    /// never exited, so its supervisor never restarted it: it must exit with the cause.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_stopped_engine_makes_the_node_exit_with_the_cause() {
        let node = Node::start(stele_cluster::fuzzing::single_node_config())
            .await
            .expect("an in-memory node starts");
        assert!(node.wait_ready(Duration::from_secs(10)).await);
        stele_cluster::fuzzing::stop_engine(&node).await;
        let message = tokio::time::timeout(
            Duration::from_secs(20),
            wait_for_failure(node, None, 64 * 1024),
        )
        .await
        .expect("the watch notices in time");
        assert!(
            message.contains("the consensus engine stopped"),
            "{message}"
        );
    }
}
