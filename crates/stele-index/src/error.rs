//! The one error type of the index. Everything here is fatal to the caller's operation: the
//! index is derived state, so a store error or a value that does not decode means "stop and
//! rebuild from the log", never "retry with other input".

use std::path::PathBuf;

/// A failure of the embedded store or of the data in it.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("opening index at {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
    #[error("opening in-memory index")]
    OpenInMemory {
        #[source]
        source: redb::Error,
    },
    /// The file was written by a build with another layout. The index is derived: delete the
    /// file and the node rebuilds it from the log.
    #[error(
        "index at {} has format version {found}, this build reads version {expected}; \
         delete it to rebuild it from the log",
        path.display()
    )]
    FormatVersion {
        path: PathBuf,
        found: u64,
        expected: u64,
    },
    /// The store failed while doing `operation` (I/O, a full disk, a corrupt page).
    #[error("index store failed while {operation}")]
    Store {
        operation: &'static str,
        #[source]
        source: redb::Error,
    },
    /// A value in `table` under `key` does not decode.
    #[error("corrupt index: {table} entry for {key} does not decode")]
    CorruptValue {
        table: &'static str,
        key: String,
        #[source]
        source: postcard::Error,
    },
    /// A stream id is used by events but has no name: the tables disagree.
    #[error("corrupt index: stream id {stream_id} has no name")]
    UnknownStreamId { stream_id: u64 },
    /// A stored stream name is not a valid stream name.
    #[error("corrupt index: stream id {stream_id} has an invalid name")]
    InvalidStreamName {
        stream_id: u64,
        #[source]
        source: stele_core::StreamNameError,
    },
}

impl IndexError {
    /// Wraps a store error with what the index was doing.
    pub(crate) fn store<E: Into<redb::Error>>(operation: &'static str) -> impl FnOnce(E) -> Self {
        move |e| IndexError::Store {
            operation,
            source: e.into(),
        }
    }
}
