//! The cluster's layout: each node's address and ports, its command line, the connection
//! string, and where the data lives.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::Options;

/// One node to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Member {
    /// `node-1`, `node-2`, ...: voters first, then replicas.
    pub(super) name: String,
    pub(super) ip: IpAddr,
    pub(super) http_port: u16,
    pub(super) int_port: u16,
    pub(super) read_only_replica: bool,
    /// The cluster serves TLS (`--secure`).
    pub(super) secure: bool,
}

impl Member {
    pub(super) fn http_endpoint(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.http_port)
    }

    pub(super) fn url(&self, path: &str) -> String {
        let scheme = if self.secure { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.http_endpoint())
    }
}

/// Addresses and ports of every node: voters then replicas, numbered from 1. With
/// `distinct_ips`, node k (from 0) is on 127.0.0.(k+1) with the base ports; otherwise every
/// node is on 127.0.0.1 with the base ports plus k.
pub(super) fn plan(options: &Options, distinct_ips: bool) -> anyhow::Result<Vec<Member>> {
    let count = u16::from(options.nodes) + u16::from(options.read_only_replicas);
    let mut members = Vec::with_capacity(usize::from(count));
    for k in 0..count {
        let (ip, http_port, int_port) = if distinct_ips {
            let last = u8::try_from(k + 1).context("too many nodes for 127.0.0.x")?;
            (
                Ipv4Addr::new(127, 0, 0, last),
                options.base_http_port,
                options.base_int_port,
            )
        } else {
            let http = options.base_http_port.checked_add(k);
            let int = options.base_int_port.checked_add(k);
            let (Some(http), Some(int)) = (http, int) else {
                bail!("the base ports plus {count} nodes go past port 65535");
            };
            (Ipv4Addr::LOCALHOST, http, int)
        };
        members.push(Member {
            name: format!("node-{}", k + 1),
            ip: IpAddr::V4(ip),
            http_port,
            int_port,
            read_only_replica: k >= u16::from(options.nodes),
            secure: options.secure,
        });
    }
    let mut ports: Vec<SocketAddr> = members
        .iter()
        .flat_map(|m| [m.http_endpoint(), SocketAddr::new(m.ip, m.int_port)])
        .collect();
    ports.sort();
    if let Some(pair) = ports.windows(2).find(|pair| pair[0] == pair[1]) {
        bail!(
            "two nodes would both use {}; choose --base-http-port and --base-int-port further apart",
            pair[0]
        );
    }
    Ok(members)
}

/// The command line of one node (after the binary).
pub(super) fn node_args(
    member: &Member,
    members: &[Member],
    cluster_size: u8,
    data_root: Option<&Path>,
    security: Vec<OsString>,
) -> Vec<OsString> {
    let seeds: Vec<String> = members
        .iter()
        .filter(|m| !m.read_only_replica)
        .map(|m| m.http_endpoint().to_string())
        .collect();
    let ip = member.ip.to_string();
    let mut args: Vec<OsString> = if security.is_empty() {
        vec!["--insecure".into()]
    } else {
        security
    };
    args.extend(
        [
            "--node-ip",
            &ip,
            "--int-ip",
            &ip,
            "--http-port",
            &member.http_port.to_string(),
            "--int-tcp-port",
            &member.int_port.to_string(),
            "--cluster-size",
            &cluster_size.to_string(),
            "--discover-via-dns",
            "false",
            "--gossip-seed",
            &seeds.join(","),
        ]
        .iter()
        .map(OsString::from),
    );
    match data_root {
        Some(root) => {
            args.push("--db".into());
            args.push(root.join(&member.name).into_os_string());
        }
        None => args.push("--mem-db".into()),
    }
    if member.read_only_replica {
        args.push("--read-only-replica".into());
        args.push("true".into());
    }
    args
}

/// `esdb://ip1:port1,ip2:port2,...?tls=false` for the voters, which is what clients seed
/// their discovery with; for a secure cluster
/// `esdb://admin:changeit@...?tls=true&tlsCAFile=<ca.crt>`.
pub(super) fn connection_string(members: &[Member], ca_file: Option<&Path>) -> String {
    let hosts: Vec<String> = members
        .iter()
        .filter(|m| !m.read_only_replica)
        .map(|m| m.http_endpoint().to_string())
        .collect();
    match ca_file {
        Some(ca) => format!(
            "esdb://admin:changeit@{}?tls=true&tlsCAFile={}",
            hosts.join(","),
            ca.display()
        ),
        None => format!("esdb://{}?tls=false", hosts.join(",")),
    }
}

/// Whether loopback addresses other than 127.0.0.1 can be bound (Linux: all of 127/8 is
/// local; macOS: only 127.0.0.1 unless aliases were added).
pub(super) fn distinct_ips_available() -> bool {
    TcpListener::bind((Ipv4Addr::new(127, 0, 0, 2), 0)).is_ok()
}

/// Fails naming the first address a node would use that something else already holds, so
/// that a second cluster on the same ports is refused before any node starts.
pub(super) fn check_ports_free(members: &[Member]) -> anyhow::Result<()> {
    for member in members {
        for address in [
            member.http_endpoint(),
            SocketAddr::new(member.ip, member.int_port),
        ] {
            TcpListener::bind(address).with_context(|| {
                format!(
                    "{} cannot use {address} (is another cluster running? choose other ports \
                     with --base-http-port and --base-int-port)",
                    member.name
                )
            })?;
        }
    }
    Ok(())
}

/// Where the nodes' data lives, and the temporary directory to remove on exit if any.
pub(super) enum DataRoot {
    Memory,
    Given(PathBuf),
    Temporary(tempfile::TempDir),
}

impl DataRoot {
    pub(super) fn create(options: &Options) -> anyhow::Result<DataRoot> {
        if options.mem_db {
            return Ok(DataRoot::Memory);
        }
        match &options.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                Ok(DataRoot::Given(dir.clone()))
            }
            None => Ok(DataRoot::Temporary(
                tempfile::Builder::new()
                    .prefix("stele-dev-cluster-")
                    .tempdir()
                    .context("creating a temporary data directory")?,
            )),
        }
    }

    pub(super) fn path(&self) -> Option<&Path> {
        match self {
            DataRoot::Memory => None,
            DataRoot::Given(path) => Some(path),
            DataRoot::Temporary(dir) => Some(dir.path()),
        }
    }

    pub(super) fn describe(&self) -> String {
        match self {
            DataRoot::Memory => "in memory (--mem-db)".into(),
            DataRoot::Given(path) => format!("in {} (kept)", path.display()),
            DataRoot::Temporary(dir) => {
                format!("in {} (removed on exit)", dir.path().display())
            }
        }
    }
}
