//! Clusters of real `stele` processes on loopback (stele-testkit's `TestCluster`): forming
//! from EventStoreDB YAML files, "not leader" answers and forwarding, a leader killed under
//! concurrent writers (with a `$all` subscription on a follower checked for gaps and
//! duplicates across the failover), an isolated leader, a read-only replica, and moving
//! leadership by resignation and priority (docs/design.md decisions 1 and 3; PROTOCOL.md §8, §9).
//!
//! Every scenario starts its own cluster of three voters (four processes at most); the
//! scenarios run one at a time (`SERIAL`) because the machines that run them have two
//! cores. Checks that involve elections poll with generous deadlines and, on failure,
//! print every node's gossip and log tail.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::wire;
use common::*;
use kurrentdb::{CurrentRevision, Error, ReadStreamOptions};
use stele_proto::streams::append_req::options::ExpectedStreamRevision;
use stele_proto::streams::append_resp;
use stele_testkit::client::{append_recorded, connect, json_events, AllSubscriber};
use stele_testkit::history::verify_delivery;
use stele_testkit::{ClusterOptions, Expected, History, Outcome, TestCluster};
use tonic::Code;
use uuid::Uuid;

/// One cluster at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long an election may take on a slow, shared machine.
const ELECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a restarted or reconnected node may take to catch up.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one append may take before it counts as unanswered.
const APPEND_DEADLINE: Duration = Duration::from_secs(5);

fn cluster_options() -> ClusterOptions {
    ClusterOptions::new(STELE)
}

/// Polls `check` until it returns `Ok` or `timeout` passes; the last error otherwise.
async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return Ok(value),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The ids of `stream` as node `k` has them (read from node `k` itself).
async fn stream_ids_on(cluster: &TestCluster, k: usize, stream: &str) -> Result<Vec<Uuid>, String> {
    let client = connect(&cluster.node_connection_string(k))?;
    match read_stream(&client, stream, &ReadStreamOptions::default()).await {
        Ok(events) => Ok(ids(&events)),
        Err(Error::ResourceNotFound) => Ok(Vec::new()),
        Err(e) => Err(format!("reading {stream} on node {k}: {e:?}")),
    }
}

/// Waits until node `k` has exactly `expected` in `stream`.
async fn wait_for_stream_on(cluster: &TestCluster, k: usize, stream: &str, expected: &[Uuid]) {
    let seen = eventually(CATCH_UP_TIMEOUT, || async {
        let ids = stream_ids_on(cluster, k, stream).await?;
        if ids == expected {
            Ok(())
        } else {
            Err(format!(
                "node {k} has {ids:?} in {stream}, expected {expected:?}"
            ))
        }
    })
    .await;
    if let Err(e) = seen {
        panic!("{e}\n{}", cluster.diagnostics().await);
    }
}

/// Appends `n` events to `stream` through `client` with a deadline, recorded in
/// `history`, and panics with diagnostics unless they are acknowledged.
async fn append_acked(
    cluster: &TestCluster,
    client: &kurrentdb::Client,
    history: &History,
    stream: &str,
    expected: Expected,
    n: usize,
) -> u64 {
    let (outcome, _) = append_recorded(client, history, stream, expected, n, APPEND_DEADLINE).await;
    match outcome {
        Outcome::Acked {
            next_expected_version,
            ..
        } => next_expected_version,
        other => panic!(
            "append of {n} to {stream} not acknowledged: {other:?}\n{}",
            cluster.diagnostics().await
        ),
    }
}

/// Verifies `history` against `$all` of `nodes` (once they agree, or after a deadline)
/// and panics listing every broken promise.
#[allow(clippy::print_stdout, reason = "a test reports what it checked")]
async fn verify_history(cluster: &TestCluster, history: &History, nodes: &[usize]) {
    let reads = cluster.read_all_converged(nodes, CATCH_UP_TIMEOUT).await;
    match history.verify(&reads) {
        Ok(report) => println!("history verified: {report}"),
        Err(errors) => panic!(
            "history check failed:\n{}\n{}",
            errors.join("\n"),
            cluster.diagnostics().await
        ),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn yaml_config_forms_cluster() {
    let _serial = SERIAL.lock().await;
    let cluster = TestCluster::start(cluster_options().yaml_config(true)).await;

    // Every node's view: three members alive, exactly one Leader, two Followers, all
    // naming the same leader. Views converge a gossip round or so after forming.
    let leaders = eventually(ELECTION_TIMEOUT, || async {
        let mut leaders = Vec::new();
        for k in 0..3 {
            let members = cluster.try_gossip(k).await?;
            let states: Vec<(Option<usize>, &str, bool)> = members
                .iter()
                .map(|m| (cluster.index_of(m), m.state.as_str(), m.is_alive))
                .collect();
            let leader: Vec<usize> = members
                .iter()
                .filter(|m| m.is("Leader"))
                .filter_map(|m| cluster.index_of(m))
                .collect();
            let followers = members.iter().filter(|m| m.is("Follower")).count();
            let ours = members
                .iter()
                .filter(|m| cluster.index_of(m).is_some())
                .count();
            if members.len() != 3 || ours != 3 || leader.len() != 1 || followers != 2 {
                return Err(format!("node {k} sees {states:?}"));
            }
            leaders.push(leader[0]);
        }
        Ok(leaders)
    })
    .await
    .unwrap_or_else(|e| panic!("gossip did not settle: {e}"));
    assert!(
        leaders.iter().all(|&l| l == leaders[0]),
        "nodes name different leaders: {leaders:?}\n{}",
        cluster.diagnostics().await
    );
    for k in 0..3 {
        let file = cluster
            .config_file(k)
            .expect("YAML mode writes a file per node");
        let yaml = std::fs::read_to_string(&file).expect("reading the YAML file");
        assert!(yaml.contains("ClusterSize: 3"), "{yaml}");
    }

    // An append through the discover connection string lands on the leader and is
    // readable on every node, each read served by that node.
    let client = connect(&cluster.connection_string()).expect("a client");
    let history = History::new();
    let stream = format!("yaml-{}", Uuid::new_v4());
    append_acked(&cluster, &client, &history, &stream, Expected::NoStream, 3).await;
    let written = history.appends()[0].event_ids.clone();
    for k in 0..3 {
        wait_for_stream_on(&cluster, k, &stream, &written).await;
    }
    verify_history(&cluster, &history, &[0, 1, 2]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn write_to_follower_with_requires_leader_gets_not_leader_and_client_follows() {
    let _serial = SERIAL.lock().await;
    let cluster = TestCluster::start(cluster_options()).await;
    let leader = cluster.wait_for_leader(&[], ELECTION_TIMEOUT).await;
    let follower = (0..3).find(|&k| k != leader).expect("a follower");
    let leader_ip = cluster.ip(leader).to_string();
    let leader_port = cluster.node(leader).http_port().to_string();

    // Raw gRPC with `requires-leader: true`: NOT_FOUND "Leader info available" and the
    // leader's client endpoint in the trailers (PROTOCOL.md §9).
    let channel = wire::channel(cluster.node(follower)).await;
    let raw_stream = format!("raw-{}", Uuid::new_v4());
    let (refused_id, forwarded_id) = (Uuid::new_v4(), Uuid::new_v4());
    let messages = |id: Uuid| {
        vec![
            wire::append_options(&raw_stream, ExpectedStreamRevision::NoStream(wire::empty())),
            wire::append_event(
                wire::uuid_structured(id),
                "test-event",
                bytes::Bytes::from_static(b"{}"),
            ),
        ]
    };
    let mut request = tonic::Request::new(futures::stream::iter(messages(refused_id)));
    request
        .metadata_mut()
        .insert("requires-leader", "true".parse().expect("a header value"));
    let status = wire::streams(&channel)
        .append(request)
        .await
        .expect_err("a follower refuses a write that requires the leader");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(status.message(), "Leader info available", "{status:?}");
    assert_eq!(
        wire::trailer(&status, "exception"),
        Some("not-leader"),
        "{status:?}"
    );
    assert_eq!(
        wire::trailer(&status, "leader-endpoint-host"),
        Some(leader_ip.as_str()),
        "{status:?}"
    );
    assert_eq!(
        wire::trailer(&status, "leader-endpoint-port"),
        Some(leader_port.as_str()),
        "{status:?}"
    );

    // Without the header the follower forwards the write to the leader. The refused
    // write is nowhere, the forwarded one everywhere.
    let forwarded = wire::append(&channel, messages(forwarded_id))
        .await
        .expect("a follower forwards a write that does not require the leader");
    assert!(
        matches!(forwarded.result, Some(append_resp::Result::Success(_))),
        "{forwarded:?}"
    );
    for k in 0..3 {
        wait_for_stream_on(&cluster, k, &raw_stream, &[forwarded_id]).await;
    }

    // The official client, pointed at the follower alone with the default preference
    // (leader): its first append fails with NotLeaderException naming the leader, and it
    // reconnects there, so the retry succeeds.
    let client = connect(&cluster.node_leader_connection_string(follower)).expect("a client");
    let stream = format!("follow-{}", Uuid::new_v4());
    let (_, events) = json_events("test-event", 1);
    let options = kurrentdb::AppendToStreamOptions::default()
        .stream_state(kurrentdb::StreamState::NoStream)
        .deadline(APPEND_DEADLINE);
    match client
        .append_to_stream(stream.as_str(), &options, events)
        .await
    {
        Err(Error::NotLeaderException(endpoint)) => {
            assert_eq!(endpoint.host, leader_ip, "{endpoint:?}");
            assert_eq!(endpoint.port.to_string(), leader_port, "{endpoint:?}");
        }
        other => panic!(
            "expected NotLeaderException from the follower, got {other:?}\n{}",
            cluster.diagnostics().await
        ),
    }
    let history = History::new();
    append_acked(&cluster, &client, &history, &stream, Expected::NoStream, 1).await;
    let written = history.appends()[0].event_ids.clone();
    wait_for_stream_on(&cluster, leader, &stream, &written).await;
}

/// What the writers of `leader_sigkill_under_writers_loses_nothing` share.
struct Writers {
    history: History,
    stop: AtomicBool,
    /// Set when the leader is killed.
    killed_at: Mutex<Option<Instant>>,
    /// The first acknowledgement of an append sent after the kill.
    first_ack_after_kill: Mutex<Option<Instant>>,
    acks_after_kill: AtomicU64,
}

async fn writer(cluster_connection: String, writers: Arc<Writers>, stream: String) {
    let mut client = connect(&cluster_connection).expect("a client");
    let mut expected = Expected::NoStream;
    while !writers.stop.load(Ordering::SeqCst) {
        let sent_at = Instant::now();
        let (outcome, error) = append_recorded(
            &client,
            &writers.history,
            &stream,
            expected,
            2,
            APPEND_DEADLINE,
        )
        .await;
        match (outcome, error) {
            (
                Outcome::Acked {
                    next_expected_version,
                    ..
                },
                _,
            ) => {
                expected = Expected::Exact(next_expected_version);
                let killed_at = *writers.killed_at.lock().expect("lock");
                if killed_at.is_some_and(|k| sent_at > k) {
                    writers.acks_after_kill.fetch_add(1, Ordering::SeqCst);
                    writers
                        .first_ack_after_kill
                        .lock()
                        .expect("lock")
                        .get_or_insert_with(Instant::now);
                }
            }
            // An earlier unknown append was written after all: carry on from where the
            // server says the stream is.
            (_, Some(Error::WrongExpectedVersion { current, .. })) => {
                expected = match current {
                    CurrentRevision::Current(revision) => Expected::Exact(revision),
                    CurrentRevision::NoStream => Expected::NoStream,
                };
            }
            // kurrentdb 1.2 keeps using a node that failed a call (it looks for another
            // only when told "not leader", and gives up for good after too many failed
            // discoveries), so a fresh client rediscovers the leader from the seeds.
            (Outcome::Unknown(_), _) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                client = connect(&cluster_connection).expect("a client");
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_sigkill_under_writers_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let mut cluster = TestCluster::start(cluster_options()).await;
    let old_leader = cluster.wait_for_leader(&[], ELECTION_TIMEOUT).await;
    // A subscription to `$all` on a node that survives, running through the failover.
    let watched = cluster
        .voters()
        .find(|&k| k != old_leader)
        .expect("a follower");
    let subscriber = AllSubscriber::start(cluster.node_connection_string(watched));

    let writers = Arc::new(Writers {
        history: History::new(),
        stop: AtomicBool::new(false),
        killed_at: Mutex::new(None),
        first_ack_after_kill: Mutex::new(None),
        acks_after_kill: AtomicU64::new(0),
    });
    let started = Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            tokio::spawn(writer(
                cluster.connection_string(),
                Arc::clone(&writers),
                format!("writer-{i}-{}", Uuid::new_v4()),
            ))
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(1)).await;
    let acks_before_kill = writers
        .history
        .appends()
        .iter()
        .filter(|a| matches!(a.outcome, Some(Outcome::Acked { .. })))
        .count();
    cluster.kill(old_leader);
    let killed_at = Instant::now();
    *writers.killed_at.lock().expect("lock") = Some(killed_at);

    let new_leader = cluster
        .wait_for_leader(&[old_leader], ELECTION_TIMEOUT)
        .await;
    let elected_after = killed_at.elapsed();
    // Writes continue: at least one append sent after the kill is acknowledged.
    let resumed = eventually(ELECTION_TIMEOUT, || async {
        match *writers.first_ack_after_kill.lock().expect("lock") {
            Some(at) => Ok(at),
            None => Err("no acknowledgement after the kill".to_string()),
        }
    })
    .await;
    let first_ack = match resumed {
        Ok(at) => at,
        Err(e) => {
            writers.stop.store(true, Ordering::SeqCst);
            panic!("{e}\n{}", cluster.diagnostics().await);
        }
    };
    // Keep writing for ~3 s in all, and a little after the first new acknowledgement.
    let run_until = (started + Duration::from_secs(3)).max(first_ack + Duration::from_millis(500));
    tokio::time::sleep_until(tokio::time::Instant::from_std(run_until)).await;
    writers.stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.expect("a writer panicked");
    }
    println!(
        "leader {old_leader} killed; node {new_leader} elected after {elected_after:?}; \
         failover gap (kill to first acknowledgement of an append sent after it): {:?}; \
         {acks_before_kill} appends acknowledged before the kill, {} after",
        first_ack - killed_at,
        writers.acks_after_kill.load(Ordering::SeqCst)
    );
    assert!(
        acks_before_kill > 0,
        "no append acknowledged before the kill"
    );

    cluster.restart(old_leader);
    cluster.wait_ready(old_leader, CATCH_UP_TIMEOUT).await;
    verify_history(&cluster, &writers.history, &[0, 1, 2]).await;

    // The subscription delivered exactly the watched node's `$all`: no gap, no duplicate,
    // in order, across the failover (and across any resubscription it needed).
    let all = cluster
        .read_all(watched, CATCH_UP_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let caught_up = eventually(CATCH_UP_TIMEOUT, || async {
        let delivered = subscriber.delivered();
        if delivered.len() >= all.len() {
            Ok(delivered)
        } else {
            Err(format!(
                "the subscription on node {watched} delivered {} of {} events",
                delivered.len(),
                all.len()
            ))
        }
    })
    .await;
    let delivered = match caught_up {
        Ok(delivered) => delivered,
        Err(e) => panic!("{e}\n{}", cluster.diagnostics().await),
    };
    if let Err(errors) = verify_delivery(&format!("node{watched}"), &delivered, &all, false) {
        panic!("subscription check failed:\n{}", errors.join("\n"));
    }
    println!(
        "subscription on node {watched}: {} events delivered without gap or duplicate, \
         {} resubscriptions",
        delivered.len(),
        subscriber.resubscriptions()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn isolated_leader_stops_acknowledging_and_converges() {
    let _serial = SERIAL.lock().await;
    let cluster = TestCluster::start(cluster_options().proxied(true)).await;
    let old_leader = cluster.wait_for_leader(&[], ELECTION_TIMEOUT).await;
    let history = History::new();
    let stream = format!("isolated-{}", Uuid::new_v4());
    let client = connect(&cluster.connection_string()).expect("a client");
    let mut revision =
        append_acked(&cluster, &client, &history, &stream, Expected::NoStream, 2).await;

    cluster.isolate(old_leader).await;

    // The old leader cannot reach a quorum, so a write sent to it alone (requires-leader)
    // is not acknowledged: it fails or times out.
    let to_old = connect(&cluster.node_leader_connection_string(old_leader)).expect("a client");
    let (outcome, error) = append_recorded(
        &to_old,
        &history,
        &stream,
        Expected::Exact(revision),
        1,
        Duration::from_secs(6),
    )
    .await;
    assert!(
        !outcome.is_acked(),
        "an isolated leader acknowledged a write: {outcome:?}\n{}",
        cluster.diagnostics().await
    );
    println!("write to the isolated leader: {outcome:?} ({error:?})");

    // The other two elect a leader and accept writes.
    let new_leader = cluster
        .wait_for_leader(&[old_leader], ELECTION_TIMEOUT)
        .await;
    assert_ne!(new_leader, old_leader);
    let to_new = connect(&cluster.node_leader_connection_string(new_leader)).expect("a client");
    let other_stream = format!("majority-{}", Uuid::new_v4());
    let mut other_revision = append_acked(
        &cluster,
        &to_new,
        &history,
        &other_stream,
        Expected::NoStream,
        2,
    )
    .await;
    for _ in 0..3 {
        other_revision = append_acked(
            &cluster,
            &to_new,
            &history,
            &other_stream,
            Expected::Exact(other_revision),
            1,
        )
        .await;
    }
    // The first stream may or may not hold the unknown write; ask the new leader.
    revision = match stream_ids_on(&cluster, new_leader, &stream).await {
        Ok(ids) => ids.len() as u64 - 1,
        Err(e) => panic!("{e}"),
    };
    append_acked(
        &cluster,
        &to_new,
        &history,
        &stream,
        Expected::Exact(revision),
        1,
    )
    .await;

    // Healed, the old leader follows the new one without a restart and catches up.
    cluster.heal();
    cluster
        .wait_for_state(old_leader, "Follower", CATCH_UP_TIMEOUT)
        .await;
    cluster
        .wait_for_leader_to_be(new_leader, ELECTION_TIMEOUT)
        .await;
    eventually(CATCH_UP_TIMEOUT, || async {
        if cluster.node(old_leader).is_live().await {
            Ok(())
        } else {
            Err(format!("node {old_leader}'s /health/live is not 204"))
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    verify_history(&cluster, &history, &[0, 1, 2]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_replica_follows_and_does_not_vote() {
    let _serial = SERIAL.lock().await;
    let mut cluster = TestCluster::start(cluster_options().read_only_replicas(1)).await;
    let replica = 3;
    assert!(cluster.is_replica(replica));
    cluster
        .wait_for_state(replica, "ReadOnlyReplica", ELECTION_TIMEOUT)
        .await;
    let leader = cluster.wait_for_leader(&[], ELECTION_TIMEOUT).await;
    assert!(leader < 3, "a replica never leads");
    // Every voter sees the replica as a replica.
    for k in cluster.voters() {
        let seen = eventually(ELECTION_TIMEOUT, || async {
            let members = cluster.try_gossip(k).await?;
            match members
                .iter()
                .find(|m| cluster.index_of(m) == Some(replica))
            {
                Some(m) if m.state == "ReadOnlyReplica" && m.is_read_only_replica => Ok(()),
                other => Err(format!("node {k} sees the replica as {other:?}")),
            }
        })
        .await;
        if let Err(e) = seen {
            panic!("{e}\n{}", cluster.diagnostics().await);
        }
    }

    // Appends reach the replica.
    let history = History::new();
    let client = connect(&cluster.connection_string()).expect("a client");
    let stream = format!("replicated-{}", Uuid::new_v4());
    let mut revision =
        append_acked(&cluster, &client, &history, &stream, Expected::NoStream, 3).await;
    let written: Vec<Uuid> = history.appends()[0].event_ids.clone();
    wait_for_stream_on(&cluster, replica, &stream, &written).await;

    // Without the replica, writes are still acknowledged.
    cluster.kill(replica);
    revision = append_acked(
        &cluster,
        &client,
        &history,
        &stream,
        Expected::Exact(revision),
        1,
    )
    .await;

    // Without one voter too: two of three voters are a quorum, and the replica was never
    // counted (two of four members would not be).
    let follower = cluster.voters().find(|&k| k != leader).expect("a follower");
    cluster.kill(follower);
    append_acked(
        &cluster,
        &client,
        &history,
        &stream,
        Expected::Exact(revision),
        1,
    )
    .await;
    let remaining: Vec<usize> = cluster.voters().filter(|&k| k != follower).collect();
    verify_history(&cluster, &history, &remaining).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn resign_and_priority_move_leadership() {
    let _serial = SERIAL.lock().await;
    let cluster = TestCluster::start(cluster_options()).await;
    let first = cluster.wait_for_leader(&[], ELECTION_TIMEOUT).await;

    cluster.resign(first).await;
    let second = cluster
        .wait_for_leader_change(first, Duration::from_secs(10))
        .await;
    assert_ne!(second, first);

    let favourite = (0..3).find(|&k| k != second).expect("a follower");
    cluster.set_priority(favourite, 10).await;
    cluster
        .wait_for_leader_to_be(favourite, Duration::from_secs(15))
        .await;

    // The cluster still takes writes, through the new leader.
    let history = History::new();
    let client = connect(&cluster.connection_string()).expect("a client");
    let stream = format!("moved-{}", Uuid::new_v4());
    append_acked(&cluster, &client, &history, &stream, Expected::NoStream, 1).await;
    verify_history(&cluster, &history, &[0, 1, 2]).await;
}
