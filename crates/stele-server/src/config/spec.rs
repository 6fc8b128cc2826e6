//! [`OptionSpec`]: what the table says about one option, and how its name is spelled in each
//! source. Names are matched as EventStoreDB matches them: case-insensitively, with dashes
//! and underscores ignored, so `--cluster-size`, `ClusterSize`, `clustersize` and
//! `EVENTSTORE_CLUSTER_SIZE` all name the same option.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::table::OPTIONS;

/// Whether Stele does what an option asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The option takes effect.
    Acted,
    /// Recognised so that EventStoreDB configurations load, but not acted on yet: setting it
    /// to anything but its default produces a startup warning naming it.
    NotYet,
}

/// One row of the option table.
#[derive(Debug)]
pub struct OptionSpec {
    /// EventStoreDB's name, PascalCase as in its YAML files (`ClusterSize`).
    pub name: &'static str,
    /// Other names for the same option: EventStoreDB's legacy or newer spellings.
    pub aliases: &'static [&'static str],
    /// The default, in the same text form a user would write.
    pub default: &'static str,
    pub status: Status,
    pub help: &'static str,
    /// What a value looks like (`an IP address`, `true|false`).
    pub hint: &'static str,
    /// How `--help` shows a value (`N`, `PATH`).
    pub placeholder: &'static str,
    /// A boolean: `--name` alone means `true`.
    pub is_flag: bool,
}

impl OptionSpec {
    /// `--cluster-size`.
    pub fn flag(&self) -> String {
        format!("--{}", kebab_case(self.name))
    }

    /// `CLUSTER_SIZE`, to put after `EVENTSTORE_` or `STELE_`.
    pub fn env_suffix(&self) -> String {
        kebab_case(self.name).replace('-', "_").to_ascii_uppercase()
    }

    pub(crate) fn index(&self) -> usize {
        OPTIONS
            .iter()
            .position(|spec| std::ptr::eq(spec, self))
            .expect("an OptionSpec is a row of OPTIONS")
    }
}

/// `ClusterSize` → `cluster-size`. Our canonical names capitalise acronyms as words
/// (`Http`, `Tcp`), so every capital starts a word.
pub fn kebab_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The form in which names are compared.
pub fn normalize(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '-' && *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

static BY_NAME: LazyLock<HashMap<String, usize>> = LazyLock::new(|| {
    let mut map = HashMap::new();
    for (index, spec) in OPTIONS.iter().enumerate() {
        for name in std::iter::once(&spec.name).chain(spec.aliases) {
            let previous = map.insert(normalize(name), index);
            assert!(
                previous.is_none(),
                "option name {name} is in the table twice"
            );
        }
    }
    map
});

/// The option a key names, in any of its spellings.
pub fn lookup(key: &str) -> Option<&'static OptionSpec> {
    BY_NAME.get(&normalize(key)).map(|&index| &OPTIONS[index])
}

/// The known option whose name is closest to an unknown `key`, if any is close enough to be
/// a likely typo.
pub fn closest(key: &str) -> Option<&'static OptionSpec> {
    let key = normalize(key);
    let (distance, index) = BY_NAME
        .iter()
        .map(|(name, &index)| (edit_distance(&key, name), index))
        .min()?;
    (distance <= 1 + key.len() / 6).then(|| &OPTIONS[index])
}

/// Levenshtein distance, on bytes (option names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_convert_between_spellings() {
        assert_eq!(
            kebab_case("EnableAtomPubOverHttp"),
            "enable-atom-pub-over-http"
        );
        assert_eq!(
            normalize("EVENTSTORE_CLUSTER_SIZE"),
            "eventstoreclustersize"
        );
        assert_eq!(
            lookup("EnableAtomPubOverHTTP").map(|s| s.name),
            Some("EnableAtomPubOverHttp")
        );
        assert_eq!(lookup("int-http-port").map(|s| s.name), Some("HttpPort"));
        assert!(lookup("gossip-seeds").is_none());
    }

    #[test]
    fn every_name_and_alias_is_unique_and_round_trips() {
        assert!(!BY_NAME.is_empty());
        for spec in OPTIONS {
            assert_eq!(lookup(&spec.flag()).map(|s| s.name), Some(spec.name));
            assert_eq!(lookup(&spec.env_suffix()).map(|s| s.name), Some(spec.name));
            assert!(!spec.help.trim().is_empty(), "{} has no help", spec.name);
        }
    }

    #[test]
    fn typos_find_the_intended_option() {
        assert_eq!(closest("cluster-sise").map(|s| s.name), Some("ClusterSize"));
        assert_eq!(closest("GossipSeeds").map(|s| s.name), Some("GossipSeed"));
        assert!(closest("completely-different").is_none());
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
