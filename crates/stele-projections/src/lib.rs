//! Projections (issue 14): see ARCHITECTURE.md.

pub mod api;
pub mod definition;
pub mod error;
pub mod js;
pub mod names;
pub mod query;
pub mod subsystem;

pub use api::{
    Config, CreateMode, CreateRequest, DeleteRequest, QueryInfo, RunProjections, Selector,
    Statistics, UpdateRequest,
};
pub use error::ProjectionError;
pub use subsystem::Projections;
