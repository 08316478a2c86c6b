//! `ListProposals` (PROTOCOL §6.12): SIP proposals from the ledger a page at a time, each with its
//! tally, its outcome and what it paid to whom, so anyone can check an execution against the votes.

use std::sync::Arc;

use dualrig_proto::v1::{
    ListProposalsRequest, ListProposalsResponse, ProposalInfo, ProposalPayment,
};
use tonic::Status;

use crate::ledger::{Ledger, LedgerError, Proposal, ProposalKind};
use crate::paging::Page;

fn proposal_to_wire(p: &Proposal, payments: Vec<ProposalPayment>) -> ProposalInfo {
    let (kind, payee, amount, window_rounds) = match p.kind {
        ProposalKind::Pay { to, amount } => ("pay", to.as_bytes().to_vec(), amount, 0),
        ProposalKind::OperatorSupport {
            amount,
            window_rounds,
        } => ("operator_support", Vec::new(), amount, window_rounds),
    };
    ProposalInfo {
        id: p.id,
        proposer: p.proposer.as_bytes().to_vec(),
        kind: kind.into(),
        payee,
        amount,
        window_rounds,
        reason: p.reason.clone(),
        snapshot_round: p.snapshot_round,
        vote_start: p.vote_start,
        vote_end: p.vote_end,
        total_stake: p.total_stake,
        bond: p.bond,
        bond_locked: p.bond_locked,
        yes: p.yes,
        no: p.no,
        abstain: p.abstain,
        state: p.state.name().into(),
        outcome: p.outcome.clone(),
        tallied_round: p.tallied_round.unwrap_or(0),
        paid: p.paid,
        payments,
    }
}

pub async fn list_proposals(
    ledger: &Arc<Ledger>,
    request: ListProposalsRequest,
) -> Result<ListProposalsResponse, Status> {
    let page = Page::requested("proposals", &request.page_token, request.page_size)?;
    let after = page.after_key::<8>("proposals")?.map(u64::from_be_bytes);
    let limit = page.size + 1;
    let only = request.id;
    let (round, sip, fund, rows) = ledger
        .call(move |l| {
            let proposals = if only > 0 {
                vec![l.proposal(only)?]
            } else {
                l.proposals_page(after.unwrap_or(0), limit)?
            };
            let mut rows = Vec::with_capacity(proposals.len());
            for p in proposals {
                let payments = l.proposal_payments(p.id)?;
                rows.push((p, payments));
            }
            Ok::<_, LedgerError>((l.round()?, l.pool_balance()?, l.capacity_fund()?, rows))
        })
        .await?;
    let (rows, next_page_token) = page.finish(rows, |(p, _)| p.id.to_be_bytes().to_vec());
    let rules = ledger.config().governance;
    Ok(ListProposalsResponse {
        proposals: rows
            .iter()
            .map(|(p, payments)| {
                let payments = payments
                    .iter()
                    .map(|(payee, work, amount)| ProposalPayment {
                        payee: payee.as_bytes().to_vec(),
                        work: *work,
                        amount: *amount,
                    })
                    .collect();
                proposal_to_wire(p, payments)
            })
            .collect(),
        next_page_token,
        round,
        sip,
        capacity_fund: fund,
        proposal_bond: rules.proposal_bond,
        quorum_ppm: rules.quorum_ppm,
        approval_ppm: rules.approval_ppm,
    })
}
