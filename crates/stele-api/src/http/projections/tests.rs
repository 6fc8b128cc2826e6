//! The `/projections` routes behind the access policy, against a real in-memory node with
//! projections on (the gRPC service's fixture), with the caller's principal put in each
//! request's extensions as the authentication layer does. What is tested here is decided
//! before the subsystem is asked: who may call, the request's parameters and body size,
//! and the routes being absent when projections are not run.

use axum::body::Body;
use axum::http::header::HOST;
use axum::http::{Method, Request};
use http_body_util::BodyExt;
use stele_core::access::Principal;
use stele_projections::RunProjections;
use stele_services::access::AccessControl;
use tower::ServiceExt;

use super::*;
use crate::grpc::projections::tests::{fixture, projections};
use crate::grpc::users::tests::{admin, plain, start};
use crate::http::policy;

/// The routes as [`crate::http::router`] serves them: behind the policy layer.
fn guarded(projections: Projections, access: AccessControl) -> Router {
    routes(projections).layer(axum::middleware::from_fn_with_state(
        access,
        policy::authorize,
    ))
}

async fn call(
    router: Router,
    method: Method,
    uri: &str,
    body: impl Into<Body>,
    as_: Option<&Principal>,
) -> (StatusCode, String) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(HOST, "node.test:2113")
        .body(body.into())
        .unwrap();
    if let Some(principal) = as_ {
        request.extensions_mut().insert(principal.clone());
    }
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_refuses_callers_without_the_right() {
    let (_node, access, projections) = fixture().await;
    let router = guarded(projections, access);
    let plain = plain("ouro");
    let cases: [(Method, &str, Option<&Principal>); 7] = [
        (Method::POST, "/projections/continuous?name=p", None),
        (Method::GET, "/projections/any", None),
        (Method::GET, "/projection/p/state", None),
        (Method::PUT, "/projection/p/query", None),
        (Method::POST, "/projection/p/command/enable", None),
        (Method::DELETE, "/projection/p", Some(&plain)),
        (Method::POST, "/projections/restart", Some(&plain)),
    ];
    for (method, uri, as_) in cases {
        let (status, _) = call(router.clone(), method.clone(), uri, "", as_).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_400_and_unknown_paths_404() {
    let (_node, access, projections) = fixture().await;
    let router = guarded(projections, access);
    let admin = admin();
    let cases = [
        (
            Method::POST,
            "/projections/continuous",
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/projections/continuous?name=",
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/projections/continuous?name=p&emit=maybe",
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/projections/continuous?name=p&trackemittedstreams=2",
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/projections/transient",
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            "/projection/p/query?emit=perhaps",
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::DELETE,
            "/projection/p?deleteEmittedStreams=perhaps",
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/projection/p/query?config=perhaps",
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/projections/everything",
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            "/projection/p/command/explode",
            StatusCode::NOT_FOUND,
        ),
    ];
    for (method, uri, expected) in cases {
        let (status, body) = call(router.clone(), method.clone(), uri, "", Some(&admin)).await;
        assert_eq!(status, expected, "{method} {uri}: {body}");
    }
    let (status, body) = call(
        router.clone(),
        Method::POST,
        "/projections/continuous?emit=true",
        "",
        Some(&admin),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, "'name' is required");
    // A query that is not UTF-8 text.
    let (status, _) = call(
        router,
        Method::POST,
        "/projections/continuous?name=p",
        vec![0xff_u8, 0xfe],
        Some(&admin),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_over_the_limit_are_413() {
    let (_node, access, projections) = fixture().await;
    let router = guarded(projections, access);
    let admin = admin();
    let big = "x".repeat(MAX_QUERY_BYTES + 1);
    for (method, uri) in [
        (Method::POST, "/projections/continuous?name=p"),
        (Method::PUT, "/projection/p/query"),
    ] {
        let (status, _) = call(
            router.clone(),
            method.clone(),
            uri,
            big.clone(),
            Some(&admin),
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{method} {uri}");
    }
}

/// With `RunProjections: None` the node's router has no projection routes (404), while
/// the policy still answers anonymous callers first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routes_are_absent_when_projections_are_not_run() {
    let (node, users, access) = start().await;
    let persistent = stele_services::persistent::Subsystem::start(node.clone(), access.clone());
    let router = crate::http::router(
        node.clone(),
        persistent,
        users,
        projections(&node, &access, RunProjections::None),
        access.clone(),
        None,
        crate::metrics::Metrics::default(),
    );
    let admin = admin();
    for uri in ["/projections/any", "/projection/p"] {
        let (status, _) = call(router.clone(), Method::GET, uri, "", Some(&admin)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        let (status, _) = call(router.clone(), Method::GET, uri, "", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
    }
}
