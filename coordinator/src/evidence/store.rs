//! Slash evidence kept outside the ledger (PROTOCOL §4.4): each encoded `SlashEvidence` in its own
//! file named by its BLAKE3 hash under `DATA_DIR/evidence/`, so the ledger row stays a few hundred
//! bytes whatever the evidence weighs. What is kept is bounded: an item over [`MAX_EVIDENCE_BYTES`] is
//! not kept at all, and the ledger decides which items to drop for age and room
//! (`Ledger::prune_evidence`); this store only writes, reads and deletes files.
//!
//! A file is written and synced before the slash that names it commits, so a committed slash's
//! evidence is on disk until the ledger drops it; a crash between the two leaves a file no slash
//! names, which [`EvidenceStore::sweep`] deletes at the next start.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The largest evidence kept: one item must fit in a `ListSlashes` answer.
pub const MAX_EVIDENCE_BYTES: u64 = 64 << 20;

/// An item's name and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvidenceRef {
    pub hash: [u8; 32],
    pub size: u64,
}

impl EvidenceRef {
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            hash: *blake3::hash(bytes).as_bytes(),
            size: bytes.len() as u64,
        }
    }
}

#[derive(Debug)]
pub struct EvidenceStore {
    dir: PathBuf,
}

impl EvidenceStore {
    pub fn open(dir: PathBuf) -> io::Result<Self> {
        fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    fn path(&self, hash: &[u8; 32]) -> PathBuf {
        self.dir.join(hex::encode(hash))
    }

    /// Writes `bytes` under their hash and syncs it (a no-op when that item is already kept).
    /// `None` when the item is over [`MAX_EVIDENCE_BYTES`] and is not kept.
    pub fn put(&self, bytes: &[u8]) -> io::Result<Option<EvidenceRef>> {
        if bytes.len() as u64 > MAX_EVIDENCE_BYTES {
            return Ok(None);
        }
        let item = EvidenceRef::of(bytes);
        let path = self.path(&item.hash);
        if path.exists() {
            return Ok(Some(item));
        }
        let mut staged = tempfile::Builder::new()
            .prefix(".incoming-")
            .tempfile_in(&self.dir)?;
        staged.write_all(bytes)?;
        staged.as_file().sync_all()?;
        staged.persist(&path).map_err(|e| e.error)?;
        sync_dir(&self.dir)?;
        Ok(Some(item))
    }

    /// The item named `hash`, checked against its name; `None` when it is not kept (or no longer
    /// matches its hash, which is logged).
    pub fn get(&self, hash: &[u8; 32]) -> io::Result<Option<Vec<u8>>> {
        let bytes = match fs::read(self.path(hash)) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if blake3::hash(&bytes).as_bytes() != hash {
            tracing::error!(item = %hex::encode(hash), "slash evidence on disk no longer matches its hash");
            return Ok(None);
        }
        Ok(Some(bytes))
    }

    /// Deletes the named items (those already gone are skipped).
    pub fn remove(&self, hashes: &[[u8; 32]]) -> io::Result<()> {
        for hash in hashes {
            match fs::remove_file(self.path(hash)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Deletes every file that is not one of `kept` (a crash's leftovers, half-written files).
    /// Returns how many it deleted.
    pub fn sweep(&self, kept: &HashSet<[u8; 32]>) -> io::Result<usize> {
        let mut deleted = 0;
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let named = name
                .to_str()
                .and_then(|n| hex::decode(n).ok())
                .and_then(|b| <[u8; 32]>::try_from(b).ok());
            if named.is_none_or(|hash| !kept.contains(&hash)) {
                fs::remove_file(entry.path())?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Bytes of every file in the store.
    pub fn bytes_on_disk(&self) -> io::Result<u64> {
        let mut total = 0;
        for entry in fs::read_dir(&self.dir)? {
            total += entry?.metadata()?.len();
        }
        Ok(total)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_named_by_hash_checked_on_read_and_swept_when_unnamed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EvidenceStore::open(dir.path().join("evidence")).expect("open");
        let a = store.put(b"evidence a").expect("put").expect("kept");
        assert_eq!(a, EvidenceRef::of(b"evidence a"));
        assert_eq!(store.put(b"evidence a").expect("again"), Some(a));
        let b = store.put(b"evidence b").expect("put").expect("kept");
        assert_eq!(
            store.get(&a.hash).expect("get").as_deref(),
            Some(&b"evidence a"[..])
        );

        // A file that no longer matches its name is not served.
        fs::write(store.path(&b.hash), b"tampered").expect("tamper");
        assert_eq!(store.get(&b.hash).expect("get"), None);

        fs::write(store.dir().join(".incoming-left"), b"half").expect("leftover");
        let kept: HashSet<[u8; 32]> = [a.hash].into();
        assert_eq!(store.sweep(&kept).expect("sweep"), 2);
        assert_eq!(store.bytes_on_disk().expect("size"), 10);
        store.remove(&[a.hash, b.hash]).expect("remove");
        assert_eq!(store.get(&a.hash).expect("get"), None);
    }

    #[test]
    fn an_item_over_the_cap_is_not_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EvidenceStore::open(dir.path().to_owned()).expect("open");
        let big = vec![7u8; MAX_EVIDENCE_BYTES as usize + 1];
        assert_eq!(store.put(&big).expect("put"), None);
        assert_eq!(store.bytes_on_disk().expect("size"), 0);
    }
}
