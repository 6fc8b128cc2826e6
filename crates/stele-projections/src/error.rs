//! What a projections request can fail with; `stele-api` maps each to EventStoreDB's wire
//! answers (gRPC statuses and texts, HTTP statuses) in one place per protocol.

/// A failed projections request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectionError {
    /// No projection of that name (NOT_FOUND `Projection '<name>' not found`).
    #[error("Projection '{0}' not found")]
    NotFound(String),
    /// Create with a name in use (`…received Conflict instead`).
    #[error("Duplicate projection names : {0}")]
    Conflict(String),
    /// The manager refused (`…received OperationFailed instead`): not stopped, a system
    /// projection, no name, a write that failed.
    #[error("{0}")]
    OperationFailed(String),
    /// A continuous or one-time projection created or updated by a user who is neither in
    /// `$admins` nor in `$ops` (`…received NotAuthorized instead`).
    #[error("Not authorized to run a continuous or one-time projection")]
    NotAuthorized,
    /// The request's options cannot go together (track without emit): EventStoreDB throws
    /// in its handler (`Exception was thrown by handler.`).
    #[error("{0}")]
    InvalidRequest(String),
    /// RestartSubsystem while the subsystem is not in a state it can restart from.
    #[error("Projection Subsystem cannot be restarted as it is in the wrong state: {0}")]
    WrongState(String),
    /// This node does not lead (projections run on the leader).
    #[error("not the leader")]
    NotLeader { leader: Option<(String, u16)> },
    /// The node is starting or the subsystem is loading.
    #[error("the projections subsystem is not ready")]
    NotReady,
    /// Projections are not run on this node (`RunProjections: None`).
    #[error("projections are not run on this node (RunProjections is None)")]
    Disabled,
}
