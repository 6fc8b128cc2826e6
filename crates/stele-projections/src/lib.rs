//! Projections (issue 14): the subsystem that runs them on the leader ([`Projections`]),
//! the native system projections and user projections in JavaScript. See ARCHITECTURE.md.

pub mod api;
pub mod definition;
pub mod error;
mod handler;
pub mod js;
mod js_handler;
pub mod names;
mod native;
mod processor;
pub mod query;
mod store;
mod subsystem;
mod workers;
mod writer;

pub use api::{
    Config, CreateMode, CreateRequest, DeleteRequest, QueryInfo, RunProjections, Selector,
    Statistics, UpdateRequest,
};
pub use error::ProjectionError;
pub use native::SYSTEM_PROJECTIONS;
pub use subsystem::Projections;
