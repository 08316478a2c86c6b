//! Storage proofs (PROTOCOL §6): challenge sampling, proofs built from a blob and its outboard, and their
//! verification against the blob id alone.
//!
//! A blob is split into 1024-byte chunks (BLAKE3's own) and hashed as BLAKE3's tree: the left subtree of
//! a node over `n > 1` chunks holds the largest power of two of chunks strictly below `n`, ROOT is set
//! only on the top compression, and a blob of one chunk (0 to 1024 bytes) is its own root. A
//! [`ChunkProof`] for chunk `i` carries the chunk's bytes and the chaining values of the siblings along
//! the path from that chunk up to the root; the verifier recomputes every node on the path and compares
//! the result with the blob id, so it needs nothing but the id and the blob's length.
//!
//! The prover keeps the tree's parent nodes in an *outboard* (the `bao` crate's layout: the content
//! length as u64 little-endian, then every parent as left CV ‖ right CV in pre-order) and builds proofs
//! from it with [`build_proof`] or [`ChunkProof::from_outboard`], without rehashing the blob.

mod challenge;
pub mod slice;
mod wire;

#[cfg(test)]
mod tests;

use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root,
};

pub use challenge::{CHALLENGE_CONTEXT, catch_probability, challenge_indices, rounds_to_catch};
pub use wire::{PROOF_WIRE_VERSION, encoded_len};

/// A blob id from its hex form (as `b3sum` prints it).
pub fn parse_root(text: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(text.trim())
        .map_err(|e| format!("'{text}' is not a blob root (64 hex digits): {e}"))?;
    bytes.try_into().map_err(|b: Vec<u8>| {
        format!(
            "'{text}' is not a blob root: {} bytes where a root has 32 (64 hex digits)",
            b.len()
        )
    })
}

/// BLAKE3's chunk length.
pub const CHUNK_LEN: usize = 1024;
/// Bytes of an outboard's length header.
pub const OUTBOARD_HEADER_LEN: usize = 8;
/// Bytes of one outboard parent node: the left and right children's chaining values.
pub const OUTBOARD_PARENT_LEN: usize = 64;
/// The deepest path any blob can have: a `u64` length has at most 2^54 chunks.
pub const MAX_DEPTH: usize = 54;

/// Chunks in a blob of `len` bytes: an empty blob is one empty chunk.
pub fn chunk_count(len: u64) -> u64 {
    len.div_ceil(CHUNK_LEN as u64).max(1)
}

/// The exact length of chunk `index` of a blob of `blob_len` bytes: 1024 for every chunk but the last,
/// which holds what remains (0 only for the empty blob). `None` when there is no such chunk.
pub fn chunk_len(blob_len: u64, index: u64) -> Option<usize> {
    let chunks = chunk_count(blob_len);
    if index >= chunks {
        return None;
    }
    let start = index * CHUNK_LEN as u64;
    Some((blob_len - start).min(CHUNK_LEN as u64) as usize)
}

/// Bytes of the outboard of a blob of `blob_len` bytes: the header and `chunks − 1` parents.
pub fn outboard_len(blob_len: u64) -> u64 {
    OUTBOARD_HEADER_LEN as u64 + (chunk_count(blob_len) - 1) * OUTBOARD_PARENT_LEN as u64
}

/// One parent node as stored in an outboard: (left child CV, right child CV).
pub type ParentNode = (ChainingValue, ChainingValue);

/// A proof that the prover holds chunk `index` of a blob.
#[derive(Clone, PartialEq, Eq)]
pub struct ChunkProof {
    /// Which chunk this proves.
    pub index: u64,
    /// The chunk's bytes, exactly as long as [`chunk_len`] says.
    pub chunk: Vec<u8>,
    /// Chaining values of the siblings along the path, from the chunk's sibling up to the root's
    /// other child; empty for a one-chunk blob.
    pub siblings: Vec<ChainingValue>,
}

impl std::fmt::Debug for ChunkProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkProof")
            .field("index", &self.index)
            .field("chunk_len", &self.chunk.len())
            .field("siblings", &self.siblings.len())
            .finish()
    }
}

/// Why a proof was refused or could not be built or decoded.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    #[error("chunk index {index} is out of range: the blob has {chunks} chunks")]
    IndexOutOfRange { index: u64, chunks: u64 },
    #[error(
        "chunk {index} is {got} bytes; a chunk at that index of this blob is exactly {expected}"
    )]
    ChunkLength {
        index: u64,
        expected: usize,
        got: usize,
    },
    #[error(
        "proof for chunk {index} carries {got} sibling hashes; the path to that chunk needs {expected}"
    )]
    SiblingCount {
        index: u64,
        expected: usize,
        got: usize,
    },
    #[error(
        "proof for chunk {index} does not hash to blob {root}: the chunk or a sibling is wrong"
    )]
    RootMismatch { index: u64, root: blake3::Hash },
    #[error("outboard is not usable: {0}")]
    Outboard(&'static str),
    #[error("outboard has no parent node {pre_order} (it holds {parents})")]
    MissingParent { pre_order: u64, parents: u64 },
    #[error("truncated proof: {field} needs {needed} bytes, {remaining} remain")]
    Truncated {
        field: &'static str,
        needed: usize,
        remaining: usize,
    },
    #[error("proof encoding version {0} is not supported (expected {PROOF_WIRE_VERSION})")]
    UnsupportedVersion(u8),
    #[error("proof chunk is {0} bytes; a chunk is at most {CHUNK_LEN}")]
    ChunkTooLong(usize),
    #[error("proof carries {0} sibling hashes; no path is deeper than {MAX_DEPTH}")]
    TooManySiblings(usize),
    #[error("{0} unexpected bytes after the end of the proof")]
    TrailingBytes(usize),
}

/// One step of the path from the root down to a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Step {
    /// The parent's position in the outboard's pre-order.
    parent: u64,
    /// True when the path goes on through the parent's left child.
    left: bool,
}

/// The path from the root down to chunk `index` of a tree over `chunks` chunks, root first. Empty for
/// a one-chunk tree. `index < chunks` is the caller's to check.
fn path_to_chunk(index: u64, chunks: u64) -> Vec<Step> {
    let mut steps = Vec::new();
    let (mut start, mut count, mut parent) = (0u64, chunks, 0u64);
    while count > 1 {
        // The left child holds the largest power of two of chunks strictly below `count`.
        let left_count = 1u64 << (63 - (count - 1).leading_zeros());
        if index < start + left_count {
            steps.push(Step { parent, left: true });
            // Pre-order: the left subtree's parents come right after this one.
            parent += 1;
            count = left_count;
        } else {
            steps.push(Step {
                parent,
                left: false,
            });
            // ... and the right subtree's after the left subtree's `left_count − 1` parents.
            parent += left_count;
            start += left_count;
            count -= left_count;
        }
    }
    steps
}

/// Checks that `index` exists in a blob of `blob_len` bytes and that `chunk` has its exact length.
fn check_chunk(blob_len: u64, index: u64, chunk: &[u8]) -> Result<(), ProofError> {
    let expected = chunk_len(blob_len, index).ok_or(ProofError::IndexOutOfRange {
        index,
        chunks: chunk_count(blob_len),
    })?;
    if chunk.len() != expected {
        return Err(ProofError::ChunkLength {
            index,
            expected,
            got: chunk.len(),
        });
    }
    Ok(())
}

/// Builds the proof for chunk `index` of a blob of `blob_len` bytes from the chunk's bytes and a
/// lookup of the outboard's parent nodes by pre-order position. Only the parents on the chunk's path
/// are looked up (one per level), so a caller can read them from a file on demand.
///
/// The chunk must be exactly [`chunk_len`] bytes. Nothing is hashed: a wrong chunk or outboard gives a
/// proof that fails [`ChunkProof::verify`].
pub fn build_proof<E: From<ProofError>>(
    blob_len: u64,
    index: u64,
    chunk: Vec<u8>,
    mut parent: impl FnMut(u64) -> Result<ParentNode, E>,
) -> Result<ChunkProof, E> {
    check_chunk(blob_len, index, &chunk)?;
    let path = path_to_chunk(index, chunk_count(blob_len));
    let mut siblings = Vec::with_capacity(path.len());
    for step in &path {
        let (left, right) = parent(step.parent)?;
        siblings.push(if step.left { right } else { left });
    }
    siblings.reverse();
    Ok(ChunkProof {
        index,
        chunk,
        siblings,
    })
}

impl ChunkProof {
    /// Builds the proof for chunk `index` from an encoded outboard held in memory; the blob's length is
    /// the outboard's header.
    pub fn from_outboard(outboard: &[u8], index: u64, chunk: Vec<u8>) -> Result<Self, ProofError> {
        let (header, parents) =
            outboard
                .split_at_checked(OUTBOARD_HEADER_LEN)
                .ok_or(ProofError::Outboard(
                    "shorter than its 8-byte length header",
                ))?;
        let mut len = [0u8; OUTBOARD_HEADER_LEN];
        len.copy_from_slice(header);
        let blob_len = u64::from_le_bytes(len);
        if outboard_len(blob_len) != outboard.len() as u64 {
            return Err(ProofError::Outboard(
                "size does not match the content length in its header",
            ));
        }
        let count = (parents.len() / OUTBOARD_PARENT_LEN) as u64;
        build_proof(blob_len, index, chunk, |pre_order| {
            parent_at(parents, pre_order).ok_or(ProofError::MissingParent {
                pre_order,
                parents: count,
            })
        })
    }

    /// Checks this proof against the blob id `root` of a blob of `blob_len` bytes: the index exists,
    /// the chunk has its exact length (padding on a short last chunk is refused), there is one sibling
    /// per level of the path, and the chunk and siblings hash up to `root`.
    ///
    /// `blob_len` must come from a trusted record (what was stored), not from the prover: a proof
    /// binds the chunks along its own path, so a proof for an early chunk can also pass under some
    /// other lengths that keep that path. The root does bind the length, through the last chunk's path.
    pub fn verify(&self, root: &blake3::Hash, blob_len: u64) -> Result<(), ProofError> {
        check_chunk(blob_len, self.index, &self.chunk)?;
        let path = path_to_chunk(self.index, chunk_count(blob_len));
        if self.siblings.len() != path.len() {
            return Err(ProofError::SiblingCount {
                index: self.index,
                expected: path.len(),
                got: self.siblings.len(),
            });
        }
        // `blake3::Hash` compares in constant time.
        if self.computed_root(&path) == *root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch {
                index: self.index,
                root: *root,
            })
        }
    }

    /// The root the chunk and siblings hash to along `path` (checked to match them in length).
    fn computed_root(&self, path: &[Step]) -> blake3::Hash {
        if path.is_empty() {
            return blake3::hash(&self.chunk);
        }
        let mut cv = blake3::Hasher::new()
            .set_input_offset(self.index * CHUNK_LEN as u64)
            .update(&self.chunk)
            .finalize_non_root();
        let top = path.len() - 1;
        // Siblings run leaf to root, the path root to leaf.
        for (level, (step, sibling)) in path.iter().rev().zip(&self.siblings).enumerate() {
            let (left, right) = if step.left {
                (&cv, sibling)
            } else {
                (sibling, &cv)
            };
            if level == top {
                return merge_subtrees_root(left, right, Mode::Hash);
            }
            cv = merge_subtrees_non_root(left, right, Mode::Hash);
        }
        unreachable!("the loop returns at the top of a non-empty path")
    }
}

/// The parent at `pre_order` in an outboard's parent bytes (header removed).
fn parent_at(parents: &[u8], pre_order: u64) -> Option<ParentNode> {
    let start = usize::try_from(pre_order)
        .ok()?
        .checked_mul(OUTBOARD_PARENT_LEN)?;
    let node = parents.get(start..start.checked_add(OUTBOARD_PARENT_LEN)?)?;
    let mut left = [0u8; 32];
    let mut right = [0u8; 32];
    left.copy_from_slice(&node[..32]);
    right.copy_from_slice(&node[32..]);
    Some((left, right))
}
