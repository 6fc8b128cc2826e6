//! The projections subsystem: the definitions and the running projections of the node,
//! while it leads. Being written.

use std::sync::Arc;

use stele_cluster::Node;
use stele_core::access::Principal;
use stele_services::access::AccessControl;

use crate::api::{
    Config, CreateRequest, DeleteRequest, QueryInfo, RunProjections, Selector, Statistics,
    UpdateRequest,
};
use crate::error::ProjectionError;

/// The node's projections; cheap to clone.
#[derive(Clone)]
pub struct Projections {
    inner: Arc<Inner>,
}

struct Inner {
    #[allow(dead_code)]
    node: Node,
    #[allow(dead_code)]
    access: AccessControl,
    config: Config,
}

impl Projections {
    /// Starts the supervisor (nothing runs with `RunProjections: None`).
    pub fn start(node: Node, access: AccessControl, config: Config) -> Projections {
        Projections {
            inner: Arc::new(Inner {
                node,
                access,
                config,
            }),
        }
    }

    /// Whether the subsystem runs (`RunProjections` is not `None`); when it does not, the
    /// Projections service is not served (UNIMPLEMENTED, as EventStoreDB).
    pub fn is_enabled(&self) -> bool {
        self.inner.config.run != RunProjections::None
    }

    /// Creates a projection and starts it; answers its name (made up for one-time).
    pub async fn create(
        &self,
        _request: CreateRequest,
        _caller: &Principal,
    ) -> Result<String, ProjectionError> {
        Err(ProjectionError::NotReady)
    }

    pub async fn update(
        &self,
        _request: UpdateRequest,
        _caller: &Principal,
    ) -> Result<(), ProjectionError> {
        Err(ProjectionError::NotReady)
    }

    pub async fn delete(&self, _request: DeleteRequest) -> Result<(), ProjectionError> {
        Err(ProjectionError::NotReady)
    }

    pub async fn statistics(
        &self,
        _selector: Selector,
    ) -> Result<Vec<Statistics>, ProjectionError> {
        Err(ProjectionError::NotReady)
    }

    /// Stops a projection: with a checkpoint (`Stopped`) or aborted (`Aborted`).
    pub async fn disable(&self, _name: &str, _write_checkpoint: bool) -> Result<(), ProjectionError> {
        Err(ProjectionError::NotReady)
    }

    pub async fn enable(&self, _name: &str) -> Result<(), ProjectionError> {
        Err(ProjectionError::NotReady)
    }

    pub async fn reset(&self, _name: &str) -> Result<(), ProjectionError> {
        Err(ProjectionError::NotReady)
    }

    /// A partition's state as JSON text (`""` for the root partition when it has none).
    pub async fn state(&self, _name: &str, _partition: &str) -> Result<String, ProjectionError> {
        Err(ProjectionError::NotReady)
    }

    /// A partition's result (the state after `transformBy`/`filterBy`) as JSON text.
    pub async fn result(&self, _name: &str, _partition: &str) -> Result<String, ProjectionError> {
        Err(ProjectionError::NotReady)
    }

    pub async fn query(&self, _name: &str) -> Result<QueryInfo, ProjectionError> {
        Err(ProjectionError::NotReady)
    }

    pub async fn restart_subsystem(&self) -> Result<(), ProjectionError> {
        Err(ProjectionError::NotReady)
    }
}
