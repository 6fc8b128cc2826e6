//! Writes the seed corpora in `fuzz/corpus/<target>/`: a few small, valid inputs per target,
//! made with the product's own encoders so that the fuzzer starts from inputs that get past
//! the first checks. Run from `fuzz/`: `cargo run --example seeds` (normal build, no
//! instrumentation). Files are named by content, so running it again changes nothing.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message;
use stele_api::grpc::wire_uuid;
use stele_cluster::fuzzing::{decode_header, decode_record, encode_record, RecordBody};
use stele_cluster::transport::{write_frame, ForwardError, Hello, HelloReply, Reply, Request};
use stele_cluster::{GossipMessage, NodeStatus, VNodeState};
use stele_core::{Command, ContentType, DeleteKind, EventRecord, ExpectedRevision, StreamName};
use stele_log::{Log, LogConfig, MemDisk, CHUNK_HEADER_BYTES};
use stele_proto::shared::{Empty, StreamIdentifier};
use stele_proto::{persistent, streams};
use uuid::Uuid;

const CHUNK: u64 = 256;

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    write(&corpus, "log_recovery", log_recovery());
    write(&corpus, "cluster_record", cluster_record());
    write(&corpus, "transport_frame", transport_frame());
    write(&corpus, "gossip_message", gossip_message());
    write(&corpus, "api_request", api_request());
    write(&corpus, "config", config());
    write(&corpus, "internal_port", internal_port());
}

fn write(corpus: &Path, target: &str, seeds: Vec<Vec<u8>>) {
    let dir = corpus.join(target);
    std::fs::create_dir_all(&dir).expect("corpus directory");
    for seed in &seeds {
        // FNV-1a: a stable name from the content, without another dependency.
        let hash = seed.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        std::fs::write(dir.join(format!("seed-{hash:016x}")), seed).expect("seed file");
    }
    println!("{target}: {} seeds", seeds.len());
}

/// Logs written by `stele-log` itself, in the target's input form: a flags byte, then per
/// chunk the 40 header bytes and the data.
fn log_recovery() -> Vec<Vec<u8>> {
    let image = |payloads: &[&[u8]], synced: usize, flags: u8| {
        let disk = MemDisk::new();
        let config = LogConfig {
            chunk_size_bytes: CHUNK,
        };
        let (log, _) = Log::open(Arc::new(disk.clone()), config).expect("new log");
        for (i, payload) in payloads.iter().enumerate() {
            log.append(&[payload]).expect("append");
            if i < synced {
                log.sync().expect("sync");
            }
        }
        let mut input = vec![flags];
        for number in 0.. {
            let Some(file) = disk.contents(&stele_log::chunk_file_name(number)) else {
                break;
            };
            input.extend_from_slice(&file[..40]);
            let data = &file[CHUNK_HEADER_BYTES as usize..];
            let used = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            input.extend_from_slice(&data[..used.max(1)]);
            input.resize(1 + (number as usize + 1) * (40 + CHUNK as usize), 0);
        }
        let end = input.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        input.truncate(end);
        input
    };
    let small: [&[u8]; 3] = [b"one", b"two", b"three"];
    let big = [7u8; 100];
    let many: Vec<&[u8]> = vec![&big, &big, &big, b"x"];
    let mut torn = image(&small, 2, 0);
    let last = torn.len() - 1;
    torn[last] ^= 0xff;
    vec![
        image(&[], 0, 0),
        image(&small, 3, 0),
        image(&small, 1, 0),
        image(&many, 4, 0),
        image(&many, 2, 3),
        torn,
    ]
}

fn event(stream: &str, n: u8) -> EventRecord {
    EventRecord {
        stream: StreamName::new(stream).expect("stream name"),
        id: Uuid::from_u128(u128::from(n) + 1),
        event_type: "OrderPlaced".into(),
        content_type: ContentType::Json,
        created_ticks: 638_000_000_000_000_000,
        custom_metadata: Bytes::from_static(b"{}"),
        data: Bytes::from(format!("{{\"n\":{n}}}")),
    }
}

/// Records as `encode_entry` writes them, each behind the target's u16 length. The header
/// (log id term 2 of node 1, index 7; part; parts) is postcard varints written by hand, since
/// the raft types are private to stele-cluster, and checked by decoding it.
fn cluster_record() -> Vec<Vec<u8>> {
    let record = |part: u8, parts: u8, body: RecordBody| {
        let (header, _) = decode_header(&[2, 1, 7, part, parts]).expect("header bytes");
        let bytes = encode_record(&header, &body);
        decode_record(&bytes).expect("seed record decodes");
        let mut framed = (bytes.len() as u16).to_le_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        framed
    };
    let stream = || StreamName::new("orders-1").expect("stream name");
    vec![
        record(0, 1, RecordBody::Blank),
        record(
            0,
            1,
            RecordBody::EmptyAppend {
                stream: stream(),
                expected: ExpectedRevision::NoStream,
            },
        ),
        record(
            0,
            1,
            RecordBody::Delete {
                stream: stream(),
                expected: ExpectedRevision::Exact(3),
                kind: DeleteKind::Hard,
                created_ticks: 638_000_000_000_000_000,
            },
        ),
        [
            record(
                0,
                2,
                RecordBody::Event {
                    expected: ExpectedRevision::Any,
                    event: event("orders-1", 0),
                },
            ),
            record(
                1,
                2,
                RecordBody::Event {
                    expected: ExpectedRevision::Any,
                    event: event("orders-1", 1),
                },
            ),
        ]
        .concat(),
    ]
}

/// Frames as `write_frame` sends them, behind the target's message-type byte.
fn transport_frame() -> Vec<Vec<u8>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let frame = |kind: u8, message: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = vec![kind];
        message(&mut bytes);
        bytes
    };
    macro_rules! framed {
        ($kind:expr, $message:expr) => {
            frame($kind, &|out: &mut Vec<u8>| {
                runtime
                    .block_on(write_frame(out, &$message))
                    .expect("frame");
            })
        };
    }
    let hello = Hello {
        magic: 0x5354_454c,
        version: 1,
        from: 0x1111,
        to: 0x2222,
        cluster_id: Some(Uuid::from_u128(9)),
    };
    let forward = Request::Forward(Command::Append {
        stream: StreamName::new("orders-1").expect("stream name"),
        expected: ExpectedRevision::StreamExists,
        events: vec![event("orders-1", 0)],
    });
    let stream_reply: Result<(), String> = Err("stopped".into());
    vec![
        framed!(0, hello),
        framed!(1, HelloReply::Accepted),
        framed!(1, HelloReply::Refused("other cluster".into())),
        framed!(2, forward),
        framed!(2, Request::StreamAppend),
        framed!(3, Reply::Failed("raft stopped".into())),
        framed!(
            3,
            Reply::Forwarded(Err(ForwardError::NotLeader {
                leader: Some(("127.0.0.1".into(), 1113)),
            }))
        ),
        // A streaming reply that failed has the same bytes as this `Result<(), String>`.
        framed!(4, stream_reply),
    ]
}

fn node_status(n: u8, state: VNodeState) -> NodeStatus {
    NodeStatus {
        node_id: u64::from(n),
        instance_id: Uuid::from_u128(u128::from(n) + 100),
        cluster_id: Some(Uuid::from_u128(1)),
        state,
        is_alive: true,
        time_stamp: 638_000_000_000_000_000,
        http_endpoint: (format!("127.0.0.{n}"), 2113),
        gossip_endpoint: (format!("127.0.0.{n}"), 2113),
        internal_tcp: (format!("127.0.0.{n}"), 1112),
        last_commit_position: 4096,
        writer_checkpoint: 4096,
        chaser_checkpoint: 4096,
        last_log_index: 12,
        log_sync_count: 3,
        epoch_number: 2,
        node_priority: 0,
        read_only_replica: false,
        resigned: false,
        ready: true,
    }
}

/// `POST /gossip` bodies behind the target's cluster byte.
fn gossip_message() -> Vec<Vec<u8>> {
    let body = |ours: u8, message: GossipMessage| {
        let mut bytes = vec![ours];
        bytes.extend_from_slice(&serde_json::to_vec(&message).expect("json"));
        bytes
    };
    let now_ms = 1_700_000_000_000;
    vec![
        body(
            0,
            GossipMessage {
                sender: node_status(1, VNodeState::Leader),
                members: vec![],
                sent_at_unix_ms: now_ms,
            },
        ),
        body(
            1,
            GossipMessage {
                sender: node_status(1, VNodeState::Leader),
                members: vec![
                    node_status(2, VNodeState::Follower),
                    node_status(3, VNodeState::Follower),
                ],
                sent_at_unix_ms: now_ms,
            },
        ),
        body(
            2,
            GossipMessage {
                sender: node_status(2, VNodeState::Follower),
                members: vec![node_status(1, VNodeState::Leader)],
                sent_at_unix_ms: 0,
            },
        ),
    ]
}

/// Protobuf requests as the official clients send them, behind the target's type byte.
fn api_request() -> Vec<Vec<u8>> {
    let request = |kind: u8, message: &dyn Fn() -> Vec<u8>| {
        let mut bytes = vec![kind];
        bytes.extend_from_slice(&message());
        bytes
    };
    let identifier = |name: &str| StreamIdentifier {
        stream_name: Bytes::copy_from_slice(name.as_bytes()),
    };
    let metadata: HashMap<String, String> = [
        ("type".to_owned(), "OrderPlaced".to_owned()),
        ("content-type".to_owned(), "application/json".to_owned()),
    ]
    .into();
    let id = wire_uuid::to_structured(Uuid::from_u128(42));
    let string_id = wire_uuid::to_string_form(Uuid::from_u128(43));

    use streams::append_req;
    let append_options = streams::AppendReq {
        content: Some(append_req::Content::Options(append_req::Options {
            stream_identifier: Some(identifier("orders-1")),
            expected_stream_revision: Some(append_req::options::ExpectedStreamRevision::Any(
                Empty {},
            )),
        })),
    };
    let proposed = streams::AppendReq {
        content: Some(append_req::Content::ProposedMessage(
            append_req::ProposedMessage {
                id: Some(id.clone()),
                metadata: metadata.clone(),
                custom_metadata: Bytes::new(),
                data: Bytes::from_static(b"{\"n\":1}"),
            },
        )),
    };

    use streams::read_req::options::{
        self as read_options, filter_options, uuid_option, AllOptions, FilterOptions, StreamOptions,
    };
    let read = |stream_option: read_options::StreamOption,
                count_option: read_options::CountOption,
                filter_option: read_options::FilterOption| {
        streams::ReadReq {
            options: Some(streams::read_req::Options {
                stream_option: Some(stream_option),
                read_direction: 0,
                resolve_links: true,
                count_option: Some(count_option),
                filter_option: Some(filter_option),
                uuid_option: Some(read_options::UuidOption {
                    content: Some(uuid_option::Content::Structured(Empty {})),
                }),
                control_option: None,
            }),
        }
    };
    let read_stream = read(
        read_options::StreamOption::Stream(StreamOptions {
            stream_identifier: Some(identifier("orders-1")),
            revision_option: Some(read_options::stream_options::RevisionOption::Start(
                Empty {},
            )),
        }),
        read_options::CountOption::Count(10),
        read_options::FilterOption::NoFilter(Empty {}),
    );
    let subscribe_all = read(
        read_options::StreamOption::All(AllOptions {
            all_option: Some(read_options::all_options::AllOption::Start(Empty {})),
        }),
        read_options::CountOption::Subscription(Default::default()),
        read_options::FilterOption::Filter(FilterOptions {
            filter: Some(filter_options::Filter::EventType(
                filter_options::Expression {
                    regex: r"^(?!(\$.+$|PersistentConfig\d+$))".into(),
                    prefix: vec![],
                },
            )),
            window: Some(filter_options::Window::Max(32)),
            checkpoint_interval_multiplier: 1,
        }),
    );

    use streams::batch_append_req;
    let batch = streams::BatchAppendReq {
        correlation_id: Some(string_id.clone()),
        options: Some(batch_append_req::Options {
            stream_identifier: Some(identifier("orders-1")),
            expected_stream_position: Some(
                batch_append_req::options::ExpectedStreamPosition::StreamPosition(4),
            ),
            deadline_option: Some(batch_append_req::options::DeadlineOption::Deadline(
                prost_types::Duration {
                    seconds: 10,
                    nanos: 0,
                },
            )),
        }),
        proposed_messages: vec![batch_append_req::ProposedMessage {
            id: Some(id.clone()),
            metadata: metadata.clone(),
            custom_metadata: Bytes::new(),
            data: Bytes::from_static(b"{}"),
        }],
        is_final: true,
    };

    let delete = streams::DeleteReq {
        options: Some(streams::delete_req::Options {
            stream_identifier: Some(identifier("orders-1")),
            expected_stream_revision: Some(
                streams::delete_req::options::ExpectedStreamRevision::Revision(3),
            ),
        }),
    };

    use persistent::create_req;
    let create = persistent::CreateReq {
        options: Some(create_req::Options {
            stream_option: Some(create_req::options::StreamOption::Stream(
                create_req::StreamOptions {
                    stream_identifier: Some(identifier("orders-1")),
                    revision_option: Some(create_req::stream_options::RevisionOption::Start(
                        Empty {},
                    )),
                },
            )),
            stream_identifier: None,
            group_name: "g1".into(),
            settings: Some(create_req::Settings {
                resolve_links: true,
                max_retry_count: 5,
                min_checkpoint_count: 3,
                max_checkpoint_count: 30,
                max_subscriber_count: 4,
                live_buffer_size: 100,
                read_batch_size: 10,
                history_buffer_size: 200,
                consumer_strategy: "RoundRobin".into(),
                message_timeout: Some(create_req::settings::MessageTimeout::MessageTimeoutMs(
                    30_000,
                )),
                checkpoint_after: Some(create_req::settings::CheckpointAfter::CheckpointAfterMs(
                    2_000,
                )),
                ..Default::default()
            }),
        }),
    };

    use persistent::read_req as ps_read;
    let connect = persistent::ReadReq {
        content: Some(ps_read::Content::Options(ps_read::Options {
            stream_option: Some(ps_read::options::StreamOption::All(Empty {})),
            group_name: "g1".into(),
            buffer_size: 10,
            uuid_option: Some(ps_read::options::UuidOption {
                content: Some(ps_read::options::uuid_option::Content::String(Empty {})),
            }),
        })),
    };
    let nack = persistent::ReadReq {
        content: Some(ps_read::Content::Nack(ps_read::Nack {
            id: Bytes::new(),
            ids: vec![id.clone(), string_id.clone()],
            action: ps_read::nack::Action::Park as i32,
            reason: "bad".into(),
        })),
    };

    vec![
        request(0, &|| append_options.encode_to_vec()),
        request(0, &|| proposed.encode_to_vec()),
        request(1, &|| read_stream.encode_to_vec()),
        request(1, &|| subscribe_all.encode_to_vec()),
        request(2, &|| batch.encode_to_vec()),
        request(3, &|| delete.encode_to_vec()),
        request(5, &|| create.encode_to_vec()),
        request(7, &|| connect.encode_to_vec()),
        request(7, &|| nack.encode_to_vec()),
    ]
}

/// Arguments, environment and YAML as the target reads them (parts separated by NUL).
fn config() -> Vec<Vec<u8>> {
    let seed = |args: &str, env: &str, yaml: Option<&str>| {
        let mut text = format!("{args}\0{env}");
        if let Some(yaml) = yaml {
            text.push('\0');
            text.push_str(yaml);
        }
        text.into_bytes()
    };
    vec![
        seed("--insecure\n--mem-db", "", None),
        seed(
            "--insecure\n--cluster-size=3\n--gossip-seed\n127.0.0.2:2113,127.0.0.3:2113",
            "EVENTSTORE_NODE_PRIORITY=2\nSTELE_INT_TCP_PORT=1112",
            None,
        ),
        seed(
            "",
            "KURRENTDB_INSECURE=true",
            Some("---\nDb: /var/lib/stele\nClusterSize: 3\nDiscoverViaDns: false\nGossipSeed: 127.0.0.2:2113\nRunProjections: None\nLogLevel: Information\n"),
        ),
        seed("--insecure\n--clustr-size=3", "", Some("Insecure: true\nUnknownOption: 1\n")),
    ]
}

/// Connections to the internal port, in the `internal_port` target's input form: a mode byte
/// (the handshake), then each request as a length byte and its postcard bytes. Requests claim
/// the stranger the target's handshake names, so they reach the guard's membership check.
fn internal_port() -> Vec<Vec<u8>> {
    use stele_cluster::fuzzing::{append_request, transfer_leader_request, vote_request};
    const STRANGER: u64 = 0x0bad_0bad_0bad_0bad;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let body = |request: &Request| {
        let mut framed = Vec::new();
        runtime
            .block_on(write_frame(&mut framed, request))
            .expect("frame");
        framed.split_off(4)
    };
    let connection = |mode: u8, requests: &[Request]| {
        let mut input = vec![mode];
        for request in requests {
            let bytes = body(request);
            let len = u8::try_from(bytes.len()).expect("a seed request fits a length byte");
            input.push(len);
            input.extend_from_slice(&bytes);
        }
        input
    };
    let forward = Request::Forward(Command::Append {
        stream: StreamName::new("orders-1").expect("stream name"),
        expected: ExpectedRevision::Any,
        events: vec![event("orders-1", 0)],
    });
    let every = [
        vote_request(1, STRANGER, false),
        vote_request(1, STRANGER, true),
        append_request(1, STRANGER),
        transfer_leader_request(1, STRANGER, STRANGER),
        forward,
        Request::StreamAppend,
    ];
    let mut seeds: Vec<Vec<u8>> = every
        .iter()
        .map(|request| connection(0, std::slice::from_ref(request)))
        .collect();
    seeds.push(connection(0, &every));
    seeds.push(connection(
        0,
        &[vote_request(u64::MAX - 1, STRANGER, false)],
    ));
    seeds.push(connection(1, &[vote_request(1, STRANGER, false)]));
    seeds.push(connection(2, &[append_request(1, STRANGER)]));
    // Before any handshake: an oversized frame announcement, then garbage.
    seeds.push(vec![3, 4, 0xff, 0xff, 0xff, 0x1f, 3, 1, 2, 3]);
    seeds
}
