//! The coordinator's errors and the one place they become gRPC statuses.

use dualrig_proto::identity::IdentityError;
use dualrig_proto::profile::ProfileError;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error("bad ladder: {0}")]
    Profile(#[from] ProfileError),
    #[error("{0}")]
    BadSegment(String),
    #[error(
        "segment is {size} bytes, over the {limit}-byte limit; cut the video into ~2 s segments (`dualrig transcode` does this)"
    )]
    SegmentTooLarge { size: u64, limit: u64 },
    #[error("upload ended after {got} of the {declared} bytes the header announced")]
    ShortUpload { got: u64, declared: u64 },
    #[error("upload is malformed: {0}")]
    BadUpload(String),
    #[error("{0}")]
    NoWorker(String),
    #[error("job {job_id} failed on {attempts} worker(s): {reasons}")]
    Exhausted {
        job_id: String,
        attempts: u32,
        reasons: String,
    },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("worker identity: {0}")]
    Identity(#[from] IdentityError),
    #[error("coordinator storage: {0}")]
    Io(#[from] std::io::Error),
    #[error("coordinator is shutting down")]
    ShuttingDown,
}

impl From<CoordinatorError> for Status {
    fn from(e: CoordinatorError) -> Self {
        let msg = e.to_string();
        match e {
            CoordinatorError::Profile(_)
            | CoordinatorError::BadSegment(_)
            | CoordinatorError::BadUpload(_) => Status::invalid_argument(msg),
            CoordinatorError::SegmentTooLarge { .. } => Status::resource_exhausted(msg),
            CoordinatorError::ShortUpload { .. } => Status::cancelled(msg),
            CoordinatorError::NoWorker(_) | CoordinatorError::ShuttingDown => {
                Status::unavailable(msg)
            }
            CoordinatorError::Exhausted { .. } => Status::aborted(msg),
            CoordinatorError::Unauthenticated(_) | CoordinatorError::Identity(_) => {
                Status::unauthenticated(msg)
            }
            CoordinatorError::Io(_) => Status::internal(msg),
        }
    }
}

/// Why the coordinator could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot prepare data dir {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("coordinator key: {0}")]
    Identity(#[from] IdentityError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}
