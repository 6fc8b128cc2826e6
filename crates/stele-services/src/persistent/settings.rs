//! A group's settings, with EventStoreDB's defaults and checks.

use serde::{Deserialize, Serialize};

/// Where a group without a checkpoint starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartFrom {
    /// The first event.
    Start,
    /// Only events written after the group started.
    End,
    /// This revision (stream) or position (`$all`), inclusive.
    At(u64),
}

/// Which consumer gets a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Strategy {
    /// The first consumer until it is full, then the next.
    DispatchToSingle,
    /// Each consumer in turn.
    RoundRobin,
    /// Events of one stream to the same consumer.
    Pinned,
    /// Events with one `$correlationId` (in their metadata) to the same consumer; by stream
    /// when there is none.
    PinnedByCorrelation,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::DispatchToSingle => "DispatchToSingle",
            Strategy::RoundRobin => "RoundRobin",
            Strategy::Pinned => "Pinned",
            Strategy::PinnedByCorrelation => "PinnedByCorrelation",
        }
    }

    /// The names clients send (case-insensitive, as EventStoreDB matches them).
    pub fn from_name(name: &str) -> Option<Strategy> {
        [
            Strategy::DispatchToSingle,
            Strategy::RoundRobin,
            Strategy::Pinned,
            Strategy::PinnedByCorrelation,
        ]
        .into_iter()
        .find(|s| s.name().eq_ignore_ascii_case(name))
    }
}

/// Every setting of a group (PROTOCOL.md §7, `CreateReq.Settings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub start_from: StartFrom,
    pub resolve_links: bool,
    pub extra_statistics: bool,
    /// A message not acknowledged within this is retried.
    pub message_timeout_ms: u64,
    /// A message retried more often than this is parked.
    pub max_retry_count: u32,
    pub live_buffer_size: u32,
    /// Events read from the log at a time.
    pub read_batch_size: u32,
    /// Events read ahead of the consumers, at most.
    pub history_buffer_size: u32,
    /// How often the group considers writing a checkpoint.
    pub checkpoint_after_ms: u64,
    /// A timed checkpoint is written only after at least this many messages were handled.
    pub min_checkpoint_count: u32,
    /// A checkpoint is written as soon as this many messages were handled.
    pub max_checkpoint_count: u32,
    /// Consumers at once; 0 is no limit.
    pub max_subscriber_count: u32,
    pub consumer_strategy: Strategy,
}

impl Default for Settings {
    /// EventStoreDB's defaults (the official clients send the same).
    fn default() -> Self {
        Settings {
            start_from: StartFrom::End,
            resolve_links: false,
            extra_statistics: false,
            message_timeout_ms: 30_000,
            max_retry_count: 10,
            live_buffer_size: 500,
            read_batch_size: 20,
            history_buffer_size: 500,
            checkpoint_after_ms: 2_000,
            min_checkpoint_count: 10,
            max_checkpoint_count: 1_000,
            max_subscriber_count: 0,
            consumer_strategy: Strategy::RoundRobin,
        }
    }
}

impl Settings {
    /// Refuses settings a group cannot run with (a buffer or batch of zero events); the
    /// message names the setting.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("ReadBatchSize", self.read_batch_size),
            ("LiveBufferSize", self.live_buffer_size),
            ("HistoryBufferSize", self.history_buffer_size),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(format!("{name} must be greater than 0"));
            }
        }
        // Checkpoint bounds in any order are accepted, as EventStoreDB accepts them: each
        // is its own trigger (a count reached, or a timed check after at least the minimum).
        Ok(())
    }

    /// Events the group reads ahead of its consumers, at most.
    pub(crate) fn read_ahead(&self) -> usize {
        self.history_buffer_size
            .max(self.live_buffer_size)
            .max(self.read_batch_size) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategy_names_round_trip_case_insensitively() {
        for s in [
            Strategy::DispatchToSingle,
            Strategy::RoundRobin,
            Strategy::Pinned,
            Strategy::PinnedByCorrelation,
        ] {
            assert_eq!(Strategy::from_name(s.name()), Some(s));
            assert_eq!(Strategy::from_name(&s.name().to_lowercase()), Some(s));
        }
        assert_eq!(Strategy::from_name("Random"), None);
    }

    #[test]
    fn validation_names_the_bad_setting() {
        assert!(Settings::default().validate().is_ok());
        let zero_batch = Settings {
            read_batch_size: 0,
            ..Settings::default()
        };
        assert!(zero_batch.validate().unwrap_err().contains("ReadBatchSize"));
    }

    /// A maximum checkpoint count below the minimum was refused; EventStoreDB accepts
    /// such bounds (and the official clients' suites create groups with them).
    #[test]
    fn checkpoint_bounds_in_any_order_are_accepted() {
        for (min, max) in [(10, 5), (0, 0), (1, 1), (1000, 1)] {
            let settings = Settings {
                min_checkpoint_count: min,
                max_checkpoint_count: max,
                ..Settings::default()
            };
            assert_eq!(settings.validate(), Ok(()), "min {min}, max {max}");
        }
    }

    #[test]
    fn settings_survive_json() {
        let settings = Settings {
            start_from: StartFrom::At(42),
            consumer_strategy: Strategy::PinnedByCorrelation,
            ..Settings::default()
        };
        let json = serde_json::to_string(&settings).unwrap();
        assert_eq!(serde_json::from_str::<Settings>(&json).unwrap(), settings);
    }
}
