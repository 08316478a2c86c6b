//! The compact byte encoding of a [`ChunkProof`], every length checked on the way in.
//!
//! ```text
//! version        u8 (1)
//! index          u64 little-endian
//! chunk length   u16 little-endian, at most 1024
//! chunk          that many bytes
//! sibling count  u8, at most 54
//! siblings       32 bytes each, leaf to root
//! ```
//!
//! Decoding checks the shape only; whether the lengths fit the blob is [`ChunkProof::verify`]'s job.

use super::{CHUNK_LEN, ChunkProof, MAX_DEPTH, ProofError};

/// The encoding version this code writes and reads.
pub const PROOF_WIRE_VERSION: u8 = 1;

/// Bytes of the encoding of a proof with a chunk of `chunk_len` bytes and `siblings` siblings.
pub fn encoded_len(chunk_len: usize, siblings: usize) -> usize {
    1 + 8 + 2 + chunk_len + 1 + 32 * siblings
}

impl ChunkProof {
    /// Encodes the proof. A proof that does not fit the encoding (a chunk over 1024 bytes, more than
    /// 54 siblings) could never verify, and is refused here too.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ProofError> {
        let chunk_len = u16::try_from(self.chunk.len())
            .map_err(|_| ProofError::ChunkTooLong(self.chunk.len()))?;
        if self.chunk.len() > CHUNK_LEN {
            return Err(ProofError::ChunkTooLong(self.chunk.len()));
        }
        if self.siblings.len() > MAX_DEPTH {
            return Err(ProofError::TooManySiblings(self.siblings.len()));
        }
        let mut out = Vec::with_capacity(encoded_len(self.chunk.len(), self.siblings.len()));
        out.push(PROOF_WIRE_VERSION);
        out.extend_from_slice(&self.index.to_le_bytes());
        out.extend_from_slice(&chunk_len.to_le_bytes());
        out.extend_from_slice(&self.chunk);
        out.push(self.siblings.len() as u8);
        for sibling in &self.siblings {
            out.extend_from_slice(sibling);
        }
        Ok(out)
    }

    /// Decodes a proof received from a peer: truncated input, oversized fields and trailing bytes are
    /// refused.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProofError> {
        let mut input = Cursor(bytes);
        let version = input.take::<1>("version")?[0];
        if version != PROOF_WIRE_VERSION {
            return Err(ProofError::UnsupportedVersion(version));
        }
        let index = u64::from_le_bytes(input.take::<8>("index")?);
        let chunk_len = u16::from_le_bytes(input.take::<2>("chunk length")?) as usize;
        if chunk_len > CHUNK_LEN {
            return Err(ProofError::ChunkTooLong(chunk_len));
        }
        let chunk = input.take_slice("chunk", chunk_len)?.to_vec();
        let count = input.take::<1>("sibling count")?[0] as usize;
        if count > MAX_DEPTH {
            return Err(ProofError::TooManySiblings(count));
        }
        let siblings = (0..count)
            .map(|_| input.take::<32>("sibling"))
            .collect::<Result<Vec<_>, _>>()?;
        if !input.0.is_empty() {
            return Err(ProofError::TrailingBytes(input.0.len()));
        }
        Ok(ChunkProof {
            index,
            chunk,
            siblings,
        })
    }
}

/// What is left of the input.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take_slice(&mut self, field: &'static str, len: usize) -> Result<&'a [u8], ProofError> {
        let (head, rest) = self.0.split_at_checked(len).ok_or(ProofError::Truncated {
            field,
            needed: len,
            remaining: self.0.len(),
        })?;
        self.0 = rest;
        Ok(head)
    }

    fn take<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ProofError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take_slice(field, N)?);
        Ok(out)
    }
}
