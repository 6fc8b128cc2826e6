//! Stream access control lists: the `$acl` object of a stream's metadata and the default
//! ACLs of the `$settings` stream (`$userStreamAcl`, `$systemStreamAcl`), parsed from JSON.
//! Deciding with them is `stream_access.rs`; reading them from the log is the services'.
//!
//! **What is ignored, and why.** EventStoreDB parses an ACL strictly (`StreamMetadata.ReadAcl`,
//! from the code; unconfirmed at runtime): an ACL must be an object whose keys are among `$r`,
//! `$w`, `$d`, `$mr`, `$mw`, each a string or an array of strings. Anything else (a number, a
//! `null`, an array holding a non-string, an unknown key) throws, the whole metadata event is
//! then read as empty (`IndexReader`: `catch → StreamMetadata.Empty`), and a bad `$settings`
//! event is read as no settings at all (`SystemSettings.Default`). To reach the same decisions:
//!
//! - a malformed `$acl` is ignored as a whole: the stream has no ACL of its own and every
//!   permission falls back to the defaults. (Stele keeps the metadata's other keys, which
//!   `metadata.rs` parses key by key; access decisions are the same as EventStoreDB's.)
//! - a malformed `$userStreamAcl` or `$systemStreamAcl` makes the whole settings event ignored:
//!   the built-in defaults apply to both classes, as in EventStoreDB.
//! - keys other than `$userStreamAcl` / `$systemStreamAcl` in settings, and other than `$acl`
//!   in metadata, are skipped silently, as EventStoreDB skips them.
//!
//! One deliberate difference: a role list longer than [`MAX_ACL_ROLES`] keeps only its first
//! [`MAX_ACL_ROLES`] roles (an allow list that loses entries can only deny more, never allow
//! more). Every ignored or cut part is reported as an [`AclIgnored`] so the caller can say so
//! once (for example when `$settings` changes), never per request.
//!
//! The parsers never panic: `serde_json` bounds nesting depth, and the lists are capped.

use serde_json::{Map, Value};

use super::StreamAccess;

/// The most roles one permission keeps; more are dropped (and reported). The whole metadata
/// event is already bounded by the append size limits; this bounds the work of one check.
pub const MAX_ACL_ROLES: usize = 1024;

/// Everyone, including anonymous principals, as a role in an ACL.
pub const ALL_ROLE: &str = "$all";

/// The key of a stream's ACL in its metadata.
pub const ACL_KEY: &str = "$acl";
/// The key of the default ACL of user streams in `$settings`.
pub const USER_STREAM_ACL_KEY: &str = "$userStreamAcl";
/// The key of the default ACL of system streams in `$settings`.
pub const SYSTEM_STREAM_ACL_KEY: &str = "$systemStreamAcl";

/// The five permission lists of one ACL. `None` means "not set here", so the next default
/// applies; `Some(vec![])` means nobody (but admins, who bypass ACLs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamAcl {
    /// `$r`: read the stream.
    pub read: Option<Vec<String>>,
    /// `$w`: write to the stream.
    pub write: Option<Vec<String>>,
    /// `$d`: delete the stream.
    pub delete: Option<Vec<String>>,
    /// `$mr`: read the stream's metadata.
    pub meta_read: Option<Vec<String>>,
    /// `$mw`: write the stream's metadata.
    pub meta_write: Option<Vec<String>>,
}

/// Something a parser ignored or cut, so that the caller can say what it did not apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclIgnored {
    /// The event's data is not a JSON object: nothing in it applies.
    NotAnObject,
    /// The ACL under `key` is malformed (`reason` says how) and is ignored as a whole; for a
    /// settings event, the whole event is ignored.
    MalformedAcl { key: &'static str, reason: String },
    /// The permission `permission` of the ACL under `key` listed more than [`MAX_ACL_ROLES`]
    /// roles; only the first [`MAX_ACL_ROLES`] are kept.
    TooManyRoles {
        key: &'static str,
        permission: &'static str,
        roles: usize,
    },
}

impl std::fmt::Display for AclIgnored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AclIgnored::NotAnObject => write!(f, "not a JSON object; ignored"),
            AclIgnored::MalformedAcl { key, reason } => {
                write!(f, "{key} is malformed ({reason}); ignored")
            }
            AclIgnored::TooManyRoles {
                key,
                permission,
                roles,
            } => write!(
                f,
                "{key}.{permission} lists {roles} roles; only the first {MAX_ACL_ROLES} are kept"
            ),
        }
    }
}

impl StreamAcl {
    /// The JSON key of each permission, in the order EventStoreDB writes them.
    pub const KEYS: [(&'static str, StreamAccess); 5] = [
        ("$r", StreamAccess::Read),
        ("$w", StreamAccess::Write),
        ("$d", StreamAccess::Delete),
        ("$mr", StreamAccess::MetaRead),
        ("$mw", StreamAccess::MetaWrite),
    ];

    /// An ACL giving every permission to the same roles.
    pub fn uniform(roles: &[&str]) -> StreamAcl {
        let list = || Some(roles.iter().map(|r| (*r).to_owned()).collect::<Vec<_>>());
        StreamAcl {
            read: list(),
            write: list(),
            delete: list(),
            meta_read: list(),
            meta_write: list(),
        }
    }

    /// The roles this ACL sets for `access`, if it sets any.
    pub fn roles(&self, access: StreamAccess) -> Option<&[String]> {
        match access {
            StreamAccess::Read => self.read.as_deref(),
            StreamAccess::Write => self.write.as_deref(),
            StreamAccess::Delete => self.delete.as_deref(),
            StreamAccess::MetaRead => self.meta_read.as_deref(),
            StreamAccess::MetaWrite => self.meta_write.as_deref(),
        }
    }

    fn roles_mut(&mut self, access: StreamAccess) -> &mut Option<Vec<String>> {
        match access {
            StreamAccess::Read => &mut self.read,
            StreamAccess::Write => &mut self.write,
            StreamAccess::Delete => &mut self.delete,
            StreamAccess::MetaRead => &mut self.meta_read,
            StreamAccess::MetaWrite => &mut self.meta_write,
        }
    }

    /// The `$acl` of a stream metadata event's JSON, and what was ignored. `None` when the
    /// metadata sets no ACL, or sets a malformed one (see the module docs).
    pub fn from_metadata_json(data: &[u8]) -> (Option<StreamAcl>, Vec<AclIgnored>) {
        let mut ignored = Vec::new();
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(data) else {
            ignored.push(AclIgnored::NotAnObject);
            return (None, ignored);
        };
        let acl = map
            .get(ACL_KEY)
            .and_then(|value| StreamAcl::from_value(ACL_KEY, value, &mut ignored));
        (acl, ignored)
    }

    /// Parses one ACL object (the value of `$acl`, `$userStreamAcl` or `$systemStreamAcl`,
    /// named `key` in reports). `None` if it is malformed, with the reason in `ignored`.
    pub fn from_value(
        key: &'static str,
        value: &Value,
        ignored: &mut Vec<AclIgnored>,
    ) -> Option<StreamAcl> {
        let malformed = |reason: String| AclIgnored::MalformedAcl { key, reason };
        let Value::Object(object) = value else {
            ignored.push(malformed(format!("not an object but {}", kind(value))));
            return None;
        };
        let mut acl = StreamAcl::default();
        let mut cut = Vec::new();
        for (name, roles) in object {
            let Some((permission, access)) = StreamAcl::KEYS.iter().find(|(k, _)| k == name) else {
                ignored.push(malformed(format!("unknown permission {name:?}")));
                return None;
            };
            let list = match roles {
                Value::String(role) => vec![role.clone()],
                Value::Array(items) => {
                    let mut list = Vec::with_capacity(items.len().min(MAX_ACL_ROLES));
                    for item in items {
                        let Value::String(role) = item else {
                            ignored.push(malformed(format!(
                                "{permission} holds {} where a role name belongs",
                                kind(item)
                            )));
                            return None;
                        };
                        if list.len() < MAX_ACL_ROLES {
                            list.push(role.clone());
                        }
                    }
                    if items.len() > MAX_ACL_ROLES {
                        cut.push(AclIgnored::TooManyRoles {
                            key,
                            permission,
                            roles: items.len(),
                        });
                    }
                    list
                }
                other => {
                    ignored.push(malformed(format!(
                        "{permission} is {}, not a role name or a list of them",
                        kind(other)
                    )));
                    return None;
                }
            };
            *acl.roles_mut(*access) = Some(list);
        }
        ignored.extend(cut);
        Some(acl)
    }
}

/// The default ACLs of the `$settings` stream's latest event. `None` entries were not set,
/// so the built-in defaults apply (see [`built_in_role`](super::built_in_role)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemSettings {
    /// `$userStreamAcl`: the defaults of streams not starting with `$`.
    pub user_stream_acl: Option<StreamAcl>,
    /// `$systemStreamAcl`: the defaults of streams starting with `$`.
    pub system_stream_acl: Option<StreamAcl>,
}

impl SystemSettings {
    /// Parses a `$settings` event's JSON, and says what was ignored. A malformed event gives
    /// the built-in defaults (`SystemSettings::default()`), as in EventStoreDB.
    pub fn from_json(data: &[u8]) -> (SystemSettings, Vec<AclIgnored>) {
        let mut ignored = Vec::new();
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(data) else {
            ignored.push(AclIgnored::NotAnObject);
            return (SystemSettings::default(), ignored);
        };
        match SystemSettings::from_map(&map, &mut ignored) {
            Some(settings) => (settings, ignored),
            None => (SystemSettings::default(), ignored),
        }
    }

    fn from_map(map: &Map<String, Value>, ignored: &mut Vec<AclIgnored>) -> Option<Self> {
        let mut acl = |key: &'static str| match map.get(key) {
            None => Some(None),
            Some(value) => StreamAcl::from_value(key, value, ignored).map(Some),
        };
        Some(SystemSettings {
            user_stream_acl: acl(USER_STREAM_ACL_KEY)?,
            system_stream_acl: acl(SYSTEM_STREAM_ACL_KEY)?,
        })
    }

    /// The default ACL of a stream class: system streams (`$`-prefixed) or user streams.
    pub fn acl_for(&self, system_stream: bool) -> Option<&StreamAcl> {
        if system_stream {
            self.system_stream_acl.as_ref()
        } else {
            self.user_stream_acl.as_ref()
        }
    }
}

/// A JSON value's kind, for reports (never its content, which may be large).
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roles(list: &[&str]) -> Option<Vec<String>> {
        Some(list.iter().map(|r| (*r).to_owned()).collect())
    }

    #[test]
    fn a_role_is_a_string_or_a_list_of_strings() {
        // Each permission takes one role name or an array of them; an empty array is kept
        // (it means nobody), and unset permissions stay unset.
        let (acl, ignored) = StreamAcl::from_metadata_json(
            br#"{"$maxCount":3,"$acl":{"$r":"greg","$w":["greg","john"],"$mw":[]}}"#,
        );
        let acl = acl.unwrap();
        assert_eq!(acl.read, roles(&["greg"]));
        assert_eq!(acl.write, roles(&["greg", "john"]));
        assert_eq!(acl.meta_write, roles(&[]));
        assert_eq!((acl.delete, acl.meta_read), (None, None));
        assert!(ignored.is_empty());
    }

    #[test]
    fn metadata_without_an_acl_has_none() {
        // Metadata with no `$acl` gives no stream ACL and reports nothing.
        assert_eq!(
            StreamAcl::from_metadata_json(br#"{"$maxCount":3,"x":{"$r":5}}"#),
            (None, vec![])
        );
    }

    #[test]
    fn a_malformed_acl_is_ignored_as_a_whole() {
        // As EventStoreDB drops metadata whose `$acl` it cannot read, one bad entry drops the
        // whole ACL (the good `$r` too), and the reason is reported.
        for json in [
            r#"{"$acl":{"$r":"greg","$w":5}}"#,
            r#"{"$acl":{"$r":"greg","$w":null}}"#,
            r#"{"$acl":{"$r":["greg",1]}}"#,
            r#"{"$acl":{"$r":"greg","$x":"y"}}"#,
            r#"{"$acl":"greg"}"#,
            r#"{"$acl":null}"#,
        ] {
            let (acl, ignored) = StreamAcl::from_metadata_json(json.as_bytes());
            assert_eq!(acl, None, "{json}");
            assert!(
                matches!(
                    ignored.as_slice(),
                    [AclIgnored::MalformedAcl { key: "$acl", .. }]
                ),
                "{json}: {ignored:?}"
            );
        }
        let (acl, ignored) = StreamAcl::from_metadata_json(b"[1]");
        assert_eq!((acl, ignored), (None, vec![AclIgnored::NotAnObject]));
    }

    #[test]
    fn long_role_lists_are_cut_and_reported() {
        // A permission listing more than MAX_ACL_ROLES roles keeps the first MAX_ACL_ROLES
        // (denying more, never allowing more) and says so.
        let many: Vec<String> = (0..MAX_ACL_ROLES + 5).map(|i| format!("u{i}")).collect();
        let json = serde_json::json!({ "$acl": { "$r": many } }).to_string();
        let (acl, ignored) = StreamAcl::from_metadata_json(json.as_bytes());
        let read = acl.unwrap().read.unwrap();
        assert_eq!(read.len(), MAX_ACL_ROLES);
        assert_eq!(read[0], "u0");
        assert_eq!(
            ignored,
            vec![AclIgnored::TooManyRoles {
                key: "$acl",
                permission: "$r",
                roles: MAX_ACL_ROLES + 5
            }]
        );
        assert!(ignored[0].to_string().contains("only the first"));
    }

    #[test]
    fn settings_parse_both_defaults() {
        // `$settings` sets the defaults of user and system streams; absent ones stay unset.
        let (settings, ignored) = SystemSettings::from_json(
            br#"{"$userStreamAcl":{"$r":"$all","$w":"writers"},"other":1}"#,
        );
        assert!(ignored.is_empty());
        let user = settings.acl_for(false).unwrap();
        assert_eq!(user.read, roles(&["$all"]));
        assert_eq!(user.write, roles(&["writers"]));
        assert_eq!(user.delete, None);
        assert_eq!(settings.acl_for(true), None);
    }

    #[test]
    fn malformed_settings_give_the_built_in_defaults() {
        // As EventStoreDB reads a settings event it cannot parse as no settings, one bad ACL
        // drops the other (good) one too.
        for json in [
            r#"{"$userStreamAcl":{"$r":"x"},"$systemStreamAcl":{"$r":7}}"#,
            r#"{"$userStreamAcl":[],"$systemStreamAcl":{"$r":"x"}}"#,
            r#"not json"#,
        ] {
            let (settings, ignored) = SystemSettings::from_json(json.as_bytes());
            assert_eq!(settings, SystemSettings::default(), "{json}");
            assert_eq!(ignored.len(), 1, "{json}: {ignored:?}");
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            prop_oneof![
                Just("$r".to_owned()),
                Just("$w".to_owned()),
                Just("$mr".to_owned()),
                Just("$all".to_owned()),
                ".{0,6}"
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            let key = prop_oneof![
                Just("$acl".to_owned()),
                Just("$r".to_owned()),
                Just("$w".to_owned()),
                Just("$d".to_owned()),
                Just("$mw".to_owned()),
                Just("$userStreamAcl".to_owned()),
                Just("$systemStreamAcl".to_owned()),
                ".{0,4}"
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(key, inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn parsers_never_panic_on_bytes(data in prop::collection::vec(any::<u8>(), 0..256)) {
            // Any bytes parse to some answer without a panic.
            let _ = StreamAcl::from_metadata_json(&data);
            let _ = SystemSettings::from_json(&data);
        }

        #[test]
        fn parsers_never_panic_on_json(value in json_value()) {
            // Any JSON value parses without a panic; a parsed ACL keeps only what was there,
            // each list within the cap, and a dropped ACL is always reported.
            let bytes = serde_json::to_vec(&value).unwrap();
            let (acl, ignored) = StreamAcl::from_metadata_json(&bytes);
            if let Some(acl) = &acl {
                for (_, access) in StreamAcl::KEYS {
                    prop_assert!(acl.roles(access).is_none_or(|r| r.len() <= MAX_ACL_ROLES));
                }
            }
            let has_acl = value.get(ACL_KEY).is_some();
            prop_assert!(acl.is_some() || !has_acl || !ignored.is_empty());
            let (settings, ignored) = SystemSettings::from_json(&bytes);
            let dropped = ignored
                .iter()
                .any(|i| !matches!(i, AclIgnored::TooManyRoles { .. }));
            if dropped {
                prop_assert_eq!(settings, SystemSettings::default());
            }
        }
    }
}
