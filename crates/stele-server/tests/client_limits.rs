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
