//! `stele bench` as an operator runs it, against a real node: the figures it reports, and the
//! CPU cost per acknowledged event of each node it is told about (issue 18 item 6).

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;
use stele_testkit::TestNode;

/// A short run with `--json` reports the node's CPU microseconds per acknowledged event, and
/// the same for every `--node-stats` node; without them the cost per event was not a number
/// anyone could track.
#[tokio::test(flavor = "multi_thread")]
async fn bench_reports_cpu_microseconds_per_event_for_each_node() {
    let node = TestNode::start(in_memory()).await;
    let url = node.http_url();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(STELE)
            .args([
                "bench",
                "--url",
                &url,
                "--node-stats",
                &url,
                "--writers",
                "2",
                "--duration",
                "1",
                "--warmup",
                "0.2",
                "--json",
            ])
            .output()
            .expect("stele bench runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "bench failed: {stdout}");
    assert!(stdout.contains("µs per event"), "{stdout}");
    let report: Value = serde_json::from_str(stdout.lines().last().expect("a JSON line"))
        .expect("the last line is JSON");
    let us = report["node_cpu_us_per_event"]
        .as_f64()
        .expect("a CPU figure for the node");
    assert!(us > 0.0, "{report}");
    let others = report["other_nodes"].as_array().expect("other nodes");
    assert_eq!(others.len(), 1, "{report}");
    assert!(
        others[0]["cpu_us_per_event"]
            .as_f64()
            .is_some_and(|us| us > 0.0),
        "{report}"
    );
}
