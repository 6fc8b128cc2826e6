//! Stream names and the `$` conventions of EventStoreDB: `$`-prefixed system streams,
//! `$$<stream>` metadata streams.

use serde::{Deserialize, Serialize};

/// A validated stream name: non-empty UTF-8. `$all` is not a stream and is rejected here.
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
}

/// The prefix of a metadata stream.
pub const METADATA_PREFIX: &str = "$$";

impl StreamName {
    pub fn new(name: impl Into<String>) -> Result<StreamName, StreamNameError> {
        let name = name.into();
        if name.is_empty() {
            return Err(StreamNameError::Empty);
        }
        if name == "$all" {
            return Err(StreamNameError::All);
        }
        Ok(StreamName(name))
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
}
