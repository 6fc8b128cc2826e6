//! The EventStoreDB-compatible gRPC services (PROTOCOL.md §2–§10) over the
//! [`stele_cluster::Node`] facade: Streams (read and catch-up subscriptions, append, batch
//! append, delete, tombstone), PersistentSubscriptions (over the
//! [`stele_services::persistent::Subsystem`] engine), ServerFeatures, Gossip and Operations (resign,
//! node priority, shutdown, restarting persistent subscriptions), Users, and Projections
//! (over [`stele_projections::Projections`], served only when the node runs projections).
//!
//! What this module owns: turning requests into node and subsystem calls and their answers
//! into the exact wire shapes, texts and trailers the official clients expect. Errors reach
//! the wire only through [`status`]. What it does not own: the listener, TLS, the HTTP API
//! that shares the port, authentication.
//!
//! Serving: [`routes`] gives a [`tonic::service::Routes`] with every service; it converts
//! into an `axum::Router` (`Routes::into_axum_router`) to merge with the HTTP routes, and
//! back (`Routes::from(router)`). Serve it through `tonic::transport::Server` (with
//! `accept_http1(true)` for the HTTP API on the same port) so that `grpc-timeout` deadlines
//! are enforced; a plain axum/hyper server does not enforce them.
//!
//! Not served yet: the other operations (scavenge, index merges:
//! UNIMPLEMENTED), monitoring, the v2 protocol.

// tonic's handlers return `Result<_, tonic::Status>`, and the helpers here build those
// statuses; boxing them would only move the allocation.
#![allow(clippy::result_large_err)]

pub mod caller;
pub mod event_filter;
pub mod events;
pub mod gossip;
pub mod operations;
pub mod persistent;
pub mod projections;
pub mod request_headers;
pub mod server_features;
pub mod status;
pub mod streams;
pub mod users;
pub mod wire_uuid;

use stele_cluster::Node;
use stele_proto::gossip::gossip_server::GossipServer;
use stele_proto::operations::operations_server::OperationsServer;
use stele_proto::persistent::persistent_subscriptions_server::PersistentSubscriptionsServer;
use stele_proto::projections::projections_server::ProjectionsServer;
use stele_proto::server_features::server_features_server::ServerFeaturesServer;
use stele_proto::streams::streams_server::StreamsServer;
use stele_proto::users::users_server::UsersServer;
use stele_services::access::AccessControl;
use stele_services::users::Users;
use tonic::service::{Routes, RoutesBuilder};

pub use gossip::GossipService;
pub use operations::OperationsService;
pub use persistent::PersistentSubscriptionsService;
pub use projections::ProjectionsService;
pub use server_features::ServerFeaturesService;
pub use streams::StreamsService;
pub use users::UsersService;

/// The smallest limit on one gRPC message, each way. Events reach 16 MiB, and the Python and
/// Node clients raise their own limit to 17 MiB for the same reason.
pub const MAX_MESSAGE_SIZE_BYTES: usize = 17 * 1024 * 1024;

/// Room for framing around the events of one append message.
const APPEND_MESSAGE_OVERHEAD_BYTES: usize = 1024 * 1024;

/// Every gRPC service of a node, ready to serve. `persistent` is the node's persistent
/// subscriptions engine and `projections` its projections subsystem, both shared with the
/// HTTP API.
pub fn routes(
    node: Node,
    persistent: stele_services::persistent::Subsystem,
    users: Users,
    projections: stele_projections::Projections,
    access: AccessControl,
) -> Routes {
    let mut builder = RoutesBuilder::default();
    add_services(&mut builder, node, persistent, users, projections, access);
    builder.routes()
}

/// Adds every gRPC service of a node to `builder`, for a server that has routes of its own.
/// The Projections service is added only when `projections` is enabled (with
/// `RunProjections: None` its calls stay UNIMPLEMENTED, as EventStoreDB's).
pub fn add_services(
    builder: &mut RoutesBuilder,
    node: Node,
    persistent: stele_services::persistent::Subsystem,
    users: Users,
    projections: stele_projections::Projections,
    access: AccessControl,
) {
    let projections_enabled = projections.is_enabled();
    if projections_enabled {
        builder.add_service(
            ProjectionsServer::new(ProjectionsService::new(projections, access.clone()))
                .max_decoding_message_size(MAX_MESSAGE_SIZE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_SIZE_BYTES),
        );
    }
    // One BatchAppend message may carry a whole append (the Python client sends every
    // multi-event append as a single message), so Streams accepts the node's maximum append
    // size plus framing.
    let streams_decoding_bytes = MAX_MESSAGE_SIZE_BYTES
        .max((node.max_append_size_bytes() as usize).saturating_add(APPEND_MESSAGE_OVERHEAD_BYTES));
    builder
        .add_service(
            StreamsServer::new(StreamsService::new(node.clone(), access.clone()))
                .max_decoding_message_size(streams_decoding_bytes)
                .max_encoding_message_size(MAX_MESSAGE_SIZE_BYTES),
        )
        .add_service(
            ServerFeaturesServer::new(ServerFeaturesService::new(projections_enabled))
                .max_decoding_message_size(MAX_MESSAGE_SIZE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_SIZE_BYTES),
        )
        .add_service(
            GossipServer::new(GossipService::new(node.clone(), access.clone()))
                .max_decoding_message_size(MAX_MESSAGE_SIZE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_SIZE_BYTES),
        )
        .add_service(
            OperationsServer::new(OperationsService::new(
                node,
                persistent.clone(),
                access.clone(),
            ))
            .max_decoding_message_size(MAX_MESSAGE_SIZE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_SIZE_BYTES),
        )
        .add_service(
            PersistentSubscriptionsServer::new(PersistentSubscriptionsService::new(
                persistent,
                access.clone(),
            ))
            .max_decoding_message_size(MAX_MESSAGE_SIZE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_SIZE_BYTES),
        )
        .add_service(
            UsersServer::new(UsersService::new(users, access))
                .max_decoding_message_size(MAX_MESSAGE_SIZE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_SIZE_BYTES),
        );
}
