//! Carries stake from the ledger to the pool: read on a blocking thread, then handed over in one
//! short lock, so ledger I/O never runs under the pool's mutex.

use std::collections::HashMap;
use std::sync::Arc;

use dualrig_proto::identity::PublicId;

use crate::ledger::{Ledger, LedgerError};
use crate::pool::{StakeView, WorkerPool};

/// Re-reads the stake of every eligible worker and of every worker attached now. On a ledger error
/// the pool keeps what it had, and the error is logged: assignment goes on with slightly old stake.
pub async fn refresh(ledger: &Arc<Ledger>, pool: &WorkerPool) {
    let attached = pool.attached();
    match ledger.call(move |l| read(l, &attached)).await {
        Ok(stakes) => pool.set_stakes(stakes),
        Err(e) => {
            tracing::error!(error = %e, "cannot read stake from the ledger; keeping the last view")
        }
    }
}

/// Stake of the ledger's eligible workers, and of `attached` ones that are not (unstaked, under the
/// minimum, or suspended).
pub fn read(
    ledger: &Ledger,
    attached: &[PublicId],
) -> Result<HashMap<PublicId, StakeView>, LedgerError> {
    let mut stakes: HashMap<PublicId, StakeView> = ledger
        .eligible_stakes()?
        .into_iter()
        .map(|(id, stake)| {
            (
                id,
                StakeView {
                    stake,
                    suspended: false,
                },
            )
        })
        .collect();
    for id in attached {
        if stakes.contains_key(id) {
            continue;
        }
        let view = StakeView {
            stake: ledger.total_stake(id)?,
            suspended: ledger.suspended_until(id)?.is_some(),
        };
        stakes.insert(*id, view);
    }
    Ok(stakes)
}
