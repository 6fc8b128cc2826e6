//! The stored form of every group's definition: one JSON document per change in
//! [`super::CONFIG_STREAM`]; the last event is the whole truth.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use stele_core::StreamName;

use super::{Definition, GroupKey, Settings, Source};
use crate::filter::FilterSpec;

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    version: u32,
    entries: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    /// The stream, or `$all`.
    stream: String,
    group: String,
    #[serde(default)]
    filter: Option<FilterSpec>,
    settings: Settings,
}

const VERSION: u32 = 1;

pub(crate) fn encode(definitions: &BTreeMap<GroupKey, Definition>) -> Vec<u8> {
    let document = Document {
        version: VERSION,
        entries: definitions
            .values()
            .map(|d| Entry {
                stream: d.key.source.name().to_owned(),
                group: d.key.group.clone(),
                filter: d.filter.clone(),
                settings: d.settings.clone(),
            })
            .collect(),
    };
    serde_json::to_vec(&document).expect("definitions serialize")
}

/// Reads a stored document; the error says what is wrong with it.
pub(crate) fn decode(data: &[u8]) -> Result<BTreeMap<GroupKey, Definition>, String> {
    let document: Document =
        serde_json::from_slice(data).map_err(|e| format!("not a definitions document: {e}"))?;
    let mut definitions = BTreeMap::new();
    for entry in document.entries {
        let source = if entry.stream == "$all" {
            Source::All
        } else {
            Source::Stream(
                StreamName::new(entry.stream.clone())
                    .map_err(|e| format!("stream '{}': {e}", entry.stream))?,
            )
        };
        let key = GroupKey::new(source, entry.group);
        definitions.insert(
            key.clone(),
            Definition {
                key,
                filter: entry.filter,
                settings: entry.settings,
            },
        );
    }
    Ok(definitions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::FilterField;
    use crate::persistent::{StartFrom, Strategy};

    #[test]
    fn definitions_round_trip() {
        let mut definitions = BTreeMap::new();
        let stream = GroupKey::new(Source::Stream(StreamName::new("orders").unwrap()), "g1");
        let all = GroupKey::new(Source::All, "g2");
        definitions.insert(
            stream.clone(),
            Definition {
                key: stream,
                filter: None,
                settings: Settings::default(),
            },
        );
        definitions.insert(
            all.clone(),
            Definition {
                key: all,
                filter: Some(FilterSpec {
                    on: FilterField::EventType,
                    regex: "^order".to_owned(),
                    prefixes: vec![],
                }),
                settings: Settings {
                    start_from: StartFrom::At(77),
                    consumer_strategy: Strategy::Pinned,
                    ..Settings::default()
                },
            },
        );
        assert_eq!(decode(&encode(&definitions)).unwrap(), definitions);
        assert!(decode(b"{}").is_err());
    }
}
