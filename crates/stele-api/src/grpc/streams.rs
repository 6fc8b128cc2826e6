//! The `event_store.client.streams.Streams` service: Read, Append, BatchAppend, Delete and
//! Tombstone over the [`Node`] facade. Each method lives in its own module; this file only
//! wires them to the generated trait, and reads the `requires-leader` header: a follower
//! answers such calls with NotLeader, and forwards other writes to the leader.

pub mod append;
pub mod batch_append;
pub mod delete;
pub mod links;
pub mod read;
pub mod subscribe;

use stele_cluster::Node;
use stele_proto::streams::streams_server::Streams;
use stele_proto::streams::{
    AppendReq, AppendResp, BatchAppendReq, DeleteReq, DeleteResp, ReadReq, TombstoneReq,
    TombstoneResp,
};
use stele_services::access::AccessControl;
use tonic::{Request, Response, Status, Streaming};

use super::caller::Caller;
use super::request_headers::requires_leader;
use super::status;

/// The Streams service of one node.
#[derive(Clone)]
pub struct StreamsService {
    node: Node,
    access: AccessControl,
}

impl StreamsService {
    pub fn new(node: Node, access: AccessControl) -> Self {
        StreamsService { node, access }
    }
}

#[tonic::async_trait]
impl Streams for StreamsService {
    type ReadStream = read::ReadStream;

    async fn read(&self, request: Request<ReadReq>) -> Result<Response<Self::ReadStream>, Status> {
        self.node
            .check_read_routing(requires_leader(request.metadata()))
            .map_err(|e| status::read_error(&e))?;
        let caller = Caller::of(&self.access, &request);
        let plan = read::plan(request.into_inner())?;
        let plan = read::authorize(plan, &caller).await?;
        Ok(Response::new(read::spawn(self.node.clone(), plan)))
    }

    async fn append(
        &self,
        request: Request<Streaming<AppendReq>>,
    ) -> Result<Response<AppendResp>, Status> {
        let routing = requires_leader(request.metadata());
        let caller = Caller::of(&self.access, &request);
        append::append(&self.node, request.into_inner(), routing, &caller)
            .await
            .map(Response::new)
    }

    async fn delete(&self, request: Request<DeleteReq>) -> Result<Response<DeleteResp>, Status> {
        let routing = requires_leader(request.metadata());
        let caller = Caller::of(&self.access, &request);
        delete::delete(&self.node, request.into_inner(), routing, &caller)
            .await
            .map(Response::new)
    }

    async fn tombstone(
        &self,
        request: Request<TombstoneReq>,
    ) -> Result<Response<TombstoneResp>, Status> {
        let routing = requires_leader(request.metadata());
        let caller = Caller::of(&self.access, &request);
        delete::tombstone(&self.node, request.into_inner(), routing, &caller)
            .await
            .map(Response::new)
    }

    type BatchAppendStream = batch_append::BatchAppendStream;

    async fn batch_append(
        &self,
        request: Request<Streaming<BatchAppendReq>>,
    ) -> Result<Response<Self::BatchAppendStream>, Status> {
        let writer = batch_append::RoutedNode {
            node: self.node.clone(),
            requires_leader: requires_leader(request.metadata()),
            caller: Caller::of(&self.access, &request),
        };
        Ok(Response::new(batch_append::spawn(
            writer,
            request.into_inner(),
        )))
    }
}
