//! What one client may cost the node (issue 11, item 9), seen from outside through real
//! processes: a pathological `$all` filter regex, slow or idle connections, and the
//! connection limit.

mod common;

use std::time::{Duration, Instant};

use common::*;
use kurrentdb::{
    AppendToStreamOptions, SubscribeToAllOptions, SubscriptionEvent, SubscriptionFilter,
};

/// Live `$all` subscriptions with a catastrophically backtracking filter
/// (`(a+)+(?=b)`: nested quantifiers and a look-ahead, so it cannot run on the linear
/// engine) made appends crawl: each event cost every subscription ~15 ms on the async
/// workers, and 100 such subscriptions made 40 appends take 47 s. With the backtracking
/// budget capped, and such filters run on the blocking pool, the appends stay fast.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pathological_filter_regex_does_not_slow_appends() {
    const SUBSCRIPTIONS: usize = 32;
    const APPENDS: usize = 40;
    let (_node, client) = start_in_memory().await;
    // Event types that make the pattern backtrack to its budget (no `b` ever follows).
    let hostile_type = format!("{}c", "a".repeat(40));

    let mut drains = Vec::new();
    for _ in 0..SUBSCRIPTIONS {
        let options = SubscribeToAllOptions::default()
            .filter(SubscriptionFilter::on_event_type().regex("(a+)+(?=b)"));
        let mut sub = client.subscribe_to_all(&options).await;
        match tokio::time::timeout(Duration::from_secs(20), sub.next_subscription_event()).await {
            Ok(Ok(SubscriptionEvent::Confirmed(_))) => {}
            other => panic!("expected a confirmation, got {other:?}"),
        }
        drains.push(tokio::spawn(async move {
            while sub.next_subscription_event().await.is_ok() {}
        }));
    }

    let started = Instant::now();
    for n in 0..APPENDS {
        client
            .append_to_stream(
                format!("hostile-{n}"),
                &AppendToStreamOptions::default(),
                json_event(&hostile_type, n as u64),
            )
            .await
            .expect("append");
    }
    let took = started.elapsed();
    println!("{APPENDS} appends beside {SUBSCRIPTIONS} hostile filters took {took:?}");
    assert!(
        took < Duration::from_secs(10),
        "{APPENDS} appends with {SUBSCRIPTIONS} hostile filters took {took:?}"
    );
    for drain in drains {
        drain.abort();
    }
}

/// Raises this test process's own open-files limit: the tests below hold more than a
/// thousand sockets.
#[allow(unsafe_code, reason = "getrlimit/setrlimit through libc")]
fn raise_own_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write only the struct given, on this stack.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

/// A script that starts `stele` with the soft open-files limit at 1,024, the common
/// default the node met when 1,100 idle connections locked it up.
fn stele_with_1024_files(dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("stele-1024-files");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nulimit -S -n 1024\nexec '{STELE}' \"$@\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// 1,100 idle connections exhausted the node's 1,024 file descriptors, and new clients
/// and `/health/live` timed out: the node raises its open-files limit at start, and at its
/// connection limit it closes the longest-idle connection for a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eleven_hundred_idle_connections_do_not_lock_out_new_clients() {
    raise_own_file_limit();
    let scripts = tempfile::tempdir().unwrap();
    let node = stele_testkit::TestNode::start(stele_testkit::NodeOptions::in_memory(
        stele_with_1024_files(scripts.path()),
    ))
    .await;
    let mut idle = Vec::new();
    for _ in 0..1100 {
        idle.push(
            tokio::net::TcpStream::connect(("127.0.0.1", node.http_port()))
                .await
                .expect("connecting"),
        );
    }
    // Give the node time to accept them all.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    assert!(
        node.is_live().await,
        "/health/live answers beside 1,100 idle connections"
    );
    let client = client(&node);
    client
        .append_to_stream(
            "after-idle",
            &AppendToStreamOptions::default(),
            json_event("e", 1),
        )
        .await
        .expect("a new client is served");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(idle);
}

/// A slowloris client (a request header sent a byte at a time) kept its connection open
/// forever: the node closes a connection that does not complete its first request's
/// headers within `ClientHeaderReadTimeoutMs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_by_the_node() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let node = stele_testkit::TestNode::start(
        in_memory()
            .arg("--client-header-read-timeout-ms")
            .arg("1000"),
    )
    .await;
    let port = node.http_port();
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        slow.push(tokio::spawn(async move {
            let header = b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter();
            let mut bytes = header.chain(std::iter::repeat(&b'a'));
            let mut buf = [0u8; 256];
            let started = Instant::now();
            loop {
                tokio::select! {
                    read = tcp.read(&mut buf) => match read {
                        Ok(0) | Err(_) => return Some(started.elapsed()),
                        Ok(_) => {}
                    },
                    () = tokio::time::sleep(Duration::from_millis(100)) => {
                        if tcp.write_all(&[*bytes.next().unwrap()]).await.is_err() {
                            return Some(started.elapsed());
                        }
                        if started.elapsed() > Duration::from_secs(15) {
                            return None;
                        }
                    }
                }
            }
        }));
    }
    for connection in slow {
        let closed_after = connection.await.unwrap().expect("closed by the node");
        assert!(
            closed_after >= Duration::from_millis(900),
            "{closed_after:?}"
        );
    }
    assert!(node.is_live().await);
}
