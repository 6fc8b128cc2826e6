//! The `stele` binary's library: configuration in EventStoreDB's language ([`config`]) and
//! log setup ([`logging`]). Node wiring (`run`) and operator subcommands live beside them.
//! The binary itself (`main.rs`) only dispatches subcommands.

pub mod bench;
pub mod config;
pub mod dev_cluster;
pub mod log_watch;
pub mod logging;
pub mod run;
