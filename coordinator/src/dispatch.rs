//! Runs one transcode job to a verified result: draw a worker, hand it the job, wait for its outcome, verify,
//! and on any failure (refused result, worker error, timeout, disconnect) try another worker, up to
//! `max_attempts`, never the same worker twice for one job. A result that fails verification is a
//! [`Fault`]: the worker is slashed through [`Slasher`] with the job and the signed result as evidence
//! anyone can check again (`evidence`). A timeout, a worker's own failure or a disconnect lowers its
//! score only; a verifier that cannot stage its files, or crashes, slashes nobody.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use dualrig_media::StreamInfo;
use dualrig_proto::identity::PublicId;
use dualrig_proto::profile::Profile;
use dualrig_proto::v1::{JobResult, TranscodeJob};
use tracing::{info, warn};

use crate::config::Config;
use crate::error::{CoordinatorError, QuoteLost};
use crate::fault::Fault;
use crate::metrics;
use crate::pool::{AttemptOutcome, Requirements, WorkerPool};
use crate::sessions::SessionTracker;
use crate::slashing::{Offence, Slasher};
use crate::verify::{CheckError, ContentCheck, Verified, check_result};

/// A job whose source has been inspected and whose ladder is valid.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub job_id: String,
    pub segment: Bytes,
    /// `segment` in scratch, written once at upload for its inspection and read again by every content
    /// check of the job; deleted with the last reference.
    pub staged: Arc<tempfile::TempPath>,
    pub source: StreamInfo,
    /// Source frames kept at upload for the job's first content check, with the seed they are for.
    pub source_frames: Option<Arc<crate::inspections::KeptFrames>>,
    pub profiles: Vec<Profile>,
    /// Output pixels the job produces (what a payment must cover).
    pub units: u64,
    /// The ledger's round, for the worker's ticket checks.
    pub round: u64,
    /// The quoted worker and the client's tickets for it; `None` for free work.
    pub payment: Option<JobPayment>,
}

/// A paid job goes to the worker its quote drew, and to that worker only: the tickets name it.
#[derive(Debug, Clone)]
pub struct JobPayment {
    pub worker: PublicId,
    pub tickets: Vec<dualrig_proto::v1::SignedTicket>,
}

/// A result that passed verification.
#[derive(Debug)]
pub struct VerifiedResult {
    pub worker: PublicId,
    pub result: JobResult,
    pub attempts: u32,
    /// The worker's most overlapping verified jobs in the job's round, when this job raised it
    /// (`sessions`): for the ledger's capacity bonus.
    pub sessions_proven: Option<u32>,
}

#[derive(Debug)]
pub struct JobDispatcher {
    pool: Arc<WorkerPool>,
    config: Arc<Config>,
    slasher: Arc<Slasher>,
    sessions: SessionTracker,
}

/// Why a job could not be handed to a worker.
enum Unassigned {
    /// No worker could take it in time.
    Shortage(crate::pool::Shortage),
    /// Its paid worker retired the params it was paid under while it waited.
    ParamsReplaced(PublicId),
}

/// Why an attempt's result was not accepted.
enum Refused {
    /// The worker's fault, shown by its signed result.
    Fault(Fault, Box<JobResult>),
    /// The coordinator could not check it (staging failed, the verifier crashed): nobody's fault.
    Unchecked(String),
}

impl JobDispatcher {
    pub fn new(pool: Arc<WorkerPool>, config: Arc<Config>, slasher: Arc<Slasher>) -> Self {
        Self {
            sessions: SessionTracker::new(config.job_timeout),
            pool,
            config,
            slasher,
        }
    }

    pub async fn run(&self, spec: JobSpec) -> Result<VerifiedResult, CoordinatorError> {
        let needs = Requirements {
            width: spec.profiles.iter().map(|p| p.width).max().unwrap_or(0),
            height: spec.profiles.iter().map(|p| p.height).max().unwrap_or(0),
        };
        let mut job = TranscodeJob {
            job_id: spec.job_id.clone(),
            segment: spec.segment.clone(),
            profiles: spec.profiles.iter().map(Profile::to_wire).collect(),
            // Set again at each assignment.
            deadline_unix_ms: 0,
            payment: spec
                .payment
                .as_ref()
                .map(|p| p.tickets.clone())
                .unwrap_or_default(),
            units: spec.units,
            round: spec.round,
        };
        let paid_to = spec.payment.as_ref().map(|p| p.worker);
        let spec = Arc::new(spec);
        // A paid job may only go to its payee; a free one only to workers that work for free.
        let mut excluded: HashSet<PublicId> = match paid_to {
            Some(payee) => self
                .pool
                .attached()
                .into_iter()
                .filter(|w| *w != payee)
                .collect(),
            None => self.pool.priced_workers(),
        };
        let mut reasons: Vec<String> = Vec::new();
        let mut tried = 0u32;
        for attempt in 1..=self.config.max_attempts {
            if attempt > 1
                && let Some(payee) = paid_to
            {
                return Err(CoordinatorError::QuoteLost(QuoteLost::WorkerFailed {
                    job_id: spec.job_id.clone(),
                    worker: payee,
                    reasons: reasons.join("; "),
                }));
            }
            let assignment = match self.assign(&spec, &mut job, needs, &excluded).await {
                Ok(a) => a,
                Err(Unassigned::ParamsReplaced(worker)) => {
                    metrics::attempt("params_replaced");
                    return Err(CoordinatorError::QuoteLost(QuoteLost::ParamsReplaced {
                        worker,
                        why: "new params came while the job waited for the worker".into(),
                    }));
                }
                Err(Unassigned::Shortage(shortage)) if reasons.is_empty() => {
                    return Err(CoordinatorError::NoWorker(format!(
                        "no worker could take job {} within {:.1} s ({shortage}); start a worker or retry later",
                        spec.job_id,
                        self.config.worker_wait.as_secs_f64()
                    )));
                }
                Err(Unassigned::Shortage(shortage)) => {
                    reasons.push(format!("no other worker available ({shortage})"));
                    break;
                }
            };
            let worker = assignment.worker;
            if tried > 0 {
                metrics::reassigned();
            }
            tried += 1;
            metrics::bytes_out("job", job.segment.len());
            info!(job = %spec.job_id, attempt, worker = %worker.short(), "job assigned");
            let assigned = Instant::now();
            let outcome = tokio::time::timeout(self.config.job_timeout, assignment.outcome).await;
            let reason = match outcome {
                Ok(Ok(AttemptOutcome::Result(result))) => {
                    let returned = Instant::now();
                    let bytes: usize = result.renditions.iter().map(|r| r.data.len()).sum();
                    metrics::bytes_in("rendition", bytes);
                    match self.verify(&spec, worker, *result).await {
                        Ok(result) => {
                            metrics::attempt("verified");
                            self.pool.record_verdict(worker, true);
                            let sessions_proven = self
                                .sessions
                                .verified(worker, spec.round, assigned, returned);
                            return Ok(VerifiedResult {
                                worker,
                                result,
                                attempts: attempt,
                                sessions_proven,
                            });
                        }
                        Err(Refused::Fault(fault, result)) => {
                            metrics::attempt("rejected");
                            let reason =
                                format!("worker {} returned a bad result: {fault}", worker.short());
                            let offence = Offence::Transcode {
                                job: job.clone(),
                                result: *result,
                                fault,
                            };
                            self.slasher.slash(worker, offence).await;
                            reason
                        }
                        Err(Refused::Unchecked(why)) => {
                            metrics::attempt("unchecked");
                            format!(
                                "the result of worker {} could not be checked: {why}",
                                worker.short()
                            )
                        }
                    }
                }
                Ok(Ok(AttemptOutcome::PaymentRefused(why))) => {
                    // The client's payment, not the worker, is at fault: no retry, no penalty.
                    metrics::attempt("payment_refused");
                    if self.params_replaced(&spec, &worker) {
                        // A ticket of another job won after this job's quote and retired the
                        // params it was paid under: nobody's fault, a new quote pays again.
                        return Err(CoordinatorError::QuoteLost(QuoteLost::ParamsReplaced {
                            worker,
                            why: format!("it refused them: {why}"),
                        }));
                    }
                    return Err(CoordinatorError::PaymentRefused { worker, why });
                }
                Ok(Ok(AttemptOutcome::Failed(why))) => {
                    metrics::attempt("worker_error");
                    format!("worker {} failed: {why}", worker.short())
                }
                Ok(Ok(AttemptOutcome::WorkerLost)) | Ok(Err(_)) => {
                    metrics::attempt("worker_lost");
                    format!("worker {} disconnected", worker.short())
                }
                Err(_) => {
                    self.pool.cancel(&spec.job_id);
                    metrics::attempt("timeout");
                    format!(
                        "worker {} timed out after {:.0} s",
                        worker.short(),
                        self.config.job_timeout.as_secs_f64()
                    )
                }
            };
            warn!(job = %spec.job_id, attempt, %reason, "attempt failed; trying another worker");
            reasons.push(reason);
            excluded.insert(worker);
        }
        Err(CoordinatorError::Exhausted {
            job_id: spec.job_id.clone(),
            attempts: tried,
            reasons: reasons.join("; "),
        })
    }

    /// Waits for an eligible worker: up to `worker_wait` while none could take the job at all, and up to
    /// `job_timeout` while the only ones that could are busy (the job is queued behind theirs). The
    /// worker is told a deadline `job_timeout` from its assignment, so a later attempt gets its full time.
    async fn assign(
        &self,
        spec: &JobSpec,
        job: &mut TranscodeJob,
        needs: Requirements,
        excluded: &HashSet<PublicId>,
    ) -> Result<crate::pool::Assignment, Unassigned> {
        let stale_for = spec.payment.as_ref().map(|p| p.worker);
        let started = tokio::time::Instant::now();
        let absent_deadline = started + self.config.worker_wait;
        let busy_deadline = started + self.config.job_timeout.max(self.config.worker_wait);
        loop {
            let changed = self.pool.changed();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(worker) = stale_for {
                // A paid job waiting for its worker, whose params a win retired meanwhile, would
                // only be refused: the client can quote again now rather than after the wait.
                if self.params_replaced(spec, &worker) {
                    return Err(Unassigned::ParamsReplaced(worker));
                }
            }
            job.deadline_unix_ms = unix_ms_after(self.config.job_timeout);
            match self.pool.try_assign(job, needs, excluded) {
                Ok(a) => return Ok(a),
                Err(shortage) => {
                    let deadline = if shortage.busy > 0 {
                        busy_deadline
                    } else {
                        absent_deadline
                    };
                    if tokio::time::timeout_at(deadline, changed).await.is_err() {
                        return Err(Unassigned::Shortage(shortage));
                    }
                }
            }
        }
    }

    /// Whether the worker has published ticket params since the ones `spec` was paid under: the
    /// worker retired those because one of their tickets won, so a refusal of them is stale.
    fn params_replaced(&self, spec: &JobSpec, worker: &PublicId) -> bool {
        let (Some(payment), Some(current)) = (&spec.payment, self.pool.ticket_params(worker))
        else {
            return false;
        };
        payment.tickets.iter().any(|t| {
            t.ticket
                .as_ref()
                .is_some_and(|t| t.recipient_rand_hash != current.recipient_rand_hash)
        })
    }

    /// Whether this result also gets the content check: always for a worker's first
    /// `content_check_first_jobs` verified jobs, otherwise on `content_check_share` of jobs.
    fn wants_content_check(&self, worker: &PublicId) -> bool {
        self.pool.jobs_done(worker) < self.config.content_check_first_jobs
            || rand::random::<f64>() < self.config.content_check_share
    }

    /// The verified result, or why it was refused.
    async fn verify(
        &self,
        spec: &Arc<JobSpec>,
        worker: PublicId,
        result: JobResult,
    ) -> Result<JobResult, Refused> {
        let spec = Arc::clone(spec);
        let scratch: PathBuf = self.config.scratch_dir();
        // Unpredictable, so a worker cannot know which frames will be looked at: drawn at upload
        // (no worker sees it) for the first content check of the source, afresh for any later one,
        // since a content fault publishes its seed.
        let seed = self.wants_content_check(&worker).then(|| {
            spec.source_frames
                .as_ref()
                .and_then(|k| k.frames.take_seed())
                .unwrap_or_else(rand::random::<u64>)
        });
        let started = Instant::now();
        let checked = tokio::task::spawn_blocking(move || {
            let content = match seed {
                Some(seed) => ContentCheck::Sampled {
                    segment: &spec.staged,
                    seed,
                    kept: spec.source_frames.as_deref().map(|k| &k.frames),
                },
                None => ContentCheck::Off,
            };
            match check_result(
                &worker,
                &spec.job_id,
                &spec.source,
                &spec.profiles,
                &result,
                &scratch,
                content,
            ) {
                Ok(Verified::Passed) => Ok(result),
                Ok(Verified::ContentInconclusive {
                    rendition,
                    score_db,
                    reference_db,
                }) => {
                    // The client's ladder asks for less than the check can judge on this source.
                    warn!(
                        job = %spec.job_id,
                        worker = %worker.short(),
                        %rendition,
                        score_db,
                        reference_db,
                        "content check inconclusive; the result is taken unsampled"
                    );
                    Ok(result)
                }
                Err(CheckError::Fault(fault)) => Err(Refused::Fault(fault, Box::new(result))),
                Err(e @ (CheckError::Staging(_) | CheckError::Reference { .. })) => {
                    Err(Refused::Unchecked(e.to_string()))
                }
            }
        })
        .await;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "verified"
        );
        checked.unwrap_or_else(|e| Err(Refused::Unchecked(format!("verifier crashed: {e}"))))
    }
}

/// Wall-clock milliseconds since the epoch, `after` from now: the deadline a worker is told.
fn unix_ms_after(after: std::time::Duration) -> u64 {
    (std::time::SystemTime::now() + after)
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
