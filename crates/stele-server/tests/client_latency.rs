//! One writer's append latency through the official Rust client with its default settings
//! (Nagle's algorithm on, as `kurrentdb` leaves it), issue 18 item 1.

mod common;

use std::time::{Duration, Instant};

use common::*;
use kurrentdb::{AppendToStreamOptions, Client};
use stele_testkit::{NodeOptions, TestNode};

/// Appends measured by the regression test.
const APPENDS: usize = 50;
/// The bound on their median: far below the 40 ms of a delayed ACK, far above what the
/// debug build takes on this machine (0.4 ms, a few ms when the machine is loaded).
const MEDIAN_BOUND: Duration = Duration::from_millis(15);

/// The latencies of `count` appends of one event each, one at a time, to one stream.
async fn append_latencies(client: &Client, stream: &str, count: usize) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(count);
    for n in 0..count {
        let started = Instant::now();
        client
            .append_to_stream(
                stream,
                &AppendToStreamOptions::default(),
                json_event("latency", n as u64),
            )
            .await
            .expect("append");
        latencies.push(started.elapsed());
    }
    latencies.sort();
    latencies
}

/// The `q`-quantile of sorted `latencies` (nearest rank).
fn quantile(latencies: &[Duration], q: f64) -> Duration {
    let rank = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len());
    latencies[rank - 1]
}

/// The official Rust client writes an Append's HTTP/2 frames in several pieces with Nagle on;
/// the node ACKed the first piece only when its delayed-ACK timer fired (40 ms), so one
/// writer waited about 44 ms per append (22 appends/s). With the node acknowledging every
/// read at once, the median is a few milliseconds.
#[tokio::test(flavor = "multi_thread")]
async fn one_writer_with_the_official_clients_defaults_does_not_wait_for_delayed_acks() {
    let (_node, client) = start_in_memory().await;
    // The first appends open the connection and create the stream: not measured.
    append_latencies(&client, "latency", 5).await;
    let latencies = append_latencies(&client, "latency", APPENDS).await;
    let median = quantile(&latencies, 0.5);
    assert!(
        median < MEDIAN_BOUND,
        "median append latency {median:?} (sorted: {latencies:?}); 40 ms or more is a delayed \
         ACK waited on for every append"
    );
}

/// Figures for docs/benchmarks.md, not a test: one writer through the official client with
/// its defaults for `FIGURES_SECS` seconds (default 10) against a node of the binary in
/// `FIGURES_BINARY` (default the debug build), `--mem-db` unless `FIGURES_DISK=1`.
/// Run with `cargo test -p stele-server --test client_latency -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "figures, not a test"]
async fn figures_one_writer_official_client_defaults() {
    let binary = std::env::var("FIGURES_BINARY").unwrap_or_else(|_| STELE.to_string());
    let disk = std::env::var("FIGURES_DISK").is_ok_and(|v| !v.is_empty() && v != "0");
    let secs: f64 = std::env::var("FIGURES_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10.0);
    let options = if disk {
        NodeOptions::persistent(&binary)
    } else {
        NodeOptions::in_memory(&binary)
    };
    let node = TestNode::start(options).await;
    let client = client(&node);
    append_latencies(&client, "figures", 20).await;
    let started = Instant::now();
    let mut latencies = Vec::new();
    while started.elapsed().as_secs_f64() < secs {
        latencies.extend(append_latencies(&client, "figures", 10).await);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    println!(
        "official Rust client, defaults, 1 writer, {} ({binary}): {} appends in {elapsed:.1} s = \
         {:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
        if disk { "on disk" } else { "--mem-db" },
        latencies.len(),
        latencies.len() as f64 / elapsed,
        quantile(&latencies, 0.5).as_secs_f64() * 1e3,
        quantile(&latencies, 0.99).as_secs_f64() * 1e3,
    );
}
