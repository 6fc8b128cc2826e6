//! Log setup: `tracing` output to standard output, at the level EventStoreDB's `LogLevel`
//! option names, unless `RUST_LOG` says otherwise.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogLevel;

/// Our crates, which log at the chosen level; dependencies log one step quieter, so that
/// `Information` is about the node and not about HTTP/2 frames.
const OUR_CRATES: [&str; 7] = [
    "stele_server",
    "stele_api",
    "stele_cluster",
    "stele_core",
    "stele_log",
    "stele_index",
    "stele_proto",
];

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
        assert!(directives(LogLevel::Default).starts_with("warn,stele_server=info,"));
    }
}
