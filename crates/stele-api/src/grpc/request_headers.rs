//! Request headers the EventStoreDB clients send (PROTOCOL.md §10) and how they are read.
//!
//! `requires-leader: true|false` asks that a follower refuse the call with NotLeader. The Rust
//! client sends `true` when it prefers the leader, the Python client sends it on every call,
//! the Node client only sends `true`. It is parsed like .NET's `bool.TryParse`: `true` in any
//! letter case (surrounding white space ignored) is true, anything else or nothing is false.
//!
//! `Node` takes no such parameter yet: today a node answers NotLeader from its own knowledge
//! of the cluster (and a single node is always the leader), so the services parse the header
//! and do not pass it on. When followers serve reads, the read calls should take it.
//!
//! `connection-name` and `authorization` are accepted and ignored: an insecure server must
//! accept anonymous calls and any credentials (PROTOCOL.md §10).

use tonic::metadata::MetadataMap;

pub const REQUIRES_LEADER: &str = "requires-leader";
pub const CONNECTION_NAME: &str = "connection-name";

/// Whether the call carries `requires-leader: true`.
pub fn requires_leader(headers: &MetadataMap) -> bool {
    headers
        .get(REQUIRES_LEADER)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: Option<&'static str>) -> MetadataMap {
        let mut map = MetadataMap::new();
        if let Some(value) = value {
            map.insert(REQUIRES_LEADER, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn parses_like_dotnet_bool() {
        assert!(requires_leader(&headers(Some("true"))));
        assert!(requires_leader(&headers(Some("True"))));
        assert!(requires_leader(&headers(Some(" TRUE "))));
        assert!(!requires_leader(&headers(Some("false"))));
        assert!(!requires_leader(&headers(Some("1"))));
        assert!(!requires_leader(&headers(Some("yes"))));
        assert!(!requires_leader(&headers(None)));
    }
}
