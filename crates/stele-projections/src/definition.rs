//! A projection's persisted definition: the `$ProjectionUpdated` event of
//! `$projections-<name>`, as JSON in EventStoreDB's spirit (camelCase keys).

use serde::{Deserialize, Serialize};
use stele_core::access::Principal;

/// How a projection runs (PROTOCOL-OPS.md §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mode {
    /// Runs until disabled: catches up, then follows new events; checkpoints.
    Continuous,
    /// Runs to the end of the log, writes its results and ends `Completed`.
    OneTime,
    /// A query: as one-time, without checkpoints or emits.
    Transient,
}

impl Mode {
    /// The name statistics show.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Continuous => "Continuous",
            Mode::OneTime => "OneTime",
            Mode::Transient => "Transient",
        }
    }
}

/// What runs the query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HandlerType {
    /// User JavaScript.
    #[serde(rename = "JS")]
    Js,
    /// One of the system projections, in native code.
    #[serde(rename = "native")]
    Native,
}

/// Who a projection runs as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum RunAs {
    System,
    Anonymous,
    User { name: String, groups: Vec<String> },
}

impl RunAs {
    pub fn of(principal: &Principal) -> RunAs {
        match principal {
            Principal::System => RunAs::System,
            Principal::Anonymous => RunAs::Anonymous,
            Principal::User { name, groups } => RunAs::User {
                name: name.clone(),
                groups: groups.clone(),
            },
        }
    }

    pub fn principal(&self) -> Principal {
        match self {
            RunAs::System => Principal::System,
            RunAs::Anonymous => Principal::Anonymous,
            RunAs::User { name, groups } => Principal::User {
                name: name.clone(),
                groups: groups.clone(),
            },
        }
    }
}

/// Per-projection checkpoint and write settings (defaults from EventStoreDB's docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Settings {
    /// A checkpoint after this many handled events.
    pub checkpoint_handled_threshold: u64,
    /// A checkpoint after this many bytes of unhandled events.
    pub checkpoint_unhandled_bytes_threshold: u64,
    /// At most one checkpoint per this many milliseconds (0: no wait).
    pub checkpoint_after_ms: u64,
    /// Events read ahead of the handler, at most.
    pub pending_events_threshold: u64,
    /// Events per emitted write, at most.
    pub max_write_batch_length: u64,
    /// Emitted writes in flight at once, at most (0: unbounded, EventStoreDB's default;
    /// Stele still bounds them by [`crate::processor::MAX_WRITES_IN_FLIGHT`]).
    pub max_allowed_writes_in_flight: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            checkpoint_handled_threshold: 4000,
            checkpoint_unhandled_bytes_threshold: 10 * 1024 * 1024,
            checkpoint_after_ms: 0,
            pending_events_threshold: 5000,
            max_write_batch_length: 500,
            max_allowed_writes_in_flight: 0,
        }
    }
}

/// The persisted definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Definition {
    pub name: String,
    /// The projection's id: the event number of its `$ProjectionCreated` in the registry.
    pub id: u64,
    pub mode: Mode,
    pub handler_type: HandlerType,
    pub query: String,
    pub enabled: bool,
    pub emit_enabled: bool,
    pub track_emitted_streams: bool,
    pub checkpoints_enabled: bool,
    /// Raised by every update and reset.
    pub version: u64,
    /// Raised to the version by a reset: checkpoints and emits of an older epoch no longer
    /// count.
    pub epoch: u64,
    pub run_as: RunAs,
    #[serde(default)]
    pub settings: Settings,
}

impl Definition {
    /// The system projections run native code and may not be deleted.
    pub fn is_system(&self) -> bool {
        self.name.starts_with('$')
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a definition serializes")
    }

    pub fn decode(data: &[u8]) -> Result<Definition, String> {
        serde_json::from_slice(data).map_err(|e| format!("a projection definition: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_round_trip() {
        let definition = Definition {
            name: "counter".into(),
            id: 7,
            mode: Mode::Continuous,
            handler_type: HandlerType::Js,
            query: "fromAll()".into(),
            enabled: true,
            emit_enabled: true,
            track_emitted_streams: false,
            checkpoints_enabled: true,
            version: 3,
            epoch: 2,
            run_as: RunAs::User {
                name: "ops".into(),
                groups: vec!["$ops".into()],
            },
            settings: Settings::default(),
        };
        let decoded = Definition::decode(&definition.encode()).unwrap();
        assert_eq!(decoded, definition);
        assert!(String::from_utf8(definition.encode())
            .unwrap()
            .contains(r#""handlerType":"JS""#));
    }
}
