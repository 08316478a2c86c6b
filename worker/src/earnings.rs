//! `dualrig-worker earnings`: what this worker has earned, from the coordinator's ledger: balance and
//! stake, and its hosting statements (PROTOCOL §6.9) for the last rounds, as a table or as JSON.

use dualrig_proto::amount::format_tokens;
use dualrig_proto::identity::PublicId;
use dualrig_proto::v1::coordinator_client::CoordinatorClient;
use dualrig_proto::v1::{AccountInfo, AccountRequest, HostingStatement, ListStatementsRequest};
use serde::Serialize;
use tonic::transport::Channel;

/// The account and every statement of the last `rounds` rounds (all pages of them).
pub struct Earnings {
    pub worker: PublicId,
    pub account: AccountInfo,
    pub held_back: u64,
    pub statements: Vec<HostingStatement>,
}

#[derive(Debug, thiserror::Error)]
pub enum EarningsError {
    #[error("cannot reach the coordinator at {url}: {source}")]
    Connect {
        url: String,
        source: tonic::transport::Error,
    },
    #[error("{call} refused: {}", .status.message())]
    Refused {
        call: &'static str,
        status: tonic::Status,
    },
    #[error("no coordinator URL given")]
    NoCoordinator,
}

/// Asks the coordinators at `urls`, one after another until one answers (they share one ledger), for
/// `worker`'s account and its statements of the last `rounds` ledger rounds (0: all).
pub async fn fetch(
    urls: &[String],
    worker: PublicId,
    rounds: u64,
) -> Result<Earnings, EarningsError> {
    let mut last = None;
    for url in urls {
        match fetch_from(url, worker, rounds).await {
            Err(e) if e.unreachable() && urls.len() > 1 => {
                tracing::info!(coordinator = %url, error = %e, "coordinator not reached; asking the next");
                last = Some(e);
            }
            answer => return answer,
        }
    }
    Err(last.unwrap_or(EarningsError::NoCoordinator))
}

impl EarningsError {
    /// The coordinator was not reached (or went away mid-call), so another may answer.
    fn unreachable(&self) -> bool {
        match self {
            EarningsError::Connect { .. } => true,
            EarningsError::Refused { status, .. } => crate::coordinators::unreachable(status),
            EarningsError::NoCoordinator => false,
        }
    }
}

/// [`fetch`] from the one coordinator at `url`.
async fn fetch_from(url: &str, worker: PublicId, rounds: u64) -> Result<Earnings, EarningsError> {
    let mut api: CoordinatorClient<Channel> = CoordinatorClient::connect(url.to_owned())
        .await
        .map_err(|source| EarningsError::Connect {
            url: url.to_owned(),
            source,
        })?;
    let account = api
        .account(AccountRequest {
            account: worker.as_bytes().to_vec(),
        })
        .await
        .map_err(|status| EarningsError::Refused {
            call: "Account",
            status,
        })?
        .into_inner();
    let mut statements = Vec::new();
    let mut page_token = Vec::new();
    let held_back = loop {
        let page = api
            .list_statements(ListStatementsRequest {
                worker: worker.as_bytes().to_vec(),
                rounds,
                page_token,
                page_size: 0,
            })
            .await
            .map_err(|status| EarningsError::Refused {
                call: "ListStatements",
                status,
            })?
            .into_inner();
        statements.extend(page.statements);
        if page.next_page_token.is_empty() {
            break page.held_back;
        }
        page_token = page.next_page_token;
    };
    Ok(Earnings {
        worker,
        account,
        held_back,
        statements,
    })
}

#[derive(Serialize)]
struct StatementJson {
    round: u64,
    proven_bytes: u64,
    credited_bytes: u64,
    reward: u64,
    held_back: u64,
    released: u64,
    forfeited: u64,
    paid: u64,
    served_bytes: u64,
    served_paid: u64,
    /// The payout's inputs: the budget split and what it came from.
    payout: Option<PayoutJson>,
}

#[derive(Serialize)]
struct PayoutJson {
    rounds_covered: u64,
    minted: u64,
    fees: u64,
    budget: u64,
    credited_bytes: u64,
    workers: u64,
}

#[derive(Serialize)]
struct EarningsJson {
    worker: String,
    round: u64,
    balance: u64,
    stake: u64,
    held_back: u64,
    statements: Vec<StatementJson>,
}

impl Earnings {
    /// The JSON form: amounts in base units, bytes as counts.
    pub fn to_json(&self) -> String {
        let json = EarningsJson {
            worker: self.worker.to_string(),
            round: self.account.round,
            balance: self.account.balance,
            stake: self.account.stake,
            held_back: self.held_back,
            statements: self
                .statements
                .iter()
                .map(|s| StatementJson {
                    round: s.round,
                    proven_bytes: s.proven_bytes,
                    credited_bytes: s.credited_bytes,
                    reward: s.reward,
                    held_back: s.held_back,
                    released: s.released,
                    forfeited: s.forfeited,
                    paid: s.paid,
                    served_bytes: s.served_bytes,
                    served_paid: s.served_paid,
                    payout: s.payout.as_ref().map(|p| PayoutJson {
                        rounds_covered: p.rounds_covered,
                        minted: p.minted,
                        fees: p.fees,
                        budget: p.budget,
                        credited_bytes: p.credited_bytes,
                        workers: p.workers,
                    }),
                })
                .collect(),
        };
        serde_json::to_string_pretty(&json).expect("plain data serializes")
    }

    /// The table a person reads: the account, then one line per round.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let a = &self.account;
        out.push_str(&format!("worker     {}\n", self.worker));
        out.push_str(&format!("balance    {}\n", format_tokens(a.balance)));
        out.push_str(&format!("bonded     {}\n", format_tokens(a.bonded_to_self)));
        out.push_str(&format!("stake      {}\n", format_tokens(a.stake)));
        out.push_str(&format!("held back  {}\n", format_tokens(self.held_back)));
        out.push_str(&format!("round      {}\n", a.round));
        if self.statements.is_empty() {
            out.push_str("no hosting statements in these rounds\n");
            return out;
        }
        out.push_str(&format!(
            "\n{:>8} {:>14} {:>14} {:>12} {:>12} {:>12} {:>12} {:>12} {:>14} {:>12}\n",
            "round",
            "proven B",
            "credited B",
            "reward",
            "held",
            "released",
            "forfeited",
            "paid",
            "served B",
            "served for"
        ));
        for s in &self.statements {
            out.push_str(&format!(
                "{:>8} {:>14} {:>14} {:>12} {:>12} {:>12} {:>12} {:>12} {:>14} {:>12}\n",
                s.round,
                s.proven_bytes,
                s.credited_bytes,
                format_tokens(s.reward),
                format_tokens(s.held_back),
                format_tokens(s.released),
                format_tokens(s.forfeited),
                format_tokens(s.paid),
                s.served_bytes,
                format_tokens(s.served_paid),
            ));
        }
        let paid: u64 = self.statements.iter().map(|s| s.paid).sum();
        out.push_str(&format!("paid in these rounds: {}\n", format_tokens(paid)));
        out
    }
}
