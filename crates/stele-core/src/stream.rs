//! Stream names and the `$` conventions of EventStoreDB: `$`-prefixed system streams,
//! `$$<stream>` metadata streams.

use serde::{Deserialize, Serialize};

/// A validated stream name: non-empty UTF-8 of at most [`MAX_STREAM_NAME_BYTES`] (not
/// counting a `$$` metadata prefix). `$all` is not a stream and is rejected here.
///
/// Names that arrive by deserialisation (from the log or a peer) skip [`StreamName::new`];
/// whatever takes them from outside checks them again with [`StreamName::check`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StreamName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamNameError {
    #[error("stream name is empty")]
    Empty,
    #[error("stream name is not valid UTF-8")]
    NotUtf8,
    #[error("'$all' is not a stream that can be written to")]
    All,
    #[error("stream name is {bytes} bytes long; the limit is {MAX_STREAM_NAME_BYTES}")]
    TooLong { bytes: usize },
}

/// The longest stream name, in bytes of UTF-8, not counting a `$$` metadata prefix.
/// EventStoreDB names no limit of its own (a name is bounded only by its log record); every
/// event record carries its stream's name and the index keeps it, so an unbounded name lets one
/// small request cost far more memory and disk than it sent (issue 11, item 6). 4 KiB holds
/// the long URIs some applications use as stream names.
pub const MAX_STREAM_NAME_BYTES: usize = 4096;

/// The prefix of a metadata stream.
pub const METADATA_PREFIX: &str = "$$";

impl StreamName {
    pub fn new(name: impl Into<String>) -> Result<StreamName, StreamNameError> {
        let name = StreamName(name.into());
        name.check()?;
        Ok(name)
    }

    /// Checks the rules [`StreamName::new`] enforces, for a name that was deserialised.
    pub fn check(&self) -> Result<(), StreamNameError> {
        let name = &self.0;
        if name.is_empty() {
            return Err(StreamNameError::Empty);
        }
        if name == "$all" {
            return Err(StreamNameError::All);
        }
        let counted = name.strip_prefix(METADATA_PREFIX).unwrap_or(name);
        if counted.len() > MAX_STREAM_NAME_BYTES {
            return Err(StreamNameError::TooLong {
                bytes: counted.len(),
            });
        }
        Ok(())
    }

    /// The name's length in bytes.
    pub fn len_bytes(&self) -> usize {
        self.0.len()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<StreamName, StreamNameError> {
        let name = std::str::from_utf8(bytes).map_err(|_| StreamNameError::NotUtf8)?;
        StreamName::new(name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `$`-prefixed streams belong to the system.
    pub fn is_system(&self) -> bool {
        self.0.starts_with('$')
    }

    /// `$$X` holds the metadata of `X`.
    pub fn is_metadata(&self) -> bool {
        self.0.starts_with(METADATA_PREFIX)
    }

    /// The stream whose metadata this stream holds, for `$$X`.
    pub fn metadata_of(&self) -> Option<StreamName> {
        self.0
            .strip_prefix(METADATA_PREFIX)
            .filter(|s| !s.is_empty())
            .map(|s| StreamName(s.to_owned()))
    }

    /// `$$X` for `X`.
    pub fn metadata_stream(&self) -> StreamName {
        StreamName(format!("{METADATA_PREFIX}{}", self.0))
    }
}

impl std::fmt::Display for StreamName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_names() {
        assert_eq!(StreamName::new(""), Err(StreamNameError::Empty));
        assert_eq!(StreamName::new("$all"), Err(StreamNameError::All));
        assert_eq!(
            StreamName::from_bytes(&[0xff, 0xfe]),
            Err(StreamNameError::NotUtf8)
        );
        let s = StreamName::new("orders-1").unwrap();
        assert!(!s.is_system());
        assert_eq!(s.metadata_stream().as_str(), "$$orders-1");
        assert_eq!(s.metadata_stream().metadata_of(), Some(s));
        assert!(StreamName::new("$$").unwrap().metadata_of().is_none());
    }

    #[test]
    fn names_are_bounded_and_their_metadata_streams_fit() {
        let longest = "x".repeat(MAX_STREAM_NAME_BYTES);
        let name = StreamName::new(longest.clone()).unwrap();
        assert_eq!(name.metadata_stream().check(), Ok(()));
        assert_eq!(
            StreamName::new(format!("{longest}y")),
            Err(StreamNameError::TooLong {
                bytes: MAX_STREAM_NAME_BYTES + 1
            })
        );
        // A deserialised name is checked again by whoever takes it from outside.
        let smuggled: StreamName = serde_json::from_str("\"\"").unwrap();
        assert_eq!(smuggled.check(), Err(StreamNameError::Empty));
    }
}
