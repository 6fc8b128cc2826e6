//! Authentication on the client port (issue 13, PROTOCOL-OPS.md §4.4): every request gets
//! the [`Principal`] it runs as, as a request extension, before it reaches a gRPC service or
//! an HTTP route; they then ask `stele_services::access::AccessControl` whether it may do
//! what it asks.
//!
//! - Insecure node: every request runs as [`Principal::System`] and credentials are ignored
//!   (EventStoreDB's pass-through provider).
//! - Secure node, in EventStoreDB's order: Basic credentials (`authorization: Basic ...`)
//!   → the user they name, or the request is refused at once: gRPC UNAUTHENTICATED
//!   `Unauthenticated` with no `exception` trailer, HTTP 401 with
//!   `WWW-Authenticate: X-Basic realm="ESDB"`; while users cannot be read yet, UNAVAILABLE
//!   `Server not ready` (`grpc-retry-pushback-ms: -1`) / 503 with `Retry-After: 5`. Then a
//!   client certificate that is a node's → the system. Otherwise anonymous.
//!
//! Any other scheme (Bearer) is refused as invalid credentials: Stele has no token provider.

use std::sync::Arc;

use axum::body::Body;
use axum::http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, Request, Response, StatusCode};
use base64::Engine;
use futures::future::BoxFuture;
use stele_core::access::Principal;

use crate::connections::ConnectionInfo;

/// Longest `authorization` header read (a login and password of a few hundred bytes each,
/// base64): longer is refused as invalid credentials without decoding.
pub const MAX_AUTHORIZATION_HEADER_BYTES: usize = 4096;

/// Why credentials were not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// Unknown user, wrong password, disabled or deleted user, malformed credentials.
    Invalid,
    /// Users cannot be read yet (the node is starting).
    NotReady,
}

/// Checks a login and password.
pub trait Authenticate: Send + Sync + 'static {
    fn authenticate<'a>(
        &'a self,
        login: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<Principal, AuthFailure>>;
}

/// How requests are authenticated: `None` inside means insecure.
#[derive(Clone)]
pub struct Authentication {
    users: Option<Arc<dyn Authenticate>>,
}

impl Authentication {
    /// Every request runs as the system (`--insecure`).
    pub fn insecure() -> Authentication {
        Authentication { users: None }
    }

    /// Basic credentials checked by `users`.
    pub fn secure(users: Arc<dyn Authenticate>) -> Authentication {
        Authentication { users: Some(users) }
    }

    /// The principal of a request with this `authorization` header (see
    /// [`authorization`]), or the response that refuses it.
    pub async fn principal(
        &self,
        authorization: Option<HeaderValue>,
        connection: Option<&ConnectionInfo>,
        grpc: bool,
    ) -> Result<Principal, Response<Body>> {
        let Some(users) = &self.users else {
            return Ok(Principal::System);
        };
        if let Some(header) = authorization {
            let Some((login, password)) = basic_credentials(&header) else {
                return Err(refusal(AuthFailure::Invalid, grpc));
            };
            return users
                .authenticate(&login, &password)
                .await
                .map_err(|failure| refusal(failure, grpc));
        }
        if connection.is_some_and(ConnectionInfo::peer_is_node) {
            return Ok(Principal::System);
        }
        Ok(Principal::Anonymous)
    }
}

/// A request's `authorization` header.
pub fn authorization<B>(request: &Request<B>) -> Option<HeaderValue> {
    request.headers().get(AUTHORIZATION).cloned()
}

/// The login and password of a `Basic` header.
pub fn basic_credentials(header: &HeaderValue) -> Option<(String, String)> {
    let bytes = header.as_bytes();
    if bytes.len() > MAX_AUTHORIZATION_HEADER_BYTES {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?.trim();
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (login, password) = decoded.split_once(':')?;
    if login.is_empty() {
        return None;
    }
    Some((login.to_owned(), password.to_owned()))
}

/// The response that refuses a request's credentials.
fn refusal(failure: AuthFailure, grpc: bool) -> Response<Body> {
    if grpc {
        let status = match failure {
            AuthFailure::Invalid => tonic::Status::unauthenticated("Unauthenticated"),
            AuthFailure::NotReady => {
                let mut status = tonic::Status::unavailable("Server not ready");
                status
                    .metadata_mut()
                    .insert("grpc-retry-pushback-ms", "-1".parse().expect("ascii"));
                status
            }
        };
        return status.into_http::<Body>();
    }
    let mut response = Response::new(Body::empty());
    match failure {
        AuthFailure::Invalid => {
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("X-Basic realm=\"ESDB\""),
            );
        }
        AuthFailure::NotReady => {
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("5"));
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_decoded_and_bad_ones_refused() {
        // admin:changeit, the default credentials every client sends.
        let header = HeaderValue::from_static("Basic YWRtaW46Y2hhbmdlaXQ=");
        assert_eq!(
            basic_credentials(&header),
            Some(("admin".into(), "changeit".into()))
        );
        // A password may contain colons; the login may not be empty.
        let header = HeaderValue::from_str(&format!(
            "basic {}",
            base64::engine::general_purpose::STANDARD.encode("ops:a:b")
        ))
        .unwrap();
        assert_eq!(
            basic_credentials(&header),
            Some(("ops".into(), "a:b".into()))
        );
        for bad in ["Bearer abc", "Basic !!!", "Basic", "Basic Og==", ""] {
            assert_eq!(
                basic_credentials(&HeaderValue::from_static(bad)),
                None,
                "{bad}"
            );
        }
        let long = format!("Basic {}", "A".repeat(MAX_AUTHORIZATION_HEADER_BYTES));
        assert_eq!(
            basic_credentials(&HeaderValue::from_str(&long).unwrap()),
            None
        );
    }
}
