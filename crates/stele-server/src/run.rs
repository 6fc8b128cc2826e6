//! Running a node: configuration options become a [`NodeConfig`], the node starts, and one
//! listener serves gRPC and HTTP until SIGINT or SIGTERM.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use stele_cluster::{GossipConfig, Node, NodeConfig};

use crate::config::Options;

/// How long an append waits for its outcome (EventStoreDB's `WriteTimeoutMs` is 2 s; a
/// single node under fsync load needs more headroom than that on a slow disk).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Turns options into the node's configuration, or says which option cannot be honoured.
pub fn node_config(options: &Options) -> anyhow::Result<NodeConfig> {
    let majority = (options.cluster_size / 2 + 1) as i32;
    for (name, value) in [
        ("CommitCount", options.commit_count),
        ("PrepareCount", options.prepare_count),
    ] {
        if value != -1 && value != majority {
            anyhow::bail!(
                "{name} {value} is not supported: Stele acknowledges a write once a majority of the voters ({majority} of ClusterSize {}) has it on disk; use -1",
                options.cluster_size
            );
        }
    }
    if options.discover_via_dns && options.gossip_seed.is_empty() && options.cluster_size > 1 {
        tracing::info!(dns = %options.cluster_dns, port = options.cluster_gossip_port, "discovering the cluster through DNS");
    }
    let gossip = GossipConfig {
        seeds: options
            .gossip_seed
            .iter()
            .map(|seed| (seed.host.clone(), seed.port))
            .collect(),
        // EventStoreDB uses DNS only when no seeds are given.
        dns: (options.discover_via_dns && options.gossip_seed.is_empty())
            .then(|| (options.cluster_dns.clone(), options.cluster_gossip_port)),
        interval: Duration::from_millis(options.gossip_interval_ms.max(10)),
        timeout: Duration::from_millis(options.gossip_timeout_ms.max(10)),
        allowed_difference: Duration::from_millis(options.gossip_allowed_difference_ms),
        dead_member_removal: Duration::from_secs(
            options.dead_member_removal_period_sec.max(0) as u64
        ),
    };
    Ok(NodeConfig {
        db_dir: options.db_dir().map(|d| d.to_path_buf()),
        index_dir: options.index.clone(),
        chunk_size_bytes: options.chunk_size,
        max_append_size_bytes: options.max_append_size,
        // EventStoreDB's default is int.MaxValue: no limit beyond the append's own.
        max_append_event_size_bytes: u32::try_from(options.max_append_event_size).unwrap_or(0),
        cluster_size: options.cluster_size,
        http_advertised: options.http_advertised(),
        gossip_advertised: options.gossip_advertised(),
        internal_bind: (options.int_ip, options.int_tcp_port),
        internal_advertised: options.internal_advertised(),
        node_priority: options.node_priority,
        read_only_replica: options.read_only_replica,
        leader_election_timeout_ms: options.leader_election_timeout_ms,
        gossip,
        write_timeout: WRITE_TIMEOUT,
    })
}

/// Starts a node and serves it until a shutdown signal.
pub async fn run_node(options: Options) -> anyhow::Result<()> {
    let bind = options.http_bind_addr();
    // Bind first: a port in use is the most common start-up failure and should be reported
    // before any data is touched.
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding the HTTP port {bind}"))?;
    let node = Node::start(node_config(&options)?)
        .await
        .context("starting the node")?;
    tracing::info!(
        %bind,
        db = ?options.db_dir(),
        "serving gRPC and HTTP on one port"
    );
    // Persistent subscriptions run on whichever node leads; gRPC and HTTP share them.
    let persistent = stele_api::persistent::Subsystem::start(node.clone());
    let http = stele_api::http::router(node.clone(), persistent.clone());
    let grpc = stele_api::grpc::routes(node.clone(), persistent);
    let stop = node.clone();
    let failed = Arc::new(std::sync::Mutex::new(None));
    let log_failure = crate::log_watch::wait_for_failure(
        node.clone(),
        options.db_dir().map(Path::to_path_buf),
        options.chunk_size,
    );
    let stop = {
        let failed = failed.clone();
        async move {
            tokio::select! {
                _ = shutdown_signal() => {}
                _ = stop.stop_requested() => {}
                message = log_failure => {
                    tracing::error!("{message}");
                    *failed.lock().expect("failure lock") = Some(message);
                }
            }
        }
    };
    stele_api::serve::serve(listener, http, grpc, stop)
        .await
        .context("serving")?;
    tracing::info!("shutting down");
    node.shutdown().await;
    if let Some(message) = failed.lock().expect("failure lock").take() {
        anyhow::bail!(message);
    }
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
