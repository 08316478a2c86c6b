//! Challenge rounds (PROTOCOL §6): every round a fresh seed; per attached worker, up to
//! `challenge_blobs` of the blobs it holds, each to be proved on the `challenge_k` chunks that
//! blake3-XOF(seed ‖ worker ‖ blob) picks, before the deadline. Answers are checked against the blob id
//! and the size the index recorded, nothing else. A blob whose answer is missing, late, wrong or
//! refused is a fault: its holder is struck from the index, the fault is recorded with its evidence
//! and slashed, and the blob is queued for repair.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dualrig_proto::identity::PublicId;
use dualrig_proto::proof::{ChunkProof, challenge_indices};
use dualrig_proto::v1::{BlobProofs, BlobRef, Challenge, StorageEvidence};
use rand::seq::SliceRandom;
use tracing::warn;

use super::BlobService;
use super::index::FaultRecord;
use crate::fault::{Fault, ProofFailure, StorageFault};
use crate::ledger::ProofCredit;
use crate::metrics;
use crate::slashing::Offence;

/// Checks one blob's answer: exactly one proof per challenged index, in order, each verifying against
/// `root` and `size`. The one function that judges a storage answer: challenge rounds call it live and
/// `evidence::reverify` calls it again on a slash's evidence. An answer for another blob is no answer.
pub fn check_blob_answer(
    seed: &[u8; 32],
    worker: &PublicId,
    root: &[u8; 32],
    size: u64,
    k: u32,
    answer: Option<&BlobProofs>,
) -> Result<(), StorageFault> {
    let answer = answer
        .filter(|a| a.root.as_slice() == root)
        .ok_or(StorageFault::Missing)?;
    if !answer.error.is_empty() {
        return Err(StorageFault::Refused {
            error: answer.error.clone(),
        });
    }
    let indices = challenge_indices(seed, worker, root, size, k as usize);
    if answer.proofs.len() != indices.len() {
        return Err(StorageFault::ProofCount {
            got: u32::try_from(answer.proofs.len()).unwrap_or(u32::MAX),
            asked: indices.len() as u32,
        });
    }
    let hash = blake3::Hash::from_bytes(*root);
    for (bytes, &index) in answer.proofs.iter().zip(&indices) {
        let failed = |why| StorageFault::Proof { index, why };
        let proof = ChunkProof::from_bytes(bytes).map_err(|_| failed(ProofFailure::Malformed))?;
        if proof.index != index {
            return Err(failed(ProofFailure::WrongIndex { found: proof.index }));
        }
        proof
            .verify(&hash, size)
            .map_err(|_| failed(ProofFailure::Mismatch))?;
    }
    Ok(())
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A challenged blob that failed.
pub(crate) struct Failure {
    pub root: [u8; 32],
    pub size: u64,
    pub answer: Option<BlobProofs>,
    pub fault: StorageFault,
}

/// What a slash for `failure` records: the challenge as put to `worker`, the answer, and the fault.
pub(crate) fn storage_offence(
    seed: &[u8; 32],
    worker: &PublicId,
    k: u32,
    deadline_unix_ms: u64,
    failure: Failure,
) -> Offence {
    Offence::Storage {
        challenge: StorageEvidence {
            worker: worker.as_bytes().to_vec(),
            root: failure.root.to_vec(),
            size: failure.size,
            seed: seed.to_vec(),
            k,
            answer: failure.answer,
            late: failure.fault == StorageFault::Late,
            deadline_unix_ms,
        },
        fault: Fault::Storage(failure.fault),
    }
}

impl BlobService {
    /// Runs challenge rounds every `challenge_interval` until the task is dropped.
    pub async fn challenge_forever(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.config.challenge_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            self.challenge_round().await;
        }
    }

    /// One round over every attached worker that holds something, then its hosting payout (PROTOCOL
    /// §6.9); returns its number.
    pub async fn challenge_round(self: &Arc<Self>) -> u64 {
        let round = self
            .rounds
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        let seed: [u8; 32] = rand::random();
        // Each coordinator challenges the workers attached to it (PROTOCOL §8.4).
        let workers = self.pool.attached_here();
        let challenged = workers.into_iter().map(|worker| {
            let service = Arc::clone(self);
            async move { service.challenge_worker(round, seed, worker).await }
        });
        let credits: Vec<ProofCredit> = futures::future::join_all(challenged)
            .await
            .into_iter()
            .flatten()
            .collect();
        match self
            .slasher
            .ledger()
            .call(move |l| l.pay_hosting(&credits))
            .await
        {
            Ok(paid) => metrics::hosting_paid(&paid),
            Err(e) => tracing::error!(error = %e, "hosting rewards not paid this round"),
        }
        self.repair_wanted.notify_one();
        round
    }

    /// What `worker`'s passed blobs count for in the payout: each earning copy's bytes over the chance
    /// its blob was sampled (`held / sampled`), so the expected credit is the bytes it holds, times
    /// one plus the diversity boost for a copy alone on its network, times the blob's surge multiplier
    /// while it is hot. A copy earns while it is among the first `replicas` (plus the surge's extra
    /// copies while hot) verified copies of its blob that are attached now; copies past that, and blobs
    /// nobody put (`replicas` 0), earn nothing: a worker cannot multiply its income by holding one
    /// blob under many keys, or by hosting data the network never asked to keep.
    async fn hosting_credit(
        self: &Arc<Self>,
        worker: PublicId,
        held: usize,
        sampled: usize,
        passed: Vec<([u8; 32], u64)>,
    ) -> u64 {
        if passed.is_empty() || sampled == 0 {
            return 0;
        }
        let online: std::collections::HashSet<PublicId> =
            self.pool.attached().into_iter().collect();
        let service = Arc::clone(self);
        let orders = match self
            .index
            .call(move |ix| {
                passed
                    .into_iter()
                    .map(|(root, size)| {
                        let order = ix.earning_order(&root)?;
                        Ok((size, order, service.surge_multiplier_ppm(&root)))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
        {
            Ok(orders) => orders,
            Err(e) => {
                warn!(error = %e, "cannot read the blob index; no hosting credit");
                return 0;
            }
        };
        let mine = self.pool.network_of(&worker);
        let mut credit: u128 = 0;
        let extra = self.surge.rules().extra_replicas;
        for (size, order, surge) in orders {
            let Some((replicas, holders)) = order else {
                continue;
            };
            // A hot blob keeps `extra` more copies (repair places them): they earn too.
            let hot = surge > super::surge::UNIT_PPM;
            let replicas = if replicas > 0 && hot {
                replicas + extra
            } else {
                replicas
            };
            let online: Vec<PublicId> =
                holders.into_iter().filter(|h| online.contains(h)).collect();
            let earning = online
                .iter()
                .position(|h| *h == worker)
                .is_some_and(|rank| rank < replicas as usize);
            if !earning {
                continue;
            }
            let alone = mine.is_some_and(|net| {
                online
                    .iter()
                    .filter(|h| **h != worker)
                    .all(|h| self.pool.network_of(h) != Some(net))
            });
            let boost = if alone {
                1_000_000 + u128::from(self.config.diversity_boost_ppm)
            } else {
                1_000_000
            };
            // A hot blob's copies earn its surge multiplier on top.
            let boost = boost * u128::from(surge) / u128::from(super::surge::UNIT_PPM);
            credit += u128::from(size) * held as u128 / sampled as u128 * boost / 1_000_000;
        }
        u64::try_from(credit).unwrap_or(u64::MAX)
    }

    async fn challenge_worker(
        self: &Arc<Self>,
        round: u64,
        seed: [u8; 32],
        worker: PublicId,
    ) -> Option<ProofCredit> {
        let held = match self.index.call(move |ix| ix.held_by(&worker)).await {
            Ok(held) => held,
            Err(e) => {
                warn!(error = %e, "cannot read the blob index; challenge skipped");
                return None;
            }
        };
        if held.is_empty() {
            return None;
        }
        let held_count = held.len();
        let mut sampled = held;
        sampled.shuffle(&mut rand::thread_rng());
        sampled.truncate(self.config.challenge_blobs as usize);
        let sampled_count = sampled.len();
        let k = self.config.challenge_k;
        let deadline_at = SystemTime::now() + self.config.challenge_deadline;
        let challenge = Challenge {
            challenge_id: format!("{round}-{}", hex::encode(rand::random::<[u8; 6]>())),
            seed: seed.to_vec(),
            k,
            blobs: sampled
                .iter()
                .map(|(root, size)| BlobRef {
                    root: root.to_vec(),
                    size: *size,
                })
                .collect(),
            deadline_unix_ms: unix_ms(deadline_at),
        };
        let started = Instant::now();
        let answer = self
            .links
            .challenge(
                &self.pool,
                &worker,
                challenge,
                self.config.challenge_deadline,
            )
            .await;
        let latency = started.elapsed();
        let late = answer.is_none();
        if !late {
            metrics::proof_latency(latency);
        }
        let checked = tokio::task::spawn_blocking(move || {
            let mut failures = Vec::new();
            let mut passed = Vec::new();
            let mut proven = 0u64;
            for (root, size) in sampled {
                let blob_answer = answer
                    .as_ref()
                    .and_then(|a| a.blobs.iter().find(|b| b.root.as_slice() == root));
                let verdict = if late {
                    Err(StorageFault::Late)
                } else {
                    check_blob_answer(&seed, &worker, &root, size, k, blob_answer)
                };
                match verdict {
                    Ok(()) => {
                        metrics::challenge("passed");
                        proven += size;
                        passed.push((root, size));
                    }
                    Err(fault) => {
                        metrics::challenge(if late { "late" } else { "failed" });
                        failures.push(Failure {
                            root,
                            size,
                            answer: blob_answer.cloned(),
                            fault,
                        });
                    }
                }
            }
            (failures, passed, proven)
        })
        .await;
        let Ok((failures, passed, proven)) = checked else {
            return None;
        };
        // A claim that passes a challenge is a verified copy from now on.
        let recorded = passed.clone();
        if let Err(e) = self
            .index
            .call(move |ix| {
                recorded
                    .iter()
                    .try_for_each(|(root, _)| ix.add_holder(root, &worker))
            })
            .await
        {
            warn!(error = %e, "cannot record proven copies");
        }
        metrics::bytes_proven(&worker, proven);
        let credited = self
            .hosting_credit(worker, held_count, sampled_count, passed)
            .await;
        if failures.is_empty() {
            self.pool.record_challenge_passed(worker);
        }
        for failure in failures {
            self.fault(round, seed, worker, k, deadline_at, failure)
                .await;
        }
        Some(ProofCredit {
            worker,
            proven_bytes: proven,
            credited,
        })
    }

    /// Strikes the holder, records the fault in the index, slashes, and queues the blob for repair.
    async fn fault(
        self: &Arc<Self>,
        round: u64,
        seed: [u8; 32],
        worker: PublicId,
        k: u32,
        deadline_at: SystemTime,
        failure: Failure,
    ) {
        let late = failure.fault == StorageFault::Late;
        warn!(
            round,
            worker = %worker.short(),
            blob = %hex::encode(failure.root),
            fault = %failure.fault,
            "storage challenge failed"
        );
        let root = failure.root;
        self.note_loss(root, worker);
        let offence = storage_offence(&seed, &worker, k, unix_ms(deadline_at), failure);
        let slashed = self.slasher.slash(worker, offence).await;
        let record = FaultRecord {
            root,
            worker,
            kind: if late { "late" } else { "failed" }.to_owned(),
            round,
            evidence: slashed.evidence.hash.to_vec(),
        };
        if let Err(e) = self
            .index
            .call(move |ix| {
                ix.remove_holder(&root, &worker)?;
                ix.record_fault(&record)
            })
            .await
        {
            tracing::error!(error = %e, "cannot record a storage fault");
        }
        self.repair_wanted.notify_one();
    }
}
