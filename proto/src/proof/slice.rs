//! Verified byte ranges for downloads. A holder turns a range of a blob into a *slice* (the `bao`
//! crate's format: the range's chunks interleaved with the parent nodes on their paths, read from the
//! blob and its outboard without rehashing); a reader decodes the slice against the blob id and gets
//! only bytes that hash into it.

use std::io::{Read, Seek};

/// Reads the slice for bytes `start..start + len` of a blob from the blob and its outboard (the
/// store's layout is bao's, see the module docs of [`super`]).
pub fn extract<B: Read + Seek, O: Read + Seek>(
    blob: B,
    outboard: O,
    start: u64,
    len: u64,
) -> impl Read {
    bao::encode::SliceExtractor::new_outboard(blob, outboard, start, len)
}

/// Reads bytes `start..start + len` of the blob `root` out of `slice`, verifying every chunk before it
/// is returned: a read fails with [`std::io::ErrorKind::InvalidData`] at the first byte that does not
/// hash into the root, so nothing unverified reaches the caller.
pub fn verified_reader<S: Read>(slice: S, root: &blake3::Hash, start: u64, len: u64) -> impl Read {
    bao::decode::SliceDecoder::new(slice, root, start, len)
}
