//! The coordinator's errors and the one place they become gRPC statuses.

use dualrig_proto::identity::{IdentityError, PublicId};
use dualrig_proto::ledger_request::RequestError;
use dualrig_proto::profile::ProfileError;
use tonic::{Code, Status};

use crate::ledger::LedgerError;
use crate::storage::index::IndexError;

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
    #[error(
        "page token of {len} bytes is not one the {list} list hands out; send back next_page_token as it came, or none for the first page"
    )]
    BadPageToken { list: &'static str, len: usize },
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
    /// The ledger's answer: a download's tickets, or a collective's blob (not a member, allotment used,
    /// no such collective).
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("coordinator is shutting down")]
    ShuttingDown,
    #[error(
        "{what} upload {} after {received} bytes; uploads must keep sending and finish in time",
        if *.idle { format!("sent nothing for {:.0} s", .limit.as_secs_f64()) } else { format!("did not finish within {:.0} s", .limit.as_secs_f64()) }
    )]
    UploadStalled {
        what: &'static str,
        received: u64,
        idle: bool,
        limit: std::time::Duration,
    },
    /// A bounded table (registrations, quotes) is full; the caller may try again shortly.
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    BadCapabilities(String),
    /// A job without payment on a coordinator that takes paid jobs only.
    #[error(
        "this coordinator takes paid jobs only: call Quote, then send tickets covering the job's {units} units (output pixels) with its quote_id"
    )]
    PaymentRequired { units: u64 },
    /// A ticket in the payment is not one the coordinator can pass on.
    #[error("payment refused: {0}")]
    BadTicket(#[from] dualrig_proto::ticket::TicketError),
    #[error(
        "payment refused: a ticket is made out to {}, not the quoted worker {}",
        .payee.short(),
        .quoted.short()
    )]
    WrongPayee { payee: PublicId, quoted: PublicId },
    #[error(
        "sender {} cannot cover its tickets: a ticket of face value {face_value} needs a deposit of at least {} (deposit {deposit}, reserve share {reserve_share}); deposit more with `dualrig deposit`",
        .sender.short(),
        .face_value.saturating_sub(*.reserve_share)
    )]
    SenderCannotCover {
        sender: PublicId,
        deposit: u64,
        reserve_share: u64,
        face_value: u64,
    },
    #[error(
        "sender {} is unlocking its deposit (withdrawable at round {withdraw_round}); cancel the unlock or deposit from another key to pay",
        .sender.short()
    )]
    SenderUnlocking {
        sender: PublicId,
        withdraw_round: u64,
    },
    #[error(
        "payment refused: tickets from {} and {}; one payment has one sender",
        .first.short(),
        .other.short()
    )]
    MixedSenders { first: PublicId, other: PublicId },
    #[error(
        "payment refused: a ticket expires at round {expiration_round}, after round {latest}, when its sender could already have withdrawn; the worker must issue shorter-lived params"
    )]
    TicketOutlivesUnlock { expiration_round: u64, latest: u64 },
    #[error("payment covers {covered} units, job is {units} (price {price} per output pixel)")]
    PaymentShort {
        covered: u64,
        units: u64,
        price: u64,
    },
    /// The quoted worker checked the tickets and refused them; the payment, not the work, is at fault.
    #[error("worker {} refused the job's payment: {why}", .worker.short())]
    PaymentRefused { worker: PublicId, why: String },
    /// A paid job whose quote cannot be used; the client asks for a new quote.
    #[error("{0}")]
    QuoteLost(QuoteLost),
}

/// Why a quote cannot carry a job (answered `Aborted`: ask for a new quote and pay again).
#[derive(Debug, thiserror::Error)]
pub enum QuoteLost {
    #[error("quote {quote_id} is unknown, used or expired; ask for a new quote")]
    Unknown { quote_id: String },
    #[error("quoted worker {} is gone; ask for a new quote", .worker.short())]
    WorkerGone { worker: PublicId },
    #[error(
        "the params worker {} was paid under were retired when another of their tickets won ({why}); ask for a new quote and pay again",
        .worker.short()
    )]
    ParamsReplaced { worker: PublicId, why: String },
    #[error(
        "job {job_id} was paid to worker {}, which could not finish it ({reasons}); ask for a new quote and pay again",
        .worker.short()
    )]
    WorkerFailed {
        job_id: String,
        worker: PublicId,
        reasons: String,
    },
}

impl From<CoordinatorError> for Status {
    fn from(e: CoordinatorError) -> Self {
        let msg = e.to_string();
        match e {
            CoordinatorError::Profile(_)
            | CoordinatorError::BadSegment(_)
            | CoordinatorError::BadUpload(_)
            | CoordinatorError::BadPageToken { .. } => Status::invalid_argument(msg),
            CoordinatorError::SegmentTooLarge { .. } | CoordinatorError::Busy(_) => {
                Status::resource_exhausted(msg)
            }
            CoordinatorError::BadCapabilities(_) => Status::invalid_argument(msg),
            // Not `Cancelled`: a client that retries would read that as its own cancellation.
            CoordinatorError::ShortUpload { .. } => Status::invalid_argument(msg),
            CoordinatorError::NoWorker(_) | CoordinatorError::ShuttingDown => {
                Status::unavailable(msg)
            }
            CoordinatorError::Exhausted { .. } => Status::aborted(msg),
            CoordinatorError::UploadStalled { .. } => Status::deadline_exceeded(msg),
            CoordinatorError::Identity(e) if is_malformed_id(&e) => Status::invalid_argument(msg),
            CoordinatorError::Unauthenticated(_) | CoordinatorError::Identity(_) => {
                Status::unauthenticated(msg)
            }
            CoordinatorError::Io(_) => Status::internal(msg),
            CoordinatorError::Ledger(e) => Status::from(e),
            CoordinatorError::PaymentRequired { .. }
            | CoordinatorError::BadTicket(_)
            | CoordinatorError::WrongPayee { .. }
            | CoordinatorError::PaymentShort { .. }
            | CoordinatorError::SenderCannotCover { .. }
            | CoordinatorError::SenderUnlocking { .. }
            | CoordinatorError::MixedSenders { .. }
            | CoordinatorError::TicketOutlivesUnlock { .. }
            | CoordinatorError::PaymentRefused { .. } => Status::failed_precondition(msg),
            CoordinatorError::QuoteLost(_) => Status::aborted(msg),
        }
    }
}

/// A malformed id is the client's mistake (`InvalidArgument`) on every RPC; a signature that does not
/// verify is `Unauthenticated`.
fn is_malformed_id(e: &IdentityError) -> bool {
    matches!(
        e,
        IdentityError::IdLength { .. } | IdentityError::IdInvalid { .. }
    )
}

/// Why a Put, Get or ListBlobs was refused.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("a blob root is 32 bytes (64 hex digits, as b3sum prints it); got {len} bytes")]
    MalformedRoot { len: usize },
    #[error("{0}")]
    Id(#[from] IdentityError),
    #[error("blob of {size} bytes is above this network's limit of {limit} bytes")]
    BlobTooLarge { size: u64, limit: u64 },
    #[error("--replicas {asked} is above the most this network keeps ({max})")]
    TooManyReplicas { asked: u32, max: u32 },
    #[error("Put is malformed: {0}")]
    BadUpload(&'static str),
    #[error("upload broke after {received} of {declared} bytes: {cause}")]
    UploadBroke {
        received: u64,
        declared: u64,
        cause: String,
    },
    #[error("upload carries more than the {declared} bytes its header announced")]
    Overlong { declared: u64 },
    #[error("upload ended after {received} of the {declared} bytes its header announced")]
    Short { received: u64, declared: u64 },
    #[error(
        "the uploaded bytes hash to {hash}, not to the root the header names ({})",
        hex::encode(.root)
    )]
    RootMismatch { hash: blake3::Hash, root: [u8; 32] },
    #[error(
        "{wanted} copies asked, but only {room} attached workers have room for {size} bytes{}; ask for fewer replicas or try again when more workers are attached",
        if *.holders == 0 { String::new() } else { format!(" besides the {holders} already holding it") }
    )]
    NoRoom {
        wanted: u32,
        room: usize,
        size: u64,
        holders: usize,
    },
    #[error(
        "only {stored} of {wanted} workers stored blob {}; the others failed or left. Put again to retry",
        hex::encode(.root)
    )]
    Underplaced {
        stored: usize,
        wanted: u32,
        root: [u8; 32],
    },
    #[error(
        "blob {} is known with {known} bytes, the header says {declared}",
        hex::encode(.root)
    )]
    SizeConflict {
        root: [u8; 32],
        known: u64,
        declared: u64,
    },
    #[error("no blob {} is stored on this network", hex::encode(.root))]
    NotFound { root: [u8; 32] },
    #[error("range {start}..{end} does not lie within blob {} of {size} bytes", hex::encode(.root))]
    OutOfRange {
        start: u64,
        end: u64,
        root: [u8; 32],
        size: u64,
    },
    #[error(
        "blob {} has {holders} known holders, none of them online{}; try again later",
        hex::encode(.root),
        if *.excluded { " and not excluded" } else { "" }
    )]
    NoHolderOnline {
        root: [u8; 32],
        holders: usize,
        excluded: bool,
    },
    #[error("{0}")]
    HolderUnreachable(String),
    #[error("holder {holder} failed mid-stream: {why}; ask again excluding it")]
    HolderFailed { holder: String, why: String },
    #[error(
        "every online holder of blob {} charges for downloads (from {price} per byte); pay with `dualrig get --pay` (DownloadQuote, then tickets on the Get)",
        hex::encode(.root)
    )]
    DownloadPaymentRequired { root: [u8; 32], price: u64 },
    #[error(
        "download quote {quote_id} is for {quoted}, not {asked}; ask for a quote of the range you get"
    )]
    DownloadQuoteMismatch {
        quote_id: String,
        quoted: String,
        asked: String,
    },
    #[error(
        "payment covers {covered} bytes, the range is {bytes} (the quote's price {price} per byte)"
    )]
    DownloadPaymentShort {
        covered: u64,
        bytes: u64,
        price: u64,
    },
    #[error(
        "payment refused: a ticket is not under the params quoted for holder {holder}; pay under the params the quote gave"
    )]
    NotQuotedParams { holder: String },
    #[error("holder {holder} refused the download's payment: {why}")]
    HolderRefusedPayment { holder: String, why: String },
    #[error(
        "collective '{name}' sells no bytes past its members' free allotment of {free_bytes} bytes a round (its price is 0); fetch without --pay within the allotment"
    )]
    CollectiveSellsNoBytes { name: String, free_bytes: u64 },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("cannot stage the upload: {0}")]
    Staging(#[from] std::io::Error),
    #[error(transparent)]
    Index(#[from] IndexError),
    /// Over a staging budget, short of disk, or past an upload deadline.
    #[error(transparent)]
    Staged(#[from] CoordinatorError),
    #[error(
        "blob {} belongs to collective '{name}'; only its members fetch it: join with an access stake of {access_stake} units (`dualrig collective join {name}`) and sign the Get (`dualrig get --key`)",
        hex::encode(.root)
    )]
    Gated {
        root: [u8; 32],
        name: String,
        access_stake: u64,
    },
    #[error("signed Get refused: {0}")]
    GetAuth(String),
    #[error(
        "blob {} was stored {}; only a blob put for collective '{name}' (`dualrig put --collective {name}`) can be added to it",
        hex::encode(.root),
        match .stored_for { Some(c) => format!("for collective '{c}'"), None => "public".to_owned() }
    )]
    NotStoredFor {
        root: [u8; 32],
        name: String,
        stored_for: Option<String>,
    },
}

impl From<StorageError> for Status {
    fn from(e: StorageError) -> Self {
        let e = match e {
            StorageError::Staged(inner) => return Status::from(inner),
            StorageError::Ledger(inner) => return Status::from(inner),
            other => other,
        };
        let code = match &e {
            StorageError::Id(id) if !is_malformed_id(id) => Code::Unauthenticated,
            StorageError::MalformedRoot { .. }
            | StorageError::Id(_)
            | StorageError::BlobTooLarge { .. }
            | StorageError::TooManyReplicas { .. }
            | StorageError::BadUpload(_)
            | StorageError::UploadBroke { .. }
            | StorageError::Overlong { .. }
            | StorageError::Short { .. }
            | StorageError::RootMismatch { .. }
            | StorageError::SizeConflict { .. } => Code::InvalidArgument,
            StorageError::NoRoom { .. }
            | StorageError::DownloadPaymentRequired { .. }
            | StorageError::DownloadQuoteMismatch { .. }
            | StorageError::DownloadPaymentShort { .. }
            | StorageError::NotQuotedParams { .. }
            | StorageError::HolderRefusedPayment { .. }
            | StorageError::CollectiveSellsNoBytes { .. }
            | StorageError::NotStoredFor { .. } => Code::FailedPrecondition,
            StorageError::Gated { .. } => Code::PermissionDenied,
            StorageError::GetAuth(_) => Code::Unauthenticated,
            StorageError::NotFound { .. } => Code::NotFound,
            StorageError::OutOfRange { .. } => Code::OutOfRange,
            StorageError::Underplaced { .. }
            | StorageError::NoHolderOnline { .. }
            | StorageError::HolderUnreachable(_)
            | StorageError::HolderFailed { .. } => Code::Unavailable,
            StorageError::Staging(_) | StorageError::Index(_) => Code::Internal,
            StorageError::Staged(_) | StorageError::Ledger(_) => Code::Internal,
        };
        Status::new(code, e.to_string())
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
            | LedgerError::BadFraction { .. }
            | LedgerError::CollectiveName(_)
            | LedgerError::CollectiveReplicas { .. }
            | LedgerError::EmptyReason
            | LedgerError::ReasonTooLong { .. }
            | LedgerError::BadWindow { .. }
            | LedgerError::RedirectShare { .. } => Code::InvalidArgument,
            LedgerError::NoSuchCollective { .. } | LedgerError::NoSuchProposal { .. } => {
                Code::NotFound
            }
            LedgerError::CollectiveExists { .. }
            | LedgerError::BlobAlreadyInCollective { .. }
            | LedgerError::AlreadyMember { .. }
            | LedgerError::AlreadyVoted { .. } => Code::AlreadyExists,
            LedgerError::NotCollectiveOwner { .. } | LedgerError::NotMemberForGet { .. } => {
                Code::PermissionDenied
            }
            LedgerError::AllotmentUsed { .. } => Code::ResourceExhausted,
            LedgerError::StaleNonce { .. } => Code::Aborted,
            LedgerError::InsufficientBalance { .. }
            | LedgerError::InsufficientBond { .. }
            | LedgerError::InsufficientPool { .. }
            | LedgerError::NothingUnbonded { .. }
            | LedgerError::NothingToUnlock { .. }
            | LedgerError::AlreadyUnlocking { .. }
            | LedgerError::NotUnlocking { .. }
            | LedgerError::UnlockPending { .. }
            | LedgerError::SenderCannotPay { .. }
            | LedgerError::TicketForwarded { .. }
            | LedgerError::NotMember { .. }
            | LedgerError::AccessStakeShort { .. }
            | LedgerError::WeightForSuspended { .. }
            | LedgerError::WeightForNonWorker { .. }
            | LedgerError::WeightTooSmall { .. }
            | LedgerError::PriceAboveLimit { .. }
            | LedgerError::ProposalBondShort { .. }
            | LedgerError::VoteNotOpen { .. }
            | LedgerError::VoteClosed { .. }
            | LedgerError::NoStakeAtSnapshot { .. }
            | LedgerError::NoVerifiedWork { .. }
            | LedgerError::CoordinatorKeyInUse { .. } => Code::FailedPrecondition,
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
