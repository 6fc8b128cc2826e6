//! Who may call which HTTP endpoint (issue 13, PROTOCOL-OPS.md §4.2): one table from method
//! and path to the [`Operation`] the default policy rules on, checked for every request
//! before its route runs. A refusal is 401 (§4.4: EventStoreDB's HTTP API answers 401 both
//! to anonymous callers and to users without the right), with
//! `WWW-Authenticate: X-Basic realm="ESDB"` so that a browser does not pop up a login box.
//!
//! Paths the table does not name are not checked here: they are either served by routes
//! that check for themselves (`/users`, which needs the caller's own name) or not served
//! at all (404).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::WWW_AUTHENTICATE;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use stele_core::access::{Operation, Principal};
use stele_services::access::AccessControl;

/// The operation a request performs, for the endpoints the default policy names.
pub fn operation_for(method: &Method, path: &str) -> Option<Operation> {
    if method == Method::OPTIONS {
        return Some(Operation::NodeOptionsRequest);
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let post = method == Method::POST;
    let operation = match segments.as_slice() {
        [""] | ["ping"] | ["health", "live"] | ["web", ..] => Operation::Ping,
        ["info"] => Operation::Info,
        ["info", "options"] => Operation::InfoOptions,
        ["gossip"] if post => Operation::GossipUpdate,
        ["gossip"] => Operation::GossipRead,
        ["stats", ..] => Operation::Stats,
        ["metrics"] => Operation::Metrics,
        ["sys", "subsystems"] => Operation::Subsystems,
        ["admin", "shutdown"] => Operation::Shutdown,
        ["admin", "reloadconfig"] => Operation::ReloadConfiguration,
        ["admin", "mergeindexes"] => Operation::MergeIndexes,
        ["admin", "node", "resign"] => Operation::ResignNode,
        ["admin", "node", "priority", ..] => Operation::SetNodePriority,
        ["admin", "scavenge", ..] if method == Method::DELETE => Operation::ScavengeStop,
        ["admin", "scavenge", ..] if post => Operation::ScavengeStart,
        ["admin", "scavenge", ..] => Operation::ScavengeRead,
        ["admin", ..] => Operation::Shutdown,
        ["subscriptions"] => Operation::PersistentSubscriptionList,
        ["subscriptions", "restart"] if post => Operation::PersistentSubscriptionRestartSubsystem,
        ["subscriptions", _] => Operation::PersistentSubscriptionList,
        ["subscriptions", _, _] if method == Method::PUT => Operation::PersistentSubscriptionCreate,
        ["subscriptions", _, _] if post => Operation::PersistentSubscriptionUpdate,
        ["subscriptions", _, _] if method == Method::DELETE => {
            Operation::PersistentSubscriptionDelete
        }
        ["subscriptions", _, _, "replayParked"] => Operation::PersistentSubscriptionReplayParked,
        ["subscriptions", _, _, "info"] => Operation::PersistentSubscriptionGetInfo,
        // Reading a group's messages over HTTP (AtomPub) is not served; anything else under a
        // group needs at least what consuming does.
        ["subscriptions", ..] => Operation::PersistentSubscriptionRead,
        ["projections", "continuous" | "onetime" | "transient"] if post => {
            Operation::ProjectionCreate
        }
        ["projections", "restart"] if post => Operation::ProjectionRestartSubsystem,
        // The lists, and anything else under `/projections`.
        ["projections", ..] => Operation::ProjectionStatistics,
        ["projection", _] if method == Method::DELETE => Operation::ProjectionDelete,
        ["projection", _, "state"] => Operation::ProjectionState,
        ["projection", _, "result"] => Operation::ProjectionResult,
        ["projection", _, "query"] if method == Method::PUT => Operation::ProjectionUpdate,
        ["projection", _, "command", "enable"] => Operation::ProjectionEnable,
        ["projection", _, "command", "disable" | "abort"] => Operation::ProjectionDisable,
        ["projection", _, "command", "reset"] => Operation::ProjectionReset,
        // Statistics, the query, and anything else under one projection.
        ["projection", ..] => Operation::ProjectionStatistics,
        _ => return None,
    };
    Some(operation)
}

/// The middleware: refuses a request whose caller may not perform its operation.
pub async fn authorize(
    State(access): State<AccessControl>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(operation) = operation_for(request.method(), request.uri().path()) {
        let principal = request
            .extensions()
            .get::<Principal>()
            .cloned()
            .unwrap_or(Principal::Anonymous);
        if access.check_operation(&principal, operation).is_err() {
            return unauthorized();
        }
    }
    next.run(request).await
}

/// The principal a request runs as, for a handler: the authentication layer's, or anonymous
/// (fail closed).
pub(crate) struct Caller(pub Principal);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let principal = parts.extensions.get::<Principal>().cloned();
        Ok(Caller(principal.unwrap_or(Principal::Anonymous)))
    }
}

/// 401, as EventStoreDB's HTTP API answers a caller who may not do what it asks.
pub fn unauthorized() -> Response {
    let mut response = (StatusCode::UNAUTHORIZED, Body::from("Unauthorized")).into_response();
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("X-Basic realm=\"ESDB\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_endpoint_names_its_operation() {
        // The policy table covers the endpoints Stele serves; a new route that falls through
        // to None would be served to anyone.
        let cases = [
            (Method::GET, "/ping", Operation::Ping),
            (Method::GET, "/health/live", Operation::Ping),
            (Method::GET, "/info", Operation::Info),
            (Method::GET, "/gossip", Operation::GossipRead),
            (Method::POST, "/gossip", Operation::GossipUpdate),
            (Method::GET, "/stats", Operation::Stats),
            (Method::GET, "/stats/replication", Operation::Stats),
            // Ruled as /stats is (authenticated, or anonymous with AllowAnonymousEndpointAccess).
            (Method::GET, "/metrics", Operation::Metrics),
            (Method::POST, "/admin/shutdown", Operation::Shutdown),
            (
                Method::POST,
                "/admin/reloadconfig",
                Operation::ReloadConfiguration,
            ),
            (Method::POST, "/admin/node/resign", Operation::ResignNode),
            (
                Method::POST,
                "/admin/node/priority/3",
                Operation::SetNodePriority,
            ),
            (Method::POST, "/admin/unknown", Operation::Shutdown),
            (
                Method::GET,
                "/subscriptions",
                Operation::PersistentSubscriptionList,
            ),
            (
                Method::GET,
                "/subscriptions/s",
                Operation::PersistentSubscriptionList,
            ),
            (
                Method::POST,
                "/subscriptions/restart",
                Operation::PersistentSubscriptionRestartSubsystem,
            ),
            (
                Method::PUT,
                "/subscriptions/s/g",
                Operation::PersistentSubscriptionCreate,
            ),
            (
                Method::POST,
                "/subscriptions/s/g",
                Operation::PersistentSubscriptionUpdate,
            ),
            (
                Method::DELETE,
                "/subscriptions/s/g",
                Operation::PersistentSubscriptionDelete,
            ),
            (
                Method::GET,
                "/subscriptions/s/g/info",
                Operation::PersistentSubscriptionGetInfo,
            ),
            (
                Method::POST,
                "/subscriptions/s/g/replayParked",
                Operation::PersistentSubscriptionReplayParked,
            ),
            (
                Method::GET,
                "/subscriptions/s/g",
                Operation::PersistentSubscriptionRead,
            ),
            (Method::OPTIONS, "/streams/x", Operation::NodeOptionsRequest),
            (
                Method::POST,
                "/projections/continuous",
                Operation::ProjectionCreate,
            ),
            (
                Method::POST,
                "/projections/onetime",
                Operation::ProjectionCreate,
            ),
            (
                Method::POST,
                "/projections/transient",
                Operation::ProjectionCreate,
            ),
            (
                Method::POST,
                "/projections/restart",
                Operation::ProjectionRestartSubsystem,
            ),
            (
                Method::GET,
                "/projections/any",
                Operation::ProjectionStatistics,
            ),
            (
                Method::GET,
                "/projections/continuous",
                Operation::ProjectionStatistics,
            ),
            (
                Method::GET,
                "/projection/p",
                Operation::ProjectionStatistics,
            ),
            (Method::DELETE, "/projection/p", Operation::ProjectionDelete),
            (
                Method::GET,
                "/projection/p/statistics",
                Operation::ProjectionStatistics,
            ),
            (
                Method::GET,
                "/projection/p/state",
                Operation::ProjectionState,
            ),
            (
                Method::GET,
                "/projection/p/result",
                Operation::ProjectionResult,
            ),
            (
                Method::GET,
                "/projection/p/query",
                Operation::ProjectionStatistics,
            ),
            (
                Method::PUT,
                "/projection/p/query",
                Operation::ProjectionUpdate,
            ),
            (
                Method::POST,
                "/projection/p/command/enable",
                Operation::ProjectionEnable,
            ),
            (
                Method::POST,
                "/projection/p/command/disable",
                Operation::ProjectionDisable,
            ),
            (
                Method::POST,
                "/projection/p/command/abort",
                Operation::ProjectionDisable,
            ),
            (
                Method::POST,
                "/projection/p/command/reset",
                Operation::ProjectionReset,
            ),
        ];
        for (method, path, operation) in cases {
            assert_eq!(
                operation_for(&method, path),
                Some(operation),
                "{method} {path}"
            );
        }
        assert_eq!(operation_for(&Method::GET, "/users"), None);
    }
}
