//! dualrig's wire types (`dualrig.v1`) and the rules every side must agree on: identities and their
//! signatures, the rendition ladder, what a worker signs when it returns a result, tickets, and what an
//! account signs to ask the ledger to move its funds.

pub mod access;
pub mod amount;
pub mod chunk_reader;
pub mod fuzzing;
pub mod holdings;
pub mod identity;
pub mod ledger_request;
pub mod metrics_endpoint;
pub mod profile;
pub mod proof;
pub mod result;
pub mod ticket;

/// Generated prost messages and tonic clients/servers of `dualrig.v1`.
#[allow(clippy::all, missing_docs, unreachable_pub)]
pub mod v1 {
    tonic::include_proto!("dualrig.v1");
}

/// Encoded `FileDescriptorSet` of `dualrig.v1`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("dualrig_descriptor");

/// Largest gRPC message either side accepts: a 32 MiB segment plus its renditions and framing.
pub const MAX_MESSAGE_BYTES: usize = 96 << 20;

/// Default largest segment a job may carry (PROTOCOL §5).
pub const DEFAULT_MAX_SEGMENT_BYTES: u64 = 32 << 20;

/// Metadata key that carries a worker's session token on the Attach stream.
pub const SESSION_METADATA_KEY: &str = "x-dualrig-session";
