//! Persistent subscriptions through the official Rust client (PROTOCOL.md §6, §7): managing
//! groups on a stream and on `$all` (create, info, list, update, delete and their errors);
//! delivery from the start with the confirmation id, history then live events; nack Retry,
//! Park, Skip and Stop, message timeouts, parking after `max_retry_count`, the parked stream
//! and its replay; the consumer strategies and `max_subscriber_count`; consumers staying
//! connected while writers keep the leader busy; filtered `$all` groups with resolved links;
//! checkpoints across a SIGKILL, definitions across restarts, and a group moving to the new
//! leader of a cluster. Requests the Rust client cannot make (a `PinnedByCorrelation` group,
//! a call to a follower with its raw answer) go through raw gRPC with messages declared here.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use futures::future::select_all;
use kurrentdb::{
    AppendToStreamOptions, Client, DeletePersistentSubscriptionOptions, Error, EventData,
    GetPersistentSubscriptionInfoOptions, ListPersistentSubscriptionsOptions, NakAction,
    PersistentSubscription, PersistentSubscriptionEvent, PersistentSubscriptionInfo,
    PersistentSubscriptionOptions, PersistentSubscriptionToAllOptions, ReadStreamOptions,
    ReplayParkedMessagesOptions, ResolvedEvent, RestartPersistentSubscriptionSubsystem,
    StreamPosition, SubscribeToPersistentSubscriptionOptions, SubscriptionFilter,
    SystemConsumerStrategy,
};
use stele_testkit::{ClusterOptions, TestCluster, TestNode};
use tonic::transport::Channel;
use tonic::Code;
use uuid::Uuid;

/// How long a test waits for one message, or for a condition to hold.
const WAIT: Duration = Duration::from_secs(20);
/// How long an election may take on a slow, shared machine.
const ELECTION: Duration = Duration::from_secs(30);
/// How long "nothing more arrives" is watched for. Only used where no event can mark the end.
const QUIET: Duration = Duration::from_millis(700);

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Polls `check` until it returns `Ok` or `timeout` passes; panics with the last error.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(e) if Instant::now() >= deadline => panic!("{what}: not within {timeout:?}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// One message delivered to a consumer.
#[derive(Debug)]
struct Delivered {
    event: ResolvedEvent,
    retry_count: usize,
}

impl Delivered {
    /// The event (the link's target when resolved).
    fn target(&self) -> &kurrentdb::RecordedEvent {
        self.event
            .event
            .as_ref()
            .expect("a delivered message has an event")
    }

    fn revision(&self) -> u64 {
        self.target().revision
    }

    fn stream(&self) -> &str {
        self.target().stream_id()
    }
}

/// The next message of `sub` (its confirmation skipped), or a panic after [`WAIT`].
async fn next_delivery(sub: &mut PersistentSubscription) -> Delivered {
    loop {
        let message = tokio::time::timeout(WAIT, sub.next_subscription_event())
            .await
            .expect("a persistent subscription message in time")
            .expect("the persistent subscription goes on");
        match message {
            PersistentSubscriptionEvent::EventAppeared { event, retry_count } => {
                return Delivered { event, retry_count }
            }
            PersistentSubscriptionEvent::Confirmed(_) => continue,
        }
    }
}

/// Connects a consumer and returns it with its confirmation id (the first message).
async fn connect_consumer(
    client: &Client,
    stream: Option<&str>,
    group: &str,
    buffer_size: usize,
) -> kurrentdb::Result<(PersistentSubscription, String)> {
    let options = SubscribeToPersistentSubscriptionOptions::default().buffer_size(buffer_size);
    let mut sub = match stream {
        Some(stream) => {
            client
                .subscribe_to_persistent_subscription(stream, group, &options)
                .await?
        }
        None => {
            client
                .subscribe_to_persistent_subscription_to_all(group, &options)
                .await?
        }
    };
    let first = tokio::time::timeout(WAIT, sub.next_subscription_event())
        .await
        .map_err(|_| Error::DeadlineExceeded)??;
    match first {
        PersistentSubscriptionEvent::Confirmed(id) => Ok((sub, id)),
        other => panic!("expected the confirmation first, got {other:?}"),
    }
}

/// [`connect_consumer`] to a stream group, asserting the confirmation id.
async fn consumer(
    client: &Client,
    stream: &str,
    group: &str,
    buffer_size: usize,
) -> PersistentSubscription {
    let (sub, id) = connect_consumer(client, Some(stream), group, buffer_size)
        .await
        .unwrap_or_else(|e| panic!("subscribing to {stream}::{group}: {e:?}"));
    assert_eq!(id, format!("{stream}::{group}"), "the confirmation id");
    sub
}

/// [`connect_consumer`] to a `$all` group, asserting the confirmation id.
async fn all_consumer(client: &Client, group: &str, buffer_size: usize) -> PersistentSubscription {
    let (sub, id) = connect_consumer(client, None, group, buffer_size)
        .await
        .unwrap_or_else(|e| panic!("subscribing to $all::{group}: {e:?}"));
    assert_eq!(id, format!("$all::{group}"), "the confirmation id");
    sub
}

/// Subscribes until the server accepts: a group is started on the leader a moment after the
/// node becomes leader (after a restart or a failover).
async fn consumer_eventually(
    connection_string: &str,
    stream: &str,
    group: &str,
    buffer_size: usize,
) -> (Client, PersistentSubscription) {
    eventually(
        &format!("subscribing to {stream}::{group}"),
        ELECTION,
        || async {
            // A fresh client each time: kurrentdb 1.2 keeps using a node that failed a call.
            let client = stele_testkit::client::connect(connection_string)?;
            let (sub, id) = connect_consumer(&client, Some(stream), group, buffer_size)
                .await
                .map_err(|e| format!("{e:?}"))?;
            assert_eq!(id, format!("{stream}::{group}"));
            Ok((client, sub))
        },
    )
    .await
}

/// The next `total` messages over all of `subs`, by consumer; acknowledged if `ack`.
async fn collect_from(
    subs: &mut [PersistentSubscription],
    total: usize,
    ack: bool,
) -> Vec<Vec<Delivered>> {
    let mut got: Vec<Vec<Delivered>> = subs.iter().map(|_| Vec::new()).collect();
    let mut count = 0;
    while count < total {
        let (message, index) = {
            let nexts = subs
                .iter_mut()
                .map(|s| Box::pin(s.next_subscription_event()));
            let (message, index, _) = tokio::time::timeout(WAIT, select_all(nexts))
                .await
                .unwrap_or_else(|_| panic!("{count} of {total} messages arrived in time: {got:?}"));
            (message, index)
        };
        match message.expect("the persistent subscription goes on") {
            PersistentSubscriptionEvent::EventAppeared { event, retry_count } => {
                if ack {
                    subs[index].ack(&event).await.expect("acknowledging");
                }
                got[index].push(Delivered { event, retry_count });
                count += 1;
            }
            PersistentSubscriptionEvent::Confirmed(_) => {}
        }
    }
    got
}

/// Asserts that none of `subs` receives anything for [`QUIET`].
async fn assert_quiet(subs: &mut [PersistentSubscription]) {
    let nexts = subs
        .iter_mut()
        .map(|s| Box::pin(s.next_subscription_event()));
    if let Ok((message, index, _)) = tokio::time::timeout(QUIET, select_all(nexts)).await {
        panic!("expected nothing more, consumer {index} got {message:?}");
    }
}

/// Waits for `sub` to end (the server dropped the consumer): the call's error. Messages sent
/// before the drop and not read yet are skipped. A stream that ends without a status makes
/// kurrentdb 1.2 panic (`unreachable!`), so the wait runs in its own task and reports that.
async fn wait_dropped(mut sub: PersistentSubscription) -> Result<Error, String> {
    let task = tokio::spawn(async move {
        loop {
            if let Err(e) = sub.next_subscription_event().await {
                return Ok(e);
            }
        }
    });
    match tokio::time::timeout(WAIT, task).await {
        Err(_) => Err("the consumer was not dropped in time".to_owned()),
        Ok(Err(join)) => Err(format!(
            "the call ended without an error status (the client panicked: {join})"
        )),
        Ok(Ok(result)) => result,
    }
}

/// Appends `events` to `stream` in one append.
async fn append(client: &Client, stream: &str, events: Vec<EventData>) {
    client
        .append_to_stream(stream, &AppendToStreamOptions::default(), events)
        .await
        .unwrap_or_else(|e| panic!("appending to {stream}: {e:?}"));
}

/// `count` JSON events numbered `from..from + count`.
fn numbered(from: u64, count: u64) -> Vec<EventData> {
    (from..from + count)
        .map(|n| json_event("counted", n))
        .collect()
}

/// A link (`$>`) to `revision@stream`.
fn link_to(stream: &str, revision: u64) -> EventData {
    EventData::binary("$>", Bytes::from(format!("{revision}@{stream}")))
}

/// Appends `count` small events to `stream` through raw gRPC (the official client waits out
/// a delayed ACK on each call; bulk and interleaved writers use tonic's channel instead).
async fn raw_append(channel: &Channel, stream: &str, count: usize, data: &Bytes) {
    use stele_proto::streams::append_req::options::ExpectedStreamRevision;
    let mut messages = vec![wire::append_options(
        stream,
        ExpectedStreamRevision::Any(wire::empty()),
    )];
    for _ in 0..count {
        messages.push(wire::append_event(
            wire::uuid_string(Uuid::new_v4()),
            "bulk",
            data.clone(),
        ));
    }
    wire::append(channel, messages).await.expect("appending");
}

fn stream_group_name(stream: &str, group: &str, suffix: &str) -> String {
    format!("$persistentsubscription-{stream}::{group}-{suffix}")
}

/// The ids of the events the parked stream of `stream::group` links to (resolved).
async fn parked_ids(client: &Client, stream: &str, group: &str) -> Result<Vec<Uuid>, String> {
    let parked = stream_group_name(stream, group, "parked");
    let mut read = match client
        .read_stream(
            parked.as_str(),
            &ReadStreamOptions::default().resolve_link_tos(),
        )
        .await
    {
        Ok(read) => read,
        Err(e) => return Err(format!("reading {parked}: {e:?}")),
    };
    let mut ids = Vec::new();
    loop {
        match read.next().await {
            Ok(Some(resolved)) => {
                let link = resolved.link.as_ref().map(|l| l.event_type.clone());
                let target = resolved.event.as_ref().map(|e| e.id);
                match (link.as_deref(), target) {
                    (Some("$>"), Some(id)) => ids.push(id),
                    other => return Err(format!("not a resolved link in {parked}: {other:?}")),
                }
            }
            Ok(None) => return Ok(ids),
            // Nothing parked yet.
            Err(Error::ResourceNotFound) => return Ok(ids),
            Err(e) => return Err(format!("reading {parked}: {e:?}")),
        }
    }
}

/// The last checkpoint of `stream::group` as written in its checkpoint stream: the JSON
/// string of a revision. `None` while there is none.
async fn last_checkpoint(
    client: &Client,
    stream: &str,
    group: &str,
) -> Result<Option<u64>, String> {
    let checkpoints = stream_group_name(stream, group, "checkpoint");
    let options = ReadStreamOptions::default()
        .position(StreamPosition::End)
        .backwards()
        .max_count(1);
    let events = match read_stream(client, checkpoints.as_str(), &options).await {
        Ok(events) => events,
        Err(Error::ResourceNotFound) => return Ok(None),
        Err(e) => return Err(format!("reading {checkpoints}: {e:?}")),
    };
    let Some(last) = events.first() else {
        return Ok(None);
    };
    assert_eq!(last.event_type, "$SubscriptionCheckpoint", "{last:?}");
    let text: String = serde_json::from_slice(&last.data).unwrap_or_else(|e| {
        panic!(
            "a checkpoint is a JSON string ({e}): {:?}",
            String::from_utf8_lossy(&last.data)
        )
    });
    Ok(Some(text.parse().unwrap_or_else(|e| {
        panic!("a stream checkpoint is a revision ({e}): {text:?}")
    })))
}

async fn info(client: &Client, stream: &str, group: &str) -> PersistentSubscriptionInfo<u64> {
    client
        .get_persistent_subscription_info(
            stream,
            group,
            &GetPersistentSubscriptionInfoOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("info of {stream}::{group}: {e:?}"))
}

/// `(event_source, group_name)` of every group, sorted.
async fn list_all(client: &Client) -> kurrentdb::Result<Vec<(String, String)>> {
    let mut groups: Vec<(String, String)> = client
        .list_all_persistent_subscriptions(&ListPersistentSubscriptionsOptions::default())
        .await?
        .into_iter()
        .map(|i| (i.event_source, i.group_name))
        .collect();
    groups.sort();
    Ok(groups)
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = items
        .iter()
        .map(|(s, g)| (s.to_string(), g.to_string()))
        .collect();
    v.sort();
    v
}

/// Settings for a group from the start that checkpoints after every acknowledgement.
fn from_start_checkpointing_often() -> PersistentSubscriptionOptions {
    PersistentSubscriptionOptions::default()
        .start_from(StreamPosition::Start)
        .checkpoint_after(Duration::from_millis(100))
        .checkpoint_lower_bound(1)
        .checkpoint_upper_bound(1)
}

/// The "Maximum subscriptions reached" refusal, as the Rust client reports it.
fn is_maximum_subscribers_reached(error: &Error) -> bool {
    matches!(error, Error::Grpc { code: Code::FailedPrecondition, message }
        if message.starts_with("Maximum subscriptions reached"))
}

// ---------------------------------------------------------------------------------------
// Raw gRPC: messages of `persistent.proto` the Rust client cannot send as we need them.
// ---------------------------------------------------------------------------------------

mod raw {
    use stele_proto::shared::{Empty, StreamIdentifier};

    pub const CREATE: &str =
        "/event_store.client.persistent_subscriptions.PersistentSubscriptions/Create";
    pub const GET_INFO: &str =
        "/event_store.client.persistent_subscriptions.PersistentSubscriptions/GetInfo";

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CreateReq {
        #[prost(message, optional, tag = "1")]
        pub options: Option<CreateOptions>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CreateOptions {
        #[prost(string, tag = "2")]
        pub group_name: String,
        #[prost(message, optional, tag = "3")]
        pub settings: Option<Settings>,
        /// `stream_option.stream`.
        #[prost(message, optional, tag = "4")]
        pub stream: Option<StreamOptions>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StreamOptions {
        #[prost(message, optional, tag = "1")]
        pub stream_identifier: Option<StreamIdentifier>,
        /// `revision_option.start`.
        #[prost(message, optional, tag = "3")]
        pub start: Option<Empty>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Settings {
        #[prost(int32, tag = "5")]
        pub max_retry_count: i32,
        #[prost(int32, tag = "7")]
        pub min_checkpoint_count: i32,
        #[prost(int32, tag = "8")]
        pub max_checkpoint_count: i32,
        #[prost(int32, tag = "9")]
        pub max_subscriber_count: i32,
        #[prost(int32, tag = "10")]
        pub live_buffer_size: i32,
        #[prost(int32, tag = "11")]
        pub read_batch_size: i32,
        #[prost(int32, tag = "12")]
        pub history_buffer_size: i32,
        #[prost(int32, optional, tag = "14")]
        pub message_timeout_ms: Option<i32>,
        #[prost(int32, optional, tag = "15")]
        pub checkpoint_after_ms: Option<i32>,
        #[prost(string, tag = "16")]
        pub consumer_strategy: String,
    }

    impl Settings {
        /// EventStoreDB's defaults with `strategy`.
        pub fn with_strategy(strategy: &str) -> Settings {
            Settings {
                max_retry_count: 10,
                min_checkpoint_count: 10,
                max_checkpoint_count: 1000,
                max_subscriber_count: 0,
                live_buffer_size: 500,
                read_batch_size: 20,
                history_buffer_size: 500,
                message_timeout_ms: Some(30_000),
                checkpoint_after_ms: Some(2_000),
                consumer_strategy: strategy.to_owned(),
            }
        }
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GetInfoReq {
        #[prost(message, optional, tag = "1")]
        pub options: Option<GetInfoOptions>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GetInfoOptions {
        /// `stream_option.stream_identifier`.
        #[prost(message, optional, tag = "1")]
        pub stream_identifier: Option<StreamIdentifier>,
        #[prost(string, tag = "3")]
        pub group_name: String,
    }
}

/// Sends `message` as a raw body on the unary method `path`, with `headers`.
async fn raw_unary(
    channel: &Channel,
    path: &'static str,
    message: impl prost::Message,
    headers: &[(&'static str, &str)],
) -> Result<Bytes, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut request = tonic::Request::new(Bytes::from(message.encode_to_vec()));
    for (key, value) in headers {
        request
            .metadata_mut()
            .insert(*key, value.parse().expect("a header value"));
    }
    grpc.unary(
        request,
        tonic::codegen::http::uri::PathAndQuery::from_static(path),
        wire::RawCodec,
    )
    .await
    .map(|r| r.into_inner())
}

/// Creates a group from the start of `stream` with `consumer_strategy` sent as a string, as
/// the Python client does (the Rust client refuses `PinnedByCorrelation`).
async fn raw_create_from_start(node: &TestNode, stream: &str, group: &str, strategy: &str) {
    let channel = wire::channel(node).await;
    let request = raw::CreateReq {
        options: Some(raw::CreateOptions {
            group_name: group.to_owned(),
            settings: Some(raw::Settings::with_strategy(strategy)),
            stream: Some(raw::StreamOptions {
                stream_identifier: wire::stream_id(stream),
                start: Some(wire::empty()),
            }),
        }),
    };
    raw_unary(&channel, raw::CREATE, request, &[])
        .await
        .unwrap_or_else(|e| panic!("creating {stream}::{group} ({strategy}): {e:?}"));
}

// ---------------------------------------------------------------------------------------
// Management
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn create_info_list_update_and_delete_stream_and_all_groups() {
    let (_node, client) = start_in_memory().await;
    append(&client, "mgmt", numbered(0, 3)).await;

    // A stream group with every setting away from its default.
    let options = PersistentSubscriptionOptions::default()
        .start_from(StreamPosition::Position(2))
        .resolve_link_tos(true)
        .extra_statistics(true)
        .message_timeout(Duration::from_millis(15_000))
        .max_retry_count(7)
        .live_buffer_size(123)
        .read_batch_size(17)
        .history_buffer_size(234)
        .checkpoint_after(Duration::from_millis(3_000))
        .checkpoint_lower_bound(5)
        .checkpoint_upper_bound(50)
        .max_subscriber_count(3)
        .consumer_strategy_name(SystemConsumerStrategy::DispatchToSingle);
    client
        .create_persistent_subscription("mgmt", "g1", &options)
        .await
        .expect("creating mgmt::g1");
    let created = info(&client, "mgmt", "g1").await;
    assert_eq!(created.event_source, "mgmt");
    assert_eq!(created.group_name, "g1");
    let s = created.settings.expect("info carries the settings");
    assert_eq!(s.start_from, StreamPosition::Position(2));
    assert!(s.resolve_link_tos);
    assert!(s.extra_statistics);
    assert_eq!(s.message_timeout, Duration::from_millis(15_000));
    assert_eq!(s.max_retry_count, 7);
    assert_eq!(s.live_buffer_size, 123);
    assert_eq!(s.read_batch_size, 17);
    assert_eq!(s.history_buffer_size, 234);
    assert_eq!(s.checkpoint_after, Duration::from_millis(3_000));
    assert_eq!(s.checkpoint_lower_bound, 5);
    assert_eq!(s.checkpoint_upper_bound, 50);
    assert_eq!(s.max_subscriber_count, 3);
    assert_eq!(
        s.consumer_strategy_name,
        SystemConsumerStrategy::DispatchToSingle
    );

    let again = client
        .create_persistent_subscription("mgmt", "g1", &options)
        .await;
    assert!(
        matches!(again, Err(Error::ResourceAlreadyExists)),
        "creating a group twice: {again:?}"
    );
    // The same group name on another stream is another group.
    client
        .create_persistent_subscription(
            "mgmt-other",
            "g1",
            &PersistentSubscriptionOptions::default(),
        )
        .await
        .expect("creating mgmt-other::g1");

    // A `$all` group with a filter, from a position.
    let all_options = PersistentSubscriptionToAllOptions::default()
        .start_from(StreamPosition::Start)
        .filter(SubscriptionFilter::on_stream_name().add_prefix("mgmt"))
        .max_retry_count(4)
        .checkpoint_lower_bound(2)
        .checkpoint_upper_bound(20)
        .consumer_strategy_name(SystemConsumerStrategy::Pinned);
    client
        .create_persistent_subscription_to_all("g-all", &all_options)
        .await
        .expect("creating $all::g-all");
    let all_info = client
        .get_persistent_subscription_info_to_all(
            "g-all",
            &GetPersistentSubscriptionInfoOptions::default(),
        )
        .await
        .expect("info of $all::g-all");
    assert_eq!(all_info.event_source, "$all");
    assert_eq!(all_info.group_name, "g-all");
    let s = all_info.settings.expect("info carries the settings");
    assert_eq!(s.start_from, StreamPosition::Start);
    assert_eq!(s.max_retry_count, 4);
    assert_eq!(s.checkpoint_lower_bound, 2);
    assert_eq!(s.checkpoint_upper_bound, 20);
    assert_eq!(s.consumer_strategy_name, SystemConsumerStrategy::Pinned);
    let again = client
        .create_persistent_subscription_to_all("g-all", &all_options)
        .await;
    assert!(
        matches!(again, Err(Error::ResourceAlreadyExists)),
        "creating a $all group twice: {again:?}"
    );

    // Lists: everything, one stream, `$all`.
    assert_eq!(
        list_all(&client).await.expect("listing all groups"),
        pairs(&[("mgmt", "g1"), ("mgmt-other", "g1"), ("$all", "g-all")])
    );
    let for_stream = client
        .list_persistent_subscriptions_for_stream("mgmt", &Default::default())
        .await
        .expect("listing the groups of mgmt");
    assert_eq!(
        for_stream
            .iter()
            .map(|i| (i.event_source.as_str(), i.group_name.as_str()))
            .collect::<Vec<_>>(),
        [("mgmt", "g1")]
    );
    assert_eq!(
        for_stream[0].settings.as_ref().map(|s| s.max_retry_count),
        Some(7)
    );
    let to_all = client
        .list_persistent_subscriptions_to_all(&Default::default())
        .await
        .expect("listing the $all groups");
    assert_eq!(
        to_all
            .iter()
            .map(|i| (i.event_source.as_str(), i.group_name.as_str()))
            .collect::<Vec<_>>(),
        [("$all", "g-all")]
    );

    // Update: the new settings show.
    let updated = options
        .clone()
        .start_from(StreamPosition::Start)
        .max_retry_count(3)
        .message_timeout(Duration::from_millis(5_000))
        .consumer_strategy_name(SystemConsumerStrategy::RoundRobin);
    client
        .update_persistent_subscription("mgmt", "g1", &updated)
        .await
        .expect("updating mgmt::g1");
    let s = info(&client, "mgmt", "g1")
        .await
        .settings
        .expect("settings");
    assert_eq!(s.start_from, StreamPosition::Start);
    assert_eq!(s.max_retry_count, 3);
    assert_eq!(s.message_timeout, Duration::from_millis(5_000));
    assert_eq!(s.consumer_strategy_name, SystemConsumerStrategy::RoundRobin);
    assert_eq!(s.live_buffer_size, 123, "settings not changed stay");
    client
        .update_persistent_subscription_to_all(
            "g-all",
            &all_options
                .clone()
                .max_retry_count(9)
                .consumer_strategy_name(SystemConsumerStrategy::DispatchToSingle),
        )
        .await
        .expect("updating $all::g-all");
    let s = client
        .get_persistent_subscription_info_to_all("g-all", &Default::default())
        .await
        .expect("info of $all::g-all")
        .settings
        .expect("settings");
    assert_eq!(s.max_retry_count, 9);
    assert_eq!(
        s.consumer_strategy_name,
        SystemConsumerStrategy::DispatchToSingle
    );
    let missing = client
        .update_persistent_subscription("mgmt", "nope", &updated)
        .await;
    assert!(
        matches!(missing, Err(Error::ResourceNotFound)),
        "updating a group that does not exist: {missing:?}"
    );

    // Delete: gone from info and lists; deleting again is NotFound.
    let delete = DeletePersistentSubscriptionOptions::default();
    client
        .delete_persistent_subscription("mgmt", "g1", &delete)
        .await
        .expect("deleting mgmt::g1");
    client
        .delete_persistent_subscription_to_all("g-all", &delete)
        .await
        .expect("deleting $all::g-all");
    let gone = client
        .get_persistent_subscription_info("mgmt", "g1", &Default::default())
        .await;
    assert!(
        matches!(gone, Err(Error::ResourceNotFound)),
        "info of a deleted group: {gone:?}"
    );
    let gone = client
        .get_persistent_subscription_info_to_all("g-all", &Default::default())
        .await;
    assert!(
        matches!(gone, Err(Error::ResourceNotFound)),
        "info of a deleted $all group: {gone:?}"
    );
    let again = client
        .delete_persistent_subscription("mgmt", "g1", &delete)
        .await;
    assert!(
        matches!(again, Err(Error::ResourceNotFound)),
        "deleting a deleted group: {again:?}"
    );
    assert_eq!(
        list_all(&client).await.expect("listing all groups"),
        pairs(&[("mgmt-other", "g1")])
    );
    // EventStoreDB answers NotFound for a stream without groups; an empty list is as good.
    match client
        .list_persistent_subscriptions_for_stream("mgmt", &Default::default())
        .await
    {
        Ok(list) => assert!(list.is_empty(), "{list:?}"),
        Err(Error::ResourceNotFound) => {}
        Err(e) => panic!("listing a stream without groups: {e:?}"),
    }
    // Subscribing to a deleted group fails with NotFound.
    let refused = connect_consumer(&client, Some("mgmt"), "g1", 10).await;
    assert!(
        matches!(refused, Err(Error::ResourceNotFound)),
        "subscribing to a deleted group: {:?}",
        refused.map(|(_, id)| id)
    );
    // A deleted group can be created again.
    client
        .create_persistent_subscription("mgmt", "g1", &options)
        .await
        .expect("creating mgmt::g1 again");
}

// ---------------------------------------------------------------------------------------
// Delivery
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_group_from_the_start_delivers_every_event_once_then_live_events() {
    let (_node, client) = start_in_memory().await;
    append(&client, "orders", numbered(0, 10)).await;
    append(&client, "unrelated", numbered(0, 3)).await;
    client
        .create_persistent_subscription("orders", "billing", &from_start_checkpointing_often())
        .await
        .expect("creating the group");

    let mut sub = consumer(&client, "orders", "billing", 10).await;
    let mut history = Vec::new();
    for _ in 0..10 {
        let d = next_delivery(&mut sub).await;
        assert_eq!(d.retry_count, 0, "{d:?}");
        assert_eq!(d.stream(), "orders");
        assert!(d.event.link.is_none());
        history.push((d.revision(), body_n(d.target())));
        sub.ack(&d.event).await.expect("acknowledging");
    }
    assert_eq!(
        history,
        (0..10).map(|n| (n, n)).collect::<Vec<_>>(),
        "history in order, once each"
    );

    append(&client, "orders", numbered(10, 3)).await;
    append(&client, "unrelated", numbered(3, 1)).await;
    let mut live = Vec::new();
    for _ in 0..3 {
        let d = next_delivery(&mut sub).await;
        assert_eq!(d.retry_count, 0, "{d:?}");
        live.push(d.revision());
        sub.ack(&d.event).await.expect("acknowledging");
    }
    assert_eq!(live, [10, 11, 12], "live events after the history");

    // Every acknowledgement counted: the checkpoint reaches the last event, in the checkpoint
    // stream and in the info; nothing is redelivered.
    eventually("the checkpoint reaches revision 12", WAIT, || async {
        match last_checkpoint(&client, "orders", "billing").await? {
            Some(12) => Ok(()),
            other => Err(format!("last checkpoint {other:?}")),
        }
    })
    .await;
    let stats = info(&client, "orders", "billing").await.stats;
    assert_eq!(
        stats.last_checkpointed_event_revision,
        Some(12),
        "{stats:?}"
    );
    assert_eq!(stats.last_known_event_revision, Some(12), "{stats:?}");
    assert_quiet(std::slice::from_mut(&mut sub)).await;

    // A consumer joining later gets only what comes next.
    drop(sub);
    let mut later = consumer(&client, "orders", "billing", 10).await;
    append(&client, "orders", numbered(13, 1)).await;
    let d = next_delivery(&mut later).await;
    assert_eq!((d.revision(), d.retry_count), (13, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn nack_retry_park_skip_then_replay_parked_messages() {
    let (_node, client) = start_in_memory().await;
    append(&client, "nacks", numbered(0, 5)).await;
    client
        .create_persistent_subscription(
            "nacks",
            "g",
            &PersistentSubscriptionOptions::default().start_from(StreamPosition::Start),
        )
        .await
        .expect("creating the group");
    let mut sub = consumer(&client, "nacks", "g", 10).await;

    // e0: Retry, then ack; e1: Park; e2: Skip; e3, e4: ack.
    let mut seen: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    let mut ids: HashMap<u64, Uuid> = HashMap::new();
    let done = |seen: &BTreeMap<u64, Vec<usize>>| {
        seen.get(&0).map_or(0, Vec::len) == 2 && (1..5).all(|r| seen.contains_key(&r))
    };
    while !done(&seen) {
        let d = next_delivery(&mut sub).await;
        let r = d.revision();
        ids.insert(r, d.target().id);
        let times = {
            let times = seen.entry(r).or_default();
            times.push(d.retry_count);
            times.len()
        };
        let answered = match (r, times) {
            (0, 1) => sub.nack(&d.event, NakAction::Retry, "try again").await,
            (1, 1) => sub.nack(&d.event, NakAction::Park, "poison").await,
            (2, 1) => sub.nack(&d.event, NakAction::Skip, "not mine").await,
            (_, 1) | (0, 2) => sub.ack(&d.event).await,
            _ => panic!("revision {r} delivered again: {seen:?}"),
        };
        answered.expect("answering");
    }
    assert_eq!(
        seen,
        BTreeMap::from([
            (0, vec![0, 1]),
            (1, vec![0]),
            (2, vec![0]),
            (3, vec![0]),
            (4, vec![0]),
        ]),
        "a retried message comes again with its retry count one higher; the others once"
    );
    // Parked and skipped messages are not delivered again.
    assert_quiet(std::slice::from_mut(&mut sub)).await;

    // The parked message is a link in the parked stream, and counted in the info.
    let parked = eventually("e1 in the parked stream", WAIT, || async {
        let parked = parked_ids(&client, "nacks", "g").await?;
        if parked.is_empty() {
            Err("nothing parked yet".to_owned())
        } else {
            Ok(parked)
        }
    })
    .await;
    assert_eq!(parked, [ids[&1]], "only e1 is parked");
    eventually("the info counts one parked message", WAIT, || async {
        let stats = info(&client, "nacks", "g").await.stats;
        match stats.parked_message_count {
            1 => Ok(()),
            n => Err(format!("parked_message_count {n}")),
        }
    })
    .await;

    // Replaying sends it again, once; afterwards nothing is left parked.
    client
        .replay_parked_messages("nacks", "g", &ReplayParkedMessagesOptions::default())
        .await
        .expect("replaying parked messages");
    let d = next_delivery(&mut sub).await;
    assert_eq!(d.revision(), 1, "the parked message comes again: {d:?}");
    assert_eq!(d.target().id, ids[&1]);
    sub.ack(&d.event).await.expect("acknowledging");
    eventually("the info counts no parked message", WAIT, || async {
        let stats = info(&client, "nacks", "g").await.stats;
        match stats.parked_message_count {
            0 => Ok(()),
            n => Err(format!("parked_message_count {n}")),
        }
    })
    .await;
    assert_quiet(std::slice::from_mut(&mut sub)).await;

    // The group goes on with live events.
    append(&client, "nacks", numbered(5, 1)).await;
    let d = next_delivery(&mut sub).await;
    assert_eq!((d.revision(), d.retry_count), (5, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn nack_stop_drops_the_consumer_and_its_message_goes_to_another() {
    let (_node, client) = start_in_memory().await;
    append(&client, "stops", numbered(0, 2)).await;
    client
        .create_persistent_subscription(
            "stops",
            "g",
            &PersistentSubscriptionOptions::default()
                .start_from(StreamPosition::End)
                .consumer_strategy_name(SystemConsumerStrategy::DispatchToSingle),
        )
        .await
        .expect("creating the group");
    let mut first = consumer(&client, "stops", "g", 10).await;
    let mut second = consumer(&client, "stops", "g", 10).await;

    // From the end: only the new event, to the first consumer (DispatchToSingle).
    append(&client, "stops", numbered(2, 1)).await;
    let d = next_delivery(&mut first).await;
    assert_eq!((d.revision(), d.retry_count), (2, 0));
    first
        .nack(&d.event, NakAction::Stop, "stopping")
        .await
        .expect("nack Stop");
    let dropped = wait_dropped(first).await;
    assert!(
        matches!(dropped, Ok(Error::IllegalStateError(_))),
        "the consumer that sent Stop is dropped with an error status: {dropped:?}"
    );

    let again = next_delivery(&mut second).await;
    assert_eq!(
        again.revision(),
        2,
        "the stopped consumer's message is retried"
    );
    assert_eq!(again.target().id, d.target().id);
    second.ack(&again.event).await.expect("acknowledging");
    assert_quiet(std::slice::from_mut(&mut second)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unacknowledged_messages_time_out_and_retried_ones_are_parked_after_max_retry_count() {
    let (_node, client) = start_in_memory().await;
    append(&client, "slow", numbered(0, 2)).await;
    client
        .create_persistent_subscription(
            "slow",
            "g",
            &PersistentSubscriptionOptions::default()
                .start_from(StreamPosition::Start)
                .message_timeout(Duration::from_millis(500))
                .max_retry_count(2),
        )
        .await
        .expect("creating the group");
    let mut sub = consumer(&client, "slow", "g", 10).await;

    // Revision 0 is never answered (it times out); revision 1 is always nacked with Retry.
    let mut seen: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    let mut ids = HashMap::new();
    let started = Instant::now();
    while seen.values().map(Vec::len).sum::<usize>() < 6 {
        let d = next_delivery(&mut sub).await;
        ids.insert(d.revision(), d.target().id);
        seen.entry(d.revision()).or_default().push(d.retry_count);
        if d.revision() == 1 {
            sub.nack(&d.event, NakAction::Retry, "again")
                .await
                .expect("nack Retry");
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(
        seen,
        BTreeMap::from([(0, vec![0, 1, 2]), (1, vec![0, 1, 2])]),
        "delivered with retry counts 0..=max_retry_count"
    );
    assert!(
        elapsed >= Duration::from_millis(900),
        "two timeouts of 500 ms passed before the third delivery ({elapsed:?})"
    );

    // The next timeout and the next Retry would pass max_retry_count: both are parked.
    let parked = eventually("both messages parked", WAIT, || async {
        let parked: BTreeSet<Uuid> = parked_ids(&client, "slow", "g")
            .await?
            .into_iter()
            .collect();
        if parked.len() == 2 {
            Ok(parked)
        } else {
            Err(format!("parked {parked:?}"))
        }
    })
    .await;
    assert_eq!(parked, BTreeSet::from([ids[&0], ids[&1]]));
    assert_eq!(
        info(&client, "slow", "g").await.stats.parked_message_count,
        2
    );
    assert_quiet(std::slice::from_mut(&mut sub)).await;
}

// ---------------------------------------------------------------------------------------
// Consumer strategies
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn round_robin_alternates_and_dispatch_to_single_fills_the_first_consumer() {
    let (_node, client) = start_in_memory().await;

    // RoundRobin: two consumers with room to spare share ten events five and five.
    client
        .create_persistent_subscription(
            "rr",
            "g",
            &PersistentSubscriptionOptions::default()
                .start_from(StreamPosition::Start)
                .consumer_strategy_name(SystemConsumerStrategy::RoundRobin),
        )
        .await
        .expect("creating rr::g");
    let mut subs = vec![
        consumer(&client, "rr", "g", 20).await,
        consumer(&client, "rr", "g", 20).await,
    ];
    append(&client, "rr", numbered(0, 10)).await;
    let got = collect_from(&mut subs, 10, true).await;
    let by_consumer: Vec<Vec<u64>> = got
        .iter()
        .map(|d| d.iter().map(Delivered::revision).collect())
        .collect();
    assert_eq!(
        by_consumer.iter().map(Vec::len).collect::<Vec<_>>(),
        [5, 5],
        "{by_consumer:?}"
    );
    let all: BTreeSet<u64> = by_consumer.iter().flatten().copied().collect();
    assert_eq!(all, (0..10).collect(), "each event once: {by_consumer:?}");
    assert_quiet(&mut subs).await;

    // DispatchToSingle: the first consumer until it is full (buffer 3), then the next
    // (buffer 2).
    client
        .create_persistent_subscription(
            "single",
            "g",
            &PersistentSubscriptionOptions::default()
                .start_from(StreamPosition::Start)
                .consumer_strategy_name(SystemConsumerStrategy::DispatchToSingle),
        )
        .await
        .expect("creating single::g");
    let mut subs = vec![
        consumer(&client, "single", "g", 3).await,
        consumer(&client, "single", "g", 2).await,
    ];
    append(&client, "single", numbered(0, 5)).await;
    let got = collect_from(&mut subs, 5, false).await;
    let by_consumer: Vec<Vec<u64>> = got
        .iter()
        .map(|d| d.iter().map(Delivered::revision).collect())
        .collect();
    assert_eq!(by_consumer, [vec![0, 1, 2], vec![3, 4]]);
    // Both full: the sixth waits until someone acknowledges.
    append(&client, "single", numbered(5, 1)).await;
    assert_quiet(&mut subs).await;
    for d in &got[1] {
        subs[1].ack(&d.event).await.expect("acknowledging");
    }
    let got = collect_from(&mut subs, 1, true).await;
    assert_eq!(
        got[1].iter().map(Delivered::revision).collect::<Vec<_>>(),
        [5]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pinned_keeps_each_stream_and_pinned_by_correlation_each_correlation_on_one_consumer() {
    let (node, client) = start_in_memory().await;
    const STREAMS: usize = 16;
    const ROUNDS: usize = 3;

    // Pinned, on `$all` filtered by stream prefix: events of one stream to one consumer.
    client
        .create_persistent_subscription_to_all(
            "pinned",
            &PersistentSubscriptionToAllOptions::default()
                .start_from(StreamPosition::Start)
                .filter(SubscriptionFilter::on_stream_name().add_prefix("pin-"))
                .consumer_strategy_name(SystemConsumerStrategy::Pinned),
        )
        .await
        .expect("creating $all::pinned");
    let mut subs = vec![
        all_consumer(&client, "pinned", 100).await,
        all_consumer(&client, "pinned", 100).await,
    ];
    let channel = wire::channel(&node).await;
    let data = Bytes::from_static(b"{}");
    for _ in 0..ROUNDS {
        for s in 0..STREAMS {
            raw_append(&channel, &format!("pin-{s}"), 1, &data).await;
        }
    }
    let got = collect_from(&mut subs, STREAMS * ROUNDS, true).await;
    let mut owner: HashMap<String, usize> = HashMap::new();
    for (k, deliveries) in got.iter().enumerate() {
        let mut last_revision: HashMap<&str, u64> = HashMap::new();
        for d in deliveries {
            assert!(d.stream().starts_with("pin-"), "filtered: {d:?}");
            let previous = owner.insert(d.stream().to_owned(), k);
            assert!(
                previous.is_none_or(|p| p == k),
                "{} went to consumers {previous:?} and {k}",
                d.stream()
            );
            if let Some(r) = last_revision.insert(d.stream(), d.revision()) {
                assert!(r < d.revision(), "in order within a stream: {deliveries:?}");
            }
        }
    }
    assert_eq!(owner.len(), STREAMS);
    assert!(
        got.iter().all(|d| !d.is_empty()),
        "both consumers get streams: {:?}",
        got.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert_quiet(&mut subs).await;

    // PinnedByCorrelation: events with one `$correlationId` (metadata) to one consumer.
    raw_create_from_start(&node, "corr", "g", "PinnedByCorrelation").await;
    let info = info(&client, "corr", "g").await;
    assert_eq!(
        info.settings.map(|s| s.consumer_strategy_name),
        Some(SystemConsumerStrategy::PinnedByCorrelation)
    );
    let mut subs = vec![
        consumer(&client, "corr", "g", 100).await,
        consumer(&client, "corr", "g", 100).await,
    ];
    let mut events = Vec::new();
    for n in 0..(STREAMS * ROUNDS) as u64 {
        events.push(
            json_event("correlated", n)
                .metadata_as_json(&serde_json::json!({
                    "$correlationId": format!("c-{}", n % STREAMS as u64)
                }))
                .expect("metadata"),
        );
    }
    append(&client, "corr", events).await;
    let got = collect_from(&mut subs, STREAMS * ROUNDS, true).await;
    let mut owner: HashMap<u64, usize> = HashMap::new();
    for (k, deliveries) in got.iter().enumerate() {
        for d in deliveries {
            let correlation = body_n(d.target()) % STREAMS as u64;
            let previous = owner.insert(correlation, k);
            assert!(
                previous.is_none_or(|p| p == k),
                "correlation c-{correlation} went to consumers {previous:?} and {k}"
            );
        }
    }
    assert_eq!(owner.len(), STREAMS);
    assert!(
        got.iter().all(|d| !d.is_empty()),
        "both consumers get correlations: {:?}",
        got.iter().map(Vec::len).collect::<Vec<_>>()
    );
}

/// A leader whose applier is behind its commit index for a moment (any time writes are in
/// flight) is still the leader: consumers must not be dropped because writers are busy.
#[tokio::test(flavor = "multi_thread")]
async fn consumers_stay_connected_while_writers_keep_the_leader_busy() {
    const WRITERS: usize = 4;
    const APPENDS: usize = 50;
    const PER_APPEND: usize = 100;
    const TOTAL: usize = WRITERS * APPENDS * PER_APPEND;
    let (node, client) = start_in_memory().await;
    client
        .create_persistent_subscription(
            "busy",
            "g",
            &PersistentSubscriptionOptions::default().start_from(StreamPosition::Start),
        )
        .await
        .expect("creating the group");
    let mut sub = consumer(&client, "busy", "g", 500).await;
    let reader = tokio::spawn(async move {
        let mut seen = BTreeSet::new();
        let mut pending = Vec::new();
        while seen.len() < TOTAL {
            let next =
                tokio::time::timeout(Duration::from_millis(20), sub.next_subscription_event())
                    .await;
            let idle = next.is_err();
            match next {
                Ok(Ok(PersistentSubscriptionEvent::EventAppeared { event, .. })) => {
                    let id = event.get_original_event().id;
                    seen.insert(id);
                    pending.push(id);
                }
                Ok(Ok(PersistentSubscriptionEvent::Confirmed(_))) => {}
                Ok(Err(e)) => return Err(format!("after {} events: {e:?}", seen.len())),
                Err(_) => {}
            }
            if pending.len() >= 100 || (idle && !pending.is_empty()) {
                if let Err(e) = sub.ack_ids(pending.drain(..)).await {
                    return Err(format!("acknowledging after {} events: {e:?}", seen.len()));
                }
            }
        }
        Ok(seen.len())
    });
    let data = Bytes::from(vec![b'x'; 100]);
    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        let channel = wire::channel(&node).await;
        let data = data.clone();
        writers.push(tokio::spawn(async move {
            for _ in 0..APPENDS {
                raw_append(&channel, "busy", PER_APPEND, &data).await;
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    let read = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("the consumer got every event in time")
        .expect("the consumer task");
    assert_eq!(
        read,
        Ok(TOTAL),
        "the consumer stays connected and gets every event once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn max_subscriber_count_refuses_one_consumer_too_many() {
    let (_node, client) = start_in_memory().await;
    client
        .create_persistent_subscription(
            "limited",
            "g",
            &PersistentSubscriptionOptions::default().max_subscriber_count(1),
        )
        .await
        .expect("creating the group");
    let first = consumer(&client, "limited", "g", 10).await;
    match connect_consumer(&client, Some("limited"), "g", 10).await {
        Err(e) => assert!(
            is_maximum_subscribers_reached(&e),
            "FAILED_PRECONDITION 'Maximum subscriptions reached ...', got {e:?}"
        ),
        Ok((_, id)) => panic!("a second consumer was accepted ({id})"),
    }
    // Once the first leaves, another may join.
    drop(first);
    let (_second, id) = eventually("a consumer joins after the first left", WAIT, || async {
        connect_consumer(&client, Some("limited"), "g", 10)
            .await
            .map_err(|e| format!("{e:?}"))
    })
    .await;
    assert_eq!(id, "limited::g");
}

// ---------------------------------------------------------------------------------------
// `$all`, filters and links
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_filtered_all_group_delivers_matching_events_and_resolves_links() {
    let (_node, client) = start_in_memory().await;
    append(&client, "flt-a", numbered(0, 2)).await;
    append(&client, "other-b", numbered(10, 2)).await;
    append(
        &client,
        "flt-links",
        vec![link_to("other-b", 0), link_to("other-b", 1)],
    )
    .await;
    append(
        &client,
        "other-c",
        vec![EventData::json("Picked", &serde_json::json!({"n": 20})).expect("json")],
    )
    .await;

    let checkpointing = |filter: SubscriptionFilter| {
        PersistentSubscriptionToAllOptions::default()
            .start_from(StreamPosition::Start)
            .filter(filter)
            .resolve_link_tos(true)
            .checkpoint_after(Duration::from_millis(100))
            .checkpoint_lower_bound(1)
            .checkpoint_upper_bound(1)
    };
    client
        .create_persistent_subscription_to_all(
            "by-stream",
            &checkpointing(SubscriptionFilter::on_stream_name().add_prefix("flt-")),
        )
        .await
        .expect("creating $all::by-stream");
    client
        .create_persistent_subscription_to_all(
            "by-type",
            &checkpointing(SubscriptionFilter::on_event_type().add_prefix("Pick")),
        )
        .await
        .expect("creating $all::by-type");

    let mut by_stream = all_consumer(&client, "by-stream", 10).await;
    // (stream, revision) of the event, and of the link it came through.
    let mut got = Vec::new();
    for _ in 0..4 {
        let d = next_delivery(&mut by_stream).await;
        assert_eq!(d.retry_count, 0);
        got.push((
            (d.stream().to_owned(), d.revision()),
            d.event
                .link
                .as_ref()
                .map(|l| (l.stream_id().to_owned(), l.revision)),
        ));
        // The ack carries the link's id for a resolved link (the client's original event).
        by_stream.ack(&d.event).await.expect("acknowledging");
    }
    let own = |s: &str, r: u64| ((s.to_owned(), r), None);
    let via = |s: &str, r: u64, l: &str, lr: u64| ((s.to_owned(), r), Some((l.to_owned(), lr)));
    assert_eq!(
        got,
        vec![
            own("flt-a", 0),
            own("flt-a", 1),
            via("other-b", 0, "flt-links", 0),
            via("other-b", 1, "flt-links", 1),
        ]
    );

    // Live: only matching events.
    append(&client, "other-d", numbered(30, 1)).await;
    append(&client, "flt-a", numbered(2, 1)).await;
    let d = next_delivery(&mut by_stream).await;
    assert_eq!((d.stream(), d.revision()), ("flt-a", 2));
    let last_position = d.target().position;
    by_stream.ack(&d.event).await.expect("acknowledging");

    // Every acknowledgement, the links' too, was taken: the checkpoint reaches the last one.
    eventually("the $all checkpoint reaches flt-a 2", WAIT, || async {
        let info = client
            .get_persistent_subscription_info_to_all("by-stream", &Default::default())
            .await
            .map_err(|e| format!("{e:?}"))?;
        match info.stats.last_checkpointed_position {
            // At or past it: a filtered group may also checkpoint at events it filtered out.
            Some(p) if p.commit >= last_position.commit => Ok(()),
            other => Err(format!(
                "last checkpointed {other:?}, expected {last_position:?}"
            )),
        }
    })
    .await;
    assert_quiet(std::slice::from_mut(&mut by_stream)).await;

    // By event type.
    let mut by_type = all_consumer(&client, "by-type", 10).await;
    let d = next_delivery(&mut by_type).await;
    assert_eq!(
        (d.stream(), d.target().event_type.as_str()),
        ("other-c", "Picked")
    );
    by_type.ack(&d.event).await.expect("acknowledging");
    assert_quiet(std::slice::from_mut(&mut by_type)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_group_of_links_resolves_them_and_parks_the_links() {
    let (_node, client) = start_in_memory().await;
    append(&client, "targets", numbered(0, 3)).await;
    append(
        &client,
        "link-stream",
        vec![
            link_to("targets", 2),
            link_to("targets", 0),
            link_to("targets", 1),
        ],
    )
    .await;
    client
        .create_persistent_subscription(
            "link-stream",
            "g",
            &PersistentSubscriptionOptions::default()
                .start_from(StreamPosition::Start)
                .resolve_link_tos(true),
        )
        .await
        .expect("creating the group");
    let mut sub = consumer(&client, "link-stream", "g", 10).await;
    let mut targets = Vec::new();
    let mut parked_link = None;
    for i in 0..3 {
        let d = next_delivery(&mut sub).await;
        let link = d.event.link.as_ref().expect("a resolved link");
        assert_eq!((link.stream_id(), link.revision), ("link-stream", i));
        targets.push((d.stream().to_owned(), d.revision()));
        if i == 1 {
            parked_link = Some(link.id);
            sub.nack(&d.event, NakAction::Park, "poison")
                .await
                .expect("nack Park");
        } else {
            sub.ack(&d.event).await.expect("acknowledging");
        }
    }
    assert_eq!(
        targets,
        [
            ("targets".to_owned(), 2),
            ("targets".to_owned(), 0),
            ("targets".to_owned(), 1)
        ]
    );
    // The parked stream links to the message's original event, the link (EventStoreDB parks
    // `OriginalEvent`, and links are not resolved twice).
    let parked = eventually("the link parked", WAIT, || async {
        let parked = parked_ids(&client, "link-stream", "g").await?;
        if parked.is_empty() {
            Err("nothing parked yet".to_owned())
        } else {
            Ok(parked)
        }
    })
    .await;
    assert_eq!(parked, [parked_link.expect("one was parked")]);
    assert_quiet(std::slice::from_mut(&mut sub)).await;
}

// ---------------------------------------------------------------------------------------
// Durability
// ---------------------------------------------------------------------------------------

/// Consumers acknowledge while a SIGKILL lands; after the restart the group resumes from its
/// last checkpoint: nothing is lost, and only what comes after the checkpoint is delivered
/// again.
#[tokio::test(flavor = "multi_thread")]
async fn after_a_sigkill_the_group_resumes_from_its_last_checkpoint_and_loses_nothing() {
    const EVENTS: u64 = 400;
    const KILL_AFTER: u64 = 200;
    let mut node = TestNode::start(persistent()).await;
    let client = common::client(&node);
    for batch in 0..4 {
        append(&client, "crash", numbered(batch * 100, 100)).await;
    }
    client
        .create_persistent_subscription(
            "crash",
            "g",
            &PersistentSubscriptionOptions::default()
                .start_from(StreamPosition::Start)
                .checkpoint_after(Duration::from_millis(50))
                .checkpoint_lower_bound(1)
                .checkpoint_upper_bound(10)
                .consumer_strategy_name(SystemConsumerStrategy::RoundRobin),
        )
        .await
        .expect("creating the group");

    // Two consumers acknowledge as they go (recorded before the ack is sent); the node is
    // killed once KILL_AFTER acknowledgements were sent.
    let acked = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicU64::new(0));
    let halfway = Arc::new(tokio::sync::Notify::new());
    let mut consumers = Vec::new();
    for _ in 0..2 {
        let mut sub = consumer(&client, "crash", "g", 20).await;
        let (acked, count, halfway) = (acked.clone(), count.clone(), halfway.clone());
        consumers.push(tokio::spawn(async move {
            loop {
                let event = match sub.next_subscription_event().await {
                    Ok(PersistentSubscriptionEvent::EventAppeared { event, .. }) => event,
                    Ok(PersistentSubscriptionEvent::Confirmed(_)) => continue,
                    Err(_) => return,
                };
                let revision = event.get_original_event().revision;
                acked.lock().expect("lock").push(revision);
                if sub.ack(&event).await.is_err() {
                    return;
                }
                if count.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER {
                    halfway.notify_one();
                }
                // Slow enough for the kill to land mid-way.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    tokio::time::timeout(WAIT, halfway.notified())
        .await
        .expect("the consumers acknowledged half the events in time");
    node.sigkill();
    for c in &consumers {
        c.abort();
    }
    let acked_before: BTreeSet<u64> = acked.lock().expect("lock").iter().copied().collect();
    assert!(
        (acked_before.len() as u64) < EVENTS,
        "killed mid-way: {} of {EVENTS} acknowledged",
        acked_before.len()
    );

    node.restart().await;
    let client = common::client(&node);
    let checkpoint = eventually("reading the checkpoint after the restart", WAIT, || {
        last_checkpoint(&client, "crash", "g")
    })
    .await
    .expect("checkpoints were written before the kill");
    let missing: Vec<u64> = (0..=checkpoint)
        .filter(|r| !acked_before.contains(r))
        .collect();
    assert!(
        missing.is_empty(),
        "the checkpoint ({checkpoint}) covers only acknowledged events; not acknowledged: {missing:?}"
    );
    println!(
        "killed after {} acknowledgements; last checkpoint {checkpoint}",
        acked_before.len()
    );

    // After the restart: exactly the events after the checkpoint, each once, then live ones.
    let (client, mut sub) = consumer_eventually(&node.connection_string(), "crash", "g", 50).await;
    append(&client, "crash", numbered(EVENTS, 10)).await;
    let expected: Vec<u64> = (checkpoint + 1..EVENTS + 10).collect();
    let mut after = Vec::new();
    while after.len() < expected.len() {
        let d = next_delivery(&mut sub).await;
        after.push(d.revision());
        sub.ack(&d.event).await.expect("acknowledging");
    }
    after.sort_unstable();
    assert_eq!(
        after, expected,
        "redelivered after the restart: exactly the events after checkpoint {checkpoint}"
    );
    assert_quiet(std::slice::from_mut(&mut sub)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn definitions_survive_graceful_and_ungraceful_restarts_and_a_subsystem_restart() {
    let mut node = TestNode::start(persistent()).await;
    let client = common::client(&node);
    append(&client, "kept", numbered(0, 2)).await;
    client
        .create_persistent_subscription("kept", "a", &PersistentSubscriptionOptions::default())
        .await
        .expect("creating kept::a");
    client
        .update_persistent_subscription(
            "kept",
            "a",
            &PersistentSubscriptionOptions::default()
                .start_from(StreamPosition::Start)
                .max_retry_count(3),
        )
        .await
        .expect("updating kept::a");
    client
        .create_persistent_subscription_to_all(
            "b",
            &PersistentSubscriptionToAllOptions::default()
                .filter(SubscriptionFilter::on_stream_name().add_prefix("kept")),
        )
        .await
        .expect("creating $all::b");
    client
        .create_persistent_subscription("kept", "c", &PersistentSubscriptionOptions::default())
        .await
        .expect("creating kept::c");
    client
        .delete_persistent_subscription("kept", "c", &Default::default())
        .await
        .expect("deleting kept::c");
    let expected = pairs(&[("kept", "a"), ("$all", "b")]);
    assert_eq!(list_all(&client).await.expect("listing"), expected);

    // The subsystem restart drops consumers and keeps the groups.
    let sub = consumer(&client, "kept", "a", 10).await;
    client
        .restart_persistent_subscription_subsystem(
            &RestartPersistentSubscriptionSubsystem::default(),
        )
        .await
        .expect("restarting the subsystem");
    let dropped = wait_dropped(sub).await;
    assert!(
        matches!(dropped, Ok(Error::IllegalStateError(_))),
        "consumers are dropped (CANCELLED, persistent-subscription-dropped): {dropped:?}"
    );
    let (_, mut sub) = consumer_eventually(&node.connection_string(), "kept", "a", 10).await;
    let d = next_delivery(&mut sub).await;
    assert_eq!(
        d.revision(),
        0,
        "the group restarted from the start (no acks yet)"
    );
    drop(sub);

    // A graceful stop (POST /admin/shutdown), then a SIGKILL: the definitions are there after
    // each restart, with their settings; the deleted one stays deleted.
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{}/admin/shutdown", node.http_url()))
        .send()
        .await
        .expect("POST /admin/shutdown");
    assert!(response.status().is_success(), "{response:?}");
    let deadline = Instant::now() + WAIT;
    while node.is_running() {
        assert!(Instant::now() < deadline, "the node did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for how in ["graceful stop", "SIGKILL"] {
        if how == "SIGKILL" {
            node.sigkill();
        }
        node.restart().await;
        let client = common::client(&node);
        let listed = eventually(&format!("groups listed after a {how}"), WAIT, || async {
            let listed = list_all(&client).await.map_err(|e| format!("{e:?}"))?;
            if listed == expected {
                Ok(listed)
            } else {
                Err(format!("listed {listed:?}, expected {expected:?}"))
            }
        })
        .await;
        assert_eq!(listed, expected);
        let s = info(&client, "kept", "a").await.settings.expect("settings");
        assert_eq!(s.max_retry_count, 3, "after a {how}");
        assert_eq!(s.start_from, StreamPosition::Start, "after a {how}");
        let (_, mut sub) = consumer_eventually(&node.connection_string(), "kept", "a", 10).await;
        let d = next_delivery(&mut sub).await;
        assert_eq!(d.revision(), 0, "after a {how}");
    }
}

// ---------------------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------------------

/// Groups run on the leader: a follower answers "not leader" with the leader's address, and
/// after the leader dies the group runs on the new one, from its replicated checkpoint.
#[tokio::test(flavor = "multi_thread")]
async fn in_a_cluster_groups_run_on_the_leader_and_resume_on_the_next_one() {
    let mut cluster = TestCluster::start(ClusterOptions::new(STELE)).await;
    let leader = cluster.wait_for_leader(&[], ELECTION).await;
    let follower = cluster.voters().find(|&k| k != leader).expect("a follower");
    let leader_ip = cluster.ip(leader).to_string();
    let leader_port = cluster.node(leader).http_port().to_string();

    // Raw: a follower answers NOT_FOUND "Leader info available" with the leader's address.
    let channel = wire::channel(cluster.node(follower)).await;
    let request = raw::GetInfoReq {
        options: Some(raw::GetInfoOptions {
            stream_identifier: wire::stream_id("ha"),
            group_name: "g".to_owned(),
        }),
    };
    let status = raw_unary(
        &channel,
        raw::GET_INFO,
        request,
        &[("requires-leader", "true")],
    )
    .await
    .expect_err("a follower does not serve persistent subscriptions");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(status.message(), "Leader info available", "{status:?}");
    assert_eq!(wire::trailer(&status, "exception"), Some("not-leader"));
    assert_eq!(
        wire::trailer(&status, "leader-endpoint-host"),
        Some(leader_ip.as_str())
    );
    assert_eq!(
        wire::trailer(&status, "leader-endpoint-port"),
        Some(leader_port.as_str())
    );

    // The official client, pointed at the follower: NotLeaderException naming the leader,
    // then (moved to the leader) the same call succeeds.
    let client = stele_testkit::client::connect(&cluster.node_leader_connection_string(follower))
        .expect("a client");
    let options = from_start_checkpointing_often();
    match client
        .create_persistent_subscription("ha", "g", &options)
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
    client
        .create_persistent_subscription("ha", "g", &options)
        .await
        .expect("creating the group on the leader");
    append(&client, "ha", numbered(0, 20)).await;

    // Ten events acknowledged and checkpointed on the leader; ten more in flight, unanswered.
    let mut sub = consumer(&client, "ha", "g", 10).await;
    for expected in 0..10 {
        let d = next_delivery(&mut sub).await;
        assert_eq!(d.revision(), expected);
        sub.ack(&d.event).await.expect("acknowledging");
    }
    eventually("the checkpoint reaches revision 9", WAIT, || async {
        match last_checkpoint(&client, "ha", "g").await? {
            Some(9) => Ok(()),
            other => Err(format!("last checkpoint {other:?}")),
        }
    })
    .await;

    cluster.kill(leader);
    let new_leader = cluster.wait_for_leader(&[leader], ELECTION).await;
    let connection = cluster.connection_string();
    let checkpoint = eventually("the checkpoint on the new leader", ELECTION, || async {
        let client = stele_testkit::client::connect(&cluster.node_connection_string(new_leader))?;
        last_checkpoint(&client, "ha", "g").await
    })
    .await;
    assert_eq!(checkpoint, Some(9), "the checkpoint was replicated");

    let (client, mut sub) = consumer_eventually(&connection, "ha", "g", 10).await;
    let info = info(&client, "ha", "g").await;
    assert_eq!(
        info.settings.map(|s| s.checkpoint_upper_bound),
        Some(1),
        "the definition moved with the leadership"
    );
    append(&client, "ha", numbered(20, 5)).await;
    let mut after = Vec::new();
    while after.len() < 15 {
        let d = next_delivery(&mut sub).await;
        after.push(d.revision());
        sub.ack(&d.event).await.expect("acknowledging");
    }
    after.sort_unstable();
    assert_eq!(
        after,
        (10..25).collect::<Vec<_>>(),
        "after the failover: everything after the checkpoint, nothing before it"
    );
}

// ---------------------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------------------

/// Figures, not a check: acknowledged messages per second of one group with four consumers
/// over `FIGURES_EVENTS` events (default 100,000) of one stream, against the release binary
/// on disk. Acknowledgements go in batches of up to 100 ids per message (`ack_ids`), and one
/// by one for comparison. Run with `cargo build --release -p stele-server && cargo test -p
/// stele-server --test persistent -- --ignored --nocapture figures` (the test profile is
/// optimised, so the consumers are not what limits the figure).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement: run by hand with the release binary"]
async fn figures_persistent_subscription_acked_messages_per_second() {
    let (node, events) = common::figures_node(100_000).await;
    let client = common::client(&node);

    let started = Instant::now();
    let data = Bytes::from(vec![b'x'; 100]);
    let mut loaders = Vec::new();
    for w in 0..4u64 {
        let channel = wire::channel(&node).await;
        let data = data.clone();
        loaders.push(tokio::spawn(async move {
            let mut n = w * 1000;
            while n < events {
                raw_append(&channel, "figures", 1000.min((events - n) as usize), &data).await;
                n += 4000;
            }
        }));
    }
    for loader in loaders {
        loader.await.expect("loader");
    }
    eprintln!("loaded {events} events in {:?}", started.elapsed());

    for (group, batch) in [("batched", 100usize), ("single", 1)] {
        client
            .create_persistent_subscription(
                "figures",
                group,
                &PersistentSubscriptionOptions::default()
                    .start_from(StreamPosition::Start)
                    .message_timeout(Duration::from_secs(60))
                    .checkpoint_after(Duration::from_millis(100))
                    .read_batch_size(500)
                    .history_buffer_size(2000)
                    .live_buffer_size(2000)
                    .consumer_strategy_name(SystemConsumerStrategy::RoundRobin),
            )
            .await
            .expect("creating the group");
        // Every id acknowledged (a redelivery counts once), and how many deliveries in all.
        let acked: Arc<Mutex<HashSet<Uuid>>> = Arc::new(Mutex::new(HashSet::new()));
        let deliveries = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let started = Instant::now();
        let mut consumers = Vec::new();
        for _ in 0..4 {
            let mut sub = consumer(&client, "figures", group, 1000).await;
            let (acked, deliveries, stop) = (acked.clone(), deliveries.clone(), stop.clone());
            consumers.push(tokio::spawn(async move {
                let mut pending = Vec::with_capacity(batch);
                while !stop.load(Ordering::SeqCst) {
                    let next = tokio::time::timeout(
                        Duration::from_millis(5),
                        sub.next_subscription_event(),
                    )
                    .await;
                    let idle = next.is_err();
                    match next {
                        Ok(Ok(PersistentSubscriptionEvent::EventAppeared { event, .. })) => {
                            pending.push(event.get_original_event().id);
                            deliveries.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(Ok(PersistentSubscriptionEvent::Confirmed(_))) => {}
                        Ok(Err(e)) => panic!("consumer failed: {e:?}"),
                        Err(_) => {}
                    }
                    if pending.len() >= batch || (idle && !pending.is_empty()) {
                        acked.lock().expect("lock").extend(pending.iter().copied());
                        sub.ack_ids(pending.drain(..)).await.expect("ack");
                    }
                }
            }));
        }
        while (acked.lock().expect("lock").len() as u64) < events {
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "{} of {events} acknowledged in 300 s",
                acked.lock().expect("lock").len()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let delivered_in = started.elapsed();
        // The server took every acknowledgement once the checkpoint reaches the last event.
        eventually(
            "the checkpoint reaches the last event",
            Duration::from_secs(120),
            || async {
                let stats = info(&client, "figures", group).await.stats;
                match stats.last_checkpointed_event_revision {
                    Some(r) if r + 1 == events => Ok(()),
                    _ => Err(format!("{stats:?}")),
                }
            },
        )
        .await;
        let acked_in = started.elapsed();
        stop.store(true, Ordering::SeqCst);
        for c in consumers {
            c.await.expect("consumer");
        }
        eprintln!(
            "({} deliveries for {events} messages)",
            deliveries.load(Ordering::SeqCst)
        );
        eprintln!(
            "persistent subscription, 4 consumers, acks of {batch}: {events} messages \
             delivered and acknowledged in {delivered_in:?} ({:.0}/s); checkpointed after \
             {acked_in:?} ({:.0}/s)",
            events as f64 / delivered_in.as_secs_f64(),
            events as f64 / acked_in.as_secs_f64(),
        );
    }
}
