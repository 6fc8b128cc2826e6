//! EventStoreDB's HTTP API for users (its `UsersController`), over
//! [`stele_services::users::Users`], the same operations as the gRPC Users service:
//!
//! | endpoint | body | answer |
//! |---|---|---|
//! | `GET /users` (and `/users/`) | | 200 `{"data": [user...], "success": true, "error": "Success"}`, sorted by login |
//! | `GET /users/{login}` | | 200 `{"data": user, ...}`; 404 |
//! | `GET /users/$current` | | the caller's own details; 401 for anonymous |
//! | `POST /users` (and `/users/`) | `loginName`, `fullName`, `groups`, `password` | 201 + `Location: /users/{login}`; 409 |
//! | `PUT /users/{login}` | `fullName`, `groups` | 200; 404 |
//! | `DELETE /users/{login}` | | 200; 404 |
//! | `POST /users/{login}/command/enable`, `.../disable` | | 200; 404 |
//! | `POST /users/{login}/command/reset-password` | `newPassword` | 200; 404 |
//! | `POST /users/{login}/command/change-password` | `currentPassword`, `newPassword` | 200; 401 for a wrong current password; 404 |
//!
//! A user document is `{"loginName", "fullName", "groups", "dateLastUpdated" (ISO 8601, when
//! known), "disabled", "links": [{"href", "rel"}...]}` with EventStoreDB's links
//! (reset-password, change-password, edit, delete, then enable or disable). Commands answer
//! EventStoreDB's result document `{"loginName", "success": true, "error": "Success"}`.
//! Bodies are JSON (property names camelCase, PascalCase accepted as EventStoreDB's
//! case-insensitive reader does), at most [`MAX_USERS_BODY_BYTES`] (over: 413).
//!
//! Every request is first checked against the access policy with the caller's
//! [`Principal`] (the authentication layer's request extension; none means anonymous), as
//! the gRPC service checks it; a refusal is 401 (PROTOCOL-OPS.md §4.4). Errors become
//! answers in `super::errors`.

// Handlers answer `Result<Response, Response>` and the helpers here build the `Err` side;
// boxing it would only move the allocation (as in `crate::grpc`).
#![allow(clippy::result_large_err)]

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use stele_core::access::{Operation, Principal};
use stele_services::access::AccessControl;
use stele_services::users::{UserDetails, UserError, Users};

use super::errors::{self, UserResult};
use super::policy::Caller;
use super::subscriptions::document::{escape_segment, BaseUrl};
use super::timestamp::iso8601;
use crate::grpc::users::check_login;

#[cfg(test)]
mod tests;

/// The largest request body read, in bytes: room for the largest user the bounds allow
/// (128 groups of 1 KiB, a 4 KiB full name and password) in JSON.
pub const MAX_USERS_BODY_BYTES: usize = 256 * 1024;

/// `error` of a successful result.
const SUCCESS: &str = "Success";

#[derive(Clone)]
struct UsersState {
    users: Users,
    access: AccessControl,
}

/// The `/users` routes.
pub fn routes(users: Users, access: AccessControl) -> Router {
    Router::new()
        .route("/users", get(list).post(create))
        .route("/users/", get(list).post(create))
        // The static segment wins over `{login}`.
        .route("/users/$current", get(current))
        .route("/users/{login}", get(one).put(update).delete(delete))
        .route("/users/{login}/command/enable", post(enable))
        .route("/users/{login}/command/disable", post(disable))
        .route(
            "/users/{login}/command/reset-password",
            post(reset_password),
        )
        .route(
            "/users/{login}/command/change-password",
            post(change_password),
        )
        .layer(DefaultBodyLimit::max(MAX_USERS_BODY_BYTES))
        .with_state(UsersState { users, access })
}

type Answer = Result<Response, Response>;

impl UsersState {
    fn authorize(&self, caller: &Caller, operation: Operation) -> Result<(), Response> {
        self.access
            .check_operation(&caller.0, operation)
            .map_err(|_| errors::access_denied())
    }
}

/// The login of a path, checked as the gRPC service checks it.
fn checked(login: &str) -> Result<(), Response> {
    check_login(login).map_err(errors::bad_request)
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body)
        .map_err(|e| errors::bad_request(format!("the request body is not valid: {e}")))
}

/// A command's success: 200 with EventStoreDB's result document.
fn done(login: &str) -> Response {
    Json(UserResult {
        login_name: Some(login),
        success: true,
        error: SUCCESS,
    })
    .into_response()
}

// ---------------------------------------------------------------------------------------
// Documents

#[derive(Debug, Serialize)]
struct Link {
    href: String,
    rel: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct UserDocument {
    login_name: String,
    full_name: String,
    groups: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    date_last_updated: Option<String>,
    disabled: bool,
    links: Vec<Link>,
}

/// `{"data": ..., "success": true, "error": "Success"}`.
#[derive(Debug, Serialize)]
struct DetailsResult<T> {
    data: T,
    success: bool,
    error: &'static str,
}

fn details_result<T: Serialize>(data: T) -> Response {
    Json(DetailsResult {
        data,
        success: true,
        error: SUCCESS,
    })
    .into_response()
}

/// .NET ticks (100 ns) per second.
const TICKS_PER_SECOND: i64 = 10_000_000;

fn date(ticks_since_epoch: i64) -> String {
    let ticks = ticks_since_epoch.max(0);
    let seconds = (ticks / TICKS_PER_SECOND) as u64;
    let nanos = (ticks % TICKS_PER_SECOND) as u32 * 100;
    iso8601(std::time::UNIX_EPOCH + std::time::Duration::new(seconds, nanos))
}

fn document(base: &str, user: UserDetails) -> UserDocument {
    let path = format!("{base}/users/{}", escape_segment(&user.login_name));
    let link = |suffix: &str, rel| Link {
        href: format!("{path}{suffix}"),
        rel,
    };
    let toggle = if user.disabled {
        link("/command/enable", "enable")
    } else {
        link("/command/disable", "disable")
    };
    let links = vec![
        link("/command/reset-password", "reset-password"),
        link("/command/change-password", "change-password"),
        link("", "edit"),
        link("", "delete"),
        toggle,
    ];
    UserDocument {
        login_name: user.login_name,
        full_name: user.full_name,
        groups: user.groups,
        date_last_updated: user.last_updated.map(date),
        disabled: user.disabled,
        links,
    }
}

// ---------------------------------------------------------------------------------------
// Bodies (every property optional, as EventStoreDB's reader leaves missing ones null)

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct CreateBody {
    #[serde(alias = "LoginName")]
    login_name: Option<String>,
    #[serde(alias = "FullName")]
    full_name: Option<String>,
    #[serde(alias = "Groups")]
    groups: Option<Vec<String>>,
    #[serde(alias = "Password")]
    password: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct UpdateBody {
    #[serde(alias = "FullName")]
    full_name: Option<String>,
    #[serde(alias = "Groups")]
    groups: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ResetPasswordBody {
    #[serde(alias = "NewPassword")]
    new_password: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ChangePasswordBody {
    #[serde(alias = "CurrentPassword")]
    current_password: Option<String>,
    #[serde(alias = "NewPassword")]
    new_password: Option<String>,
}

fn required(value: Option<String>, name: &str) -> Result<String, Response> {
    value.ok_or_else(|| errors::bad_request(format!("'{name}' is required")))
}

// ---------------------------------------------------------------------------------------
// Handlers

async fn list(
    State(state): State<UsersState>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    uri: Uri,
) -> Answer {
    state.authorize(&caller, Operation::UserList)?;
    let users = state
        .users
        .all_details()
        .await
        .map_err(|e| errors::user_error(e, None, &uri))?;
    let data: Vec<_> = users.into_iter().map(|u| document(&base, u)).collect();
    Ok(details_result(data))
}

async fn one(
    State(state): State<UsersState>,
    caller: Caller,
    Path(login): Path<String>,
    BaseUrl(base): BaseUrl,
    uri: Uri,
) -> Answer {
    state.authorize(&caller, Operation::UserDetails)?;
    checked(&login)?;
    details_of(&state, &login, &base, &uri).await
}

/// `GET /users/$current`: the caller's own details.
async fn current(
    State(state): State<UsersState>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    uri: Uri,
) -> Answer {
    state.authorize(&caller, Operation::UserDetails)?;
    let Principal::User { name, .. } = &caller.0 else {
        // Anonymous is refused above; the system account is no user.
        return Err(errors::user_error(
            UserError::NotFound {
                login: caller.0.name().to_owned(),
            },
            None,
            &uri,
        ));
    };
    details_of(&state, name, &base, &uri).await
}

async fn details_of(state: &UsersState, login: &str, base: &str, uri: &Uri) -> Answer {
    let user = state
        .users
        .details(login)
        .await
        .map_err(|e| errors::user_error(e, Some(login), uri))?;
    Ok(details_result(document(base, user)))
}

async fn create(
    State(state): State<UsersState>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    uri: Uri,
    body: Bytes,
) -> Answer {
    state.authorize(&caller, Operation::UserCreate)?;
    let body: CreateBody = parse(&body)?;
    let login = body.login_name.unwrap_or_default();
    checked(&login)?;
    let password = required(body.password, "password")?;
    let groups = body.groups.unwrap_or_default();
    let full_name = body.full_name.unwrap_or_default();
    state
        .users
        .create(&login, &full_name, &groups, &password)
        .await
        .map_err(|e| errors::user_error(e, Some(&login), &uri))?;
    let location = format!("{}/users/{}", base, escape_segment(&login));
    let mut response = done(&login);
    *response.status_mut() = StatusCode::CREATED;
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(LOCATION, location);
    }
    Ok(response)
}

async fn update(
    State(state): State<UsersState>,
    caller: Caller,
    Path(login): Path<String>,
    uri: Uri,
    body: Bytes,
) -> Answer {
    state.authorize(&caller, Operation::UserUpdate)?;
    checked(&login)?;
    let body: UpdateBody = parse(&body)?;
    let full_name = body.full_name.unwrap_or_default();
    let groups = body.groups.unwrap_or_default();
    state
        .users
        .update(&login, &full_name, &groups)
        .await
        .map_err(|e| errors::user_error(e, Some(&login), &uri))?;
    Ok(done(&login))
}

/// Delete, enable and disable: a login and nothing else.
#[derive(Debug, Clone, Copy)]
enum Command {
    Delete,
    Enable,
    Disable,
}

impl Command {
    fn operation(self) -> Operation {
        match self {
            Command::Delete => Operation::UserDelete,
            Command::Enable => Operation::UserEnable,
            Command::Disable => Operation::UserDisable,
        }
    }
}

async fn command(
    state: UsersState,
    caller: Caller,
    command: Command,
    login: String,
    uri: Uri,
) -> Answer {
    state.authorize(&caller, command.operation())?;
    checked(&login)?;
    let users = &state.users;
    match command {
        Command::Delete => users.delete(&login).await,
        Command::Enable => users.enable(&login).await,
        Command::Disable => users.disable(&login).await,
    }
    .map_err(|e| errors::user_error(e, Some(&login), &uri))?;
    Ok(done(&login))
}

async fn delete(
    State(state): State<UsersState>,
    caller: Caller,
    Path(login): Path<String>,
    uri: Uri,
) -> Answer {
    command(state, caller, Command::Delete, login, uri).await
}

async fn enable(
    State(state): State<UsersState>,
    caller: Caller,
    Path(login): Path<String>,
    uri: Uri,
) -> Answer {
    command(state, caller, Command::Enable, login, uri).await
}

async fn disable(
    State(state): State<UsersState>,
    caller: Caller,
    Path(login): Path<String>,
    uri: Uri,
) -> Answer {
    command(state, caller, Command::Disable, login, uri).await
}

async fn reset_password(
    State(state): State<UsersState>,
    caller: Caller,
    Path(login): Path<String>,
    uri: Uri,
    body: Bytes,
) -> Answer {
    state.authorize(&caller, Operation::UserResetPassword)?;
    checked(&login)?;
    let body: ResetPasswordBody = parse(&body)?;
    let new_password = required(body.new_password, "newPassword")?;
    state
        .users
        .reset_password(&login, &new_password)
        .await
        .map_err(|e| errors::user_error(e, Some(&login), &uri))?;
    Ok(done(&login))
}

async fn change_password(
    State(state): State<UsersState>,
    caller: Caller,
    Path(login): Path<String>,
    uri: Uri,
    body: Bytes,
) -> Answer {
    state.authorize(&caller, Operation::UserChangePassword)?;
    checked(&login)?;
    let body: ChangePasswordBody = parse(&body)?;
    let current = required(body.current_password, "currentPassword")?;
    let new_password = required(body.new_password, "newPassword")?;
    state
        .users
        .change_password(&login, &current, &new_password)
        .await
        .map_err(|e| errors::user_error(e, Some(&login), &uri))?;
    Ok(done(&login))
}
