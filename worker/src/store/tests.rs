//! The store against real files: round trips, reopening, capacity, failed writes, scrubbing.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use rand::{RngCore, SeedableRng, rngs::StdRng};

use super::*;
use crate::hash::CpuHasher;

fn blob(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    StdRng::seed_from_u64(seed).fill_bytes(&mut data);
    data
}

fn open_store(dir: &Path, capacity: u64) -> BlobStore {
    BlobStore::open(dir, capacity, Arc::new(CpuHasher::new())).expect("store opens")
}

fn put(store: &BlobStore, data: &[u8]) -> BlobInfo {
    store
        .put_reader(data, data.len() as u64)
        .expect("put succeeds")
}

/// Every name in the blobs directory and in its temp dir.
fn files(dir: &Path) -> (Vec<String>, Vec<String>) {
    let names = |path: PathBuf| -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(path)
            .expect("dir lists")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    (
        names(dir.join("blobs")),
        names(dir.join("blobs").join(".tmp")),
    )
}

fn assert_proves(store: &BlobStore, info: &BlobInfo, index: u64) {
    let proof = store.prove(&info.root, index).expect("proof builds");
    assert_eq!(proof.verify(&info.root, info.len), Ok(()), "chunk {index}");
}

#[test]
fn put_get_and_prove_round_trip() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_store(dir.path(), 1 << 30);
    for (len, seed) in [
        (0usize, 0u64),
        (1, 1),
        (1024, 2),
        (1025, 3),
        (300 * 1024 + 17, 4),
    ] {
        let data = blob(len, seed);
        let info = put(&store, &data);
        assert_eq!(info.root, blake3::hash(&data));
        assert_eq!(info.len, len as u64);
        assert_eq!(store.get(&info.root), Some(info));
        let chunks = chunk_count(info.len);
        for index in [0, chunks / 2, chunks - 1] {
            assert_proves(&store, &info, index);
        }
        assert!(matches!(
            store.prove(&info.root, chunks),
            Err(StoreError::Proof(ProofError::IndexOutOfRange { .. }))
        ));
        let mut all = Vec::new();
        store
            .read_range(&info.root, 0, info.len)
            .expect("whole range")
            .read_to_end(&mut all)
            .expect("reads");
        assert_eq!(all, data);
    }
    assert_eq!(store.list().len(), 5);
    let expected: u64 = store.list().iter().map(|b| footprint(b.len)).sum();
    assert_eq!(store.used_bytes(), expected);

    // The same bytes again: one copy, the same answer.
    let again = blob(1025, 3);
    let before = store.used_bytes();
    assert_eq!(put(&store, &again).root, blake3::hash(&again));
    assert_eq!(store.used_bytes(), before);
    assert_eq!(
        files(dir.path()).1,
        Vec::<String>::new(),
        "no temp files left"
    );

    let missing = blake3::hash(b"never stored");
    assert!(store.get(&missing).is_none());
    assert!(matches!(
        store.prove(&missing, 0),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn range_reads_return_exactly_the_asked_bytes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_store(dir.path(), 1 << 20);
    let data = blob(5000, 9);
    let info = put(&store, &data);
    for (start, end) in [
        (0u64, 0u64),
        (1000, 3000),
        (4999, 5000),
        (5000, 5000),
        (0, 5000),
    ] {
        let mut got = Vec::new();
        store
            .read_range(&info.root, start, end)
            .expect("range in bounds")
            .read_to_end(&mut got)
            .expect("reads");
        assert_eq!(got, &data[start as usize..end as usize], "{start}..{end}");
    }
    for (start, end) in [(0u64, 5001u64), (3000, 2000), (5001, 5001)] {
        assert!(matches!(
            store.read_range(&info.root, start, end),
            Err(StoreError::RangeOutOfBounds { .. })
        ));
    }
}

#[test]
fn put_file_stores_a_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_store(&dir.path().join("data"), 1 << 20);
    let source = dir.path().join("source");
    let data = blob(70_000, 5);
    fs::write(&source, &data).expect("source written");
    let info = store.put_file(&source).expect("file stored");
    assert_eq!(info.root, blake3::hash(&data));
    assert_proves(&store, &info, 68);
    assert!(matches!(
        store.put_file(&dir.path().join("absent")),
        Err(StoreError::Io { .. })
    ));
}

#[test]
fn reopening_rebuilds_the_index_and_drops_broken_blobs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (kept, lost_outboard, resized, orphan) = {
        let store = open_store(dir.path(), 1 << 30);
        (
            put(&store, &blob(100_000, 1)),
            put(&store, &blob(3000, 2)),
            put(&store, &blob(4000, 3)),
            put(&store, &blob(5000, 4)),
        )
    };
    let blobs = dir.path().join("blobs");
    let name = |info: &BlobInfo| info.root.to_hex().to_string();
    fs::remove_file(blobs.join(format!("{}.obao", name(&lost_outboard)))).expect("rm outboard");
    fs::OpenOptions::new()
        .append(true)
        .open(blobs.join(name(&resized)))
        .and_then(|mut f| f.write_all(b"more"))
        .expect("blob grows");
    fs::remove_file(blobs.join(name(&orphan))).expect("rm blob");
    fs::write(blobs.join(".tmp").join("half-written"), b"partial").expect("stale temp");
    fs::write(blobs.join("README"), b"not ours").expect("foreign file");

    let store = open_store(dir.path(), 1 << 30);
    assert_eq!(store.list(), vec![kept]);
    assert_eq!(store.used_bytes(), footprint(kept.len));
    assert_proves(&store, &kept, 50);
    let mut dropped = store.dropped_at_open().to_vec();
    dropped.sort_by_key(|d| d.root.to_hex());
    let mut expected = vec![
        DroppedBlob {
            root: lost_outboard.root,
            reason: DropReason::OutboardMissing,
        },
        DroppedBlob {
            root: resized.root,
            reason: DropReason::LengthMismatch {
                blob: 4004,
                described: 4000,
            },
        },
        DroppedBlob {
            root: orphan.root,
            reason: DropReason::OrphanOutboard,
        },
    ];
    expected.sort_by_key(|d| d.root.to_hex());
    assert_eq!(dropped, expected);
    let (names, temps) = files(dir.path());
    let mut want = vec![
        ".tmp".to_string(),
        "README".to_string(),
        name(&kept),
        format!("{}.obao", name(&kept)),
    ];
    want.sort();
    assert_eq!(names, want, "dropped blobs are deleted, foreign files kept");
    assert!(temps.is_empty(), "stale temp files are cleared");
}

#[test]
fn puts_over_capacity_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_store(dir.path(), 10_000);
    let first = put(&store, &blob(8000, 1));
    assert_eq!(store.used_bytes(), 8000 + 8 + 7 * 64);
    let second = blob(2000, 2);
    match store.put_reader(&second[..], 2000) {
        Err(e @ StoreError::OverCapacity { .. }) => {
            assert!(e.to_string().contains("raise the capacity"), "{e}");
        }
        other => panic!("expected OverCapacity, got {other:?}"),
    }
    assert_eq!(store.free_bytes(), 10_000 - footprint(8000));
    assert!(store.remove(&first.root).expect("removes"));
    assert!(!store.remove(&first.root).expect("second remove is a no-op"));
    assert_eq!(store.used_bytes(), 0);
    put(&store, &second);
    assert_eq!(files(dir.path()).0.len(), 3, ".tmp, the blob, its outboard");
}

/// Yields `good` bytes, then fails.
struct FailingReader {
    data: Vec<u8>,
    pos: usize,
    good: usize,
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.good {
            return Err(io::Error::other("connection reset by peer"));
        }
        let n = buf.len().min(self.good - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn failed_puts_leave_nothing_visible() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_store(dir.path(), 1 << 30);
    let data = blob(200_000, 6);
    let failing = FailingReader {
        data: data.clone(),
        pos: 0,
        good: 150_000,
    };
    assert!(matches!(
        store.put_reader(failing, 200_000),
        Err(StoreError::Hash(HashError::Io { .. }))
    ));
    // A stream that ends early and one that runs on past the declared length.
    assert!(matches!(
        store.put_reader(&data[..100_000], 200_000),
        Err(StoreError::Hash(HashError::Truncated { .. }))
    ));
    assert!(matches!(
        store.put_reader(&data[..], 150_000),
        Err(StoreError::Hash(HashError::Grew { .. }))
    ));
    assert!(store.list().is_empty());
    assert_eq!(store.used_bytes(), 0);
    assert_eq!(store.free_bytes(), 1 << 30, "reservations are given back");
    assert_eq!(files(dir.path()), (vec![".tmp".to_string()], vec![]));
    let info = put(&store, &data);
    assert_eq!(store.list(), vec![info]);
}

#[test]
fn scrub_drops_damaged_and_missing_blobs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_store(dir.path(), 1 << 30);
    let sound = put(&store, &blob(50_000, 1));
    let damaged = put(&store, &blob(300 * 1024, 2));
    let deleted = put(&store, &blob(20_000, 3));
    let bad_outboard = put(&store, &blob(40_000, 4));
    let blobs = dir.path().join("blobs");

    // Overwrite 1% of the damaged blob's chunks (3 of 300) in place.
    let mut file = fs::OpenOptions::new()
        .write(true)
        .open(blobs.join(damaged.root.to_hex().as_str()))
        .expect("opens for writing");
    for chunk in [17u64, 150, 299] {
        file.seek(SeekFrom::Start(chunk * CHUNK_LEN as u64))
            .expect("seeks");
        file.write_all(&[0xAA; CHUNK_LEN]).expect("overwrites");
    }
    drop(file);
    // A challenge on a damaged chunk is caught before it leaves the worker.
    assert!(matches!(
        store.prove(&damaged.root, 150),
        Err(StoreError::Corrupt { .. })
    ));
    fs::remove_file(blobs.join(deleted.root.to_hex().as_str())).expect("rm blob");
    let outboard = blobs.join(format!("{}.obao", bad_outboard.root.to_hex()));
    let mut bytes = fs::read(&outboard).expect("outboard reads");
    bytes[8 + 64 + 5] ^= 1;
    fs::write(&outboard, bytes).expect("outboard damaged");

    let report = store.scrub().expect("scrub runs");
    assert_eq!(
        report,
        ScrubReport {
            checked: 4,
            corrupt: vec![damaged.root],
            missing: vec![deleted.root],
            repaired_outboards: vec![bad_outboard.root],
        }
    );
    let mut left = store.list();
    left.sort_by_key(|b| b.root.to_hex());
    let mut want = vec![sound, bad_outboard];
    want.sort_by_key(|b| b.root.to_hex());
    assert_eq!(left, want);
    assert_eq!(
        store.used_bytes(),
        footprint(sound.len) + footprint(bad_outboard.len)
    );
    let chunks = chunk_count(bad_outboard.len);
    for index in 0..chunks {
        assert_proves(&store, &bad_outboard, index);
    }
    assert_eq!(store.scrub().expect("second scrub").checked, 2);
    assert!(
        !blobs
            .join(format!("{}.obao", damaged.root.to_hex()))
            .exists(),
        "dropped blobs lose their outboard too"
    );
}

#[test]
fn concurrent_puts_share_the_capacity() {
    let dir = tempfile::tempdir().expect("temp dir");
    let len = 100_000usize;
    // Room for two blobs, not three.
    let store = Arc::new(open_store(dir.path(), 3 * footprint(len as u64) - 1));
    let outcomes: Vec<Result<BlobInfo, StoreError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4u64)
            .map(|seed| {
                let store = Arc::clone(&store);
                scope.spawn(move || {
                    let data = blob(len, 100 + seed);
                    store.put_reader(&data[..], len as u64)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("put thread"))
            .collect()
    });
    let stored = outcomes.iter().filter(|o| o.is_ok()).count();
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, Err(StoreError::OverCapacity { .. })))
        .count();
    assert_eq!((stored, refused), (2, 2), "{outcomes:?}");
    assert_eq!(store.used_bytes(), 2 * footprint(len as u64));
    assert_eq!(store.list().len(), 2);
}
