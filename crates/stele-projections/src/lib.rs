//! Projections (issue 14): see ARCHITECTURE.md.

pub mod js;
pub mod query;
