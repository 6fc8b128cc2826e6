//! stele-proto (in progress).
