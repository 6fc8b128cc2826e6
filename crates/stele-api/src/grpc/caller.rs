//! Who is calling, and may they (issue 13): the principal the authentication layer
//! ([`crate::auth`]) put on the request, checked by the node's
//! [`AccessControl`]; a refusal becomes PERMISSION_DENIED `Access Denied` with
//! `exception: access-denied` (PROTOCOL-OPS.md §4.4), whoever the caller is.

use stele_core::access::{Operation, Principal, StreamAccess};
use stele_services::access::AccessControl;
use tonic::{Request, Status};

use super::status;

/// The caller of a request: the principal from the authentication layer, or anonymous
/// when there is none (fail closed).
pub fn principal<T>(request: &Request<T>) -> Principal {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .unwrap_or(Principal::Anonymous)
}

/// A caller and the node's access control.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub access: AccessControl,
}

impl Caller {
    pub fn of<T>(access: &AccessControl, request: &Request<T>) -> Caller {
        Caller {
            principal: principal(request),
            access: access.clone(),
        }
    }

    /// May the caller perform `operation`?
    pub fn may(&self, operation: Operation) -> Result<(), Status> {
        self.access
            .check_operation(&self.principal, operation)
            .map_err(|_| status::access_denied())
    }

    /// May the caller have `access` to `stream`?
    pub async fn may_access(&self, stream: &str, access: StreamAccess) -> Result<(), Status> {
        self.access
            .check_stream(&self.principal, stream, access)
            .await
            .map_err(|_| status::access_denied())
    }
}
