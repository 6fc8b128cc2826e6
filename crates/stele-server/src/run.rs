//! Running a node: configuration options become a [`NodeConfig`], the node starts, and one
//! listener serves gRPC and HTTP until SIGINT or SIGTERM.

use std::time::Duration;

use anyhow::Context;
use stele_cluster::{Node, NodeConfig};

use crate::config::Options;

/// How long an append waits for its outcome (EventStoreDB's `WriteTimeoutMs` is 2 s; a
/// single node under fsync load needs more headroom than that on a slow disk).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Turns options into the node's configuration.
pub fn node_config(options: &Options) -> NodeConfig {
    NodeConfig {
        db_dir: options.db_dir().map(|d| d.to_path_buf()),
        index_dir: options.index.clone(),
        chunk_size_bytes: options.chunk_size,
        max_append_size_bytes: options.max_append_size,
        // EventStoreDB's default is int.MaxValue: no limit beyond the append's own.
        max_append_event_size_bytes: u32::try_from(options.max_append_event_size).unwrap_or(0),
        cluster_size: options.cluster_size,
        http_advertised: options.http_advertised(),
        internal: (options.int_ip.to_string(), options.int_tcp_port),
        node_priority: options.node_priority,
        read_only_replica: options.read_only_replica,
        leader_election_timeout_ms: options.leader_election_timeout_ms,
        write_timeout: WRITE_TIMEOUT,
    }
}

/// Starts a node and serves it until a shutdown signal.
pub async fn run_node(options: Options) -> anyhow::Result<()> {
    let bind = options.http_bind_addr();
    // Bind first: a port in use is the most common start-up failure and should be reported
    // before any data is touched.
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding the HTTP port {bind}"))?;
    let node = Node::start(node_config(&options))
        .await
        .context("starting the node")?;
    tracing::info!(
        %bind,
        db = ?options.db_dir(),
        "serving gRPC and HTTP on one port"
    );
    let http = stele_api::http::router(node.clone());
    let grpc = stele_api::grpc::routes(node.clone());
    stele_api::serve::serve(listener, http, grpc, shutdown_signal())
        .await
        .context("serving")?;
    tracing::info!("shutting down");
    node.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the node");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
