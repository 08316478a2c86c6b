//! `SipStatus` (PROTOCOL §6.11): the service infrastructure pool's figures from the ledger, with a
//! price quote for mining weight.

use std::sync::Arc;

use dualrig_proto::v1::{SipFlow, SipStatusRequest, SipStatusResponse};
use tonic::Status;

use crate::ledger::{Ledger, SipSource};

/// Most rounds of flows one answer lists.
pub const MAX_RECENT_ROUNDS: u64 = 1_000;

fn flow(round: u64, source: SipSource, amount_in: u64, amount_out: u64) -> SipFlow {
    SipFlow {
        round,
        source: source.name().to_owned(),
        amount_in,
        amount_out,
    }
}

pub async fn sip_status(
    ledger: &Arc<Ledger>,
    request: SipStatusRequest,
) -> Result<SipStatusResponse, Status> {
    if request.recent_rounds > MAX_RECENT_ROUNDS {
        return Err(Status::invalid_argument(format!(
            "recent_rounds = {} is above {MAX_RECENT_ROUNDS}; ask for fewer rounds",
            request.recent_rounds
        )));
    }
    let amount = request.quote_amount;
    let (status, quote) = ledger
        .call(move |l| Ok((l.sip_status(request.recent_rounds)?, l.sip_quote(amount)?)))
        .await?;
    let rules = ledger.config().sip;
    let narrow = |v: u128| u64::try_from(v).unwrap_or(u64::MAX);
    Ok(SipStatusResponse {
        round: status.round,
        balance: status.balance,
        weight_outstanding: status.weight_outstanding,
        curve_tokens: narrow(status.curve.tokens),
        curve_weight: narrow(status.curve.weight),
        spot_price_ppm: status.curve.spot_price_ppm().unwrap_or(0),
        totals: status
            .totals
            .iter()
            .map(|&(source, i, o)| flow(0, source, i, o))
            .collect(),
        recent: status
            .recent
            .iter()
            .map(|f| flow(f.round, f.source, f.amount_in, f.amount_out))
            .collect(),
        quote_amount: quote.amount,
        quote_weight: quote.weight,
        quote_price_ppm: quote.price_ppm.unwrap_or(0),
        weight_bleed_ppm: rules.weight_bleed_ppm,
        weight_stake_ppm: rules.weight_stake_ppm,
    })
}
