//! The durable ledger: accounts, stake, deposits and reserves, ticket redemption (PROTOCOL §3, §4).
//!
//! State lives in SQLite (WAL, `synchronous=FULL`), and every operation is one `BEGIN IMMEDIATE`
//! transaction: it commits whole or, when refused, leaves the ledger exactly as it was. Several
//! processes or connections may open the same file; SQLite serializes their writes.
//!
//! Accounts move their own funds only through a [`SignedRequest`]: an [`Operation`] signed by the
//! account's key with a nonce above the last one the ledger accepted from it. The coordinator itself
//! advances rounds, slashes and pays rewards from the pool with the unsigned methods.
//!
//! [`Ledger`]'s methods block (on SQLite, and on `fsync` at every commit). From async code either call
//! them inside `tokio::task::spawn_blocking`, or use [`Ledger::call`], which does exactly that.
//!
//! Every amount is a u64 of base units and all arithmetic is checked. SQLite stores i64, so the total
//! supply is capped at `i64::MAX` when the genesis is applied, and hosting rewards, the only mint
//! (`hosting`), stop short of it: no balance can exceed what the database holds.

mod broker;
mod capacity;
mod collective;
mod downloads;
mod draw;
mod error;
mod evidence;
mod genesis;
mod governance;
mod group;
mod hosting;
mod lease;
mod registry;
mod schema;
mod sessions;
mod sip;
mod snapshot;
mod stake;
mod store;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dualrig_proto::identity::PublicId;

use crate::db::{Backend, Connection, DbFailure, Store};

pub use broker::{Redemption, SenderAccount};
pub use capacity::{CapacityBonus, Redirect};
pub use collective::{Admission, Collective, CollectiveStake};
pub use downloads::Served;
pub use draw::{Candidate, draw_weighted, weight};
pub use dualrig_proto::ledger_request::{
    CollectiveRules, Operation, ProposalKind, REQUEST_CONTEXT, RequestError, SignedRequest,
    VoteChoice, request_message,
};
pub use error::LedgerError;
pub use genesis::{Genesis, GenesisAccount, GenesisError};
pub use governance::{GovernanceRules, MAX_REASON, MAX_WINDOW_ROUNDS, Proposal, ProposalState};
pub use group::{GroupCommit, MAX_GROUP};
pub use hosting::{
    HELD_BACK_STEPS, HostingRound, HostingRules, Payout, ProofCredit, Statement, WorkerShare,
    held_amount, split,
};
pub use lease::ROUND_CLOCK;
pub use registry::{CoordinatorEntry, Registration};
pub use sessions::{SessionBonus, SessionProof};
pub use sip::{Bleed, Curve, Quote, SipFlow, SipRules, SipStatus, Source as SipSource};
pub use snapshot::LedgerSnapshot;
pub use stake::{SlashFraction, SlashNote, SlashRecord, StoredEvidence, UnbondingEntry};

/// One request's outcome in a batch: its receipt and the round it was applied in, or why it was
/// refused.
pub type Applied = Result<(Receipt, u64), LedgerError>;

/// How long a connection waits for another writer before giving up with a storage error.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The ledger's rules that are not in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerConfig {
    /// Rounds between an unbond and the withdrawal of its stake.
    pub unbonding_rounds: u64,
    /// Rounds between a sender's unlock and the withdrawal of its deposit and reserve; longer than a
    /// ticket's lifetime, so pending winners can still be redeemed.
    pub unlock_rounds: u64,
    /// Least stake (bonded plus delegated) that makes a worker eligible for jobs.
    pub min_stake: u64,
    /// Rounds a slashed worker is suspended.
    pub suspend_rounds: u64,
    /// How hosting rewards are minted and held back.
    pub hosting: HostingRules,
    /// Share, in parts per million, of what a download's ticket pays at redemption that goes to the
    /// `hosting_fees` pot instead of its recipient.
    pub download_fee_share_ppm: u32,
    /// The service infrastructure pool: its fee and mint shares, and the mining weight curve.
    pub sip: SipRules,
    /// How SIP proposals are bonded, voted on and decided.
    pub governance: GovernanceRules,
    /// Units the capacity fund pays per byte a worker proves beyond its previous maximum.
    pub capacity_bonus_per_byte: u64,
    /// Units the capacity fund pays per encoder session a worker proves, by overlapping verified
    /// jobs, beyond its previous maximum.
    pub capacity_bonus_per_session: u64,
}

impl Default for LedgerConfig {
    /// A day of 60 s rounds to unbond or unlock, one token to be eligible, ten rounds of suspension.
    fn default() -> Self {
        Self {
            unbonding_rounds: 1440,
            unlock_rounds: 1440,
            min_stake: 1_000_000,
            suspend_rounds: 10,
            hosting: HostingRules::DEFAULT,
            download_fee_share_ppm: 100_000,
            sip: SipRules::DEFAULT,
            governance: GovernanceRules::DEFAULT,
            capacity_bonus_per_byte: 0,
            capacity_bonus_per_session: 0,
        }
    }
}

/// What an accepted [`SignedRequest`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receipt {
    /// The operation moved funds as asked.
    Done,
    /// Unbonded stake or a sender's funds came back to the balance.
    Withdrawn { amount: u64 },
    /// A winning ticket was redeemed.
    Redeemed(Redemption),
    /// Mining weight was bought from the SIP.
    Bought { weight: u64 },
    /// A proposal was recorded under this number.
    Proposed { id: u64 },
    /// A vote was counted with this weight (the voter's stake at the snapshot).
    Voted { weight: u64 },
}

/// One account's state, read in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    pub balance: u64,
    /// Last request nonce accepted from the account (0 before its first).
    pub last_nonce: u64,
    pub sender: SenderAccount,
    /// Stake the account bonded to itself as a worker.
    pub bonded_to_self: u64,
    /// Bonded plus delegated stake on the account as a worker.
    pub stake: u64,
    pub unbonding: Vec<UnbondingEntry>,
    pub round: u64,
    pub suspended_until: Option<u64>,
    /// Access stake locked in collectives or on its way back.
    pub collective_stakes: Vec<CollectiveStake>,
    /// Its capacity redirect.
    pub redirect: Redirect,
    /// Mining weight bought from the SIP for the account as a worker.
    pub mining_weight: u64,
}

/// A worker the draw may pick, with what it is weighed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EligibleWorker {
    pub worker: PublicId,
    pub stake: u64,
    /// Its mining weight in stake units (`weight × k`).
    pub mining: u64,
}

/// A handle on the ledger database. `Send + Sync`; share it in an `Arc`.
#[derive(Debug)]
pub struct Ledger {
    store: Store,
    config: LedgerConfig,
}

impl Ledger {
    /// Opens (creating when absent) the ledger at `path`. `genesis` is applied if and only if the
    /// database has never had one; on later runs it is ignored.
    pub fn open(path: &Path, config: LedgerConfig, genesis: &Genesis) -> Result<Self, LedgerError> {
        Self::open_sqlite(rusqlite::Connection::open(path)?, config, genesis, true)
    }

    /// A ledger that lives in memory only, for tests and simulations.
    pub fn open_in_memory(config: LedgerConfig, genesis: &Genesis) -> Result<Self, LedgerError> {
        Self::open_sqlite(
            rusqlite::Connection::open_in_memory()?,
            config,
            genesis,
            false,
        )
    }

    /// Opens (creating its tables when absent) the ledger in the PostgreSQL database at `url`, which
    /// several coordinators may share. `genesis` is applied once, by whichever coordinator comes first.
    pub fn open_postgres(
        url: &str,
        config: LedgerConfig,
        genesis: &Genesis,
    ) -> Result<Self, LedgerError> {
        Self::init(Store::postgres(url)?, config, genesis)
    }

    fn open_sqlite(
        conn: rusqlite::Connection,
        config: LedgerConfig,
        genesis: &Genesis,
        durable: bool,
    ) -> Result<Self, LedgerError> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        schema::configure(&conn, durable)?;
        Self::init(Store::sqlite(conn), config, genesis)
    }

    fn init(store: Store, config: LedgerConfig, genesis: &Genesis) -> Result<Self, LedgerError> {
        store.exclusive(|| {
            store.write(|tx| {
                schema::create(tx)?;
                schema::apply_genesis_once(tx, genesis)
            })
        })?;
        Ok(Self { store, config })
    }

    /// Which database holds this ledger.
    pub fn backend(&self) -> Backend {
        self.store.backend()
    }

    pub fn config(&self) -> &LedgerConfig {
        &self.config
    }

    /// Runs `f` on a blocking thread, for async callers.
    pub async fn call<T, F>(self: &Arc<Self>, f: F) -> Result<T, LedgerError>
    where
        F: FnOnce(&Ledger) -> Result<T, LedgerError> + Send + 'static,
        T: Send + 'static,
    {
        let ledger = Arc::clone(self);
        tokio::task::spawn_blocking(move || f(&ledger))
            .await
            .map_err(|e| LedgerError::Task(e.to_string()))?
    }

    /// Runs `f` in one write transaction, committed if `f` succeeds and rolled back otherwise. On
    /// PostgreSQL `f` may run more than once (see [`Store::write`]); it acts only on the transaction.
    fn write<T>(
        &self,
        mut f: impl FnMut(&Connection<'_>, &LedgerConfig) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        self.store.write(|tx| f(tx, &self.config))
    }

    /// Runs `f` in one read transaction, so it sees a single consistent state.
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection<'_>, &LedgerConfig) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        self.store.read(|tx| f(tx, &self.config))
    }

    /// Checks and applies an account's signed request.
    ///
    /// The signature and everything else that needs no state (a redeemed ticket's signature, its
    /// `recipient_rand` and its win) are checked before the write lock is taken.
    pub fn execute(&self, request: &SignedRequest) -> Result<Receipt, LedgerError> {
        let operation = check_stateless(request)?;
        self.write(|tx, config| apply(tx, config, request, operation.clone()))
    }

    /// [`Self::execute`] for many requests in one transaction: one fsync for all (group commit).
    /// Each request runs in its own savepoint, so one that is refused leaves no trace and the others
    /// apply exactly as they would alone, in order. The outer `Err` is the commit failing, and then
    /// none of them applied. Each applied one comes with the round it was applied in.
    pub fn execute_batch(&self, requests: &[SignedRequest]) -> Result<Vec<Applied>, LedgerError> {
        self.execute_checked(requests.iter().cloned().map(Checked::new).collect())
    }

    /// [`Self::execute_batch`] for requests already through [`Checked::new`] (a refusal there keeps its
    /// place in the answer).
    pub fn execute_checked(
        &self,
        requests: Vec<Result<Checked, LedgerError>>,
    ) -> Result<Vec<Applied>, LedgerError> {
        // Refusals stay outside the transaction, which on PostgreSQL may run more than once.
        let applied = self.write(|tx, config| {
            let round = store::round(tx)?;
            let mut out = Vec::with_capacity(requests.len());
            for checked in &requests {
                let Ok(checked) = checked else {
                    out.push(None);
                    continue;
                };
                tx.execute_batch("SAVEPOINT request")?;
                let outcome = match apply(tx, config, &checked.request, checked.operation.clone()) {
                    Ok(receipt) => {
                        tx.execute_batch("RELEASE request")?;
                        Ok((receipt, round))
                    }
                    // A lost race is the whole transaction's: every request runs again.
                    Err(e) if e.db_error().is_some_and(crate::db::DbError::is_retryable) => {
                        return Err(e);
                    }
                    Err(e) => {
                        tx.execute_batch("ROLLBACK TO request; RELEASE request")?;
                        Err(e)
                    }
                };
                out.push(Some(outcome));
            }
            Ok(out)
        })?;
        Ok(requests
            .into_iter()
            .zip(applied)
            .map(|(checked, outcome)| match (checked, outcome) {
                (Err(refused), _) => Err(refused),
                (Ok(_), Some(outcome)) => outcome,
                (Ok(_), None) => Err(LedgerError::Task("a request was not applied".into())),
            })
            .collect())
    }

    /// Starts the next round and returns its number. Mining weight bleeds back to the SIP's curve;
    /// every proposal whose voting period ended with the last round is tallied, and executed once.
    pub fn advance_round(&self) -> Result<u64, LedgerError> {
        self.write(advance)
    }

    /// [`Self::advance_round`] by the coordinator `holder`, if it holds the round clock's lease at
    /// `now_unix` (taking or renewing it for `lease_secs`); `None`, with nothing changed, while another
    /// coordinator's lease runs. Coordinators sharing one database all tick; one advances.
    pub fn advance_round_leased(
        &self,
        holder: &PublicId,
        now_unix: u64,
        lease_secs: u64,
    ) -> Result<Option<u64>, LedgerError> {
        self.write(|tx, config| {
            if !lease::hold(tx, ROUND_CLOCK, holder, now_unix, lease_secs)? {
                return Ok(None);
            }
            advance(tx, config).map(Some)
        })
    }

    /// Who holds the round clock's lease, and until when (seconds since the epoch).
    pub fn round_clock_holder(&self) -> Result<Option<(PublicId, u64)>, LedgerError> {
        self.read(|tx, _| lease::holder(tx, ROUND_CLOCK))
    }

    /// Records that the coordinator `me` is alive at `now_unix` (registering it on its first call).
    /// Refused with [`LedgerError::CoordinatorKeyInUse`], changing nothing, when another run with the
    /// same key heartbeat within `silent_after` seconds. The round clock's holder also deletes rows
    /// silent for more than `forget_after` seconds, in the same transaction.
    pub fn coordinator_heartbeat(
        &self,
        me: &Registration,
        now_unix: u64,
        silent_after: u64,
        forget_after: u64,
    ) -> Result<(), LedgerError> {
        self.write(|tx, _| registry::heartbeat(tx, me, now_unix, silent_after, forget_after))
    }

    /// The registry row with `id`'s key: its run, address and last heartbeat (seconds since the epoch).
    pub fn coordinator_seen(
        &self,
        id: &PublicId,
    ) -> Result<Option<(i64, String, u64)>, LedgerError> {
        self.read(|tx, _| registry::seen(tx, id))
    }

    /// Deletes `me`'s registry row if no later run with its key replaced it (a clean shutdown).
    pub fn coordinator_leave(&self, me: &Registration) -> Result<(), LedgerError> {
        self.write(|tx, _| registry::leave(tx, me))
    }

    /// The coordinators that heartbeat within `silent_after` seconds of `now_unix`, by id.
    pub fn live_coordinators(
        &self,
        now_unix: u64,
        silent_after: u64,
    ) -> Result<Vec<CoordinatorEntry>, LedgerError> {
        self.read(|tx, _| registry::live(tx, now_unix, silent_after))
    }

    /// Moves `fraction` of `worker`'s bonded, delegated and unbonding stake to the pool, records
    /// `evidence` inline, and suspends the worker for `suspend_rounds`.
    pub fn slash(
        &self,
        worker: &PublicId,
        fraction: SlashFraction,
        evidence: &[u8],
    ) -> Result<SlashRecord, LedgerError> {
        let note = SlashNote {
            evidence,
            stored: None,
            at_unix: 0,
            forfeits_held_back: false,
        };
        self.slash_noted(worker, fraction, &note)
    }

    /// [`Self::slash`], recording what `note` says of the evidence.
    pub fn slash_noted(
        &self,
        worker: &PublicId,
        fraction: SlashFraction,
        note: &SlashNote<'_>,
    ) -> Result<SlashRecord, LedgerError> {
        self.write(|tx, config| stake::slash(tx, config, worker, fraction, note))
    }

    /// Drops evidence from keeping for age and room (see `stake::prune_evidence`); returns the items no
    /// kept slash names any more, for the evidence store to delete.
    pub fn prune_evidence(
        &self,
        max_bytes: u64,
        keep_since_unix: u64,
    ) -> Result<Vec<[u8; 32]>, LedgerError> {
        self.write(|tx, _| {
            let unnamed = stake::prune_evidence(tx, max_bytes, keep_since_unix)?;
            evidence::remove(tx, &unnamed)?;
            Ok(unnamed)
        })
    }

    /// [`Self::slash_noted`], keeping `whole` (the encoded evidence `note.stored` names) in the
    /// database in the same transaction, where every coordinator on it reads it.
    pub fn slash_keeping(
        &self,
        worker: &PublicId,
        fraction: SlashFraction,
        note: &SlashNote<'_>,
        whole: &[u8],
    ) -> Result<SlashRecord, LedgerError> {
        self.write(|tx, config| {
            let record = stake::slash(tx, config, worker, fraction, note)?;
            if let Some(stored) = note.stored.filter(|s| s.kept) {
                evidence::put(tx, &stored.hash, whole, note.at_unix)?;
            }
            Ok(record)
        })
    }

    /// The evidence item named `hash` as the database keeps it.
    pub fn evidence_item(&self, hash: &[u8; 32]) -> Result<Option<Vec<u8>>, LedgerError> {
        self.read(|tx, _| evidence::get(tx, hash))
    }

    /// Deletes evidence items in the database no kept slash names; how many.
    pub fn sweep_evidence_items(&self) -> Result<usize, LedgerError> {
        self.write(|tx, _| evidence::sweep(tx))
    }

    /// Bytes of the evidence items in the database.
    pub fn evidence_item_bytes(&self) -> Result<u64, LedgerError> {
        self.read(|tx, _| evidence::bytes(tx))
    }

    /// Keeps an evidence item in the database (moving a file-kept item there); an item no kept slash
    /// names is deleted by the next [`Self::sweep_evidence_items`].
    pub fn put_evidence_item(
        &self,
        hash: &[u8; 32],
        bytes: &[u8],
        at_unix: u64,
    ) -> Result<(), LedgerError> {
        self.write(|tx, _| evidence::put(tx, hash, bytes, at_unix))
    }

    /// Every item some slash still keeps in the evidence store.
    pub fn kept_evidence(&self) -> Result<std::collections::HashSet<[u8; 32]>, LedgerError> {
        self.read(|tx, _| stake::kept_evidence(tx))
    }

    /// Records one challenge round's hosting credits and, when the current round has had no payout
    /// yet, pays every credit recorded and not yet paid (PROTOCOL §6.9), with the capacity bonus for
    /// bytes proven beyond each worker's previous maximum (§6.13); one transaction. Credits recorded
    /// in a round already paid (another coordinator's, or a second challenge round's) wait for the next
    /// round's payout; the answer is then an empty payout.
    pub fn pay_hosting(&self, credits: &[ProofCredit]) -> Result<Payout, LedgerError> {
        self.write(|tx, config| {
            let payout = hosting::pay(tx, config, credits)?;
            if !payout.shares.is_empty() {
                capacity::pay_bonus(tx, config)?;
            }
            Ok(payout)
        })
    }

    /// Proposal `id`, with its tally and outcome.
    pub fn proposal(&self, id: u64) -> Result<Proposal, LedgerError> {
        self.read(|tx, _| governance::proposal(tx, id)?.ok_or(LedgerError::NoSuchProposal { id }))
    }

    /// At most `limit` proposals numbered above `after_id`, oldest first.
    pub fn proposals_page(
        &self,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<Proposal>, LedgerError> {
        self.read(|tx, _| governance::proposals_page(tx, after_id, limit))
    }

    /// What executed proposal `id` paid: (payee, verified work it was weighed by, amount), by payee.
    pub fn proposal_payments(&self, id: u64) -> Result<Vec<(PublicId, u64, u64)>, LedgerError> {
        self.read(|tx, _| governance::payments(tx, id))
    }

    /// Stake `account` had bonded or delegated when round `round` began: its vote weight on a
    /// proposal made in that round.
    pub fn stake_at(&self, account: &PublicId, round: u64) -> Result<u64, LedgerError> {
        self.read(|tx, _| governance::stake_at(tx, account, round))
    }

    /// `account`'s capacity redirect, now and from next round.
    pub fn redirect(&self, account: &PublicId) -> Result<Redirect, LedgerError> {
        self.read(|tx, _| capacity::redirect_of(tx, account))
    }

    /// What the capacity fund holds.
    pub fn capacity_fund(&self) -> Result<u64, LedgerError> {
        self.read(|tx, _| capacity::fund(tx))
    }

    /// Records that `worker` had `sessions` transcode jobs whose verified results overlapped in time in
    /// the current round, and pays the capacity bonus for sessions beyond its previous maximum
    /// (§6.13). Only the coordinator's dispatcher calls it, with a count from verified jobs.
    pub fn prove_sessions(
        &self,
        worker: &PublicId,
        sessions: u32,
    ) -> Result<SessionProof, LedgerError> {
        self.write(|tx, config| sessions::prove(tx, config, worker, sessions))
    }

    /// The most sessions `worker` proved in each round it proved any, oldest first.
    pub fn session_proofs(&self, worker: &PublicId) -> Result<Vec<(u64, u32)>, LedgerError> {
        self.read(|tx, _| sessions::proofs(tx, worker))
    }

    /// Session bonuses paid to `worker`, oldest first.
    pub fn session_bonuses(&self, worker: &PublicId) -> Result<Vec<SessionBonus>, LedgerError> {
        self.read(|tx, _| sessions::bonuses(tx, worker))
    }

    /// Capacity bonuses paid to `worker`, oldest first.
    pub fn capacity_bonuses(&self, worker: &PublicId) -> Result<Vec<CapacityBonus>, LedgerError> {
        self.read(|tx, _| capacity::bonuses(tx, worker))
    }

    /// `worker`'s hosting statements for rounds after `after_round`, oldest first, at most `limit`.
    pub fn statements(
        &self,
        worker: &PublicId,
        after_round: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Statement>, LedgerError> {
        self.read(|tx, _| hosting::statements(tx, worker, after_round, limit))
    }

    /// The inputs and outcome of the payout made in `round`, if one was.
    pub fn hosting_round(&self, round: u64) -> Result<Option<HostingRound>, LedgerError> {
        self.read(|tx, _| hosting::hosting_round(tx, round))
    }

    /// What is held back from `worker` now, to be paid once due.
    pub fn held_back(&self, worker: &PublicId) -> Result<u64, LedgerError> {
        self.read(|tx, _| hosting::held_back_of(tx, worker))
    }

    /// Splits the payout of `round` again from its row and the statements' credits, and names every
    /// worker whose recorded reward differs from what the split gives (empty: the payout reproduces).
    pub fn recheck_payout(&self, round: u64) -> Result<Vec<PublicId>, LedgerError> {
        self.read(|tx, _| {
            let Some(paid) = hosting::hosting_round(tx, round)? else {
                return Ok(Vec::new());
            };
            let recorded = hosting::credits_of_round(tx, round)?;
            let weights: Vec<(PublicId, u64)> = recorded.iter().map(|(w, c, _)| (*w, *c)).collect();
            let (shares, dust) = split(paid.budget, &weights);
            let mut wrong: Vec<PublicId> = shares
                .iter()
                .zip(&recorded)
                .filter(|((_, share), (_, _, reward))| share != reward)
                .map(|((w, _), _)| *w)
                .collect();
            if dust != paid.dust {
                wrong.extend(recorded.first().map(|(w, _, _)| *w));
            }
            Ok(wrong)
        })
    }

    /// Units applied at genesis and minted since: the supply, whatever has happened.
    pub fn genesis_and_minted(&self) -> Result<(u64, u64), LedgerError> {
        self.read(|tx, _| Ok((hosting::genesis_supply(tx)?, hosting::minted(tx)?)))
    }

    /// Pays `amount` from the pool to `to` (rewards).
    pub fn pay_from_pool(&self, to: &PublicId, amount: u64) -> Result<(), LedgerError> {
        self.write(|tx, _| store::pay_from_pool(tx, to, amount))
    }

    pub fn round(&self) -> Result<u64, LedgerError> {
        self.read(|tx, _| store::round(tx))
    }

    /// Everything about `account` that its owner may want to see, consistently.
    pub fn account(&self, account: &PublicId) -> Result<AccountState, LedgerError> {
        self.read(|tx, _| {
            Ok(AccountState {
                balance: store::balance(tx, account)?,
                last_nonce: store::last_nonce(tx, account)?,
                sender: broker::sender(tx, account)?,
                bonded_to_self: stake::bonded(tx, account, account)?,
                stake: stake::total_stake(tx, account)?,
                unbonding: stake::unbonding(tx, account)?,
                round: store::round(tx)?,
                suspended_until: stake::suspended_until(tx, account)?,
                collective_stakes: collective::stakes(tx, account)?,
                mining_weight: sip::mining_weight(tx, account)?,
                redirect: capacity::redirect_of(tx, account)?,
            })
        })
    }

    /// Spendable balance of `account`.
    pub fn balance(&self, account: &PublicId) -> Result<u64, LedgerError> {
        self.read(|tx, _| store::balance(tx, account))
    }

    /// The last request nonce accepted from `account` (0 before its first); the next must be higher.
    pub fn last_nonce(&self, account: &PublicId) -> Result<u64, LedgerError> {
        self.read(|tx, _| store::last_nonce(tx, account))
    }

    pub fn pool_balance(&self) -> Result<u64, LedgerError> {
        self.read(|tx, _| store::pool(tx))
    }

    pub fn sender(&self, sender: &PublicId) -> Result<SenderAccount, LedgerError> {
        self.read(|tx, _| broker::sender(tx, sender))
    }

    /// Stake `delegator` has bonded to `worker` (a worker's self-bond when they are the same).
    pub fn bonded(&self, worker: &PublicId, delegator: &PublicId) -> Result<u64, LedgerError> {
        self.read(|tx, _| stake::bonded(tx, worker, delegator))
    }

    /// `account`'s stake on its way out, still slashable until released.
    pub fn unbonding(&self, account: &PublicId) -> Result<Vec<UnbondingEntry>, LedgerError> {
        self.read(|tx, _| stake::unbonding(tx, account))
    }

    /// Bonded plus delegated stake of `worker`, whatever its eligibility.
    pub fn total_stake(&self, worker: &PublicId) -> Result<u64, LedgerError> {
        self.read(|tx, _| stake::total_stake(tx, worker))
    }

    /// `worker`'s stake for assignment: `Some` only when it reaches `min_stake` and the worker is not
    /// suspended.
    pub fn stake_of(&self, worker: &PublicId) -> Result<Option<u64>, LedgerError> {
        self.read(|tx, config| stake::eligible_stake(tx, config, worker))
    }

    /// Every worker eligible by stake, with its stake, ordered by id.
    pub fn eligible_stakes(&self) -> Result<Vec<(PublicId, u64)>, LedgerError> {
        self.read(|tx, config| stake::eligible(tx, config))
    }

    /// Every worker eligible by stake, with its stake and its mining weight in stake units, by id. Mining
    /// weight counts only next to eligible stake: it never makes a worker eligible.
    pub fn eligible_workers(&self) -> Result<Vec<EligibleWorker>, LedgerError> {
        self.read(|tx, config| {
            let weights = sip::all_weights(tx)?;
            Ok(stake::eligible(tx, config)?
                .into_iter()
                .map(|(worker, stake)| EligibleWorker {
                    worker,
                    stake,
                    mining: config
                        .sip
                        .weight_as_stake(weights.get(&worker).copied().unwrap_or(0)),
                })
                .collect())
        })
    }

    /// `worker`'s mining weight (raw units, before `k`).
    pub fn mining_weight(&self, worker: &PublicId) -> Result<u64, LedgerError> {
        self.read(|tx, _| sip::mining_weight(tx, worker))
    }

    /// The SIP's balance, curve, totals by source and the flows of the last `recent_rounds` rounds.
    pub fn sip_status(&self, recent_rounds: u64) -> Result<SipStatus, LedgerError> {
        self.read(|tx, config| sip::status(tx, &config.sip, recent_rounds))
    }

    /// What `amount` units buy from the SIP now.
    pub fn sip_quote(&self, amount: u64) -> Result<Quote, LedgerError> {
        self.read(|tx, config| sip::quote(tx, &config.sip, amount))
    }

    /// Every SIP flow of round `from` and after, oldest first.
    pub fn sip_flows(&self, from: u64) -> Result<Vec<SipFlow>, LedgerError> {
        self.read(|tx, _| sip::flows(tx, from))
    }

    /// The first round at which `worker` is eligible again, if it is suspended now.
    pub fn suspended_until(&self, worker: &PublicId) -> Result<Option<u64>, LedgerError> {
        self.read(|tx, _| stake::suspended_until(tx, worker))
    }

    pub fn slashes(&self, worker: &PublicId) -> Result<Vec<SlashRecord>, LedgerError> {
        self.read(|tx, _| stake::slashes_page(tx, Some(worker), 0, usize::MAX))
    }

    /// Every slash of every worker, oldest first.
    pub fn all_slashes(&self) -> Result<Vec<SlashRecord>, LedgerError> {
        self.read(|tx, _| stake::slashes_page(tx, None, 0, usize::MAX))
    }

    /// At most `limit` slashes (of `worker`, or of all) after the one numbered `after_id`, oldest first.
    pub fn slashes_page(
        &self,
        worker: Option<PublicId>,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<SlashRecord>, LedgerError> {
        self.read(|tx, _| stake::slashes_page(tx, worker.as_ref(), after_id, limit))
    }

    /// Records the tickets the coordinator forwards to `holder` for a download, in the current round,
    /// and returns that round; refuses them all, changing nothing, when any was forwarded before.
    pub fn record_download_tickets(
        &self,
        holder: &PublicId,
        ticket_hashes: &[[u8; 32]],
    ) -> Result<u64, LedgerError> {
        self.write(|tx, _| {
            let round = store::round(tx)?;
            downloads::record_forwarded(tx, holder, round, ticket_hashes)?;
            Ok(round)
        })
    }

    /// Adds a served range to `worker`'s row of the current round: `bytes` served, `paid` the expected
    /// value of the tickets forwarded for them.
    pub fn record_served(
        &self,
        worker: &PublicId,
        bytes: u64,
        paid: u64,
    ) -> Result<(), LedgerError> {
        self.write(|tx, _| {
            let round = store::round(tx)?;
            downloads::add_served(tx, round, worker, bytes, paid)
        })
    }

    /// What `worker` served to downloads in `round`, and what it was paid for it.
    pub fn served(&self, round: u64, worker: &PublicId) -> Result<Served, LedgerError> {
        self.read(|tx, _| downloads::served(tx, round, worker))
    }

    /// Every worker that served downloads in `round`, by id.
    pub fn served_in_round(&self, round: u64) -> Result<Vec<(PublicId, Served)>, LedgerError> {
        self.read(|tx, _| downloads::served_in_round(tx, round))
    }

    /// The pot download fees have filled and nothing has drained yet.
    pub fn hosting_fees(&self) -> Result<u64, LedgerError> {
        self.read(|tx, _| downloads::hosting_fees(tx))
    }

    pub fn is_redeemed(&self, ticket_hash: &[u8; 32]) -> Result<bool, LedgerError> {
        self.read(|tx, _| broker::is_redeemed(tx, ticket_hash))
    }

    /// Every row of the ledger, for audits and tests.
    pub fn snapshot(&self) -> Result<LedgerSnapshot, LedgerError> {
        self.read(|tx, _| snapshot::take(tx))
    }

    /// The collective `name`, with its figures.
    pub fn collective(&self, name: &str) -> Result<Collective, LedgerError> {
        self.read(|tx, _| collective::collective(tx, name))
    }

    /// At most `limit` collectives after the name `after`, in name order.
    pub fn collectives_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Collective>, LedgerError> {
        self.read(|tx, _| collective::collectives_page(tx, after, limit))
    }

    /// At most `limit` blob roots of collective `name` after `after`, in root order.
    pub fn collective_roots(
        &self,
        name: &str,
        after: Option<&[u8; 32]>,
        limit: usize,
    ) -> Result<Vec<[u8; 32]>, LedgerError> {
        self.read(|tx, _| collective::roots_page(tx, name, after, limit))
    }

    /// Whether `account` is a member of collective `name` now (`NoSuchCollective` when there is none).
    pub fn is_member(&self, name: &str, account: &PublicId) -> Result<bool, LedgerError> {
        self.read(|tx, _| {
            collective::collective(tx, name)?;
            collective::is_member(tx, name, account)
        })
    }

    /// Decides a Get of `bytes` of a blob of collective `name` by `account` and counts it (a `paid`
    /// one needs membership only): see `collective::admit_get`, the one access rule.
    pub fn admit_collective_get(
        &self,
        name: &str,
        account: &PublicId,
        bytes: u64,
        paid: bool,
    ) -> Result<Admission, LedgerError> {
        self.write(|tx, _| collective::admit_get(tx, name, account, bytes, paid))
    }

    /// Members and access stake locked over every collective.
    pub fn collective_totals(&self) -> Result<(u64, u64), LedgerError> {
        self.read(|tx, _| collective::totals(tx))
    }

    /// Every unit the ledger holds: balances, stake, unbonding, deposits, reserves, the pool, held-back
    /// rewards, the download-fee pot, access stake, locked proposal bonds and the capacity fund. Only hosting payouts change it, by what they mint.
    pub fn supply(&self) -> Result<u128, LedgerError> {
        self.read(|tx, _| snapshot::supply(tx))
    }

    /// Rows this handle has inserted, updated or deleted since it was opened (a metrics counter).
    pub fn rows_written(&self) -> u64 {
        self.store.rows_written()
    }
}

/// Starts the next round: reserves, forwarded tickets and usage age out, held-back rewards come due,
/// mining weight bleeds, and proposals whose vote ended are tallied.
fn advance(tx: &Connection<'_>, config: &LedgerConfig) -> Result<u64, LedgerError> {
    let next = store::round(tx)?
        .checked_add(1)
        .ok_or(LedgerError::Overflow { what: "round" })?;
    store::set_round(tx, next)?;
    broker::prune_reserve_rounds(tx, next)?;
    downloads::prune_forwarded(tx, next, config.unlock_rounds)?;
    hosting::release_due(tx, next)?;
    collective::prune_usage(tx, next)?;
    sip::bleed(tx, &config.sip)?;
    governance::tally_due(tx, config, next)?;
    Ok(next)
}

/// A signed request whose stateless checks passed ([`check_stateless`]), ready for a transaction.
#[derive(Debug, Clone)]
pub struct Checked {
    request: SignedRequest,
    operation: Operation,
}

impl Checked {
    /// Runs the checks that need no ledger state. CPU-bound (two signature checks for a redemption):
    /// callers run it on their own blocking thread, outside any queue or lock.
    pub fn new(request: SignedRequest) -> Result<Self, LedgerError> {
        let operation = check_stateless(&request)?;
        Ok(Self { request, operation })
    }
}

/// What can be checked of a request without the ledger's state: its signature, and a redeemed
/// ticket's signature, `recipient_rand` and win.
fn check_stateless(request: &SignedRequest) -> Result<Operation, LedgerError> {
    let operation = request.verify()?;
    if let Operation::RedeemTicket {
        ticket,
        recipient_rand,
    } = &operation
    {
        broker::check_ticket(request.account, ticket, recipient_rand)?;
    }
    Ok(operation)
}

/// Applies a checked request inside a write transaction (or a savepoint of one).
fn apply(
    tx: &Connection<'_>,
    config: &LedgerConfig,
    request: &SignedRequest,
    operation: Operation,
) -> Result<Receipt, LedgerError> {
    let account = request.account;
    store::take_nonce(tx, &account, request.nonce)?;
    match operation {
        Operation::Transfer { to, amount } => {
            store::transfer(tx, &account, &to, amount)?;
            Ok(Receipt::Done)
        }
        Operation::Bond { amount } => {
            stake::bond(tx, &account, &account, amount)?;
            Ok(Receipt::Done)
        }
        Operation::Delegate { worker, amount } => {
            stake::bond(tx, &worker, &account, amount)?;
            Ok(Receipt::Done)
        }
        Operation::Unbond { worker, amount } => {
            stake::unbond(tx, config, &worker, &account, amount)?;
            Ok(Receipt::Done)
        }
        Operation::WithdrawUnbonded => {
            // Released access stake comes back with released stake; only when neither is ready is
            // the request refused, naming the nearer release.
            let (access, access_next) = collective::withdraw_released(tx, &account)?;
            let amount = match stake::withdraw_unbonded(tx, &account) {
                Ok(amount) => amount
                    .checked_add(access)
                    .ok_or(LedgerError::Overflow { what: "withdrawal" })?,
                Err(LedgerError::NothingUnbonded { .. }) if access > 0 => access,
                Err(LedgerError::NothingUnbonded {
                    account,
                    next_release,
                }) => {
                    let next_release = match (next_release, access_next) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    return Err(LedgerError::NothingUnbonded {
                        account,
                        next_release,
                    });
                }
                Err(e) => return Err(e),
            };
            Ok(Receipt::Withdrawn { amount })
        }
        Operation::Deposit { amount } => {
            broker::fund(tx, &account, amount, broker::Fund::Deposit)?;
            Ok(Receipt::Done)
        }
        Operation::Reserve { amount } => {
            broker::fund(tx, &account, amount, broker::Fund::Reserve)?;
            Ok(Receipt::Done)
        }
        Operation::Unlock => {
            broker::unlock(tx, config, &account)?;
            Ok(Receipt::Done)
        }
        Operation::CancelUnlock => {
            broker::cancel_unlock(tx, &account)?;
            Ok(Receipt::Done)
        }
        Operation::Withdraw => {
            let amount = broker::withdraw(tx, &account)?;
            Ok(Receipt::Withdrawn { amount })
        }
        Operation::RedeemTicket { ticket, .. } => {
            let redemption = broker::redeem(tx, config, &ticket)?;
            Ok(Receipt::Redeemed(redemption))
        }
        Operation::CreateCollective { name, rules } => {
            collective::create(tx, &account, &name, &rules)?;
            Ok(Receipt::Done)
        }
        Operation::AddToCollective { name, root } => {
            collective::add(tx, &account, &name, &root)?;
            Ok(Receipt::Done)
        }
        Operation::JoinCollective { name } => {
            collective::join(tx, &account, &name)?;
            Ok(Receipt::Done)
        }
        Operation::LeaveCollective { name } => {
            collective::leave(tx, config, &account, &name)?;
            Ok(Receipt::Done)
        }
        Operation::BuyWeight {
            worker,
            amount,
            max_price_ppm,
        } => {
            let weight = sip::buy(tx, config, &account, &worker, amount, max_price_ppm)?;
            Ok(Receipt::Bought { weight })
        }
        Operation::Propose { kind, reason } => {
            let id = governance::propose(tx, config, &account, &kind, &reason)?;
            Ok(Receipt::Proposed { id })
        }
        Operation::Vote { proposal, choice } => {
            let weight = governance::vote(tx, &account, proposal, choice)?;
            Ok(Receipt::Voted { weight })
        }
        Operation::SetRedirect { share_ppm } => {
            capacity::set_redirect(tx, &account, share_ppm)?;
            Ok(Receipt::Done)
        }
    }
}
