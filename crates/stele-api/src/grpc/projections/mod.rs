//! `event_store.client.projections.Projections` (PROTOCOL-OPS.md §1): Create, Update,
//! Delete, Statistics, Disable, Enable, Reset, State, Result and RestartSubsystem over
//! [`stele_projections::Projections`].
//!
//! Served only when the node runs projections (`RunProjections` is not `None`, see
//! [`super::routes`]); otherwise the calls answer UNIMPLEMENTED, as EventStoreDB's, whose
//! service exists only with its projections subsystem.
//!
//! Every call first asks the node's access control whether the caller may perform its
//! [`Operation`] (PERMISSION_DENIED `Access Denied` otherwise). Create and Update hand the
//! caller's [`Principal`](stele_core::access::Principal) to the subsystem, which refuses a
//! continuous or one-time projection to a caller outside `$admins` and `$ops`. Requests
//! become the subsystem's in [`requests`]; states become `google.protobuf.Value`s in
//! [`value`]; errors reach the wire through [`status::projection_error`].

mod requests;
pub mod value;

use std::pin::Pin;

use futures::Stream;
use stele_core::access::Operation;
use stele_projections::{ProjectionError, Projections};
use stele_proto::projections::projections_server::Projections as ProjectionsRpc;
use stele_proto::projections::{
    CreateReq, CreateResp, DeleteReq, DeleteResp, DisableReq, DisableResp, EnableReq, EnableResp,
    ResetReq, ResetResp, ResultReq, ResultResp, StateReq, StateResp, StatisticsReq, StatisticsResp,
    UpdateReq, UpdateResp,
};
use stele_proto::shared::Empty;
use stele_services::access::AccessControl;
use tonic::{Request, Response, Status};

use super::caller::Caller;
use super::status;
use requests::required_options;

/// The Projections service of a node.
#[derive(Clone)]
pub struct ProjectionsService {
    projections: Projections,
    access: AccessControl,
}

impl ProjectionsService {
    pub fn new(projections: Projections, access: AccessControl) -> Self {
        ProjectionsService {
            projections,
            access,
        }
    }

    /// The caller of `request`, refused unless they may perform `operation`.
    fn authorize<T>(&self, request: &Request<T>, operation: Operation) -> Result<Caller, Status> {
        let caller = Caller::of(&self.access, request);
        caller.may(operation)?;
        Ok(caller)
    }
}

fn wire_error(error: ProjectionError) -> Status {
    status::projection_error(&error)
}

/// A state or result text as the answer's `Value`; a text that cannot be one (not JSON, or
/// nested too deep) is a fault of the projection, answered as EventStoreDB answers its
/// handler's exceptions.
fn answer_value(name: &str, json: &str) -> Result<prost_types::Value, Status> {
    value::state_value(json)
        .map_err(|e| status::internal(&format!("the state of projection '{name}': {e}")))
}

/// The stream of Statistics answers.
pub type StatisticsStream =
    Pin<Box<dyn Stream<Item = Result<StatisticsResp, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl ProjectionsRpc for ProjectionsService {
    async fn create(&self, request: Request<CreateReq>) -> Result<Response<CreateResp>, Status> {
        let caller = self.authorize(&request, Operation::ProjectionCreate)?;
        let create = requests::create(required_options(request.into_inner().options)?)?;
        self.projections
            .create(create, &caller.principal)
            .await
            .map_err(wire_error)?;
        Ok(Response::new(CreateResp {}))
    }

    async fn update(&self, request: Request<UpdateReq>) -> Result<Response<UpdateResp>, Status> {
        let caller = self.authorize(&request, Operation::ProjectionUpdate)?;
        let update = requests::update(required_options(request.into_inner().options)?);
        self.projections
            .update(update, &caller.principal)
            .await
            .map_err(wire_error)?;
        Ok(Response::new(UpdateResp {}))
    }

    async fn delete(&self, request: Request<DeleteReq>) -> Result<Response<DeleteResp>, Status> {
        self.authorize(&request, Operation::ProjectionDelete)?;
        let delete = requests::delete(required_options(request.into_inner().options)?);
        self.projections.delete(delete).await.map_err(wire_error)?;
        Ok(Response::new(DeleteResp {}))
    }

    type StatisticsStream = StatisticsStream;

    async fn statistics(
        &self,
        request: Request<StatisticsReq>,
    ) -> Result<Response<Self::StatisticsStream>, Status> {
        self.authorize(&request, Operation::ProjectionStatistics)?;
        let selector = requests::selector(required_options(request.into_inner().options)?)?;
        let all = self
            .projections
            .statistics(selector)
            .await
            .map_err(wire_error)?;
        let answers = all.into_iter().map(|s| Ok(requests::statistics(s)));
        Ok(Response::new(Box::pin(futures::stream::iter(answers))))
    }

    async fn disable(&self, request: Request<DisableReq>) -> Result<Response<DisableResp>, Status> {
        self.authorize(&request, Operation::ProjectionDisable)?;
        let options = required_options(request.into_inner().options)?;
        self.projections
            .disable(&options.name, options.write_checkpoint)
            .await
            .map_err(wire_error)?;
        Ok(Response::new(DisableResp {}))
    }

    async fn enable(&self, request: Request<EnableReq>) -> Result<Response<EnableResp>, Status> {
        self.authorize(&request, Operation::ProjectionEnable)?;
        let options = required_options(request.into_inner().options)?;
        self.projections
            .enable(&options.name)
            .await
            .map_err(wire_error)?;
        Ok(Response::new(EnableResp {}))
    }

    async fn reset(&self, request: Request<ResetReq>) -> Result<Response<ResetResp>, Status> {
        self.authorize(&request, Operation::ProjectionReset)?;
        // `write_checkpoint` is ignored, as EventStoreDB ignores it.
        let options = required_options(request.into_inner().options)?;
        self.projections
            .reset(&options.name)
            .await
            .map_err(wire_error)?;
        Ok(Response::new(ResetResp {}))
    }

    async fn state(&self, request: Request<StateReq>) -> Result<Response<StateResp>, Status> {
        self.authorize(&request, Operation::ProjectionState)?;
        let options = required_options(request.into_inner().options)?;
        let json = self
            .projections
            .state(&options.name, &options.partition)
            .await
            .map_err(wire_error)?;
        Ok(Response::new(StateResp {
            state: Some(answer_value(&options.name, &json)?),
        }))
    }

    async fn result(&self, request: Request<ResultReq>) -> Result<Response<ResultResp>, Status> {
        self.authorize(&request, Operation::ProjectionResult)?;
        let options = required_options(request.into_inner().options)?;
        let json = self
            .projections
            .result(&options.name, &options.partition)
            .await
            .map_err(wire_error)?;
        Ok(Response::new(ResultResp {
            result: Some(answer_value(&options.name, &json)?),
        }))
    }

    async fn restart_subsystem(&self, request: Request<Empty>) -> Result<Response<Empty>, Status> {
        self.authorize(&request, Operation::ProjectionRestartSubsystem)?;
        self.projections
            .restart_subsystem()
            .await
            .map_err(wire_error)?;
        Ok(Response::new(Empty {}))
    }
}

#[cfg(test)]
pub(crate) mod tests;
