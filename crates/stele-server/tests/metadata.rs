//! Stream metadata that truncates reads: `$maxCount` keeps the newest N, `$tb` hides the
//! revisions before it. Set and read back through the official client (`$$<stream>`).

mod common;

use common::*;
use kurrentdb::{
    AppendToStreamOptions, Client, ReadStreamOptions, StreamMetadata, StreamMetadataResult,
    StreamPosition,
};

async fn seed(client: &Client, stream: &str, count: u64) {
    client
        .append_to_stream(
            stream,
            &AppendToStreamOptions::default(),
            (0..count).map(|n| json_event("t", n)).collect::<Vec<_>>(),
        )
        .await
        .expect("seeding the stream");
}

async fn assert_metadata(client: &Client, stream: &str, expected: &StreamMetadata) {
    match client
        .get_stream_metadata(
            stream,
            &ReadStreamOptions::default().position(StreamPosition::End),
        )
        .await
        .expect("reading the metadata")
    {
        StreamMetadataResult::Success(versioned) => {
            assert_eq!(versioned.metadata(), expected, "metadata reads back as set");
            assert_eq!(versioned.stream_name(), format!("$${stream}"));
        }
        other => panic!("expected metadata for {stream}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn max_count_keeps_only_the_newest_events_on_reads() {
    let (_node, client) = start_in_memory().await;
    let stream = "capped";
    seed(&client, stream, 10).await;
    let metadata = StreamMetadata::builder().max_count(3).build();
    client
        .set_stream_metadata(stream, &AppendToStreamOptions::default(), &metadata)
        .await
        .expect("setting $maxCount");
    assert_metadata(&client, stream, &metadata).await;

    let forwards = read_stream(&client, stream, &ReadStreamOptions::default())
        .await
        .expect("reading forwards");
    assert_eq!(revisions(&forwards), vec![7, 8, 9]);
    assert_eq!(
        forwards.iter().map(body_n).collect::<Vec<_>>(),
        vec![7, 8, 9]
    );
    let backwards = read_stream(
        &client,
        stream,
        &ReadStreamOptions::default().position(StreamPosition::End),
    )
    .await
    .expect("reading backwards");
    assert_eq!(revisions(&backwards), vec![9, 8, 7]);
    let from_one = read_stream(
        &client,
        stream,
        &ReadStreamOptions::default()
            .forwards()
            .position(StreamPosition::Position(1))
            .max_count(2),
    )
    .await
    .expect("reading from a hidden revision");
    assert_eq!(
        revisions(&from_one),
        vec![7, 8],
        "a read from a hidden revision starts at the oldest kept one"
    );

    // The window moves with new events.
    seed(&client, stream, 2).await;
    let forwards = read_stream(&client, stream, &ReadStreamOptions::default())
        .await
        .expect("reading after more appends");
    assert_eq!(revisions(&forwards), vec![9, 10, 11]);
}

#[tokio::test(flavor = "multi_thread")]
async fn truncate_before_hides_earlier_revisions() {
    let (_node, client) = start_in_memory().await;
    let stream = "truncated";
    seed(&client, stream, 5).await;
    let metadata = StreamMetadata::builder().truncate_before(3).build();
    client
        .set_stream_metadata(stream, &AppendToStreamOptions::default(), &metadata)
        .await
        .expect("setting $tb");
    assert_metadata(&client, stream, &metadata).await;

    let forwards = read_stream(&client, stream, &ReadStreamOptions::default())
        .await
        .expect("reading forwards");
    assert_eq!(revisions(&forwards), vec![3, 4]);
    let backwards = read_stream(
        &client,
        stream,
        &ReadStreamOptions::default().position(StreamPosition::End),
    )
    .await
    .expect("reading backwards");
    assert_eq!(revisions(&backwards), vec![4, 3]);
    let from_two_backwards = read_stream(
        &client,
        stream,
        &ReadStreamOptions::default()
            .position(StreamPosition::Position(2))
            .backwards(),
    )
    .await
    .expect("reading backwards from a hidden revision");
    assert_eq!(
        revisions(&from_two_backwards),
        Vec::<u64>::new(),
        "nothing at or before a hidden revision is visible"
    );

    // Other streams are unaffected.
    seed(&client, "untouched", 2).await;
    let untouched = read_stream(&client, "untouched", &ReadStreamOptions::default())
        .await
        .expect("reading another stream");
    assert_eq!(revisions(&untouched), vec![0, 1]);
}
