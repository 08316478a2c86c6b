//! Carries stake and mining weight from the ledger to the pool: read on a blocking thread, then handed over in one
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
        Ok(stakes) => {
            for (id, view) in &stakes {
                crate::metrics::worker_stake(id, view.stake);
            }
            pool.set_stakes(stakes)
        }
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
        .eligible_workers()?
        .into_iter()
        .map(|e| {
            (
                e.worker,
                StakeView {
                    stake: e.stake,
                    mining: e.mining,
                    suspended: false,
                },
            )
        })
        .collect();
    for id in attached {
        if stakes.contains_key(id) {
            continue;
        }
        // Not eligible: its mining weight does not count.
        let view = StakeView {
            stake: ledger.total_stake(id)?,
            mining: 0,
            suspended: ledger.suspended_until(id)?.is_some(),
        };
        stakes.insert(*id, view);
    }
    Ok(stakes)
}

#[cfg(test)]
mod tests {
    use dualrig_proto::identity::Identity;

    use super::*;
    use crate::ledger::{
        Genesis, GenesisAccount, LedgerConfig, Operation, SignedRequest, SlashFraction,
    };

    #[test]
    fn attached_workers_below_the_minimum_or_suspended_are_seen_as_such() {
        let (rich, poor, cheat) = (
            Identity::from_secret([1; 32]),
            Identity::from_secret([2; 32]),
            Identity::from_secret([3; 32]),
        );
        let genesis = Genesis::new(
            [&rich, &poor, &cheat]
                .iter()
                .map(|k| GenesisAccount {
                    id: k.id(),
                    balance: 10_000_000,
                })
                .collect(),
        )
        .expect("genesis");
        let config = LedgerConfig {
            min_stake: 1_000_000,
            ..LedgerConfig::default()
        };
        let ledger = Ledger::open_in_memory(config, &genesis).expect("ledger");
        for (key, amount) in [(&rich, 5_000_000), (&poor, 10), (&cheat, 2_000_000)] {
            ledger
                .execute(&SignedRequest::sign(key, 1, &Operation::Bond { amount }))
                .expect("bond");
        }
        ledger
            .slash(
                &cheat.id(),
                SlashFraction::from_ppm(500_000).expect("half"),
                b"evidence",
            )
            .expect("slash");
        let unknown = PublicId([9; 32]);
        let view = read(&ledger, &[poor.id(), cheat.id(), unknown]).expect("read");
        let staked = |stake, suspended| StakeView {
            stake,
            mining: 0,
            suspended,
        };
        assert_eq!(view[&rich.id()], staked(5_000_000, false));
        assert_eq!(view[&poor.id()], staked(10, false));
        assert_eq!(view[&cheat.id()], staked(1_000_000, true));
        assert_eq!(view[&unknown], staked(0, false));
    }
}
