//! The cluster layer: the openraft adapter (log storage over the chunk log, the state machine
//! over the index), node states, and [`Node`], the facade the client API calls.

pub mod node;
pub mod state;

pub use node::{
    AllReadRequest, AllStart, AppendOutcome, DeleteOutcome, Direction, Node, NodeStatus,
    ReadError, StreamReadRequest, StreamReadResult, StreamStart, WriteError,
};
pub use state::VNodeState;
