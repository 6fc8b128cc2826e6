//! [`ConfigError`]: why the node refuses to start, naming the option, the value and where it
//! was set; and [`Origin`], where a setting came from.

use std::fmt;
use std::path::PathBuf;

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    /// `--name` as the user wrote it (without the value).
    CommandLine(String),
    /// The variable's name.
    Environment(String),
    /// The key as written in the file.
    ConfigFile {
        path: PathBuf,
        key: String,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("the default"),
            Origin::CommandLine(flag) => write!(f, "command-line option {flag}"),
            Origin::Environment(var) => write!(f, "environment variable {var}"),
            Origin::ConfigFile { path, key } => {
                write!(f, "key {key} in config file {}", path.display())
            }
        }
    }
}

/// A configuration the node cannot start with. Each message names what to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown option: {origin}{}", did_you_mean(suggestion))]
    UnknownOption {
        origin: Origin,
        /// The closest known option, spelled the way the unknown one was.
        suggestion: Option<String>,
    },
    #[error("bad value '{value}' for option {option} ({origin}): expected {expected}")]
    BadValue {
        option: &'static str,
        value: String,
        origin: Origin,
        expected: &'static str,
    },
    #[error("option {option} needs a value ({origin})")]
    MissingValue {
        option: &'static str,
        origin: Origin,
    },
    #[error("unexpected argument '{0}': options are written --name value or --name=value")]
    UnexpectedArgument(String),
    #[error("option {option} is set twice: by {first} and by {second}")]
    SetTwice {
        option: &'static str,
        first: Origin,
        second: Origin,
    },
    #[error("option {option} cannot be set by {origin}")]
    NotAllowedHere {
        option: &'static str,
        origin: Origin,
    },
    #[error("cannot read config file {}: {message}", path.display())]
    ConfigFile { path: PathBuf, message: String },
    /// A secure node (the default) needs a certificate.
    #[error(
        "option {option} is not set: a node serves TLS and checks users unless told otherwise; \
         set CertificateFile and CertificatePrivateKeyFile (certificates: `stele certs create-ca` \
         and `stele certs create-node`), or run with --dev for a generated localhost certificate, \
         or with --insecure for no TLS and no access control (development only)"
    )]
    TlsOptionMissing { option: &'static str },
    #[error("bad value for option {option}: {message}")]
    Invalid {
        option: &'static str,
        message: String,
    },
    /// Two options that cannot both be in force: the node would silently ignore one.
    #[error("options {option} ({origin}) and {other} ({other_origin}) conflict: {message}")]
    Conflict {
        option: &'static str,
        origin: Box<Origin>,
        other: &'static str,
        other_origin: Box<Origin>,
        message: &'static str,
    },
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(name) => format!(" (did you mean {name}?)"),
        None => String::new(),
    }
}
