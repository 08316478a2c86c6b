//! The one way a worker is slashed, whatever it did wrong: a transcode result that fails verification
//! (the dispatcher) and a storage challenge that fails (challenge rounds) both call [`Slasher::slash`],
//! which records the evidence with its typed [`Fault`], moves the configured share of stake to the
//! pool, suspends, lowers the worker's score, counts it, and refreshes the stake the draw uses.

use std::sync::Arc;

use dualrig_proto::identity::PublicId;
use dualrig_proto::v1::slash_evidence::Kind;
use dualrig_proto::v1::{
    JobResult, SlashEvidence, StorageEvidence, TranscodeEvidence, TranscodeJob,
};
use tracing::warn;

use crate::fault::Fault;
use crate::ledger::{Ledger, SlashFraction, SlashRecord};
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
    /// The encoded `SlashEvidence` the ledger recorded.
    pub evidence: Vec<u8>,
}

#[derive(Debug)]
pub struct Slasher {
    ledger: Arc<Ledger>,
    pool: Arc<WorkerPool>,
    fraction: SlashFraction,
}

impl Slasher {
    pub fn new(ledger: Arc<Ledger>, pool: Arc<WorkerPool>, fraction: SlashFraction) -> Self {
        Self {
            ledger,
            pool,
            fraction,
        }
    }

    /// Slashes `worker` for `offence`; the pool hears of the new stake and any suspension before this
    /// returns, so the next draw already excludes it.
    pub async fn slash(&self, worker: PublicId, offence: Offence) -> Slashed {
        let fault = offence.fault().clone();
        let evidence = prost::Message::encode_to_vec(&offence.evidence());
        let recorded = evidence.clone();
        let fraction = self.fraction;
        self.pool.record_verdict(worker, false);
        let slashed = self
            .ledger
            .call(move |l| {
                let record = l.slash(&worker, fraction, &recorded)?;
                Ok((record, l.suspended_until(&worker)?))
            })
            .await;
        let record = match slashed {
            Ok((record, suspended_until)) => {
                metrics::slashed(record.amount, fault.kind());
                if suspended_until.is_some() {
                    metrics::suspended();
                }
                warn!(
                    worker = %worker.short(),
                    slashed = record.amount,
                    round = record.round,
                    suspended_until = suspended_until.unwrap_or(0),
                    fault = %fault,
                    "worker slashed"
                );
                Some(record)
            }
            Err(e) => {
                tracing::error!(worker = %worker.short(), error = %e, fault = %fault, "cannot slash a worker");
                None
            }
        };
        crate::stakes::refresh(&self.ledger, &self.pool).await;
        Slashed { record, evidence }
    }
}
