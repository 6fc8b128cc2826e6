//! stele-log (in progress).
