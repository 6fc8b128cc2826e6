//! Stele's database services without a transport (docs/design.md, ARCHITECTURE.md "the
//! core room"): what a client can ask of the database, as plain Rust over
//! [`stele_cluster::Node`], for every adapter to share — the gRPC and HTTP services in
//! `stele-api`, the simulation's clients and, next, projections.
//!
//! - [`access`]: access control over the node: the policy, stream ACLs read from the
//!   log, and which streams a `$all` reader may see;
//! - [`reads`]: finite reads of a stream or `$all`, a page at a time (the node applies the
//!   stream's metadata);
//! - [`filter`]: the `$all` filter (stream name or event type; regex or prefixes) with a
//!   bounded cost per event;
//! - [`links`]: resolving link events (`$>`);
//! - [`catchup`]: the one catch-up engine: a stream or `$all` (filtered) from a point,
//!   history first, then a gap-free hand-over to the live feed, back to the log when the
//!   reader falls behind;
//! - [`persistent`]: the persistent-subscription engine (consumer groups);
//! - [`users`]: the user accounts kept in the log (create, update, delete, passwords) and
//!   the authenticator that turns Basic credentials into a principal.
//!
//! No wire type (gRPC, protobuf or HTTP crate) appears here (the tidy test checks); clocks, ids and
//! blocking work go only through `stele_cluster::determinism` and `stele_cluster::blocking`,
//! which the simulation controls.

#![cfg_attr(
    test,
    allow(
        clippy::disallowed_methods,
        reason = "tests may use the clock, random ids and threads"
    )
)]

pub mod access;
pub mod catchup;
pub mod filter;
pub mod links;
pub mod persistent;
pub mod reads;
pub mod users;

/// A real single node, in memory, for the services' tests (no network).
#[cfg(test)]
pub(crate) async fn test_node() -> stele_cluster::Node {
    let node = stele_cluster::Node::start(stele_cluster::fuzzing::single_node_config())
        .await
        .expect("an in-memory node starts");
    assert!(
        node.wait_ready(std::time::Duration::from_secs(20)).await,
        "the node becomes ready"
    );
    node
}
