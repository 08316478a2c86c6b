//! Hosted blobs (DESIGN §6): Put spreads a blob over distinct workers, Get streams a verifiable slice of
//! it back from a holder, the index remembers who holds what, and challenge rounds check that they
//! still do.

use std::pin::Pin;
use std::sync::Arc;

use dualrig_proto::v1::{GetChunk, GetRequest, ListBlobsResponse, PutResponse, PutUpload};
use futures::Stream;
use tonic::{Status, Streaming};

use crate::config::Config;
use crate::ledger::Ledger;
use crate::pool::WorkerPool;

/// The stream a Get answers with.
pub type GetStream = Pin<Box<dyn Stream<Item = Result<GetChunk, Status>> + Send + 'static>>;

#[derive(Debug)]
pub struct BlobService {
    config: Arc<Config>,
    pool: Arc<WorkerPool>,
    ledger: Arc<Ledger>,
}

impl BlobService {
    pub fn new(config: Arc<Config>, pool: Arc<WorkerPool>, ledger: Arc<Ledger>) -> Self {
        Self {
            config,
            pool,
            ledger,
        }
    }

    pub async fn put(&self, _upload: Streaming<PutUpload>) -> Result<PutResponse, Status> {
        Err(Status::unimplemented("put"))
    }

    pub async fn get(&self, _request: GetRequest) -> Result<GetStream, Status> {
        Err(Status::unimplemented("get"))
    }

    /// A storage event from an attached worker's stream.
    pub async fn on_event(
        &self,
        _worker: dualrig_proto::identity::PublicId,
        _connection: u64,
        _event: dualrig_proto::v1::worker_event::Event,
    ) {
    }

    pub async fn list(&self) -> Result<ListBlobsResponse, Status> {
        Err(Status::unimplemented("list"))
    }
}
