//! stele-api (in progress).
