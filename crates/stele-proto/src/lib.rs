//! Stele's `.proto` files for the EventStoreDB/KurrentDB client wire contract and the code
//! generated from them: prost messages, tonic servers and tonic clients (the clients serve
//! tests). The files live in `proto/` and were written from PROTOCOL.md; package, message
//! and field names and numbers are the interface and never change.
//!
//! The generated modules nest like the protobuf packages (the generated code refers to
//! other packages through `super::`), and short aliases are re-exported:
//! `stele_proto::shared` (`event_store.client`), `stele_proto::streams`,
//! `stele_proto::gossip`, `stele_proto::server_features`, `stele_proto::operations`,
//! `stele_proto::persistent` (`event_store.client.persistent_subscriptions`),
//! `stele_proto::users` (`event_store.client.users`, from PROTOCOL-OPS.md §3.1),
//! `stele_proto::projections` (`event_store.client.projections`, from PROTOCOL-OPS.md §1.2)
//! and `stele_proto::google_rpc`.
//!
//! Deliberately absent for now: monitoring and the v2 protocol, whose full message shapes
//! PROTOCOL.md does not give yet.

pub mod codec;

/// The protobuf package tree as generated.
pub mod event_store {
    pub mod client {
        #![allow(clippy::all, missing_docs)]
        include!(concat!(env!("OUT_DIR"), "/event_store.client.rs"));

        pub mod streams {
            #![allow(clippy::all, missing_docs)]
            include!(concat!(env!("OUT_DIR"), "/event_store.client.streams.rs"));
        }

        pub mod server_features {
            #![allow(clippy::all, missing_docs)]
            include!(concat!(
                env!("OUT_DIR"),
                "/event_store.client.server_features.rs"
            ));
        }

        pub mod gossip {
            #![allow(clippy::all, missing_docs)]
            include!(concat!(env!("OUT_DIR"), "/event_store.client.gossip.rs"));
        }

        pub mod operations {
            #![allow(clippy::all, missing_docs)]
            include!(concat!(
                env!("OUT_DIR"),
                "/event_store.client.operations.rs"
            ));
        }

        pub mod persistent_subscriptions {
            #![allow(clippy::all, missing_docs)]
            include!(concat!(
                env!("OUT_DIR"),
                "/event_store.client.persistent_subscriptions.rs"
            ));
        }

        pub mod users {
            #![allow(clippy::all, missing_docs)]
            include!(concat!(env!("OUT_DIR"), "/event_store.client.users.rs"));
        }

        pub mod projections {
            #![allow(clippy::all, missing_docs)]
            include!(concat!(
                env!("OUT_DIR"),
                "/event_store.client.projections.rs"
            ));
        }
    }
}

/// `google.rpc`: the Status carried in-band by BatchAppend, and the Code enum.
pub mod google {
    pub mod rpc {
        #![allow(clippy::all, missing_docs)]
        include!(concat!(env!("OUT_DIR"), "/google.rpc.rs"));
    }
}

pub use event_store::client as shared;
pub use event_store::client::persistent_subscriptions as persistent;
pub use event_store::client::{gossip, operations, projections, server_features, streams, users};
pub use google::rpc as google_rpc;

/// The type URL prefix of a packed `google.protobuf.Any`.
pub const TYPE_URL_PREFIX: &str = "type.googleapis.com/";

#[cfg(test)]
mod tests {
    use prost::{Message, Name};

    use super::*;

    #[test]
    fn service_names_make_the_wire_paths() {
        assert_eq!(
            streams::streams_server::SERVICE_NAME,
            "event_store.client.streams.Streams"
        );
        assert_eq!(
            server_features::server_features_server::SERVICE_NAME,
            "event_store.client.server_features.ServerFeatures"
        );
        assert_eq!(
            gossip::gossip_server::SERVICE_NAME,
            "event_store.client.gossip.Gossip"
        );
        assert_eq!(
            operations::operations_server::SERVICE_NAME,
            "event_store.client.operations.Operations"
        );
        assert_eq!(
            persistent::persistent_subscriptions_server::SERVICE_NAME,
            "event_store.client.persistent_subscriptions.PersistentSubscriptions"
        );
        assert_eq!(
            users::users_server::SERVICE_NAME,
            "event_store.client.users.Users"
        );
    }

    #[test]
    fn projections_field_numbers_follow_the_protocol() {
        use projections::{create_req, statistics_resp, update_req, CreateReq, StatisticsResp};
        assert_eq!(
            projections::projections_server::SERVICE_NAME,
            "event_store.client.projections.Projections"
        );
        // CreateReq.options = 1 holding continuous = 3 {name = 1, track = 3}, engine = 5.
        let create = CreateReq {
            options: Some(create_req::Options {
                mode: Some(create_req::options::Mode::Continuous(
                    create_req::options::Continuous {
                        name: "p".into(),
                        emit_enabled: false,
                        track_emitted_streams: true,
                    },
                )),
                query: String::new(),
                engine_version: 1,
            }),
        };
        assert_eq!(
            create.encode_to_vec(),
            vec![
                0x0a,
                9,
                (3 << 3) | 2,
                5,
                0x0a,
                1,
                b'p',
                3 << 3,
                1,
                5 << 3,
                1
            ]
        );
        // UpdateReq.Options.no_emit_options = 4 (an empty message).
        let update = projections::UpdateReq {
            options: Some(update_req::Options {
                name: String::new(),
                query: String::new(),
                emit_option: Some(update_req::options::EmitOption::NoEmitOptions(
                    shared::Empty {},
                )),
            }),
        };
        assert_eq!(update.encode_to_vec(), vec![0x0a, 2, (4 << 3) | 2, 0]);
        // StatisticsResp.details = 1 holding eventsProcessedAfterRestart = 15.
        let statistics = StatisticsResp {
            details: Some(statistics_resp::Details {
                events_processed_after_restart: 2,
                ..Default::default()
            }),
        };
        assert_eq!(statistics.encode_to_vec(), vec![0x0a, 2, 15 << 3, 2]);
    }

    #[test]
    fn stream_identifier_uses_field_three() {
        let id = shared::StreamIdentifier {
            stream_name: "ab".into(),
        };
        assert_eq!(id.encode_to_vec(), vec![0x1a, 2, b'a', b'b']);
    }

    #[test]
    fn in_band_error_details_have_the_type_urls_clients_test_for() {
        assert_eq!(
            shared::WrongExpectedVersion::type_url(),
            "type.googleapis.com/event_store.client.WrongExpectedVersion"
        );
        assert_eq!(
            shared::MaximumAppendSizeExceeded::type_url(),
            "type.googleapis.com/event_store.client.MaximumAppendSizeExceeded"
        );
    }

    #[test]
    fn status_details_is_one_any_in_field_three() {
        let status = google_rpc::Status {
            code: google_rpc::Code::AlreadyExists as i32,
            message: "x".into(),
            details: Some(prost_types::Any {
                type_url: "t".into(),
                value: vec![],
            }),
        };
        // code (field 1, varint 6), message (field 2), details (field 3, length-delimited
        // Any holding type_url "t").
        assert_eq!(
            status.encode_to_vec(),
            vec![0x08, 6, 0x12, 1, b'x', 0x1a, 3, 0x0a, 1, b't']
        );
    }

    #[test]
    fn wrong_expected_version_current_fields_are_six_to_eleven() {
        use streams::append_resp::wrong_expected_version::{
            CurrentRevisionOption, ExpectedRevisionOption,
        };
        let wev = streams::append_resp::WrongExpectedVersion {
            current_revision_option: Some(CurrentRevisionOption::CurrentRevision(1)),
            expected_revision_option: Some(ExpectedRevisionOption::ExpectedNoStream(
                shared::Empty {},
            )),
            ..Default::default()
        };
        assert_eq!(wev.encode_to_vec(), vec![6 << 3, 1, (11 << 3) | 2, 0]);
    }

    #[test]
    fn persistent_field_numbers_follow_the_protocol() {
        use persistent::{read_req, read_resp, ReadReq, ReadResp, SubscriptionInfo};
        // ReadReq.options = 1 holding Options.all = 5 (an empty message).
        let options = ReadReq {
            content: Some(read_req::Content::Options(read_req::Options {
                stream_option: Some(read_req::options::StreamOption::All(shared::Empty {})),
                ..Default::default()
            })),
        };
        assert_eq!(options.encode_to_vec(), vec![0x0a, 2, (5 << 3) | 2, 0]);
        // ReadResp.event = 1 holding ReadEvent.retry_count = 5.
        let event = ReadResp {
            content: Some(read_resp::Content::Event(read_resp::ReadEvent {
                count: Some(read_resp::read_event::Count::RetryCount(3)),
                ..Default::default()
            })),
        };
        assert_eq!(event.encode_to_vec(), vec![0x0a, 2, 5 << 3, 3]);
        // SubscriptionInfo.named_consumer_strategy = 26 is a string.
        let info = SubscriptionInfo {
            named_consumer_strategy: "P".into(),
            ..Default::default()
        };
        assert_eq!(info.encode_to_vec(), vec![(26 << 3) | 2, 1, 1, b'P']);
    }

    #[test]
    fn users_field_numbers_follow_the_protocol() {
        use users::details_resp::user_details::DateTime;
        use users::details_resp::UserDetails;
        use users::{change_password_req, ChangePasswordReq, DetailsResp};
        // ChangePasswordReq.options = 1 holding current_password = 2, new_password = 3.
        let request = ChangePasswordReq {
            options: Some(change_password_req::Options {
                login_name: String::new(),
                current_password: "a".into(),
                new_password: "b".into(),
            }),
        };
        assert_eq!(
            request.encode_to_vec(),
            vec![0x0a, 6, (2 << 3) | 2, 1, b'a', (3 << 3) | 2, 1, b'b']
        );
        // DetailsResp.user_details = 1 holding last_updated = 4 (ticks 7 in its field 1) and
        // disabled = 5.
        let details = DetailsResp {
            user_details: Some(UserDetails {
                last_updated: Some(DateTime {
                    ticks_since_epoch: 7,
                }),
                disabled: true,
                ..Default::default()
            }),
        };
        assert_eq!(
            details.encode_to_vec(),
            vec![0x0a, 6, (4 << 3) | 2, 2, 1 << 3, 7, 5 << 3, 1]
        );
    }
}
