//! Serving gRPC and HTTP on one port (DESIGN.md decision 10, PROTOCOL.md §1).
//!
//! One listener takes cleartext HTTP/1.1 and HTTP/2 with prior knowledge (h2c): each
//! connection is told apart by the HTTP/2 preface, as EventStoreDB's cleartext multiplexing
//! does. Requests whose content type is `application/grpc...` go to the gRPC routes,
//! everything else to the HTTP routes, so an unknown gRPC method gets gRPC's UNIMPLEMENTED
//! and an unknown HTTP path a plain 404.
//!
//! The connection machinery is tonic's server: it detects the protocol (with `accept_http1`),
//! enforces the `grpc-timeout` deadline that clients send (a plain hyper or axum server would
//! not), sets TCP_NODELAY and HTTP/2 keepalive. HTTP/2 PINGs from clients are answered by
//! hyper's HTTP/2 layer whatever their rate: it has no "too many pings" rule and never sends
//! GOAWAY for them, so the Rust client's 10 s keepalive is safe.
//!
//! Not here: TLS (ALPN), which Stele does not serve yet.

use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::Request;
use axum::Router;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tower::ServiceExt;

/// Server-sent HTTP/2 keepalive, EventStoreDB's defaults (`KeepAliveInterval`,
/// `KeepAliveTimeout`): a client that stops answering PINGs is dropped, and with it its
/// subscriptions.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Concurrent HTTP/2 streams (calls) on one connection. Every subscription holds one, and
/// the clients multiplex them all over a single connection.
pub const MAX_CONCURRENT_STREAMS_PER_CONNECTION: u32 = 1024;

/// After shutdown is asked for, how long open connections (subscriptions never end by
/// themselves) get to finish before `serve` returns anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves `grpc` and `http` on `listener` until `shutdown` completes; then stops accepting,
/// asks open connections to close (HTTP/2 GOAWAY) and returns once they have, or after
/// [`SHUTDOWN_GRACE`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    http: Router,
    grpc: Routes,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = stopping_tx.send(());
    };
    let server = Server::builder()
        .accept_http1(true)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS_PER_CONNECTION)
        .add_routes(one_port_routes(http, grpc))
        .serve_with_incoming_shutdown(incoming, signal);
    let grace_over = async move {
        match stopping_rx.await {
            Ok(()) => tokio::time::sleep(SHUTDOWN_GRACE).await,
            // The server stopped by itself; the other branch has its result.
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        result = server => result.map_err(std::io::Error::other),
        () = grace_over => {
            tracing::info!(
                grace_secs = SHUTDOWN_GRACE.as_secs(),
                "connections still open after the shutdown grace period; stopping anyway"
            );
            Ok(())
        }
    }
}

/// One set of routes that sends gRPC calls to `grpc` and the rest to `http`.
fn one_port_routes(http: Router, grpc: Routes) -> Routes {
    let grpc = grpc.prepare().into_axum_router();
    let dispatch = tower::service_fn(move |request: Request<Body>| {
        let target = if is_grpc(&request) {
            grpc.clone()
        } else {
            http.clone()
        };
        target.oneshot(request)
    });
    Routes::from(Router::new().fallback_service(dispatch))
}

/// `application/grpc`, `application/grpc+proto`, ...
fn is_grpc<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};
    use std::time::Duration;

    use axum::http::{Method, Request, Response, StatusCode};
    use stele_proto::server_features::server_features_client::ServerFeaturesClient;
    use stele_proto::server_features::server_features_server::ServerFeaturesServer;
    use stele_proto::shared::Empty;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tonic::service::Routes;

    use super::serve;
    use crate::grpc::ServerFeaturesService;
    use crate::http::routes;
    use crate::http::test_node::{status, FakeNode};

    /// A gRPC service whose `Slow` method answers after a minute and whose other methods
    /// answer at once with OK and no messages.
    #[derive(Clone)]
    struct Echo;

    impl tonic::server::NamedService for Echo {
        const NAME: &'static str = "test.Echo";
    }

    impl tower::Service<Request<tonic::body::Body>> for Echo {
        type Response = Response<tonic::body::Body>;
        type Error = Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: Request<tonic::body::Body>) -> Self::Future {
            let slow = request.uri().path().ends_with("/Slow");
            Box::pin(async move {
                if slow {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                Ok(Response::builder()
                    .header("content-type", "application/grpc")
                    .header("grpc-status", "0")
                    .body(tonic::body::Body::empty())
                    .unwrap())
            })
        }
    }

    /// Starts a server on a free loopback port; it stops when the returned sender is used or
    /// dropped.
    async fn start() -> (
        u16,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let http = routes(Arc::new(FakeNode(Mutex::new(status()))));
        let grpc = Routes::new(Echo).add_service(ServerFeaturesServer::new(ServerFeaturesService));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop_rx.await;
            };
            serve(listener, http, grpc, shutdown).await.unwrap();
        });
        (port, stop_tx, server)
    }

    async fn h2_client(port: u16) -> (h2::client::SendRequest<bytes::Bytes>, h2::PingPong) {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let (send, mut connection) = h2::client::handshake(tcp).await.unwrap();
        let ping_pong = connection.ping_pong().expect("first call");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        (send, ping_pong)
    }

    async fn h2_call(
        send: &h2::client::SendRequest<bytes::Bytes>,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Response<h2::RecvStream> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://127.0.0.1{path}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut ready = send.clone().ready().await.unwrap();
        let (response, _) = ready.send_request(request.body(()).unwrap(), true).unwrap();
        response.await.unwrap()
    }

    const GRPC: (&str, &str) = ("content-type", "application/grpc");

    #[tokio::test]
    async fn grpc_and_http_share_one_port() {
        let (port, _stop, _server) = start().await;

        // A real gRPC call from tonic's client (HTTP/2 with prior knowledge).
        let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = ServerFeaturesClient::new(channel);
        let methods = client.get_supported_methods(Empty {}).await.unwrap();
        assert!(!methods.into_inner().methods.is_empty());

        // HTTP over HTTP/2, and gRPC's UNIMPLEMENTED for a method nobody serves.
        let (h2, _) = h2_client(port).await;
        let ping = h2_call(&h2, Method::GET, "/ping", &[]).await;
        assert_eq!(ping.status(), StatusCode::OK);
        let missing = h2_call(&h2, Method::POST, "/test.Nobody/Call", &[GRPC]).await;
        assert_eq!(missing.headers()["grpc-status"], "12");
        let not_found = h2_call(&h2, Method::GET, "/nothing-here", &[]).await;
        assert_eq!(not_found.status(), StatusCode::NOT_FOUND);

        // HTTP/1.1 on the same port.
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        tcp.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
    }

    #[tokio::test]
    async fn grpc_timeout_is_enforced() {
        let (port, _stop, _server) = start().await;
        let (h2, _) = h2_client(port).await;
        let started = std::time::Instant::now();
        let response = h2_call(
            &h2,
            Method::POST,
            "/test.Echo/Slow",
            &[GRPC, ("grpc-timeout", "50m")],
        )
        .await;
        // tonic answers an expired deadline with CANCELLED "Timeout expired".
        assert_eq!(response.headers()["grpc-status"], "1");
        assert!(started.elapsed() < Duration::from_secs(30));
    }

    /// The Rust client pings every 10 s; a server that counted pings could answer GOAWAY
    /// (too_many_pings). A burst far above that rate must be answered and leave the
    /// connection usable.
    #[tokio::test]
    async fn http2_pings_are_answered_without_goaway() {
        let (port, _stop, _server) = start().await;
        let (h2, mut ping_pong) = h2_client(port).await;
        for _ in 0..200 {
            ping_pong.ping(h2::Ping::opaque()).await.unwrap();
        }
        let response = h2_call(&h2, Method::POST, "/test.Echo/Call", &[GRPC]).await;
        assert_eq!(response.headers()["grpc-status"], "0");
    }

    #[tokio::test]
    async fn shutdown_stops_accepting_and_returns() {
        let (port, stop, server) = start().await;
        let (h2, _) = h2_client(port).await;
        assert_eq!(
            h2_call(&h2, Method::GET, "/ping", &[]).await.status(),
            StatusCode::OK
        );
        stop.send(()).unwrap();
        // The idle HTTP/2 connection gets GOAWAY and closes, so serve returns well before
        // the grace period ends.
        tokio::time::timeout(super::SHUTDOWN_GRACE, server)
            .await
            .expect("serve returned")
            .unwrap();
        assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());
    }
}
