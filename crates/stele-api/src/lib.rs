//! Stele's client API on one port: the EventStoreDB-compatible gRPC services in [`grpc`]
//! (and, beside them, the HTTP API). Errors become wire answers in one place per protocol.

#![cfg_attr(
    test,
    allow(
        clippy::disallowed_methods,
        reason = "tests may use the clock, random ids and threads"
    )
)]

pub mod auth;
pub mod client_tls;
pub mod connections;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod serve;
