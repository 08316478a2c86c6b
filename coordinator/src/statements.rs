//! `ListStatements` (PROTOCOL §6.9): a worker's hosting statements from the ledger, a page at a time,
//! each with the inputs of the payout it came from.

use std::sync::Arc;

use dualrig_proto::identity::PublicId;
use dualrig_proto::v1::{
    HostingPayout, HostingStatement, ListStatementsRequest, ListStatementsResponse,
};
use tonic::Status;

use crate::error::CoordinatorError;
use crate::ledger::{HostingRound, Ledger, Statement};
use crate::paging::Page;

pub fn payout_to_wire(r: &HostingRound) -> HostingPayout {
    HostingPayout {
        round: r.round,
        rounds_covered: r.rounds_covered,
        minted: r.minted,
        fees: r.fees,
        budget: r.budget,
        credited_bytes: r.credited,
        workers: r.workers,
        dust: r.dust,
    }
}

fn statement_to_wire(s: &Statement, payout: Option<HostingRound>) -> HostingStatement {
    HostingStatement {
        round: s.round,
        proven_bytes: s.proven_bytes,
        credited_bytes: s.credited,
        reward: s.reward,
        held_back: s.held,
        released: s.released,
        forfeited: s.forfeited,
        paid: s.paid(),
        payout: payout.as_ref().map(payout_to_wire),
        served_bytes: s.served_bytes,
        served_paid: s.served_paid,
    }
}

pub async fn list_statements(
    ledger: &Arc<Ledger>,
    request: ListStatementsRequest,
) -> Result<ListStatementsResponse, Status> {
    let worker = PublicId::from_slice("worker", &request.worker).map_err(CoordinatorError::from)?;
    let page = Page::requested("statements", &request.page_token, request.page_size)?;
    let after_token = page.after_key::<8>("statements")?.map(u64::from_be_bytes);
    let limit = page.size + 1;
    let last_rounds = request.rounds;
    let (round, held_back, rows) = ledger
        .call(move |l| {
            let round = l.round()?;
            // The last `rounds` rounds are those after `round - rounds`.
            let window = (last_rounds > 0)
                .then(|| round.checked_sub(last_rounds))
                .flatten();
            let after = match (after_token, window) {
                (Some(a), Some(w)) => Some(a.max(w)),
                (a, w) => a.or(w),
            };
            let statements = l.statements(&worker, after, limit)?;
            let mut rows = Vec::with_capacity(statements.len());
            for s in statements {
                let payout = l.hosting_round(s.round)?;
                rows.push((s, payout));
            }
            Ok((round, l.held_back(&worker)?, rows))
        })
        .await?;
    let (rows, next_page_token) = page.finish(rows, |(s, _)| s.round.to_be_bytes().to_vec());
    Ok(ListStatementsResponse {
        statements: rows
            .iter()
            .map(|(s, payout)| statement_to_wire(s, *payout))
            .collect(),
        next_page_token,
        held_back,
        round,
    })
}
