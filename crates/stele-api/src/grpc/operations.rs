//! `event_store.client.operations.Operations` (PROTOCOL.md §2): the operator commands that
//! the Rust and Node clients expose (`resign_node`, `set_node_priority`, ...).
//!
//! What this module owns: ResignNode and SetNodePriority, which are leadership transfers on
//! the node (docs/design.md decision 9): a leader hands over to the best other caught-up voter,
//! or to a caught-up voter of higher priority. On a node that is not the leader, ResignNode
//! does nothing and answers OK, as EventStoreDB does. Shutdown stops the process as SIGTERM
//! does (`Node::request_stop`).
//!
//! RestartPersistentSubscriptions restarts the persistent-subscription subsystem (every
//! consumer is dropped, the definitions are reloaded), like
//! `PersistentSubscriptions.RestartSubsystem`.
//!
//! What it deliberately does not own: scavenging (StartScavenge, StopScavenge) and index
//! merges (MergeIndexes), which Stele has not built. Those answer UNIMPLEMENTED with a
//! message saying why; the Rust client turns that into `UnsupportedFeature`. ServerFeatures
//! lists only the methods served.
//! Authentication: none; Stele serves insecure mode only, where EventStoreDB lets anyone in.

use stele_cluster::Node;
use stele_proto::operations::operations_server::Operations;
use stele_proto::operations::{
    ScavengeResp, SetNodePriorityReq, StartScavengeReq, StopScavengeReq,
};
use stele_proto::shared::Empty;
use tonic::{Request, Response, Status};

use stele_core::access::Operation;
use stele_services::access::AccessControl;

use super::caller::Caller;
use super::status;
use stele_services::persistent::Subsystem;

#[derive(Clone)]
pub struct OperationsService {
    node: Node,
    persistent: Subsystem,
    access: AccessControl,
}

impl OperationsService {
    pub fn new(node: Node, persistent: Subsystem, access: AccessControl) -> Self {
        OperationsService {
            node,
            persistent,
            access,
        }
    }

    /// Refuses the call unless its caller may perform `operation`.
    fn check<T>(&self, request: &Request<T>, operation: Operation) -> Result<(), Status> {
        Caller::of(&self.access, request).may(operation)
    }
}

/// Why scavenging is refused.
const NO_SCAVENGE: &str = "scavenging is not supported by this server yet";

#[tonic::async_trait]
impl Operations for OperationsService {
    async fn start_scavenge(
        &self,
        request: Request<StartScavengeReq>,
    ) -> Result<Response<ScavengeResp>, Status> {
        self.check(&request, Operation::ScavengeStart)?;
        Err(Status::unimplemented(NO_SCAVENGE))
    }

    async fn stop_scavenge(
        &self,
        request: Request<StopScavengeReq>,
    ) -> Result<Response<ScavengeResp>, Status> {
        self.check(&request, Operation::ScavengeStop)?;
        Err(Status::unimplemented(NO_SCAVENGE))
    }

    async fn shutdown(&self, request: Request<Empty>) -> Result<Response<Empty>, Status> {
        self.check(&request, Operation::Shutdown)?;
        self.node.request_stop();
        Ok(Response::new(Empty {}))
    }

    async fn merge_indexes(&self, request: Request<Empty>) -> Result<Response<Empty>, Status> {
        self.check(&request, Operation::MergeIndexes)?;
        Err(Status::unimplemented(
            "merging indexes is not supported: this server's index has nothing to merge",
        ))
    }

    async fn resign_node(&self, request: Request<Empty>) -> Result<Response<Empty>, Status> {
        self.check(&request, Operation::ResignNode)?;
        tracing::info!("an operator asked this node to resign leadership");
        self.node
            .resign()
            .await
            .map_err(|error| status::admin_error(&error))?;
        Ok(Response::new(Empty {}))
    }

    async fn set_node_priority(
        &self,
        request: Request<SetNodePriorityReq>,
    ) -> Result<Response<Empty>, Status> {
        self.check(&request, Operation::SetNodePriority)?;
        let priority = request.into_inner().priority;
        tracing::info!(priority, "an operator set this node's priority");
        self.node
            .set_node_priority(priority)
            .await
            .map_err(|error| status::admin_error(&error))?;
        Ok(Response::new(Empty {}))
    }

    async fn restart_persistent_subscriptions(
        &self,
        request: Request<Empty>,
    ) -> Result<Response<Empty>, Status> {
        self.check(&request, Operation::PersistentSubscriptionRestartSubsystem)?;
        tracing::info!("an operator restarted the persistent subscriptions");
        self.persistent
            .restart()
            .await
            .map_err(|error| status::persistent_error(&error))?;
        Ok(Response::new(Empty {}))
    }
}
