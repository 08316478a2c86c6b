//! What only the coordinator knows about this worker, asked for every few seconds while a dashboard is
//! served: its stake and balance (`Account`), its slashes with their reasons (`ListSlashes`), and, while
//! someone is looking ([`VIEWED_FOR`]), how many of its results passed verification (`ListWorkers`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dualrig_proto::identity::PublicId;
use dualrig_proto::v1::coordinator_client::CoordinatorClient;
use dualrig_proto::v1::{
    AccountRequest, ListSlashesRequest, ListStatementsRequest, ListWorkersRequest,
};
use tonic::transport::Channel;
use tracing::debug;

use super::status::{self, Account, SLASHES_LISTED, Slash};
use crate::coordinators::Coordinators;

/// Time between two rounds of questions.
pub const ASK_EVERY: Duration = Duration::from_secs(3);
/// Longest one round of questions may take before it is given up until the next.
const ASK_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a read of the status counts as someone looking. Finding this worker's verified count
/// walks the coordinator's list of workers, so every worker asking it every few seconds would cost
/// the coordinator the square of its workers; it is asked only while the page or a script has read
/// the status this recently. The account and the slashes, which the coordinator answers for this
/// worker alone, are asked always.
pub const VIEWED_FOR: Duration = Duration::from_secs(60);

/// When the status was last read, in Unix milliseconds (0: never).
static LAST_VIEWED_MS: AtomicU64 = AtomicU64::new(0);

/// Notes that someone read the status just now.
pub fn viewed() {
    LAST_VIEWED_MS.store(status::now_unix_ms(), Ordering::Relaxed);
}

fn recently_viewed() -> bool {
    let last = LAST_VIEWED_MS.load(Ordering::Relaxed);
    last != 0 && status::now_unix_ms().saturating_sub(last) < VIEWED_FOR.as_millis() as u64
}

/// Asks the coordinator the worker serves now about worker `id` every [`ASK_EVERY`], forever; an
/// unreachable coordinator leaves the last answers in place (the connection state says why).
pub async fn watch(coordinators: Arc<Coordinators>, id: PublicId) {
    let mut tick = tokio::time::interval(ASK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut hosting = HostingTally::default();
    loop {
        tick.tick().await;
        // The one attached now: its count of verified results is of this connection.
        let mut api = coordinators.client();
        match tokio::time::timeout(ASK_TIMEOUT, ask(&mut api, &id, &mut hosting)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => debug!(error = %e.message(), "dashboard: coordinator did not answer"),
            Err(_) => debug!("dashboard: coordinator did not answer in time"),
        }
    }
}

/// Hosting rewards summed from the statements, read once each: rounds before the ledger's current one
/// are final (a round pays at most once, and only while it is current), so only the current round's
/// row is read again.
#[derive(Debug, Default)]
struct HostingTally {
    /// The last final round added.
    through: Option<u64>,
    total: u64,
}

impl HostingTally {
    /// Reads the statements after the last final round; returns the rewards, the current round's
    /// included.
    async fn update(
        &mut self,
        api: &mut CoordinatorClient<Channel>,
        id: &PublicId,
    ) -> Result<u64, tonic::Status> {
        let mut pending = 0u64;
        let mut page_token = Vec::new();
        loop {
            let page = api
                .list_statements(ListStatementsRequest {
                    worker: id.as_bytes().to_vec(),
                    rounds: 0,
                    page_token: match (&self.through, page_token.is_empty()) {
                        (Some(r), true) => r.to_be_bytes().to_vec(),
                        _ => page_token,
                    },
                    page_size: 0,
                })
                .await?
                .into_inner();
            for s in &page.statements {
                if s.round < page.round {
                    self.total = self.total.saturating_add(s.reward);
                    self.through = Some(s.round);
                } else {
                    pending = pending.saturating_add(s.reward);
                }
            }
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        Ok(self.total.saturating_add(pending))
    }
}

async fn ask(
    api: &mut CoordinatorClient<Channel>,
    id: &PublicId,
    hosting: &mut HostingTally,
) -> Result<(), tonic::Status> {
    let info = api
        .account(AccountRequest {
            account: id.as_bytes().to_vec(),
        })
        .await?
        .into_inner();
    let account = Account {
        balance: info.balance,
        bonded_to_self: info.bonded_to_self,
        stake: info.stake,
        round: info.round,
        suspended_until: info.suspended_until,
        checked_unix_ms: status::now_unix_ms(),
    };
    status::record(|s| s.account = Some(account));

    let rewards = hosting.update(api, id).await?;
    status::record(|s| s.hosting_rewards = Some(rewards));

    let (count, amount, recent) = slashes(api, id).await?;
    status::record(|s| {
        s.slashes.count = count;
        s.slashes.amount = amount;
        s.slashes.recent = recent;
    });

    if recently_viewed()
        && let Some(verified) = verified_on_connection(api, id).await?
    {
        status::record_verified_on_connection(verified);
    }
    Ok(())
}

/// Every slash of `id`: how many, the units they took, and the newest [`SLASHES_LISTED`] in full.
async fn slashes(
    api: &mut CoordinatorClient<Channel>,
    id: &PublicId,
) -> Result<(u64, u64, Vec<Slash>), tonic::Status> {
    let mut count = 0u64;
    let mut amount = 0u64;
    let mut recent = std::collections::VecDeque::with_capacity(SLASHES_LISTED);
    let mut page_token = Vec::new();
    loop {
        let page = api
            .list_slashes(ListSlashesRequest {
                worker: id.as_bytes().to_vec(),
                page_token,
                page_size: 0,
                with_evidence: false,
            })
            .await?
            .into_inner();
        for entry in page.slashes {
            count += 1;
            amount = amount.saturating_add(entry.amount);
            if recent.len() == SLASHES_LISTED {
                recent.pop_front();
            }
            recent.push_back(Slash {
                id: entry.id,
                round: entry.round,
                amount: entry.amount,
                fraction_ppm: entry.fraction_ppm,
                reason: entry.reason,
            });
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    // Newest first, as a person reads them.
    Ok((count, amount, recent.into_iter().rev().collect()))
}

/// The coordinator's count of `id`'s verified results on its current connection, or `None` when it
/// does not list `id` (not attached now).
async fn verified_on_connection(
    api: &mut CoordinatorClient<Channel>,
    id: &PublicId,
) -> Result<Option<u64>, tonic::Status> {
    let mut page_token = Vec::new();
    loop {
        let page = api
            .list_workers(ListWorkersRequest {
                page_token,
                page_size: 0,
            })
            .await?
            .into_inner();
        if let Some(me) = page
            .workers
            .iter()
            .find(|w| w.worker_id == id.as_bytes().as_slice())
        {
            return Ok(Some(me.jobs_done));
        }
        // Listed in id order: once past `id`, it is not there.
        let past = page
            .workers
            .last()
            .is_some_and(|w| w.worker_id.as_slice() > id.as_bytes().as_slice());
        if past || page.next_page_token.is_empty() {
            return Ok(None);
        }
        page_token = page.next_page_token;
    }
}
