//! What operators, load balancers and clients see of a busy cluster: `/health/live` and
//! `/gossip` sampled on the leader while 64 writers append through the official client
//! (issue 11, item 4).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use stele_testkit::client::{connect, json_events};

use stele_testkit::{ClusterOptions, TestCluster};

const WRITERS: usize = 64;
const SAMPLES: usize = 30;
const SAMPLE_INTERVAL: Duration = Duration::from_millis(150);

/// Under 64 writers the leader's state machine trails its commit by a batch or two. The
/// leader reported `PreLeader` and `/health/live` answered 503 whenever a sample landed in
/// that gap (19 of 36 samples), and clients discovering the cluster then found no leader.
/// A leader is `PreLeader` only until it has applied the first entry of its own term.
#[tokio::test(flavor = "multi_thread")]
async fn a_busy_leader_stays_leader_and_live() {
    let cluster = TestCluster::start(ClusterOptions::new(STELE)).await;
    let leader = cluster.wait_for_leader(&[], Duration::from_secs(30)).await;
    let client = connect(&cluster.connection_string()).expect("a client");

    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let client = client.clone();
        let stop = stop.clone();
        let acknowledged = acknowledged.clone();
        writers.push(tokio::spawn(async move {
            let stream = format!("load-{w}");
            while !stop.load(Ordering::Relaxed) {
                let (_, events) = json_events("Loaded", 1);
                if client
                    .append_to_stream(stream.as_str(), &Default::default(), events)
                    .await
                    .is_ok()
                {
                    acknowledged.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client");
    let health_url = format!("{}/health/live", cluster.http_url(leader));
    let mut failures = Vec::new();
    // Let the load build up first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for sample in 0..SAMPLES {
        match http.get(&health_url).send().await {
            Ok(resp) if resp.status().as_u16() == 204 => {}
            Ok(resp) => failures.push(format!("sample {sample}: /health/live {}", resp.status())),
            Err(e) => failures.push(format!("sample {sample}: /health/live {e}")),
        }
        match cluster.try_gossip(leader).await {
            Ok(members) => {
                let leaders: Vec<_> = members.iter().filter(|m| m.is("Leader")).collect();
                if leaders.len() != 1 {
                    let states: Vec<_> = members
                        .iter()
                        .map(|m| format!("{}={}", m.http_end_point_ip, m.state))
                        .collect();
                    failures.push(format!(
                        "sample {sample}: gossip lists {} leaders: {}",
                        leaders.len(),
                        states.join(", ")
                    ));
                }
            }
            Err(e) => failures.push(format!("sample {sample}: /gossip {e}")),
        }
        tokio::time::sleep(SAMPLE_INTERVAL).await;
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("a writer task");
    }
    let acknowledged = acknowledged.load(Ordering::Relaxed);
    assert!(
        acknowledged > WRITERS as u64,
        "the load ran: {acknowledged} appends acknowledged"
    );
    assert!(
        failures.is_empty(),
        "the leader must answer 204 and gossip one leader in every sample under load \
         ({acknowledged} appends acknowledged):\n{}",
        failures.join("\n")
    );
}
