//! Log setup: `tracing` output to standard output, at the level EventStoreDB's `LogLevel`
//! option names, unless `RUST_LOG` says otherwise.
//!
//! openraft logs a WARN line for every failed replication attempt; Stele logs a peer going
//! down and coming back itself (once each), so at the default, `Information` and `Warning`
//! levels openraft shows errors only ([`OPENRAFT_QUIET`]); `Debug` and `Verbose` show its
//! info lines, and `RUST_LOG` (e.g. `RUST_LOG=info,openraft=warn`) overrides everything.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogLevel;

/// Our crates, which log at the chosen level; dependencies log one step quieter, so that
/// `Information` is about the node and not about HTTP/2 frames.
const OUR_CRATES: [&str; 8] = [
    "stele_server",
    "stele_api",
    "stele_services",
    "stele_cluster",
    "stele_core",
    "stele_log",
    "stele_index",
    "stele_proto",
];

/// openraft's level unless the log level is `Debug` or `Verbose`: its per-attempt WARN lines
/// while a peer is down filled 235 MiB of log in 10 s (issue 11 item 2).
const OPENRAFT_QUIET: &str = "openraft=error";

/// Installs the global subscriber. `RUST_LOG`, when set and valid, replaces `level`.
pub fn init(level: LogLevel) {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|value| !value.trim().is_empty())
        .map(|value| EnvFilter::try_new(&value).map_err(|e| (value, e)));
    let (filter, rejected) = match from_env {
        Some(Ok(filter)) => (filter, None),
        Some(Err(rejected)) => (EnvFilter::new(directives(level)), Some(rejected)),
        None => (EnvFilter::new(directives(level)), None),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    if let Some((value, error)) = rejected {
        tracing::warn!("ignoring RUST_LOG={value:?}: {error}");
    }
}

/// The filter for an EventStoreDB log level.
pub fn directives(level: LogLevel) -> String {
    let (others, ours) = match level {
        LogLevel::Default | LogLevel::Information => ("warn", "info"),
        LogLevel::Verbose => ("info", "trace"),
        LogLevel::Debug => ("info", "debug"),
        LogLevel::Warning => ("warn", "warn"),
        LogLevel::Error | LogLevel::Fatal => ("error", "error"),
    };
    let mut directives = String::from(others);
    if !matches!(level, LogLevel::Verbose | LogLevel::Debug) {
        directives.push(',');
        directives.push_str(OPENRAFT_QUIET);
    }
    for krate in OUR_CRATES {
        directives.push_str(&format!(",{krate}={ours}"));
    }
    directives
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_level_makes_a_valid_filter() {
        for level in [
            LogLevel::Default,
            LogLevel::Verbose,
            LogLevel::Debug,
            LogLevel::Information,
            LogLevel::Warning,
            LogLevel::Error,
            LogLevel::Fatal,
        ] {
            let directives = directives(level);
            assert!(EnvFilter::try_new(&directives).is_ok(), "{directives}");
        }
        assert!(directives(LogLevel::Default).starts_with("warn,openraft=error,stele_server=info,"));
    }

    #[test]
    fn openraft_is_quiet_unless_debugging() {
        // openraft's WARN per failed replication attempt flooded the log while a peer was
        // down (issue 11 item 2).
        assert!(directives(LogLevel::Default).contains(OPENRAFT_QUIET));
        assert!(directives(LogLevel::Warning).contains(OPENRAFT_QUIET));
        assert!(!directives(LogLevel::Debug).contains("openraft"));
        assert!(!directives(LogLevel::Verbose).contains("openraft"));
    }
}
