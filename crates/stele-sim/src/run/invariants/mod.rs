//! The properties every run checks, one file each (as openraft's `tests-turmoil/src/invariants/`
//! does): state-machine safety and quorum while faults run, durability across restarts, and
//! convergence after healing. The history check of acknowledged appends is
//! `stele_testkit::history`, shared with the real-process tests.

use super::*;

mod convergence;
mod durable_prefix;
mod leaderless;
mod quorum;
mod state_machine_safety;

pub(crate) use convergence::*;
pub(crate) use durable_prefix::*;
pub(crate) use leaderless::*;
pub(crate) use quorum::*;
pub(crate) use state_machine_safety::*;
