//! Serving gRPC and HTTP on one port (docs/design.md decision 10, PROTOCOL.md §1).
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
//! Connections come from [`crate::connections`], which bounds how many are open, closes
//! those that sit without a request (header-read and idle timeouts) and acknowledges every
//! read at once (quick ACKs, so that clients with Nagle's algorithm on do not wait 40 ms per
//! call); every request here is counted in flight on its connection until its response body
//! is done.
//!
//! With TLS (a secure node), connections are handshaken first ([`crate::client_tls`]); ALPN
//! offers `h2` and `http/1.1`, and the same preface detection then tells them apart.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::http::header::CONTENT_TYPE;
use axum::http::Request;
use axum::Router;
use tonic::service::Routes;
use tonic::transport::Server;
use tower::ServiceExt;

use stele_cluster::tls::Tls;

use crate::auth::Authentication;
use crate::client_tls;
use crate::connections::{ConnectionInfo, ConnectionLimits, Registry, RequestGuard};

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

/// Serves `grpc` and `http` on `listener`, within `limits`, until `shutdown` completes; then
/// stops accepting, asks open connections to close (HTTP/2 GOAWAY) and returns once they
/// have, or after [`SHUTDOWN_GRACE`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    http: Router,
    grpc: Routes,
    limits: ConnectionLimits,
    tls: Option<Arc<Tls>>,
    authentication: Authentication,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let incoming = client_tls::incoming(listener, Registry::new(limits), tls);
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
        .add_routes(one_port_routes(http, grpc, authentication))
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

/// One set of routes that sends gRPC calls to `grpc` and the rest to `http`, each counted
/// in flight on its connection until its response body is done, each with the principal it
/// runs as (or refused for its credentials: [`crate::auth`]).
fn one_port_routes(http: Router, grpc: Routes, authentication: Authentication) -> Routes {
    let grpc = grpc.prepare().into_axum_router();
    let dispatch = tower::service_fn(move |mut request: Request<Body>| {
        let connection = request.extensions().get::<ConnectionInfo>().cloned();
        let guard = connection.as_ref().map(|connection| {
            // tonic's `Request::remote_addr` looks for the TCP addresses.
            request.extensions_mut().insert(connection.tcp());
            connection.begin_request()
        });
        let grpc_call = is_grpc(&request);
        let target = if grpc_call {
            grpc.clone()
        } else {
            http.clone()
        };
        let authentication = authentication.clone();
        let authorization = crate::auth::authorization(&request);
        async move {
            let response = match authentication
                .principal(authorization, connection.as_ref(), grpc_call)
                .await
            {
                Ok(principal) => {
                    request.extensions_mut().insert(principal);
                    target.oneshot(request).await?
                }
                Err(refusal) => refusal,
            };
            Ok::<_, std::convert::Infallible>(response.map(|body| {
                Body::new(InFlightBody {
                    body,
                    _guard: guard,
                })
            }))
        }
    });
    Routes::from(Router::new().fallback_service(dispatch))
}

/// A response body that keeps its request counted in flight until it is done or dropped.
struct InFlightBody {
    body: Body,
    _guard: Option<RequestGuard>,
}

impl HttpBody for InFlightBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
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

    use super::{serve, Authentication};
    use crate::connections::ConnectionLimits;
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
        start_with(ConnectionLimits::default()).await
    }

    async fn start_with(
        limits: ConnectionLimits,
    ) -> (
        u16,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let http = routes(Arc::new(FakeNode(Mutex::new(status()))));
        let grpc = Routes::new(Echo)
            .add_service(ServerFeaturesServer::new(ServerFeaturesService::default()));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop_rx.await;
            };
            serve(
                listener,
                http,
                grpc,
                limits,
                None,
                Authentication::insecure(),
                shutdown,
            )
            .await
            .unwrap();
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

    /// Connection limits with short timeouts for the tests below.
    fn short_limits(max_connections: usize, timeout: Duration) -> ConnectionLimits {
        ConnectionLimits {
            max_connections,
            header_read_timeout: timeout,
            idle_timeout: timeout,
        }
    }

    /// Whether the server closes `tcp` within `within`, while `dribble` (if any) is sent a
    /// byte every 50 ms, as a slowloris client does.
    async fn closed_within(tcp: &mut TcpStream, dribble: &[u8], within: Duration) -> bool {
        let mut bytes =
            dribble
                .iter()
                .cycle()
                .take(if dribble.is_empty() { 0 } else { usize::MAX });
        let mut buf = [0u8; 1024];
        let watch = async {
            loop {
                tokio::select! {
                    read = tcp.read(&mut buf) => match read {
                        Ok(0) | Err(_) => return,
                        Ok(_) => continue,
                    },
                    () = tokio::time::sleep(Duration::from_millis(50)) => {
                        if let Some(byte) = bytes.next() {
                            if tcp.write_all(&[*byte]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        };
        tokio::time::timeout(within, watch).await.is_ok()
    }

    /// `GET /health/live` over a new HTTP/1.1 connection: the status line, or `None` when
    /// the connection is closed without an answer.
    async fn health_live(port: u16) -> Option<String> {
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        tcp.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), tcp.read_to_string(&mut answer))
            .await
            .ok()?
            .ok()?;
        answer.lines().next().map(str::to_owned)
    }

    /// 500 slowloris connections (a header sent byte by byte) stayed open forever: a
    /// connection that does not complete its first request's headers within the header-read
    /// timeout is closed, over HTTP/1.1 and over h2c (a preface sent byte by byte).
    #[tokio::test]
    async fn slowloris_connections_are_closed_after_the_header_read_timeout() {
        let timeout = Duration::from_millis(400);
        let (port, _stop, _server) = start_with(short_limits(64, timeout)).await;
        let started = std::time::Instant::now();
        let mut slow = Vec::new();
        for n in 0..20 {
            let dribble: &'static [u8] = if n % 2 == 0 {
                b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            } else {
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
            };
            let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            slow.push(tokio::spawn(async move {
                closed_within(&mut tcp, dribble, Duration::from_secs(5)).await
            }));
        }
        for connection in slow {
            assert!(
                connection.await.unwrap(),
                "a slowloris connection stayed open"
            );
        }
        assert!(started.elapsed() >= Duration::from_millis(300));
        // The server itself is fine.
        assert_eq!(
            health_live(port).await.as_deref(),
            Some("HTTP/1.1 204 No Content")
        );
    }

    /// 1,100 idle connections exhausted the file descriptors and new clients (and
    /// `/health/live`) timed out: at the connection limit the longest-idle connection makes
    /// room, and idle connections are closed after the idle timeout.
    #[tokio::test]
    async fn idle_connections_beyond_the_limit_do_not_lock_out_new_clients() {
        let timeout = Duration::from_millis(800);
        let (port, _stop, _server) = start_with(short_limits(4, timeout)).await;
        let mut idle = Vec::new();
        for _ in 0..10 {
            idle.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
        }
        // Served at once: an idle connection was closed to make room.
        assert_eq!(
            health_live(port).await.as_deref(),
            Some("HTTP/1.1 204 No Content")
        );
        // And every idle connection is gone after the idle timeout.
        for tcp in &mut idle {
            assert!(closed_within(tcp, &[], Duration::from_secs(3)).await);
        }
        assert_eq!(
            health_live(port).await.as_deref(),
            Some("HTTP/1.1 204 No Content")
        );
    }

    /// Busy connections are never cut for room: at the limit with every connection
    /// running a call, a new client is refused; once the calls end, their connections are
    /// idle and the next new client is served.
    #[tokio::test]
    async fn busy_connections_are_kept_and_new_clients_are_served_once_they_are_idle() {
        let (port, _stop, _server) = start_with(short_limits(3, Duration::from_secs(30))).await;
        let mut calls = Vec::new();
        for _ in 0..3 {
            let (h2, _) = h2_client(port).await;
            calls.push(tokio::spawn(async move {
                let response = h2_call(
                    &h2,
                    Method::POST,
                    "/test.Echo/Slow",
                    &[GRPC, ("grpc-timeout", "1500m")],
                )
                .await;
                (h2, response.headers()["grpc-status"].clone())
            }));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(health_live(port).await, None, "refused while all are busy");
        let mut clients = Vec::new();
        for call in calls {
            let (h2, status) = call.await.unwrap();
            // The calls ran to their deadline: nobody cut them.
            assert_eq!(status, "1");
            clients.push(h2);
        }
        assert_eq!(
            health_live(port).await.as_deref(),
            Some("HTTP/1.1 204 No Content")
        );
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
