//! Stream metadata (`$$<stream>` events of type `$metadata`): the reserved keys that shape
//! what reads return. The ACL (`$acl`) is parsed from the same event's JSON by
//! [`StreamAcl::from_metadata_json`](crate::access::StreamAcl::from_metadata_json), not kept
//! here: the index stores `StreamMetadata` with postcard (stele-index `schema.rs`), so a new
//! field would change its on-disk format and needs that crate's `FORMAT_VERSION` bumped.

use serde::{Deserialize, Serialize};

use crate::TICKS_PER_SECOND;

/// The event type of a stream metadata event.
pub const METADATA_EVENT_TYPE: &str = "$metadata";

/// The `$tb` a soft delete records in the stream's metadata: `Int64.MaxValue`, EventStoreDB's
/// "deleted stream" event number.
pub const SOFT_DELETED_TRUNCATE_BEFORE: u64 = i64::MAX as u64;

/// The metadata JSON `current` becomes with `$tb` set to `truncate_before`: every other key
/// is kept, as EventStoreDB keeps them when it soft-deletes and recreates a stream. Metadata
/// that is not a JSON object is replaced.
pub fn with_truncate_before(current: Option<&[u8]>, truncate_before: u64) -> Vec<u8> {
    let mut map = match current.map(serde_json::from_slice::<serde_json::Value>) {
        Some(Ok(serde_json::Value::Object(map))) => map,
        _ => serde_json::Map::new(),
    };
    map.insert("$tb".to_owned(), serde_json::Value::from(truncate_before));
    serde_json::to_vec(&serde_json::Value::Object(map)).expect("a JSON map always serialises")
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMetadata {
    /// `$maxCount`: only the newest N events are readable.
    pub max_count: Option<u64>,
    /// `$maxAge` in seconds: older events are not readable.
    pub max_age_secs: Option<u64>,
    /// `$tb`: events before this revision are not readable.
    pub truncate_before: Option<u64>,
}

impl StreamMetadata {
    /// Parses the reserved keys of a metadata event's JSON. Bad JSON or values of the wrong
    /// type give the empty metadata, as EventStoreDB ignores metadata it cannot parse.
    pub fn from_json(data: &[u8]) -> StreamMetadata {
        let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(data)
        else {
            return StreamMetadata::default();
        };
        let get = |key: &str| map.get(key).and_then(|v| v.as_u64());
        StreamMetadata {
            max_count: get("$maxCount"),
            max_age_secs: get("$maxAge"),
            truncate_before: get("$tb"),
        }
    }

    /// Whether `$tb` says "soft-deleted" (what a soft delete records).
    pub fn says_soft_deleted(&self) -> bool {
        self.truncate_before == Some(SOFT_DELETED_TRUNCATE_BEFORE)
    }

    /// The first revision a read may return, from `$tb` and `$maxCount`.
    pub fn first_visible_revision(&self, last_revision: u64, deleted_before: Option<u64>) -> u64 {
        let mut first = self
            .truncate_before
            .unwrap_or(0)
            .max(deleted_before.unwrap_or(0));
        if let Some(max_count) = self.max_count {
            first = first.max((last_revision + 1).saturating_sub(max_count));
        }
        first
    }

    /// Whether an event created at `created_ticks` is still readable at `now_ticks`.
    pub fn is_young_enough(&self, created_ticks: i64, now_ticks: i64) -> bool {
        match self.max_age_secs {
            Some(max_age) => {
                let age = max_age.min(i64::MAX as u64 / TICKS_PER_SECOND as u64) as i64;
                created_ticks >= now_ticks.saturating_sub(age * TICKS_PER_SECOND)
            }
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_reserved_keys() {
        let m = StreamMetadata::from_json(br#"{"$maxCount":3,"$maxAge":60,"$tb":2,"x":1}"#);
        assert_eq!(m.max_count, Some(3));
        assert_eq!(m.max_age_secs, Some(60));
        assert_eq!(m.truncate_before, Some(2));
        assert_eq!(
            StreamMetadata::from_json(b"not json"),
            StreamMetadata::default()
        );
    }

    #[test]
    fn an_acl_does_not_disturb_the_reserved_keys() {
        // Metadata that carries an `$acl` (well-formed or not) keeps its other keys, and the
        // ACL is read from the same bytes by the access module.
        let json = br#"{"$maxCount":3,"$acl":{"$r":"greg","$w":["greg","john"]}}"#;
        assert_eq!(StreamMetadata::from_json(json).max_count, Some(3));
        let (acl, ignored) = crate::access::StreamAcl::from_metadata_json(json);
        assert_eq!(acl.unwrap().read, Some(vec!["greg".to_owned()]));
        assert!(ignored.is_empty());
        let bad = br#"{"$maxCount":3,"$acl":{"$r":5}}"#;
        assert_eq!(StreamMetadata::from_json(bad).max_count, Some(3));
        assert_eq!(crate::access::StreamAcl::from_metadata_json(bad).0, None);
    }

    #[test]
    fn first_visible_revision_takes_the_strictest_rule() {
        let m = StreamMetadata {
            max_count: Some(3),
            truncate_before: Some(2),
            ..Default::default()
        };
        assert_eq!(m.first_visible_revision(9, None), 7);
        assert_eq!(m.first_visible_revision(3, None), 2);
        assert_eq!(m.first_visible_revision(9, Some(8)), 8);
        assert_eq!(StreamMetadata::default().first_visible_revision(9, None), 0);
    }

    #[test]
    fn max_age_hides_old_events() {
        let m = StreamMetadata {
            max_age_secs: Some(10),
            ..Default::default()
        };
        let now = 1_000 * TICKS_PER_SECOND;
        assert!(m.is_young_enough(now - 5 * TICKS_PER_SECOND, now));
        assert!(!m.is_young_enough(now - 11 * TICKS_PER_SECOND, now));
    }
}
