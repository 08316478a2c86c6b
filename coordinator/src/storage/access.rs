//! Gated Gets (PROTOCOL §6.10): a blob stored for a collective is served only to a member that signed
//! its Get over a single-use nonce, and only within what [`Ledger::admit_collective_get`] admits (the
//! one access rule: membership, then the round's free allotment, where paid downloads will plug in).

use std::sync::Arc;

use dualrig_proto::access::get_message;
use dualrig_proto::identity::PublicId;
use dualrig_proto::v1::GetRequest;

use crate::error::StorageError;
use crate::ledger::{Ledger, LedgerError};
use crate::metrics;
use crate::pool::WorkerPool;

/// Who asked for a gated blob, checked: the account signed this very request over a nonce it used up.
fn signer(
    pool: &WorkerPool,
    request: &GetRequest,
    root: &[u8; 32],
) -> Result<Option<PublicId>, StorageError> {
    let Some(auth) = &request.auth else {
        return Ok(None);
    };
    let account = PublicId::from_slice("auth.account", &auth.account)
        .map_err(|e| StorageError::GetAuth(e.to_string()))?;
    pool.take_get_nonce(&auth.nonce, &account)
        .map_err(|e| StorageError::GetAuth(e.to_string()))?;
    let nonce: [u8; 32] = auth.nonce.as_slice().try_into().unwrap_or([0; 32]);
    let message = get_message(&nonce, &account, root, request.start, request.end);
    account.verify(&message, &auth.sig).map_err(|e| {
        StorageError::GetAuth(format!(
            "signature does not verify under account {account} for this root and range: {e}"
        ))
    })?;
    Ok(Some(account))
}

/// Admits a Get of `bytes` of `root`, a blob of collective `name`, or says why not.
pub(super) async fn admit(
    pool: &WorkerPool,
    ledger: &Arc<Ledger>,
    name: &str,
    request: &GetRequest,
    root: &[u8; 32],
    bytes: u64,
    paid: bool,
) -> Result<(), StorageError> {
    let outcome = admit_inner(pool, ledger, name, request, root, bytes, paid).await;
    metrics::collective_get(match &outcome {
        Ok(()) => "served",
        Err(StorageError::Gated { .. }) => "not_member",
        Err(StorageError::Ledger(LedgerError::NotMemberForGet { .. })) => "not_member",
        Err(StorageError::Ledger(LedgerError::AllotmentUsed { .. })) => "allotment_used",
        Err(StorageError::GetAuth(_)) => "unauthenticated",
        Err(_) => "error",
    });
    outcome
}

async fn admit_inner(
    pool: &WorkerPool,
    ledger: &Arc<Ledger>,
    name: &str,
    request: &GetRequest,
    root: &[u8; 32],
    bytes: u64,
    paid: bool,
) -> Result<(), StorageError> {
    let Some(account) = signer(pool, request, root)? else {
        let owned = name.to_owned();
        let collective = ledger.call(move |l| l.collective(&owned)).await?;
        return Err(StorageError::Gated {
            root: *root,
            name: name.to_owned(),
            access_stake: collective.rules.access_stake,
        });
    };
    let owned = name.to_owned();
    let admission = ledger
        .call(move |l| l.admit_collective_get(&owned, &account, bytes, paid))
        .await?;
    tracing::debug!(
        collective = name,
        member = %account.short(),
        used = admission.used,
        free = admission.free_bytes_per_round,
        round = admission.round,
        "gated Get admitted"
    );
    Ok(())
}
