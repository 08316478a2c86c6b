//! The incentive simulation (`dualrig-coordinator simulate`): synthetic actors, honest and cheating,
//! play challenge round after challenge round against the real ledger under the coordinator's rules,
//! and each strategy's profit per ledger round is set against honest play in the same role.
//!
//! Real: the ledger (in memory, with [`Config::ledger_config`]): stake, slashes and suspension, the
//! hosting payout with its held-back schedule and the forfeit on a storage fault, ticket redemption,
//! the SIP's curve and bleed, proposals, votes and their snapshot; the stake-weighted draw of a job's
//! worker ([`draw_weighted`]) with the pool's scores ([`WorkerPool`]); the coordinator's check of a
//! payment's sender before it takes a job (`service::check_sender_covers`). Every amount an actor ends
//! with is read from the ledger.
//!
//! An actor's parameter ([`Actors`]): what a job, a byte of disk or locked capital costs it, what a job
//! is worth to a client, and how its cheat is caught, from the configured checks: a blank rendition
//! is caught when its job is content-checked (`content_check_share`, every one of a worker's first
//! `content_check_first_jobs`); a challenged blob of a host that keeps a share `f` of its chunks passes
//! with `f^challenge_k`, and `challenge_blobs` of its blobs are challenged; an outsourcer misses the
//! deadline with a chance of its own. A failed blob leaves the host and is repaired on holders outside
//! the simulated set, as the challenge round does.

mod report;
mod strategies;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use dualrig_proto::identity::{Identity, PublicId};
use dualrig_proto::ticket::{SignedTicket, TicketParams, TicketTerms, recipient_rand};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::Config;
use crate::ledger::{
    Candidate, Genesis, GenesisAccount, Ledger, LedgerError, Operation, ProofCredit, ProposalKind,
    ProposalState, Receipt, SignedRequest, SlashNote, VoteChoice, draw_weighted,
};
use crate::pool::WorkerPool;

pub use report::{Report, Row};
use report::{add_events, decided_by, describe};
use strategies::{Actor, Events, JobAnswer, answer_challenge, job_answer, kept_share};
pub use strategies::{Role, Strategy};

/// One token in base units.
const TOKEN: u64 = 1_000_000;

/// What the actors' work, disk and capital cost them, what clients value, and how each cheat plays.
/// The defaults, and where each comes from, are in [`Actors::default`].
#[derive(Debug, Clone, PartialEq)]
pub struct Actors {
    /// Actors playing each strategy.
    pub per_strategy: usize,
    /// Transcode jobs the clients send in a ledger round, all workers together.
    pub jobs_per_round: u64,
    /// What a job pays its worker (one ticket of this face value that always wins, so the lottery's
    /// variance stays out of the margins; its expected value is what a real payment's tickets carry).
    pub job_price: u64,
    /// What transcoding one job costs an honest worker (GPU time, power).
    pub job_cost: f64,
    /// What a blank rendition costs a lazy worker.
    pub lazy_job_cost: f64,
    /// What a transcoded job is worth to the client that sent it.
    pub client_value: f64,
    /// Chance that the content check, when it runs on a blank rendition, fails it.
    pub blank_caught_when_checked: f64,
    /// Bytes of each blob, and the blobs each host is given.
    pub blob_bytes: u64,
    pub host_blobs: u64,
    /// What keeping a GiB costs a host per ledger round.
    pub disk_cost_per_gib_round: f64,
    /// Share of each blob's chunks a data deleter keeps.
    pub deleter_keeps: f64,
    /// Share of a blob's bytes its hash tree takes, which an outsourcer must keep to build proofs.
    pub outboard_share: f64,
    /// Chance that an outsourcer's fetch of the challenged chunks misses the answer deadline.
    pub outsourcer_miss: f64,
    /// What the outsourcer pays per byte fetched from another holder.
    pub fetch_price_per_byte: f64,
    /// Keys a Sybil worker spreads its bytes over, and how often it moves them to fresh keys (0:
    /// never).
    pub sybil_keys: usize,
    pub sybil_rotate_rounds: u64,
    /// What a unit of stake locked costs per ledger round, in parts per billion (the return the
    /// tokens would earn elsewhere).
    pub capital_cost_ppb_per_round: f64,
    /// Tokens a SIP drainer spends on mining weight, once.
    pub drainer_spend: u64,
    /// Stake a vote capturer bonds the round before it proposes, and the stake it bonds once the
    /// proposal is known.
    pub capturer_stake: u64,
    pub capturer_flash_stake: u64,
    /// Chance that an honest staked actor votes (no) on a proposal that pays the SIP to its proposer.
    pub honest_turnout: f64,
    /// Share (ppm) of their rewards honest hosts redirect to the capacity fund.
    pub honest_redirect_ppm: u32,
}

impl Default for Actors {
    fn default() -> Self {
        Self {
            per_strategy: 4,
            // A small network: four segments a minute.
            jobs_per_round: 4,
            // Two of a worker's default tickets (face value 1 token, win probability 1/100, PROTOCOL
            // §3.3): 0.02 token a job.
            job_price: 20_000,
            // Half the price: the margin an operator needs to run.
            job_cost: 10_000.0,
            lazy_job_cost: 0.0,
            client_value: 30_000.0,
            // A blank or unrelated rendition scores far under 22 dB on every sampled frame while
            // libx264's reference clears 27 dB (ARCHITECTURE, content check).
            blank_caught_when_checked: 1.0,
            blob_bytes: 256 << 20,
            // 16 GiB a host: 64 blobs, twice `challenge_blobs`, so a challenge samples half of them.
            host_blobs: 64,
            // Less than a host's share of the default mint (0.9 token a round over the simulated
            // hosts' 256 GiB is about 3 500 a GiB), so honest hosting pays.
            disk_cost_per_gib_round: 1_000.0,
            deleter_keeps: 0.9,
            // 64 bytes of tree per 1024-byte chunk (PROTOCOL §6.3).
            outboard_share: 64.0 / 1024.0,
            // One challenge round in fifty: the holder it fetches from is offline or slow, or the
            // fetch of 512 chunks from elsewhere takes longer than the 30 s deadline.
            outsourcer_miss: 0.02,
            // Workers serve downloads free unless they set `price_per_byte` (default 0).
            fetch_price_per_byte: 0.0,
            sybil_keys: 4,
            sybil_rotate_rounds: 720,
            // 5 % a year at 60 s rounds.
            capital_cost_ppb_per_round: 95.0,
            drainer_spend: 10 * TOKEN,
            capturer_stake: 10 * TOKEN,
            capturer_flash_stake: 100 * TOKEN,
            honest_turnout: 0.5,
            honest_redirect_ppm: 0,
        }
    }
}

/// One run: how long, from which seed, with which actors.
#[derive(Debug, Clone, PartialEq)]
pub struct Simulation {
    pub seed: u64,
    /// Ledger rounds to simulate; a challenge round runs every `challenge_interval / round` of them.
    pub rounds: u64,
    pub actors: Actors,
}

#[derive(Debug, thiserror::Error)]
pub enum SimulationError {
    #[error("{what} = {value}: {why}")]
    BadParameter {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("the simulated ledger refused an operation: {0}")]
    Ledger(#[from] LedgerError),
}

impl Simulation {
    fn check(&self, config: &Config) -> Result<(), SimulationError> {
        let bad =
            |what, value: String, why| Err(SimulationError::BadParameter { what, value, why });
        let a = &self.actors;
        if self.rounds < rounds_per_step(config) {
            return bad(
                "--rounds",
                self.rounds.to_string(),
                "must cover at least one challenge round (challenge_interval / round ledger rounds)",
            );
        }
        if a.per_strategy == 0 || a.sybil_keys == 0 {
            return bad(
                "--actors",
                a.per_strategy.min(a.sybil_keys).to_string(),
                "each strategy needs at least one actor and a Sybil at least one key",
            );
        }
        for (what, p) in [
            ("--deleter-keeps", a.deleter_keeps),
            ("--outsourcer-miss", a.outsourcer_miss),
            ("blank_caught_when_checked", a.blank_caught_when_checked),
            ("honest_turnout", a.honest_turnout),
            ("outboard_share", a.outboard_share),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return bad(
                    what,
                    p.to_string(),
                    "is a probability or a share, from 0 to 1",
                );
            }
        }
        for (what, v) in [
            ("--job-cost", a.job_cost),
            ("lazy_job_cost", a.lazy_job_cost),
            ("client_value", a.client_value),
            ("disk_cost_per_gib_round", a.disk_cost_per_gib_round),
            ("fetch_price_per_byte", a.fetch_price_per_byte),
            ("capital_cost_ppb_per_round", a.capital_cost_ppb_per_round),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(what, v.to_string(), "is a cost in units, 0 or more");
            }
        }
        if a.honest_redirect_ppm > 1_000_000 {
            return bad(
                "--honest-redirect-ppm",
                a.honest_redirect_ppm.to_string(),
                "is a share of at most 1000000",
            );
        }
        if !a.host_blobs.is_multiple_of(a.sybil_keys as u64) {
            return bad(
                "sybil_keys",
                a.sybil_keys.to_string(),
                "must divide the blobs a host holds, so a Sybil holds what an honest host holds",
            );
        }
        Ok(())
    }
}

/// Ledger rounds in one challenge round.
fn rounds_per_step(config: &Config) -> u64 {
    let per = config.challenge_interval.as_secs_f64() / config.round.as_secs_f64().max(1e-9);
    (per.round() as u64).max(1)
}

/// The simulated network: the ledger, the pool's scores, the actors and the random source.
struct World<'a> {
    config: &'a Config,
    actors: &'a Actors,
    ledger: Arc<Ledger>,
    pool: WorkerPool,
    rng: StdRng,
    cast: Vec<Actor>,
    /// Which actor owns each key, by id.
    owner: BTreeMap<PublicId, usize>,
    tickets: u64,
    rounds_per_step: u64,
    captures: Vec<Capture>,
}

/// The vote capturer's proposal under way.
#[derive(Debug, Clone, Copy)]
struct Capture {
    actor: usize,
    proposal: u64,
    voted: bool,
    unbonded: bool,
}

/// Runs the simulation and reports every strategy's profit per round against honest play.
pub async fn run(config: &Config, sim: &Simulation) -> Result<Report, SimulationError> {
    sim.check(config)?;
    let mut world = World::new(config, sim)?;
    world.setup()?;
    for actor in 0..world.cast.len() {
        world.cast[actor].start_worth = world.worth(actor)?;
    }
    let steps = sim.rounds / world.rounds_per_step;
    for step in 0..steps {
        world.step(step, steps).await?;
    }
    world.report(sim, steps)
}

impl<'a> World<'a> {
    fn new(config: &'a Config, sim: &'a Simulation) -> Result<Self, SimulationError> {
        let a = &sim.actors;
        let rps = rounds_per_step(config);
        let mut cast = Vec::new();
        for (s, strategy) in Strategy::ALL.into_iter().enumerate() {
            for i in 0..a.per_strategy {
                let (keys, active) = match strategy {
                    Strategy::Sybil => {
                        let rotations =
                            sim.rounds.checked_div(a.sybil_rotate_rounds).unwrap_or(0) as usize;
                        (a.sybil_keys * (1 + rotations), a.sybil_keys)
                    }
                    _ => (1, 1),
                };
                let keys = (0..keys)
                    .map(|k| Identity::from_secret(derive(sim.seed, "key", s, i, k)))
                    .collect();
                cast.push(Actor::new(
                    strategy,
                    keys,
                    active,
                    derive(sim.seed, "recipient", s, i, 0),
                ));
            }
        }
        let mut owner = BTreeMap::new();
        let mut accounts = Vec::new();
        for (n, actor) in cast.iter().enumerate() {
            let balance = match actor.strategy.role() {
                Role::Sender => 2_000 * TOKEN,
                Role::Stakeholder => 2 * (a.capturer_stake + a.capturer_flash_stake) + 100 * TOKEN,
                Role::Transcoder | Role::Host => 100 * TOKEN + a.drainer_spend,
            };
            for key in &actor.keys {
                owner.insert(key.id(), n);
                accounts.push(GenesisAccount {
                    id: key.id(),
                    balance,
                });
            }
        }
        let genesis = Genesis::new(accounts).map_err(|e| SimulationError::BadParameter {
            what: "genesis",
            value: e.to_string(),
            why: "the simulated accounts do not fit a genesis",
        })?;
        let ledger = Arc::new(Ledger::open_in_memory(config.ledger_config(), &genesis)?);
        Ok(Self {
            config,
            actors: a,
            ledger,
            pool: WorkerPool::with_rng(config.min_stake, StdRng::seed_from_u64(sim.seed)),
            rng: StdRng::seed_from_u64(sim.seed.wrapping_add(1)),
            cast,
            owner,
            tickets: 0,
            rounds_per_step: rps,
            captures: Vec::new(),
        })
    }

    /// Signs `op` as `key` with its next nonce and applies it.
    fn act(&self, key: &Identity, op: Operation) -> Result<Receipt, LedgerError> {
        let nonce = self.ledger.last_nonce(&key.id())? + 1;
        self.ledger.execute(&SignedRequest::sign(key, nonce, &op))
    }

    /// [`Self::act`] as key `key` of actor `actor`.
    fn act_as(&self, actor: usize, key: usize, op: Operation) -> Result<Receipt, LedgerError> {
        self.act(&self.cast[actor].keys[key], op)
    }

    /// Bonds, deposits and the early unlock every actor starts with.
    fn setup(&mut self) -> Result<(), SimulationError> {
        let min_stake = self.config.min_stake.max(1);
        let a = self.actors;
        for actor in &self.cast {
            match actor.strategy.role() {
                Role::Transcoder | Role::Host => {
                    for &k in &actor.active {
                        self.act(&actor.keys[k], Operation::Bond { amount: min_stake })?;
                    }
                    if actor.strategy == Strategy::HonestHost && a.honest_redirect_ppm > 0 {
                        self.act(
                            &actor.keys[0],
                            Operation::SetRedirect {
                                share_ppm: a.honest_redirect_ppm,
                            },
                        )?;
                    }
                }
                Role::Sender => {
                    let key = &actor.keys[0];
                    if actor.strategy == Strategy::HonestSender {
                        self.act(
                            key,
                            Operation::Deposit {
                                amount: 1_000 * TOKEN,
                            },
                        )?;
                    } else {
                        // Less than one job's ticket, and unlocked at once.
                        self.act(
                            key,
                            Operation::Deposit {
                                amount: (a.job_price / 2).max(1),
                            },
                        )?;
                        self.act(key, Operation::Unlock)?;
                    }
                }
                Role::Stakeholder => {}
            }
        }
        let blobs = a.host_blobs;
        for actor in &mut self.cast {
            if actor.strategy.role() == Role::Host {
                let each = blobs / actor.active.len() as u64;
                for &k in &actor.active {
                    actor.blobs[k] = each;
                }
            }
        }
        Ok(())
    }

    /// Everything `actor` holds in the ledger: balances, own stake, unbonding stake, deposits and
    /// reserves, held-back hosting rewards, and proposal bonds still locked. Mining weight is not
    /// counted: it cannot be sold or withdrawn.
    fn worth(&self, actor: usize) -> Result<u128, LedgerError> {
        let mut total = 0u128;
        for key in &self.cast[actor].keys {
            let id = key.id();
            let account = self.ledger.account(&id)?;
            total += u128::from(account.balance)
                + u128::from(account.bonded_to_self)
                + account
                    .unbonding
                    .iter()
                    .map(|u| u128::from(u.amount))
                    .sum::<u128>()
                + u128::from(account.sender.deposit)
                + u128::from(account.sender.reserve)
                + u128::from(self.ledger.held_back(&id)?);
        }
        for c in self.captures.iter().filter(|c| c.actor == actor) {
            total += u128::from(self.ledger.proposal(c.proposal)?.bond_locked);
        }
        Ok(total)
    }

    async fn step(&mut self, step: u64, steps: u64) -> Result<(), SimulationError> {
        for _ in 0..self.rounds_per_step {
            self.ledger.advance_round()?;
        }
        self.top_up()?;
        self.moves(step, steps)?;
        self.transcode().await?;
        self.challenge()?;
        self.charge_costs()?;
        Ok(())
    }

    /// A worker slashed below `min_stake` bonds again from its balance, to stay in the draw.
    fn top_up(&mut self) -> Result<(), SimulationError> {
        let min_stake = self.config.min_stake.max(1);
        for actor in &self.cast {
            if !matches!(actor.strategy.role(), Role::Transcoder | Role::Host) {
                continue;
            }
            for &k in &actor.active {
                let id = actor.keys[k].id();
                let stake = self.ledger.total_stake(&id)?;
                let short = min_stake.saturating_sub(stake);
                if short > 0 && self.ledger.balance(&id)? >= short {
                    self.act(&actor.keys[k], Operation::Bond { amount: short })?;
                }
            }
        }
        Ok(())
    }

    /// What the strategies do besides answering jobs and challenges.
    fn moves(&mut self, step: u64, steps: u64) -> Result<(), SimulationError> {
        let a = self.actors;
        let round = self.ledger.round()?;
        for n in 0..self.cast.len() {
            match self.cast[n].strategy {
                Strategy::SipDrainer if step == 0 && a.drainer_spend > 0 => {
                    let key = &self.cast[n].keys[0];
                    let bought = self.act(
                        key,
                        Operation::BuyWeight {
                            worker: key.id(),
                            amount: a.drainer_spend,
                            max_price_ppm: u64::MAX,
                        },
                    )?;
                    if let Receipt::Bought { weight } = bought {
                        self.cast[n].events.weight_bought += weight;
                        self.cast[n].events.spent_on_weight += a.drainer_spend;
                    }
                    // And then it would dump the weight: no operation sells weight back, transfers or
                    // unbonds it; it bleeds back to the SIP's curve, and the tokens stay in the SIP.
                }
                Strategy::Sybil if a.sybil_rotate_rounds > 0 && step > 0 => {
                    let crossed = (round / a.sybil_rotate_rounds)
                        > ((round - self.rounds_per_step) / a.sybil_rotate_rounds);
                    if crossed {
                        self.rotate(n)?;
                    }
                }
                _ => {}
            }
        }
        self.capture_moves(step, steps)
    }

    /// Moves a Sybil's bytes from its keys to fresh ones: each fresh key bonds the least stake, each
    /// old one unbonds (its stake is locked for `unbonding_rounds`, its held-back rewards wait).
    fn rotate(&mut self, n: usize) -> Result<(), SimulationError> {
        let min_stake = self.config.min_stake.max(1);
        let actor = &self.cast[n];
        let next = actor.active.iter().max().map_or(0, |m| m + 1);
        if next + actor.active.len() > actor.keys.len() {
            return Ok(());
        }
        let old = actor.active.clone();
        let fresh: Vec<usize> = (next..next + old.len()).collect();
        for (&o, &f) in old.iter().zip(&fresh) {
            let (old_key, new_key) = (&self.cast[n].keys[o], &self.cast[n].keys[f]);
            self.act(new_key, Operation::Bond { amount: min_stake })?;
            let bonded = self.ledger.bonded(&old_key.id(), &old_key.id())?;
            if bonded > 0 {
                self.act(
                    old_key,
                    Operation::Unbond {
                        worker: old_key.id(),
                        amount: bonded,
                    },
                )?;
            }
        }
        let actor = &mut self.cast[n];
        for (&o, &f) in old.iter().zip(&fresh) {
            actor.blobs[f] = actor.blobs[o];
            actor.blobs[o] = 0;
        }
        actor.active = fresh;
        Ok(())
    }

    /// The vote capturers: stake the round before, a proposal paying each what the SIP holds, flash
    /// stake once the proposal is known, its vote, the honest votes, and its unbond after the tally.
    fn capture_moves(&mut self, step: u64, steps: u64) -> Result<(), SimulationError> {
        let a = self.actors;
        let at = (steps / 4).max(1);
        let capturers: Vec<usize> = (0..self.cast.len())
            .filter(|&n| self.cast[n].strategy == Strategy::VoteCapturer)
            .collect();
        for &actor in &capturers {
            let id = self.cast[actor].keys[0].id();
            if step + 1 == at && a.capturer_stake > 0 {
                self.act_as(
                    actor,
                    0,
                    Operation::Bond {
                        amount: a.capturer_stake,
                    },
                )?;
            }
            if step == at {
                let amount = self.ledger.sip_status(0)?.balance.max(1);
                let proposed = self.act_as(
                    actor,
                    0,
                    Operation::Propose {
                        kind: ProposalKind::Pay { to: id, amount },
                        reason: "pay the SIP to its proposer".into(),
                    },
                )?;
                let Receipt::Proposed { id: proposal } = proposed else {
                    continue;
                };
                if a.capturer_flash_stake > 0 {
                    self.act_as(
                        actor,
                        0,
                        Operation::Bond {
                            amount: a.capturer_flash_stake,
                        },
                    )?;
                }
                self.captures.push(Capture {
                    actor,
                    proposal,
                    voted: false,
                    unbonded: false,
                });
            }
        }
        let round = self.ledger.round()?;
        for i in 0..self.captures.len() {
            let c = self.captures[i];
            let proposal = self.ledger.proposal(c.proposal)?;
            if !c.voted && round >= proposal.vote_start && round < proposal.vote_end {
                self.captures[i].voted = true;
                let vote = Operation::Vote {
                    proposal: c.proposal,
                    choice: VoteChoice::Yes,
                };
                match self.act_as(c.actor, 0, vote) {
                    Ok(Receipt::Voted { weight }) => {
                        self.cast[c.actor].events.vote_weight += weight
                    }
                    Ok(_) => {}
                    Err(_) => self.cast[c.actor].events.vote_refused = true,
                }
                for n in 0..self.cast.len() {
                    let honest = self.cast[n].strategy;
                    if !honest.is_honest() || honest.role() == Role::Sender {
                        continue;
                    }
                    if self.rng.gen_bool(a.honest_turnout) {
                        // A voter without stake at the snapshot is refused; that changes nothing.
                        let _ = self.act_as(
                            n,
                            0,
                            Operation::Vote {
                                proposal: c.proposal,
                                choice: VoteChoice::No,
                            },
                        );
                    }
                }
            }
            if !c.unbonded && proposal.state != ProposalState::Voting {
                self.captures[i].unbonded = true;
                self.cast[c.actor].events.proposal_paid += proposal.paid;
                let id = self.cast[c.actor].keys[0].id();
                let bonded = self.ledger.bonded(&id, &id)?;
                if bonded > 0 {
                    self.act_as(
                        c.actor,
                        0,
                        Operation::Unbond {
                            worker: id,
                            amount: bonded,
                        },
                    )?;
                }
            }
        }
        Ok(())
    }

    /// The draw's candidates among the transcoders: eligible stake, mining weight, the pool's score.
    fn candidates(&self) -> Result<Vec<Candidate>, LedgerError> {
        Ok(self
            .ledger
            .eligible_workers()?
            .into_iter()
            .filter(|w| {
                self.owner
                    .get(&w.worker)
                    .is_some_and(|&n| self.cast[n].strategy.role() == Role::Transcoder)
            })
            .map(|w| Candidate {
                worker: w.worker,
                stake: w.stake,
                mining: w.mining,
                score: self.pool.score(&w.worker),
            })
            .collect())
    }

    /// One challenge round's transcode jobs: a worker drawn by weight, a sender among the clients,
    /// the coordinator's check of the sender, the worker's answer, the verifier's verdict, and the
    /// ticket redeemed or the worker slashed.
    async fn transcode(&mut self) -> Result<(), SimulationError> {
        let a = self.actors;
        let senders: Vec<usize> = (0..self.cast.len())
            .filter(|&n| self.cast[n].strategy.role() == Role::Sender)
            .collect();
        let mut candidates = self.candidates()?;
        for _ in 0..a.jobs_per_round * self.rounds_per_step {
            let Some(drawn) = draw_weighted(&candidates, &mut self.rng).copied() else {
                break;
            };
            let worker = drawn.worker;
            let w = self.owner[&worker];
            let s = senders[self.rng.gen_range(0..senders.len())];
            let round = self.ledger.round()?;
            let (ticket, rand) = self.ticket(s, w, worker, round + self.config.ticket_validity());
            let covered =
                crate::service::check_sender_covers(&self.ledger, self.config, &[ticket]).await;
            if covered.is_err() {
                self.cast[s].events.refused_jobs += 1;
                continue;
            }
            let answer = job_answer(
                self.cast[w].strategy,
                self.cast[w].jobs_verified,
                self.config.content_check_first_jobs,
            );
            let actor = &mut self.cast[w];
            actor.events.jobs += 1;
            if answer == JobAnswer::Blank {
                actor.cost += a.lazy_job_cost;
                let checked = actor.jobs_verified < self.config.content_check_first_jobs
                    || self
                        .rng
                        .gen_bool(self.config.content_check_share.clamp(0.0, 1.0));
                if checked && self.rng.gen_bool(a.blank_caught_when_checked) {
                    // A failed verification: slashed and suspended, the job unpaid (its tickets are
                    // never redeemed), the score halved.
                    self.slash(w, worker, false)?;
                    candidates = self.candidates()?;
                    continue;
                }
            } else {
                actor.cost += a.job_cost;
                self.cast[s].value += a.client_value;
            }
            self.pool.record_verdict(worker, true);
            self.cast[w].jobs_verified += 1;
            let key = self.cast[w].key_of(&worker).unwrap_or(0);
            // A winner is redeemed at once; a refusal (the sender cannot pay) leaves it unpaid.
            let _ = self.act_as(
                w,
                key,
                Operation::RedeemTicket {
                    ticket,
                    recipient_rand: rand,
                },
            );
            if let Some(c) = candidates.iter_mut().find(|c| c.worker == worker) {
                c.score = self.pool.score(&worker);
            }
        }
        Ok(())
    }

    /// A ticket of one job's price from sender `s` to key `worker` of actor `w`, which always wins.
    fn ticket(
        &mut self,
        s: usize,
        w: usize,
        worker: PublicId,
        expiration_round: u64,
    ) -> (SignedTicket, [u8; 32]) {
        self.tickets += 1;
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&self.tickets.to_le_bytes());
        let secret = self.cast[w].secret;
        let params = TicketParams::derive(
            worker,
            &secret,
            seed,
            TicketTerms {
                face_value: self.actors.job_price,
                win_prob: u64::MAX,
                expiration_round,
                price_per_unit: 0,
                price_per_byte: 0,
            },
        );
        let sender = &self.cast[s].keys[0];
        let ticket = SignedTicket::sign(params.ticket(sender.id(), self.tickets), sender);
        (ticket, recipient_rand(&secret, &seed))
    }

    /// Slashes key `worker` of actor `n` as the coordinator's slasher does: the configured fraction,
    /// suspension, the score lowered, and for a storage fault the held-back rewards forfeited.
    fn slash(&mut self, n: usize, worker: PublicId, storage: bool) -> Result<(), LedgerError> {
        let held = self.ledger.held_back(&worker)?;
        let note = SlashNote {
            evidence: b"simulated fault",
            stored: None,
            at_unix: 0,
            forfeits_held_back: storage,
        };
        let record = self
            .ledger
            .slash_noted(&worker, self.config.slash_fraction, &note)?;
        let forfeited = held - self.ledger.held_back(&worker)?;
        self.pool.record_verdict(worker, false);
        let events = &mut self.cast[n].events;
        events.slashes += 1;
        events.slashed += record.amount;
        events.forfeited += forfeited;
        Ok(())
    }

    /// One challenge round: each host's challenged blobs, its faults slashed, the blobs it failed
    /// taken from it, and the payout of what was proven.
    fn challenge(&mut self) -> Result<(), SimulationError> {
        let a = self.actors;
        let k = self.config.challenge_k;
        let mut credits = Vec::new();
        for n in 0..self.cast.len() {
            if self.cast[n].strategy.role() != Role::Host {
                continue;
            }
            for k_index in self.cast[n].active.clone() {
                let held = self.cast[n].blobs[k_index];
                if held == 0 {
                    continue;
                }
                let worker = self.cast[n].keys[k_index].id();
                let challenged = held.min(u64::from(self.config.challenge_blobs));
                let answer =
                    answer_challenge(self.cast[n].strategy, challenged, k, a, &mut self.rng);
                self.cast[n].cost += answer.fetch_cost;
                if answer.late {
                    self.cast[n].events.missed_deadlines += 1;
                }
                let failed = challenged - answer.passed;
                for _ in 0..failed {
                    self.slash(n, worker, true)?;
                }
                self.cast[n].blobs[k_index] -= failed;
                if failed == 0 {
                    self.pool.record_challenge_passed(worker);
                }
                if answer.passed > 0 {
                    // Each passed blob counts its bytes over its chance of being sampled (§6.9).
                    let proven = answer.passed * a.blob_bytes;
                    credits.push(ProofCredit {
                        worker,
                        proven_bytes: proven,
                        credited: proven * held / challenged,
                    });
                }
            }
        }
        self.ledger.pay_hosting(&credits)?;
        Ok(())
    }

    /// What the step cost each actor outside the ledger: disk for what it keeps, capital for its
    /// locked stake.
    fn charge_costs(&mut self) -> Result<(), SimulationError> {
        let a = self.actors;
        let rounds = self.rounds_per_step as f64;
        for n in 0..self.cast.len() {
            let strategy = self.cast[n].strategy;
            let mut locked = 0u64;
            for key in &self.cast[n].keys {
                let id = key.id();
                locked += self.ledger.bonded(&id, &id)?;
                locked += self
                    .ledger
                    .unbonding(&id)?
                    .iter()
                    .map(|u| u.amount)
                    .sum::<u64>();
            }
            let held_bytes: u64 = self.cast[n].blobs.iter().sum::<u64>() * a.blob_bytes;
            let gib = held_bytes as f64 / f64::from(1u32 << 30);
            let actor = &mut self.cast[n];
            actor.cost += gib * kept_share(strategy, a) * a.disk_cost_per_gib_round * rounds;
            actor.cost += locked as f64 * a.capital_cost_ppb_per_round * 1e-9 * rounds;
        }
        Ok(())
    }

    fn report(mut self, sim: &Simulation, steps: u64) -> Result<Report, SimulationError> {
        let rounds = (steps * self.rounds_per_step) as f64;
        let mut per_strategy: BTreeMap<Strategy, (f64, usize, Events)> = BTreeMap::new();
        for n in 0..self.cast.len() {
            for k in 0..self.cast[n].keys.len() {
                let id = self.cast[n].keys[k].id();
                let bonus: u64 = self
                    .ledger
                    .capacity_bonuses(&id)?
                    .iter()
                    .map(|b| b.bonus)
                    .sum();
                self.cast[n].events.capacity_bonus += bonus;
            }
            let actor = &self.cast[n];
            let end = self.worth(n)?;
            let gained = end as f64 - actor.start_worth as f64;
            let profit = (gained - actor.cost + actor.value) / rounds;
            let entry = per_strategy
                .entry(actor.strategy)
                .or_insert((0.0, 0, Events::default()));
            entry.0 += profit;
            entry.1 += 1;
            add_events(&mut entry.2, &actor.events);
        }
        let mean = |s: Strategy| per_strategy.get(&s).map(|(p, n, _)| p / *n as f64);
        let rows = Strategy::ALL
            .into_iter()
            .filter_map(|strategy| {
                let (_, count, events) = per_strategy.get(&strategy)?;
                let honest_per_round = match strategy.honest() {
                    Some(h) => mean(h),
                    None if strategy == Strategy::VoteCapturer => Some(0.0),
                    None => None,
                };
                Some(Row {
                    strategy,
                    actors: *count,
                    profit_per_round: mean(strategy)?,
                    honest_per_round,
                    decided_by: decided_by(strategy, self.config, &sim.actors),
                    events: describe(strategy, events),
                })
            })
            .collect();
        Ok(Report {
            seed: sim.seed,
            rounds: steps * self.rounds_per_step,
            challenge_rounds: steps,
            rows,
        })
    }
}

/// A secret for the simulation's keys and tickets, from the seed and the actor's place.
fn derive(seed: u64, what: &str, strategy: usize, actor: usize, key: usize) -> [u8; 32] {
    let mut input = Vec::with_capacity(40);
    input.extend_from_slice(&seed.to_le_bytes());
    input.extend_from_slice(what.as_bytes());
    for n in [strategy, actor, key] {
        input.extend_from_slice(&(n as u64).to_le_bytes());
    }
    blake3::derive_key("dualrig 2026-12 incentive simulation", &input)
}
