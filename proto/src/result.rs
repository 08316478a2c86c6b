//! What a worker signs when it returns a transcode result (PROTOCOL §5): the job id and, per rendition,
//! its profile name, length and blake3 hash, so a bad result is attributable to the worker that made it.

use crate::identity::{Identity, IdentityError, PublicId};
use crate::v1;

const RESULT_CONTEXT: &str = "dualrig 2026-11 transcode result v1";

/// The 32-byte digest a worker signs for a result. Each field is length-prefixed so no two different
/// results share an encoding.
pub fn result_message(job_id: &str, renditions: &[v1::Rendition]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(RESULT_CONTEXT);
    put(&mut hasher, job_id.as_bytes());
    hasher.update(&(renditions.len() as u64).to_le_bytes());
    for r in renditions {
        put(&mut hasher, r.profile.as_bytes());
        hasher.update(&(r.data.len() as u64).to_le_bytes());
        put(&mut hasher, &r.blake3);
    }
    *hasher.finalize().as_bytes()
}

fn put(hasher: &mut blake3::Hasher, field: &[u8]) {
    hasher.update(&(field.len() as u64).to_le_bytes());
    hasher.update(field);
}

/// Builds a rendition with its hash.
pub fn rendition(profile: &str, data: Vec<u8>) -> v1::Rendition {
    let hash = blake3::hash(&data);
    v1::Rendition {
        profile: profile.to_owned(),
        data,
        blake3: hash.as_bytes().to_vec(),
    }
}

/// Signs a result's renditions.
pub fn sign_result(identity: &Identity, job_id: &str, renditions: &[v1::Rendition]) -> [u8; 64] {
    identity.sign(&result_message(job_id, renditions))
}

#[derive(Debug, thiserror::Error)]
pub enum ResultError {
    #[error("rendition '{profile}' does not match its blake3 hash")]
    HashMismatch { profile: String },
    #[error("result signature: {0}")]
    Signature(#[from] IdentityError),
}

/// Checks every rendition against its hash and the list against the worker's signature.
pub fn verify_result(
    worker: &PublicId,
    job_id: &str,
    renditions: &[v1::Rendition],
    signature: &[u8],
) -> Result<(), ResultError> {
    for r in renditions {
        if blake3::hash(&r.data).as_bytes().as_slice() != r.blake3.as_slice() {
            return Err(ResultError::HashMismatch {
                profile: r.profile.clone(),
            });
        }
    }
    worker.verify(&result_message(job_id, renditions), signature)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_result_verifies_and_tampering_is_caught() {
        let worker = Identity::generate();
        let mut renditions = vec![rendition("720p", vec![1, 2, 3]), rendition("360p", vec![4])];
        let sig = sign_result(&worker, "job-1", &renditions);
        verify_result(&worker.id(), "job-1", &renditions, &sig).expect("honest result");
        assert!(verify_result(&worker.id(), "job-2", &renditions, &sig).is_err());
        renditions[1].data[0] ^= 1;
        assert!(matches!(
            verify_result(&worker.id(), "job-1", &renditions, &sig),
            Err(ResultError::HashMismatch { .. })
        ));
        renditions[1] = rendition("360p", vec![5]);
        assert!(matches!(
            verify_result(&worker.id(), "job-1", &renditions, &sig),
            Err(ResultError::Signature(_))
        ));
    }
}
