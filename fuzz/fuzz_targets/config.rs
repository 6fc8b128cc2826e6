//! stele-server configuration: EventStoreDB's option language from the command line, the
//! environment and a YAML config file, through `config::parse_with_files` (what `parse` does,
//! with the file's text given instead of read from disk).
//!
//! Input: text in three parts separated by NUL bytes: command-line arguments (one a line),
//! environment variables (`NAME=value`, one a line) and the YAML file. When the YAML part is
//! present, `--config=fuzz.yaml` is added to the arguments.
//!
//! Checks: nothing panics; every error has a message, and an error about a value or an option
//! names the option.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stele_server::config::{parse_with_files, ConfigError};

fuzz_target!(|data: &[u8]| {
    stele_fuzz::init();
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\0');
    let mut args: Vec<String> = lines(parts.next());
    let env: Vec<(String, String)> = lines(parts.next())
        .into_iter()
        .map(|line| match line.split_once('=') {
            Some((name, value)) => (name.to_owned(), value.to_owned()),
            None => (line, String::new()),
        })
        .collect();
    let yaml = parts.next().map(str::to_owned);
    if yaml.is_some() {
        args.push("--config=fuzz.yaml".to_owned());
    }
    let read = |_: &std::path::Path| match yaml {
        Some(text) => Ok(text),
        None => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
    };
    if let Err(e) = parse_with_files(&args, &env, read) {
        let message = e.to_string();
        assert!(!message.is_empty());
        match &e {
            ConfigError::BadValue { option, .. }
            | ConfigError::MissingValue { option, .. }
            | ConfigError::SetTwice { option, .. }
            | ConfigError::NotAllowedHere { option, .. }
            | ConfigError::Invalid { option, .. } => {
                assert!(message.contains(option), "{message}")
            }
            _ => {}
        }
    }
});

fn lines(part: Option<&str>) -> Vec<String> {
    part.map(|p| p.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}
