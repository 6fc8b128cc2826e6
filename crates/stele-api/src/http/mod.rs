//! The HTTP API that shares the client port with gRPC (PROTOCOL.md §12): health, gossip,
//! node information and statistics, as EventStoreDB answers them (Prometheus `/metrics` is
//! [`crate::metrics`]'s route, merged here), the operator commands
//! resign and node priority (`admin.rs`), the persistent-subscription endpoints
//! (`subscriptions/`), the users (`users.rs`) and, when the node runs projections, the
//! projections endpoints (`projections/`). JSON property names are camelCase, as EventStoreDB's JSON codec
//! writes them.
//!
//! What this module owns: the routes and their JSON shapes; errors become HTTP answers in
//! one place, `errors.rs`; who may call which route (`policy.rs`, EventStoreDB's default
//! policy: a 401 with `X-Basic realm="ESDB"` otherwise). What it does not own: the listener,
//! TLS and the choice between gRPC and HTTP on one port ([`crate::serve`]), authentication
//! (the client port's layer, [`crate::auth`], which gives each request its
//! [`stele_core::access::Principal`]), the other admin and AtomPub endpoints (not served
//! yet), and the web UI: `/` redirects to `/web/index.html` as EventStoreDB 23 does, but no
//! UI is served there yet (404).

mod admin;
mod errors;
mod gossip;
mod health;
pub mod info;
pub mod policy;
pub(crate) mod process;
pub mod projections;
mod stats;
mod subscriptions;
mod timestamp;
pub mod users;

use std::sync::Arc;

use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use stele_cluster::tls::Tls;
use stele_cluster::{GossipMessage, GossipRefused, Node, NodeStatus};
use stele_services::access::AccessControl;

pub use gossip::{ClusterInfo, GossipMember, MemberInfo};
pub use health::live_status;

/// The version this server reports as EventStoreDB's (`/info`, gossip `esVersion`): the
/// same one `ServerFeatures` gives gRPC clients.
pub(crate) const SERVER_VERSION: &str = crate::grpc::server_features::SERVER_VERSION;

/// Where `/` sends a browser (EventStoreDB 23's UI; KurrentDB's is `/ui/cluster`).
const UI_PATH: &str = "/web/index.html";

/// What the routes read from a node. [`Node`] is the real one; tests use a fake, since the
/// routes only read status and the cluster's members.
pub(crate) trait NodeView: Send + Sync + 'static {
    fn status(&self) -> NodeStatus;
    /// The members `/gossip` lists.
    fn gossip_members(&self) -> Vec<GossipMember>;
    /// Takes another node's gossip (`POST /gossip`).
    fn receive_gossip(&self, message: &GossipMessage) -> Result<GossipMessage, GossipRefused>;
}

impl NodeView for Node {
    fn status(&self) -> NodeStatus {
        Node::status(self)
    }

    fn gossip_members(&self) -> Vec<GossipMember> {
        gossip::members(self)
    }

    fn receive_gossip(&self, message: &GossipMessage) -> Result<GossipMessage, GossipRefused> {
        Node::receive_gossip(self, message)
    }
}

type SharedNode = Arc<dyn NodeView>;

/// The HTTP routes of a node; `persistent` serves `/subscriptions`, `users` `/users`,
/// `projections` `/projections` and `/projection/{name}` (only when it is enabled, as the
/// gRPC service), `access` decides who may call what ([`policy`]), `tls` is reloaded by `POST /admin/reloadconfig`, `metrics`
/// holds what `/metrics` reports beside the figures read at scrape time.
pub fn router(
    node: Node,
    persistent: stele_services::persistent::Subsystem,
    users: stele_services::users::Users,
    projections: stele_projections::Projections,
    access: AccessControl,
    tls: Option<Arc<Tls>>,
    metrics: crate::metrics::Metrics,
) -> Router {
    let projection_routes = if projections.is_enabled() {
        projections::routes(projections)
    } else {
        Router::new()
    };
    routes(Arc::new(node.clone()))
        .merge(crate::metrics::route(
            Arc::new(node.clone()),
            Some(persistent.clone()),
            metrics,
        ))
        .merge(admin::routes(Arc::new(node), tls))
        .merge(subscriptions::routes(persistent))
        .merge(users::routes(users, access.clone()))
        .merge(projection_routes)
        .layer(axum::Extension(info::SecurityMode {
            secure: access.is_secure(),
        }))
        .layer(axum::middleware::from_fn_with_state(
            access,
            policy::authorize,
        ))
}

pub(crate) fn routes(node: SharedNode) -> Router {
    // `get` answers HEAD too, without a body.
    Router::new()
        .route("/health/live", get(health::live))
        .route("/gossip", get(gossip::get_gossip).post(gossip::post_gossip))
        .route("/info", get(info::get_info))
        .route("/ping", get(info::ping))
        .route("/stats", get(stats::get_stats))
        .route("/", get(redirect_to_ui))
        .with_state(node)
}

async fn redirect_to_ui() -> impl IntoResponse {
    (
        StatusCode::FOUND,
        [(LOCATION, HeaderValue::from_static(UI_PATH))],
    )
}

#[cfg(test)]
pub(crate) mod test_node {
    //! A node that reports a fixed status, for route tests.

    use std::sync::Mutex;
    use std::time::{Duration, SystemTime};

    use stele_cluster::{NodeStatus, VNodeState};
    use uuid::Uuid;

    use super::{GossipMember, NodeView};

    pub struct FakeNode(pub Mutex<NodeStatus>);

    pub fn status() -> NodeStatus {
        NodeStatus {
            node_id: 1,
            instance_id: Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
            cluster_id: None,
            state: VNodeState::Leader,
            is_alive: true,
            time_stamp: 0,
            http_endpoint: ("127.0.0.1".into(), 2113),
            gossip_endpoint: ("127.0.0.1".into(), 2113),
            internal_tcp: ("127.0.0.1".into(), 1112),
            last_commit_position: 4096,
            writer_checkpoint: 5000,
            chaser_checkpoint: 4500,
            last_log_index: 0,
            log_sync_count: 0,
            epoch_number: 3,
            node_priority: 0,
            read_only_replica: false,
            resigned: false,
            ready: true,
        }
    }

    /// 2024-01-02T03:04:05.678Z
    pub fn time_stamp() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_704_164_645_678)
    }

    impl NodeView for FakeNode {
        fn status(&self) -> NodeStatus {
            self.0.lock().unwrap().clone()
        }

        fn gossip_members(&self) -> Vec<GossipMember> {
            vec![GossipMember {
                status: self.status(),
                time_stamp: time_stamp(),
            }]
        }

        fn receive_gossip(
            &self,
            _message: &stele_cluster::GossipMessage,
        ) -> Result<stele_cluster::GossipMessage, stele_cluster::GossipRefused> {
            Ok(stele_cluster::GossipMessage {
                sender: self.status(),
                members: Vec::new(),
                sent_at_unix_ms: 0,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::test_node::{status, FakeNode};
    use super::*;

    async fn call(node: &Arc<FakeNode>, method: Method, uri: &str) -> (StatusCode, Vec<u8>) {
        let response = routes(node.clone())
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(uri)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, body.to_vec())
    }

    fn fake() -> Arc<FakeNode> {
        Arc::new(FakeNode(Mutex::new(status())))
    }

    #[tokio::test]
    async fn health_is_204_when_ready_and_503_when_not() {
        let node = fake();
        assert_eq!(
            call(&node, Method::GET, "/health/live").await.0,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            call(&node, Method::HEAD, "/health/live").await.0,
            StatusCode::NO_CONTENT
        );
        let (code, _) = call(&node, Method::GET, "/health/live?liveCode=200").await;
        assert_eq!(code, StatusCode::OK);
        node.0.lock().unwrap().ready = false;
        let (code, _) = call(&node, Method::GET, "/health/live?liveCode=200").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn gossip_lists_the_members_as_json() {
        let (code, body) = call(&fake(), Method::GET, "/gossip").await;
        assert_eq!(code, StatusCode::OK);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["members"][0]["state"], "Leader");
        assert_eq!(json["serverPort"], 2113);
    }

    #[tokio::test]
    async fn info_reports_the_state_in_lower_case() {
        let (code, body) = call(&fake(), Method::GET, "/info").await;
        assert_eq!(code, StatusCode::OK);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["state"], "leader");
        assert_eq!(json["authentication"]["type"], "insecure");
        assert_eq!(json["esVersion"], SERVER_VERSION);
    }

    #[tokio::test]
    /// `/ping` answered only `{"text": ...}`; EventStoreDB's body also has `msgTypeId` (a
    /// number), which the Node client's tests check.
    async fn ping_answers_200_with_eventstoredbs_body() {
        let (code, body) = call(&fake(), Method::GET, "/ping").await;
        assert_eq!(code, StatusCode::OK);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["text"], "Ping request successfully handled");
        assert!(json["msgTypeId"].is_u64(), "{json}");
        assert_eq!(json.as_object().unwrap().len(), 2, "{json}");
    }

    #[tokio::test]
    async fn stats_report_the_node_checkpoints() {
        let (code, body) = call(&fake(), Method::GET, "/stats").await;
        assert_eq!(code, StatusCode::OK);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["es"]["writerCheckpoint"], 5000);
        assert_eq!(json["es"]["chaserCheckpoint"], 4500);
        assert_eq!(json["es"]["lastCommitPosition"], 4096);
        assert_eq!(json["proc"]["id"], std::process::id());
    }

    #[tokio::test]
    async fn the_root_redirects_to_the_ui() {
        let node = fake();
        let response = routes(node)
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FOUND);
        assert_eq!(response.headers()[LOCATION], UI_PATH);
    }
}
