//! The outboard: every parent node of a blob's BLAKE3 tree, kept beside the blob so proofs can be
//! answered without rehashing it.
//!
//! Layout (the `bao` crate's outboard encoding, so `bao` tools can check it):
//!
//! ```text
//! content length: u64 little-endian                     8 bytes
//! parent nodes in pre-order, each left CV || right CV   64 bytes × (chunks − 1)
//! ```
//!
//! Pre-order means a parent comes before the parents of its left subtree, which come before those of
//! its right subtree. A blob of at most one chunk (1024 bytes) has no parents: its outboard is the
//! 8-byte length alone. Chunks of the blob itself are not included.

use blake3::hazmat::{ChainingValue, merge_subtrees_non_root, merge_subtrees_root};

use super::HashMode;
use super::tree::{Levels, chunk_count, left_subtree_chunks};

/// Subtrees of at least this many chunks check their two halves on two threads.
const PARALLEL_CHECK_CHUNKS: u64 = 1 << 14;

/// Bytes of the length header.
pub const HEADER_LEN: usize = 8;
/// Bytes of one parent node: the left and right children's chaining values.
pub const PARENT_LEN: usize = 64;

/// A blob's parent nodes in pre-order (see the module docs for the byte layout).
#[derive(Clone, PartialEq, Eq)]
pub struct Outboard {
    content_len: u64,
    parents: Vec<u8>,
}

impl std::fmt::Debug for Outboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outboard")
            .field("content_len", &self.content_len)
            .field("parents", &self.parent_count())
            .finish()
    }
}

/// Why bytes are not an outboard.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not an outboard: {0}")]
pub struct OutboardFormatError(&'static str);

impl Outboard {
    /// Builds the pre-order outboard from a tree's levels (`levels[0]` = chunk chaining values; a
    /// node covering chunks `[a, b)` at level `j` is `levels[j][a >> j]`).
    pub(crate) fn from_levels(content_len: u64, levels: &Levels) -> Self {
        let chunks = chunk_count(content_len);
        let mut parents = Vec::with_capacity((chunks as usize - 1) * PARENT_LEN);
        push_subtree(levels, 0, chunks, &mut parents);
        Outboard {
            content_len,
            parents,
        }
    }

    /// An outboard from its parents in pre-order (`(chunks − 1) × 64` bytes).
    pub(crate) fn from_parents(content_len: u64, parents: Vec<u8>) -> Self {
        debug_assert_eq!(
            parents.len() as u64,
            (chunk_count(content_len) - 1) * PARENT_LEN as u64
        );
        Outboard {
            content_len,
            parents,
        }
    }

    /// Length of the blob this outboard describes.
    pub fn content_len(&self) -> u64 {
        self.content_len
    }

    /// Number of parent nodes: one less than the number of chunks.
    pub fn parent_count(&self) -> usize {
        self.parents.len() / PARENT_LEN
    }

    /// The `index`-th parent in pre-order, as (left child CV, right child CV).
    pub fn parent(&self, index: usize) -> Option<(ChainingValue, ChainingValue)> {
        let node = self
            .parents
            .get(index * PARENT_LEN..(index + 1) * PARENT_LEN)?;
        let mut left = [0u8; 32];
        let mut right = [0u8; 32];
        left.copy_from_slice(&node[..32]);
        right.copy_from_slice(&node[32..]);
        Some((left, right))
    }

    /// The root hash this outboard's tree merges to, when every parent below the root is the merge
    /// of the two chaining values its own parent holds for it; `None` when any is not.
    ///
    /// A blob that hashes to the returned root has exactly this outboard: a different parent
    /// anywhere would be a BLAKE3 collision on the way up. So a blob's hash and this check together
    /// prove an outboard sound with one compression per parent, where rebuilding it would hash every
    /// chunk on its own.
    pub fn implied_root(&self, mode: HashMode) -> Option<blake3::Hash> {
        let chunks = chunk_count(self.content_len);
        if chunks == 1 {
            return None;
        }
        let (left, right) = self.parent(0)?;
        let left_count = left_subtree_chunks(chunks);
        let sound = rayon::join(
            || self.subtree_holds(1, left_count, &left, mode),
            || self.subtree_holds(left_count as usize, chunks - left_count, &right, mode),
        );
        (sound == (true, true)).then(|| merge_subtrees_root(&left, &right, mode.hazmat()))
    }

    /// Whether the subtree over `count` chunks whose first parent (if any) is at pre-order `index`
    /// merges to `cv`. Leaves (single chunks) are taken as they are.
    fn subtree_holds(&self, index: usize, count: u64, cv: &ChainingValue, mode: HashMode) -> bool {
        if count <= 1 {
            return true;
        }
        let Some((left, right)) = self.parent(index) else {
            return false;
        };
        if &merge_subtrees_non_root(&left, &right, mode.hazmat()) != cv {
            return false;
        }
        let left_count = left_subtree_chunks(count);
        let right_index = index + left_count as usize;
        let right_count = count - left_count;
        if count >= PARALLEL_CHECK_CHUNKS {
            let (a, b) = rayon::join(
                || self.subtree_holds(index + 1, left_count, &left, mode),
                || self.subtree_holds(right_index, right_count, &right, mode),
            );
            a && b
        } else {
            self.subtree_holds(index + 1, left_count, &left, mode)
                && self.subtree_holds(right_index, right_count, &right, mode)
        }
    }

    /// The parent nodes without the length header.
    pub fn parents_bytes(&self) -> &[u8] {
        &self.parents
    }

    /// The encoded outboard: length header then parents.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.parents.len());
        out.extend_from_slice(&self.content_len.to_le_bytes());
        out.extend_from_slice(&self.parents);
        out
    }

    /// Reads an encoded outboard back, checking that its size fits its length header.
    pub fn decode(bytes: &[u8]) -> Result<Self, OutboardFormatError> {
        let (header, parents) = bytes
            .split_at_checked(HEADER_LEN)
            .ok_or(OutboardFormatError("shorter than its 8-byte length header"))?;
        let mut len = [0u8; HEADER_LEN];
        len.copy_from_slice(header);
        let content_len = u64::from_le_bytes(len);
        let expected = (chunk_count(content_len) - 1).checked_mul(PARENT_LEN as u64);
        if expected != Some(parents.len() as u64) {
            return Err(OutboardFormatError(
                "size does not match the content length in its header",
            ));
        }
        Ok(Outboard {
            content_len,
            parents: parents.to_vec(),
        })
    }
}

/// Appends the parents of the subtree over chunks `[start, start + count)` in pre-order.
pub(crate) fn push_subtree(levels: &Levels, start: u64, count: u64, out: &mut Vec<u8>) {
    if count <= 1 {
        return;
    }
    let left_count = left_subtree_chunks(count);
    let j = left_count.trailing_zeros() as usize;
    let i = (start >> j) as usize;
    out.extend_from_slice(&levels[j][i]);
    out.extend_from_slice(&levels[j][i + 1]);
    push_subtree(levels, start, left_count, out);
    push_subtree(levels, start + left_count, count - left_count, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_rejects_a_size_that_does_not_fit_the_header() {
        let mut bytes = 2048u64.to_le_bytes().to_vec();
        assert!(Outboard::decode(&bytes).is_err());
        bytes.extend_from_slice(&[0u8; 64]);
        let outboard = Outboard::decode(&bytes).expect("one parent for two chunks");
        assert_eq!(outboard.parent_count(), 1);
        assert_eq!(outboard.encode(), bytes);
    }

    #[test]
    fn implied_root_is_the_hash_and_any_changed_parent_breaks_it() {
        use crate::hash::{BlobHasher, CpuHasher};
        let hasher = CpuHasher::new();
        for len in [1025usize, 4096, 5000, 70_000, (1 << 14) * 1024 * 2 + 3] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let digest = hasher
                .hash_bytes(&data, HashMode::Plain, true)
                .expect("hashes");
            let outboard = digest.outboard.expect("asked for");
            assert_eq!(outboard.implied_root(HashMode::Plain), Some(digest.hash));
            let mut bytes = outboard.encode();
            for at in [HEADER_LEN, bytes.len() - 1, HEADER_LEN + bytes.len() / 2] {
                bytes[at] ^= 1;
                let damaged = Outboard::decode(&bytes).expect("same size");
                assert_ne!(
                    damaged.implied_root(HashMode::Plain),
                    Some(digest.hash),
                    "len {len}, byte {at}"
                );
                bytes[at] ^= 1;
            }
        }
        let one_chunk = Outboard::decode(&1024u64.to_le_bytes()).expect("no parents");
        assert_eq!(one_chunk.implied_root(HashMode::Plain), None);
    }
}
