//! `ServerFeatures.GetSupportedMethods` (PROTOCOL.md §9): the methods this server implements,
//! lower-cased, with their feature flags, and a `major.minor.patch` version.
//!
//! No authentication: the Rust client calls it without credentials on every connection and
//! gives up on the connection for any error other than UNIMPLEMENTED or NOT_FOUND. The list
//! names exactly what is served, because clients switch features on from it: BatchAppend for
//! the Rust and Node clients; for persistent subscriptions, groups on `$all` (feature `all`
//! on `create`) and gRPC management instead of the HTTP fallback (the Rust client needs all
//! of `getinfo`, `replayparked`, `list` and `restartsubsystem`). Every PersistentSubscriptions
//! method carries `["stream","all"]`, as EventStoreDB lists them. Of Operations, only the
//! methods that do something are listed (`resignnode`, `setnodepriority`, `shutdown`,
//! `restartpersistentsubscriptions`); the others answer UNIMPLEMENTED. The Projections
//! methods are listed only when the node runs projections, `create` with the feature
//! `track_emitted_streams` (the Node client then creates tracking projections over gRPC
//! instead of its HTTP fallback).

use stele_proto::server_features::server_features_server::ServerFeatures;
use stele_proto::server_features::{SupportedMethod, SupportedMethods};
use stele_proto::shared::Empty;
use tonic::{Request, Response, Status};

/// The EventStoreDB version whose behaviour this server follows; clients parse it.
pub const SERVER_VERSION: &str = "24.10.0";

const STREAMS: &str = "event_store.client.streams.streams";
const SERVER_FEATURES: &str = "event_store.client.server_features.serverfeatures";
const GOSSIP: &str = "event_store.client.gossip.gossip";
const OPERATIONS: &str = "event_store.client.operations.operations";
const PERSISTENT: &str = "event_store.client.persistent_subscriptions.persistentsubscriptions";
const USERS: &str = "event_store.client.users.users";
const PROJECTIONS: &str = "event_store.client.projections.projections";

/// The features of every PersistentSubscriptions method: groups on a stream and on `$all`.
const PERSISTENT_FEATURES: &[&str] = &["stream", "all"];

/// `(service, method, features)` for every method served.
const METHODS: &[(&str, &str, &[&str])] = &[
    (STREAMS, "read", &["position", "events"]),
    (STREAMS, "append", &[]),
    (STREAMS, "delete", &[]),
    (STREAMS, "tombstone", &[]),
    (STREAMS, "batchappend", &["deadline_duration"]),
    (SERVER_FEATURES, "getsupportedmethods", &[]),
    (GOSSIP, "read", &[]),
    (OPERATIONS, "resignnode", &[]),
    (OPERATIONS, "setnodepriority", &[]),
    (OPERATIONS, "shutdown", &[]),
    (OPERATIONS, "restartpersistentsubscriptions", &[]),
    (PERSISTENT, "create", PERSISTENT_FEATURES),
    (PERSISTENT, "update", PERSISTENT_FEATURES),
    (PERSISTENT, "delete", PERSISTENT_FEATURES),
    (PERSISTENT, "read", PERSISTENT_FEATURES),
    (PERSISTENT, "getinfo", PERSISTENT_FEATURES),
    (PERSISTENT, "replayparked", PERSISTENT_FEATURES),
    (PERSISTENT, "list", PERSISTENT_FEATURES),
    (PERSISTENT, "restartsubsystem", PERSISTENT_FEATURES),
    (USERS, "create", &[]),
    (USERS, "update", &[]),
    (USERS, "delete", &[]),
    (USERS, "disable", &[]),
    (USERS, "enable", &[]),
    (USERS, "details", &[]),
    (USERS, "changepassword", &[]),
    (USERS, "resetpassword", &[]),
];

/// `(service, method, features)` for the Projections methods, served when the node runs
/// projections.
const PROJECTION_METHODS: &[(&str, &str, &[&str])] = &[
    (PROJECTIONS, "create", &["track_emitted_streams"]),
    (PROJECTIONS, "update", &[]),
    (PROJECTIONS, "delete", &[]),
    (PROJECTIONS, "statistics", &[]),
    (PROJECTIONS, "disable", &[]),
    (PROJECTIONS, "enable", &[]),
    (PROJECTIONS, "reset", &[]),
    (PROJECTIONS, "state", &[]),
    (PROJECTIONS, "result", &[]),
    (PROJECTIONS, "restartsubsystem", &[]),
];

/// The ServerFeatures service; `projections` says whether the Projections service is
/// served.
#[derive(Debug, Clone, Default)]
pub struct ServerFeaturesService {
    projections: bool,
}

impl ServerFeaturesService {
    pub fn new(projections: bool) -> Self {
        ServerFeaturesService { projections }
    }
}

/// The methods served, with the Projections ones when `projections` is on.
pub fn supported_methods(projections: bool) -> SupportedMethods {
    let projection_methods = if projections { PROJECTION_METHODS } else { &[] };
    SupportedMethods {
        methods: METHODS
            .iter()
            .chain(projection_methods)
            .map(|(service, method, features)| SupportedMethod {
                method_name: (*method).to_owned(),
                service_name: (*service).to_owned(),
                features: features.iter().map(|f| (*f).to_owned()).collect(),
            })
            .collect(),
        event_store_server_version: SERVER_VERSION.to_owned(),
    }
}

#[tonic::async_trait]
impl ServerFeatures for ServerFeaturesService {
    async fn get_supported_methods(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<SupportedMethods>, Status> {
        Ok(Response::new(supported_methods(self.projections)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_batch_append_with_the_names_clients_match() {
        let methods = supported_methods(false);
        assert_eq!(methods.event_store_server_version, "24.10.0");
        let batch = methods
            .methods
            .iter()
            .find(|m| m.method_name == "batchappend")
            .expect("batchappend is listed");
        assert_eq!(batch.service_name, "event_store.client.streams.streams");
        assert_eq!(batch.features, vec!["deadline_duration".to_owned()]);
        for m in &methods.methods {
            assert_eq!(m.method_name, m.method_name.to_lowercase());
            assert_eq!(m.service_name, m.service_name.to_lowercase());
        }
        // Nothing from services that are not served yet.
        assert!(!methods
            .methods
            .iter()
            .any(|m| m.service_name.contains("projections")));
        // Of Operations, only what is implemented (scavenging is UNIMPLEMENTED).
        let operations: Vec<&str> = methods
            .methods
            .iter()
            .filter(|m| m.service_name == "event_store.client.operations.operations")
            .map(|m| m.method_name.as_str())
            .collect();
        assert_eq!(
            operations,
            [
                "resignnode",
                "setnodepriority",
                "shutdown",
                "restartpersistentsubscriptions"
            ]
        );
    }

    #[test]
    fn lists_every_persistent_subscriptions_method_with_stream_and_all() {
        let methods = supported_methods(false);
        let persistent: Vec<&SupportedMethod> = methods
            .methods
            .iter()
            .filter(|m| {
                m.service_name
                    == "event_store.client.persistent_subscriptions.persistentsubscriptions"
            })
            .collect();
        let names: Vec<&str> = persistent.iter().map(|m| m.method_name.as_str()).collect();
        assert_eq!(
            names,
            [
                "create",
                "update",
                "delete",
                "read",
                "getinfo",
                "replayparked",
                "list",
                "restartsubsystem"
            ]
        );
        for method in persistent {
            assert_eq!(method.features, ["stream", "all"], "{}", method.method_name);
        }
        // The path the Node client matches: `/<service_name>/<method_name>`, and the service
        // name is the generated one, lower-cased.
        assert_eq!(
            stele_proto::persistent::persistent_subscriptions_server::SERVICE_NAME.to_lowercase(),
            "event_store.client.persistent_subscriptions.persistentsubscriptions"
        );
    }

    #[test]
    fn lists_projections_only_when_they_run_and_create_tracks_emitted_streams() {
        let projections = |methods: SupportedMethods| -> Vec<SupportedMethod> {
            methods
                .methods
                .into_iter()
                .filter(|m| m.service_name == PROJECTIONS)
                .collect()
        };
        assert!(projections(supported_methods(false)).is_empty());
        let listed = projections(supported_methods(true));
        let names: Vec<&str> = listed.iter().map(|m| m.method_name.as_str()).collect();
        assert_eq!(
            names,
            [
                "create",
                "update",
                "delete",
                "statistics",
                "disable",
                "enable",
                "reset",
                "state",
                "result",
                "restartsubsystem"
            ]
        );
        assert_eq!(listed[0].features, ["track_emitted_streams"]);
        assert_eq!(
            stele_proto::projections::projections_server::SERVICE_NAME.to_lowercase(),
            PROJECTIONS
        );
    }

    /// The generated server and client agree over a real HTTP/2 connection, through the
    /// same `Routes` the node serves.
    #[tokio::test]
    async fn answers_over_grpc_through_routes() {
        use stele_proto::server_features::server_features_client::ServerFeaturesClient;
        use stele_proto::server_features::server_features_server::ServerFeaturesServer;
        use tokio_stream::wrappers::TcpListenerStream;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut routes = tonic::service::RoutesBuilder::default();
        routes.add_service(ServerFeaturesServer::new(ServerFeaturesService::default()));
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_routes(routes.routes())
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = ServerFeaturesClient::new(channel);
        let answer = client.get_supported_methods(Empty {}).await.unwrap();
        assert_eq!(answer.into_inner(), supported_methods(false));
        server.abort();
    }
}
