//! What the projections subsystem is asked and answers: the requests of EventStoreDB's
//! Projections service, independent of any wire (PROTOCOL-OPS.md §1).

/// `RunProjections`: which projections run on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunProjections {
    /// No subsystem: the Projections service answers UNIMPLEMENTED.
    #[default]
    None,
    /// Only the system projections (names starting with `$`) run.
    System,
    /// System and user projections.
    All,
}

/// How the subsystem runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub run: RunProjections,
    /// Enable the system projections when the subsystem starts (`StartStandardProjections`).
    pub start_standard_projections: bool,
    /// Threads that run projection handlers (`ProjectionThreads`).
    pub threads: usize,
    /// Budgets of user JavaScript (`ProjectionExecutionTimeout`, `ProjectionCompilationTimeout`).
    pub js_limits: crate::js::Limits,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            run: RunProjections::None,
            start_standard_projections: false,
            threads: 3,
            js_limits: crate::js::Limits::default(),
        }
    }
}

/// `Create`'s mode and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateMode {
    /// The server names it (a UUID).
    OneTime,
    Transient {
        name: String,
    },
    Continuous {
        name: String,
        emit_enabled: bool,
        track_emitted_streams: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    pub mode: CreateMode,
    pub query: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateRequest {
    pub name: String,
    pub query: String,
    /// `None`: emit stays as it is.
    pub emit_enabled: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRequest {
    pub name: String,
    pub delete_emitted_streams: bool,
    /// Stored by EventStoreDB and never acted on: the result stream survives.
    pub delete_state_stream: bool,
    pub delete_checkpoint_stream: bool,
}

/// Which projections `Statistics` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Name(String),
    All,
    Transient,
    Continuous,
    OneTime,
}

/// One projection's statistics (`StatisticsResp.Details`, PROTOCOL-OPS.md §1.3).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Statistics {
    pub core_processing_time: i64,
    pub version: i64,
    pub epoch: i64,
    pub effective_name: String,
    pub writes_in_progress: i32,
    pub reads_in_progress: i32,
    pub partitions_cached: i32,
    pub status: String,
    pub state_reason: String,
    pub name: String,
    pub mode: String,
    pub position: String,
    pub progress: f32,
    pub last_checkpoint: String,
    pub events_processed_after_restart: i64,
    pub checkpoint_status: String,
    pub buffered_events: i64,
    pub write_pending_events_before_checkpoint: i32,
    pub write_pending_events_after_checkpoint: i32,
}

/// A projection's definition as `GET /projection/<name>/query` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryInfo {
    pub name: String,
    pub query: String,
    pub mode: crate::definition::Mode,
    pub emit_enabled: bool,
    pub track_emitted_streams: bool,
}
