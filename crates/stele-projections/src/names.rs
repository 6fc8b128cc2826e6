//! The streams and event types projections use, named as EventStoreDB names them
//! (PROTOCOL-OPS.md §2.5).

/// The registry: `$ProjectionsInitialized`, then `$ProjectionCreated` / `$ProjectionDeleted`.
pub const REGISTRY_STREAM: &str = "$projections-$all";
pub const INITIALIZED: &str = "$ProjectionsInitialized";
pub const CREATED: &str = "$ProjectionCreated";
pub const DELETED: &str = "$ProjectionDeleted";
/// The event type of a persisted definition in `$projections-<name>`.
pub const UPDATED: &str = "$ProjectionUpdated";
/// The event type of a checkpoint in `$projections-<name>-checkpoint`.
pub const CHECKPOINT: &str = "$ProjectionCheckpoint";
/// The event type of a partition's checkpoint.
pub const PARTITION_CHECKPOINT: &str = "$Checkpoint";
pub const RESULT: &str = "Result";
pub const PARTITION: &str = "$partition";
pub const STREAM_TRACKED: &str = "$StreamTracked";
/// A link to an event: data `<revision>@<stream>`.
pub const LINK: &str = "$>";
/// A link to a stream: data = the stream's name.
pub const STREAM_LINK: &str = "$@";

/// `$projections-<name>`: the definition.
pub fn definition_stream(name: &str) -> String {
    format!("$projections-{name}")
}

pub fn checkpoint_stream(name: &str) -> String {
    format!("$projections-{name}-checkpoint")
}

pub fn partition_checkpoint_stream(name: &str, partition: &str) -> String {
    format!("$projections-{name}-{partition}-checkpoint")
}

/// The root result stream: `resultStreamName` / `outputTo` when given.
pub fn result_stream(name: &str, configured: Option<&str>) -> String {
    match configured {
        Some(stream) => stream.to_owned(),
        None => format!("$projections-{name}-result"),
    }
}

/// A partition's result stream: the `outputTo` pattern with `{0}` replaced, when given.
pub fn partition_result_stream(name: &str, partition: &str, pattern: Option<&str>) -> String {
    match pattern {
        Some(pattern) => pattern.replace("{0}", partition),
        None => format!("$projections-{name}-{partition}-result"),
    }
}

pub fn partitions_stream(name: &str) -> String {
    format!("$projections-{name}-partitions")
}

pub fn emitted_streams_stream(name: &str) -> String {
    format!("$projections-{name}-emittedstreams")
}
