//! `event_store.client.persistent_subscriptions.PersistentSubscriptions` (PROTOCOL.md §7):
//! Create, Update, Delete, Read, GetInfo, List, ReplayParked and RestartSubsystem over the
//! [`Subsystem`] engine.
//!
//! What this module owns: turning requests into group definitions, group keys and
//! [`ConnectRequest`]s, and the engine's answers into responses, with the details clients
//! depend on. What it does not own: the groups themselves (`stele_services::persistent`), and the
//! error texts and trailers (`status::persistent_error`).
//!
//! Here is the service, each call a few lines over the engine; the conversions are in
//! `definition.rs` (Create and Update: settings, start positions, strategies, filters),
//! `keys.rs` (the group or source Delete, GetInfo, ReplayParked and List name), `read.rs`
//! (the Read call: its options, the consumer's acks and nacks, and the answer stream) and
//! `info.rs` (GetInfo's and List's `SubscriptionInfo`).

use stele_proto::persistent::persistent_subscriptions_server::PersistentSubscriptions;
use stele_proto::persistent::{
    CreateReq, CreateResp, DeleteReq, DeleteResp, GetInfoReq, GetInfoResp, ListReq, ListResp,
    ReadReq, ReplayParkedReq, ReplayParkedResp, UpdateReq, UpdateResp,
};
use stele_proto::shared::Empty;
use tonic::{Request, Response, Status, Streaming};

use self::read::read_stream;
use super::status;
use stele_core::access::{Operation, Principal, StreamAccess, ALL_STREAM};
use stele_services::access::AccessControl;
use stele_services::persistent::{ConnectRequest, PsError, Source, Subsystem};

use super::caller::Caller;

mod definition;
mod info;
mod keys;
mod read;

pub use definition::{create_definition, update_definition, TICKS_PER_MS};
pub use info::subscription_info;
pub use keys::{delete_key, get_info_key, list_source, replay_parked_plan};
pub use read::{
    client_message, confirmation, connect_plan, connection_name, nack_action, read_event,
    ClientMessage, ConnectPlan, ReadStream, UNKNOWN_CONNECTION_NAME,
};

/// The PersistentSubscriptions service of one node.
#[derive(Clone)]
pub struct PersistentSubscriptionsService {
    subsystem: Subsystem,
    access: AccessControl,
}

impl PersistentSubscriptionsService {
    pub fn new(subsystem: Subsystem, access: AccessControl) -> Self {
        PersistentSubscriptionsService { subsystem, access }
    }

    fn caller<T>(&self, request: &Request<T>, operation: Operation) -> Result<Caller, Status> {
        let caller = Caller::of(&self.access, request);
        caller.may(operation)?;
        Ok(caller)
    }
}

/// Whether the caller may read a group's source (`$r` on the stream, or on `$all`): a
/// consumer needs that too, besides the group's creator.
async fn may_read_source(caller: &Caller, source: &Source) -> Result<(), Status> {
    let stream = match source {
        Source::Stream(stream) => stream.as_str(),
        Source::All => ALL_STREAM,
    };
    caller.may_access(stream, StreamAccess::Read).await
}

fn ps_status(error: PsError) -> Status {
    status::persistent_error(&error)
}

#[tonic::async_trait]
impl PersistentSubscriptions for PersistentSubscriptionsService {
    async fn create(&self, request: Request<CreateReq>) -> Result<Response<CreateResp>, Status> {
        let caller = self.caller(&request, Operation::PersistentSubscriptionCreate)?;
        let mut definition = create_definition(request.into_inner())?;
        // The group reads with its creator's rights (the subsystem checks that the creator
        // may read its source).
        definition.creator = caller.principal;
        self.subsystem.create(definition).await.map_err(ps_status)?;
        Ok(Response::new(CreateResp {}))
    }

    async fn update(&self, request: Request<UpdateReq>) -> Result<Response<UpdateResp>, Status> {
        self.caller(&request, Operation::PersistentSubscriptionUpdate)?;
        // Updates carry no filter; the engine keeps a `$all` group's own.
        let definition = update_definition(request.into_inner())?;
        self.subsystem.update(definition).await.map_err(ps_status)?;
        Ok(Response::new(UpdateResp {}))
    }

    async fn delete(&self, request: Request<DeleteReq>) -> Result<Response<DeleteResp>, Status> {
        self.caller(&request, Operation::PersistentSubscriptionDelete)?;
        let key = delete_key(request.into_inner())?;
        self.subsystem.delete(&key).await.map_err(ps_status)?;
        Ok(Response::new(DeleteResp {}))
    }

    type ReadStream = ReadStream;

    async fn read(
        &self,
        request: Request<Streaming<ReadReq>>,
    ) -> Result<Response<Self::ReadStream>, Status> {
        let caller = self.caller(&request, Operation::PersistentSubscriptionRead)?;
        let connection_name = connection_name(request.metadata());
        let from = request
            .remote_addr()
            .map_or_else(String::new, |address| address.to_string());
        let mut requests = request.into_inner();
        let Some(first) = requests.message().await? else {
            return Ok(Response::new(Box::pin(futures::stream::empty())));
        };
        let plan = connect_plan(first)?;
        // Consuming also needs read access to the source.
        may_read_source(&caller, &plan.key.source).await?;
        let consumer = self
            .subsystem
            .connect(ConnectRequest {
                key: plan.key.clone(),
                buffer_size: plan.buffer_size,
                connection_name,
                from,
                username: match &caller.principal {
                    Principal::User { name, .. } => name.clone(),
                    _ => String::new(),
                },
            })
            .await
            .map_err(ps_status)?;
        Ok(Response::new(read_stream(
            plan.key,
            consumer,
            requests,
            plan.uuid_format,
        )))
    }

    async fn get_info(
        &self,
        request: Request<GetInfoReq>,
    ) -> Result<Response<GetInfoResp>, Status> {
        self.caller(&request, Operation::PersistentSubscriptionGetInfo)?;
        let key = get_info_key(request.into_inner())?;
        let info = self.subsystem.info(&key).await.map_err(ps_status)?;
        Ok(Response::new(GetInfoResp {
            subscription_info: Some(subscription_info(&info)),
        }))
    }

    async fn replay_parked(
        &self,
        request: Request<ReplayParkedReq>,
    ) -> Result<Response<ReplayParkedResp>, Status> {
        self.caller(&request, Operation::PersistentSubscriptionReplayParked)?;
        let (key, stop_at) = replay_parked_plan(request.into_inner())?;
        self.subsystem
            .replay_parked(&key, stop_at)
            .await
            .map_err(ps_status)?;
        Ok(Response::new(ReplayParkedResp {}))
    }

    async fn list(&self, request: Request<ListReq>) -> Result<Response<ListResp>, Status> {
        self.caller(&request, Operation::PersistentSubscriptionList)?;
        let source = list_source(request.into_inner())?;
        let infos = self
            .subsystem
            .list(source.as_ref())
            .await
            .map_err(ps_status)?;
        Ok(Response::new(ListResp {
            subscriptions: infos.iter().map(subscription_info).collect(),
        }))
    }

    async fn restart_subsystem(&self, request: Request<Empty>) -> Result<Response<Empty>, Status> {
        self.caller(&request, Operation::PersistentSubscriptionRestartSubsystem)?;
        tracing::info!("a client asked to restart the persistent subscriptions");
        self.subsystem.restart().await.map_err(ps_status)?;
        Ok(Response::new(Empty {}))
    }
}
