//! Running a node: configuration options become a [`NodeConfig`], the node starts, and one
//! listener serves gRPC and HTTP until SIGINT or SIGTERM.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use stele_cluster::env::NodeEnv;
use stele_cluster::{GossipConfig, Node, NodeConfig};

use crate::config::Options;

/// How long an append waits for its outcome (EventStoreDB's `WriteTimeoutMs` is 2 s; a
/// single node under fsync load needs more headroom than that on a slow disk).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// File descriptors kept for everything but client connections (log chunks, the index,
/// the internal port's connections, gossip) when the connection limit is fitted to the
/// process's file limit.
const RESERVED_FILE_DESCRIPTORS: u64 = 256;

/// Raises the soft limit on open files (RLIMIT_NOFILE) to the hard limit, as servers do at
/// start: the soft default is often 1,024, which 1,100 idle client connections exhausted.
/// Returns the soft limit in force afterwards, or `None` if it cannot be read.
pub fn raise_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given, which lives on this stack.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Some(rlim_to_u64(raised.rlim_cur));
        }
        tracing::warn!(
            soft = limit.rlim_cur,
            hard = limit.rlim_max,
            error = %std::io::Error::last_os_error(),
            "cannot raise the open-files limit to its hard limit"
        );
    }
    Some(rlim_to_u64(limit.rlim_cur))
}

/// `rlim_t` is `u64` on Linux but not everywhere.
#[allow(clippy::unnecessary_cast)]
fn rlim_to_u64(value: libc::rlim_t) -> u64 {
    value as u64
}

/// The client connection limits from the options, the connection count lowered to what
/// `file_limit` leaves room for (said once at start when it is).
pub fn connection_limits(
    options: &Options,
    file_limit: Option<u64>,
) -> stele_api::connections::ConnectionLimits {
    let wanted = options.max_client_connections.max(1) as usize;
    let fits = file_limit.map_or(wanted, |limit| {
        limit.saturating_sub(RESERVED_FILE_DESCRIPTORS).max(1) as usize
    });
    if fits < wanted {
        tracing::warn!(
            max_client_connections = wanted,
            open_files_limit = ?file_limit,
            lowered_to = fits,
            "MaxClientConnections does not fit the open-files limit; lowering it"
        );
    }
    stele_api::connections::ConnectionLimits {
        max_connections: wanted.min(fits),
        header_read_timeout: Duration::from_millis(options.client_header_read_timeout_ms.max(1)),
        idle_timeout: Duration::from_millis(options.client_idle_timeout_ms.max(1)),
    }
}

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
    let file_limit = raise_file_limit();
    let limits = connection_limits(&options, file_limit);
    let bind = options.http_bind_addr();
    // Bind first: a port in use is the most common start-up failure and should be reported
    // before any data is touched.
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding the HTTP port {bind}"))?;
    let tls = crate::security::load_tls(&options)?;
    let env = match &tls {
        Some(tls) => NodeEnv::production_tls(tls.clone()),
        None => NodeEnv::production(),
    };
    let node = Node::start_with(node_config(&options)?, env)
        .await
        .context("starting the node")?;
    if options.insecure {
        tracing::warn!(
            "running INSECURE: no TLS, no authentication and no access control on any port; \
             anyone who can reach this node can read, write and administer it"
        );
    }
    tracing::info!(
        %bind,
        db = ?options.db_dir(),
        open_files_limit = ?file_limit,
        max_client_connections = limits.max_connections,
        "serving gRPC and HTTP on one port"
    );
    let access = crate::security::access_control(&options, &node);
    // Persistent subscriptions run on whichever node leads, each with its creator's
    // rights; gRPC and HTTP share them.
    let persistent = stele_services::persistent::Subsystem::start(node.clone(), access.clone());
    let authentication = crate::security::authentication(&options, &node);
    if !options.insecure {
        crate::security::spawn_default_users(&options, &node);
    }
    let users = stele_services::users::Users::new(node.clone());
    // Projections run on whichever node leads; gRPC and HTTP share them.
    let projections = stele_projections::Projections::start(
        node.clone(),
        access.clone(),
        projections_config(&options),
    );
    let metrics = stele_api::metrics::Metrics::default();
    let http = stele_api::http::router(
        node.clone(),
        persistent.clone(),
        users.clone(),
        projections.clone(),
        access.clone(),
        tls.clone(),
        metrics.clone(),
    );
    let grpc = metrics.instrument(stele_api::grpc::routes(
        node.clone(),
        persistent,
        users,
        projections,
        access,
    ));
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
    stele_api::serve::serve(listener, http, grpc, limits, tls, authentication, stop)
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

/// The projections subsystem's settings from the options. `--dev` starts the system
/// projections and runs at least them, as EventStoreDB's does.
pub fn projections_config(options: &crate::config::Options) -> stele_projections::Config {
    use crate::config::RunProjections as Run;
    let mut run = match options.run_projections {
        Run::None => stele_projections::RunProjections::None,
        Run::System => stele_projections::RunProjections::System,
        Run::All => stele_projections::RunProjections::All,
    };
    let mut start_standard = options.start_standard_projections;
    if options.dev {
        start_standard = true;
        if run == stele_projections::RunProjections::None {
            run = stele_projections::RunProjections::System;
        }
    }
    let millis = |ms: i32| std::time::Duration::from_millis(ms.max(1) as u64);
    stele_projections::Config {
        run,
        start_standard_projections: start_standard,
        threads: options.projection_threads.clamp(1, 64) as usize,
        js_limits: stele_projections::js::Limits {
            execution_timeout: millis(options.projection_execution_timeout),
            compilation_timeout: millis(options.projection_compilation_timeout),
            ..stele_projections::js::Limits::default()
        },
    }
}

#[cfg(test)]
#[allow(clippy::unnecessary_cast)]
mod tests {
    use super::*;

    fn soft_and_hard() -> (u64, u64) {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(
            // SAFETY: as in raise_file_limit.
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        (limit.rlim_cur as u64, limit.rlim_max as u64)
    }

    /// With the common soft default of 1,024 open files, 1,100 idle client connections
    /// exhausted them and new clients timed out: the node raises its soft limit to the
    /// hard limit at start.
    #[test]
    fn the_open_files_limit_is_raised_to_the_hard_limit() {
        let (_, hard) = soft_and_hard();
        let lowered = libc::rlimit {
            rlim_cur: hard.min(1024) as libc::rlim_t,
            rlim_max: hard as libc::rlim_t,
        };
        // SAFETY: setrlimit only reads the struct it is given.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lowered) }, 0);
        assert_eq!(raise_file_limit(), Some(hard));
        assert_eq!(soft_and_hard(), (hard, hard));
    }

    #[test]
    fn the_connection_limit_fits_the_open_files_limit() {
        let (options, _) =
            crate::config::parse(&["--insecure".to_owned()], &[]).expect("default options");
        let limits = connection_limits(&options, Some(1_000_000));
        assert_eq!(limits.max_connections, 4096);
        assert_eq!(limits.header_read_timeout, Duration::from_secs(30));
        assert_eq!(limits.idle_timeout, Duration::from_secs(130));
        let limits = connection_limits(&options, Some(1024));
        assert_eq!(
            limits.max_connections,
            1024 - RESERVED_FILE_DESCRIPTORS as usize
        );
    }
}
