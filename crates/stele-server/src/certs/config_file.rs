//! `create-certs -config-file <yaml>`: several certificates at once, from es-gencert-cli's
//! file format:
//!
//! ```yaml
//! certificates:
//!   ca-certs:
//!     - out: ./root_ca
//!     - out: ./intermediate_ca
//!       ca-certificate: ./root_ca/ca.crt
//!       ca-key: ./root_ca/ca.key
//!   node-certs:
//!     - out: ./node1
//!       ca-certificate: ./intermediate_ca/ca.crt
//!       ca-key: ./intermediate_ca/ca.key
//!       ip-addresses: 127.0.0.1,172.20.240.1
//!       dns-names: localhost
//! ```
//!
//! Each entry takes the flags of its command, named the same, with the same defaults; CAs are
//! made first, in order, then nodes, then users (`user-certs`, a Stele addition). Before
//! anything is written, every output that names its directory is checked: one existing file
//! without `-force` stops the whole command.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::cli::{
    CreateCa, CreateNode, CreateUser, DEFAULT_CA_CERT, DEFAULT_CA_DIR, DEFAULT_CA_KEY,
    DEFAULT_CA_NAME, DEFAULT_NODE_NAME,
};
use super::files::{self, PairPaths};
use super::generate::NODE_COMMON_NAME;
use super::CertError;

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    certificates: Certificates,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Certificates {
    #[serde(default)]
    ca_certs: Vec<Entry>,
    #[serde(default)]
    node_certs: Vec<Entry>,
    #[serde(default)]
    user_certs: Vec<Entry>,
}

/// The union of the commands' flags; each command reads the ones it has.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Entry {
    days: Option<i64>,
    out: Option<String>,
    name: Option<String>,
    ca_certificate: Option<String>,
    ca_key: Option<String>,
    ip_addresses: Option<String>,
    dns_names: Option<String>,
    common_name: Option<String>,
    username: Option<String>,
}

/// Reads `path` and makes every certificate it lists; the lines to print.
pub fn run(path: &Path, force: bool) -> Result<Vec<String>, CertError> {
    let text = files::read_text(path)?;
    let config: ConfigFile = serde_yaml::from_str(&text).map_err(|error| {
        CertError::invalid(
            &path.display().to_string(),
            format!("not a valid file ({error})"),
        )
    })?;
    let certificates = config.certificates;
    let cas: Vec<CreateCa> = certificates.ca_certs.iter().map(|e| ca(e, force)).collect();
    let nodes: Vec<CreateNode> = certificates
        .node_certs
        .iter()
        .map(|e| node(e, force))
        .collect();
    let users: Vec<CreateUser> = certificates
        .user_certs
        .iter()
        .map(|e| user(e, force))
        .collect();

    let planned = cas
        .iter()
        .map(|c| PairPaths::new(&c.out, &c.name))
        .chain(
            nodes
                .iter()
                .filter(|n| !n.out.is_empty())
                .map(|n| PairPaths::new(Path::new(&n.out), &n.name)),
        )
        .chain(users.iter().map(|u| {
            let (dir, name) = u.target();
            PairPaths::new(&dir, &name)
        }));
    for paths in planned {
        paths.check_overwrite(force)?;
    }

    let mut messages = Vec::new();
    for command in &cas {
        messages.push(command.run()?);
    }
    for command in &nodes {
        messages.push(command.run(Path::new("."))?);
    }
    for command in &users {
        messages.push(command.run()?);
    }
    Ok(messages)
}

fn ca(entry: &Entry, force: bool) -> CreateCa {
    CreateCa {
        days: entry.days.unwrap_or(0),
        out: PathBuf::from(entry.out.as_deref().unwrap_or(DEFAULT_CA_DIR)),
        name: entry
            .name
            .clone()
            .unwrap_or_else(|| DEFAULT_CA_NAME.to_owned()),
        ca_certificate: entry.ca_certificate.as_ref().map(PathBuf::from),
        ca_key: entry.ca_key.as_ref().map(PathBuf::from),
        force,
    }
}

fn node(entry: &Entry, force: bool) -> CreateNode {
    CreateNode {
        ca_certificate: PathBuf::from(entry.ca_certificate.as_deref().unwrap_or(DEFAULT_CA_CERT)),
        ca_key: PathBuf::from(entry.ca_key.as_deref().unwrap_or(DEFAULT_CA_KEY)),
        ip_addresses: entry.ip_addresses.clone().unwrap_or_default(),
        dns_names: entry.dns_names.clone().unwrap_or_default(),
        common_name: entry
            .common_name
            .clone()
            .unwrap_or_else(|| NODE_COMMON_NAME.to_owned()),
        days: entry.days.unwrap_or(0),
        out: entry.out.clone().unwrap_or_default(),
        name: entry
            .name
            .clone()
            .unwrap_or_else(|| DEFAULT_NODE_NAME.to_owned()),
        force,
    }
}

fn user(entry: &Entry, force: bool) -> CreateUser {
    CreateUser {
        username: entry.username.clone().unwrap_or_default(),
        ca_certificate: PathBuf::from(entry.ca_certificate.as_deref().unwrap_or(DEFAULT_CA_CERT)),
        ca_key: PathBuf::from(entry.ca_key.as_deref().unwrap_or(DEFAULT_CA_KEY)),
        days: entry.days.unwrap_or(0),
        out: entry.out.clone().unwrap_or_default(),
        name: entry.name.clone().unwrap_or_default(),
        force,
    }
}
