//! `stele dev-cluster` end to end: it starts three voters, prints a connection string the
//! official client can write through, and on SIGTERM stops every node it started, leaving
//! no `stele` process behind.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kurrentdb::{AppendToStreamOptions, Client, ClientSettings, EventData};

const STELE: &str = env!("CARGO_BIN_EXE_stele");

/// How long the cluster may take to print its connection string (its own limits are 60 s
/// for readiness and 20 s for the nodes to agree on a leader, plus start-up).
const CONNECTION_STRING_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `stele dev-cluster` may take to exit after SIGTERM: its nodes get 5 s before
/// SIGKILL, plus room.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The first of `count` consecutive ports, below the kernel's ephemeral range (so that no
/// other test's `bind(…:0)` or outgoing connection can take one of them between this check
/// and the cluster's start), that are all free now on every loopback address the cluster
/// may use and do not overlap `avoid` (a range already chosen). `stele dev-cluster` uses the
/// base port on distinct loopback addresses where it can, and base + k on 127.0.0.1 where it
/// cannot, so the whole range is checked on each address.
fn free_port_range(count: u16, avoid: Option<(u16, u16)>) -> u16 {
    let mut state = u64::from(std::process::id())
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
    for _ in 0..1000 {
        // xorshift: a fresh candidate each round, different in every test process.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let base = 20_000 + (state % 12_000) as u16;
        let end = base + count;
        if avoid.is_some_and(|(start, len)| base < start + len && start < end) {
            continue;
        }
        let all_free = (1..=count as u8).all(|last| {
            let ip = Ipv4Addr::new(127, 0, 0, last);
            // An address this host cannot bind at all (127.0.0.2 on macOS) is one the
            // cluster will not use either.
            (base..end).all(|port| match TcpListener::bind((ip, port)) {
                Ok(_) => true,
                Err(e) => e.kind() == std::io::ErrorKind::AddrNotAvailable,
            })
        });
        if all_free {
            return base;
        }
    }
    panic!("no {count} consecutive free ports found");
}

/// The `stele dev-cluster` process; dropping it (when the test fails) stops it the way a
/// user would, so that its nodes stop too.
struct DevCluster {
    child: Child,
}

impl DevCluster {
    #[allow(unsafe_code, reason = "kill(2) through libc")]
    fn sigterm(&self) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) with plain integers on our own child, which has not been reaped.
        let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(sent, 0, "SIGTERM: {}", std::io::Error::last_os_error());
    }

    fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for dev-cluster") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.sigterm();
            if self.wait_timeout(EXIT_TIMEOUT).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// Processes (other than this one) whose command line mentions `dir`.
fn processes_using(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let own = std::process::id().to_string();
    entries
        .filter_map(Result::ok)
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.chars().all(|c| c.is_ascii_digit()) && name != own
        })
        .filter_map(|entry| {
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline
                .contains(&needle)
                .then(|| format!("{}: {cmdline}", entry.file_name().to_string_lossy()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dev_cluster_takes_a_write_and_stops_all_its_nodes_on_sigterm() {
    let dir = tempfile::Builder::new()
        .prefix("stele-dev-cluster-test-")
        .tempdir()
        .expect("creating the cluster's directory");
    let http_base = free_port_range(3, None);
    let int_base = free_port_range(3, Some((http_base, 3)));

    let child = Command::new(STELE)
        .arg("dev-cluster")
        .args(["--nodes", "3", "--read-only-replicas", "0"])
        .arg("--dir")
        .arg(dir.path())
        .args(["--base-http-port", &http_base.to_string()])
        .args(["--base-int-port", &int_base.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting stele dev-cluster");
    let mut cluster = DevCluster { child };

    // Every line is echoed (the test output shows it when the test fails) and passed on;
    // the reader keeps draining after the connection string so that the cluster never
    // blocks on a full pipe.
    let stdout = cluster.child.stdout.take().expect("stdout is piped");
    let (lines_tx, lines_rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            println!("{line}");
            let _ = lines_tx.send(line);
        }
    });

    let deadline = Instant::now() + CONNECTION_STRING_TIMEOUT;
    let connection_string = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(start) = line.find("esdb://") {
                    let found = line[start..]
                        .split_whitespace()
                        .next()
                        .expect("a connection string")
                        .to_owned();
                    break found;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "no connection string within {}s",
                CONNECTION_STRING_TIMEOUT.as_secs()
            ),
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                "stele dev-cluster closed its output before printing a connection string ({:?})",
                cluster.child.try_wait()
            ),
        }
    };
    assert!(
        connection_string.ends_with("?tls=false"),
        "{connection_string}"
    );
    assert_eq!(
        connection_string.matches(',').count(),
        2,
        "three voters: {connection_string}"
    );

    let settings: ClientSettings = connection_string
        .parse()
        .expect("parsing the printed connection string");
    let client = Client::new(settings).expect("creating the client");
    let event = EventData::json("Happened", &serde_json::json!({"n": 1})).expect("an event");
    tokio::time::timeout(
        Duration::from_secs(30),
        client.append_to_stream("dev-cluster", &AppendToStreamOptions::default(), event),
    )
    .await
    .expect("the append finished within 30 s")
    .expect("appending through the printed connection string");

    cluster.sigterm();
    let status = cluster
        .wait_timeout(EXIT_TIMEOUT)
        .expect("stele dev-cluster exited after SIGTERM");
    assert!(status.success(), "stele dev-cluster exited with {status}");
    let strays = processes_using(dir.path());
    assert!(strays.is_empty(), "processes left running: {strays:#?}");
}
