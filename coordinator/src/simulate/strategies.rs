//! The synthetic actors of the incentive simulation: what each strategy is, which honest play it is
//! measured against, and how it answers a job or a storage challenge. Only the answer is the actor's:
//! whether the answer is caught, and what being caught costs, is the configured check and the ledger.

use dualrig_proto::identity::{Identity, PublicId};
use rand::Rng;

use super::Actors;

/// One way to play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Strategy {
    /// Transcodes every job it is drawn for.
    HonestTranscoder,
    /// Transcodes its first jobs, which are always content-checked, then returns a blank or other
    /// video instead of the transcode.
    LazyTranscoder,
    /// Buys mining weight from the SIP once, to win draws, and would sell it back if it could.
    SipDrainer,
    /// Keeps every blob it is given and proves it when challenged.
    HonestHost,
    /// Keeps a fraction of each blob's chunks and hopes the challenge misses the rest.
    DataDeleter,
    /// Keeps only the hash trees, and fetches the challenged chunks from another holder when asked.
    Outsourcer,
    /// Spreads the bytes of one host over many fresh keys, each at the least stake, and moves them to
    /// fresh keys from time to time for the capacity bonus of a fresh key's first proofs.
    Sybil,
    /// A client that pays its workers' tickets from a funded deposit.
    HonestSender,
    /// A client that unlocks its deposit early and keeps it short, so its tickets could not be paid.
    TicketWithholder,
    /// Bonds stake just before it proposes that the SIP pay it, bonds more once the proposal is known,
    /// and votes for it.
    VoteCapturer,
}

/// What an actor does in the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Transcoder,
    Host,
    Sender,
    Stakeholder,
}

impl Strategy {
    pub const ALL: [Self; 10] = [
        Self::HonestTranscoder,
        Self::LazyTranscoder,
        Self::SipDrainer,
        Self::HonestHost,
        Self::DataDeleter,
        Self::Outsourcer,
        Self::Sybil,
        Self::HonestSender,
        Self::TicketWithholder,
        Self::VoteCapturer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::HonestTranscoder => "honest transcoder",
            Self::LazyTranscoder => "lazy transcoder",
            Self::SipDrainer => "SIP drainer",
            Self::HonestHost => "honest host",
            Self::DataDeleter => "data deleter",
            Self::Outsourcer => "outsourcer",
            Self::Sybil => "Sybil worker",
            Self::HonestSender => "honest sender",
            Self::TicketWithholder => "ticket withholder",
            Self::VoteCapturer => "vote capturer",
        }
    }

    pub fn role(self) -> Role {
        match self {
            Self::HonestTranscoder | Self::LazyTranscoder | Self::SipDrainer => Role::Transcoder,
            Self::HonestHost | Self::DataDeleter | Self::Outsourcer | Self::Sybil => Role::Host,
            Self::HonestSender | Self::TicketWithholder => Role::Sender,
            Self::VoteCapturer => Role::Stakeholder,
        }
    }

    /// The honest play a cheat is measured against: the same role played straight. `None` for honest
    /// play itself, and for the vote capturer, whose honest counterpart keeps the same tokens unspent
    /// and earns nothing from them.
    pub fn honest(self) -> Option<Self> {
        match self {
            Self::LazyTranscoder | Self::SipDrainer => Some(Self::HonestTranscoder),
            Self::DataDeleter | Self::Outsourcer | Self::Sybil => Some(Self::HonestHost),
            Self::TicketWithholder => Some(Self::HonestSender),
            Self::HonestTranscoder | Self::HonestHost | Self::HonestSender | Self::VoteCapturer => {
                None
            }
        }
    }

    pub fn is_honest(self) -> bool {
        matches!(
            self,
            Self::HonestTranscoder | Self::HonestHost | Self::HonestSender
        )
    }
}

/// One synthetic participant: its keys and what it has spent and gained outside the ledger.
#[derive(Debug)]
pub struct Actor {
    pub strategy: Strategy,
    /// Every key it will ever use; `active` are the ones in use now (several for the Sybil).
    pub keys: Vec<Identity>,
    pub active: Vec<usize>,
    /// Secret its tickets' `recipient_rand` is derived from.
    pub secret: [u8; 32],
    /// Blobs each key holds, by key index (hosts).
    pub blobs: Vec<u64>,
    /// Off-ledger costs so far: work, disk, fetches, capital locked in stake.
    pub cost: f64,
    /// Off-ledger value received so far: work done for a sender.
    pub value: f64,
    /// Ledger worth (see `super::worth`) at the start.
    pub start_worth: u128,
    /// Verified jobs so far, for the content check of a worker's first jobs.
    pub jobs_verified: u64,
    pub events: Events,
}

/// What happened to an actor, for the report.
#[derive(Debug, Default, Clone, Copy)]
pub struct Events {
    pub jobs: u64,
    pub slashes: u64,
    pub slashed: u64,
    pub forfeited: u64,
    pub refused_jobs: u64,
    pub missed_deadlines: u64,
    pub weight_bought: u64,
    pub spent_on_weight: u64,
    pub capacity_bonus: u64,
    pub vote_weight: u64,
    pub vote_refused: bool,
    pub proposal_paid: u64,
}

impl Actor {
    pub fn new(strategy: Strategy, keys: Vec<Identity>, active: usize, secret: [u8; 32]) -> Self {
        let blobs = vec![0; keys.len()];
        Self {
            strategy,
            keys,
            active: (0..active).collect(),
            secret,
            blobs,
            cost: 0.0,
            value: 0.0,
            start_worth: 0,
            jobs_verified: 0,
            events: Events::default(),
        }
    }

    pub fn key_of(&self, id: &PublicId) -> Option<usize> {
        self.keys.iter().position(|k| k.id() == *id)
    }
}

/// How a worker answers a job it was drawn for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobAnswer {
    /// The transcode, at the actor's cost of one job.
    Transcoded,
    /// Something else, at almost no cost; a content check finds it.
    Blank,
}

/// `verified` is how many of its jobs were verified so far, `always_checked` how many first jobs the
/// content check always samples.
pub fn job_answer(strategy: Strategy, verified: u64, always_checked: u64) -> JobAnswer {
    match strategy {
        Strategy::LazyTranscoder if verified >= always_checked => JobAnswer::Blank,
        _ => JobAnswer::Transcoded,
    }
}

/// What a host keeps of the bytes it is paid to hold, as a share of them (what its disk costs).
pub fn kept_share(strategy: Strategy, actors: &Actors) -> f64 {
    match strategy {
        Strategy::DataDeleter => actors.deleter_keeps,
        Strategy::Outsourcer => actors.outboard_share,
        _ => 1.0,
    }
}

/// How a host's answer to one challenge goes: which of the `challenged` blobs pass, whether the
/// answer was late (every blob fails), and what fetching the chunks cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChallengeAnswer {
    pub passed: u64,
    pub late: bool,
    pub fetch_cost: f64,
}

pub fn answer_challenge<R: Rng + ?Sized>(
    strategy: Strategy,
    challenged: u64,
    k: u32,
    actors: &Actors,
    rng: &mut R,
) -> ChallengeAnswer {
    match strategy {
        Strategy::DataDeleter => {
            // k distinct chunks of a blob missing a share 1 − f: every one held with chance at most
            // f^k (PROTOCOL §6.4), the bound the simulation uses.
            let pass = actors.deleter_keeps.powi(k as i32);
            let passed = (0..challenged).filter(|_| rng.gen_bool(pass)).count() as u64;
            ChallengeAnswer {
                passed,
                late: false,
                fetch_cost: 0.0,
            }
        }
        Strategy::Outsourcer => {
            let fetched = challenged as f64 * f64::from(k) * CHUNK_BYTES;
            let late = rng.gen_bool(actors.outsourcer_miss);
            ChallengeAnswer {
                passed: if late { 0 } else { challenged },
                late,
                fetch_cost: fetched * actors.fetch_price_per_byte,
            }
        }
        _ => ChallengeAnswer {
            passed: challenged,
            late: false,
            fetch_cost: 0.0,
        },
    }
}

/// Bytes of one chunk of the proof tree (PROTOCOL §6.1).
pub const CHUNK_BYTES: f64 = 1024.0;
