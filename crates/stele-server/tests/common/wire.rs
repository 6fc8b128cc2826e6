//! Raw gRPC for tests that need to see or send what the official client hides: hand-built
//! messages through `stele-proto`'s generated client, and arbitrary bytes through a codec
//! that does no protobuf at all.

use bytes::{Buf, BufMut, Bytes};
use std::collections::HashMap;
use stele_proto::shared;
use stele_proto::streams::streams_client::StreamsClient;
use stele_proto::streams::{append_req, read_req, AppendReq, AppendResp, ReadReq, ReadResp};
use stele_testkit::TestNode;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Request, Status};
use uuid::Uuid;

/// Events may be up to 16 MiB, so answers may be bigger than tonic's 4 MiB default.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// An HTTP/2 cleartext channel to the node's client port.
pub async fn channel(node: &TestNode) -> Channel {
    tonic::transport::Endpoint::from_shared(node.http_url())
        .expect("a valid endpoint URL")
        .connect()
        .await
        .expect("connecting to the gRPC port")
}

/// The generated Streams client on `channel`.
pub fn streams(channel: &Channel) -> StreamsClient<Channel> {
    StreamsClient::new(channel.clone())
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

pub fn empty() -> shared::Empty {
    shared::Empty {}
}

pub fn stream_id(name: &str) -> Option<shared::StreamIdentifier> {
    Some(shared::StreamIdentifier {
        stream_name: Bytes::copy_from_slice(name.as_bytes()),
    })
}

/// The string form of a UUID (Python and Node clients send this).
pub fn uuid_string(id: Uuid) -> shared::Uuid {
    shared::Uuid {
        value: Some(shared::uuid::Value::String(id.to_string())),
    }
}

/// The structured form of a UUID (the Rust client sends this): big-endian halves.
pub fn uuid_structured(id: Uuid) -> shared::Uuid {
    let bytes = id.as_bytes();
    shared::Uuid {
        value: Some(shared::uuid::Value::Structured(shared::uuid::Structured {
            most_significant_bits: i64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")),
            least_significant_bits: i64::from_be_bytes(bytes[8..].try_into().expect("8 bytes")),
        })),
    }
}

/// Decodes either UUID form.
pub fn uuid_from_wire(id: &shared::Uuid) -> Uuid {
    match id.value.as_ref().expect("a UUID has a value") {
        shared::uuid::Value::Structured(s) => {
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&s.most_significant_bits.to_be_bytes());
            bytes[8..].copy_from_slice(&s.least_significant_bits.to_be_bytes());
            Uuid::from_bytes(bytes)
        }
        shared::uuid::Value::String(s) => Uuid::parse_str(s).expect("a UUID string"),
    }
}

/// The first Append message: options.
pub fn append_options(
    stream: &str,
    expected: append_req::options::ExpectedStreamRevision,
) -> AppendReq {
    AppendReq {
        content: Some(append_req::Content::Options(append_req::Options {
            stream_identifier: stream_id(stream),
            expected_stream_revision: Some(expected),
        })),
    }
}

/// An Append event message with the given id, `type` and JSON content type.
pub fn append_event(id: shared::Uuid, event_type: &str, data: Bytes) -> AppendReq {
    let metadata = HashMap::from([
        ("type".to_string(), event_type.to_string()),
        ("content-type".to_string(), "application/json".to_string()),
    ]);
    append_event_with_metadata(id, metadata, data)
}

/// An Append event message with exactly the given system metadata.
pub fn append_event_with_metadata(
    id: shared::Uuid,
    metadata: HashMap<String, String>,
    data: Bytes,
) -> AppendReq {
    AppendReq {
        content: Some(append_req::Content::ProposedMessage(
            append_req::ProposedMessage {
                id: Some(id),
                metadata,
                custom_metadata: Bytes::new(),
                data,
            },
        )),
    }
}

/// Sends the Append messages and returns the answer or the call's status.
pub async fn append(channel: &Channel, messages: Vec<AppendReq>) -> Result<AppendResp, Status> {
    streams(channel)
        .append(futures::stream::iter(messages))
        .await
        .map(|r| r.into_inner())
}

/// A finite forward read of `stream` from the start, asking for UUIDs as strings or
/// structured.
pub fn read_stream_req(stream: &str, string_uuids: bool) -> ReadReq {
    use read_req::options::{self, stream_options::RevisionOption, uuid_option};
    let content = if string_uuids {
        uuid_option::Content::String(empty())
    } else {
        uuid_option::Content::Structured(empty())
    };
    ReadReq {
        options: Some(read_req::Options {
            stream_option: Some(options::StreamOption::Stream(options::StreamOptions {
                stream_identifier: stream_id(stream),
                revision_option: Some(RevisionOption::Start(empty())),
            })),
            read_direction: options::ReadDirection::Forwards as i32,
            resolve_links: false,
            count_option: Some(options::CountOption::Count(u64::MAX)),
            filter_option: Some(options::FilterOption::NoFilter(empty())),
            uuid_option: Some(options::UuidOption {
                content: Some(content),
            }),
            control_option: None,
        }),
    }
}

/// Runs a Read to its end: every message, or the status the call failed with (whether
/// the server failed it before or after its first message).
pub async fn read(channel: &Channel, req: ReadReq) -> Result<Vec<ReadResp>, Status> {
    let mut stream = streams(channel).read(req).await?.into_inner();
    let mut messages = Vec::new();
    while let Some(message) = stream.message().await? {
        messages.push(message);
    }
    Ok(messages)
}

/// A trailer (or header) of a failed call, as text.
pub fn trailer<'a>(status: &'a Status, key: &str) -> Option<&'a str> {
    status.metadata().get(key).and_then(|v| v.to_str().ok())
}

/// A codec that sends and receives message bodies as raw bytes, so a test can put
/// anything on the wire.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

#[derive(Debug)]
pub struct RawEncoder;

#[derive(Debug)]
pub struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let len = src.remaining();
        Ok(Some(src.copy_to_bytes(len)))
    }
}

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

/// Sends `messages` as raw bodies on the client-streaming method `path`.
pub async fn raw_client_streaming(
    channel: &Channel,
    path: &'static str,
    messages: Vec<Bytes>,
) -> Result<Bytes, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    grpc.client_streaming(
        Request::new(futures::stream::iter(messages)),
        PathAndQuery::from_static(path),
        RawCodec,
    )
    .await
    .map(|r| r.into_inner())
}

/// Sends `message` as a raw body on the server-streaming method `path` and reads every
/// answer, or the status the call failed with.
pub async fn raw_server_streaming(
    channel: &Channel,
    path: &'static str,
    message: Bytes,
) -> Result<Vec<Bytes>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let mut stream = grpc
        .server_streaming(
            Request::new(message),
            PathAndQuery::from_static(path),
            RawCodec,
        )
        .await?
        .into_inner();
    let mut messages = Vec::new();
    while let Some(message) = stream.message().await? {
        messages.push(message);
    }
    Ok(messages)
}

/// Sends `message` as a raw body on the unary method `path`.
pub async fn raw_unary(
    channel: &Channel,
    path: &'static str,
    message: Bytes,
) -> Result<Bytes, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    grpc.unary(
        Request::new(message),
        PathAndQuery::from_static(path),
        RawCodec,
    )
    .await
    .map(|r| r.into_inner())
}
