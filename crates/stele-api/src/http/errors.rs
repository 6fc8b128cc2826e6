//! Where errors become HTTP answers, for every route of the HTTP API (as `grpc/status.rs` is
//! for gRPC): the persistent-subscription engine's [`PsError`], the node's [`AdminError`]
//! for operator commands, a refused gossip message ([`GossipRefused`]), the user operations'
//! [`UserError`], the projections subsystem's [`ProjectionError`], a request the access
//! policy refuses, and input a route refuses. Every
//! answer here is plain text with the reason, except the user operations' (EventStoreDB's
//! JSON result, see [`user_error`]). What this module does not own:
//! the texts of refused input (each parser words its own, as EventStoreDB does) and the
//! answers that are not errors (`/health/live`'s 503 is a health report).

use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use stele_cluster::{AdminError, GossipRefused};

use stele_projections::ProjectionError;
use stele_services::persistent::PsError;
use stele_services::users::UserError;

/// Where a [`PsError`] becomes an HTTP answer (plain text, the error's message):
/// - does not exist → 404, exists → 409, a bad argument or too many consumers → 400 (what
///   EventStoreDB answers for its `Fail` results);
/// - not leader → 307 to the same path and query on the leader, 503 if none is known;
/// - not ready, or the group dropped under the request (a restart racing it) → 503, to be
///   retried;
/// - the creator may not read the group's source → 401, as the policy layer answers;
/// - the subsystem failed → 500, with the detail in the log too.
///
/// `uri` is the request's, for the redirect.
pub(super) fn persistent_error(error: PsError, uri: &Uri) -> Response {
    let status = match &error {
        PsError::DoesNotExist { .. } => StatusCode::NOT_FOUND,
        PsError::AlreadyExists { .. } => StatusCode::CONFLICT,
        PsError::InvalidArgument(_) | PsError::MaximumSubscribersReached { .. } => {
            StatusCode::BAD_REQUEST
        }
        PsError::NotLeader {
            leader: Some(leader),
        } => return redirect_to_leader(leader, uri),
        PsError::NotLeader { leader: None } => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "Not the leader, and no leader is known; try again.",
            )
                .into_response()
        }
        PsError::AccessDenied => return super::policy::unauthorized(),
        PsError::NotReady => StatusCode::SERVICE_UNAVAILABLE,
        PsError::Dropped { .. } => StatusCode::SERVICE_UNAVAILABLE,
        PsError::Failed { .. } => {
            tracing::error!(%error, "a persistent subscription request failed (HTTP)");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    (status, error.to_string()).into_response()
}

/// Where a [`ProjectionError`] becomes an HTTP answer (plain text, the error's message), with
/// EventStoreDB's codes (`ProjectionsController`):
/// - not found → 404, conflict (a name in use) → 409, not authorized → 401;
/// - the manager refused (not stopped, a system projection, no name) → 500 with the reason;
/// - an invalid request (track without emit) → 400; the subsystem in the wrong state to
///   restart → 409;
/// - not leader → 307 to the same path and query on the leader, 503 if none is known;
///   not ready → 503; projections not run on this node → 404.
pub(super) fn projection_error(error: ProjectionError, uri: &Uri) -> Response {
    let status = match &error {
        ProjectionError::NotFound(_) => StatusCode::NOT_FOUND,
        ProjectionError::Conflict(_) => StatusCode::CONFLICT,
        ProjectionError::NotAuthorized => StatusCode::UNAUTHORIZED,
        ProjectionError::OperationFailed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        ProjectionError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
        ProjectionError::WrongState(_) => StatusCode::CONFLICT,
        ProjectionError::NotLeader {
            leader: Some(leader),
        } => return redirect_to_leader(leader, uri),
        ProjectionError::NotLeader { leader: None } => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "Not the leader, and no leader is known; try again.",
            )
                .into_response()
        }
        ProjectionError::NotReady => {
            return (StatusCode::SERVICE_UNAVAILABLE, "Server Is Not Ready").into_response()
        }
        ProjectionError::Disabled => StatusCode::NOT_FOUND,
    };
    (status, error.to_string()).into_response()
}

/// 307 to `uri`'s path and query on the leader's HTTP endpoint.
fn redirect_to_leader((host, port): &(String, u16), uri: &Uri) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]") // an IPv6 address
    } else {
        host.clone()
    };
    let location = format!("http://{host}:{port}{path}");
    match HeaderValue::from_str(&location) {
        Ok(value) => (
            StatusCode::TEMPORARY_REDIRECT,
            [(LOCATION, value)],
            format!("Not the leader; the leader is at {host}:{port}."),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Not the leader, and the leader's address is not a valid URL.",
        )
            .into_response(),
    }
}

/// Input the API refuses (a bad path segment, body or query), with the reason.
pub(super) fn bad_request(message: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, message.into()).into_response()
}

/// A persistent-subscription listing of a stream with no groups: 404, as EventStoreDB
/// answers (the engine's `DoesNotExist` for the stream comes here too).
pub(super) fn no_groups_on_stream(stream: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("No subscription groups on stream {stream}."),
    )
        .into_response()
}

/// Where an [`AdminError`] becomes an HTTP status: not ready is 503 (what `/health/live`
/// answers too), a fault of the node 500 with the detail in the log only.
pub(super) fn admin_error(error: AdminError) -> (StatusCode, &'static str) {
    match error {
        AdminError::NotReady => (StatusCode::SERVICE_UNAVAILABLE, "Server Is Not Ready"),
        AdminError::Fatal(detail) => {
            tracing::error!(detail, "an operator command failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    }
}

/// A request the access policy refuses: 401, whoever asked (PROTOCOL-OPS.md §4.4; for a
/// request without credentials too, since it ran as anonymous).
pub(super) fn access_denied() -> Response {
    (StatusCode::UNAUTHORIZED, "Unauthorized").into_response()
}

/// EventStoreDB's result document of a user operation (`UserManagementMessage`'s
/// `UpdateResult`): `{"loginName", "success", "error"}`, `error` naming the outcome
/// (`Success`, `NotFound`, `Conflict`, `Error`, `TryAgain`, `Unauthorized`).
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UserResult<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_name: Option<&'a str>,
    pub success: bool,
    pub error: &'static str,
}

/// Where a [`UserError`] becomes an HTTP answer, with EventStoreDB's codes
/// (`UsersController.ErrorToHttpStatusCode`) and its result document naming `login` (when
/// the request named one):
/// - not found → 404 `NotFound`, conflict → 409 `Conflict`, try again → 408 `TryAgain`,
///   a wrong current password → 401 `Unauthorized`;
/// - a request outside the bounds → 400, plain text with the reason;
/// - not leader → 307 to the same path on the leader (503 if none is known), not ready →
///   503, as the other routes answer them;
/// - a damaged record or a fault of this process → 500 `Error`, the detail in the log.
pub(super) fn user_error(error: UserError, login: Option<&str>, uri: &Uri) -> Response {
    use stele_cluster::{ReadError, WriteError};
    let (status, name) = match &error {
        UserError::NotFound { .. } => (StatusCode::NOT_FOUND, "NotFound"),
        UserError::Conflict { .. } => (StatusCode::CONFLICT, "Conflict"),
        UserError::TryAgain { .. } => (StatusCode::REQUEST_TIMEOUT, "TryAgain"),
        UserError::AccessDenied => (StatusCode::UNAUTHORIZED, "Unauthorized"),
        UserError::Invalid(reason) => return bad_request(reason.clone()),
        UserError::Write(WriteError::NotLeader {
            leader: Some(leader),
        })
        | UserError::Read(ReadError::NotLeader {
            leader: Some(leader),
        }) => return redirect_to_leader(leader, uri),
        UserError::Write(WriteError::NotLeader { leader: None })
        | UserError::Read(ReadError::NotLeader { leader: None }) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "Not the leader, and no leader is known; try again.",
            )
                .into_response()
        }
        UserError::Write(WriteError::NotReady) | UserError::Read(ReadError::NotReady) => {
            return (StatusCode::SERVICE_UNAVAILABLE, "Server Is Not Ready").into_response()
        }
        _ => {
            tracing::error!(%error, "a user operation failed (HTTP)");
            (StatusCode::INTERNAL_SERVER_ERROR, "Error")
        }
    };
    let result = UserResult {
        login_name: login,
        success: false,
        error: name,
    };
    (status, axum::Json(result)).into_response()
}

/// A gossip message this node refuses (clock too far off, another cluster): 409 with the
/// reason.
pub(super) fn gossip_refused(refused: &GossipRefused) -> Response {
    (StatusCode::CONFLICT, refused.to_string()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use stele_services::persistent::{GroupKey, Source};

    #[test]
    fn errors_map_to_eventstoredb_status_codes() {
        let uri: Uri = "/subscriptions/s/g/replayParked?stopAt=3".parse().unwrap();
        let key = GroupKey::new(Source::All, "g");
        let cases = [
            (PsError::does_not_exist(&key), StatusCode::NOT_FOUND),
            (PsError::already_exists(&key), StatusCode::CONFLICT),
            (
                PsError::InvalidArgument("x".into()),
                StatusCode::BAD_REQUEST,
            ),
            (PsError::NotReady, StatusCode::SERVICE_UNAVAILABLE),
            (
                PsError::NotLeader { leader: None },
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                PsError::failed(&key, "disk"),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(
                persistent_error(error.clone(), &uri).status(),
                status,
                "{error:?}"
            );
        }
        let redirect = persistent_error(
            PsError::NotLeader {
                leader: Some(("10.0.0.2".into(), 2113)),
            },
            &uri,
        );
        assert_eq!(redirect.status(), StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(
            redirect.headers()[LOCATION],
            "http://10.0.0.2:2113/subscriptions/s/g/replayParked?stopAt=3"
        );
    }

    #[test]
    fn user_errors_map_to_eventstoredb_status_codes() {
        use stele_cluster::WriteError;
        let uri: Uri = "/users/ouro/command/disable".parse().unwrap();
        let login = || "ouro".to_owned();
        let cases = [
            (
                UserError::NotFound { login: login() },
                StatusCode::NOT_FOUND,
            ),
            (UserError::Conflict { login: login() }, StatusCode::CONFLICT),
            (
                UserError::TryAgain { login: login() },
                StatusCode::REQUEST_TIMEOUT,
            ),
            (UserError::AccessDenied, StatusCode::UNAUTHORIZED),
            (UserError::Invalid("x".into()), StatusCode::BAD_REQUEST),
            (
                UserError::Write(WriteError::NotReady),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                UserError::Internal("disk".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(
                user_error(error.clone(), Some("ouro"), &uri).status(),
                status,
                "{error:?}"
            );
        }
        let redirect = user_error(
            UserError::Write(WriteError::NotLeader {
                leader: Some(("10.0.0.2".into(), 2113)),
            }),
            Some("ouro"),
            &uri,
        );
        assert_eq!(redirect.status(), StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(
            redirect.headers()[LOCATION],
            "http://10.0.0.2:2113/users/ouro/command/disable"
        );
        assert_eq!(access_denied().status(), StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn user_errors_carry_eventstoredbs_result_document() {
        use http_body_util::BodyExt;
        let uri: Uri = "/users/ouro".parse().unwrap();
        let response = user_error(
            UserError::NotFound {
                login: "ouro".into(),
            },
            Some("ouro"),
            &uri,
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"loginName": "ouro", "success": false, "error": "NotFound"})
        );
    }

    #[tokio::test]
    async fn projection_errors_map_to_eventstoredb_status_codes() {
        use http_body_util::BodyExt;
        let uri: Uri = "/projection/p/command/enable?x=1".parse().unwrap();
        let cases = [
            (ProjectionError::NotFound("p".into()), StatusCode::NOT_FOUND),
            (ProjectionError::Conflict("p".into()), StatusCode::CONFLICT),
            (ProjectionError::NotAuthorized, StatusCode::UNAUTHORIZED),
            (
                ProjectionError::OperationFailed("not stopped".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                ProjectionError::InvalidRequest("track without emit".into()),
                StatusCode::BAD_REQUEST,
            ),
            (
                ProjectionError::WrongState("Stopping".into()),
                StatusCode::CONFLICT,
            ),
            (ProjectionError::NotReady, StatusCode::SERVICE_UNAVAILABLE),
            (
                ProjectionError::NotLeader { leader: None },
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (ProjectionError::Disabled, StatusCode::NOT_FOUND),
        ];
        for (error, status) in cases {
            assert_eq!(
                projection_error(error.clone(), &uri).status(),
                status,
                "{error:?}"
            );
        }
        // OperationFailed carries its reason.
        let response = projection_error(
            ProjectionError::OperationFailed(
                "Cannot delete a projection that hasn't been stopped or faulted.".into(),
            ),
            &uri,
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            &body[..],
            b"Cannot delete a projection that hasn't been stopped or faulted."
        );
        let redirect = projection_error(
            ProjectionError::NotLeader {
                leader: Some(("10.0.0.2".into(), 2113)),
            },
            &uri,
        );
        assert_eq!(redirect.status(), StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(
            redirect.headers()[LOCATION],
            "http://10.0.0.2:2113/projection/p/command/enable?x=1"
        );
    }

    #[test]
    fn refused_gossip_is_409_and_admin_faults_keep_their_detail_in_the_log() {
        let refused = GossipRefused::ClockDifference {
            from: "10.0.0.2:2113".into(),
            difference_ms: 90_000,
            allowed_ms: 60_000,
        };
        assert_eq!(gossip_refused(&refused).status(), StatusCode::CONFLICT);
        assert_eq!(
            admin_error(AdminError::NotReady),
            (StatusCode::SERVICE_UNAVAILABLE, "Server Is Not Ready")
        );
        assert_eq!(
            admin_error(AdminError::Fatal("disk".into())),
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        );
    }
}
