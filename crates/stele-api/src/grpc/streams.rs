//! The `event_store.client.streams.Streams` service: Read, Append, BatchAppend, Delete and
//! Tombstone over the [`Node`] facade. Each method lives in its own module; this file only
//! wires them to the generated trait.

pub mod append;
pub mod batch_append;
pub mod delete;
pub mod read;

use stele_cluster::Node;
use stele_proto::streams::streams_server::Streams;
use stele_proto::streams::{
    AppendReq, AppendResp, BatchAppendReq, DeleteReq, DeleteResp, ReadReq, TombstoneReq,
    TombstoneResp,
};
use tonic::{Request, Response, Status, Streaming};

/// The Streams service of one node.
#[derive(Clone)]
pub struct StreamsService {
    node: Node,
}

impl StreamsService {
    pub fn new(node: Node) -> Self {
        StreamsService { node }
    }
}

#[tonic::async_trait]
impl Streams for StreamsService {
    type ReadStream = read::ReadStream;

    async fn read(&self, request: Request<ReadReq>) -> Result<Response<Self::ReadStream>, Status> {
        let plan = read::plan(request.into_inner())?;
        Ok(Response::new(read::spawn(self.node.clone(), plan)))
    }

    async fn append(
        &self,
        request: Request<Streaming<AppendReq>>,
    ) -> Result<Response<AppendResp>, Status> {
        append::append(&self.node, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn delete(&self, request: Request<DeleteReq>) -> Result<Response<DeleteResp>, Status> {
        delete::delete(&self.node, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn tombstone(
        &self,
        request: Request<TombstoneReq>,
    ) -> Result<Response<TombstoneResp>, Status> {
        delete::tombstone(&self.node, request.into_inner())
            .await
            .map(Response::new)
    }

    type BatchAppendStream = batch_append::BatchAppendStream;

    async fn batch_append(
        &self,
        request: Request<Streaming<BatchAppendReq>>,
    ) -> Result<Response<Self::BatchAppendStream>, Status> {
        Ok(Response::new(batch_append::spawn(
            self.node.clone(),
            request.into_inner(),
        )))
    }
}
