//! What the users' streams hold, and the one decoder of it.
//!
//! **The user record** (`$user-<login>`, events [`USER_CREATED`] then [`USER_UPDATED`], each
//! the whole record as JSON) is EventStoreDB's `UserData`: `loginName`, `fullName`, `salt`,
//! `hash`, `disabled`, `groups`, plus `hashAlgorithm` so that another algorithm can be
//! introduced (or EventStoreDB's records imported) later. Property names are written in
//! camelCase: EventStoreDB's exact casing is unconfirmed (PROTOCOL-OPS.md §3.2), so the
//! decoder also accepts the PascalCase names. With [`HASH_ALGORITHM_ARGON2ID`], `hash` is
//! the whole PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`: parameters and salt
//! included) and is what verification reads; `salt` repeats the salt for EventStoreDB's
//! field list. A record without `hashAlgorithm` is EventStoreDB's ([`HASH_ALGORITHM_RFC2898`]).
//!
//! **`$users`** gets one [`USER_INDEX_EVENT`] per created login: the login as plain text.
//! **`$users-password-notifications`** gets [`PASSWORD_CHANGED`] `{"LoginName": …}`.
//!
//! The decoder never panics and bounds every size (the constants below): a record is read
//! on every authentication, and anything an administrator (or a damaged log) put there must
//! not cost more than a bounded amount to look at.

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize};
use stele_core::{ContentType, ProposedEvent};

/// The event type of a user's first record.
pub const USER_CREATED: &str = "$UserCreated";
/// The event type of every later record of the user.
pub const USER_UPDATED: &str = "$UserUpdated";
/// The event type of `$users`' events (one per created login).
pub const USER_INDEX_EVENT: &str = "$User";
/// The event type of `$users-password-notifications`' events.
pub const PASSWORD_CHANGED: &str = "$PasswordChanged";

/// The stream listing every login ever created.
pub const USERS_STREAM: &str = "$users";
/// The stream of password (and group, disable, delete) notifications.
pub const PASSWORD_NOTIFICATIONS_STREAM: &str = "$users-password-notifications";
/// The prefix of a user's stream: `$user-<login>`.
pub const USER_STREAM_PREFIX: &str = "$user-";

/// `hashAlgorithm` of the records Stele writes: Argon2id, `hash` a PHC string.
pub const HASH_ALGORITHM_ARGON2ID: &str = "argon2id";
/// `hashAlgorithm` assumed for a record without one (EventStoreDB's PBKDF2-HMAC-SHA1 with
/// 1000 iterations, hash and salt in base64). Not verified today: such a user cannot log in.
pub const HASH_ALGORITHM_RFC2898: &str = "rfc2898-sha1";

/// The largest user record decoded, in bytes of JSON.
pub const MAX_USER_RECORD_BYTES: usize = 64 * 1024;
/// The longest login name, in bytes (it is part of a stream name, at most 4 KiB).
pub const MAX_LOGIN_NAME_BYTES: usize = 1024;
/// The longest full name, in bytes.
pub const MAX_FULL_NAME_BYTES: usize = 4096;
/// The most groups a user may have.
pub const MAX_GROUPS: usize = 128;
/// The longest group name, in bytes.
pub const MAX_GROUP_NAME_BYTES: usize = 1024;
/// The longest `hash`, `salt` or `hashAlgorithm`, in bytes (an Argon2 PHC string is ~100).
pub const MAX_HASH_FIELD_BYTES: usize = 1024;

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRecord {
    #[serde(alias = "LoginName")]
    pub login_name: String,
    #[serde(alias = "FullName", default, deserialize_with = "null_as_default")]
    pub full_name: String,
    #[serde(alias = "Salt", default, deserialize_with = "null_as_default")]
    pub salt: String,
    #[serde(alias = "Hash")]
    pub hash: String,
    #[serde(alias = "HashAlgorithm", default = "legacy_algorithm")]
    pub hash_algorithm: String,
    #[serde(alias = "Disabled", default, deserialize_with = "null_as_default")]
    pub disabled: bool,
    #[serde(alias = "Groups", default, deserialize_with = "null_as_default")]
    pub groups: Vec<String>,
}

fn legacy_algorithm() -> String {
    HASH_ALGORITHM_RFC2898.to_owned()
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Why bytes are not a user record, or a name is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("a user record of {0} bytes is over the limit of {MAX_USER_RECORD_BYTES}")]
    TooLarge(usize),
    #[error("not a user record: {0}")]
    Malformed(String),
    #[error("{0}")]
    Invalid(String),
}

/// Checks a login name, full name and groups against the bounds above (a login must also
/// be non-empty and hold no control character).
pub fn check_fields(login: &str, full_name: &str, groups: &[String]) -> Result<(), RecordError> {
    let invalid = |s: String| Err(RecordError::Invalid(s));
    if login.is_empty() {
        return invalid("the login name is empty".into());
    }
    if login.len() > MAX_LOGIN_NAME_BYTES {
        return invalid(format!(
            "the login name is over {MAX_LOGIN_NAME_BYTES} bytes"
        ));
    }
    if login.chars().any(char::is_control) {
        return invalid("the login name holds a control character".into());
    }
    if full_name.len() > MAX_FULL_NAME_BYTES {
        return invalid(format!("the full name is over {MAX_FULL_NAME_BYTES} bytes"));
    }
    if groups.len() > MAX_GROUPS {
        return invalid(format!("more than {MAX_GROUPS} groups"));
    }
    if groups.iter().any(|g| g.len() > MAX_GROUP_NAME_BYTES) {
        return invalid(format!("a group name is over {MAX_GROUP_NAME_BYTES} bytes"));
    }
    Ok(())
}

impl UserRecord {
    /// The record as the JSON stored.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a user record always serialises")
    }

    /// Decodes a stored record; any input gives a record within the bounds or an error.
    pub fn decode(data: &[u8]) -> Result<UserRecord, RecordError> {
        if data.len() > MAX_USER_RECORD_BYTES {
            return Err(RecordError::TooLarge(data.len()));
        }
        let record: UserRecord =
            serde_json::from_slice(data).map_err(|e| RecordError::Malformed(e.to_string()))?;
        check_fields(&record.login_name, &record.full_name, &record.groups)?;
        for (name, field) in [
            ("hash", &record.hash),
            ("salt", &record.salt),
            ("hashAlgorithm", &record.hash_algorithm),
        ] {
            if field.len() > MAX_HASH_FIELD_BYTES {
                return Err(RecordError::Invalid(format!(
                    "{name} is over {MAX_HASH_FIELD_BYTES} bytes"
                )));
            }
        }
        Ok(record)
    }

    /// The record as an event of `event_type` ([`USER_CREATED`] or [`USER_UPDATED`]).
    pub fn to_event(&self, event_type: &str) -> ProposedEvent {
        json_event(event_type, self.encode())
    }
}

/// `$user-<login>`.
pub fn user_stream_name(login: &str) -> String {
    format!("{USER_STREAM_PREFIX}{login}")
}

/// The `$User` event for `$users`: the login as plain text, with an id derived from the
/// login (`id`), so that appending it again is recognised as a retry and writes nothing.
pub fn user_index_event(login: &str, id: uuid::Uuid) -> ProposedEvent {
    ProposedEvent {
        id,
        event_type: USER_INDEX_EVENT.to_owned(),
        content_type: ContentType::Binary,
        custom_metadata: Bytes::new(),
        data: Bytes::copy_from_slice(login.as_bytes()),
    }
}

/// The login a `$User` event names, if it is one within the bounds.
pub fn decode_user_index(data: &[u8]) -> Option<&str> {
    let login = std::str::from_utf8(data).ok()?;
    check_fields(login, "", &[]).ok()?;
    Some(login)
}

#[derive(Serialize, Deserialize)]
struct PasswordChangedData {
    #[serde(rename = "LoginName", alias = "loginName")]
    login_name: String,
}

/// The `$PasswordChanged` notification for `login`.
pub fn password_changed_event(login: &str) -> ProposedEvent {
    let data = serde_json::to_vec(&PasswordChangedData {
        login_name: login.to_owned(),
    })
    .expect("a notification always serialises");
    json_event(PASSWORD_CHANGED, data)
}

/// The login a `$PasswordChanged` notification names, if it is one within the bounds.
pub fn decode_password_changed(data: &[u8]) -> Option<String> {
    if data.len() > MAX_USER_RECORD_BYTES {
        return None;
    }
    let parsed: PasswordChangedData = serde_json::from_slice(data).ok()?;
    check_fields(&parsed.login_name, "", &[]).ok()?;
    Some(parsed.login_name)
}

fn json_event(event_type: &str, data: Vec<u8>) -> ProposedEvent {
    ProposedEvent {
        id: stele_cluster::determinism::new_uuid(),
        event_type: event_type.to_owned(),
        content_type: ContentType::Json,
        custom_metadata: Bytes::new(),
        data: Bytes::from(data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record() -> UserRecord {
        UserRecord {
            login_name: "ouro".into(),
            full_name: "Ouro Boros".into(),
            salt: "c2FsdA".into(),
            hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA".into(),
            hash_algorithm: HASH_ALGORITHM_ARGON2ID.into(),
            disabled: false,
            groups: vec!["$ops".into()],
        }
    }

    #[test]
    fn a_record_round_trips_in_camel_case() {
        let bytes = record().encode();
        let text = String::from_utf8(bytes.clone()).unwrap();
        for key in [
            "loginName",
            "fullName",
            "salt",
            "hash",
            "hashAlgorithm",
            "disabled",
        ] {
            assert!(text.contains(&format!("\"{key}\"")), "{key} in {text}");
        }
        assert_eq!(UserRecord::decode(&bytes).unwrap(), record());
    }

    #[test]
    fn pascal_case_nulls_and_a_missing_algorithm_are_read() {
        let data = br#"{"LoginName":"x","FullName":null,"Salt":"s","Hash":"h","Disabled":true,"Groups":null}"#;
        let record = UserRecord::decode(data).unwrap();
        assert_eq!(record.login_name, "x");
        assert_eq!(record.hash_algorithm, HASH_ALGORITHM_RFC2898);
        assert!(record.disabled && record.groups.is_empty() && record.full_name.is_empty());
    }

    #[test]
    fn oversized_and_out_of_bounds_records_are_refused() {
        let big = vec![b' '; MAX_USER_RECORD_BYTES + 1];
        assert_eq!(
            UserRecord::decode(&big),
            Err(RecordError::TooLarge(big.len()))
        );
        let mut many = record();
        many.groups = vec!["g".into(); MAX_GROUPS + 1];
        assert!(matches!(
            UserRecord::decode(&many.encode()),
            Err(RecordError::Invalid(_))
        ));
        let mut empty = record();
        empty.login_name.clear();
        assert!(UserRecord::decode(&empty.encode()).is_err());
    }

    #[test]
    fn notifications_and_index_events_decode() {
        let event = password_changed_event("ouro");
        assert_eq!(&event.data[..], br#"{"LoginName":"ouro"}"#);
        assert_eq!(
            decode_password_changed(&event.data).as_deref(),
            Some("ouro")
        );
        assert_eq!(
            decode_password_changed(br#"{"loginName":"x"}"#).as_deref(),
            Some("x")
        );
        assert_eq!(decode_user_index(b"ouro"), Some("ouro"));
        assert_eq!(decode_user_index(b"\xff"), None);
        assert_eq!(decode_user_index(b""), None);
    }

    proptest! {
        #[test]
        fn decoding_any_bytes_never_panics_and_respects_the_bounds(
            data in proptest::collection::vec(any::<u8>(), 0..2048)
        ) {
            if let Ok(record) = UserRecord::decode(&data) {
                prop_assert!(check_fields(&record.login_name, &record.full_name, &record.groups).is_ok());
                prop_assert!(record.hash.len() <= MAX_HASH_FIELD_BYTES);
            }
            let _ = decode_password_changed(&data);
            let _ = decode_user_index(&data);
        }

        #[test]
        fn decoding_json_shaped_input_never_panics(
            login in ".{0,40}", full in ".{0,40}", groups in proptest::collection::vec(".{0,10}", 0..5),
            disabled in any::<bool>(), cut in 0usize..400,
        ) {
            let record = UserRecord { login_name: login, full_name: full, salt: String::new(),
                hash: "h".into(), hash_algorithm: HASH_ALGORITHM_ARGON2ID.into(), disabled, groups };
            let bytes = record.encode();
            match UserRecord::decode(&bytes) {
                Ok(decoded) => prop_assert_eq!(decoded, record),
                Err(_) => prop_assert!(check_fields(&record.login_name, &record.full_name, &record.groups).is_err()),
            }
            let _ = UserRecord::decode(&bytes[..cut.min(bytes.len())]);
        }
    }
}
