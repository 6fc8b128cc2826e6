//! What the `stele` subcommands (`bench`, `dev-cluster`, `admin`) share: their arguments
//! parsed with clap, and the exit code of a command line that cannot be run.

use std::process::ExitCode;

/// Exit code for a command line (or configuration) that cannot be run.
pub const EXIT_CONFIG: u8 = 2;

/// Parses `args` (those after the subcommand's name) as `O`. On `--help` or a bad command
/// line, clap's text is printed and the exit code to return comes back as the error: 0 for
/// help and version, [`EXIT_CONFIG`] for an error.
pub fn parse<O: clap::Parser>(name: &str, args: &[String]) -> Result<O, ExitCode> {
    O::try_parse_from(std::iter::once(name).chain(args.iter().map(String::as_str))).map_err(
        |error| {
            let _ = error.print();
            if error.use_stderr() {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::SUCCESS
            }
        },
    )
}
