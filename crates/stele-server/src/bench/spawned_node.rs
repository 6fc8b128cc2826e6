//! `stele bench --spawn`: a node of this same binary, started on a free port with a
//! temporary database (`--insecure --db <tempdir>/db --http-port <port>`, other options at
//! their defaults), awaited until `/health/live` answers 204, and stopped with SIGTERM. Its
//! log goes to a file beside the database; the warnings and errors in it are printed when it
//! stops, so that a node misbehaving under load is seen, not hidden.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tempfile::TempDir;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// How long a fresh node may take to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How often readiness is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long the node may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Log lines with these levels are shown when the node stops.
const LEVELS_SHOWN: [&str; 2] = [" WARN ", " ERROR "];
/// At most this many of them are shown.
const LOG_LINES_SHOWN_MAX: usize = 10;

/// A node this process started; dropping it kills the node.
pub(super) struct SpawnedNode {
    child: Child,
    port: u16,
    log_path: PathBuf,
    /// Removed when the node is dropped, after it has stopped.
    _dir: TempDir,
}

impl SpawnedNode {
    /// Starts a node with its database in a new directory under `parent` (the system's
    /// temporary directory when `None`) and waits until it is ready.
    pub async fn start(parent: Option<&Path>) -> anyhow::Result<SpawnedNode> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("stele-bench-");
        let dir = match parent {
            Some(parent) => builder.tempdir_in(parent),
            None => builder.tempdir(),
        }
        .context("creating the temporary database directory")?;
        let port = free_port()?;
        let exe = std::env::current_exe().context("finding the stele binary")?;
        let log_path = dir.path().join("node.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let child = Command::new(&exe)
            .arg("--insecure")
            .arg("--db")
            .arg(dir.path().join("db"))
            .arg("--http-port")
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("sharing the log file")?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let mut node = SpawnedNode {
            child,
            port,
            log_path,
            _dir: dir,
        };
        node.await_ready().await?;
        eprintln!(
            "stele bench: started a node (pid {}) at {}, database in {}",
            node.child.id().unwrap_or(0),
            node.url(),
            node._dir.path().join("db").display()
        );
        Ok(node)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn await_ready(&mut self) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .timeout(POLL_INTERVAL * 20)
            .build()
            .context("building the HTTP client")?;
        let health = format!("{}/health/live", self.url());
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().context("watching the node")? {
                bail!(
                    "the node exited before it was ready ({status}); its log:\n{}",
                    self.log_tail()
                );
            }
            match http.get(&health).send().await {
                Ok(response) if response.status().as_u16() == 204 => return Ok(()),
                Ok(response) => last = format!("{}", response.status()),
                Err(error) => last = error.to_string(),
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        bail!(
            "the node was not ready within {}s (last answer from {health}: {last}); its log:\n{}",
            START_TIMEOUT.as_secs(),
            self.log_tail()
        )
    }

    /// Sends SIGTERM and waits for the node to exit, killing it if it does not. Prints the
    /// warnings and errors of its log. `true` when it exited by itself with success.
    pub async fn stop(mut self) -> bool {
        let Some(pid) = self.child.id() else {
            eprintln!("stele bench: the node had already exited");
            return false;
        };
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            eprintln!("stele bench: node pid {pid} out of range; killing it");
            let _ = self.child.kill().await;
            return false;
        };
        // SAFETY: kill(2) takes plain integers and touches no memory of ours; `pid` is our
        // own child, not yet reaped (`id()` returned it), so the number cannot be reused.
        let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
        let clean = if sent != 0 {
            eprintln!(
                "stele bench: cannot send SIGTERM to the node: {}; killing it",
                std::io::Error::last_os_error()
            );
            let _ = self.child.kill().await;
            false
        } else {
            let asked = Instant::now();
            match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
                Ok(Ok(status)) if status.success() => {
                    eprintln!(
                        "stele bench: node stopped {:.3}s after SIGTERM",
                        asked.elapsed().as_secs_f64()
                    );
                    true
                }
                Ok(Ok(status)) => {
                    eprintln!("stele bench: node exited with {status} after SIGTERM");
                    false
                }
                Ok(Err(error)) => {
                    eprintln!("stele bench: cannot wait for the node: {error}");
                    false
                }
                Err(_) => {
                    eprintln!(
                        "stele bench: node still running {}s after SIGTERM; killing it",
                        STOP_TIMEOUT.as_secs()
                    );
                    let _ = self.child.kill().await;
                    false
                }
            }
        };
        self.print_log_problems(!clean);
        clean
    }

    /// Prints the warning and error lines of the node's log, and its tail when `tail`.
    fn print_log_problems(&self, tail: bool) {
        let log = match std::fs::read_to_string(&self.log_path) {
            Ok(log) => log,
            Err(error) => {
                eprintln!("stele bench: cannot read the node's log: {error}");
                return;
            }
        };
        let problems: Vec<&str> = log
            .lines()
            .filter(|line| LEVELS_SHOWN.iter().any(|level| line.contains(level)))
            .collect();
        if !problems.is_empty() {
            eprintln!(
                "stele bench: the node logged {} warnings or errors; the first ones:",
                problems.len()
            );
            for line in problems.iter().take(LOG_LINES_SHOWN_MAX) {
                eprintln!("  {line}");
            }
        }
        if tail {
            eprintln!(
                "stele bench: the end of the node's log:\n{}",
                self.log_tail()
            );
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// A port nobody listens on right now. Another process could take it before the node binds
/// it; the node then fails to start and says so.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr().context("finding a free port")?.port())
}
