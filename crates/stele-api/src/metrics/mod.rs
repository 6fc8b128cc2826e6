//! Prometheus `GET /metrics` (issue 16, PROTOCOL-OPS.md §6.2): KurrentDB 25.x's family
//! names and labels, for the figures Stele has, in the Prometheus text format (0.0.4) that
//! KurrentDB's exporter answers by default.
//!
//! Two kinds of figures: those counted on the request path, which live as long as the node
//! (the gRPC calls, [`grpc_calls`], hooked over the gRPC routes by [`Metrics::instrument`]),
//! and those read from the node when a scrape comes ([`scrape`]: checkpoints, persistent
//! subscription groups, process and machine figures). Nothing is a constant: a figure Stele
//! cannot read is left out rather than invented.
//!
//! Who may scrape is the HTTP policy's business ([`crate::http::policy`]: `Node.Statistics`
//! rules, so authenticated unless `AllowAnonymousEndpointAccess`).

mod grpc_calls;
mod scrape;

use axum::Router;
use tonic::service::Routes;

pub use grpc_calls::GrpcCalls;
pub use scrape::CONTENT_TYPE;

/// The metrics of one node; clones share them.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    grpc: GrpcCalls,
}

impl Metrics {
    /// `grpc` with every call counted and the Streams methods timed.
    pub fn instrument(&self, grpc: Routes) -> Routes {
        let router: Router = grpc.prepare().into_axum_router();
        Routes::from(router.layer(axum::middleware::from_fn_with_state(
            self.grpc.clone(),
            grpc_calls::count_call,
        )))
    }

    pub(crate) fn grpc_calls(&self) -> &GrpcCalls {
        &self.grpc
    }
}

pub(crate) use scrape::route;
