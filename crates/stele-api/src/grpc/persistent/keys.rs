//! The group or source a call names, and the helpers every conversion of this service
//! shares. Streams named `$all` in Read, Delete, GetInfo, ReplayParked and List mean the
//! `$all` group, as EventStoreDB reads them; Create and Update name `$all` through `all`.

use stele_proto::persistent::{
    delete_req, get_info_req, list_req, replay_parked_req, DeleteReq, GetInfoReq, ListReq,
    ReplayParkedReq,
};
use stele_proto::shared::StreamIdentifier;
use tonic::Status;

use crate::grpc::{events, status};
use stele_services::persistent::{GroupKey, Source};

/// A stream that a group reads; `$all` means the `$all` group, as EventStoreDB reads it.
pub(super) fn source_of(identifier: Option<&StreamIdentifier>) -> Result<Source, Status> {
    if identifier.is_some_and(|id| id.stream_name.as_ref() == Source::All.name().as_bytes()) {
        return Ok(Source::All);
    }
    events::stream_name(identifier).map(Source::Stream)
}

/// A stream named by Create or Update: `$all` is named through `all`, not as a stream.
pub(super) fn stream_source(identifier: Option<&StreamIdentifier>) -> Result<Source, Status> {
    events::stream_name(identifier).map(Source::Stream)
}

pub(super) fn options_of<T>(options: Option<T>) -> Result<T, Status> {
    options.ok_or_else(|| status::required_argument("options", "Options"))
}

pub(super) fn missing_oneof(type_name: &str) -> Status {
    status::not_a_valid("None", type_name)
}

pub fn delete_key(request: DeleteReq) -> Result<GroupKey, Status> {
    use delete_req::options::StreamOption;
    let options = options_of(request.options)?;
    let source = match &options.stream_option {
        Some(StreamOption::StreamIdentifier(id)) => source_of(Some(id))?,
        Some(StreamOption::All(_)) => Source::All,
        None => return Err(missing_oneof("StreamOptionOneofCase")),
    };
    Ok(GroupKey::new(source, options.group_name))
}

pub fn get_info_key(request: GetInfoReq) -> Result<GroupKey, Status> {
    use get_info_req::options::StreamOption;
    let options = options_of(request.options)?;
    let source = match &options.stream_option {
        Some(StreamOption::StreamIdentifier(id)) => source_of(Some(id))?,
        Some(StreamOption::All(_)) => Source::All,
        None => return Err(missing_oneof("StreamOptionOneofCase")),
    };
    Ok(GroupKey::new(source, options.group_name))
}

/// The group and how many parked messages to replay at most (`None`: all of them).
pub fn replay_parked_plan(request: ReplayParkedReq) -> Result<(GroupKey, Option<u64>), Status> {
    use replay_parked_req::options::{StopAtOption, StreamOption};
    let options = options_of(request.options)?;
    let source = match &options.stream_option {
        Some(StreamOption::StreamIdentifier(id)) => source_of(Some(id))?,
        Some(StreamOption::All(_)) => Source::All,
        None => return Err(missing_oneof("StreamOptionOneofCase")),
    };
    let stop_at = match options.stop_at_option {
        Some(StopAtOption::StopAt(n)) => {
            Some(u64::try_from(n).map_err(|_| status::not_a_valid(n, "stopAt"))?)
        }
        Some(StopAtOption::NoLimit(_)) => None,
        None => return Err(missing_oneof("StopAtOptionOneofCase")),
    };
    Ok((GroupKey::new(source, options.group_name), stop_at))
}

/// Which groups to list: `None` for all of them.
pub fn list_source(request: ListReq) -> Result<Option<Source>, Status> {
    use list_req::options::ListOption;
    use list_req::stream_option::StreamOption;
    let options = options_of(request.options)?;
    match options.list_option {
        Some(ListOption::ListAllSubscriptions(_)) => Ok(None),
        Some(ListOption::ListForStream(for_stream)) => match &for_stream.stream_option {
            Some(StreamOption::Stream(id)) => source_of(Some(id)).map(Some),
            Some(StreamOption::All(_)) => Ok(Some(Source::All)),
            None => Err(missing_oneof("StreamOptionOneofCase")),
        },
        None => Err(missing_oneof("ListOptionOneofCase")),
    }
}

#[cfg(test)]
mod tests {
    use stele_core::StreamName;
    use stele_proto::shared::Empty;
    use tonic::Code;

    use super::*;

    fn identifier(stream: &str) -> StreamIdentifier {
        events::stream_identifier(stream)
    }

    fn stream(name: &str) -> Source {
        Source::Stream(StreamName::new(name).unwrap())
    }

    #[test]
    fn keys_of_delete_info_replay_and_list() {
        let delete = DeleteReq {
            options: Some(delete_req::Options {
                group_name: "g1".into(),
                stream_option: Some(delete_req::options::StreamOption::StreamIdentifier(
                    identifier("orders"),
                )),
            }),
        };
        assert_eq!(
            delete_key(delete).unwrap(),
            GroupKey::new(stream("orders"), "g1")
        );
        let delete_all = DeleteReq {
            options: Some(delete_req::Options {
                group_name: "g1".into(),
                stream_option: Some(delete_req::options::StreamOption::All(Empty {})),
            }),
        };
        assert_eq!(
            delete_key(delete_all).unwrap(),
            GroupKey::new(Source::All, "g1")
        );

        let info = GetInfoReq {
            options: Some(get_info_req::Options {
                group_name: "g1".into(),
                stream_option: Some(get_info_req::options::StreamOption::StreamIdentifier(
                    identifier("$all"),
                )),
            }),
        };
        assert_eq!(
            get_info_key(info).unwrap(),
            GroupKey::new(Source::All, "g1")
        );
        let no_stream = GetInfoReq {
            options: Some(get_info_req::Options {
                group_name: "g1".into(),
                stream_option: None,
            }),
        };
        assert_eq!(
            get_info_key(no_stream).unwrap_err().code(),
            Code::InvalidArgument
        );

        use replay_parked_req::options::{StopAtOption, StreamOption};
        let replay = |stop_at| ReplayParkedReq {
            options: Some(replay_parked_req::Options {
                group_name: "g1".into(),
                stream_option: Some(StreamOption::StreamIdentifier(identifier("orders"))),
                stop_at_option: stop_at,
            }),
        };
        let key = GroupKey::new(stream("orders"), "g1");
        assert_eq!(
            replay_parked_plan(replay(Some(StopAtOption::StopAt(5)))).unwrap(),
            (key.clone(), Some(5))
        );
        assert_eq!(
            replay_parked_plan(replay(Some(StopAtOption::NoLimit(Empty {})))).unwrap(),
            (key, None)
        );
        for bad in [replay(Some(StopAtOption::StopAt(-1))), replay(None)] {
            assert_eq!(
                replay_parked_plan(bad).unwrap_err().code(),
                Code::InvalidArgument
            );
        }

        use list_req::options::ListOption;
        use list_req::stream_option::StreamOption as ListStream;
        let list = |option| ListReq {
            options: Some(list_req::Options {
                list_option: option,
            }),
        };
        assert_eq!(
            list_source(list(Some(ListOption::ListAllSubscriptions(Empty {})))).unwrap(),
            None
        );
        assert_eq!(
            list_source(list(Some(ListOption::ListForStream(
                list_req::StreamOption {
                    stream_option: Some(ListStream::Stream(identifier("orders"))),
                }
            ))))
            .unwrap(),
            Some(stream("orders"))
        );
        assert_eq!(
            list_source(list(Some(ListOption::ListForStream(
                list_req::StreamOption {
                    stream_option: Some(ListStream::All(Empty {})),
                }
            ))))
            .unwrap(),
            Some(Source::All)
        );
        assert_eq!(
            list_source(list(None)).unwrap_err().code(),
            Code::InvalidArgument
        );
    }
}
