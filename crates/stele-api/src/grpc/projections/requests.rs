//! The Projections service's requests as the subsystem's ([`stele_projections::api`]), and
//! its statistics as the wire's `StatisticsResp.Details` (PROTOCOL-OPS.md §1.2–§1.3). Only
//! the shape is checked here; names and modes are the subsystem's to judge.

use stele_projections::{
    CreateMode, CreateRequest, DeleteRequest, Selector, Statistics, UpdateRequest,
};
use stele_proto::projections::{
    create_req, delete_req, statistics_req, statistics_resp, update_req, StatisticsResp,
};
use tonic::Status;

use crate::grpc::status;

/// The projection engines a Create may name: 0 (unset) and 1 are v1, the only one served.
const ENGINE_V1: [i32; 2] = [0, 1];

/// The `options` every request carries.
pub(super) fn required_options<T>(options: Option<T>) -> Result<T, Status> {
    options.ok_or_else(|| status::required_argument("options", "Options"))
}

/// Create's options: the mode and name, the flags, the query. An engine other than v1 is
/// INVALID_ARGUMENT (this server has no v2 engine).
pub(super) fn create(options: create_req::Options) -> Result<CreateRequest, Status> {
    use create_req::options::Mode;
    if !ENGINE_V1.contains(&options.engine_version) {
        return Err(status::invalid_argument(format!(
            "Projection engine version {} is not supported; this server runs engine version 1",
            options.engine_version
        )));
    }
    let mode = match options.mode {
        Some(Mode::OneTime(_)) => CreateMode::OneTime,
        Some(Mode::Transient(transient)) => CreateMode::Transient {
            name: transient.name,
        },
        Some(Mode::Continuous(continuous)) => CreateMode::Continuous {
            name: continuous.name,
            emit_enabled: continuous.emit_enabled,
            track_emitted_streams: continuous.track_emitted_streams,
        },
        None => return Err(status::required_argument("mode", "ModeOneofCase")),
    };
    Ok(CreateRequest {
        mode,
        query: options.query,
    })
}

/// Update's options; `no_emit_options` (or no emit option at all) leaves emit as it is.
pub(super) fn update(options: update_req::Options) -> UpdateRequest {
    use update_req::options::EmitOption;
    let emit_enabled = match options.emit_option {
        Some(EmitOption::EmitEnabled(enabled)) => Some(enabled),
        Some(EmitOption::NoEmitOptions(_)) | None => None,
    };
    UpdateRequest {
        name: options.name,
        query: options.query,
        emit_enabled,
    }
}

pub(super) fn delete(options: delete_req::Options) -> DeleteRequest {
    DeleteRequest {
        name: options.name,
        delete_emitted_streams: options.delete_emitted_streams,
        delete_state_stream: options.delete_state_stream,
        delete_checkpoint_stream: options.delete_checkpoint_stream,
    }
}

/// Which projections Statistics reports.
pub(super) fn selector(options: statistics_req::Options) -> Result<Selector, Status> {
    use statistics_req::options::Mode;
    Ok(match options.mode {
        Some(Mode::Name(name)) => Selector::Name(name),
        Some(Mode::All(_)) => Selector::All,
        Some(Mode::Transient(_)) => Selector::Transient,
        Some(Mode::Continuous(_)) => Selector::Continuous,
        Some(Mode::OneTime(_)) => Selector::OneTime,
        None => return Err(status::required_argument("mode", "ModeOneofCase")),
    })
}

/// One projection's statistics message.
pub(super) fn statistics(s: Statistics) -> StatisticsResp {
    StatisticsResp {
        details: Some(statistics_resp::Details {
            core_processing_time: s.core_processing_time,
            version: s.version,
            epoch: s.epoch,
            effective_name: s.effective_name,
            writes_in_progress: s.writes_in_progress,
            reads_in_progress: s.reads_in_progress,
            partitions_cached: s.partitions_cached,
            status: s.status,
            state_reason: s.state_reason,
            name: s.name,
            mode: s.mode,
            position: s.position,
            progress: s.progress,
            last_checkpoint: s.last_checkpoint,
            events_processed_after_restart: s.events_processed_after_restart,
            checkpoint_status: s.checkpoint_status,
            buffered_events: s.buffered_events,
            write_pending_events_before_checkpoint: s.write_pending_events_before_checkpoint,
            write_pending_events_after_checkpoint: s.write_pending_events_after_checkpoint,
        }),
    }
}

#[cfg(test)]
mod tests {
    use stele_proto::shared::Empty;
    use tonic::Code;

    use super::*;

    fn continuous(engine_version: i32) -> create_req::Options {
        create_req::Options {
            mode: Some(create_req::options::Mode::Continuous(
                create_req::options::Continuous {
                    name: "p".into(),
                    emit_enabled: true,
                    track_emitted_streams: true,
                },
            )),
            query: "fromAll()".into(),
            engine_version,
        }
    }

    #[test]
    fn create_takes_the_mode_flags_and_query() {
        for engine in [0, 1] {
            assert_eq!(
                create(continuous(engine)).unwrap(),
                CreateRequest {
                    mode: CreateMode::Continuous {
                        name: "p".into(),
                        emit_enabled: true,
                        track_emitted_streams: true,
                    },
                    query: "fromAll()".into(),
                }
            );
        }
        let one_time = create_req::Options {
            mode: Some(create_req::options::Mode::OneTime(Empty {})),
            ..Default::default()
        };
        assert_eq!(create(one_time).unwrap().mode, CreateMode::OneTime);
    }

    #[test]
    fn create_refuses_engine_v2_and_a_missing_mode() {
        let status = create(continuous(2)).unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("engine version 2"), "{status:?}");
        let status = create(create_req::Options::default()).unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
    }

    #[test]
    fn update_emit_is_on_off_or_unchanged() {
        use update_req::options::EmitOption;
        let with = |emit_option| update_req::Options {
            name: "p".into(),
            query: "q".into(),
            emit_option,
        };
        assert_eq!(
            update(with(Some(EmitOption::EmitEnabled(false)))).emit_enabled,
            Some(false)
        );
        assert_eq!(
            update(with(Some(EmitOption::EmitEnabled(true)))).emit_enabled,
            Some(true)
        );
        assert_eq!(
            update(with(Some(EmitOption::NoEmitOptions(Empty {})))).emit_enabled,
            None
        );
        assert_eq!(update(with(None)).emit_enabled, None);
    }

    #[test]
    fn statistics_select_by_mode() {
        use statistics_req::options::Mode;
        let of = |mode| selector(statistics_req::Options { mode: Some(mode) }).unwrap();
        assert_eq!(of(Mode::Name("p".into())), Selector::Name("p".into()));
        assert_eq!(of(Mode::All(Empty {})), Selector::All);
        assert_eq!(of(Mode::Continuous(Empty {})), Selector::Continuous);
        assert_eq!(of(Mode::OneTime(Empty {})), Selector::OneTime);
        assert_eq!(of(Mode::Transient(Empty {})), Selector::Transient);
        assert!(selector(statistics_req::Options { mode: None }).is_err());
    }

    #[test]
    fn statistics_keep_every_field() {
        let details = statistics(Statistics {
            name: "p".into(),
            status: "Running".into(),
            events_processed_after_restart: 2,
            progress: 100.0,
            write_pending_events_after_checkpoint: 4,
            ..Default::default()
        })
        .details
        .unwrap();
        assert_eq!(details.name, "p");
        assert_eq!(details.status, "Running");
        assert_eq!(details.events_processed_after_restart, 2);
        assert_eq!(details.progress, 100.0);
        assert_eq!(details.write_pending_events_after_checkpoint, 4);
    }
}
