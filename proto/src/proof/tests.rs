//! Proofs against outboards made by the `bao` crate, forgeries, agreement with `bao`'s slice decoder,
//! and the statistics of challenge sampling.

use std::io::{Cursor, Read};

use proptest::prelude::*;
use rand::{Rng, RngCore, SeedableRng, rngs::StdRng};

use super::*;
use crate::identity::PublicId;

/// Deterministic pseudo-random bytes, so large blobs cost proptest nothing to shrink.
fn blob(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    StdRng::seed_from_u64(seed).fill_bytes(&mut data);
    data
}

/// The blob's id and its outboard, as the `bao` crate computes them.
fn bao_outboard(data: &[u8]) -> (blake3::Hash, Vec<u8>) {
    let (outboard, root) = bao::encode::outboard(data);
    assert_eq!(root, blake3::hash(data), "bao's root is the BLAKE3 hash");
    (root, outboard)
}

fn chunk_of(data: &[u8], index: u64) -> Vec<u8> {
    let start = index as usize * CHUNK_LEN;
    data[start..(start + CHUNK_LEN).min(data.len())].to_vec()
}

fn prove(data: &[u8], outboard: &[u8], index: u64) -> ChunkProof {
    ChunkProof::from_outboard(outboard, index, chunk_of(data, index)).expect("honest proof builds")
}

/// Whether `bao` accepts the one-chunk slice at `index` extracted from (possibly tampered) data and
/// outboard, against `root`.
fn bao_accepts(data: &[u8], outboard: &[u8], root: &blake3::Hash, index: u64) -> bool {
    let start = index * CHUNK_LEN as u64;
    let mut slice = Vec::new();
    bao::encode::SliceExtractor::new_outboard(
        Cursor::new(data),
        Cursor::new(outboard),
        start,
        CHUNK_LEN as u64,
    )
    .read_to_end(&mut slice)
    .expect("extracting reads in-memory buffers");
    let mut decoded = Vec::new();
    let accepted = bao::decode::SliceDecoder::new(&*slice, root, start, CHUNK_LEN as u64)
        .read_to_end(&mut decoded)
        .is_ok();
    if accepted {
        assert_eq!(decoded, chunk_of(data, index), "bao decodes the chunk");
    }
    accepted
}

/// Blob lengths around chunk boundaries and powers of two, up to 300 KiB.
fn blob_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..=300 * 1024,
        (1usize..=300, -1isize..=1).prop_map(|(k, d)| (k * CHUNK_LEN).saturating_add_signed(d)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn honest_proofs_verify_and_round_trip(len in blob_len(), seed: u64, pick: u64) {
        let data = blob(len, seed);
        let (root, outboard) = bao_outboard(&data);
        let chunks = chunk_count(len as u64);
        prop_assert_eq!(outboard.len() as u64, outboard_len(len as u64));
        for index in [0, pick % chunks, chunks - 1] {
            let proof = prove(&data, &outboard, index);
            prop_assert_eq!(proof.verify(&root, len as u64), Ok(()));
            let bytes = proof.to_bytes().expect("encodes");
            prop_assert_eq!(bytes.len(), encoded_len(proof.chunk.len(), proof.siblings.len()));
            prop_assert_eq!(ChunkProof::from_bytes(&bytes), Ok(proof));
        }
    }

    /// For every chunk, `bao` accepts its slice exactly when our proof verifies: on honest data, with a
    /// flipped bit in one chunk, and with one parent node of the outboard damaged in both halves (so a
    /// path through it fails whichever child our proof carries as a sibling).
    #[test]
    fn agrees_with_bao_slices(len in blob_len(), seed: u64, tamper in 0u8..3, at: u64, bit in 0u32..8) {
        let mut data = blob(len, seed);
        let (root, mut outboard) = bao_outboard(&data);
        let chunks = chunk_count(len as u64);
        match tamper {
            1 if len > 0 => data[(at % len as u64) as usize] ^= 1 << bit,
            2 if chunks > 1 => {
                let node = OUTBOARD_HEADER_LEN + (at % (chunks - 1)) as usize * OUTBOARD_PARENT_LEN;
                outboard[node + (bit as usize % 32)] ^= 1 << bit;
                outboard[node + 32 + (bit as usize % 32)] ^= 1 << bit;
            }
            _ => {}
        }
        let mut refused = 0;
        for index in 0..chunks {
            let ours = prove(&data, &outboard, index).verify(&root, len as u64).is_ok();
            prop_assert_eq!(ours, bao_accepts(&data, &outboard, &root, index), "chunk {}", index);
            refused += u64::from(!ours);
        }
        let tampered = (tamper == 1 && len > 0) || (tamper == 2 && chunks > 1);
        prop_assert_eq!(refused > 0, tampered);
    }
}

/// A 10-chunk blob whose last chunk is partial (784 bytes), its id, outboard and a proof for chunk 3.
fn fixture() -> (Vec<u8>, blake3::Hash, Vec<u8>) {
    let data = blob(9 * CHUNK_LEN + 784, 7);
    let (root, outboard) = bao_outboard(&data);
    (data, root, outboard)
}

#[test]
fn chunk_shape_follows_the_blob_length() {
    assert_eq!(chunk_count(0), 1);
    assert_eq!(chunk_count(1), 1);
    assert_eq!(chunk_count(1024), 1);
    assert_eq!(chunk_count(1025), 2);
    assert_eq!(chunk_count(u64::MAX), 1 << 54);
    assert_eq!(chunk_len(0, 0), Some(0));
    assert_eq!(chunk_len(0, 1), None);
    assert_eq!(chunk_len(2049, 1), Some(1024));
    assert_eq!(chunk_len(2049, 2), Some(1));
    assert_eq!(outboard_len(1024), 8);
    assert_eq!(outboard_len(1025), 8 + 64);
    assert_eq!(path_to_chunk(0, 1), vec![]);
    assert_eq!(
        path_to_chunk((1 << 54) - 1, 1 << 54).len(),
        MAX_DEPTH,
        "the deepest path of any blob"
    );
    // Five chunks: root [0..4 | 4], then [0..2 | 2..4], [0 | 1], [2 | 3] in pre-order.
    let steps = |index| -> Vec<(u64, bool)> {
        path_to_chunk(index, 5)
            .into_iter()
            .map(|s| (s.parent, s.left))
            .collect()
    };
    assert_eq!(steps(0), vec![(0, true), (1, true), (2, true)]);
    assert_eq!(steps(3), vec![(0, true), (1, false), (3, false)]);
    assert_eq!(steps(4), vec![(0, false)]);
}

#[test]
fn one_chunk_blobs_are_their_own_root() {
    for len in [0usize, 1, 1000, 1024] {
        let data = blob(len, len as u64);
        let (root, outboard) = bao_outboard(&data);
        let proof = prove(&data, &outboard, 0);
        assert!(proof.siblings.is_empty());
        assert_eq!(proof.verify(&root, len as u64), Ok(()));
    }
    // The empty blob's only chunk is empty: a byte there is padding.
    let padded = ChunkProof {
        index: 0,
        chunk: vec![0],
        siblings: vec![],
    };
    assert_eq!(
        padded.verify(&blake3::hash(b""), 0),
        Err(ProofError::ChunkLength {
            index: 0,
            expected: 0,
            got: 1
        })
    );
}

#[test]
fn forged_chunks_and_siblings_are_refused() {
    let (data, root, outboard) = fixture();
    let len = data.len() as u64;
    let honest = prove(&data, &outboard, 3);
    assert_eq!(honest.verify(&root, len), Ok(()));
    let mismatch = Err(ProofError::RootMismatch { index: 3, root });

    let mut flipped_chunk = honest.clone();
    flipped_chunk.chunk[500] ^= 0x10;
    assert_eq!(flipped_chunk.verify(&root, len), mismatch);

    for level in 0..honest.siblings.len() {
        let mut flipped_sibling = honest.clone();
        flipped_sibling.siblings[level][31] ^= 0x80;
        assert_eq!(
            flipped_sibling.verify(&root, len),
            mismatch,
            "level {level}"
        );
    }

    // Chunk 3 presented as chunk 5: same length, wrong counter and path.
    let mut moved = honest.clone();
    moved.index = 5;
    assert!(matches!(
        moved.verify(&root, len),
        Err(ProofError::RootMismatch { index: 5, .. })
    ));

    // Another blob's id, and this blob claimed under another length.
    let other = blake3::hash(b"another blob");
    assert!(matches!(
        honest.verify(&other, len),
        Err(ProofError::RootMismatch { .. })
    ));
    // A length that changes the chunk's path needs a different number of siblings. (One that keeps
    // the path, such as 11 chunks here, is not caught by this chunk's proof: see `verify`.)
    assert!(matches!(
        honest.verify(&root, len + 8 * 1024),
        Err(ProofError::SiblingCount { .. })
    ));
    // ... but the last chunk's proof pins the length.
    let last = prove(&data, &outboard, 9);
    for claimed in [len - 1, len + 1, len + 1024, len + 300 * 1024] {
        assert!(
            last.verify(&root, claimed).is_err(),
            "claimed length {claimed}"
        );
    }

    let mut short = honest.clone();
    short.siblings.pop();
    assert_eq!(
        short.verify(&root, len),
        Err(ProofError::SiblingCount {
            index: 3,
            expected: 4,
            got: 3
        })
    );
    let mut long = honest.clone();
    long.siblings.push([0; 32]);
    assert!(matches!(
        long.verify(&root, len),
        Err(ProofError::SiblingCount { got: 5, .. })
    ));

    let mut beyond = honest;
    beyond.index = 10;
    assert_eq!(
        beyond.verify(&root, len),
        Err(ProofError::IndexOutOfRange {
            index: 10,
            chunks: 10
        })
    );
}

#[test]
fn padding_on_the_last_partial_chunk_is_refused() {
    let (data, root, outboard) = fixture();
    let len = data.len() as u64;
    let last = prove(&data, &outboard, 9);
    assert_eq!(last.chunk.len(), 784);
    assert_eq!(last.verify(&root, len), Ok(()));
    let mut padded = last;
    padded.chunk.resize(CHUNK_LEN, 0);
    assert_eq!(
        padded.verify(&root, len),
        Err(ProofError::ChunkLength {
            index: 9,
            expected: 784,
            got: 1024
        })
    );
    // Building one is refused as well.
    let mut chunk = chunk_of(&data, 9);
    chunk.push(0);
    assert!(matches!(
        ChunkProof::from_outboard(&outboard, 9, chunk),
        Err(ProofError::ChunkLength { .. })
    ));
}

#[test]
fn truncated_or_padded_proof_bytes_are_refused() {
    let (data, _, outboard) = fixture();
    let bytes = prove(&data, &outboard, 3).to_bytes().expect("encodes");
    for cut in 0..bytes.len() {
        assert!(
            matches!(
                ChunkProof::from_bytes(&bytes[..cut]),
                Err(ProofError::Truncated { .. })
            ),
            "prefix of {cut} bytes"
        );
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert_eq!(
        ChunkProof::from_bytes(&trailing),
        Err(ProofError::TrailingBytes(1))
    );
    let mut version = bytes.clone();
    version[0] = 2;
    assert_eq!(
        ChunkProof::from_bytes(&version),
        Err(ProofError::UnsupportedVersion(2))
    );
    let mut huge_chunk = bytes.clone();
    huge_chunk[9..11].copy_from_slice(&1025u16.to_le_bytes());
    assert_eq!(
        ChunkProof::from_bytes(&huge_chunk),
        Err(ProofError::ChunkTooLong(1025))
    );
    let mut deep = bytes;
    deep[11 + CHUNK_LEN] = 55;
    assert_eq!(
        ChunkProof::from_bytes(&deep),
        Err(ProofError::TooManySiblings(55))
    );
}

#[test]
fn outboards_that_do_not_fit_are_refused() {
    let (data, _, outboard) = fixture();
    let chunk = chunk_of(&data, 0);
    assert!(matches!(
        ChunkProof::from_outboard(&outboard[..4], 0, chunk.clone()),
        Err(ProofError::Outboard(_))
    ));
    assert!(matches!(
        ChunkProof::from_outboard(&outboard[..outboard.len() - 1], 0, chunk.clone()),
        Err(ProofError::Outboard(_))
    ));
    // A parent lookup that fails is the caller's error, passed through.
    let missing = build_proof(data.len() as u64, 0, chunk, |pre_order| {
        Err(ProofError::MissingParent {
            pre_order,
            parents: 0,
        })
    });
    assert_eq!(
        missing,
        Err(ProofError::MissingParent {
            pre_order: 0,
            parents: 0
        })
    );
}

fn worker(byte: u8) -> PublicId {
    PublicId([byte; 32])
}

#[test]
fn challenges_are_deterministic_distinct_and_in_range() {
    let seed = [1u8; 32];
    let blob_id = [2u8; 32];
    let len = 1000 * CHUNK_LEN as u64 - 5;
    let a = challenge_indices(&seed, &worker(3), &blob_id, len, 16);
    assert_eq!(a, challenge_indices(&seed, &worker(3), &blob_id, len, 16));
    assert_eq!(a.len(), 16);
    assert!(a.windows(2).all(|w| w[0] < w[1]), "ascending and distinct");
    assert!(a.iter().all(|&i| i < 1000));
    assert_ne!(
        a,
        challenge_indices(&[9; 32], &worker(3), &blob_id, len, 16)
    );
    assert_ne!(a, challenge_indices(&seed, &worker(4), &blob_id, len, 16));
    assert_ne!(a, challenge_indices(&seed, &worker(3), &[5; 32], len, 16));
    // Small blobs are challenged on every chunk.
    assert_eq!(
        challenge_indices(&seed, &worker(3), &blob_id, 0, 16),
        vec![0]
    );
    assert_eq!(
        challenge_indices(&seed, &worker(3), &blob_id, 3000, 3),
        vec![0, 1, 2]
    );
    assert!(challenge_indices(&seed, &worker(3), &blob_id, len, 0).is_empty());
    // Nearly every chunk: Floyd still takes exactly k draws' worth of distinct indices.
    let most = challenge_indices(&seed, &worker(3), &blob_id, len, 999);
    assert_eq!(most.len(), 999);
    assert!(most.windows(2).all(|w| w[0] < w[1]));
}

/// Pearson's chi-square of observed counts against a uniform expectation.
fn chi_square(counts: &[u64], expected: f64) -> f64 {
    counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum()
}

#[test]
fn challenges_are_close_to_uniform() {
    // Fixed inputs: the statistic is the same on every run, so the bound cannot flake. With 49
    // degrees of freedom the statistic averages 49; 100 is past the 99.99th percentile.
    let chunks = 50u64;
    let len = chunks * CHUNK_LEN as u64;
    let seed = [7u8; 32];
    let mut rng = StdRng::seed_from_u64(11);
    for k in [1usize, 5] {
        let draws = 20_000 / k;
        let mut counts = vec![0u64; chunks as usize];
        for _ in 0..draws {
            let blob_id: [u8; 32] = rng.r#gen();
            for index in challenge_indices(&seed, &worker(1), &blob_id, len, k) {
                counts[index as usize] += 1;
            }
        }
        let expected = (draws * k) as f64 / chunks as f64;
        let stat = chi_square(&counts, expected);
        assert!(stat < 100.0, "k = {k}: chi-square {stat} over {counts:?}");
    }
}

#[test]
fn every_chunk_of_small_blobs_proves() {
    // Every tree shape up to 40 chunks, with full and partial last chunks.
    for chunks in 1..=40usize {
        for tail in [1usize, 512, CHUNK_LEN] {
            let len = (chunks - 1) * CHUNK_LEN + tail;
            let data = blob(len, len as u64);
            let (root, outboard) = bao_outboard(&data);
            for index in 0..chunks as u64 {
                let proof = prove(&data, &outboard, index);
                assert_eq!(
                    proof.verify(&root, len as u64),
                    Ok(()),
                    "{len} bytes, {index}"
                );
                // A proof carries one sibling per level: never more than the tree is deep.
                let depth = (chunks as f64).log2().ceil() as usize;
                assert!(proof.siblings.len() <= depth, "{len} bytes, {index}");
            }
        }
    }
}

#[test]
fn building_reads_only_the_parents_on_the_path() {
    let data = blob(1000 * CHUNK_LEN + 3, 5);
    let (root, outboard) = bao_outboard(&data);
    let parents = &outboard[OUTBOARD_HEADER_LEN..];
    let mut looked_up = Vec::new();
    let proof = build_proof(data.len() as u64, 777, chunk_of(&data, 777), |pre_order| {
        looked_up.push(pre_order);
        parent_at(parents, pre_order).ok_or(ProofError::MissingParent {
            pre_order,
            parents: 0,
        })
    })
    .expect("builds");
    assert_eq!(proof.verify(&root, data.len() as u64), Ok(()));
    assert_eq!(looked_up.len(), proof.siblings.len());
    assert_eq!(
        looked_up[0], 0,
        "the root's parent node comes first in pre-order"
    );
}
