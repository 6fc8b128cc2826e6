//! Projections across a leader failover (issue 14): a 3-node cluster runs `$by_category`
//! and a user projection under a writer; the leader is SIGKILLed mid-way; the new leader
//! resumes both from their checkpoints. Afterwards the user projection's state equals a
//! recomputation from `$all`, and `$ce-order` holds exactly one link per event of the
//! category — no gap, no duplicate.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use kurrentdb::{
    AppendToStreamOptions, ClientSettings, CreateProjectionOptions, GetStateProjectionOptions,
    ProjectionClient, ReadAllOptions, ReadStreamOptions,
};
use serde_json::Value;
use stele_testkit::{ClusterOptions, TestCluster};
use uuid::Uuid;

const ELECTION: Duration = Duration::from_secs(30);
const EVENTS: u64 = 300;
const KILL_AFTER: u64 = 120;
const STREAMS: u64 = 7;

fn projection_client(connection: &str) -> ProjectionClient {
    let settings: ClientSettings = connection.parse().expect("a connection string");
    ProjectionClient::new(settings).expect("a projection client")
}

/// Every event of a stream (the link events themselves for `$ce-`), from a fresh client.
async fn read_stream(connection: &str, stream: &str) -> Result<Vec<(u64, Vec<u8>)>, String> {
    let client = stele_testkit::client::connect(connection)?;
    let mut read = client
        .read_stream(stream, &ReadStreamOptions::default().max_count(100_000))
        .await
        .map_err(|e| e.to_string())?;
    let mut events = Vec::new();
    loop {
        match read.next().await {
            Ok(Some(event)) => {
                let e = event.get_original_event();
                events.push((e.revision, e.data.to_vec()));
            }
            Ok(None) => return Ok(events),
            Err(kurrentdb::Error::ResourceNotFound) => return Ok(events),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The number of `Placed` events in `$all`.
async fn placed_in_all(connection: &str) -> Result<u64, String> {
    let client = stele_testkit::client::connect(connection)?;
    let mut read = client
        .read_all(&ReadAllOptions::default().max_count(1_000_000))
        .await
        .map_err(|e| e.to_string())?;
    let mut n = 0;
    while let Some(event) = read.next().await.map_err(|e| e.to_string())? {
        if event.get_original_event().event_type == "Placed" {
            n += 1;
        }
    }
    Ok(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_leader_failover_projections_resume_without_gap_or_duplicate() {
    let mut cluster = TestCluster::start(
        ClusterOptions::new(STELE)
            .arg("--run-projections")
            .arg("All")
            .arg("--start-standard-projections")
            .arg("true"),
    )
    .await;
    let leader = cluster.wait_for_leader(&[], ELECTION).await;
    let connection = cluster.connection_string();
    // The user projection counts Placed events (created on the leader, retried until the
    // subsystem has loaded there).
    let query = r#"fromAll().when({
        $init: function() { return {count: 0}; },
        Placed: function(s, e) { s.count += 1; }
    })"#;
    let deadline = tokio::time::Instant::now() + ELECTION;
    loop {
        let created = projection_client(&connection)
            .create(
                "placed-counter",
                query.to_owned(),
                &CreateProjectionOptions::default(),
            )
            .await;
        match created {
            Ok(()) => break,
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("create: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("creating the projection: {e}"),
        }
    }

    // One writer; each append retried with the same id on a fresh client until it lands.
    let mut killed = false;
    for n in 0..EVENTS {
        if n == KILL_AFTER {
            cluster.kill(leader);
            killed = true;
        }
        let id = Uuid::new_v4();
        let stream = format!("order-{}", n % STREAMS);
        let deadline = tokio::time::Instant::now() + ELECTION;
        loop {
            let client = stele_testkit::client::connect(&connection).expect("a client");
            let options = AppendToStreamOptions::default().deadline(Duration::from_secs(5));
            match client
                .append_to_stream(
                    stream.as_str(),
                    &options,
                    json_event_with_id("Placed", n, id),
                )
                .await
            {
                Ok(_) => break,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    eprintln!("append {n}: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("append {n}: {e}"),
            }
        }
    }
    assert!(killed);
    let new_leader = cluster.wait_for_leader(&[leader], ELECTION).await;
    assert_ne!(new_leader, leader);
    let survivor = cluster.node_connection_string(new_leader);

    // The user projection's state = a recomputation from $all.
    let placed = placed_in_all(&survivor).await.expect("reading $all");
    assert_eq!(placed, EVENTS, "each append landed once");
    let deadline = tokio::time::Instant::now() + ELECTION;
    loop {
        let state = projection_client(&connection)
            .get_state::<_, Value>("placed-counter", &GetStateProjectionOptions::default())
            .await;
        let count = match &state {
            Ok(Ok(s)) => s["count"].as_f64(),
            _ => None,
        };
        if count == Some(placed as f64) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the projection's state after the failover: {state:?}, expected count {placed}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // $ce-order: exactly one link per event of the category.
    let mut expected = Vec::new();
    for k in 0..STREAMS {
        let stream = format!("order-{k}");
        for (revision, _) in read_stream(&survivor, &stream).await.expect("reading") {
            expected.push(format!("{revision}@{stream}"));
        }
    }
    expected.sort();
    let deadline = tokio::time::Instant::now() + ELECTION;
    loop {
        let links = read_stream(&survivor, "$ce-order")
            .await
            .expect("reading $ce-order");
        let mut targets: Vec<String> = links
            .iter()
            .map(|(_, data)| String::from_utf8_lossy(data).into_owned())
            .collect();
        targets.sort();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for t in &targets {
            *counts.entry(t.as_str()).or_default() += 1;
        }
        let duplicates: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        assert!(duplicates.is_empty(), "links written twice: {duplicates:?}");
        if targets == expected {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "$ce-order has {} links for {} events",
            targets.len(),
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
