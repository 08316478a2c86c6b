//! Slash evidence kept outside the slash rows (PROTOCOL §4.3), so a ledger row stays a few hundred
//! bytes whatever the evidence weighs: each encoded `SlashEvidence` named by its BLAKE3 hash, either
//! in its own file under `DATA_DIR/evidence/` (one coordinator on SQLite) or in the database's
//! `slash_evidence` table (coordinators sharing PostgreSQL, so any of them serves every slash's
//! evidence). What is kept is bounded: an item over [`MAX_EVIDENCE_BYTES`] is not kept at all, and the
//! ledger decides which items to drop for age and room (`Ledger::prune_evidence`).
//!
//! In files, an item is written and synced before the slash that names it commits, so a committed
//! slash's evidence is on disk until the ledger drops it; a crash between the two leaves a file no
//! slash names, which [`EvidenceStore::sweep`] deletes at the next start. In the database, the slash's
//! own transaction writes the item (`Ledger::slash_keeping`) and the pruning transaction deletes it,
//! so neither outlives the other.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::ledger::Ledger;

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

/// Where the items are kept.
#[derive(Debug)]
enum Keeping {
    Files(PathBuf),
    Database(Arc<Ledger>),
}

#[derive(Debug)]
pub struct EvidenceStore {
    keeping: Keeping,
}

impl EvidenceStore {
    /// A store of files under `dir`.
    pub fn open(dir: PathBuf) -> io::Result<Self> {
        fs::create_dir_all(&dir)?;
        Ok(Self {
            keeping: Keeping::Files(dir),
        })
    }

    /// A store in `ledger`'s database.
    pub fn in_database(ledger: Arc<Ledger>) -> Self {
        Self {
            keeping: Keeping::Database(ledger),
        }
    }

    /// The ledger keeping the items, when they are kept in the database: the slash then writes its
    /// item itself, through [`Ledger::slash_keeping`].
    pub fn database(&self) -> Option<&Arc<Ledger>> {
        match &self.keeping {
            Keeping::Database(ledger) => Some(ledger),
            Keeping::Files(_) => None,
        }
    }

    /// Writes `bytes` under their hash and syncs it (a no-op when that item is already kept).
    /// `None` when the item is over [`MAX_EVIDENCE_BYTES`] and is not kept. In the database this only
    /// names the item: the slash's transaction writes it.
    pub fn put(&self, bytes: &[u8]) -> io::Result<Option<EvidenceRef>> {
        if bytes.len() as u64 > MAX_EVIDENCE_BYTES {
            return Ok(None);
        }
        let item = EvidenceRef::of(bytes);
        let Keeping::Files(dir) = &self.keeping else {
            return Ok(Some(item));
        };
        let path = file_of(dir, &item.hash);
        if path.exists() {
            return Ok(Some(item));
        }
        let mut staged = tempfile::Builder::new()
            .prefix(".incoming-")
            .tempfile_in(dir)?;
        staged.write_all(bytes)?;
        staged.as_file().sync_all()?;
        staged.persist(&path).map_err(|e| e.error)?;
        sync_dir(dir)?;
        Ok(Some(item))
    }

    /// The item named `hash`, checked against its name; `None` when it is not kept (or no longer
    /// matches its hash, which is logged).
    pub fn get(&self, hash: &[u8; 32]) -> io::Result<Option<Vec<u8>>> {
        let bytes = match &self.keeping {
            Keeping::Files(dir) => match fs::read(file_of(dir, hash)) {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            },
            Keeping::Database(ledger) => {
                match ledger.evidence_item(hash).map_err(io::Error::other)? {
                    Some(b) => b,
                    None => return Ok(None),
                }
            }
        };
        if blake3::hash(&bytes).as_bytes() != hash {
            tracing::error!(item = %hex::encode(hash), "kept slash evidence no longer matches its hash");
            return Ok(None);
        }
        Ok(Some(bytes))
    }

    /// Deletes the named items (those already gone are skipped). In the database the pruning
    /// transaction has deleted them already.
    pub fn remove(&self, hashes: &[[u8; 32]]) -> io::Result<()> {
        let Keeping::Files(dir) = &self.keeping else {
            return Ok(());
        };
        for hash in hashes {
            match fs::remove_file(file_of(dir, hash)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Deletes every item that is not one of `kept` (a crash's leftovers, half-written files; in the
    /// database, rows no kept slash names). Returns how many it deleted.
    pub fn sweep(&self, kept: &HashSet<[u8; 32]>) -> io::Result<usize> {
        let dir = match &self.keeping {
            Keeping::Files(dir) => dir,
            Keeping::Database(ledger) => {
                return ledger.sweep_evidence_items().map_err(io::Error::other);
            }
        };
        let mut deleted = 0;
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if file_hash(&entry.file_name()).is_none_or(|hash| !kept.contains(&hash)) {
                fs::remove_file(entry.path())?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Moves the items a kept slash names from files under `dir` (where an earlier version kept them)
    /// into the database, deleting each file once its item is committed there. Returns how many
    /// moved; files no kept slash names are left to that directory's owner.
    pub fn import_files(&self, dir: &Path, kept: &HashSet<[u8; 32]>) -> io::Result<usize> {
        let Keeping::Database(ledger) = &self.keeping else {
            return Ok(0);
        };
        if !dir.is_dir() {
            return Ok(0);
        }
        let files = Self::open(dir.to_owned())?;
        let mut moved = 0;
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let Some(hash) = file_hash(&entry.file_name()).filter(|h| kept.contains(h)) else {
                continue;
            };
            let Some(bytes) = files.get(&hash)? else {
                continue;
            };
            let written = entry
                .metadata()?
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            ledger
                .put_evidence_item(&hash, &bytes, written)
                .map_err(io::Error::other)?;
            fs::remove_file(entry.path())?;
            moved += 1;
        }
        Ok(moved)
    }

    /// Bytes of every item kept.
    pub fn bytes_kept(&self) -> io::Result<u64> {
        let dir = match &self.keeping {
            Keeping::Files(dir) => dir,
            Keeping::Database(ledger) => {
                return ledger.evidence_item_bytes().map_err(io::Error::other);
            }
        };
        let mut total = 0;
        for entry in fs::read_dir(dir)? {
            total += entry?.metadata()?.len();
        }
        Ok(total)
    }
}

fn file_of(dir: &Path, hash: &[u8; 32]) -> PathBuf {
    dir.join(hex::encode(hash))
}

/// The hash a file's name gives, when it is one.
fn file_hash(name: &std::ffi::OsStr) -> Option<[u8; 32]> {
    name.to_str()
        .and_then(|n| hex::decode(n).ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
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
        let files = dir.path().join("evidence");
        let store = EvidenceStore::open(files.clone()).expect("open");
        let a = store.put(b"evidence a").expect("put").expect("kept");
        assert_eq!(a, EvidenceRef::of(b"evidence a"));
        assert_eq!(store.put(b"evidence a").expect("again"), Some(a));
        let b = store.put(b"evidence b").expect("put").expect("kept");
        assert_eq!(
            store.get(&a.hash).expect("get").as_deref(),
            Some(&b"evidence a"[..])
        );

        // A file that no longer matches its name is not served.
        fs::write(file_of(&files, &b.hash), b"tampered").expect("tamper");
        assert_eq!(store.get(&b.hash).expect("get"), None);

        fs::write(files.join(".incoming-left"), b"half").expect("leftover");
        let kept: HashSet<[u8; 32]> = [a.hash].into();
        assert_eq!(store.sweep(&kept).expect("sweep"), 2);
        assert_eq!(store.bytes_kept().expect("size"), 10);
        store.remove(&[a.hash, b.hash]).expect("remove");
        assert_eq!(store.get(&a.hash).expect("get"), None);
    }

    #[test]
    fn items_in_files_move_into_the_database_when_a_kept_slash_names_them() {
        use crate::ledger::{Genesis, LedgerConfig, SlashFraction, SlashNote, StoredEvidence};

        let ledger = Arc::new(
            Ledger::open_in_memory(LedgerConfig::default(), &Genesis::empty()).expect("ledger"),
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let files = EvidenceStore::open(dir.path().to_owned()).expect("open");
        let named = files.put(b"named evidence").expect("put").expect("kept");
        let unnamed = files.put(b"nobody's").expect("put").expect("kept");
        let note = SlashNote {
            evidence: b"verdict",
            stored: Some(StoredEvidence {
                hash: named.hash,
                size: named.size,
                kept: true,
            }),
            at_unix: 5,
            forfeits_held_back: false,
        };
        let worker = dualrig_proto::identity::Identity::from_secret([3; 32]).id();
        ledger
            .slash_noted(&worker, SlashFraction::from_ppm(0).expect("ppm"), &note)
            .expect("slash");

        let shared = EvidenceStore::in_database(Arc::clone(&ledger));
        assert_eq!(shared.get(&named.hash).expect("get"), None, "not there yet");
        let kept = ledger.kept_evidence().expect("kept");
        assert_eq!(shared.import_files(dir.path(), &kept).expect("import"), 1);
        assert_eq!(
            shared.get(&named.hash).expect("get").as_deref(),
            Some(&b"named evidence"[..])
        );
        assert!(
            !file_of(dir.path(), &named.hash).exists(),
            "moved, not copied"
        );
        assert!(
            file_of(dir.path(), &unnamed.hash).exists(),
            "left where it was"
        );
        // A second start finds nothing more to move, and nothing to sweep.
        assert_eq!(shared.import_files(dir.path(), &kept).expect("import"), 0);
        assert_eq!(shared.sweep(&kept).expect("sweep"), 0);
        assert_eq!(shared.bytes_kept().expect("bytes"), named.size);
    }

    #[test]
    fn an_item_over_the_cap_is_not_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EvidenceStore::open(dir.path().to_owned()).expect("open");
        let big = vec![7u8; MAX_EVIDENCE_BYTES as usize + 1];
        assert_eq!(store.put(&big).expect("put"), None);
        assert_eq!(store.bytes_kept().expect("size"), 0);
    }
}
