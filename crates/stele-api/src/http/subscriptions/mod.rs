//! EventStoreDB's HTTP API for persistent subscriptions (PROTOCOL.md §7 "Feature gating",
//! §12): the management endpoints operators call and the official Rust client falls back to
//! when `ServerFeatures` does not list the gRPC List/GetInfo/ReplayParked/RestartSubsystem
//! methods.
//!
//! | endpoint | answer |
//! |---|---|
//! | `GET /subscriptions` | 200, every group (`?offset=&count=`: one page) |
//! | `GET /subscriptions/{stream}` | 200, the groups of `stream` (`$all` for `$all`); 404 if none |
//! | `GET /subscriptions/{stream}/{group}/info` | 200, one group; 404 |
//! | `PUT /subscriptions/{stream}/{group}` | 201 + `Location`; 409 if it exists; 400 bad settings |
//! | `POST /subscriptions/{stream}/{group}` | 200 + `Location`; 404; 400 |
//! | `DELETE /subscriptions/{stream}/{group}` | 200; 404 |
//! | `POST /subscriptions/{stream}/{group}/replayParked?stopAt=N` | 200; 404; 400 bad `stopAt` |
//! | `POST /subscriptions/restart` | 200 `"Restarting"` |
//!
//! **Not the leader.** Groups run on the leader only. EventStoreDB forwards these requests
//! to the leader itself; Stele answers **307 Temporary Redirect** with `Location` set to the
//! same path and query on the leader (307 keeps the method and body; reqwest, curl `-L` and
//! browsers follow it), or 503 when no leader is known (`super::errors`).
//!
//! What this module owns: the routes and their handlers. Paths and bodies become the
//! engine's terms in `request.rs`, groups become JSON documents in `document.rs`, and
//! errors become answers in `super::errors`, the one place for the whole HTTP API. What it
//! does not own: the groups themselves ([`stele_services::persistent::Subsystem`]), reading or
//! acknowledging messages over HTTP (the competing-consumer AtomPub routes, not served),
//! viewing parked messages (`/subscriptions/viewparkedmessages/...`, not served), and
//! authentication (insecure mode only, as everywhere in [`super`]).

pub(super) mod document;
mod request;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};

use self::document::{documents, group_path, sort, BaseUrl, Paging, SubscriptionInfo};
use self::request::{parse_key, parse_key_and_settings, parse_source};
use super::errors::{bad_request, no_groups_on_stream, persistent_error};
use super::policy::Caller;
use stele_core::access::Principal;
use stele_services::persistent::{Definition, PsError, Subsystem};

/// The persistent-subscription routes.
pub(crate) fn routes(persistent: Subsystem) -> Router {
    Router::new()
        .route("/subscriptions", get(list_all))
        // The static segment wins over `{stream}`: a stream named `restart` is still listed
        // by GET.
        .route(
            "/subscriptions/restart",
            post(restart).get(list_restart_stream),
        )
        .route("/subscriptions/{stream}", get(list_stream))
        .route(
            "/subscriptions/{stream}/{group}",
            put(create).post(update).delete(delete),
        )
        .route("/subscriptions/{stream}/{group}/info", get(info))
        .route(
            "/subscriptions/{stream}/{group}/replayParked",
            post(replay_parked),
        )
        .with_state(persistent)
}

// ---------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------

/// `GET /subscriptions`: every group; with `offset` or `count`, EventStoreDB's paged form.
async fn list_all(
    State(persistent): State<Subsystem>,
    Query(query): Query<HashMap<String, String>>,
    BaseUrl(base): BaseUrl,
    uri: Uri,
) -> Response {
    let paging = match Paging::from_query(&query) {
        Ok(paging) => paging,
        Err(message) => return bad_request(message),
    };
    let mut groups = match persistent.list(None).await {
        Ok(groups) => groups,
        Err(error) => return persistent_error(error, &uri),
    };
    sort(&mut groups);
    match paging {
        None => Json(documents(&base, &groups)).into_response(),
        Some(paging) => Json(paging.page(&base, &groups)).into_response(),
    }
}

/// `GET /subscriptions/{stream}`: the groups of one stream; 404 when it has none, as
/// EventStoreDB answers.
async fn list_stream(
    State(persistent): State<Subsystem>,
    Path(stream): Path<String>,
    BaseUrl(base): BaseUrl,
    uri: Uri,
) -> Response {
    list_groups_of(&persistent, &stream, &base, &uri).await
}

/// `GET /subscriptions/restart`: the groups of the stream `restart`, whose path the restart
/// route takes.
async fn list_restart_stream(
    State(persistent): State<Subsystem>,
    BaseUrl(base): BaseUrl,
    uri: Uri,
) -> Response {
    list_groups_of(&persistent, "restart", &base, &uri).await
}

async fn list_groups_of(persistent: &Subsystem, stream: &str, base: &str, uri: &Uri) -> Response {
    let source = match parse_source(stream) {
        Ok(source) => source,
        Err(message) => return bad_request(message),
    };
    let mut groups = match persistent.list(Some(&source)).await {
        Ok(groups) => groups,
        // No group on the stream: the 404 below.
        Err(PsError::DoesNotExist { .. }) => Vec::new(),
        Err(error) => return persistent_error(error, uri),
    };
    if groups.is_empty() {
        return no_groups_on_stream(stream);
    }
    sort(&mut groups);
    Json(documents(base, &groups)).into_response()
}

/// `GET /subscriptions/{stream}/{group}/info`.
async fn info(
    State(persistent): State<Subsystem>,
    Path((stream, group)): Path<(String, String)>,
    BaseUrl(base): BaseUrl,
    uri: Uri,
) -> Response {
    let key = match parse_key(&stream, group) {
        Ok(key) => key,
        Err(message) => return bad_request(message),
    };
    match persistent.info(&key).await {
        Ok(group) => Json(SubscriptionInfo::new(&base, &group)).into_response(),
        Err(error) => persistent_error(error, &uri),
    }
}

/// `PUT /subscriptions/{stream}/{group}`: 201 with the group's URL in `Location`.
async fn create(
    State(persistent): State<Subsystem>,
    Caller(creator): Caller,
    Path((stream, group)): Path<(String, String)>,
    uri: Uri,
    body: Bytes,
) -> Response {
    let target = (stream.as_str(), group);
    write(persistent, Write::Create, creator, target, &uri, &body).await
}

/// `POST /subscriptions/{stream}/{group}`: replaces the settings (a `$all` group keeps its
/// filter: updates carry none, and the engine keeps the group's own).
async fn update(
    State(persistent): State<Subsystem>,
    Path((stream, group)): Path<(String, String)>,
    uri: Uri,
    body: Bytes,
) -> Response {
    // An update keeps the group's creator: the one given here is not used.
    let target = (stream.as_str(), group);
    write(
        persistent,
        Write::Update,
        Principal::Anonymous,
        target,
        &uri,
        &body,
    )
    .await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    Create,
    Update,
}

/// Creates or updates a group from a settings body; answers with its URL in `Location`.
async fn write(
    persistent: Subsystem,
    write: Write,
    creator: Principal,
    (stream, group): (&str, String),
    uri: &Uri,
    body: &[u8],
) -> Response {
    let (key, settings) = match parse_key_and_settings(stream, group, body) {
        Ok(parsed) => parsed,
        Err(message) => return bad_request(message),
    };
    let location = group_path(&key);
    tracing::info!(group = %key.id(), ?write, "writing a persistent subscription (HTTP)");
    let definition = Definition {
        key,
        filter: None,
        settings,
        // The group reads with its creator's rights (an update keeps the group's creator).
        creator,
    };
    let (result, success) = match write {
        Write::Create => (persistent.create(definition).await, StatusCode::CREATED),
        Write::Update => (persistent.update(definition).await, StatusCode::OK),
    };
    match result {
        Ok(()) => with_location(success, &location),
        Err(error) => persistent_error(error, uri),
    }
}

/// `DELETE /subscriptions/{stream}/{group}`.
async fn delete(
    State(persistent): State<Subsystem>,
    Path((stream, group)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let key = match parse_key(&stream, group) {
        Ok(key) => key,
        Err(message) => return bad_request(message),
    };
    tracing::info!(group = %key.id(), "deleting a persistent subscription (HTTP)");
    match persistent.delete(&key).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(error) => persistent_error(error, &uri),
    }
}

/// `POST /subscriptions/{stream}/{group}/replayParked?stopAt=N`: `stopAt`, when given, is a
/// non-negative integer (EventStoreDB's check and message).
async fn replay_parked(
    State(persistent): State<Subsystem>,
    Path((stream, group)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
) -> Response {
    let key = match parse_key(&stream, group) {
        Ok(key) => key,
        Err(message) => return bad_request(message),
    };
    let stop_at = match query.get("stopAt") {
        None => None,
        Some(text) => match text.trim().parse::<u64>() {
            Ok(stop_at) => Some(stop_at),
            Err(_) => return bad_request("stopAt should be a properly formed positive long"),
        },
    };
    tracing::info!(group = %key.id(), ?stop_at, "replaying parked messages (HTTP)");
    match persistent.replay_parked(&key, stop_at).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(error) => persistent_error(error, &uri),
    }
}

/// `POST /subscriptions/restart`: 200 with the JSON string `"Restarting"`, as EventStoreDB.
async fn restart(State(persistent): State<Subsystem>, uri: Uri) -> Response {
    tracing::info!("restarting the persistent subscriptions subsystem (HTTP)");
    match persistent.restart().await {
        Ok(()) => Json("Restarting").into_response(),
        Err(error) => persistent_error(error, &uri),
    }
}

fn with_location(status: StatusCode, path: &str) -> Response {
    match HeaderValue::from_str(path) {
        Ok(value) => (status, [(LOCATION, value)]).into_response(),
        Err(_) => status.into_response(),
    }
}
