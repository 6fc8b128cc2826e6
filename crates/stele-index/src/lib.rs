//! stele-index (in progress).
