//! EventStoreDB behaviour the official clients rely on (issue 11, item 10), through the
//! official Rust client and plain HTTP against a real process.

mod common;

use common::*;
use kurrentdb::{
    AppendToStreamOptions, ListPersistentSubscriptionsOptions, Position, ReadAllOptions,
    StreamPosition,
};

/// A backward read of `$all` from an event's position returned that event first;
/// EventStoreDB's starts with the event before it (the position is exclusive backwards,
/// inclusive forwards).
#[tokio::test(flavor = "multi_thread")]
async fn a_backward_read_of_all_from_a_position_excludes_the_event_there() {
    let (_node, client) = start_in_memory().await;
    for n in 0..5 {
        client
            .append_to_stream(
                "backwards",
                &AppendToStreamOptions::default(),
                json_event("e", n),
            )
            .await
            .expect("append");
    }
    let forwards = user_events(
        read_all(&client, &ReadAllOptions::default())
            .await
            .expect("reading $all"),
    );
    let third: Position = forwards[2].position;
    let backwards = user_events(
        read_all(
            &client,
            &ReadAllOptions::default()
                .backwards()
                .position(StreamPosition::Position(third)),
        )
        .await
        .expect("reading $all backwards from a position"),
    );
    let ids: Vec<_> = backwards.iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![forwards[1].id, forwards[0].id]);

    // From the first event's position backwards there is nothing of the user's.
    let before_first = user_events(
        read_all(
            &client,
            &ReadAllOptions::default()
                .backwards()
                .position(StreamPosition::Position(forwards[0].position)),
        )
        .await
        .expect("reading $all backwards from the first event"),
    );
    assert!(before_first.is_empty(), "{before_first:?}");

    // Forwards stays inclusive.
    let from_third = user_events(
        read_all(
            &client,
            &ReadAllOptions::default()
                .position(StreamPosition::Position(third))
                .max_count(1),
        )
        .await
        .expect("reading $all forwards from a position"),
    );
    assert_eq!(from_third[0].id, forwards[2].id);
}

/// Listing the groups of a stream that has none answered an empty list; EventStoreDB
/// answers NOT_FOUND.
#[tokio::test(flavor = "multi_thread")]
async fn listing_the_groups_of_a_stream_without_any_is_not_found() {
    let (_node, client) = start_in_memory().await;
    let result = client
        .list_persistent_subscriptions_for_stream(
            "no-groups-here",
            &ListPersistentSubscriptionsOptions::default(),
        )
        .await;
    assert!(
        matches!(result, Err(kurrentdb::Error::ResourceNotFound)),
        "{result:?}"
    );
    // Listing every group of a node with none is an empty list, not an error.
    let all = client
        .list_all_persistent_subscriptions(&ListPersistentSubscriptionsOptions::default())
        .await
        .expect("listing all groups");
    assert!(all.is_empty());
}

/// `/ping` answered `{"text": ...}` only; EventStoreDB's body has `msgTypeId` too.
#[tokio::test(flavor = "multi_thread")]
async fn ping_answers_eventstoredbs_body() {
    let (node, _client) = start_in_memory().await;
    let body: serde_json::Value = reqwest::get(format!("{}/ping", node.http_url()))
        .await
        .expect("GET /ping")
        .json()
        .await
        .expect("a JSON body");
    assert_eq!(body["text"], "Ping request successfully handled");
    assert!(body["msgTypeId"].is_u64(), "{body}");
}

/// Every persistent-subscription call to a follower answers "not leader" with the leader's
/// address, and "list" must too (the issue saw it answer otherwise): the official client,
/// pointed at a follower, gets NotLeaderException naming the leader for both lists.
#[tokio::test(flavor = "multi_thread")]
async fn a_follower_answers_list_with_not_leader() {
    use stele_testkit::{ClusterOptions, TestCluster};
    let cluster = TestCluster::start(ClusterOptions::new(STELE)).await;
    let leader = cluster
        .wait_for_leader(&[], std::time::Duration::from_secs(30))
        .await;
    let follower = cluster.voters().find(|&k| k != leader).expect("a follower");
    let leader_port = cluster.node(leader).http_port();
    let client = stele_testkit::client::connect(&cluster.node_leader_connection_string(follower))
        .expect("a client");
    let all = client
        .list_all_persistent_subscriptions(&ListPersistentSubscriptionsOptions::default())
        .await;
    match all {
        Err(kurrentdb::Error::NotLeaderException(endpoint)) => {
            assert_eq!(endpoint.port, leader_port as u32, "{endpoint:?}")
        }
        other => panic!("listing all groups on a follower: {other:?}"),
    }
    let client = stele_testkit::client::connect(&cluster.node_leader_connection_string(follower))
        .expect("a client");
    let of_stream = client
        .list_persistent_subscriptions_for_stream(
            "s",
            &ListPersistentSubscriptionsOptions::default(),
        )
        .await;
    assert!(
        matches!(of_stream, Err(kurrentdb::Error::NotLeaderException(_))),
        "listing a stream's groups on a follower: {of_stream:?}"
    );
}

/// Invalid JSON in `$$stream` metadata: EventStoreDB's write path does not look inside
/// `$metadata` events, and its index reader parses them with `TryFromJsonBytes`, giving
/// the empty metadata for data it cannot read. So the append is accepted and the stream
/// reads as if it had no metadata, while valid metadata before and after is honoured.
#[tokio::test(flavor = "multi_thread")]
async fn invalid_json_in_stream_metadata_is_accepted_and_ignored_as_eventstoredb_does() {
    use kurrentdb::{EventData, ReadStreamOptions, StreamMetadata};
    let (_node, client) = start_in_memory().await;
    for n in 0..3 {
        client
            .append_to_stream(
                "meta-bad",
                &AppendToStreamOptions::default(),
                json_event("e", n),
            )
            .await
            .expect("append");
    }
    let visible = |client: kurrentdb::Client| async move {
        read_stream(&client, "meta-bad", &ReadStreamOptions::default())
            .await
            .expect("reading the stream")
            .len()
    };
    client
        .set_stream_metadata(
            "meta-bad",
            &AppendToStreamOptions::default(),
            &StreamMetadata::builder().max_count(1).build(),
        )
        .await
        .expect("valid metadata");
    assert_eq!(visible(client.clone()).await, 1, "$maxCount 1 is honoured");

    client
        .append_to_stream(
            "$$meta-bad",
            &AppendToStreamOptions::default(),
            EventData::binary("$metadata", bytes::Bytes::from_static(b"{not json")),
        )
        .await
        .expect("EventStoreDB accepts metadata it cannot parse");
    assert_eq!(
        visible(client.clone()).await,
        3,
        "unreadable metadata is no metadata"
    );
}
