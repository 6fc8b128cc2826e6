//! `stele`: runs a node (`stele [run] [options]`). Operator subcommands (`stele bench ...`,
//! `stele dev-cluster ...`, `stele certs ...`, `stele admin ...`) are dispatched here too.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line program reports to the terminal"
)]

use std::process::ExitCode;

use stele_server::config;
use stele_server::logging;

/// Per-event allocations dominate reads and subscriptions; see Cargo.toml for the measurement.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for a command line or configuration the node cannot start with.
const EXIT_CONFIG: u8 = 2;
/// Exit code for a node that started and then failed.
const EXIT_FAILURE: u8 = 1;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("bench") => stele_server::bench::main(&args[1..]),
        Some("dev-cluster") => stele_server::dev_cluster::main(&args[1..]),
        Some("certs") => stele_server::certs::main(&args[1..]),
        Some("admin") => stele_server::admin::main(&args[1..]),
        _ => run(&args),
    }
}

fn run(args: &[String]) -> ExitCode {
    if args.iter().any(|arg| arg == "--help" || arg == "-h") {
        print!("{}", config::help_text());
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|arg| arg == "--version") {
        println!("stele {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let env: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    let (options, warnings) = match config::parse(args, &env) {
        Ok(parsed) => parsed,
        Err(error) => {
            eprintln!("stele: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    logging::init(options.log_level);
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("stele: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let outcome = runtime.block_on(stele_server::run::run_node(options));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("stele: {error:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
