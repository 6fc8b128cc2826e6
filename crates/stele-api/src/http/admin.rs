//! The operator endpoints of EventStoreDB's HTTP API that Stele acts on (PROTOCOL.md §12):
//! `POST /admin/node/resign`, `POST /admin/node/priority/{n}` and `POST /admin/shutdown`, the
//! HTTP twins of `Operations.ResignNode`, `SetNodePriority` and `Shutdown`. All answer 200
//! `OK`; a priority
//! that is not an integer is 400 `nodePriority must be an integer.`, EventStoreDB's text.
//!
//! `POST /admin/reloadconfig` reads the certificate files again (new connections get the
//! new certificate, open ones keep theirs): 200 `OK`, or 400 with what is wrong with the
//! files (the old certificate stays in force).
//!
//! What this module owns: those routes (errors become answers in `super::errors`). What it
//! does not own: who may call them (`super::policy`: `$ops` and `$admins`), and the other
//! `/admin` endpoints (scavenge, merge indexes), which are not served and so are 404.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use futures::future::BoxFuture;
use stele_cluster::tls::Tls;
use stele_cluster::{AdminError, Node};

use super::errors;

/// EventStoreDB's answer to an operator command it carried out.
const OK_TEXT: &str = "OK";
/// EventStoreDB's answer to `/admin/node/priority/{n}` when `n` is not an `int`.
const NOT_AN_INTEGER_TEXT: &str = "nodePriority must be an integer.";

/// What the admin routes ask of a node. [`Node`] is the real one; the tests use a fake that
/// records the calls.
pub(crate) trait NodeAdmin: Send + Sync + 'static {
    fn resign(&self) -> BoxFuture<'_, Result<(), AdminError>>;
    fn set_node_priority(&self, priority: i32) -> BoxFuture<'_, Result<(), AdminError>>;
    fn request_stop(&self);
}

impl NodeAdmin for Node {
    fn resign(&self) -> BoxFuture<'_, Result<(), AdminError>> {
        Box::pin(Node::resign(self))
    }

    fn set_node_priority(&self, priority: i32) -> BoxFuture<'_, Result<(), AdminError>> {
        Box::pin(Node::set_node_priority(self, priority))
    }

    fn request_stop(&self) {
        Node::request_stop(self)
    }
}

type SharedAdmin = Arc<dyn NodeAdmin>;

/// The admin routes of a node.
pub(crate) fn routes(node: SharedAdmin, tls: Option<Arc<Tls>>) -> Router {
    Router::new()
        .route("/admin/shutdown", post(shutdown))
        .route("/admin/node/resign", post(resign))
        .route("/admin/node/priority/{priority}", post(set_node_priority))
        .with_state(node)
        .route(
            "/admin/reloadconfig",
            post(move || reload_config(tls.clone())),
        )
}

/// Reloads the certificate (a node without TLS has nothing to reload).
async fn reload_config(tls: Option<Arc<Tls>>) -> Response {
    let Some(tls) = tls else {
        return (StatusCode::OK, OK_TEXT).into_response();
    };
    match tls.reload() {
        Ok(()) => {
            tracing::info!("reloaded the node's certificate (an operator asked)");
            (StatusCode::OK, OK_TEXT).into_response()
        }
        Err(error) => {
            tracing::warn!(%error, "reloading the node's certificate failed; the old one stays in force");
            errors::bad_request(format!("reloading the certificate failed: {error}"))
        }
    }
}

/// Stops the process once this answer is sent, as SIGTERM does.
async fn shutdown(State(node): State<SharedAdmin>) -> (StatusCode, &'static str) {
    node.request_stop();
    (StatusCode::OK, OK_TEXT)
}

async fn resign(State(node): State<SharedAdmin>) -> (StatusCode, &'static str) {
    tracing::info!("an operator asked this node to resign leadership (HTTP)");
    answer(node.resign().await)
}

/// The priority is taken as text and parsed here, so that a bad one gets EventStoreDB's
/// message rather than axum's rejection text.
async fn set_node_priority(
    State(node): State<SharedAdmin>,
    Path(priority): Path<String>,
) -> Response {
    let Ok(priority) = priority.trim().parse::<i32>() else {
        return errors::bad_request(NOT_AN_INTEGER_TEXT);
    };
    tracing::info!(priority, "an operator set this node's priority (HTTP)");
    answer(node.set_node_priority(priority).await).into_response()
}

/// `OK`, or the error's answer (`super::errors`).
fn answer(outcome: Result<(), AdminError>) -> (StatusCode, &'static str) {
    match outcome {
        Ok(()) => (StatusCode::OK, OK_TEXT),
        Err(error) => errors::admin_error(error),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::body::Body;
    use axum::http::{Method, Request};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    /// Records the commands it is given and answers with `outcome`.
    struct FakeAdmin {
        calls: Mutex<Vec<String>>,
        outcome: Result<(), AdminError>,
    }

    impl FakeAdmin {
        fn answering(outcome: Result<(), AdminError>) -> Arc<FakeAdmin> {
            Arc::new(FakeAdmin {
                calls: Mutex::new(Vec::new()),
                outcome,
            })
        }

        fn outcome(&self) -> Result<(), AdminError> {
            match &self.outcome {
                Ok(()) => Ok(()),
                Err(AdminError::NotReady) => Err(AdminError::NotReady),
                Err(AdminError::Fatal(detail)) => Err(AdminError::Fatal(detail.clone())),
            }
        }

        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl NodeAdmin for FakeAdmin {
        fn resign(&self) -> BoxFuture<'_, Result<(), AdminError>> {
            self.calls.lock().unwrap().push("resign".into());
            Box::pin(std::future::ready(self.outcome()))
        }

        fn set_node_priority(&self, priority: i32) -> BoxFuture<'_, Result<(), AdminError>> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("priority {priority}"));
            Box::pin(std::future::ready(self.outcome()))
        }

        fn request_stop(&self) {
            self.calls.lock().unwrap().push("stop".into());
        }
    }

    async fn call(node: &Arc<FakeAdmin>, method: Method, uri: &str) -> (StatusCode, String) {
        let response = routes(node.clone(), None)
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
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn resign_answers_ok() {
        let node = FakeAdmin::answering(Ok(()));
        let answer = call(&node, Method::POST, "/admin/node/resign").await;
        assert_eq!(answer, (StatusCode::OK, "OK".to_owned()));
        assert_eq!(node.calls(), ["resign"]);
    }

    #[tokio::test]
    async fn priority_takes_any_int() {
        let node = FakeAdmin::answering(Ok(()));
        for (path, expected) in [("5", 5), ("-3", -3), ("0", 0), ("2147483647", i32::MAX)] {
            let answer = call(&node, Method::POST, &format!("/admin/node/priority/{path}")).await;
            assert_eq!(answer, (StatusCode::OK, "OK".to_owned()), "{path}");
            assert_eq!(
                node.calls().last().unwrap(),
                &format!("priority {expected}")
            );
        }
    }

    #[tokio::test]
    async fn a_priority_that_is_not_an_int_is_400_and_changes_nothing() {
        let node = FakeAdmin::answering(Ok(()));
        for bad in ["abc", "1.5", "2147483648", "%20"] {
            let answer = call(&node, Method::POST, &format!("/admin/node/priority/{bad}")).await;
            assert_eq!(
                answer,
                (
                    StatusCode::BAD_REQUEST,
                    "nodePriority must be an integer.".to_owned()
                ),
                "{bad}"
            );
        }
        assert!(node.calls().is_empty());
    }

    #[tokio::test]
    async fn only_post_is_served() {
        let node = FakeAdmin::answering(Ok(()));
        let (code, _) = call(&node, Method::GET, "/admin/node/resign").await;
        assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
        assert!(node.calls().is_empty());
    }

    #[tokio::test]
    async fn node_errors_become_503_and_500() {
        let not_ready = FakeAdmin::answering(Err(AdminError::NotReady));
        let (code, _) = call(&not_ready, Method::POST, "/admin/node/resign").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        let fault = FakeAdmin::answering(Err(AdminError::Fatal("disk".into())));
        let (code, body) = call(&fault, Method::POST, "/admin/node/priority/1").await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.contains("disk"), "{body}");
    }
}
