//! The coordinator's errors and the one place they become gRPC statuses.

use dualrig_proto::identity::IdentityError;
use dualrig_proto::ledger_request::RequestError;
use dualrig_proto::profile::ProfileError;
use tonic::{Code, Status};

use crate::ledger::LedgerError;

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
    /// The job's payment does not pay the worker it goes to (missing, short, or refused by it).
    #[error("{0}")]
    Payment(String),
    /// A paid job whose quoted worker cannot run it; the client asks for a new quote.
    #[error("{0}")]
    QuoteLost(String),
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
            CoordinatorError::Payment(_) => Status::failed_precondition(msg),
            CoordinatorError::QuoteLost(_) => Status::aborted(msg),
        }
    }
}

impl From<LedgerError> for Status {
    fn from(e: LedgerError) -> Self {
        let code = match &e {
            LedgerError::BadSignature { .. }
            | LedgerError::Request(RequestError::BadSignature { .. }) => Code::Unauthenticated,
            LedgerError::Request(_)
            | LedgerError::InvalidAccount { .. }
            | LedgerError::ZeroAmount
            | LedgerError::Overflow { .. }
            | LedgerError::BadFraction { .. } => Code::InvalidArgument,
            LedgerError::StaleNonce { .. } => Code::Aborted,
            LedgerError::InsufficientBalance { .. }
            | LedgerError::InsufficientBond { .. }
            | LedgerError::InsufficientPool { .. }
            | LedgerError::NothingUnbonded { .. }
            | LedgerError::NothingToUnlock { .. }
            | LedgerError::AlreadyUnlocking { .. }
            | LedgerError::NotUnlocking { .. }
            | LedgerError::UnlockPending { .. }
            | LedgerError::SenderCannotPay { .. } => Code::FailedPrecondition,
            LedgerError::NotRecipient { .. } => Code::PermissionDenied,
            LedgerError::Ticket(t) => t.code(),
            LedgerError::AlreadyRedeemed { .. } => Code::AlreadyExists,
            LedgerError::Genesis(_)
            | LedgerError::Corrupt(_)
            | LedgerError::Storage(_)
            | LedgerError::Task(_) => Code::Internal,
        };
        let msg = match code {
            Code::Internal => format!("{e}; the coordinator's ledger needs its operator"),
            _ => e.to_string(),
        };
        Status::new(code, msg)
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
    #[error("ledger {path}: {source}")]
    Ledger {
        path: std::path::PathBuf,
        source: LedgerError,
    },
    #[error("blob index {path}: {source}")]
    BlobIndex {
        path: std::path::PathBuf,
        source: crate::storage::index::IndexError,
    },
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

#[cfg(test)]
mod tests {
    use dualrig_proto::identity::PublicId;

    use super::*;

    #[test]
    fn ledger_refusals_map_to_codes_a_person_can_act_on() {
        let account = PublicId([1; 32]);
        let cases = [
            (LedgerError::BadSignature { account }, Code::Unauthenticated),
            (
                LedgerError::InsufficientBalance {
                    account,
                    available: 1,
                    needed: 2,
                },
                Code::FailedPrecondition,
            ),
            (
                LedgerError::UnlockPending {
                    sender: account,
                    withdraw_round: 3,
                    current_round: 1,
                },
                Code::FailedPrecondition,
            ),
            (
                LedgerError::AlreadyRedeemed {
                    ticket_hash: [0; 32],
                },
                Code::AlreadyExists,
            ),
            (
                LedgerError::StaleNonce {
                    account,
                    nonce: 1,
                    last: 1,
                },
                Code::Aborted,
            ),
            (
                LedgerError::Request(RequestError::Empty),
                Code::InvalidArgument,
            ),
            (LedgerError::Corrupt("x".into()), Code::Internal),
        ];
        for (error, code) in cases {
            let text = error.to_string();
            let status = Status::from(error);
            assert_eq!(status.code(), code, "{text}");
            assert!(status.message().contains(&text), "{}", status.message());
        }
    }
}
