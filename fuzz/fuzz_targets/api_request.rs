//! stele-api: client requests from protobuf bytes to the domain. Each input is decoded with
//! prost as one of the request types the gRPC services receive, then run through the pure
//! conversions the services use: `events::stream_name` and `events::proposed_event` (Append,
//! BatchAppend, Delete, Tombstone), `read::plan` with `subscribe::plan` (Read),
//! `event_filter::from_options` (and matching an event), `batch_timeout` and the wire uuids
//! (BatchAppend), and the persistent-subscription conversions `create_definition`,
//! `update_definition`, `connect_plan`, `client_message`, `delete_key`, `get_info_key`,
//! `replay_parked_plan` and `list_source`.
//!
//! Input: a byte choosing the request type, then the protobuf message.
//!
//! Checks: nothing panics; a rejected request is a tonic `Status` with a message.
#![no_main]

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use stele_api::grpc::event_filter;
use stele_api::grpc::events::{proposed_event, stream_name};
use stele_api::grpc::persistent as ps;
use stele_api::grpc::streams::{batch_append, read};
use stele_api::grpc::wire_uuid;
use stele_core::{
    ContentType, EventRecord, LogPosition, RecordedEvent, StreamName, StreamRevision,
};
use stele_fuzz::Input;
use stele_proto::persistent;
use stele_proto::streams::{self, append_req, read_req};
use tonic::Status;

fuzz_target!(|data: &[u8]| {
    stele_fuzz::init();
    let mut input = Input::new(data);
    let kind = input.byte();
    let bytes = input.rest();
    match kind % 12 {
        0 => decoded::<streams::AppendReq>(bytes, append),
        1 => decoded::<streams::ReadReq>(bytes, streams_read),
        2 => decoded::<streams::BatchAppendReq>(bytes, batch),
        3 => decoded::<streams::DeleteReq>(bytes, |r| {
            checked(stream_name(r.options.and_then(|o| o.stream_identifier).as_ref()).map(drop))
        }),
        4 => decoded::<streams::TombstoneReq>(bytes, |r| {
            checked(stream_name(r.options.and_then(|o| o.stream_identifier).as_ref()).map(drop))
        }),
        5 => {
            decoded::<persistent::CreateReq>(bytes, |r| checked(ps::create_definition(r).map(drop)))
        }
        6 => {
            decoded::<persistent::UpdateReq>(bytes, |r| checked(ps::update_definition(r).map(drop)))
        }
        7 => decoded::<persistent::ReadReq>(bytes, |r| {
            checked(ps::connect_plan(r.clone()).map(drop));
            checked(ps::client_message(r).map(drop));
        }),
        8 => decoded::<persistent::DeleteReq>(bytes, |r| checked(ps::delete_key(r).map(drop))),
        9 => decoded::<persistent::GetInfoReq>(bytes, |r| checked(ps::get_info_key(r).map(drop))),
        10 => decoded::<persistent::ReplayParkedReq>(bytes, |r| {
            checked(ps::replay_parked_plan(r).map(drop))
        }),
        _ => decoded::<persistent::ListReq>(bytes, |r| checked(ps::list_source(r).map(drop))),
    }
});

fn decoded<M: Message + Default>(bytes: &[u8], convert: impl FnOnce(M)) {
    if let Ok(message) = M::decode(bytes) {
        convert(message);
    }
}

fn checked(result: Result<(), Status>) {
    if let Err(status) = result {
        assert!(!status.message().is_empty(), "a status without a message");
    }
}

fn append(request: streams::AppendReq) {
    match request.content {
        Some(append_req::Content::Options(options)) => {
            checked(stream_name(options.stream_identifier.as_ref()).map(drop))
        }
        Some(append_req::Content::ProposedMessage(m)) => {
            checked(proposed_event(m.id.as_ref(), &m.metadata, m.custom_metadata, m.data).map(drop))
        }
        None => {}
    }
}

fn streams_read(request: streams::ReadReq) {
    if let Some(read_req::options::FilterOption::Filter(filter)) = request
        .options
        .as_ref()
        .and_then(|o| o.filter_option.as_ref())
    {
        match event_filter::from_options(filter) {
            Ok(filter) => {
                filter.accepts(&event("orders-1", "OrderPlaced"));
                filter.accepts(&event("$$orders-1", "$metadata"));
            }
            Err(status) => checked(Err(status)),
        }
    }
    checked(read::plan(request).map(drop));
}

fn batch(request: streams::BatchAppendReq) {
    if let Err(e) = wire_uuid::from_wire_opt(request.correlation_id.as_ref()) {
        assert!(!e.to_string().is_empty());
    }
    if let Some(options) = &request.options {
        let timeout = batch_append::batch_timeout(
            options.deadline_option.as_ref(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        );
        if let Some(timeout) = timeout {
            assert!(timeout > Duration::ZERO && timeout <= batch_append::BATCH_WRITE_TIMEOUT);
        }
        if let Some(identifier) = &options.stream_identifier {
            let _ = StreamName::from_bytes(&identifier.stream_name);
        }
    }
    for m in request.proposed_messages {
        checked(proposed_event(m.id.as_ref(), &m.metadata, m.custom_metadata, m.data).map(drop));
    }
}

fn event(stream: &str, event_type: &str) -> RecordedEvent {
    RecordedEvent {
        record: EventRecord {
            stream: StreamName::new(stream).expect("valid stream"),
            id: uuid::Uuid::nil(),
            event_type: event_type.to_owned(),
            content_type: ContentType::Json,
            created_ticks: 0,
            custom_metadata: Bytes::new(),
            data: Bytes::new(),
        },
        revision: StreamRevision(0),
        position: LogPosition(0),
    }
}
