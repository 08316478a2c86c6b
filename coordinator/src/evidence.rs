//! Slashes and their evidence, as served to anyone who wants to check them again (DESIGN §4).
//!
//! Every slash the coordinator records carries an encoded [`SlashEvidence`]: for a transcode job, the job
//! as it was handed out (its payment stripped) and the worker's signed result; for a storage challenge,
//! what was asked and what came back. [`reverify`] checks that evidence with nothing but the worker's
//! public key and the same rules the coordinator applies, so a slash can be audited by someone who
//! trusts neither the coordinator nor the worker: a transcode slash is upheld only when the worker's own
//! signature covers a result that fails verification again; a storage slash only when the answer was
//! missing, late or an error, or a proof fails against the blob id.
//!
//! What the evidence cannot show: a storage answer carries no worker signature on the wire, so its
//! re-verification shows that the recorded answer fails, not that the worker sent it; and "late" is the
//! coordinator's word.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use dualrig_proto::identity::PublicId;
use dualrig_proto::profile::ladder_from_wire;
use dualrig_proto::proof::{ChunkProof, challenge_indices};
use dualrig_proto::result::result_message;
use dualrig_proto::v1::{
    JobResult, ListSlashesRequest, ListSlashesResponse, SlashEntry, SlashEvidence, StorageEvidence,
    TranscodeEvidence, TranscodeJob, slash_evidence,
};
use prost::Message;
use tonic::Status;

use crate::ledger::{Ledger, SlashRecord};
use crate::verify::{Rejection, check_result_with_seed};

/// The evidence for a transcode result that failed verification: the job without its payment (the
/// tickets are the client's business, not part of the fault) and the worker's signed result.
pub fn transcode_evidence(job: &TranscodeJob, result: &JobResult, reason: &str) -> SlashEvidence {
    SlashEvidence {
        kind: Some(slash_evidence::Kind::Transcode(TranscodeEvidence {
            job: Some(TranscodeJob {
                payment: Vec::new(),
                ..job.clone()
            }),
            result: Some(result.clone()),
        })),
        reason: reason.to_owned(),
    }
}

/// Every slash the ledger recorded (or one worker's), oldest first, with its evidence.
pub async fn list_slashes(
    ledger: &Arc<Ledger>,
    request: ListSlashesRequest,
) -> Result<ListSlashesResponse, Status> {
    let worker = if request.worker.is_empty() {
        None
    } else {
        Some(
            PublicId::from_slice("worker", &request.worker).map_err(|e| {
                Status::invalid_argument(format!(
                    "{e}; give a worker id as 32 bytes, or none for every slash"
                ))
            })?,
        )
    };
    let records = ledger
        .call(move |l| match worker {
            Some(worker) => l.slashes(&worker),
            None => l.all_slashes(),
        })
        .await?;
    Ok(ListSlashesResponse {
        slashes: records.into_iter().map(slash_entry).collect(),
    })
}

fn slash_entry(record: SlashRecord) -> SlashEntry {
    SlashEntry {
        worker: record.worker.as_bytes().to_vec(),
        round: record.round,
        amount: record.amount,
        fraction_ppm: record.fraction.ppm(),
        evidence: record.evidence,
    }
}

/// How a slash for a forged result starts its reason (`verify::Rejection::Attribution`).
const FORGED_REASON: &str = "result is not the worker's: ";

/// What checking a slash's evidence again concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The evidence shows a fault of the slashed worker.
    pub upheld: bool,
    /// Why, for people.
    pub reason: String,
}

impl Verdict {
    fn upheld(reason: impl Into<String>) -> Self {
        Self {
            upheld: true,
            reason: reason.into(),
        }
    }

    fn not_upheld(reason: impl Into<String>) -> Self {
        Self {
            upheld: false,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = if self.upheld { "upheld" } else { "not upheld" };
        write!(f, "{verdict}: {}", self.reason)
    }
}

/// The check itself could not run; says nothing about the worker.
#[derive(Debug, thiserror::Error)]
pub enum ReverifyError {
    #[error("cannot stage the evidence for checking: {0}")]
    Io(#[from] std::io::Error),
}

/// The reason a slash records (empty when its evidence does not decode).
pub fn slash_reason(entry: &SlashEntry) -> String {
    SlashEvidence::decode(entry.evidence.as_slice())
        .map(|e| e.reason)
        .unwrap_or_default()
}

/// Checks a slash's evidence again (see the module docs). Blocking: a transcode slash decodes the
/// segment and every rendition; `scratch` holds the staged files while they are checked.
pub fn reverify(entry: &SlashEntry, scratch: &Path) -> Result<Verdict, ReverifyError> {
    let worker = match PublicId::from_slice("slashed worker", &entry.worker) {
        Ok(w) => w,
        Err(e) => {
            return Ok(Verdict::not_upheld(format!(
                "the slash names no worker: {e}"
            )));
        }
    };
    let evidence = match SlashEvidence::decode(entry.evidence.as_slice()) {
        Ok(e) => e,
        Err(e) => {
            return Ok(Verdict::not_upheld(format!(
                "the evidence is not a SlashEvidence message: {e}"
            )));
        }
    };
    match &evidence.kind {
        Some(slash_evidence::Kind::Transcode(t)) => {
            reverify_transcode(&worker, t, &evidence.reason, scratch)
        }
        Some(slash_evidence::Kind::Storage(s)) => Ok(reverify_storage(&worker, s)),
        None => Ok(Verdict::not_upheld("the evidence is empty")),
    }
}

/// Re-runs the coordinator's verification of a transcode result: the worker's signature over it first
/// (without it the result could be anyone's), then the structural and content checks on the job's own
/// segment. The content check draws the frames the recorded reason names by its seed when it has one.
pub fn reverify_transcode(
    worker: &PublicId,
    evidence: &TranscodeEvidence,
    recorded_reason: &str,
    scratch: &Path,
) -> Result<Verdict, ReverifyError> {
    let (Some(job), Some(result)) = (&evidence.job, &evidence.result) else {
        return Ok(Verdict::not_upheld(
            "the evidence lacks the job or the result",
        ));
    };
    if result.job_id != job.job_id {
        return Ok(Verdict::not_upheld(format!(
            "the result is for job '{}', the evidence's job is '{}'",
            result.job_id, job.job_id
        )));
    }
    // A result slashed as forged is upheld when it is indeed not signed by the worker; that the worker
    // sent it rests on the coordinator's record of the worker's authenticated session, since a forged
    // result carries nothing that ties it to anyone. Any other slash needs the worker's signature.
    let slashed_as_forged = recorded_reason.starts_with(FORGED_REASON);
    let forged = |why: String| {
        if slashed_as_forged {
            Verdict::upheld(format!(
                "forged result: {why}; it came on worker {}'s authenticated session by the \
                 coordinator's record",
                worker.short()
            ))
        } else {
            Verdict::not_upheld(format!("{why}; nothing ties the result to the worker"))
        }
    };
    let signed = result_message(&job.job_id, &result.renditions);
    if let Err(e) = worker.verify(&signed, &result.signature) {
        return Ok(forged(format!(
            "the result is not signed by worker {}: {e}",
            worker.short()
        )));
    }
    // The worker signed each rendition's hash; data that does not match it is not what it signed.
    for r in &result.renditions {
        if blake3::hash(&r.data).as_bytes().as_slice() != r.blake3.as_slice() {
            return Ok(forged(format!(
                "rendition '{}' is not the data whose hash the worker signed",
                r.profile
            )));
        }
    }
    let profiles = match ladder_from_wire(&job.profiles) {
        Ok(p) => p,
        Err(e) => {
            return Ok(Verdict::not_upheld(format!(
                "the job's ladder is not valid: {e}"
            )));
        }
    };
    let mut staged = tempfile::Builder::new()
        .prefix("evidence-source-")
        .tempfile_in(scratch)?;
    staged.write_all(&job.segment)?;
    staged.flush()?;
    let source = match dualrig_media::inspect(staged.path()) {
        Ok(s) => s,
        Err(e) => {
            return Ok(Verdict::not_upheld(format!(
                "the job's segment is not a video the coordinator would have accepted: {e}"
            )));
        }
    };
    let seed = content_seed(recorded_reason).unwrap_or_else(rand::random);
    match check_result_with_seed(
        worker,
        &job.job_id,
        &source,
        &profiles,
        result,
        scratch,
        Some((&job.segment[..], seed)),
    ) {
        Ok(()) => Ok(Verdict::not_upheld(format!(
            "the result passes verification again, content check included (seed {seed})"
        ))),
        Err(Rejection::Io(e)) => Err(ReverifyError::Io(e)),
        Err(rejection) => Ok(Verdict::upheld(format!(
            "the worker's signed result fails verification again: {rejection}"
        ))),
    }
}

/// The content check seed a rejection reports ("… (content check seed N)").
fn content_seed(reason: &str) -> Option<u64> {
    const MARK: &str = "content check seed ";
    let at = reason.rfind(MARK)? + MARK.len();
    let digits: String = reason[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Checks a failed storage challenge again: the challenged indices are recomputed from the seed, the
/// worker and the blob, and the slash is upheld when the answer was missing, late or an error, or when
/// a proof does not decode, names another chunk than the one asked, or does not hash to the blob id
/// under the recorded length. Pure: no I/O.
pub fn reverify_storage(worker: &PublicId, evidence: &StorageEvidence) -> Verdict {
    if evidence.worker != worker.as_bytes() {
        return Verdict::not_upheld("the challenge was put to another worker than the one slashed");
    }
    let (Ok(root), Ok(seed)) = (
        <[u8; 32]>::try_from(evidence.root.as_slice()),
        <[u8; 32]>::try_from(evidence.seed.as_slice()),
    ) else {
        return Verdict::not_upheld("the challenge's blob id or seed is not 32 bytes");
    };
    let root_hash = blake3::Hash::from_bytes(root);
    if evidence.late {
        return Verdict::upheld(format!(
            "no answer for blob {root_hash} before the deadline ({} ms after the epoch)",
            evidence.deadline_unix_ms
        ));
    }
    let Some(answer) = &evidence.answer else {
        return Verdict::upheld(format!("no answer for blob {root_hash}"));
    };
    if !answer.error.is_empty() {
        return Verdict::upheld(format!(
            "the worker answered for blob {root_hash} with an error: {}",
            answer.error
        ));
    }
    if answer.root != evidence.root {
        return Verdict::upheld(format!("the answer is for another blob than {root_hash}"));
    }
    let asked = challenge_indices(&seed, worker, &root, evidence.size, evidence.k as usize);
    if answer.proofs.len() != asked.len() {
        return Verdict::upheld(format!(
            "{} proofs for the {} chunks of blob {root_hash} the challenge asked for",
            answer.proofs.len(),
            asked.len()
        ));
    }
    for (bytes, &index) in answer.proofs.iter().zip(&asked) {
        let proof = match ChunkProof::from_bytes(bytes) {
            Ok(p) => p,
            Err(e) => {
                return Verdict::upheld(format!(
                    "the proof for chunk {index} of blob {root_hash} does not decode: {e}"
                ));
            }
        };
        if proof.index != index {
            return Verdict::upheld(format!(
                "the proof in the place of chunk {index} of blob {root_hash} is for chunk {}",
                proof.index
            ));
        }
        if let Err(e) = proof.verify(&root_hash, evidence.size) {
            return Verdict::upheld(format!("{e}"));
        }
    }
    Verdict::not_upheld(format!(
        "all {} proofs hash to blob {root_hash} of {} bytes",
        asked.len(),
        evidence.size
    ))
}

#[cfg(test)]
mod tests {
    use blake3::hazmat::{ChainingValue, HasherExt, Mode, merge_subtrees_non_root};
    use dualrig_proto::identity::Identity;
    use dualrig_proto::proof::{CHUNK_LEN, chunk_count};
    use dualrig_proto::result::{rendition, sign_result};
    use dualrig_proto::v1::BlobProofs;

    use super::*;

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
            reverify_storage(&self.worker, evidence)
        }
    }

    #[test]
    fn honest_storage_answer_is_not_upheld() {
        let c = Challenge::new();
        let proofs = c.honest_proofs();
        assert_eq!(proofs.len(), 4);
        let verdict = c.verdict(&c.evidence(&proofs));
        assert!(!verdict.upheld, "{verdict}");
        assert!(verdict.reason.contains("all 4 proofs"), "{verdict}");
    }

    #[test]
    fn missing_late_and_errored_answers_are_upheld() {
        let c = Challenge::new();
        let late = StorageEvidence {
            late: true,
            ..c.evidence(&c.honest_proofs())
        };
        assert!(c.verdict(&late).upheld);
        assert!(c.verdict(&c.evidence_with(None)).upheld);
        let errored = c.evidence_with(Some(BlobProofs {
            root: c.root().to_vec(),
            proofs: Vec::new(),
            error: "blob not found".into(),
        }));
        let verdict = c.verdict(&errored);
        assert!(verdict.upheld && verdict.reason.contains("blob not found"));
        let short = c.honest_proofs()[..3].to_vec();
        let verdict = c.verdict(&c.evidence(&short));
        assert!(
            verdict.upheld && verdict.reason.contains("3 proofs"),
            "{verdict}"
        );
    }

    #[test]
    fn a_damaged_chunk_is_upheld() {
        let c = Challenge::new();
        let mut proofs = c.honest_proofs();
        proofs[2].chunk[17] ^= 1;
        let verdict = c.verdict(&c.evidence(&proofs));
        assert!(verdict.upheld, "{verdict}");
        assert!(verdict.reason.contains("does not hash"), "{verdict}");
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
        let verdict = c.verdict(&c.evidence(&proofs));
        assert!(verdict.upheld, "{verdict}");
        assert!(
            verdict.reason.contains(&format!("is for chunk {other}")),
            "{verdict}"
        );
    }

    #[test]
    fn undecodable_proof_bytes_are_upheld() {
        let c = Challenge::new();
        let mut evidence = c.evidence(&c.honest_proofs());
        let answer = evidence.answer.as_mut().expect("answer");
        answer.proofs[1].truncate(20);
        let verdict = c.verdict(&evidence);
        assert!(
            verdict.upheld && verdict.reason.contains("does not decode"),
            "{verdict}"
        );
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

    fn transcode_entry(worker: &PublicId, evidence: SlashEvidence) -> SlashEntry {
        SlashEntry {
            worker: worker.as_bytes().to_vec(),
            round: 3,
            amount: 10,
            fraction_ppm: 100_000,
            evidence: evidence.encode_to_vec(),
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
        let evidence = transcode_evidence(&job(), &result, "bad");
        let Some(slash_evidence::Kind::Transcode(t)) = &evidence.kind else {
            panic!("transcode evidence");
        };
        let kept = t.job.as_ref().expect("job");
        assert!(kept.payment.is_empty());
        assert_eq!((kept.job_id.as_str(), kept.segment.len()), ("job-7", 188));
        assert_eq!(t.result.as_ref(), Some(&result));
        assert_eq!(evidence.reason, "bad");
    }

    #[test]
    fn a_result_without_the_workers_signature_is_not_upheld() {
        let (worker, forger) = (Identity::generate(), Identity::generate());
        let renditions = vec![rendition("240p", vec![0; 10])];
        let forged = JobResult {
            job_id: "job-7".into(),
            signature: sign_result(&forger, "job-7", &renditions).to_vec(),
            renditions,
            ..JobResult::default()
        };
        let entry = transcode_entry(&worker.id(), transcode_evidence(&job(), &forged, "forged"));
        let scratch = tempfile::tempdir().expect("tempdir");
        let verdict = reverify(&entry, scratch.path()).expect("runs");
        assert!(!verdict.upheld, "{verdict}");
        assert!(verdict.reason.contains("not signed by worker"), "{verdict}");
    }

    #[test]
    fn data_that_is_not_what_the_worker_signed_is_not_upheld() {
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
        let entry = transcode_entry(&worker.id(), transcode_evidence(&job(), &result, "x"));
        let scratch = tempfile::tempdir().expect("tempdir");
        let verdict = reverify(&entry, scratch.path()).expect("runs");
        assert!(
            !verdict.upheld && verdict.reason.contains("not the data"),
            "{verdict}"
        );
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
        assert_eq!(slash_reason(&entry), "");
    }

    #[test]
    fn the_content_check_seed_is_read_back_from_the_reason() {
        assert_eq!(
            content_seed("rendition '240p' frame 3 scores 9.1 dB (content check seed 1234567)"),
            Some(1_234_567)
        );
        assert_eq!(content_seed("rendition '240p' is missing"), None);
    }
}
