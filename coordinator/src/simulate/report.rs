//! The simulation's report: each strategy's row, what decides its margin, what happened to its actors,
//! and the Markdown table `dualrig-coordinator simulate` prints.

use std::fmt::Write as _;

use super::strategies::{Events, Role, Strategy};
use super::{Actors, TOKEN};
use crate::config::Config;

/// One strategy's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub strategy: Strategy,
    pub actors: usize,
    /// Mean over its actors of (ledger worth gained − off-ledger costs + off-ledger value) per round.
    pub profit_per_round: f64,
    /// The honest counterpart's (`Strategy::honest`; 0 for the vote capturer's idle tokens).
    pub honest_per_round: Option<f64>,
    /// The rule or parameter that decides the margin, with its value.
    pub decided_by: String,
    /// What happened to its actors, summed.
    pub events: String,
}

impl Row {
    /// Profit per round less the honest counterpart's; `None` for honest play.
    pub fn margin(&self) -> Option<f64> {
        self.honest_per_round.map(|h| self.profit_per_round - h)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub seed: u64,
    pub rounds: u64,
    pub challenge_rounds: u64,
    pub rows: Vec<Row>,
}

impl Report {
    pub fn row(&self, strategy: Strategy) -> Option<&Row> {
        self.rows.iter().find(|r| r.strategy == strategy)
    }

    /// Cheats whose profit is not below their honest counterpart's.
    pub fn paying(&self) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| r.margin().is_some_and(|m| m >= 0.0))
            .collect()
    }

    /// The table as Markdown: strategy, profit per round, honest's, margin, what decides it.
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "{} ledger rounds, {} challenge rounds, seed {}; units per ledger round (1 token = 1 000 000)\n\n",
            self.rounds, self.challenge_rounds, self.seed
        );
        out.push_str(
            "| strategy | actors | profit / round | honest / round | margin | decided by | what happened |\n",
        );
        out.push_str("|---|---|---|---|---|---|---|\n");
        for r in &self.rows {
            let honest = r
                .honest_per_round
                .map_or_else(|| "—".to_owned(), |h| format!("{h:.1}"));
            let margin = r
                .margin()
                .map_or_else(|| "—".to_owned(), |m| format!("{m:+.1}"));
            let _ = writeln!(
                out,
                "| {} | {} | {:.1} | {honest} | {margin} | {} | {} |",
                r.strategy.name(),
                r.actors,
                r.profit_per_round,
                r.decided_by,
                r.events
            );
        }
        out
    }
}

pub(super) fn add_events(sum: &mut Events, e: &Events) {
    sum.jobs += e.jobs;
    sum.slashes += e.slashes;
    sum.slashed += e.slashed;
    sum.forfeited += e.forfeited;
    sum.refused_jobs += e.refused_jobs;
    sum.missed_deadlines += e.missed_deadlines;
    sum.weight_bought += e.weight_bought;
    sum.spent_on_weight += e.spent_on_weight;
    sum.capacity_bonus += e.capacity_bonus;
    sum.vote_weight += e.vote_weight;
    sum.vote_refused |= e.vote_refused;
    sum.proposal_paid += e.proposal_paid;
}

fn tokens(units: u64) -> String {
    format!("{:.2}", units as f64 / TOKEN as f64)
}

/// What happened to a strategy's actors, in a few words.
pub(super) fn describe(strategy: Strategy, e: &Events) -> String {
    match strategy.role() {
        Role::Transcoder => {
            let mut text = format!(
                "{} jobs, {} slashes ({} tokens)",
                e.jobs,
                e.slashes,
                tokens(e.slashed)
            );
            if e.spent_on_weight > 0 {
                let _ = write!(
                    text,
                    ", {} tokens to the SIP for weight {}",
                    tokens(e.spent_on_weight),
                    e.weight_bought
                );
            }
            text
        }
        Role::Host => {
            let mut text = format!(
                "{} slashes ({} tokens), {} tokens held back forfeited",
                e.slashes,
                tokens(e.slashed),
                tokens(e.forfeited)
            );
            if e.missed_deadlines > 0 {
                let _ = write!(text, ", {} deadlines missed", e.missed_deadlines);
            }
            if strategy == Strategy::Sybil || e.capacity_bonus > 0 {
                let _ = write!(text, ", capacity bonus {} tokens", tokens(e.capacity_bonus));
            }
            text
        }
        Role::Sender => format!("{} jobs refused to it", e.refused_jobs),
        Role::Stakeholder => format!(
            "vote weight counted {} tokens{}, paid {} tokens by the SIP",
            tokens(e.vote_weight),
            if e.vote_refused {
                " (vote refused)"
            } else {
                ""
            },
            tokens(e.proposal_paid)
        ),
    }
}

/// The rule or parameter that decides a strategy's margin, with its value under `config`.
pub(super) fn decided_by(strategy: Strategy, config: &Config, a: &Actors) -> String {
    let slash = f64::from(config.slash_fraction.ppm()) / 1e4;
    match strategy {
        Strategy::LazyTranscoder => format!(
            "content_check_share {} (every one of the first {} jobs) × slash {slash} % of {} stake + the unpaid job ≈ {:.0} a job, over the {:.0} a job it saves; suspension {} rounds",
            config.content_check_share,
            config.content_check_first_jobs,
            tokens(config.min_stake),
            config.content_check_share
                * (f64::from(config.slash_fraction.ppm()) / 1e6 * config.min_stake as f64
                    + a.job_price as f64),
            a.job_cost - a.lazy_job_cost,
            config.suspend_rounds
        ),
        Strategy::SipDrainer => format!(
            "weight cannot be sold back and bleeds {} ppm a round to the SIP: {} tokens buy draws worth less",
            config.sip.weight_bleed_ppm,
            tokens(a.drainer_spend)
        ),
        Strategy::DataDeleter => format!(
            "challenge_k {} × challenge_blobs {}: a blob keeping {} % of its chunks passes with {:.3}; each failed blob slashes {slash} % and forfeits the held back",
            config.challenge_k,
            config.challenge_blobs,
            a.deleter_keeps * 100.0,
            a.deleter_keeps.powi(config.challenge_k as i32)
        ),
        Strategy::Outsourcer => format!(
            "a late answer ({} % of challenge rounds) fails all {} challenged blobs: a slash each and the held back ({} % at first) forfeited",
            a.outsourcer_miss * 100.0,
            config.challenge_blobs,
            config.hosting.held_back_ppm[0] / 10_000
        ),
        Strategy::Sybil => format!(
            "credit is per byte, not per key; min_stake {} tokens locked per key; capacity_bonus_per_byte {}",
            tokens(config.min_stake),
            config.capacity_bonus_per_byte
        ),
        Strategy::TicketWithholder => format!(
            "a sender that is unlocking or cannot cover a ticket gets no work; tickets live {} rounds < unlock_rounds {}",
            config.ticket_validity(),
            config.unlock_rounds
        ),
        Strategy::VoteCapturer => format!(
            "snapshot: the {} tokens bonded once the proposal is known weigh 0; its {} tokens at the snapshot face quorum {} % of all stake and honest turnout {} % voting no; a missed quorum forfeits the {}-token bond",
            tokens(a.capturer_flash_stake),
            tokens(a.capturer_stake),
            config.governance.quorum_ppm / 10_000,
            a.honest_turnout * 100.0,
            tokens(config.governance.proposal_bond)
        ),
        Strategy::HonestTranscoder | Strategy::HonestHost | Strategy::HonestSender => {
            "—".to_owned()
        }
    }
}
