//! EventStoreDB's HTTP API for projections (its `ProjectionsController`), over
//! [`stele_projections::Projections`], the same operations as the gRPC Projections service:
//! what the Node client falls back to and what the web UI calls.
//!
//! | endpoint | body | answer |
//! |---|---|---|
//! | `POST /projections/continuous?name=&emit=&trackemittedstreams=` | the query | 201 `{"name"}` + `Location: <base>/projection/<name>`; 409 |
//! | `POST /projections/onetime`, `/projections/transient` `?name=` | the query | the same (a one-time projection is named by the server) |
//! | `GET /projections/any`, `all-non-transient`, `continuous`, `onetime`, `transient` | | 200 `{"projections": [statistics...]}` |
//! | `POST /projections/restart` | | 200 (restarts the subsystem) |
//! | `GET /projection/{name}` | | 200 one statistics object; 404 |
//! | `GET /projection/{name}/statistics` | | 200 `{"projections": [statistics]}`; 404 |
//! | `GET /projection/{name}/state?partition=`, `.../result?partition=` | | 200, the JSON text (`application/json`); 404 |
//! | `GET /projection/{name}/query` | | 200, the query text; with `?config=yes` a JSON document |
//! | `PUT /projection/{name}/query?emit=` | the query | 200; emit unchanged when absent |
//! | `POST /projection/{name}/command/enable`, `disable`, `abort`, `reset` | | 200 `{"name"}`; 404 |
//! | `DELETE /projection/{name}?deleteStateStream=&deleteCheckpointStream=&deleteEmittedStreams=` | | 200; 404, 500 when not stopped |
//!
//! Statistics are `document::StatisticsDocument`s (EventStoreDB's camelCase names and
//! links). Query bodies are UTF-8 text of at most [`MAX_QUERY_BYTES`] (over: 413).
//! Who may call what is the policy table's ([`super::policy`]), checked before a route
//! runs; Create and Update hand the caller's principal to the subsystem. Errors become
//! answers in `super::errors` ([`super::errors::projection_error`]).

// Handlers answer `Result<Response, Response>` (as in `super::users`).
#![allow(clippy::result_large_err)]

mod document;
mod params;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use stele_projections::{
    CreateMode, CreateRequest, DeleteRequest, ProjectionError, Projections, Selector, UpdateRequest,
};

use super::errors;
use super::policy::Caller;
use super::subscriptions::document::{escape_segment, BaseUrl};
use params::Params;

#[cfg(test)]
mod tests;

/// The largest query body read, in bytes (a projection's source text).
pub const MAX_QUERY_BYTES: usize = 1024 * 1024;

/// The `/projections` and `/projection/{name}` routes.
pub fn routes(projections: Projections) -> Router {
    Router::new()
        .route("/projections/continuous", post(create_continuous))
        .route("/projections/onetime", post(create_one_time))
        .route("/projections/transient", post(create_transient))
        .route("/projections/restart", post(restart))
        .route("/projections/{kind}", get(list))
        .route("/projection/{name}", get(one).delete(delete))
        .route("/projection/{name}/statistics", get(statistics))
        .route("/projection/{name}/state", get(state))
        .route("/projection/{name}/result", get(result))
        .route("/projection/{name}/query", get(query).put(update))
        .route("/projection/{name}/command/{command}", post(command))
        .layer(DefaultBodyLimit::max(MAX_QUERY_BYTES))
        .with_state(projections)
}

type Answer = Result<Response, Response>;
type QueryPairs = Query<Vec<(String, String)>>;

fn failed(uri: &Uri) -> impl Fn(ProjectionError) -> Response + '_ {
    move |error| errors::projection_error(error, uri)
}

fn query_text(body: &[u8]) -> Result<String, Response> {
    String::from_utf8(body.to_vec())
        .map_err(|_| errors::bad_request("the query is not valid UTF-8 text"))
}

/// `{"name": ...}`, the answer of creations and commands.
#[derive(Debug, Serialize)]
struct Named<'a> {
    name: &'a str,
}

// ---------------------------------------------------------------------------------------
// Creation

#[derive(Debug, Clone, Copy)]
enum Kind {
    Continuous,
    OneTime,
    Transient,
}

async fn create(
    projections: Projections,
    kind: Kind,
    caller: Caller,
    base: String,
    uri: Uri,
    params: Params,
    body: Bytes,
) -> Answer {
    let query = query_text(&body)?;
    let name = || params.required("name").map(str::to_owned);
    let mode = match kind {
        Kind::Continuous => CreateMode::Continuous {
            name: name().map_err(errors::bad_request)?,
            emit_enabled: params.flag("emit", false).map_err(errors::bad_request)?,
            track_emitted_streams: params
                .flag("trackemittedstreams", false)
                .map_err(errors::bad_request)?,
        },
        // The subsystem names one-time projections itself; a `name` is not kept.
        Kind::OneTime => CreateMode::OneTime,
        Kind::Transient => CreateMode::Transient {
            name: name().map_err(errors::bad_request)?,
        },
    };
    let name = projections
        .create(CreateRequest { mode, query }, &caller.0)
        .await
        .map_err(failed(&uri))?;
    let mut response = (StatusCode::CREATED, Json(Named { name: &name })).into_response();
    let location = format!("{base}/projection/{}", escape_segment(&name));
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(LOCATION, location);
    }
    Ok(response)
}

async fn create_continuous(
    State(projections): State<Projections>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    uri: Uri,
    Query(pairs): QueryPairs,
    body: Bytes,
) -> Answer {
    let params = Params::new(pairs);
    create(
        projections,
        Kind::Continuous,
        caller,
        base,
        uri,
        params,
        body,
    )
    .await
}

async fn create_one_time(
    State(projections): State<Projections>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    uri: Uri,
    Query(pairs): QueryPairs,
    body: Bytes,
) -> Answer {
    let params = Params::new(pairs);
    create(projections, Kind::OneTime, caller, base, uri, params, body).await
}

async fn create_transient(
    State(projections): State<Projections>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    uri: Uri,
    Query(pairs): QueryPairs,
    body: Bytes,
) -> Answer {
    let params = Params::new(pairs);
    create(
        projections,
        Kind::Transient,
        caller,
        base,
        uri,
        params,
        body,
    )
    .await
}

// ---------------------------------------------------------------------------------------
// Statistics

/// `GET /projections/{kind}`.
async fn list(
    State(projections): State<Projections>,
    Path(kind): Path<String>,
    BaseUrl(base): BaseUrl,
    uri: Uri,
) -> Answer {
    let (selector, skip_transient) = match kind.as_str() {
        "any" => (Selector::All, false),
        "all-non-transient" => (Selector::All, true),
        "continuous" => (Selector::Continuous, false),
        "onetime" => (Selector::OneTime, false),
        "transient" => (Selector::Transient, false),
        _ => return Err((StatusCode::NOT_FOUND, "Not Found").into_response()),
    };
    let mut all = projections
        .statistics(selector)
        .await
        .map_err(failed(&uri))?;
    if skip_transient {
        all.retain(|s| s.mode != "Transient");
    }
    Ok(Json(document::list(&base, all)).into_response())
}

async fn statistics_of(
    projections: &Projections,
    name: &str,
    uri: &Uri,
) -> Result<stele_projections::Statistics, Response> {
    projections
        .statistics(Selector::Name(name.to_owned()))
        .await
        .map_err(failed(uri))?
        .into_iter()
        .next()
        .ok_or_else(|| errors::projection_error(ProjectionError::NotFound(name.to_owned()), uri))
}

/// `GET /projection/{name}`: one statistics object.
async fn one(
    State(projections): State<Projections>,
    Path(name): Path<String>,
    BaseUrl(base): BaseUrl,
    uri: Uri,
) -> Answer {
    let s = statistics_of(&projections, &name, &uri).await?;
    Ok(Json(document::document(&base, s)).into_response())
}

/// `GET /projection/{name}/statistics`: `{"projections": [one]}`.
async fn statistics(
    State(projections): State<Projections>,
    Path(name): Path<String>,
    BaseUrl(base): BaseUrl,
    uri: Uri,
) -> Answer {
    let s = statistics_of(&projections, &name, &uri).await?;
    Ok(Json(document::list(&base, vec![s])).into_response())
}

// ---------------------------------------------------------------------------------------
// State, result, query

fn json_text(text: String) -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        text,
    )
        .into_response()
}

async fn state(
    State(projections): State<Projections>,
    Path(name): Path<String>,
    uri: Uri,
    Query(pairs): QueryPairs,
) -> Answer {
    let params = Params::new(pairs);
    let partition = params.get("partition").unwrap_or("");
    let text = projections
        .state(&name, partition)
        .await
        .map_err(failed(&uri))?;
    Ok(json_text(text))
}

async fn result(
    State(projections): State<Projections>,
    Path(name): Path<String>,
    uri: Uri,
    Query(pairs): QueryPairs,
) -> Answer {
    let params = Params::new(pairs);
    let partition = params.get("partition").unwrap_or("");
    let text = projections
        .result(&name, partition)
        .await
        .map_err(failed(&uri))?;
    Ok(json_text(text))
}

/// `?config=yes`'s document.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct QueryDocument {
    name: String,
    query: String,
    mode: &'static str,
    emit_enabled: bool,
    track_emitted_streams: bool,
}

/// `GET /projection/{name}/query`: the query text, or with `config=yes` the definition.
async fn query(
    State(projections): State<Projections>,
    Path(name): Path<String>,
    uri: Uri,
    Query(pairs): QueryPairs,
) -> Answer {
    let params = Params::new(pairs);
    let config = params.flag("config", false).map_err(errors::bad_request)?;
    let info = projections.query(&name).await.map_err(failed(&uri))?;
    if config {
        return Ok(Json(QueryDocument {
            name: info.name,
            query: info.query,
            mode: info.mode.as_str(),
            emit_enabled: info.emit_enabled,
            track_emitted_streams: info.track_emitted_streams,
        })
        .into_response());
    }
    Ok((
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        info.query,
    )
        .into_response())
}

/// `PUT /projection/{name}/query?emit=`.
async fn update(
    State(projections): State<Projections>,
    caller: Caller,
    Path(name): Path<String>,
    uri: Uri,
    Query(pairs): QueryPairs,
    body: Bytes,
) -> Answer {
    let params = Params::new(pairs);
    let emit_enabled = params.optional_flag("emit").map_err(errors::bad_request)?;
    let query = query_text(&body)?;
    let request = UpdateRequest {
        name: name.clone(),
        query,
        emit_enabled,
    };
    projections
        .update(request, &caller.0)
        .await
        .map_err(failed(&uri))?;
    Ok(Json(Named { name: &name }).into_response())
}

// ---------------------------------------------------------------------------------------
// Commands

/// `POST /projection/{name}/command/{enable|disable|abort|reset}`.
async fn command(
    State(projections): State<Projections>,
    Path((name, command)): Path<(String, String)>,
    uri: Uri,
) -> Answer {
    match command.as_str() {
        "enable" => projections.enable(&name).await,
        "disable" => projections.disable(&name, true).await,
        "abort" => projections.disable(&name, false).await,
        "reset" => projections.reset(&name).await,
        _ => return Err((StatusCode::NOT_FOUND, "Not Found").into_response()),
    }
    .map_err(failed(&uri))?;
    Ok(Json(Named { name: &name }).into_response())
}

/// `DELETE /projection/{name}?deleteStateStream=&deleteCheckpointStream=&deleteEmittedStreams=`.
async fn delete(
    State(projections): State<Projections>,
    Path(name): Path<String>,
    uri: Uri,
    Query(pairs): QueryPairs,
) -> Answer {
    let params = Params::new(pairs);
    let flag = |key| params.flag(key, false).map_err(errors::bad_request);
    let request = DeleteRequest {
        name: name.clone(),
        delete_emitted_streams: flag("deleteemittedstreams")?,
        delete_state_stream: flag("deletestatestream")?,
        delete_checkpoint_stream: flag("deletecheckpointstream")?,
    };
    projections.delete(request).await.map_err(failed(&uri))?;
    Ok(Json(Named { name: &name }).into_response())
}

/// `POST /projections/restart`: restarts the subsystem.
async fn restart(State(projections): State<Projections>, uri: Uri) -> Answer {
    projections
        .restart_subsystem()
        .await
        .map_err(failed(&uri))?;
    Ok(StatusCode::OK.into_response())
}
