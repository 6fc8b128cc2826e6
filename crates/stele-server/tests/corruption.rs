//! Damaged chunk files on a real node. A torn tail (bytes after the last record that form no
//! record, as a crash in the middle of a write leaves them) is cut at start-up and everything
//! acknowledged is served; a bit flipped in acknowledged data makes the node refuse to start
//! with an error naming the chunk file and the offset, instead of serving a damaged log.

mod common;

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use kurrentdb::{AppendToStreamOptions, ReadStreamOptions};
use stele_testkit::TestNode;

const CHUNK_SIZE_BYTES: u64 = 1 << 20;
/// EventStoreDB's chunk file name, as `docs/format/log.md` specifies it.
const FIRST_CHUNK: &str = "chunks/chunk-000000.000000";
/// Chunk data starts after a 4096-byte header (`docs/format/log.md`).
const HEADER_BYTES: u64 = 4096;

async fn node_with_events(stream: &str, count: u64) -> TestNode {
    let node = TestNode::start(persistent().chunk_size_bytes(CHUNK_SIZE_BYTES)).await;
    let client = client(&node);
    for n in 0..count {
        client
            .append_to_stream(
                stream,
                &AppendToStreamOptions::default(),
                json_event("e", n),
            )
            .await
            .expect("append");
    }
    node
}

/// The offset just after the last non-zero byte of a chunk file.
fn data_end(chunk: &Path) -> u64 {
    let bytes = std::fs::read(chunk).expect("reading the chunk");
    bytes
        .iter()
        .rposition(|&b| b != 0)
        .expect("the chunk holds records") as u64
        + 1
}

#[tokio::test(flavor = "multi_thread")]
async fn a_torn_tail_is_cut_and_acknowledged_events_survive() {
    let mut node = node_with_events("torn", 20).await;
    node.kill();
    let chunk = node.data_dir().expect("persistent").join(FIRST_CHUNK);
    let end = data_end(&chunk);
    // A record header claiming 200 bytes, then only part of them: a torn write.
    let mut torn = vec![200u8, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef];
    torn.extend(std::iter::repeat_n(0x5a, 60));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&chunk)
        .unwrap();
    file.write_at(&torn, end).unwrap();
    file.sync_all().unwrap();

    node.restart().await;
    let client = client(&node);
    let events = read_stream(&client, "torn", &ReadStreamOptions::default())
        .await
        .expect("the stream reads after recovery");
    assert_eq!(revisions(&events), (0..20).collect::<Vec<_>>());
    // And the node writes again after the cut.
    client
        .append_to_stream(
            "torn",
            &AppendToStreamOptions::default(),
            json_event("e", 20),
        )
        .await
        .expect("append after recovery");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flipped_bit_in_acknowledged_data_stops_the_node_naming_file_and_offset() {
    let mut node = node_with_events("flip", 20).await;
    node.kill();
    let dir = node.data_dir().expect("persistent");
    let chunk = dir.join(FIRST_CHUNK);
    // Inside the first record's payload: 19 synced appends came after it, so it lies well
    // before the chunk's durable checkpoint.
    let offset = HEADER_BYTES + 20;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&chunk)
        .unwrap();
    let mut byte = [0u8];
    file.read_at(&mut byte, offset).unwrap();
    file.write_at(&[byte[0] ^ 0x01], offset).unwrap();
    file.sync_all().unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stele"))
        .args(["--insecure", "--node-ip", "127.0.0.1", "--http-port"])
        .arg(port.to_string())
        .arg("--chunk-size")
        .arg(CHUNK_SIZE_BYTES.to_string())
        .arg("--db")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning stele");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("a node with a corrupt log kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "the node must refuse to start");
    assert!(
        stderr.contains("chunk-000000.000000")
            && stderr.contains(&format!("offset {}", HEADER_BYTES)),
        "the error names the file and offset: {stderr}"
    );
}
