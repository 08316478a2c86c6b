//! Why the ledger refused an operation; every refusal leaves the ledger unchanged.

use dualrig_proto::identity::PublicId;
use dualrig_proto::ticket::TicketError;

use super::genesis::GenesisError;
use dualrig_proto::ledger_request::RequestError;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("request: {0}")]
    Request(RequestError),
    #[error(
        "request signature does not verify under account {account}; only an account's key moves its funds"
    )]
    BadSignature { account: PublicId },
    #[error(
        "request nonce {nonce} of account {account} is not above its last accepted nonce {last}; sign again with a higher one"
    )]
    StaleNonce {
        account: PublicId,
        nonce: u64,
        last: u64,
    },
    #[error("{what} is not a valid ed25519 public key")]
    InvalidAccount { what: &'static str },
    #[error("an amount of zero moves nothing")]
    ZeroAmount,
    #[error("account {account} has {available} units; the operation needs {needed}")]
    InsufficientBalance {
        account: PublicId,
        available: u64,
        needed: u64,
    },
    #[error("{delegator} has {bonded} units bonded to {worker}; cannot unbond {needed}")]
    InsufficientBond {
        worker: PublicId,
        delegator: PublicId,
        bonded: u64,
        needed: u64,
    },
    #[error("pool holds {available} units; cannot pay {needed}")]
    InsufficientPool { available: u64, needed: u64 },
    #[error("no unbonded stake is ready for {account}{}", next_release.map(|r| format!("; the next is released at round {r}")).unwrap_or_default())]
    NothingUnbonded {
        account: PublicId,
        next_release: Option<u64>,
    },
    #[error("sender {sender} has no deposit or reserve to unlock")]
    NothingToUnlock { sender: PublicId },
    #[error("sender {sender} is already unlocking; it may withdraw at round {withdraw_round}")]
    AlreadyUnlocking {
        sender: PublicId,
        withdraw_round: u64,
    },
    #[error("sender {sender} has not unlocked its funds; unlock, then wait the unlock period")]
    NotUnlocking { sender: PublicId },
    #[error(
        "sender {sender} may withdraw at round {withdraw_round}; this is round {current_round}"
    )]
    UnlockPending {
        sender: PublicId,
        withdraw_round: u64,
        current_round: u64,
    },
    #[error("only the ticket's recipient {recipient} may redeem it, not {account}")]
    NotRecipient {
        account: PublicId,
        recipient: PublicId,
    },
    #[error("ticket: {0}")]
    Ticket(#[from] TicketError),
    #[error("ticket {} was already redeemed", hex::encode(&ticket_hash[..8]))]
    AlreadyRedeemed { ticket_hash: [u8; 32] },
    #[error(
        "ticket {} already paid for a download; every range needs fresh tickets (a new nonce each)",
        hex::encode(&ticket_hash[..8])
    )]
    TicketForwarded { ticket_hash: [u8; 32] },
    #[error(
        "sender {sender} can pay {recipient} nothing this round (deposit empty, reserve share used up or recipient not eligible); try again next round"
    )]
    SenderCannotPay {
        sender: PublicId,
        recipient: PublicId,
    },
    #[error("{0}")]
    CollectiveName(dualrig_proto::access::NameError),
    #[error("a collective keeps at most {max} copies of each blob; {asked} asked")]
    CollectiveReplicas { asked: u32, max: u32 },
    #[error("collective '{name}' already exists; pick another name")]
    CollectiveExists { name: String },
    #[error("no collective is named '{name}'; `dualrig collective ls` lists them")]
    NoSuchCollective { name: String },
    #[error("only collective '{name}''s owner {owner} may add to it, not {account}")]
    NotCollectiveOwner {
        name: String,
        owner: PublicId,
        account: PublicId,
    },
    #[error("blob {} is already in collective '{name}'", hex::encode(root))]
    BlobAlreadyInCollective { name: String, root: [u8; 32] },
    #[error("{account} is already a member of collective '{name}'")]
    AlreadyMember { name: String, account: PublicId },
    #[error("{account} is not a member of collective '{name}'; nothing to leave")]
    NotMember { name: String, account: PublicId },
    #[error(
        "joining collective '{name}' locks an access stake of {needed} units; account {account} has {available}"
    )]
    AccessStakeShort {
        name: String,
        account: PublicId,
        needed: u64,
        available: u64,
    },
    #[error(
        "blob belongs to collective '{name}' and {account} is not a member; join it with an access stake of {access_stake} units (`dualrig collective join {name}`)"
    )]
    NotMemberForGet {
        name: String,
        account: PublicId,
        access_stake: u64,
    },
    #[error(
        "this round's free allotment of collective '{name}' is used ({used} of {free_bytes} bytes; this Get asks {asked}); it renews at round {renews_round}, or pay the holder for the bytes (`dualrig get --pay`)"
    )]
    AllotmentUsed {
        name: String,
        free_bytes: u64,
        used: u64,
        asked: u64,
        price_per_byte: u64,
        renews_round: u64,
    },
    #[error(
        "worker {worker} is suspended until round {resume_round}; mining weight bought now would bleed away unused, buy it once the suspension ends"
    )]
    WeightForSuspended { worker: PublicId, resume_round: u64 },
    #[error(
        "{worker} has {stake} units of stake; mining weight goes only to a worker with at least {min_stake} (bond stake on it first)"
    )]
    WeightForNonWorker {
        worker: PublicId,
        stake: u64,
        min_stake: u64,
    },
    #[error("{amount} units buy no mining weight at the SIP's price{}; pay more", spot_price_ppm.map(|p| format!(" ({} units per unit of weight)", dualrig_proto::amount::format_tokens(p))).unwrap_or_else(|| " (all weight is out)".into()))]
    WeightTooSmall {
        amount: u64,
        spot_price_ppm: Option<u64>,
    },
    #[error(
        "this purchase costs {} units per unit of weight, above the limit of {}; raise --max-price or buy less",
        dualrig_proto::amount::format_tokens(*price_ppm),
        dualrig_proto::amount::format_tokens(*max_price_ppm)
    )]
    PriceAboveLimit { price_ppm: u64, max_price_ppm: u64 },
    #[error("a proposal needs a reason: say what the payment is for")]
    EmptyReason,
    #[error("proposal reason is {len} bytes; at most {max}")]
    ReasonTooLong { len: usize, max: usize },
    #[error("an operator-support proposal looks back 1 to {max} rounds; {window_rounds} asked")]
    BadWindow { window_rounds: u64, max: u64 },
    #[error(
        "a proposal locks a bond of {needed} units; account {account} has {available} (returned if the vote reaches quorum)"
    )]
    ProposalBondShort {
        account: PublicId,
        available: u64,
        needed: u64,
    },
    #[error("no proposal is numbered {id}; `dualrig sip proposals` lists them")]
    NoSuchProposal { id: u64 },
    #[error("voting on proposal {id} opens at round {vote_start}; this is round {round}")]
    VoteNotOpen {
        id: u64,
        vote_start: u64,
        round: u64,
    },
    #[error("voting on proposal {id} closed when round {vote_end} began; this is round {round}")]
    VoteClosed { id: u64, vote_end: u64, round: u64 },
    #[error("{voter} already voted {} on proposal {id}; a vote is final", choice.name())]
    AlreadyVoted {
        id: u64,
        voter: PublicId,
        choice: dualrig_proto::ledger_request::VoteChoice,
    },
    #[error(
        "{voter} had no stake bonded or delegated when round {snapshot_round} began, proposal {id}'s snapshot; stake bonded later does not vote on it"
    )]
    NoStakeAtSnapshot {
        id: u64,
        voter: PublicId,
        snapshot_round: u64,
    },
    #[error("no verified work (hosting credit) in the last {window_rounds} rounds to share")]
    NoVerifiedWork { window_rounds: u64 },
    #[error("a redirect share is 0 to 1,000,000 ppm (0 % to 100 %); {share_ppm} asked")]
    RedirectShare { share_ppm: u32 },
    #[error("{what} does not fit in the ledger")]
    Overflow { what: &'static str },
    #[error("slash fraction {ppm} ppm is above 1,000,000 (the whole stake)")]
    BadFraction { ppm: u32 },
    #[error("genesis: {0}")]
    Genesis(#[from] GenesisError),
    #[error(
        "coordinator key {id} is in use by another running coordinator (advertised at {advertise_addr}, last heartbeat at unix time {last_seen_unix}); give this one its own --data-dir, or stop the other first"
    )]
    CoordinatorKeyInUse {
        id: PublicId,
        advertise_addr: String,
        last_seen_unix: u64,
    },
    #[error("ledger database holds an impossible value: {0}")]
    Corrupt(String),
    #[error("ledger database: {0}")]
    Storage(#[from] crate::db::DbError),
    #[error("ledger task failed: {0}")]
    Task(String),
}

impl From<rusqlite::Error> for LedgerError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Storage(e.into())
    }
}

impl crate::db::DbFailure for LedgerError {
    fn db_error(&self) -> Option<&crate::db::DbError> {
        match self {
            Self::Storage(e) => Some(e),
            _ => None,
        }
    }
}

impl From<RequestError> for LedgerError {
    /// A bad signature is the ledger's own refusal, whoever found it.
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::BadSignature { account } => Self::BadSignature { account },
            other => Self::Request(other),
        }
    }
}
