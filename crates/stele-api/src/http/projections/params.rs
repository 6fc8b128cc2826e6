//! The query parameters of the `/projections` routes: names matched without regard to case
//! (the Node client sends `trackemittedstreams`, the UI `trackEmittedStreams`), booleans
//! `true`/`false` (also `yes`/`no`, `1`/`0`) and anything else refused with 400 naming the
//! parameter. Parameters a route does not know are ignored, as EventStoreDB ignores them.

/// A request's query parameters, keys lower-cased.
#[derive(Debug, Default)]
pub(super) struct Params(Vec<(String, String)>);

impl Params {
    /// The parameters of `query` (the part after `?`, already split by axum).
    pub(super) fn new(pairs: Vec<(String, String)>) -> Params {
        Params(
            pairs
                .into_iter()
                .map(|(key, value)| (key.to_ascii_lowercase(), value))
                .collect(),
        )
    }

    /// The value of `name` (lower case), the first when repeated.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// A boolean parameter; `default` when absent or empty.
    pub(super) fn flag(&self, name: &str, default: bool) -> Result<bool, String> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(value) => parse_bool(value).ok_or_else(|| {
                format!("'{value}' is not a valid value of '{name}' (true or false)")
            }),
        }
    }

    /// A boolean parameter that may be absent (`None`).
    pub(super) fn optional_flag(&self, name: &str) -> Result<Option<bool>, String> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(_) => self.flag(name, false).map(Some),
        }
    }

    /// A required, non-empty parameter.
    pub(super) fn required(&self, name: &str) -> Result<&str, String> {
        match self.get(name) {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(format!("'{name}' is required")),
        }
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::new(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn names_ignore_case_and_flags_parse() {
        let p = params(&[
            ("Name", "p"),
            ("trackEmittedStreams", "TRUE"),
            ("emit", "no"),
        ]);
        assert_eq!(p.required("name"), Ok("p"));
        assert_eq!(p.flag("trackemittedstreams", false), Ok(true));
        assert_eq!(p.flag("emit", true), Ok(false));
        assert_eq!(p.flag("absent", true), Ok(true));
        assert_eq!(p.optional_flag("absent"), Ok(None));
        assert_eq!(p.optional_flag("emit"), Ok(Some(false)));
    }

    #[test]
    fn bad_values_and_missing_names_are_refused() {
        let p = params(&[("emit", "maybe"), ("name", "")]);
        assert!(p.flag("emit", false).unwrap_err().contains("'maybe'"));
        assert_eq!(p.required("name"), Err("'name' is required".to_owned()));
    }
}
