//! `stele admin`: operator commands over a node's HTTP API (PROTOCOL.md §12), with
//! credentials and a CA of the operator's, so that scripts need no curl.
//!
//! - `status`: `GET /gossip`, the cluster as the node sees it, as a table ([`table`]), or the
//!   document itself with `--json`;
//! - `resign`, `priority N`, `shutdown`: `POST /admin/node/resign`,
//!   `/admin/node/priority/{N}`, `/admin/shutdown`;
//! - `scavenge`: says that scavenging is not implemented yet and fails; no request is sent.
//!
//! What it owns: the command line, the requests and how failures read ([`client`]: one line
//! naming the cause, e.g. wrong credentials, a refused connection, a certificate the CA does
//! not vouch for). What it does not own: anything a node does.
//!
//! Exit codes: 0 when the node answered 2xx, 1 when the command failed (the node refused it,
//! or could not be reached), 2 for a command line it cannot run.

mod client;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use self::client::{AdminClient, Failure};
use crate::subcommand::EXIT_CONFIG;

/// Exit code for a command the node refused or that could not reach it.
const EXIT_FAILURE: u8 = 1;
/// The longest `--timeout` accepted, in seconds.
const TIMEOUT_MAX_SECS: f64 = 3_600.0;

/// Operator commands for a running node over its HTTP API.
#[derive(Debug, Parser)]
#[command(
    name = "stele admin",
    about = "Operator commands for a running node over HTTP: status, resign, priority, shutdown",
    after_help = "On a secure node give the CA with --tls-ca-file and an $ops or $admins user:\n\
                  stele admin --url https://127.0.0.1:2113 --tls-ca-file ca/ca.crt \
                  --username admin --password changeit status"
)]
pub struct Options {
    #[command(subcommand)]
    command: Command,
    /// The node's HTTP address: `http://` for an insecure node, `https://` for a secure one.
    #[arg(long, global = true, default_value = "http://127.0.0.1:2113")]
    url: String,
    /// The user the command runs as (Basic credentials). Default: none (anonymous).
    #[arg(long, global = true, value_name = "LOGIN")]
    username: Option<String>,
    /// The user's password.
    #[arg(long, global = true, value_name = "PASSWORD")]
    password: Option<String>,
    /// The CA certificate (PEM) an `https://` node's certificate chains to.
    #[arg(long = "tls-ca-file", global = true, value_name = "FILE")]
    tls_ca_file: Option<PathBuf>,
    /// How long the request may take, connecting included, in seconds.
    #[arg(
        long = "timeout",
        global = true,
        value_name = "SECS",
        default_value_t = 10.0
    )]
    timeout_secs: f64,
}

/// The commands.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
enum Command {
    /// The cluster as the node's `/gossip` shows it: one row per member.
    Status {
        /// Print the `/gossip` document as JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Ask the node to hand leadership to another caught-up voter (`/admin/node/resign`).
    Resign,
    /// Set the node's priority in elections (`/admin/node/priority/{N}`).
    Priority {
        /// The new priority (any 32-bit integer; higher is preferred).
        #[arg(allow_negative_numbers = true)]
        priority: i32,
    },
    /// Stop the node, as SIGTERM does (`/admin/shutdown`).
    Shutdown,
    /// Scavenging: not implemented in Stele yet.
    Scavenge,
}

/// `stele admin ...`: parses `args` (those after `admin`) and runs the command.
pub fn main(args: &[String]) -> ExitCode {
    let options: Options = match crate::subcommand::parse("stele admin", args) {
        Ok(options) => options,
        Err(code) => return code,
    };
    if let Err(message) = options.check() {
        eprintln!("stele admin: {message}");
        return ExitCode::from(EXIT_CONFIG);
    }
    if options.command == Command::Scavenge {
        eprintln!(
            "stele admin scavenge: scavenging is not implemented in Stele yet; nothing was done"
        );
        return ExitCode::from(EXIT_FAILURE);
    }
    let client = match AdminClient::new(
        &options.url,
        options.tls_ca_file.as_deref(),
        options.credentials(),
        Duration::from_secs_f64(options.timeout_secs),
    ) {
        Ok(client) => client,
        Err(message) => {
            eprintln!("stele admin: {message}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("stele admin: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match runtime.block_on(run(&client, &options.command)) {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("stele admin: {failure}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

impl Options {
    fn check(&self) -> Result<(), String> {
        let secs = self.timeout_secs;
        if !(secs.is_finite() && secs > 0.0 && secs <= TIMEOUT_MAX_SECS) {
            return Err(format!(
                "--timeout must be more than 0 and at most {TIMEOUT_MAX_SECS} seconds"
            ));
        }
        if self.username.is_some() != self.password.is_some() {
            return Err("--username and --password go together".into());
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(format!(
                "--url {} must start with http:// or https://",
                self.url
            ));
        }
        Ok(())
    }

    fn credentials(&self) -> Option<(String, String)> {
        self.username.clone().zip(self.password.clone())
    }
}

/// Runs one command; what to print on success.
async fn run(client: &AdminClient, command: &Command) -> Result<String, Failure> {
    match command {
        Command::Status { json } => {
            let gossip = client.get_json("/gossip").await?;
            if *json {
                Ok(format!("{gossip}\n"))
            } else {
                table::render(&gossip).map_err(Failure::Unexpected)
            }
        }
        Command::Resign => post(client, "/admin/node/resign", "resign").await,
        Command::Priority { priority } => {
            post(
                client,
                &format!("/admin/node/priority/{priority}"),
                &format!("priority {priority}"),
            )
            .await
        }
        Command::Shutdown => post(client, "/admin/shutdown", "shutdown").await,
        Command::Scavenge => Err(Failure::Unexpected(
            "scavenging is not implemented in Stele yet".into(),
        )),
    }
}

async fn post(client: &AdminClient, path: &str, what: &str) -> Result<String, Failure> {
    let body = client.post(path).await?;
    Ok(format!(
        "{what}: {} answered {}\n",
        client.url(),
        body.trim()
    ))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Command, Options};

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        Options::try_parse_from(std::iter::once("stele admin").chain(args.iter().copied()))
    }

    #[test]
    fn flags_go_before_or_after_the_command_and_priorities_may_be_negative() {
        let options = parse(&["--url", "https://h:1", "priority", "-3", "--timeout", "2"])
            .expect("valid command line");
        assert_eq!(options.command, Command::Priority { priority: -3 });
        assert_eq!(options.url, "https://h:1");
        assert_eq!(options.timeout_secs, 2.0);
        assert!(options.check().is_ok());
        let status = parse(&["status", "--json"]).expect("valid command line");
        assert_eq!(status.command, Command::Status { json: true });
        assert!(parse(&[]).is_err(), "a command is required");
        assert!(parse(&["priority", "high"]).is_err());
    }

    #[test]
    fn a_user_without_a_password_a_bad_timeout_or_url_are_refused() {
        for args in [
            &["--username", "admin", "status"][..],
            &["--timeout", "0", "status"],
            &["--timeout", "NaN", "status"],
            &["--url", "127.0.0.1:2113", "status"],
        ] {
            let options = parse(args).expect("parses");
            assert!(options.check().is_err(), "{args:?} is refused");
        }
    }
}
