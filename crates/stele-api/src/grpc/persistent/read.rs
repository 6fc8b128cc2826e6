//! The Read call: a consumer of a group. The first client message must be `options`
//! (INVALID_ARGUMENT otherwise; a call closed before any message ends quietly, as in
//! EventStoreDB). The answer is `subscription_confirmation` first, then one `event` per
//! delivery with `retry_count` always set and the position of the link, if any, else of the
//! event. A consumer the group drops ends the call with the engine's error; one whose group
//! goes away without a word ends it with the dropped status too, never with OK: the Rust
//! client panics on a stream that ends cleanly (`unreachable!` in `next_subscription_event`).
//! Event ids are written in the form `uuid_option` asks for (structured when unset, as
//! EventStoreDB does).
//!
//! A task reads the client's acks and nacks (ids in either UUID form; `id` ignored) and
//! hands them to the consumer; the response stream owns the [`Consumer`], so a client that
//! hangs up drops it, and dropping the stream stops that task. A nack with action `Unknown`
//! is a retry, as in EventStoreDB (`PersistentSubscription.HandleNackedMessage`). A bad
//! client message ends the call with INVALID_ARGUMENT. The consumer's `connection-name`
//! header (`<unknown>` without one, as EventStoreDB writes it) and the peer address go to
//! the group's info; EventStoreDB leaves `from` empty over gRPC, the address says more.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use stele_core::RecordedEvent;
use stele_proto::persistent::{read_req, read_resp, ReadReq, ReadResp};
use stele_proto::streams::read_resp::read_event as streams_read_event;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::metadata::MetadataMap;
use tonic::Status;
use uuid::Uuid;

use super::info::saturate_i32;
use super::keys::{missing_oneof, source_of};
use crate::grpc::request_headers::CONNECTION_NAME;
use crate::grpc::wire_uuid::{self, UuidFormat};
use crate::grpc::{events, status};
use stele_services::persistent::{
    Consumer, ConsumerHandle, Delivery, GroupKey, Message, NackAction, PsError, Source,
};

/// The connection name of a consumer that sent no `connection-name` header.
pub const UNKNOWN_CONNECTION_NAME: &str = "<unknown>";

/// The answer stream of one Read call.
pub type ReadStream = Pin<Box<dyn Stream<Item = Result<ReadResp, Status>> + Send + 'static>>;

/// What a Read call's options ask for.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectPlan {
    pub key: GroupKey,
    pub buffer_size: u32,
    pub uuid_format: UuidFormat,
}

/// The `connection-name` header, or EventStoreDB's `<unknown>`.
pub fn connection_name(headers: &MetadataMap) -> String {
    headers
        .get(CONNECTION_NAME)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .unwrap_or_else(|| UNKNOWN_CONNECTION_NAME.to_owned())
}

/// Reads the first message of a Read call, which must be the options.
pub fn connect_plan(first: ReadReq) -> Result<ConnectPlan, Status> {
    use read_req::options::uuid_option::Content as UuidContent;
    use read_req::options::StreamOption;
    let Some(read_req::Content::Options(options)) = first.content else {
        return Err(status::invalid_argument(
            "The first message of a persistent subscription must be its options",
        ));
    };
    let source = match &options.stream_option {
        Some(StreamOption::StreamIdentifier(id)) => source_of(Some(id))?,
        Some(StreamOption::All(_)) => Source::All,
        None => return Err(missing_oneof("StreamOptionOneofCase")),
    };
    let buffer_size = u32::try_from(options.buffer_size)
        .ok()
        .filter(|&size| size > 0)
        .ok_or_else(|| status::not_a_valid(options.buffer_size, "bufferSize"))?;
    let uuid_format = match options.uuid_option.and_then(|o| o.content) {
        Some(UuidContent::String(_)) => UuidFormat::String,
        Some(UuidContent::Structured(_)) | None => UuidFormat::Structured,
    };
    Ok(ConnectPlan {
        key: GroupKey::new(source, options.group_name),
        buffer_size,
        uuid_format,
    })
}

/// What a consumer sends after its options.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    Ack(Vec<Uuid>),
    Nack {
        ids: Vec<Uuid>,
        action: NackAction,
        reason: String,
    },
}

/// A nack's action. `Unknown` leaves the choice to the server, and EventStoreDB retries.
pub fn nack_action(action: i32) -> Result<NackAction, Status> {
    use read_req::nack::Action;
    match Action::try_from(action) {
        Ok(Action::Unknown | Action::Retry) => Ok(NackAction::Retry),
        Ok(Action::Park) => Ok(NackAction::Park),
        Ok(Action::Skip) => Ok(NackAction::Skip),
        Ok(Action::Stop) => Ok(NackAction::Stop),
        Err(_) => Err(status::not_a_valid(action, "Action")),
    }
}

fn message_ids(ids: &[stele_proto::shared::Uuid]) -> Result<Vec<Uuid>, Status> {
    ids.iter()
        .map(|id| wire_uuid::from_wire(id).map_err(|e| status::invalid_argument(e.to_string())))
        .collect()
}

/// An ack or nack (`id` is ignored: clients fill it differently).
pub fn client_message(request: ReadReq) -> Result<ClientMessage, Status> {
    match request.content {
        Some(read_req::Content::Ack(ack)) => Ok(ClientMessage::Ack(message_ids(&ack.ids)?)),
        Some(read_req::Content::Nack(nack)) => Ok(ClientMessage::Nack {
            ids: message_ids(&nack.ids)?,
            action: nack_action(nack.action)?,
            reason: nack.reason,
        }),
        Some(read_req::Content::Options(_)) => {
            Err(status::not_a_valid("Options", "ContentOneofCase"))
        }
        None => Err(missing_oneof("ContentOneofCase")),
    }
}

/// A recorded event in the PersistentSubscriptions message, which has the same fields as
/// the Streams one (so the same ids, positions and three metadata keys).
fn recorded_event(
    event: &RecordedEvent,
    format: UuidFormat,
) -> read_resp::read_event::RecordedEvent {
    let streams_read_event::RecordedEvent {
        id,
        stream_identifier,
        stream_revision,
        prepare_position,
        commit_position,
        metadata,
        custom_metadata,
        data,
    } = events::recorded_event(event, format);
    read_resp::read_event::RecordedEvent {
        id,
        stream_identifier,
        stream_revision,
        prepare_position,
        commit_position,
        metadata,
        custom_metadata,
        data,
    }
}

/// One delivery: the event and its link, the position of the record the group read (the
/// link's, if any), and the retry count, always set.
pub fn read_event(message: &Message, format: UuidFormat) -> ReadResp {
    use read_resp::read_event::{Count, Position};
    ReadResp {
        content: Some(read_resp::Content::Event(read_resp::ReadEvent {
            event: message.event.as_ref().map(|e| recorded_event(e, format)),
            link: message.link.as_ref().map(|e| recorded_event(e, format)),
            position: Some(Position::CommitPosition(message.original().position.0)),
            count: Some(Count::RetryCount(saturate_i32(u64::from(
                message.retry_count,
            )))),
        })),
    }
}

pub fn confirmation(subscription_id: String) -> ReadResp {
    ReadResp {
        content: Some(read_resp::Content::SubscriptionConfirmation(
            read_resp::SubscriptionConfirmation { subscription_id },
        )),
    }
}

/// Aborts the task reading the client's messages when the answer stream goes away.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct ReadState {
    key: GroupKey,
    confirmation: Option<String>,
    consumer: Consumer,
    format: UuidFormat,
    /// A bad client message ends the call with this status; `None` once the reading task
    /// ended without one (the client closed its side, which ends nothing).
    failure: Option<oneshot::Receiver<Status>>,
    done: bool,
    _reader: AbortOnDrop,
}

/// The answer stream of a Read call: the confirmation, then the consumer's deliveries.
pub(super) fn read_stream<S>(
    key: GroupKey,
    consumer: Consumer,
    requests: S,
    format: UuidFormat,
) -> ReadStream
where
    S: Stream<Item = Result<ReadReq, Status>> + Send + Unpin + 'static,
{
    let (failure_tx, failure_rx) = oneshot::channel();
    let reader = tokio::spawn(pump_client_messages(
        requests,
        consumer.handle(),
        failure_tx,
    ));
    let state = ReadState {
        key,
        confirmation: Some(consumer.subscription_id()),
        consumer,
        format,
        failure: Some(failure_rx),
        done: false,
        _reader: AbortOnDrop(reader),
    };
    Box::pin(futures::stream::unfold(state, next_answer))
}

enum Next {
    Delivery(Option<Delivery>),
    Failed(Result<Status, oneshot::error::RecvError>),
}

async fn next_answer(mut state: ReadState) -> Option<(Result<ReadResp, Status>, ReadState)> {
    if state.done {
        return None;
    }
    if let Some(id) = state.confirmation.take() {
        return Some((Ok(confirmation(id)), state));
    }
    loop {
        let next = match state.failure.as_mut() {
            Some(failure) => tokio::select! {
                delivery = state.consumer.next() => Next::Delivery(delivery),
                failed = failure => Next::Failed(failed),
            },
            None => Next::Delivery(state.consumer.next().await),
        };
        match next {
            Next::Delivery(Some(Delivery::Message(message))) => {
                let answer = read_event(&message, state.format);
                return Some((Ok(answer), state));
            }
            Next::Delivery(Some(Delivery::Dropped(error))) => {
                state.done = true;
                return Some((Err(status::persistent_error(&error)), state));
            }
            Next::Delivery(None) => {
                state.done = true;
                let dropped = PsError::dropped(&state.key);
                return Some((Err(status::persistent_error(&dropped)), state));
            }
            Next::Failed(Ok(status)) => {
                state.done = true;
                return Some((Err(status), state));
            }
            Next::Failed(Err(_)) => state.failure = None,
        }
    }
}

/// Hands the client's acks and nacks to its consumer until the client closes its side. A
/// bad message, or a broken request stream, is reported through `failure`.
async fn pump_client_messages<S>(
    mut requests: S,
    handle: ConsumerHandle,
    failure: oneshot::Sender<Status>,
) where
    S: Stream<Item = Result<ReadReq, Status>> + Send + Unpin + 'static,
{
    while let Some(request) = requests.next().await {
        let message = request.and_then(client_message);
        match message {
            Ok(ClientMessage::Ack(ids)) => handle.ack(ids),
            Ok(ClientMessage::Nack {
                ids,
                action,
                reason,
            }) => handle.nack(ids, action, reason),
            Err(status) => {
                let _ = failure.send(status);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use stele_core::{ContentType, EventRecord, LogPosition, StreamName, StreamRevision};
    use stele_proto::shared::{self, Empty, StreamIdentifier};
    use tonic::Code;

    use super::*;

    fn identifier(stream: &str) -> StreamIdentifier {
        events::stream_identifier(stream)
    }

    fn stream(name: &str) -> Source {
        Source::Stream(StreamName::new(name).unwrap())
    }

    #[test]
    fn read_options_must_come_first() {
        let ack = ReadReq {
            content: Some(read_req::Content::Ack(read_req::Ack::default())),
        };
        assert_eq!(connect_plan(ack).unwrap_err().code(), Code::InvalidArgument);
        assert_eq!(
            connect_plan(ReadReq { content: None }).unwrap_err().code(),
            Code::InvalidArgument
        );
    }

    fn read_options(
        stream_option: Option<read_req::options::StreamOption>,
        buffer_size: i32,
        uuid: Option<read_req::options::uuid_option::Content>,
    ) -> ReadReq {
        ReadReq {
            content: Some(read_req::Content::Options(read_req::Options {
                group_name: "g1".into(),
                buffer_size,
                uuid_option: uuid.map(|content| read_req::options::UuidOption {
                    content: Some(content),
                }),
                stream_option,
            })),
        }
    }

    #[test]
    fn read_options_name_the_group_buffer_and_uuid_form() {
        use read_req::options::uuid_option::Content;
        use read_req::options::StreamOption;
        let plan = connect_plan(read_options(
            Some(StreamOption::StreamIdentifier(identifier("orders"))),
            10,
            Some(Content::String(Empty {})),
        ))
        .unwrap();
        assert_eq!(
            plan,
            ConnectPlan {
                key: GroupKey::new(stream("orders"), "g1"),
                buffer_size: 10,
                uuid_format: UuidFormat::String,
            }
        );
        let all = connect_plan(read_options(
            Some(StreamOption::All(Empty {})),
            1,
            Some(Content::Structured(Empty {})),
        ))
        .unwrap();
        assert_eq!(all.key.source, Source::All);
        assert_eq!(all.uuid_format, UuidFormat::Structured);
        // No uuid_option: structured, as EventStoreDB answers.
        let unset = connect_plan(read_options(
            Some(StreamOption::StreamIdentifier(identifier("$all"))),
            1,
            None,
        ))
        .unwrap();
        assert_eq!(unset.uuid_format, UuidFormat::Structured);
        assert_eq!(unset.key.source, Source::All);

        for bad in [
            read_options(None, 10, None),
            read_options(Some(StreamOption::All(Empty {})), 0, None),
            read_options(Some(StreamOption::All(Empty {})), -5, None),
        ] {
            assert_eq!(connect_plan(bad).unwrap_err().code(), Code::InvalidArgument);
        }
    }

    #[test]
    fn nack_actions_map_and_unknown_is_a_retry() {
        use read_req::nack::Action;
        assert_eq!(
            nack_action(Action::Unknown as i32).unwrap(),
            NackAction::Retry
        );
        assert_eq!(
            nack_action(Action::Retry as i32).unwrap(),
            NackAction::Retry
        );
        assert_eq!(nack_action(Action::Park as i32).unwrap(), NackAction::Park);
        assert_eq!(nack_action(Action::Skip as i32).unwrap(), NackAction::Skip);
        assert_eq!(nack_action(Action::Stop as i32).unwrap(), NackAction::Stop);
        let bad = nack_action(9).unwrap_err();
        assert_eq!(bad.code(), Code::InvalidArgument);
        assert_eq!(bad.message(), "'9' is not a valid Action");
    }

    #[test]
    fn acks_and_nacks_take_either_uuid_form_and_ignore_id() {
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        let ack = ReadReq {
            content: Some(read_req::Content::Ack(read_req::Ack {
                id: Bytes::from_static(b"orders::g1"),
                ids: vec![wire_uuid::to_structured(a), wire_uuid::to_string_form(b)],
            })),
        };
        assert_eq!(client_message(ack).unwrap(), ClientMessage::Ack(vec![a, b]));
        let nack = ReadReq {
            content: Some(read_req::Content::Nack(read_req::Nack {
                id: Bytes::new(),
                ids: vec![wire_uuid::to_string_form(a)],
                action: read_req::nack::Action::Park as i32,
                reason: "poison".into(),
            })),
        };
        assert_eq!(
            client_message(nack).unwrap(),
            ClientMessage::Nack {
                ids: vec![a],
                action: NackAction::Park,
                reason: "poison".into(),
            }
        );

        let bad_id = ReadReq {
            content: Some(read_req::Content::Ack(read_req::Ack {
                id: Bytes::new(),
                ids: vec![shared::Uuid {
                    value: Some(shared::uuid::Value::String("nope".into())),
                }],
            })),
        };
        assert_eq!(
            client_message(bad_id).unwrap_err().code(),
            Code::InvalidArgument
        );
        let options_again = read_options(None, 1, None);
        assert_eq!(
            client_message(options_again).unwrap_err().code(),
            Code::InvalidArgument
        );
        assert_eq!(
            client_message(ReadReq { content: None })
                .unwrap_err()
                .code(),
            Code::InvalidArgument
        );
    }

    fn recorded(stream: &str, revision: u64, position: u64, event_type: &str) -> RecordedEvent {
        RecordedEvent {
            record: EventRecord {
                stream: StreamName::new(stream).unwrap(),
                id: Uuid::new_v4(),
                event_type: event_type.into(),
                content_type: ContentType::Json,
                created_ticks: 638_000_000_000_000_000,
                custom_metadata: Bytes::from_static(b"m"),
                data: Bytes::from_static(b"{}"),
            },
            revision: StreamRevision(revision),
            position: LogPosition(position),
        }
    }

    fn event_of(resp: ReadResp) -> read_resp::ReadEvent {
        match resp.content {
            Some(read_resp::Content::Event(event)) => event,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    #[test]
    fn deliveries_carry_the_link_position_and_always_a_retry_count() {
        use read_resp::read_event::{Count, Position};
        let target = recorded("orders-1", 2, 100, "OrderPlaced");
        let link = recorded("$ce-orders", 7, 500, "$>");
        let message = Message {
            event: Some(target.clone()),
            link: Some(link.clone()),
            retry_count: 3,
        };
        let event = event_of(read_event(&message, UuidFormat::String));
        assert_eq!(event.position, Some(Position::CommitPosition(500)));
        assert_eq!(event.count, Some(Count::RetryCount(3)));
        let wire_event = event.event.unwrap();
        assert_eq!(
            wire_event.id.unwrap().value,
            Some(shared::uuid::Value::String(target.record.id.to_string()))
        );
        assert_eq!(wire_event.stream_revision, 2);
        assert_eq!(wire_event.commit_position, 100);
        assert_eq!(wire_event.prepare_position, 100);
        assert_eq!(wire_event.metadata.len(), 3);
        assert_eq!(wire_event.metadata["type"], "OrderPlaced");
        assert_eq!(wire_event.metadata["content-type"], "application/json");
        assert_eq!(wire_event.metadata["created"], "638000000000000000");
        assert_eq!(wire_event.data.as_ref(), b"{}");
        assert_eq!(wire_event.custom_metadata.as_ref(), b"m");
        let wire_link = event.link.unwrap();
        assert_eq!(
            wire_link.stream_identifier.unwrap().stream_name.as_ref(),
            b"$ce-orders"
        );
        assert_eq!(wire_link.commit_position, 500);

        // A plain event, first delivery, structured ids.
        let plain = Message {
            event: Some(target.clone()),
            link: None,
            retry_count: 0,
        };
        let event = event_of(read_event(&plain, UuidFormat::Structured));
        assert_eq!(event.position, Some(Position::CommitPosition(100)));
        assert_eq!(event.count, Some(Count::RetryCount(0)));
        assert!(event.link.is_none());
        assert_eq!(
            event.event.unwrap().id.unwrap(),
            wire_uuid::to_structured(target.record.id)
        );

        // A link whose target cannot be read: only the link.
        let unresolved = Message {
            event: None,
            link: Some(link),
            retry_count: 1,
        };
        let event = event_of(read_event(&unresolved, UuidFormat::String));
        assert!(event.event.is_none());
        assert!(event.link.is_some());
        assert_eq!(event.position, Some(Position::CommitPosition(500)));
    }

    #[test]
    fn confirmation_carries_the_subscription_id() {
        let resp = confirmation("$all::g1".into());
        assert_eq!(
            resp.content,
            Some(read_resp::Content::SubscriptionConfirmation(
                read_resp::SubscriptionConfirmation {
                    subscription_id: "$all::g1".into()
                }
            ))
        );
    }

    #[test]
    fn connection_name_defaults_like_eventstoredb() {
        let mut headers = MetadataMap::new();
        assert_eq!(connection_name(&headers), "<unknown>");
        headers.insert(CONNECTION_NAME, "worker-1".parse().unwrap());
        assert_eq!(connection_name(&headers), "worker-1");
    }
}
