//! Who is asking, and what they may do (issue 13): the principal a request runs as, stream
//! access control lists and the default operation policy. Pure decisions, no I/O: the API
//! layer authenticates and asks here; the services crate reads ACLs and settings from the log.
//!
//! See `../shared/PROTOCOL-OPS.md` §4 for EventStoreDB's rules these follow.

mod principal;

pub use principal::{Principal, ADMINS_GROUP, OPS_GROUP};
