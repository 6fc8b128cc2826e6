//! `stele dev-cluster --secure`: a CA and one node certificate per node, made at start with
//! the library behind `stele certs`, so that the cluster runs as a production one does
//! (TLS on every port, mutual TLS between nodes, users and ACLs). The files are kept in
//! `<data>/certs` (`ca/ca.crt`, `node-k/node.crt`, `node-k/node.key`), in a temporary
//! directory with `--mem-db` or no `--dir`. The connection string names the CA file
//! (`tlsCAFile`) and the default `admin` user.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::layout::Member;
use crate::certs::{node_certificate, Authority, SubjectNames};

/// The certificates of a secure dev cluster.
pub(super) struct ClusterCerts {
    /// `<root>/ca`: the node's `TrustedRootCertificatesPath`.
    ca_dir: PathBuf,
    root: PathBuf,
}

impl ClusterCerts {
    /// Makes a CA and a certificate for every member (IP SAN its address, DNS SAN
    /// `localhost`) under `root`; replaces certificates an earlier run left there.
    pub(super) fn create(root: &Path, members: &[Member]) -> anyhow::Result<ClusterCerts> {
        let ca = Authority::generate_root(0).context("making the dev cluster's CA")?;
        let ca_dir = root.join("ca");
        ca.write(&ca_dir, "ca", true)
            .context("writing the dev cluster's CA")?;
        for member in members {
            let names = SubjectNames::parse(&member.ip.to_string(), "localhost")
                .context("the node's names")?;
            node_certificate(&ca, &names, "eventstoredb-node", 0)
                .and_then(|certificate| certificate.write(&root.join(&member.name), "node", true))
                .with_context(|| format!("making {}'s certificate", member.name))?;
        }
        Ok(ClusterCerts {
            ca_dir,
            root: root.to_owned(),
        })
    }

    /// `ca/ca.crt`, what clients trust.
    pub(super) fn ca_file(&self) -> PathBuf {
        self.ca_dir.join("ca.crt")
    }

    /// The options that make `member` serve with its certificate.
    pub(super) fn node_args(&self, member: &Member) -> Vec<OsString> {
        let dir = self.root.join(&member.name);
        vec![
            "--certificate-file".into(),
            dir.join("node.crt").into_os_string(),
            "--certificate-private-key-file".into(),
            dir.join("node.key").into_os_string(),
            "--trusted-root-certificates-path".into(),
            self.ca_dir.clone().into_os_string(),
        ]
    }

    /// An HTTP client that trusts the CA.
    pub(super) fn http_client(
        &self,
        timeout: std::time::Duration,
    ) -> anyhow::Result<reqwest::Client> {
        let pem = std::fs::read(self.ca_file()).context("reading the CA certificate")?;
        reqwest::Client::builder()
            .timeout(timeout)
            .add_root_certificate(reqwest::Certificate::from_pem(&pem)?)
            .build()
            .context("building the HTTP client")
    }
}
