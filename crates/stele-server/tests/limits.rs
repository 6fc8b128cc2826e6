//! What one request may cost (issue 11, item 6): stream names are bounded, an append is counted
//! at what it costs in the log (every record carries its stream's name), and Append and
//! BatchAppend apply the same limit.

mod common;

use common::*;
use kurrentdb::{Error, EventData, StreamState};

/// One append of a 4 MiB stream name and 150 empty events (4.2 MB on the wire) wrote 633 MB of
/// log and raised the node's memory from 71 MB to 2 GB for good: the name was stored in every
/// record and counted nowhere.
#[tokio::test(flavor = "multi_thread")]
async fn a_huge_stream_name_is_refused_and_costs_nothing() {
    let (node, client) = start_in_memory().await;
    let before = node.rss_bytes().expect("the node's memory");
    let name = "n".repeat(4 * 1024 * 1024);
    let events: Vec<_> = (0..150)
        .map(|_| EventData::binary("e", Vec::new().into()))
        .collect();
    let result = client
        .append_to_stream(name.as_str(), &Default::default(), events)
        .await;
    assert!(result.is_err(), "the append was accepted");
    let after = node.rss_bytes().expect("the node's memory");
    eprintln!("stream-name probe: RSS {before} bytes before, {after} after");
    assert!(
        after < before + 64 * 1024 * 1024,
        "memory grew from {before} to {after} bytes"
    );
    // The longest legal name works, and so does the node.
    // stele_core::MAX_STREAM_NAME_BYTES
    let longest = "l".repeat(4096);
    client
        .append_to_stream(longest.as_str(), &Default::default(), json_event("e", 0))
        .await
        .expect("appending to the longest legal name");
    let events = read_stream(&client, &longest, &Default::default())
        .await
        .expect("reading it back");
    assert_eq!(events.len(), 1);
}

/// BatchAppend accepted 30,000-event appends that the classic Append refused as too large:
/// both now count an append the same way, at its cost in the log.
#[tokio::test(flavor = "multi_thread")]
async fn append_and_batch_append_apply_one_limit() {
    let (_node, client) = start_in_memory().await;
    let many = || -> Vec<EventData> {
        (0..30_000)
            .map(|_| EventData::binary("e", Vec::new().into()))
            .collect()
    };
    let classic = client
        .append_to_stream("many-classic", &Default::default(), many())
        .await;
    assert!(
        matches!(
            &classic,
            Err(Error::Grpc { code: tonic::Code::InvalidArgument, message }) if message.contains("Maximum Append Size")
        ),
        "classic Append: {classic:?}"
    );
    let batch = client
        .batch_append(&Default::default())
        .await
        .expect("opening a batch-append session");
    let batched = batch
        .append_to_stream("many-batch", StreamState::Any, many())
        .await;
    assert!(
        matches!(
            &batched,
            Err(Error::Grpc { code: tonic::Code::InvalidArgument, message }) if message.contains("MaximumAppendSizeExceeded")
        ),
        "BatchAppend: {batched:?}"
    );
    // The client ends a batch-append session after an error; a new one is needed.
    // An ordinary batch still goes through both ways.
    let few = || -> Vec<EventData> { (0..100).map(|n| json_event("e", n)).collect() };
    client
        .append_to_stream("few-classic", &Default::default(), few())
        .await
        .expect("a 100-event Append");
    let batch = client
        .batch_append(&Default::default())
        .await
        .expect("opening another batch-append session");
    batch
        .append_to_stream("few-batch", StreamState::Any, few())
        .await
        .expect("a 100-event BatchAppend");
}
