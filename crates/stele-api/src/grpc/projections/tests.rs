//! The Projections service against a real in-memory node and its secure access control:
//! what the wire layer decides before the subsystem is asked (authorization, request shape,
//! the engine version), and the service being absent when projections are not run. The
//! fixture serves the HTTP route tests too.

use futures::StreamExt;
use stele_cluster::Node;
use stele_core::access::Principal;
use stele_projections::{Config, RunProjections};
use stele_proto::projections::projections_client::ProjectionsClient;
use stele_proto::projections::{
    create_req, delete_req, disable_req, enable_req, reset_req, result_req, state_req,
    statistics_req, update_req,
};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Code;

use super::*;
use crate::grpc::users::tests::{admin, plain, start};

/// The subsystem of `node` with `run`.
pub(crate) fn projections(node: &Node, access: &AccessControl, run: RunProjections) -> Projections {
    Projections::start(
        node.clone(),
        access.clone(),
        Config {
            run,
            ..Config::default()
        },
    )
}

/// A ready node, its access control and its subsystem running every projection.
pub(crate) async fn fixture() -> (Node, AccessControl, Projections) {
    let (node, _users, access) = start().await;
    let projections = projections(&node, &access, RunProjections::All);
    (node, access, projections)
}

fn request<T>(message: T, as_: Option<&Principal>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(principal) = as_ {
        request.extensions_mut().insert(principal.clone());
    }
    request
}

fn assert_denied(status: &Status) {
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(status.message(), "Access Denied");
    assert_eq!(
        status.metadata().get("exception").map(|v| v.as_bytes()),
        Some(&b"access-denied"[..])
    );
}

fn continuous(name: &str, engine_version: i32) -> CreateReq {
    CreateReq {
        options: Some(create_req::Options {
            mode: Some(create_req::options::Mode::Continuous(
                create_req::options::Continuous {
                    name: name.into(),
                    emit_enabled: false,
                    track_emitted_streams: false,
                },
            )),
            query: "fromAll()".into(),
            engine_version,
        }),
    }
}

fn named<T>(name: &str, make: impl FnOnce(String) -> T) -> T {
    make(name.to_owned())
}

/// Anonymous callers may do nothing; a user in no group may not delete or restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_checks_the_callers_rights_first() {
    let (_node, access, projections) = fixture().await;
    let service = ProjectionsService::new(projections, access);
    let anonymous = None;
    let name = "p";

    let denied = [
        service
            .create(request(continuous(name, 1), anonymous))
            .await
            .err(),
        service
            .update(request(
                named(name, |name| UpdateReq {
                    options: Some(update_req::Options {
                        name,
                        ..Default::default()
                    }),
                }),
                anonymous,
            ))
            .await
            .err(),
        service
            .statistics(request(
                StatisticsReq {
                    options: Some(statistics_req::Options {
                        mode: Some(statistics_req::options::Mode::All(Empty {})),
                    }),
                },
                anonymous,
            ))
            .await
            .err(),
        service
            .disable(request(
                named(name, |name| DisableReq {
                    options: Some(disable_req::Options {
                        name,
                        write_checkpoint: true,
                    }),
                }),
                anonymous,
            ))
            .await
            .err(),
        service
            .enable(request(
                named(name, |name| EnableReq {
                    options: Some(enable_req::Options { name }),
                }),
                anonymous,
            ))
            .await
            .err(),
        service
            .reset(request(
                named(name, |name| ResetReq {
                    options: Some(reset_req::Options {
                        name,
                        write_checkpoint: false,
                    }),
                }),
                anonymous,
            ))
            .await
            .err(),
        service
            .state(request(
                named(name, |name| StateReq {
                    options: Some(state_req::Options {
                        name,
                        partition: String::new(),
                    }),
                }),
                anonymous,
            ))
            .await
            .err(),
        service
            .result(request(
                named(name, |name| ResultReq {
                    options: Some(result_req::Options {
                        name,
                        partition: String::new(),
                    }),
                }),
                anonymous,
            ))
            .await
            .err(),
    ];
    for (k, status) in denied.into_iter().enumerate() {
        assert_denied(&status.unwrap_or_else(|| panic!("call {k} was allowed")));
    }

    let plain = plain("ouro");
    let delete = DeleteReq {
        options: Some(delete_req::Options {
            name: name.into(),
            ..Default::default()
        }),
    };
    assert_denied(
        &service
            .delete(request(delete, Some(&plain)))
            .await
            .unwrap_err(),
    );
    assert_denied(
        &service
            .restart_subsystem(request(Empty {}, Some(&plain)))
            .await
            .unwrap_err(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_invalid_arguments() {
    let (_node, access, projections) = fixture().await;
    let service = ProjectionsService::new(projections, access);
    let admin = admin();
    let status = service
        .create(request(continuous("p", 2), Some(&admin)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let status = service
        .create(request(CreateReq { options: None }, Some(&admin)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(
        status.message(),
        "'options' is a required argument of type Options"
    );
    let status = service
        .statistics(request(
            StatisticsReq {
                options: Some(statistics_req::Options { mode: None }),
            },
            Some(&admin),
        ))
        .await
        .err()
        .expect("a statistics request without a mode is refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
}

/// Serves `routes` on a loopback port and answers a client of it.
async fn serve(
    routes: tonic::service::Routes,
) -> (tokio::task::JoinHandle<()>, tonic::transport::Channel) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await;
    });
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (server, channel)
}

/// With `RunProjections: None` the service is not served: UNIMPLEMENTED, and
/// ServerFeatures does not list it. With projections on, it is served and listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_is_served_only_when_projections_run() {
    use stele_proto::server_features::server_features_client::ServerFeaturesClient;
    let (node, users, access) = start().await;
    let persistent = stele_services::persistent::Subsystem::start(node.clone(), access.clone());
    for (run, served) in [(RunProjections::None, false), (RunProjections::All, true)] {
        let routes = crate::grpc::routes(
            node.clone(),
            persistent.clone(),
            users.clone(),
            projections(&node, &access, run),
            access.clone(),
        );
        let (server, channel) = serve(routes).await;
        let mut client = ProjectionsClient::new(channel.clone());
        let statistics = StatisticsReq {
            options: Some(statistics_req::Options {
                mode: Some(statistics_req::options::Mode::All(Empty {})),
            }),
        };
        // Anonymous: refused by the policy when served.
        let status = match client.statistics(statistics).await {
            Ok(response) => {
                let answers: Vec<_> = response.into_inner().collect().await;
                answers
                    .into_iter()
                    .find_map(Result::err)
                    .expect("an anonymous statistics call fails")
            }
            Err(status) => status,
        };
        let expected = if served {
            Code::PermissionDenied
        } else {
            Code::Unimplemented
        };
        assert_eq!(status.code(), expected, "{run:?}: {status:?}");

        let methods = ServerFeaturesClient::new(channel)
            .get_supported_methods(Empty {})
            .await
            .unwrap()
            .into_inner();
        let listed = methods
            .methods
            .iter()
            .any(|m| m.service_name == "event_store.client.projections.projections");
        assert_eq!(listed, served, "{run:?}");
        server.abort();
    }
}
