//! The `stele certs` command line: es-gencert-cli's commands, flags, defaults and messages.
//!
//! es-gencert-cli is a Go program, whose flags are written with one dash (`-out ./ca`) or two;
//! [`go_style_args`] turns the one-dash spelling of a long flag into two before clap parses.
//! A Go boolean flag is also accepted as `-force=true` / `-force=false`.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use super::config_file;
use super::files::{first_free_node_dir, PairPaths};
use super::generate::{
    node_certificate, user_certificate, Authority, SubjectNames, NODE_COMMON_NAME,
};
use super::CertError;

/// `create-ca`'s default `-out`.
pub const DEFAULT_CA_DIR: &str = "./ca";
/// `create-ca`'s default `-name`.
pub const DEFAULT_CA_NAME: &str = "ca";
/// `create-node`'s and `create-user`'s default `-ca-certificate`.
pub const DEFAULT_CA_CERT: &str = "./ca/ca.crt";
/// `create-node`'s and `create-user`'s default `-ca-key`.
pub const DEFAULT_CA_KEY: &str = "./ca/ca.key";
/// `create-node`'s default `-name` (when `-out` is given).
pub const DEFAULT_NODE_NAME: &str = "node";
/// `create-certs`' default `-config-file`.
pub const DEFAULT_CONFIG_FILE: &str = "./certs.yml";

/// `stele certs`: certificates for TLS, compatible with es-gencert-cli.
#[derive(Debug, Parser)]
#[command(
    name = "stele certs",
    about = "Generates CA, node and user certificates for TLS, as es-gencert-cli does",
    after_help = "Flags may be written with one dash, as es-gencert-cli's (-out ./ca), or two.\n\
                  Example:\n  stele certs create-ca\n  \
                  stele certs create-node -out ./node1 -ip-addresses 127.0.0.1 -dns-names localhost"
)]
pub struct Certs {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(
    clippy::enum_variant_names,
    reason = "clap derives the command names, es-gencert-cli's create-ca ..., from them"
)]
enum Command {
    /// Generate a root or intermediate CA certificate and key.
    CreateCa(CreateCa),
    /// Generate a node (server) certificate and key signed by a CA.
    CreateNode(CreateNode),
    /// Generate a user (client) certificate and key signed by a CA.
    CreateUser(CreateUser),
    /// Generate CA and node certificates listed in a YAML file.
    CreateCerts(CreateCerts),
}

/// `create-ca`.
#[derive(Clone, Debug, Args)]
pub struct CreateCa {
    /// The validity period of the certificate in days (0: 5 years).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub days: i64,
    /// The output directory.
    #[arg(long, default_value = DEFAULT_CA_DIR)]
    pub out: PathBuf,
    /// The name of the CA certificate and key files (<name>.crt, <name>.key).
    #[arg(long, default_value = DEFAULT_CA_NAME)]
    pub name: String,
    /// A CA certificate to sign with: makes an intermediate CA (needs -ca-key).
    #[arg(long)]
    pub ca_certificate: Option<PathBuf>,
    /// The key of -ca-certificate.
    #[arg(long)]
    pub ca_key: Option<PathBuf>,
    /// Overwrite existing files.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_go_bool)]
    pub force: bool,
}

/// `create-node`.
#[derive(Clone, Debug, Args)]
pub struct CreateNode {
    /// The path to the CA certificate file.
    #[arg(long, default_value = DEFAULT_CA_CERT)]
    pub ca_certificate: PathBuf,
    /// The path to the CA key file.
    #[arg(long, default_value = DEFAULT_CA_KEY)]
    pub ca_key: PathBuf,
    /// Comma-separated list of IP addresses of the node.
    #[arg(long, default_value = "")]
    pub ip_addresses: String,
    /// Comma-separated list of DNS names of the node.
    #[arg(long, default_value = "")]
    pub dns_names: String,
    /// The certificate subject common name.
    #[arg(long, default_value = NODE_COMMON_NAME)]
    pub common_name: String,
    /// The validity period of the certificate in days (0: 1 year).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub days: i64,
    /// The output directory (empty: the first free ./node1 ... ./node100, files named after it).
    #[arg(long, default_value = "")]
    pub out: String,
    /// The name of the certificate and key files.
    #[arg(long, default_value = DEFAULT_NODE_NAME)]
    pub name: String,
    /// Overwrite existing files.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_go_bool)]
    pub force: bool,
}

/// `create-user`.
#[derive(Clone, Debug, Args)]
pub struct CreateUser {
    /// The EventStoreDB user (the certificate's common name).
    #[arg(long, default_value = "")]
    pub username: String,
    /// The path to the CA certificate file.
    #[arg(long, default_value = DEFAULT_CA_CERT)]
    pub ca_certificate: PathBuf,
    /// The path to the CA key file.
    #[arg(long, default_value = DEFAULT_CA_KEY)]
    pub ca_key: PathBuf,
    /// The validity period of the certificate in days (0: 1 year).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub days: i64,
    /// The output directory (empty: ./user-<username>).
    #[arg(long, default_value = "")]
    pub out: String,
    /// The name of the certificate and key files (empty: user-<username>).
    #[arg(long, default_value = "")]
    pub name: String,
    /// Overwrite existing files.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_go_bool)]
    pub force: bool,
}

/// `create-certs`.
#[derive(Clone, Debug, Args)]
pub struct CreateCerts {
    /// The YAML file listing the certificates (certificates: ca-certs, node-certs, user-certs).
    #[arg(long, default_value = DEFAULT_CONFIG_FILE)]
    pub config_file: PathBuf,
    /// Overwrite existing files.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_go_bool)]
    pub force: bool,
}

/// Parses `args` (after `certs`) and runs the command; what to print on success.
pub fn run(args: &[String]) -> Result<Vec<String>, RunError> {
    let argv = std::iter::once("stele certs".to_owned()).chain(go_style_args(args));
    let certs = Certs::try_parse_from(argv).map_err(RunError::Clap)?;
    let outcome = match certs.command {
        Command::CreateCa(command) => command.run().map(|message| vec![message]),
        Command::CreateNode(command) => command.run(Path::new(".")).map(|message| vec![message]),
        Command::CreateUser(command) => command.run().map(|message| vec![message]),
        Command::CreateCerts(command) => config_file::run(&command.config_file, command.force),
    };
    outcome.map_err(RunError::Cert)
}

/// Why `stele certs` failed.
#[derive(Debug)]
pub enum RunError {
    /// The command line (or `--help`, which clap reports the same way).
    Clap(clap::Error),
    /// The command itself.
    Cert(CertError),
}

impl CreateCa {
    /// Makes the CA; the line to print.
    pub fn run(&self) -> Result<String, CertError> {
        let days = check_days(self.days)?;
        let parent = match (&self.ca_certificate, &self.ca_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(Authority::load(cert, key)?),
            _ => {
                return Err(CertError::Usage(
                    "both -ca-certificate and -ca-key options are required".to_owned(),
                ))
            }
        };
        PairPaths::new(&self.out, &self.name).check_overwrite(self.force)?;
        let ca = match parent {
            Some(parent) => parent.generate_intermediate(days)?,
            None => Authority::generate_root(days)?,
        };
        ca.write(&self.out, &self.name, self.force)?;
        Ok(format!(
            "A CA certificate & key file have been generated in the '{}' directory.",
            self.out.display()
        ))
    }
}

impl CreateNode {
    /// Makes the node certificate; `base` is where `./nodeN` directories are counted (the
    /// working directory for the command line). The line to print.
    pub fn run(&self, base: &Path) -> Result<String, CertError> {
        let days = check_days(self.days)?;
        let names = SubjectNames::parse(&self.ip_addresses, &self.dns_names)?;
        // es-gencert-cli: without -out, both the directory and the files are named nodeN.
        let (dir, name) = if self.out.is_empty() {
            let free = first_free_node_dir(base)?;
            (base.join(&free), free)
        } else {
            (PathBuf::from(&self.out), self.name.clone())
        };
        PairPaths::new(&dir, &name).check_overwrite(self.force)?;
        let ca = Authority::load(&self.ca_certificate, &self.ca_key)?;
        let node = node_certificate(&ca, &names, &self.common_name, days)?;
        node.write(&dir, &name, self.force)?;
        Ok(format!(
            "A node certificate & key file have been generated in the '{}' directory.",
            display_dir(&dir, base)
        ))
    }
}

impl CreateUser {
    /// Makes the user certificate; the line to print.
    pub fn run(&self) -> Result<String, CertError> {
        if self.username.is_empty() {
            return Err(CertError::Usage("username is a required field".to_owned()));
        }
        let days = check_days(self.days)?;
        let (dir, name) = self.target();
        PairPaths::new(&dir, &name).check_overwrite(self.force)?;
        let ca = Authority::load(&self.ca_certificate, &self.ca_key)?;
        let user = user_certificate(&ca, &self.username, days)?;
        user.write(&dir, &name, self.force)?;
        Ok(format!(
            "A user certificate & key file have been generated in the '{}' directory.",
            dir.display()
        ))
    }
}

impl CreateUser {
    /// The directory and file name: `-out` and `-name`, each `user-<username>` when empty.
    pub fn target(&self) -> (PathBuf, String) {
        let default_name = format!("user-{}", self.username);
        let pick = |given: &str| {
            if given.is_empty() {
                default_name.clone()
            } else {
                given.to_owned()
            }
        };
        (PathBuf::from(pick(&self.out)), pick(&self.name))
    }
}

/// Rewrites one-dash long flags, `-flag` and `-flag=value`, to `--flag...` (Go reads both
/// alike; unknown ones then get clap's "unexpected argument '--flag'"). Left as they are:
/// two-dash flags, `-h`, values (none of ours starts with a dash and a letter; `-1` stays).
pub fn go_style_args(args: &[String]) -> Vec<String> {
    args.iter()
        .map(|arg| {
            let one_dash_word = arg.len() > 2
                && arg.starts_with('-')
                && arg.as_bytes().get(1).is_some_and(u8::is_ascii_alphabetic);
            if one_dash_word {
                format!("-{arg}")
            } else {
                arg.clone()
            }
        })
        .collect()
}

/// Go's `strconv.ParseBool`, which its boolean flags use.
fn parse_go_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("invalid boolean value {text:?}")),
    }
}

/// `-days` as a count (es-gencert-cli refuses negative values).
pub fn check_days(days: i64) -> Result<u32, CertError> {
    u32::try_from(days).map_err(|_| {
        CertError::Usage(if days < 0 {
            "days must be positive".to_owned()
        } else {
            format!("days must be at most {}", u32::MAX)
        })
    })
}

/// `dir` as the user would write it: relative to `base` when it is under it.
fn display_dir(dir: &Path, base: &Path) -> String {
    dir.strip_prefix(base).unwrap_or(dir).display().to_string()
}
