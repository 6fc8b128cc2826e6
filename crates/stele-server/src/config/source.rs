//! Reading settings out of the three sources — command line, environment, YAML file — as
//! text, without interpreting values. Each [`Setting`] remembers its [`Origin`] so that an
//! error can say where the bad value came from.

use std::path::Path;

use serde_yaml::Value;

use super::error::{ConfigError, Origin};
use super::spec::{self, OptionSpec};
use super::value::parse_bool;

/// The sources, from lowest to highest precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Layer {
    ConfigFile,
    EventStoreEnvironment,
    KurrentEnvironment,
    SteleEnvironment,
    CommandLine,
}

/// Environment variable prefixes and their precedence: our own name wins over the
/// compatible ones when both are set.
const ENV_PREFIXES: [(&str, Layer); 3] = [
    ("EVENTSTORE_", Layer::EventStoreEnvironment),
    ("KURRENTDB_", Layer::KurrentEnvironment),
    ("STELE_", Layer::SteleEnvironment),
];

#[derive(Debug, Clone)]
pub(crate) struct Setting {
    /// `None` for a name no option has.
    pub option: Option<&'static OptionSpec>,
    /// `None` for a bare `--flag`.
    pub value: Option<String>,
    pub origin: Origin,
    pub layer: Layer,
}

impl Setting {
    /// How the closest known option would be spelled in this setting's source.
    pub fn spell(&self, option: &OptionSpec) -> String {
        match &self.origin {
            Origin::CommandLine(_) => option.flag(),
            Origin::Environment(var) => {
                let prefix = ENV_PREFIXES
                    .iter()
                    .map(|(prefix, _)| *prefix)
                    .find(|prefix| var.starts_with(prefix))
                    .unwrap_or("STELE_");
                format!("{prefix}{}", option.env_suffix())
            }
            Origin::ConfigFile { .. } | Origin::Default => option.name.to_owned(),
        }
    }

    /// The name as the user wrote it, without `--` or a prefix.
    pub fn written_key(&self) -> &str {
        match &self.origin {
            Origin::CommandLine(flag) => flag.trim_start_matches('-'),
            Origin::Environment(var) => ENV_PREFIXES
                .iter()
                .find_map(|(prefix, _)| var.strip_prefix(prefix))
                .unwrap_or(var),
            Origin::ConfigFile { key, .. } => key,
            Origin::Default => "",
        }
    }
}

/// `--name value`, `--name=value`, and for booleans a bare `--name` (optionally followed by
/// `true` or `false`).
pub(crate) fn command_line(args: &[String]) -> Result<Vec<Setting>, ConfigError> {
    let mut settings = Vec::new();
    let mut rest = args.iter().peekable();
    while let Some(arg) = rest.next() {
        let body = match arg.strip_prefix("--") {
            Some(body) if !body.is_empty() && !body.starts_with('=') => body,
            _ => return Err(ConfigError::UnexpectedArgument(arg.clone())),
        };
        let (key, inline_value) = match body.split_once('=') {
            Some((key, value)) => (key, Some(value.to_owned())),
            None => (body, None),
        };
        let origin = Origin::CommandLine(format!("--{key}"));
        let option = spec::lookup(key);
        // Values never start with `--`, so `--db --insecure` is a missing value, not a
        // database called `--insecure`.
        let value_follows = rest.peek().is_some_and(|next| !next.starts_with("--"));
        let value = match (inline_value, option) {
            (Some(value), _) => Some(value),
            (None, Some(spec)) if spec.is_flag => {
                rest.next_if(|next| parse_bool(next).is_some()).cloned()
            }
            (None, Some(_)) if value_follows => rest.next().cloned(),
            (None, Some(spec)) => {
                return Err(ConfigError::MissingValue {
                    option: spec.name,
                    origin,
                })
            }
            // An unknown option is an error unless AllowUnknownOptions is set; then it is
            // skipped together with what looks like its value.
            (None, None) if value_follows => rest.next().cloned(),
            (None, None) => None,
        };
        settings.push(Setting {
            option,
            value,
            origin,
            layer: Layer::CommandLine,
        });
    }
    Ok(settings)
}

/// Variables named `EVENTSTORE_<OPTION>`, `KURRENTDB_<OPTION>` or `STELE_<OPTION>`. Any other
/// variable with one of those prefixes is an unknown option.
pub(crate) fn environment(env: &[(String, String)]) -> Vec<Setting> {
    let mut settings = Vec::new();
    for (var, value) in env {
        let Some((suffix, layer)) = ENV_PREFIXES
            .iter()
            .find_map(|(prefix, layer)| Some((var.strip_prefix(prefix)?, *layer)))
        else {
            continue;
        };
        settings.push(Setting {
            option: spec::lookup(suffix),
            value: Some(value.clone()),
            origin: Origin::Environment(var.clone()),
            layer,
        });
    }
    settings
}

/// A YAML mapping of option names to scalar values. A list value is joined with commas
/// (`GossipSeed` may be written either way); an empty value leaves the option unset.
pub(crate) fn config_file(path: &Path, text: &str) -> Result<Vec<Setting>, ConfigError> {
    let file_error = |message: String| ConfigError::ConfigFile {
        path: path.to_owned(),
        message,
    };
    let document: Value = serde_yaml::from_str(text).map_err(|e| file_error(e.to_string()))?;
    let mapping = match document {
        Value::Null => return Ok(Vec::new()),
        Value::Mapping(mapping) => mapping,
        _ => return Err(file_error("expected option names and their values".into())),
    };
    let mut settings = Vec::new();
    for (key, value) in mapping {
        let key = scalar_text(&key)
            .ok_or_else(|| file_error(format!("option name {key:?} is not text")))?;
        let option = spec::lookup(&key);
        let origin = Origin::ConfigFile {
            path: path.to_owned(),
            key,
        };
        // `None`: a value that is not text (a mapping); `Some(None)`: no value at all.
        let text: Option<Option<String>> = match &value {
            Value::Null => Some(None),
            Value::Sequence(items) => items
                .iter()
                .map(scalar_text)
                .collect::<Option<Vec<_>>>()
                .map(|items| Some(items.join(","))),
            scalar => scalar_text(scalar).map(Some),
        };
        let value = match (text, option) {
            (None, Some(spec)) => {
                return Err(ConfigError::BadValue {
                    option: spec.name,
                    value: format!("{value:?}"),
                    origin,
                    expected: spec.hint,
                })
            }
            (Some(None), Some(_)) => continue,
            (Some(text), _) => text,
            (None, None) => None,
        };
        settings.push(Setting {
            option,
            value,
            origin,
            layer: Layer::ConfigFile,
        });
    }
    Ok(settings)
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Bool(value) => Some(value.to_string()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}
