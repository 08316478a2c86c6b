//! The one way a worker is slashed, whatever it did wrong: a transcode result that fails verification
//! (the dispatcher) and a storage challenge that fails (challenge rounds) both call [`Slasher::slash`],
//! which keeps the evidence in the evidence store (files, or the shared database), records the slash
//! with its typed [`Fault`] in the ledger, moves the configured share of stake to the pool, suspends,
//! lowers the worker's score, counts it, refreshes the stake the draw uses, and prunes kept evidence to
//! its bounds.

use std::sync::Arc;

use dualrig_proto::identity::PublicId;
use dualrig_proto::v1::slash_evidence::Kind;
use dualrig_proto::v1::{
    JobResult, SlashEvidence, StorageEvidence, TranscodeEvidence, TranscodeJob,
};
use tracing::warn;

use crate::evidence::{EvidenceRef, EvidenceStore};
use crate::fault::Fault;
use crate::ledger::{Ledger, SlashFraction, SlashNote, SlashRecord, StoredEvidence};
use crate::metrics;
use crate::pool::WorkerPool;

/// What a slash is for: the fault and what shows it.
#[derive(Debug, Clone)]
pub enum Offence {
    /// A transcode result that failed verification. The job is kept without its payment (the tickets
    /// are the client's business, not part of the fault).
    Transcode {
        job: TranscodeJob,
        result: JobResult,
        fault: Fault,
    },
    /// A storage challenge whose answer failed for one blob.
    Storage {
        challenge: StorageEvidence,
        fault: Fault,
    },
}

impl Offence {
    pub fn fault(&self) -> &Fault {
        match self {
            Offence::Transcode { fault, .. } | Offence::Storage { fault, .. } => fault,
        }
    }

    /// The evidence as recorded: the typed fault, the reason derived from it for people, and what
    /// shows it.
    pub fn evidence(&self) -> SlashEvidence {
        let kind = match self {
            Offence::Transcode { job, result, .. } => Kind::Transcode(TranscodeEvidence {
                job: Some(TranscodeJob {
                    payment: Vec::new(),
                    ..job.clone()
                }),
                result: Some(result.clone()),
            }),
            Offence::Storage { challenge, .. } => Kind::Storage(challenge.clone()),
        };
        SlashEvidence {
            kind: Some(kind),
            reason: self.fault().to_string(),
            fault: Some(self.fault().to_wire()),
        }
    }
}

/// What a slash did.
#[derive(Debug)]
pub struct Slashed {
    /// The ledger's record; `None` when the ledger could not take the slash (logged).
    pub record: Option<SlashRecord>,
    /// The encoded `SlashEvidence`'s name and length in the evidence store.
    pub evidence: EvidenceRef,
}

/// How much slash evidence is kept, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct EvidenceKeeping {
    pub max_bytes: u64,
    pub retention: std::time::Duration,
}

#[derive(Debug)]
pub struct Slasher {
    ledger: Arc<Ledger>,
    pool: Arc<WorkerPool>,
    fraction: SlashFraction,
    evidence: Arc<EvidenceStore>,
    keeping: EvidenceKeeping,
}

impl Slasher {
    pub fn new(
        ledger: Arc<Ledger>,
        pool: Arc<WorkerPool>,
        fraction: SlashFraction,
        evidence: Arc<EvidenceStore>,
        keeping: EvidenceKeeping,
    ) -> Self {
        Self {
            ledger,
            pool,
            fraction,
            evidence,
            keeping,
        }
    }

    pub fn evidence_store(&self) -> &Arc<EvidenceStore> {
        &self.evidence
    }

    /// The ledger slashes are recorded in.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Slashes `worker` for `offence`; the pool hears of the new stake and any suspension before this
    /// returns, so the next draw already excludes it. The evidence is kept before the slash commits (in
    /// files) or by the slash's own transaction (in the database).
    pub async fn slash(&self, worker: PublicId, offence: Offence) -> Slashed {
        let fault = offence.fault().clone();
        let evidence = offence.evidence();
        let encoded = prost::Message::encode_to_vec(&evidence);
        let named = EvidenceRef::of(&encoded);
        let verdict = prost::Message::encode_to_vec(&SlashEvidence {
            kind: None,
            ..evidence
        });
        let store = Arc::clone(&self.evidence);
        let put = tokio::task::spawn_blocking(move || (store.put(&encoded), encoded)).await;
        let (kept, encoded) = match put {
            Ok((Ok(kept), encoded)) => (kept.is_some(), encoded),
            Ok((Err(e), _)) => {
                tracing::error!(error = %e, "cannot keep slash evidence; the slash records its verdict only");
                (false, Vec::new())
            }
            Err(e) => {
                tracing::error!(error = %e, "keeping slash evidence crashed");
                (false, Vec::new())
            }
        };
        let in_database = self.evidence.database().is_some();
        let note_of = StoredEvidence {
            hash: named.hash,
            size: named.size,
            kept,
        };
        let fraction = self.fraction;
        let keeping = self.keeping;
        let forfeits_held_back = matches!(offence, Offence::Storage { .. });
        self.pool.record_verdict(worker, false);
        let slashed = self
            .ledger
            .call(move |l| {
                let now = unix_secs();
                let note = SlashNote {
                    evidence: &verdict,
                    stored: Some(note_of),
                    at_unix: now,
                    forfeits_held_back,
                };
                let record = if in_database {
                    l.slash_keeping(&worker, fraction, &note, &encoded)?
                } else {
                    l.slash_noted(&worker, fraction, &note)?
                };
                // The slash stands whatever pruning does: a failure here only keeps evidence longer.
                let unnamed = l
                    .prune_evidence(
                        keeping.max_bytes,
                        now.saturating_sub(keeping.retention.as_secs()),
                    )
                    .unwrap_or_else(|e| {
                        tracing::error!(error = %e, "cannot prune slash evidence");
                        Vec::new()
                    });
                Ok((record, l.suspended_until(&worker)?, unnamed))
            })
            .await;
        let record = match slashed {
            Ok((record, suspended_until, unnamed)) => {
                metrics::slashed(record.amount, fault.kind());
                if suspended_until.is_some() {
                    metrics::suspended();
                }
                warn!(
                    worker = %worker.short(),
                    slashed = record.amount,
                    round = record.round,
                    suspended_until = suspended_until.unwrap_or(0),
                    evidence = %hex::encode(named.hash),
                    evidence_kept = kept,
                    fault = %fault,
                    "worker slashed"
                );
                self.forget(unnamed).await;
                Some(record)
            }
            Err(e) => {
                tracing::error!(worker = %worker.short(), error = %e, fault = %fault, "cannot slash a worker");
                None
            }
        };
        crate::stakes::refresh(&self.ledger, &self.pool).await;
        Slashed {
            record,
            evidence: named,
        }
    }

    /// Deletes evidence no kept slash names any more.
    async fn forget(&self, unnamed: Vec<[u8; 32]>) {
        if unnamed.is_empty() {
            return;
        }
        let store = Arc::clone(&self.evidence);
        let dropped = unnamed.len();
        match tokio::task::spawn_blocking(move || store.remove(&unnamed)).await {
            Ok(Ok(())) => tracing::info!(dropped, "slash evidence dropped for age or room"),
            Ok(Err(e)) => tracing::error!(error = %e, "cannot delete dropped slash evidence"),
            Err(e) => tracing::error!(error = %e, "deleting slash evidence crashed"),
        }
    }
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
