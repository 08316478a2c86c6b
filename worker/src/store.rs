//! The worker's content-addressed blob store: blobs named by their BLAKE3 root, each with its outboard
//! beside it so storage proofs are answered without rehashing.
//!
//! ```text
//! DATA_DIR/blobs/<hex root>        the blob
//! DATA_DIR/blobs/<hex root>.obao   its outboard (bao layout, see `hash::Outboard`)
//! DATA_DIR/blobs/.tmp/             writes in progress; cleared at open
//! ```
//!
//! A put streams the input into a temp file while hashing it, writes the outboard to another temp file,
//! syncs both, then renames the outboard and *then* the blob into place: a blob that is visible under
//! its name is complete, and a crash leaves at worst an orphan outboard, which the next open deletes.
//! The index (root → length) lives in memory and is rebuilt from the directory at open; blobs whose
//! outboard is missing or does not match their size are dropped then, and [`BlobStore::scrub`] rehashes
//! every blob to find the ones whose bytes went bad.
//!
//! Capacity counts what the store occupies on disk: every blob's bytes plus its outboard
//! ([`footprint`]). Puts reserve their footprint before copying, so concurrent puts cannot overcommit.

mod open;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Take, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dualrig_proto::proof::{
    CHUNK_LEN, ChunkProof, OUTBOARD_HEADER_LEN, OUTBOARD_PARENT_LEN, ParentNode, ProofError,
    build_proof, chunk_count, chunk_len, outboard_len,
};

use crate::hash::{BlobDigest, BlobHasher, HashError, HashMode, Outboard};

pub use open::{DropReason, DroppedBlob};

/// Bytes a blob of `len` bytes occupies in the store: the blob and its outboard.
pub fn footprint(len: u64) -> u64 {
    len.saturating_add(outboard_len(len))
}

/// A stored blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobInfo {
    /// Its BLAKE3 hash: the blob id.
    pub root: blake3::Hash,
    /// Its length in bytes.
    pub len: u64,
}

/// What a [`BlobStore::scrub`] found. Corrupt and missing blobs have been dropped from the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Blobs rehashed.
    pub checked: usize,
    /// Blobs whose bytes no longer hash to their id.
    pub corrupt: Vec<blake3::Hash>,
    /// Blobs whose file disappeared.
    pub missing: Vec<blake3::Hash>,
    /// Blobs whose bytes were sound but whose outboard was not; the outboard was rewritten.
    pub repaired_outboards: Vec<blake3::Hash>,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "storing {len} bytes takes {needed} bytes with its outboard, but only {free} of the store's \
         {capacity} bytes are free; remove blobs or raise the capacity"
    )]
    OverCapacity {
        len: u64,
        needed: u64,
        free: u64,
        capacity: u64,
    },
    #[error("no blob {root} in the store")]
    NotFound { root: blake3::Hash },
    #[error("range {start}..{end} does not lie within blob {root} of {len} bytes")]
    RangeOutOfBounds {
        root: blake3::Hash,
        start: u64,
        end: u64,
        len: u64,
    },
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("blob {root} is damaged on disk ({reason}); a scrub will drop it")]
    Corrupt { root: blake3::Hash, reason: String },
}

impl StoreError {
    fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
        move |source| StoreError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The index and the space accounting, under one lock.
#[derive(Debug, Default)]
struct State {
    blobs: BTreeMap<[u8; 32], u64>,
    /// Footprint of the blobs in `blobs`.
    used: u64,
    /// Footprint reserved by puts in progress.
    reserved: u64,
}

/// Blobs on local disk, named by their BLAKE3 root. Shareable across threads (`&self` everywhere).
pub struct BlobStore {
    blobs_dir: PathBuf,
    tmp_dir: PathBuf,
    capacity: u64,
    hasher: Arc<dyn BlobHasher>,
    state: Mutex<State>,
    dropped_at_open: Vec<DroppedBlob>,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore")
            .field("dir", &self.blobs_dir)
            .field("capacity", &self.capacity)
            .field("hasher", &self.hasher.describe())
            .finish_non_exhaustive()
    }
}

impl BlobStore {
    /// Opens (creating it if needed) the store under `dir`, clears unfinished writes and rebuilds the
    /// index from the blobs on disk. Blobs that cannot be used are deleted and listed in
    /// [`BlobStore::dropped_at_open`]; their bytes are not rehashed here (see [`BlobStore::scrub`]).
    pub fn open(
        dir: &Path,
        capacity_bytes: u64,
        hasher: Arc<dyn BlobHasher>,
    ) -> Result<Self, StoreError> {
        let blobs_dir = dir.join("blobs");
        let tmp_dir = blobs_dir.join(".tmp");
        fs::create_dir_all(&blobs_dir).map_err(StoreError::io("create", &blobs_dir))?;
        match fs::remove_dir_all(&tmp_dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(StoreError::io("clear", &tmp_dir)(e));
            }
            _ => {}
        }
        fs::create_dir_all(&tmp_dir).map_err(StoreError::io("create", &tmp_dir))?;
        let scan = open::scan(&blobs_dir)?;
        for dropped in &scan.dropped {
            tracing::warn!(blob = %dropped.root, reason = %dropped.reason, "dropped a stored blob");
        }
        let used = scan
            .blobs
            .values()
            .fold(0u64, |sum, &len| sum.saturating_add(footprint(len)));
        Ok(BlobStore {
            blobs_dir,
            tmp_dir,
            capacity: capacity_bytes,
            hasher,
            state: Mutex::new(State {
                blobs: scan.blobs,
                used,
                reserved: 0,
            }),
            dropped_at_open: scan.dropped,
        })
    }

    /// Blobs (and orphan outboards) that [`BlobStore::open`] deleted, with the reason.
    pub fn dropped_at_open(&self) -> &[DroppedBlob] {
        &self.dropped_at_open
    }

    /// Stores the file at `path`, which must keep its length while it is read.
    pub fn put_file(&self, path: &Path) -> Result<BlobInfo, StoreError> {
        let file = File::open(path).map_err(StoreError::io("open", path))?;
        let len = file
            .metadata()
            .map_err(StoreError::io("read the size of", path))?
            .len();
        self.put_reader(file, len).map_err(|e| match e {
            StoreError::Hash(hash) => StoreError::Hash(hash.for_input(path)),
            other => other,
        })
    }

    /// Stores exactly `len` bytes read from `reader`, streamed (the blob is never held in memory).
    /// Refused before anything is written when its footprint does not fit the free capacity. Storing
    /// a blob that is already there returns it unchanged. On any failure nothing becomes visible.
    pub fn put_reader(&self, reader: impl Read, len: u64) -> Result<BlobInfo, StoreError> {
        let reservation = self.reserve(len)?;
        let mut blob_tmp = tempfile::NamedTempFile::new_in(&self.tmp_dir)
            .map_err(StoreError::io("create a temp file in", &self.tmp_dir))?;
        // The outboard is written into its file as the hasher goes, never held whole.
        let outboard_tmp = tempfile::NamedTempFile::new_in(&self.tmp_dir)
            .map_err(StoreError::io("create a temp file in", &self.tmp_dir))?;
        let digest = {
            let mut tee = Tee {
                reader,
                copy: BufWriter::with_capacity(1 << 20, blob_tmp.as_file_mut()),
                write_error: None,
            };
            let digest = self.hasher.hash_reader_to_file(
                &mut tee,
                len,
                HashMode::Plain,
                outboard_tmp.as_file(),
            );
            let flushed = tee.copy.flush();
            if let Some(source) = tee.write_error.or(flushed.err()) {
                return Err(StoreError::Io {
                    action: "write a temp file in",
                    path: self.tmp_dir.clone(),
                    source,
                });
            }
            digest?
        };
        let info = BlobInfo {
            root: digest.hash,
            len: digest.len,
        };
        for tmp in [&blob_tmp, &outboard_tmp] {
            tmp.as_file()
                .sync_all()
                .map_err(StoreError::io("sync", tmp.path()))?;
        }

        let mut state = self.lock();
        if state.blobs.contains_key(info.root.as_bytes()) {
            // Same id, same bytes: the temp files delete themselves.
            return Ok(info);
        }
        let blob_path = self.blob_path(&info.root);
        let outboard_path = self.outboard_path(&info.root);
        outboard_tmp
            .persist(&outboard_path)
            .map_err(|e| StoreError::io("move the outboard to", &outboard_path)(e.error))?;
        if let Err(e) = blob_tmp.persist(&blob_path) {
            // Best effort: an outboard left behind is an orphan the next open deletes anyway.
            let _ = fs::remove_file(&outboard_path);
            return Err(StoreError::io("move the blob to", &blob_path)(e.error));
        }
        sync_dir(&self.blobs_dir)?;
        state.blobs.insert(*info.root.as_bytes(), info.len);
        state.used = state.used.saturating_add(footprint(info.len));
        drop(state);
        drop(reservation);
        Ok(info)
    }

    /// The blob with id `root`, if the store holds it.
    pub fn get(&self, root: &blake3::Hash) -> Option<BlobInfo> {
        self.lock()
            .blobs
            .get(root.as_bytes())
            .map(|&len| BlobInfo { root: *root, len })
    }

    /// Every stored blob, ordered by id.
    pub fn list(&self) -> Vec<BlobInfo> {
        self.lock()
            .blobs
            .iter()
            .map(|(root, &len)| BlobInfo {
                root: blake3::Hash::from_bytes(*root),
                len,
            })
            .collect()
    }

    /// Bytes the stored blobs occupy, outboards included.
    pub fn used_bytes(&self) -> u64 {
        self.lock().used
    }

    /// The capacity the store was opened with.
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity
    }

    /// Bytes still free for new blobs (outboards included), net of puts in progress.
    pub fn free_bytes(&self) -> u64 {
        let state = self.lock();
        self.capacity
            .saturating_sub(state.used.saturating_add(state.reserved))
    }

    /// Checks that the store holds `root` and that `start..end` lies within it.
    fn check_range(&self, root: &blake3::Hash, start: u64, end: u64) -> Result<(), StoreError> {
        let info = self.get(root).ok_or(StoreError::NotFound { root: *root })?;
        if start > end || end > info.len {
            return Err(StoreError::RangeOutOfBounds {
                root: *root,
                start,
                end,
                len: info.len,
            });
        }
        Ok(())
    }

    /// Bytes `start..end` of a blob, read from disk as the caller reads.
    pub fn read_range(
        &self,
        root: &blake3::Hash,
        start: u64,
        end: u64,
    ) -> Result<Take<File>, StoreError> {
        self.check_range(root, start, end)?;
        let path = self.blob_path(root);
        let mut file = File::open(&path).map_err(StoreError::io("open", &path))?;
        file.seek(SeekFrom::Start(start))
            .map_err(StoreError::io("seek in", &path))?;
        Ok(file.take(end - start))
    }

    /// Bytes `start..end` of a blob as a verifiable slice (see [`dualrig_proto::proof::slice`]), read
    /// from the blob and its outboard as the caller reads.
    pub fn slice(
        &self,
        root: &blake3::Hash,
        start: u64,
        end: u64,
    ) -> Result<impl Read + Send + use<>, StoreError> {
        self.check_range(root, start, end)?;
        let blob_path = self.blob_path(root);
        let outboard_path = self.outboard_path(root);
        let blob = File::open(&blob_path).map_err(StoreError::io("open", &blob_path))?;
        let outboard =
            File::open(&outboard_path).map_err(StoreError::io("open", &outboard_path))?;
        Ok(dualrig_proto::proof::slice::extract(
            blob,
            outboard,
            start,
            end - start,
        ))
    }

    /// The proof for chunk `index` of a blob: the chunk read from the blob, the siblings from the
    /// outboard (only the parents on the chunk's path are read). The proof is checked before it is
    /// returned, so damage on disk shows up here as [`StoreError::Corrupt`], not as a failed challenge.
    pub fn prove(&self, root: &blake3::Hash, index: u64) -> Result<ChunkProof, StoreError> {
        let info = self.get(root).ok_or(StoreError::NotFound { root: *root })?;
        let want = chunk_len(info.len, index).ok_or(ProofError::IndexOutOfRange {
            index,
            chunks: chunk_count(info.len),
        })?;
        let corrupt = |reason: String| StoreError::Corrupt {
            root: *root,
            reason,
        };

        let blob_path = self.blob_path(root);
        let mut blob = File::open(&blob_path).map_err(StoreError::io("open", &blob_path))?;
        let mut chunk = vec![0u8; want];
        blob.seek(SeekFrom::Start(index * CHUNK_LEN as u64))
            .and_then(|_| blob.read_exact(&mut chunk))
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => corrupt("the blob is shorter than stored".into()),
                _ => StoreError::io("read", &blob_path)(e),
            })?;

        let outboard_path = self.outboard_path(root);
        let mut outboard =
            File::open(&outboard_path).map_err(StoreError::io("open", &outboard_path))?;
        let mut read_at = |offset: u64, buf: &mut [u8]| {
            outboard
                .seek(SeekFrom::Start(offset))
                .and_then(|_| outboard.read_exact(buf))
                .map_err(|e| match e.kind() {
                    io::ErrorKind::UnexpectedEof => {
                        corrupt("the outboard is shorter than the blob needs".into())
                    }
                    _ => StoreError::io("read", &outboard_path)(e),
                })
        };
        let mut header = [0u8; OUTBOARD_HEADER_LEN];
        read_at(0, &mut header)?;
        if u64::from_le_bytes(header) != info.len {
            return Err(corrupt(format!(
                "the outboard describes {} bytes, the blob has {}",
                u64::from_le_bytes(header),
                info.len
            )));
        }
        let proof = build_proof(info.len, index, chunk, |pre_order| {
            let mut node = [0u8; OUTBOARD_PARENT_LEN];
            read_at(
                OUTBOARD_HEADER_LEN as u64 + pre_order * OUTBOARD_PARENT_LEN as u64,
                &mut node,
            )?;
            Ok::<ParentNode, StoreError>(split_parent(&node))
        })?;
        proof
            .verify(root, info.len)
            .map_err(|e| corrupt(e.to_string()))?;
        Ok(proof)
    }

    /// Deletes a blob and its outboard. Returns whether the store held it.
    pub fn remove(&self, root: &blake3::Hash) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let Some(len) = state.blobs.remove(root.as_bytes()) else {
            return Ok(false);
        };
        state.used = state.used.saturating_sub(footprint(len));
        // The blob goes first: without it, a leftover outboard is an orphan the next open deletes.
        remove_if_present(&self.blob_path(root))?;
        remove_if_present(&self.outboard_path(root))?;
        Ok(true)
    }

    /// Rehashes every blob with the store's hasher. Blobs that no longer hash to their id, or whose
    /// file is gone, are dropped; a sound blob whose outboard differs from its recomputed one gets the
    /// outboard rewritten. A GPU failure stops the scrub (nothing is dropped for it).
    pub fn scrub(&self) -> Result<ScrubReport, StoreError> {
        let mut report = ScrubReport::default();
        for info in self.list() {
            report.checked += 1;
            let path = self.blob_path(&info.root);
            match self.check_blob(&info, &path) {
                Err(e) if e.is_gpu_failure() => return Err(e.into()),
                Err(e) => {
                    if path.exists() {
                        tracing::warn!(blob = %info.root, error = %e, "stored blob is unreadable");
                        report.corrupt.push(info.root);
                    } else {
                        report.missing.push(info.root);
                    }
                }
                Ok(digest) if digest.hash != info.root || digest.len != info.len => {
                    tracing::warn!(blob = %info.root, "stored blob no longer hashes to its id");
                    report.corrupt.push(info.root);
                }
                Ok(digest) => {
                    if let Some(outboard) = digest.outboard
                        && self.repair_outboard(&info.root, &outboard)?
                    {
                        report.repaired_outboards.push(info.root);
                    }
                }
            }
        }
        for root in report.corrupt.iter().chain(&report.missing) {
            self.remove(root)?;
        }
        Ok(report)
    }

    /// Hashes a stored blob for a scrub. The outboard comes back only when the stored one is not
    /// sound: a blob that hashes to its id, with a stored outboard that merges to that id
    /// ([`Outboard::implied_root`]), needs no rebuild, which hashes every chunk on its own and costs
    /// several times the plain hash.
    fn check_blob(&self, info: &BlobInfo, path: &Path) -> Result<BlobDigest, HashError> {
        let digest = self.hasher.hash_file(path, HashMode::Plain, false)?;
        if digest.hash != info.root || digest.len != info.len {
            return Ok(digest);
        }
        let stored = fs::read(self.outboard_path(&info.root))
            .ok()
            .and_then(|bytes| Outboard::decode(&bytes).ok());
        let sound = stored.as_ref().is_some_and(|outboard| {
            outboard.content_len() == info.len
                && (chunk_count(info.len) == 1
                    || outboard.implied_root(HashMode::Plain) == Some(info.root))
        });
        if sound {
            return Ok(digest);
        }
        self.hasher.hash_file(path, HashMode::Plain, true)
    }

    /// Rewrites the outboard of `root` when it differs from `outboard`; returns whether it did.
    fn repair_outboard(
        &self,
        root: &blake3::Hash,
        outboard: &Outboard,
    ) -> Result<bool, StoreError> {
        let path = self.outboard_path(root);
        let expected = outboard.encode();
        match fs::read(&path) {
            Ok(stored) if stored == expected => return Ok(false),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("read", &path)(e)),
        }
        tracing::warn!(blob = %root, "rewriting a damaged outboard");
        let tmp = self.write_temp(&expected)?;
        let _held = self.lock();
        tmp.persist(&path)
            .map_err(|e| StoreError::io("move the outboard to", &path)(e.error))?;
        sync_dir(&self.blobs_dir)?;
        Ok(true)
    }

    fn blob_path(&self, root: &blake3::Hash) -> PathBuf {
        self.blobs_dir.join(root.to_hex().as_str())
    }

    fn outboard_path(&self, root: &blake3::Hash) -> PathBuf {
        self.blobs_dir
            .join(format!("{}.{}", root.to_hex(), open::OUTBOARD_EXT))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a map and two counters, each update complete before any call that can panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserves the footprint of a blob of `len` bytes, or refuses it.
    fn reserve(&self, len: u64) -> Result<Reservation<'_>, StoreError> {
        let needed = footprint(len);
        let mut state = self.lock();
        let free = self
            .capacity
            .saturating_sub(state.used.saturating_add(state.reserved));
        if needed > free {
            return Err(StoreError::OverCapacity {
                len,
                needed,
                free,
                capacity: self.capacity,
            });
        }
        state.reserved += needed;
        Ok(Reservation {
            store: self,
            bytes: needed,
        })
    }

    /// A synced temp file in the store's temp dir holding `bytes`.
    fn write_temp(&self, bytes: &[u8]) -> Result<tempfile::NamedTempFile, StoreError> {
        let mut tmp = tempfile::NamedTempFile::new_in(&self.tmp_dir)
            .map_err(StoreError::io("create a temp file in", &self.tmp_dir))?;
        tmp.write_all(bytes)
            .and_then(|_| tmp.as_file().sync_all())
            .map_err(StoreError::io("write a temp file in", &self.tmp_dir))?;
        Ok(tmp)
    }
}

/// Space held for a put in progress, given back when it ends either way.
struct Reservation<'a> {
    store: &'a BlobStore,
    bytes: u64,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut state = self.store.lock();
        state.reserved = state.reserved.saturating_sub(self.bytes);
    }
}

/// A reader that copies what it yields into `copy`. A failed write is kept aside and surfaces as an
/// I/O error of the read, which stops the hasher.
struct Tee<R, W> {
    reader: R,
    copy: W,
    write_error: Option<io::Error>,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.reader.read(buf)?;
        if let Err(e) = self.copy.write_all(&buf[..n]) {
            let kind = e.kind();
            self.write_error = Some(e);
            return Err(io::Error::new(kind, "writing the blob's temp copy failed"));
        }
        Ok(n)
    }
}

fn split_parent(node: &[u8; OUTBOARD_PARENT_LEN]) -> ParentNode {
    let mut left = [0u8; 32];
    let mut right = [0u8; 32];
    left.copy_from_slice(&node[..32]);
    right.copy_from_slice(&node[32..]);
    (left, right)
}

fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::io("delete", path)(e)),
        _ => Ok(()),
    }
}

/// Makes renames in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io("sync", dir))
}
