//! `stele admin` against real nodes (issue 15, item 4): `status` shows the node's `/gossip` as
//! a table, `priority` and `resign` act on it over HTTP, `scavenge` says it is not built, and
//! on a secure node the failures read as what to do (the CA for TLS, credentials for 401)
//! until `shutdown` with the admin's credentials stops the node. Each command is the built
//! binary run as an operator would run it.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use stele_testkit::{NodeOptions, TestCa, TestNode};

/// `stele admin <args>`: exit code, stdout, stderr.
fn admin(args: &[&str]) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(STELE)
        .arg("admin")
        .args(args)
        .output()
        .expect("running stele admin");
    (
        status.code().expect("stele admin exited, not killed"),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// The cells of `status`'s row for the node at `ip:port`, under their headings.
fn status_row(table: &str, member: &str) -> Vec<(String, String)> {
    let mut lines = table.lines();
    let headings: Vec<String> = lines
        .next()
        .expect("a heading line")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let row = lines
        .find(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|first| first.trim_end_matches('*') == member)
        })
        .unwrap_or_else(|| panic!("{member} is in the table:\n{table}"));
    headings
        .into_iter()
        .zip(row.split_whitespace().map(str::to_owned))
        .collect()
}

fn cell<'a>(row: &'a [(String, String)], heading: &str) -> &'a str {
    row.iter()
        .find(|(h, _)| h == heading)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("a {heading} column in {row:?}"))
}

/// Waits until `node`'s process has exited.
async fn wait_stopped(node: &mut TestNode) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while node.is_running() {
        assert!(
            std::time::Instant::now() < deadline,
            "the node did not stop after `stele admin shutdown`"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn status_priority_resign_and_shutdown_on_an_insecure_node() {
    let mut node = TestNode::start(NodeOptions::in_memory(STELE)).await;
    let url = node.http_url();
    let member = format!("{}:{}", node.ip(), node.http_port());

    let (code, table, stderr) = admin(&["--url", &url, "status"]);
    assert_eq!(code, 0, "status: {stderr}");
    let row = status_row(&table, &member);
    assert_eq!(cell(&row, "STATE"), "Leader", "{table}");
    assert_eq!(cell(&row, "ALIVE"), "yes", "{table}");
    assert_eq!(cell(&row, "READ-ONLY"), "no", "{table}");
    assert!(
        table.contains(&format!("{member}*")),
        "the answering node is marked: {table}"
    );

    let (code, stdout, stderr) = admin(&["priority", "5", "--url", &url]);
    assert_eq!(code, 0, "priority 5: {stderr}");
    assert!(stdout.contains("OK"), "{stdout}");
    let (code, table, stderr) = admin(&["--url", &url, "status"]);
    assert_eq!(code, 0, "status: {stderr}");
    assert_eq!(
        cell(&status_row(&table, &member), "PRIORITY"),
        "5",
        "{table}"
    );
    let (code, json, _) = admin(&["--url", &url, "status", "--json"]);
    assert_eq!(code, 0);
    let gossip: serde_json::Value = serde_json::from_str(&json).expect("status --json is JSON");
    assert_eq!(gossip["members"][0]["nodePriority"], 5, "{gossip}");

    let (code, _, stderr) = admin(&["--url", &url, "resign"]);
    assert_eq!(code, 0, "resign: {stderr}");

    // Scavenging is not built: the command says so and fails, rather than pretend.
    let (code, stdout, stderr) = admin(&["--url", &url, "scavenge"]);
    assert_ne!(code, 0, "scavenge must not succeed: {stdout}");
    assert!(stderr.contains("not implemented"), "{stderr}");

    let (code, _, stderr) = admin(&["--url", &url, "shutdown"]);
    assert_eq!(code, 0, "shutdown: {stderr}");
    wait_stopped(&mut node).await;

    // Nothing listens any more: the error names the address.
    let (code, _, stderr) = admin(&["--url", &url, "--timeout", "5", "status"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("connection refused") && stderr.contains(&url),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secure_node_needs_the_ca_and_an_admins_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::create(STELE, dir.path());
    let tls = ca.node(&dir.path().join("node1"), "127.0.0.1", &[]);
    let mut node = TestNode::start(NodeOptions::in_memory(STELE).secure(tls)).await;
    let url = node.http_url();
    let ca_file = ca.ca_file().display().to_string();

    // No CA: the node's certificate is not trusted, and the error says what to pass.
    let (code, _, stderr) = admin(&["--url", &url, "status"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("--tls-ca-file"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");

    // Plain HTTP to the secure port: the error says the node is likely secure.
    let plain = url.replacen("https://", "http://", 1);
    let (code, _, stderr) = admin(&["--url", &plain, "status"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("use https://"), "{stderr}");

    // With the CA, gossip is anonymous; shutdown without credentials is 401.
    let (code, table, stderr) = admin(&["--url", &url, "--tls-ca-file", &ca_file, "status"]);
    assert_eq!(code, 0, "status with the CA: {stderr}");
    assert!(table.contains("Leader"), "{table}");
    let (code, _, stderr) = admin(&["--url", &url, "--tls-ca-file", &ca_file, "shutdown"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("401") && stderr.contains("credentials are missing"),
        "{stderr}"
    );
    let wrong = [
        "--url",
        &url,
        "--tls-ca-file",
        &ca_file,
        "--username",
        "admin",
        "--password",
        "wrong",
        "shutdown",
    ];
    let (code, _, stderr) = admin(&wrong);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("credentials are wrong"), "{stderr}");
    assert!(
        node.is_running(),
        "refused shutdowns leave the node running"
    );

    // The admin user exists once the node leads; until then its credentials are refused.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (code, stdout, stderr) = admin(&[
            "--url",
            &url,
            "--tls-ca-file",
            &ca_file,
            "--username",
            "admin",
            "--password",
            "changeit",
            "shutdown",
        ]);
        if code == 0 {
            assert!(stdout.contains("OK"), "{stdout}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline && stderr.contains("401"),
            "shutdown as admin: {stderr}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_stopped(&mut node).await;
}
