//! Node configuration in EventStoreDB's language (docs/design.md decision 11).
//!
//! Every option has EventStoreDB's name in three sources:
//! - the command line, kebab-case: `--cluster-size 3`, `--cluster-size=3`, a bare `--insecure`;
//! - the environment: `EVENTSTORE_CLUSTER_SIZE`, `KURRENTDB_CLUSTER_SIZE`, `STELE_CLUSTER_SIZE`
//!   (in increasing precedence when several are set);
//! - a YAML file given by `--config`, PascalCase keys: `ClusterSize: 3`.
//!
//! Names match case-insensitively with dashes and underscores ignored, as in EventStoreDB.
//! Precedence is command line > environment > config file > default. An unknown option or a
//! bad value is an error that names it; an option recognised but not acted on yet is named in
//! a warning returned to the caller. The options themselves are listed once, in
//! [`table`](self::table), which generates [`Options`] and [`OPTIONS`].
//!
//! This module reads text and builds a value; it does not log, and it reads no file but the
//! one `Config` names. There is no default config file (EventStoreDB reads
//! `/etc/eventstore/eventstore.conf` when present; Stele reads only what it is told to).

mod error;
mod resolve;
mod source;
mod spec;
mod table;
mod value;

#[cfg(test)]
mod tests;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use error::{ConfigError, Origin};
pub use spec::{OptionSpec, Status};
pub use table::{Options, OPTIONS};
pub use value::{HostPort, LogLevel, RunProjections};

use resolve::Resolver;
use source::Setting;

/// Builds the node's options from the command-line arguments (without the program name and
/// subcommand) and the environment. Returns the options and the warnings to log at startup.
pub fn parse(
    args: &[String],
    env: &[(String, String)],
) -> Result<(Options, Vec<String>), ConfigError> {
    parse_with_files(args, env, |path| std::fs::read_to_string(path))
}

/// [`parse`] with the config file read by `read_file` instead of from the file system: the
/// entry point of the configuration fuzz target (`fuzz/fuzz_targets/config.rs`), which feeds
/// YAML text without writing files. Not part of the API.
#[doc(hidden)]
pub fn parse_with_files(
    args: &[String],
    env: &[(String, String)],
    read_file: impl FnOnce(&Path) -> std::io::Result<String>,
) -> Result<(Options, Vec<String>), ConfigError> {
    let mut settings = source::command_line(args)?;
    settings.extend(source::environment(env));
    if let Some(path) = config_path(&settings)? {
        let text = read_file(&path).map_err(|e| ConfigError::ConfigFile {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let from_file = source::config_file(&path, &text)?;
        if let Some(setting) = from_file
            .iter()
            .find(|s| s.option.is_some_and(|o| o.name == "Config"))
        {
            return Err(ConfigError::NotAllowedHere {
                option: "Config",
                origin: setting.origin.clone(),
            });
        }
        settings.extend(from_file);
    }

    let mut resolver = Resolver::new(settings)?;
    let options = Options::build(&mut resolver)?;

    let mut warnings = Vec::new();
    for setting in &resolver.unknown {
        let error = unknown_option(setting);
        if !options.allow_unknown_options {
            return Err(error);
        }
        warnings.push(format!(
            "{error}: ignored because AllowUnknownOptions is set"
        ));
    }
    refuse_conflicts(&options, &resolver)?;
    validate(&options)?;
    for (name, origin) in &resolver.not_acted {
        warnings.push(format!(
            "option {name} is recognised but not acted on yet (set by {origin})"
        ));
    }
    Ok((options, warnings))
}

/// The config file named on the command line or in the environment. The file cannot name
/// another one.
fn config_path(settings: &[Setting]) -> Result<Option<PathBuf>, ConfigError> {
    let mut winner: Option<&Setting> = None;
    for setting in settings {
        if setting.option.is_some_and(|o| o.name == "Config")
            && winner.is_none_or(|w| setting.layer >= w.layer)
        {
            winner = Some(setting);
        }
    }
    Ok(winner
        .and_then(|setting| setting.value.as_deref())
        .filter(|path| !path.trim().is_empty())
        .map(PathBuf::from))
}

fn unknown_option(setting: &Setting) -> ConfigError {
    ConfigError::UnknownOption {
        origin: setting.origin.clone(),
        suggestion: spec::closest(setting.written_key()).map(|option| setting.spell(option)),
    }
}

/// Options that would be silently ignored because another one is in force: the node says so
/// and does not start, so what runs is what the operator believes runs (issue 11, item 7).
fn refuse_conflicts(options: &Options, resolver: &Resolver) -> Result<(), ConfigError> {
    let conflict = |option: &'static str, other: &'static str, message: &'static str| {
        let origin = |name| {
            Box::new(
                resolver
                    .setting(name)
                    .map_or(Origin::Default, |s| s.origin.clone()),
            )
        };
        Err(ConfigError::Conflict {
            option,
            origin: origin(option),
            other,
            other_origin: origin(other),
            message,
        })
    };
    if options.mem_db && resolver.setting("Db").is_some() {
        return conflict(
            "MemDb",
            "Db",
            "MemDb keeps nothing on disk, so the database directory would not be used; \
             remove one of them",
        );
    }
    if options.insecure {
        let certificate_option = OPTIONS
            .iter()
            .filter(|o| o.name.starts_with("Certificate") || o.name.starts_with("TrustedRoot"))
            .find(|o| resolver.setting(o.name).is_some())
            .map(|o| o.name);
        if let Some(certificate_option) = certificate_option {
            return conflict(
                "Insecure",
                certificate_option,
                "Insecure serves plaintext without certificates, so the certificate \
                 settings would be ignored; remove one of them",
            );
        }
    }
    if options.insecure && options.dev {
        return conflict(
            "Insecure",
            "Dev",
            "Dev serves TLS with a generated certificate and Insecure serves plaintext; \
             remove one of them",
        );
    }
    if options.dev {
        if let Some(name) = ["CertificateFile", "CertificatePrivateKeyFile"]
            .into_iter()
            .find(|name| resolver.setting(name).is_some())
        {
            return conflict(
                "Dev",
                name,
                "Dev generates its own certificate, so the certificate files would be \
                 ignored; remove one of them",
            );
        }
    }
    if !options.insecure && !options.dev {
        if options.certificate_password.is_some() {
            return Err(ConfigError::Invalid {
                option: "CertificatePassword",
                message: "PKCS #12 certificate files are not read; convert to PEM with \
                          `openssl pkcs12 -in node.p12 -out node.crt -clcerts -nokeys` and \
                          `openssl pkcs12 -in node.p12 -out node.key -nocerts -nodes`, then set \
                          CertificateFile and CertificatePrivateKeyFile"
                    .to_owned(),
            });
        }
        if options.certificate_private_key_password.is_some() {
            return Err(ConfigError::Invalid {
                option: "CertificatePrivateKeyPassword",
                message: "encrypted private keys are not read; decrypt with \
                          `openssl pkey -in node.key -out node.key.pem`"
                    .to_owned(),
            });
        }
        for (name, set) in [
            ("CertificateFile", options.certificate_file.is_some()),
            (
                "CertificatePrivateKeyFile",
                options.certificate_private_key_file.is_some(),
            ),
        ] {
            if !set {
                return Err(ConfigError::TlsOptionMissing { option: name });
            }
        }
    }
    Ok(())
}

/// The smallest chunk: room for any record that is not an event (a delete names a stream of
/// up to `MAX_STREAM_NAME_BYTES`; a membership change lists every node).
pub const MIN_CHUNK_SIZE_BYTES: u64 = 64 * 1024;

/// Checks that involve what a value means rather than its type.
fn validate(options: &Options) -> Result<(), ConfigError> {
    let invalid = |option, message: &str| {
        Err(ConfigError::Invalid {
            option,
            message: message.to_owned(),
        })
    };
    if options.cluster_size == 0 {
        return invalid("ClusterSize", "a cluster has at least one node");
    }
    if options.max_append_size == 0 {
        return invalid("MaxAppendSize", "must be greater than 0");
    }
    // Every record must fit in one chunk. An event's record costs at most what the append
    // counts for it (stele_core::validation), and an append is at most MaxAppendSize; other
    // records (deletes, membership changes) are under MIN_CHUNK_SIZE_BYTES. A chunk too small
    // for a legal append stopped consensus on the first such append (issue 11, item 7).
    let smallest = u64::from(options.max_append_size).max(MIN_CHUNK_SIZE_BYTES);
    if options.chunk_size < smallest {
        return Err(ConfigError::Invalid {
            option: "ChunkSize",
            message: format!(
                "{} is smaller than the largest record the node may have to write: it must be at \
                 least MaxAppendSize ({}) and at least {MIN_CHUNK_SIZE_BYTES}",
                options.chunk_size, options.max_append_size
            ),
        });
    }
    Ok(())
}

/// The `--help` text: every option with its other spellings, default and status.
pub fn help_text() -> String {
    let mut text = String::from(
        "Usage: stele [run] [OPTIONS]\n\
         \n\
         Runs a Stele node. Options use EventStoreDB's names: --kebab-case on the command line,\n\
         PascalCase in the YAML file given by --config, and EVENTSTORE_SNAKE_CASE or\n\
         STELE_SNAKE_CASE in the environment. Precedence: command line > environment >\n\
         config file > default.\n\
         \n\
         Other commands:\n  \
           stele bench --help         append load against a node, with latency figures\n  \
           stele dev-cluster --help   a local cluster of voters and read-only replicas\n  \
           stele --help               this text\n  \
           stele --version            the version\n\
         \n\
         Options:\n",
    );
    for option in OPTIONS {
        let value = if option.is_flag {
            String::from(" [true|false]")
        } else {
            format!(" <{}>", option.placeholder)
        };
        let _ = writeln!(text, "  {}{value}", option.flag());
        let _ = write!(text, "      {}", option.help.trim());
        if !option.default.is_empty() {
            let _ = write!(text, " [default: {}]", option.default);
        }
        if option.status == Status::NotYet {
            text.push_str(" [not acted on yet]");
        }
        text.push('\n');
        if !option.aliases.is_empty() {
            let aliases: Vec<String> = option
                .aliases
                .iter()
                .map(|alias| format!("--{}", spec::kebab_case(alias)))
                .collect();
            let _ = writeln!(text, "      Also: {}", aliases.join(", "));
        }
    }
    text
}

impl Options {
    /// Where the client port (HTTP and gRPC) listens: `NodeIp:HttpPort`.
    pub fn http_bind_addr(&self) -> SocketAddr {
        SocketAddr::new(self.node_ip, self.http_port)
    }

    /// Where the internal port (replication between nodes) listens: `IntIp:IntTcpPort`.
    pub fn int_tcp_bind_addr(&self) -> SocketAddr {
        SocketAddr::new(self.int_ip, self.int_tcp_port)
    }

    /// What clients are told to dial (gossip's `httpEndPoint`): `AdvertiseHostToClientAs`
    /// and `AdvertiseHttpPortToClientAs` where set, else `NodeIp` and `HttpPort`.
    pub fn http_advertised(&self) -> (String, u16) {
        (
            self.advertise_host_to_client_as
                .clone()
                .unwrap_or_else(|| self.node_ip.to_string()),
            self.advertise_http_port_to_client_as
                .unwrap_or(self.http_port),
        )
    }

    /// What other nodes gossip with: `ExtHostAdvertiseAs` and `HttpPortAdvertiseAs` where
    /// set, else `NodeIp` and `HttpPort`.
    pub fn gossip_advertised(&self) -> (String, u16) {
        (
            self.ext_host_advertise_as
                .clone()
                .unwrap_or_else(|| self.node_ip.to_string()),
            self.http_port_advertise_as.unwrap_or(self.http_port),
        )
    }

    /// What other nodes dial for replication: `IntHostAdvertiseAs` and
    /// `IntTcpPortAdvertiseAs` where set, else `IntIp` and `IntTcpPort`.
    pub fn internal_advertised(&self) -> (String, u16) {
        (
            self.int_host_advertise_as
                .clone()
                .unwrap_or_else(|| self.int_ip.to_string()),
            self.int_tcp_port_advertise_as.unwrap_or(self.int_tcp_port),
        )
    }

    /// The database directory, or `None` with `MemDb`.
    pub fn db_dir(&self) -> Option<&Path> {
        (!self.mem_db).then_some(self.db.as_path())
    }
}
