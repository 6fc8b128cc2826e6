//! The stored form of every group's definition: one JSON document per change in
//! [`super::CONFIG_STREAM`]; the last event is the whole truth.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use stele_core::access::Principal;
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
    /// Absent in definitions written before groups had creators: the system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    creator: Option<Creator>,
}

/// Who created a group.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
enum Creator {
    System,
    Anonymous,
    User { name: String, groups: Vec<String> },
}

impl Creator {
    fn of(principal: &Principal) -> Creator {
        match principal {
            Principal::System => Creator::System,
            Principal::Anonymous => Creator::Anonymous,
            Principal::User { name, groups } => Creator::User {
                name: name.clone(),
                groups: groups.clone(),
            },
        }
    }

    fn principal(self) -> Principal {
        match self {
            Creator::System => Principal::System,
            Creator::Anonymous => Principal::Anonymous,
            Creator::User { name, groups } => Principal::User { name, groups },
        }
    }
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
                creator: Some(Creator::of(&d.creator)),
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
                creator: entry.creator.map_or(Principal::System, Creator::principal),
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
                creator: Principal::System,
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
                creator: Principal::User {
                    name: "ouro".to_owned(),
                    groups: vec!["readers".to_owned()],
                },
            },
        );
        assert_eq!(decode(&encode(&definitions)).unwrap(), definitions);
        assert!(decode(b"{}").is_err());
        // Written before groups had creators: the system's.
        let old =
            br#"{"version":1,"entries":[{"stream":"orders","group":"g","settings":SETTINGS}]}"#;
        let settings = serde_json::to_string(&Settings::default()).unwrap();
        let old = String::from_utf8_lossy(old).replace("SETTINGS", &settings);
        let decoded = decode(old.as_bytes()).unwrap();
        assert_eq!(decoded.values().next().unwrap().creator, Principal::System);
    }
}
