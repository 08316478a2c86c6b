//! Slashes and their evidence, as served to anyone who wants to check them again (PROTOCOL §4).
//!
//! Every slash the coordinator records carries an encoded [`SlashEvidence`]: the typed [`Fault`] the
//! live check found and what shows it — for a transcode job, the job as it was handed out (its payment
//! stripped) and the worker's signed result; for a storage challenge, what was asked and what came back.
//! [`reverify`] runs the very function that judged the work live (`verify::check_result`,
//! `storage::check_blob_answer`) on that evidence, with nothing but the worker's public key, and compares
//! the fault it finds with the one recorded. The `reason` text is for people and is never read.
//!
//! What the evidence cannot show: a storage answer carries no worker signature on the wire, so its
//! re-verification shows that the recorded answer fails, not that the worker sent it; "late" is the
//! coordinator's word; and a forged result ties itself to nobody, so a forgery slash rests on the
//! coordinator's record of the worker's authenticated session.
//!
//! Evidence recorded before faults were typed has no `fault`: it is re-verified as it stands (not
//! migrated), with the content check on every frame where the recorded seed is unknown.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use dualrig_proto::identity::PublicId;
use dualrig_proto::profile::ladder_from_wire;
use dualrig_proto::v1::{
    ListSlashesRequest, ListSlashesResponse, SlashEntry, SlashEvidence, StorageEvidence,
    TranscodeEvidence, slash_evidence,
};
use prost::Message;
use tonic::Status;

mod store;

pub use store::{EvidenceRef, EvidenceStore, MAX_EVIDENCE_BYTES};

use crate::fault::{Fault, StorageFault};
use crate::ledger::{Ledger, SlashRecord};
use crate::paging::Page;
use crate::storage::check_blob_answer;
use crate::verify::{CheckError, ContentCheck, Verified, check_result};

/// Bytes of evidence one `ListSlashes` page carries at most, besides its first entry.
const PAGE_EVIDENCE_BYTES: u64 = 32 << 20;

/// One page of the slashes the ledger recorded (or one worker's), oldest first: each with its verdict
/// and the name of its evidence, and the evidence itself when asked for and still kept. A page that
/// carries evidence stops at [`PAGE_EVIDENCE_BYTES`] (always holding at least one entry).
pub async fn list_slashes(
    ledger: &Arc<Ledger>,
    store: &Arc<EvidenceStore>,
    request: ListSlashesRequest,
) -> Result<ListSlashesResponse, Status> {
    let worker = if request.worker.is_empty() {
        None
    } else {
        Some(
            PublicId::from_slice("worker", &request.worker)
                .map_err(crate::error::CoordinatorError::from)?,
        )
    };
    let page = Page::requested("slashes", &request.page_token, request.page_size)?;
    let after = page
        .after_key::<8>("slashes")?
        .map_or(0, u64::from_be_bytes);
    let limit = page.size + 1;
    let records = ledger
        .call(move |l| l.slashes_page(worker, after, limit))
        .await?;
    let (records, mut next_page_token) = page.finish(records, |r| r.id.to_be_bytes().to_vec());
    let with_evidence = request.with_evidence;
    let store = Arc::clone(store);
    let (slashes, cut) = tokio::task::spawn_blocking(move || {
        let mut carried = 0u64;
        let mut slashes = Vec::with_capacity(records.len());
        for record in records {
            let entry = slash_entry(record, with_evidence.then_some(&*store))?;
            carried += entry.evidence.len() as u64;
            if carried > PAGE_EVIDENCE_BYTES && !slashes.is_empty() {
                return Ok::<_, std::io::Error>((slashes, true));
            }
            slashes.push(entry);
        }
        Ok((slashes, false))
    })
    .await
    .map_err(|e| Status::internal(format!("listing slashes crashed: {e}")))?
    .map_err(|e| Status::internal(format!("cannot read slash evidence: {e}")))?;
    if cut && let Some(last) = slashes.last() {
        next_page_token = last.id.to_be_bytes().to_vec();
    }
    Ok(ListSlashesResponse {
        slashes,
        next_page_token,
    })
}

/// A slash as `ListSlashes` lists it; the whole evidence read from `store` when given and kept.
fn slash_entry(
    record: SlashRecord,
    store: Option<&EvidenceStore>,
) -> Result<SlashEntry, std::io::Error> {
    let verdict = SlashEvidence::decode(record.evidence.as_slice()).unwrap_or_default();
    let (evidence, evidence_hash, evidence_size, evidence_dropped) = match record.stored {
        // Recorded before the evidence store: inline.
        None => (
            if store.is_some() {
                record.evidence.clone()
            } else {
                Vec::new()
            },
            Vec::new(),
            record.evidence.len() as u64,
            false,
        ),
        Some(stored) => {
            let bytes = match store {
                Some(store) if stored.kept => store.get(&stored.hash)?,
                _ => None,
            };
            (
                bytes.unwrap_or_default(),
                stored.hash.to_vec(),
                stored.size,
                !stored.kept,
            )
        }
    };
    Ok(SlashEntry {
        worker: record.worker.as_bytes().to_vec(),
        round: record.round,
        amount: record.amount,
        fraction_ppm: record.fraction.ppm(),
        evidence,
        id: record.id,
        evidence_hash,
        evidence_size,
        evidence_dropped,
        fault: verdict.fault,
        reason: verdict.reason,
    })
}

/// What checking a slash's evidence again concluded.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The fault the slash recorded; `None` for evidence from before faults were typed.
    pub recorded: Option<Fault>,
    /// The fault checking the evidence again found; `None` when the work passes or the evidence
    /// cannot be checked.
    pub found: Option<Fault>,
    /// The evidence shows a fault of the slashed worker.
    pub upheld: bool,
    /// Why, for people.
    pub note: String,
}

impl Verdict {
    fn not_upheld(recorded: Option<Fault>, note: impl Into<String>) -> Self {
        Self {
            recorded,
            found: None,
            upheld: false,
            note: note.into(),
        }
    }

    /// Checking again found exactly the fault the slash recorded, field by field (the reference
    /// encoder's score aside: see [`Fault::same_finding`]).
    pub fn agrees(&self) -> bool {
        match (&self.found, &self.recorded) {
            (Some(found), Some(recorded)) => found.same_finding(recorded),
            _ => false,
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = if self.upheld { "upheld" } else { "not upheld" };
        write!(f, "{verdict}: {}", self.note)?;
        match (&self.found, &self.recorded) {
            (Some(_), _) if self.agrees() => write!(f, " (the fault recorded)"),
            (Some(_), Some(recorded)) => write!(f, " (recorded: {recorded})"),
            _ => Ok(()),
        }
    }
}

/// The check itself could not run; says nothing about the worker.
#[derive(Debug, thiserror::Error)]
pub enum ReverifyError {
    #[error("cannot stage the evidence for checking: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Reference(String),
}

/// Checks a slash's evidence again (see the module docs). Blocking: a transcode slash decodes the
/// segment and every rendition; `scratch` holds the staged files while they are checked.
pub fn reverify(entry: &SlashEntry, scratch: &Path) -> Result<Verdict, ReverifyError> {
    let worker = match PublicId::from_slice("slashed worker", &entry.worker) {
        Ok(w) => w,
        Err(e) => {
            return Ok(Verdict::not_upheld(
                None,
                format!("the slash names no worker: {e}"),
            ));
        }
    };
    if entry.evidence_dropped {
        return Ok(Verdict::not_upheld(
            entry.fault.as_ref().and_then(Fault::from_wire),
            "the evidence is no longer kept (past its retention, or dropped for room)",
        ));
    }
    let evidence = match SlashEvidence::decode(entry.evidence.as_slice()) {
        Ok(e) => e,
        Err(e) => {
            return Ok(Verdict::not_upheld(
                None,
                format!("the evidence is not a SlashEvidence message: {e}"),
            ));
        }
    };
    let recorded = evidence.fault.as_ref().and_then(Fault::from_wire);
    match &evidence.kind {
        Some(slash_evidence::Kind::Transcode(t)) => {
            reverify_transcode(&worker, t, recorded, scratch)
        }
        Some(slash_evidence::Kind::Storage(s)) => Ok(reverify_storage(&worker, s, recorded)),
        None => Ok(Verdict::not_upheld(recorded, "the evidence is empty")),
    }
}

/// Re-runs `check_result` on a transcode slash's job and signed result: with the recorded content
/// check's seed when the recorded fault is a content fault (the same frames again), with no content
/// check for any other recorded fault, and on every frame when nothing was recorded. A result that is
/// not the worker's is upheld only when the slash recorded it as forged: it cannot show any other fault
/// of the worker.
pub fn reverify_transcode(
    worker: &PublicId,
    evidence: &TranscodeEvidence,
    recorded: Option<Fault>,
    scratch: &Path,
) -> Result<Verdict, ReverifyError> {
    let (Some(job), Some(result)) = (&evidence.job, &evidence.result) else {
        return Ok(Verdict::not_upheld(
            recorded,
            "the evidence lacks the job or the result",
        ));
    };
    if result.job_id != job.job_id {
        let note = format!(
            "the result is for job '{}', the evidence's job is '{}'",
            result.job_id, job.job_id
        );
        return Ok(Verdict::not_upheld(recorded, note));
    }
    let profiles = match ladder_from_wire(&job.profiles) {
        Ok(p) => p,
        Err(e) => {
            let note = format!("the job's ladder is not valid: {e}");
            return Ok(Verdict::not_upheld(recorded, note));
        }
    };
    let mut staged = tempfile::Builder::new()
        .prefix("evidence-source-")
        .tempfile_in(scratch)?;
    staged.write_all(&job.segment)?;
    staged.flush()?;
    let source =
        match dualrig_media::inspect_within(staged.path(), dualrig_media::DecodeBudget::SEGMENT) {
            Ok(s) => s,
            Err(e) => {
                let note = format!(
                    "the job's segment is not a video the coordinator would have accepted: {e}"
                );
                return Ok(Verdict::not_upheld(recorded, note));
            }
        };
    let segment = staged.path();
    let content = match &recorded {
        Some(Fault::Content { seed, .. }) => ContentCheck::Sampled {
            segment,
            seed: *seed,
            kept: None,
        },
        Some(_) => ContentCheck::Off,
        None => ContentCheck::EveryFrame {
            segment,
            frames: source.frames,
        },
    };
    let found = match check_result(
        worker,
        &job.job_id,
        &source,
        &profiles,
        result,
        scratch,
        content,
    ) {
        Ok(Verified::Passed) => {
            return Ok(Verdict::not_upheld(
                recorded,
                "the result passes verification again",
            ));
        }
        Ok(Verified::ContentInconclusive {
            rendition,
            score_db,
            reference_db,
        }) => {
            let note = format!(
                "rendition {rendition} scores {score_db:.1} dB, but libx264 at the same profile scores only {reference_db:.1} dB on the same frames, so an honest encoder could have produced it"
            );
            return Ok(Verdict::not_upheld(recorded, note));
        }
        Err(CheckError::Staging(e)) => return Err(ReverifyError::Io(e)),
        Err(e @ CheckError::Reference { .. }) => {
            return Err(ReverifyError::Reference(e.to_string()));
        }
        Err(CheckError::Fault(found)) => found,
    };
    let forged = matches!(found, Fault::Forged { .. });
    let recorded_forged = matches!(recorded, Some(Fault::Forged { .. }));
    let (upheld, note) = match (forged, recorded_forged) {
        (true, true) => (
            true,
            format!(
                "{found}; it came on worker {}'s authenticated session by the coordinator's record",
                worker.short()
            ),
        ),
        (true, false) => (
            false,
            format!("{found}, so nothing in it ties the worker to a fault"),
        ),
        (false, _) => (
            true,
            format!("the worker's signed result fails verification again: {found}"),
        ),
    };
    Ok(Verdict {
        recorded,
        found: Some(found),
        upheld,
        note,
    })
}

/// Re-runs `check_blob_answer` on a storage slash's challenge and answer; an answer recorded as late
/// is late again (the coordinator's word). Pure: no I/O.
pub fn reverify_storage(
    worker: &PublicId,
    evidence: &StorageEvidence,
    recorded: Option<Fault>,
) -> Verdict {
    if evidence.worker != worker.as_bytes() {
        return Verdict::not_upheld(
            recorded,
            "the challenge was put to another worker than the one slashed",
        );
    }
    let (Ok(root), Ok(seed)) = (
        <[u8; 32]>::try_from(evidence.root.as_slice()),
        <[u8; 32]>::try_from(evidence.seed.as_slice()),
    ) else {
        return Verdict::not_upheld(recorded, "the challenge's blob id or seed is not 32 bytes");
    };
    let checked = if evidence.late {
        Err(StorageFault::Late)
    } else {
        check_blob_answer(
            &seed,
            worker,
            &root,
            evidence.size,
            evidence.k,
            evidence.answer.as_ref(),
        )
    };
    let blob = blake3::Hash::from_bytes(root);
    match checked {
        Ok(()) => Verdict::not_upheld(
            recorded,
            format!(
                "the answer proves blob {blob} of {} bytes on every challenged chunk",
                evidence.size
            ),
        ),
        Err(fault) => Verdict {
            recorded,
            note: format!("blob {blob}: {fault}"),
            found: Some(Fault::Storage(fault)),
            upheld: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use blake3::hazmat::{ChainingValue, HasherExt, Mode, merge_subtrees_non_root};
    use dualrig_proto::identity::Identity;
    use dualrig_proto::proof::{CHUNK_LEN, chunk_count};
    use dualrig_proto::result::{rendition, sign_result};
    use dualrig_proto::v1::BlobProofs;

    use super::*;
    use crate::fault::ProofFailure;
    use crate::slashing::Offence;
    use dualrig_proto::proof::{ChunkProof, challenge_indices};
    use dualrig_proto::v1::{JobResult, TranscodeJob};

    /// An outboard in bao's layout (length, then parents in pre-order), built with BLAKE3's own tree
    /// functions; the honest proofs verifying against `blake3::hash` checks it.
    fn outboard(data: &[u8]) -> Vec<u8> {
        fn subtree(data: &[u8], first: u64, count: u64, parents: &mut Vec<u8>) -> ChainingValue {
            if count == 1 {
                let start = first as usize * CHUNK_LEN;
                let end = (start + CHUNK_LEN).min(data.len());
                return blake3::Hasher::new()
                    .set_input_offset(start as u64)
                    .update(&data[start..end])
                    .finalize_non_root();
            }
            let left_count = 1u64 << (63 - (count - 1).leading_zeros());
            let slot = parents.len();
            parents.extend_from_slice(&[0; 64]);
            let left = subtree(data, first, left_count, parents);
            let right = subtree(data, first + left_count, count - left_count, parents);
            parents[slot..slot + 32].copy_from_slice(&left);
            parents[slot + 32..slot + 64].copy_from_slice(&right);
            merge_subtrees_non_root(&left, &right, Mode::Hash)
        }
        let mut out = (data.len() as u64).to_le_bytes().to_vec();
        let chunks = chunk_count(data.len() as u64);
        if chunks > 1 {
            subtree(data, 0, chunks, &mut out);
        }
        out
    }

    fn chunk(data: &[u8], index: u64) -> Vec<u8> {
        let start = index as usize * CHUNK_LEN;
        data[start..(start + CHUNK_LEN).min(data.len())].to_vec()
    }

    fn proof(data: &[u8], outboard: &[u8], index: u64) -> ChunkProof {
        ChunkProof::from_outboard(outboard, index, chunk(data, index)).expect("proof builds")
    }

    struct Challenge {
        worker: PublicId,
        data: Vec<u8>,
        outboard: Vec<u8>,
        seed: [u8; 32],
        k: u32,
    }

    impl Challenge {
        fn new() -> Self {
            // Eleven chunks, the last one short; four of them challenged.
            let data: Vec<u8> = (0..10 * CHUNK_LEN + 300)
                .map(|i| (i * 7 + i / 1024) as u8)
                .collect();
            Self {
                worker: Identity::from_secret([5; 32]).id(),
                outboard: outboard(&data),
                data,
                seed: [9; 32],
                k: 4,
            }
        }

        fn root(&self) -> [u8; 32] {
            *blake3::hash(&self.data).as_bytes()
        }

        fn asked(&self) -> Vec<u64> {
            challenge_indices(
                &self.seed,
                &self.worker,
                &self.root(),
                self.data.len() as u64,
                self.k as usize,
            )
        }

        fn honest_proofs(&self) -> Vec<ChunkProof> {
            self.asked()
                .into_iter()
                .map(|i| proof(&self.data, &self.outboard, i))
                .collect()
        }

        fn evidence(&self, proofs: &[ChunkProof]) -> StorageEvidence {
            let proofs = proofs
                .iter()
                .map(|p| p.to_bytes().expect("encodes"))
                .collect();
            self.evidence_with(Some(BlobProofs {
                root: self.root().to_vec(),
                proofs,
                error: String::new(),
            }))
        }

        fn evidence_with(&self, answer: Option<BlobProofs>) -> StorageEvidence {
            StorageEvidence {
                worker: self.worker.as_bytes().to_vec(),
                root: self.root().to_vec(),
                size: self.data.len() as u64,
                seed: self.seed.to_vec(),
                k: self.k,
                answer,
                late: false,
                deadline_unix_ms: 1_800_000_000_000,
            }
        }

        fn verdict(&self, evidence: &StorageEvidence) -> Verdict {
            reverify_storage(&self.worker, evidence, None)
        }

        fn found(&self, evidence: &StorageEvidence) -> Option<StorageFault> {
            let verdict = self.verdict(evidence);
            assert_eq!(verdict.upheld, verdict.found.is_some(), "{verdict}");
            match verdict.found {
                Some(Fault::Storage(s)) => Some(s),
                None => None,
                Some(other) => panic!("a storage verdict found {other}"),
            }
        }
    }

    #[test]
    fn honest_storage_answer_is_not_upheld() {
        let c = Challenge::new();
        let proofs = c.honest_proofs();
        assert_eq!(proofs.len(), 4);
        assert_eq!(c.found(&c.evidence(&proofs)), None);
    }

    #[test]
    fn missing_late_and_errored_answers_are_upheld() {
        let c = Challenge::new();
        let late = StorageEvidence {
            late: true,
            ..c.evidence(&c.honest_proofs())
        };
        assert_eq!(c.found(&late), Some(StorageFault::Late));
        assert_eq!(c.found(&c.evidence_with(None)), Some(StorageFault::Missing));
        let errored = c.evidence_with(Some(BlobProofs {
            root: c.root().to_vec(),
            proofs: Vec::new(),
            error: "blob not found".into(),
        }));
        assert_eq!(
            c.found(&errored),
            Some(StorageFault::Refused {
                error: "blob not found".into()
            })
        );
        let short = c.honest_proofs()[..3].to_vec();
        assert_eq!(
            c.found(&c.evidence(&short)),
            Some(StorageFault::ProofCount { got: 3, asked: 4 })
        );
    }

    #[test]
    fn a_damaged_chunk_is_upheld() {
        let c = Challenge::new();
        let mut proofs = c.honest_proofs();
        proofs[2].chunk[17] ^= 1;
        assert_eq!(
            c.found(&c.evidence(&proofs)),
            Some(StorageFault::Proof {
                index: c.asked()[2],
                why: ProofFailure::Mismatch
            })
        );
    }

    #[test]
    fn a_valid_proof_of_another_chunk_is_upheld() {
        let c = Challenge::new();
        let asked = c.asked();
        let other = (0..11)
            .find(|i| !asked.contains(i))
            .expect("an unasked chunk");
        let mut proofs = c.honest_proofs();
        proofs[0] = proof(&c.data, &c.outboard, other);
        proofs[0]
            .verify(&blake3::hash(&c.data), c.data.len() as u64)
            .expect("the substitute is a good proof of its own chunk");
        assert_eq!(
            c.found(&c.evidence(&proofs)),
            Some(StorageFault::Proof {
                index: asked[0],
                why: ProofFailure::WrongIndex { found: other }
            })
        );
    }

    #[test]
    fn undecodable_proof_bytes_are_upheld() {
        let c = Challenge::new();
        let mut evidence = c.evidence(&c.honest_proofs());
        let answer = evidence.answer.as_mut().expect("answer");
        answer.proofs[1].truncate(20);
        assert_eq!(
            c.found(&evidence),
            Some(StorageFault::Proof {
                index: c.asked()[1],
                why: ProofFailure::Malformed
            })
        );
    }

    /// The fault a challenge round finds for `answer` (as `challenge_worker` does), slashed with the
    /// evidence the round records, is the fault re-verification finds, field by field.
    fn live_equals_reverified(
        c: &Challenge,
        answer: Option<BlobProofs>,
        late: bool,
    ) -> StorageFault {
        let live = if late {
            StorageFault::Late
        } else {
            check_blob_answer(
                &c.seed,
                &c.worker,
                &c.root(),
                c.data.len() as u64,
                c.k,
                answer.as_ref(),
            )
            .expect_err("a failing answer")
        };
        let failure = crate::storage::challenge::Failure {
            root: c.root(),
            size: c.data.len() as u64,
            answer,
            fault: live.clone(),
        };
        let offence =
            crate::storage::challenge::storage_offence(&c.seed, &c.worker, c.k, 1, failure);
        let entry = SlashEntry {
            worker: c.worker.as_bytes().to_vec(),
            evidence: offence.evidence().encode_to_vec(),
            ..SlashEntry::default()
        };
        let scratch = tempfile::tempdir().expect("tempdir");
        let verdict = reverify(&entry, scratch.path()).expect("runs");
        assert!(verdict.upheld && verdict.agrees(), "{verdict}");
        assert_eq!(verdict.found, Some(Fault::Storage(live.clone())));
        live
    }

    #[test]
    fn every_storage_fault_found_live_is_found_again_field_by_field() {
        let c = Challenge::new();
        let answer = |proofs: &[ChunkProof], error: &str| {
            Some(BlobProofs {
                root: c.root().to_vec(),
                proofs: proofs
                    .iter()
                    .map(|p| p.to_bytes().expect("encodes"))
                    .collect(),
                error: error.into(),
            })
        };
        let honest = c.honest_proofs();
        let asked = c.asked();
        let mut damaged = honest.clone();
        damaged[1].chunk[0] ^= 0x80;
        let other = (0..11).find(|i| !asked.contains(i)).expect("unasked");
        let mut swapped = honest.clone();
        swapped[3] = proof(&c.data, &c.outboard, other);
        let mut malformed = answer(&honest, "");
        malformed.as_mut().expect("answer").proofs[0].truncate(5);
        let mut for_another_blob = answer(&honest, "");
        for_another_blob.as_mut().expect("answer").root = vec![7; 32];
        let cases = [
            (None, true, StorageFault::Late),
            (None, false, StorageFault::Missing),
            (for_another_blob, false, StorageFault::Missing),
            (
                answer(&[], "blob not found"),
                false,
                StorageFault::Refused {
                    error: "blob not found".into(),
                },
            ),
            (
                answer(&honest[..2], ""),
                false,
                StorageFault::ProofCount { got: 2, asked: 4 },
            ),
            (
                malformed,
                false,
                StorageFault::Proof {
                    index: asked[0],
                    why: ProofFailure::Malformed,
                },
            ),
            (
                answer(&swapped, ""),
                false,
                StorageFault::Proof {
                    index: asked[3],
                    why: ProofFailure::WrongIndex { found: other },
                },
            ),
            (
                answer(&damaged, ""),
                false,
                StorageFault::Proof {
                    index: asked[1],
                    why: ProofFailure::Mismatch,
                },
            ),
        ];
        for (answer, late, expected) in cases {
            assert_eq!(live_equals_reverified(&c, answer, late), expected);
        }
    }

    #[test]
    fn a_challenge_put_to_another_worker_or_malformed_is_not_upheld() {
        let c = Challenge::new();
        // A challenge recorded for someone else cannot slash this worker, even with a failing answer.
        let elsewhere = StorageEvidence {
            worker: Identity::from_secret([6; 32]).id().as_bytes().to_vec(),
            ..c.evidence_with(None)
        };
        assert!(!c.verdict(&elsewhere).upheld);
        let malformed = StorageEvidence {
            seed: vec![1; 31],
            ..c.evidence_with(None)
        };
        assert!(!c.verdict(&malformed).upheld);
    }

    fn transcode_entry(worker: &PublicId, offence: &Offence) -> SlashEntry {
        SlashEntry {
            worker: worker.as_bytes().to_vec(),
            round: 3,
            amount: 10,
            fraction_ppm: 100_000,
            evidence: offence.evidence().encode_to_vec(),
            ..SlashEntry::default()
        }
    }

    fn job() -> TranscodeJob {
        TranscodeJob {
            job_id: "job-7".into(),
            segment: vec![0x47; 188].into(),
            profiles: vec![
                dualrig_proto::profile::Profile::standard("240p")
                    .expect("profile")
                    .to_wire(),
            ],
            payment: vec![dualrig_proto::v1::SignedTicket::default()],
            ..TranscodeJob::default()
        }
    }

    fn offence(result: JobResult, fault: Fault) -> Offence {
        Offence::Transcode {
            job: job(),
            result,
            fault,
        }
    }

    #[test]
    fn transcode_evidence_strips_the_payment_and_keeps_the_rest() {
        let worker = Identity::generate();
        let renditions = vec![rendition("240p", vec![1, 2, 3])];
        let result = JobResult {
            job_id: "job-7".into(),
            signature: sign_result(&worker, "job-7", &renditions).to_vec(),
            renditions,
            ..JobResult::default()
        };
        let fault = Fault::Forged { rendition: None };
        let evidence = offence(result.clone(), fault.clone()).evidence();
        let Some(slash_evidence::Kind::Transcode(t)) = &evidence.kind else {
            panic!("transcode evidence");
        };
        let kept = t.job.as_ref().expect("job");
        assert!(kept.payment.is_empty());
        assert_eq!((kept.job_id.as_str(), kept.segment.len()), ("job-7", 188));
        assert_eq!(t.result.as_ref(), Some(&result));
        assert_eq!(evidence.reason, fault.to_string());
        assert_eq!(
            evidence.fault.as_ref().and_then(Fault::from_wire),
            Some(fault)
        );
    }

    #[test]
    fn evidence_whose_segment_is_no_video_is_not_upheld() {
        let (worker, forger) = (Identity::generate(), Identity::generate());
        let renditions = vec![rendition("240p", vec![0; 10])];
        let forged = JobResult {
            job_id: "job-7".into(),
            signature: sign_result(&forger, "job-7", &renditions).to_vec(),
            renditions,
            ..JobResult::default()
        };
        let recorded = Fault::Renditions {
            rendition: "240p".into(),
            what: crate::fault::RenditionSet::Missing,
        };
        let entry = transcode_entry(&worker.id(), &offence(forged, recorded.clone()));
        let scratch = tempfile::tempdir().expect("tempdir");
        // The segment is no video, so nothing can be upheld; with a real segment the check finds the
        // forgery, which the record does not claim (tests/it/evidence.rs).
        let verdict = reverify(&entry, scratch.path()).expect("runs");
        assert!(!verdict.upheld, "{verdict}");
        assert_eq!(verdict.recorded, Some(recorded));
        assert_eq!(verdict.found, None);
    }

    #[test]
    fn a_forgery_record_over_a_segment_that_is_no_video_is_not_upheld() {
        let worker = Identity::generate();
        let mut renditions = vec![rendition("240p", vec![0; 10])];
        let signature = sign_result(&worker, "job-7", &renditions).to_vec();
        renditions[0].data[0] = 1;
        let result = JobResult {
            job_id: "job-7".into(),
            signature,
            renditions,
            ..JobResult::default()
        };
        let fault = Fault::Forged {
            rendition: Some("240p".into()),
        };
        let entry = transcode_entry(&worker.id(), &offence(result, fault.clone()));
        let scratch = tempfile::tempdir().expect("tempdir");
        // The job's segment is 188 bytes of sync bytes, no video: nothing the coordinator would have
        // taken, so nothing can be upheld against the worker.
        let verdict = reverify(&entry, scratch.path()).expect("runs");
        assert!(!verdict.upheld, "{verdict}");
        assert_eq!(verdict.recorded, Some(fault));
    }

    #[test]
    fn evidence_that_does_not_decode_is_not_upheld() {
        let worker = Identity::generate().id();
        let entry = SlashEntry {
            worker: worker.as_bytes().to_vec(),
            evidence: vec![0xff, 0xff, 0xff],
            ..SlashEntry::default()
        };
        let scratch = tempfile::tempdir().expect("tempdir");
        assert!(!reverify(&entry, scratch.path()).expect("runs").upheld);
        // Dropped evidence is not checked, and says so.
        let dropped = SlashEntry {
            evidence: Vec::new(),
            evidence_dropped: true,
            ..entry
        };
        let verdict = reverify(&dropped, scratch.path()).expect("runs");
        assert!(
            !verdict.upheld && verdict.note.contains("no longer kept"),
            "{verdict}"
        );
    }
}
