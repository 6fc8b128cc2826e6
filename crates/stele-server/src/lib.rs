//! The `stele` binary's library: configuration in EventStoreDB's language ([`config`]) and
//! log setup ([`logging`]). Node wiring (`run`) and operator subcommands live beside them;
//! [`certs`] also makes the certificates TLS needs; [`admin`] drives a running node over HTTP.
//! The binary itself (`main.rs`) only dispatches subcommands.

// The operating system through libc: file-descriptor limits (run), free disk space
// (log_watch), SIGTERM and parent-death signals for child nodes (bench, dev_cluster).
#![allow(
    unsafe_code,
    reason = "libc calls; each unsafe block has its SAFETY comment"
)]
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the stele binary's subcommands report to the terminal by design"
)]

pub mod admin;
pub mod bench;
pub mod certs;
pub mod config;
pub mod dev_cluster;
pub mod log_watch;
pub mod logging;
pub mod run;
pub mod security;
pub mod subcommand;
