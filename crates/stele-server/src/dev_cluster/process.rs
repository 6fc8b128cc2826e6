//! The nodes as child processes: which one exited first, stopping them all (SIGTERM, then
//! SIGKILL after [`STOP_GRACE`]), and tying them to this command's life on Linux.

use std::process::ExitStatus;

use futures::future::{join_all, select_all};
use futures::FutureExt;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use super::console::Console;
use super::STOP_GRACE;

/// A started node.
pub(super) struct Running {
    pub(super) name: String,
    pub(super) child: Child,
}

/// The first node to exit, and how. Pending forever when there are none.
pub(super) async fn first_exit(running: &mut [Running]) -> (String, String) {
    if running.is_empty() {
        return std::future::pending().await;
    }
    let waits = running.iter_mut().map(|node| {
        let name = node.name.clone();
        node.child
            .wait()
            .map(move |status| (name, describe_exit(status)))
            .boxed()
    });
    let ((name, status), _, _) = select_all(waits).await;
    (name, status)
}

fn describe_exit(status: std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(status) => status.to_string(),
        Err(error) => format!("cannot wait for it: {error}"),
    }
}

/// Sends SIGTERM to every node still running, waits [`STOP_GRACE`] for them, kills those
/// left, and reports how each ended.
pub(super) async fn stop_all(running: &mut [Running], console: &Console) {
    for node in running.iter_mut() {
        if matches!(node.child.try_wait(), Ok(None)) {
            if let Some(pid) = node.child.id() {
                terminate(pid);
            }
        }
    }
    let deadline = Instant::now() + STOP_GRACE;
    let outcomes = join_all(running.iter_mut().map(|node| async move {
        let status = match tokio::time::timeout_at(deadline, node.child.wait()).await {
            Ok(status) => describe_exit(status),
            Err(_) => {
                let _ = node.child.start_kill();
                format!(
                    "killed: still running {}s after SIGTERM ({})",
                    STOP_GRACE.as_secs(),
                    describe_exit(node.child.wait().await)
                )
            }
        };
        (node.name.clone(), status)
    }))
    .await;
    for (name, status) in outcomes {
        console
            .say(format!("stele dev-cluster: {name} stopped: {status}"))
            .await;
    }
}

/// SIGTERM to one of our children.
fn terminate(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; `pid` is our own
    // child, not yet reaped (`try_wait` said it runs), so the number cannot be reused.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
}

/// On Linux, a node gets SIGTERM when this command dies, even by SIGKILL, so that no node
/// outlives the cluster it belongs to. The children are spawned from the thread that runs
/// the whole command (`block_on`), which is what the kernel ties the signal to.
#[cfg(target_os = "linux")]
pub(super) fn die_with_parent(command: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec and only calls prctl(2),
    // which is async-signal-safe and allocates nothing.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
pub(super) fn die_with_parent(_command: &mut Command) {}
