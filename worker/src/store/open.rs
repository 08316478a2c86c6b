//! Rebuilding the store's index from its directory: every `<hex root>` file with a matching
//! `<hex root>.obao` beside it is a blob; anything else of ours is deleted and reported.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

use dualrig_proto::proof::{OUTBOARD_HEADER_LEN, outboard_len};

use super::{StoreError, remove_if_present};

/// File extension of outboards.
pub(super) const OUTBOARD_EXT: &str = "obao";

/// A blob (or an orphan outboard) that opening the store deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedBlob {
    /// The blob id the files were named after.
    pub root: blake3::Hash,
    pub reason: DropReason,
}

/// Why a blob found on disk was not kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    #[error("its outboard is missing")]
    OutboardMissing,
    #[error("its outboard cannot be read: {0}")]
    OutboardUnreadable(String),
    #[error(
        "its outboard is {actual} bytes; its header describes {described} bytes of content, which need {expected}"
    )]
    OutboardSize {
        described: u64,
        expected: u64,
        actual: u64,
    },
    #[error("the blob is {blob} bytes but its outboard describes {described}")]
    LengthMismatch { blob: u64, described: u64 },
    #[error("an outboard without its blob (an interrupted write)")]
    OrphanOutboard,
}

/// What a directory scan found.
pub(super) struct Scan {
    pub blobs: BTreeMap<[u8; 32], u64>,
    pub dropped: Vec<DroppedBlob>,
}

/// Reads the blobs directory. Files whose names are not ours (not a lowercase hex root, with or
/// without `.obao`) are left alone.
pub(super) fn scan(blobs_dir: &Path) -> Result<Scan, StoreError> {
    let mut scan = Scan {
        blobs: BTreeMap::new(),
        dropped: Vec::new(),
    };
    let entries = fs::read_dir(blobs_dir).map_err(StoreError::io("list", blobs_dir))?;
    let mut outboards = Vec::new();
    for entry in entries {
        let entry = entry.map_err(StoreError::io("list", blobs_dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        if let Some(stem) = name.strip_suffix(&format!(".{OUTBOARD_EXT}")) {
            if let Some(root) = parse_root(stem) {
                outboards.push((root, path));
            }
            continue;
        }
        let Some(root) = parse_root(name) else {
            continue;
        };
        let meta = entry.metadata().map_err(StoreError::io("inspect", &path))?;
        if !meta.is_file() {
            continue;
        }
        let outboard_path = blobs_dir.join(format!("{name}.{OUTBOARD_EXT}"));
        match check_outboard(&outboard_path, meta.len()) {
            Ok(()) => {
                scan.blobs.insert(*root.as_bytes(), meta.len());
            }
            Err(reason) => {
                remove_if_present(&path)?;
                remove_if_present(&outboard_path)?;
                scan.dropped.push(DroppedBlob { root, reason });
            }
        }
    }
    // Outboards last, once every blob has been kept or dropped (with its outboard).
    for (root, path) in outboards {
        if !scan.blobs.contains_key(root.as_bytes()) && path.exists() {
            remove_if_present(&path)?;
            scan.dropped.push(DroppedBlob {
                root,
                reason: DropReason::OrphanOutboard,
            });
        }
    }
    Ok(scan)
}

/// A blob id written the way the store names files (lowercase hex), or `None`.
fn parse_root(name: &str) -> Option<blake3::Hash> {
    let root = blake3::Hash::from_hex(name).ok()?;
    (root.to_hex().as_str() == name).then_some(root)
}

/// Checks that the outboard at `path` describes a blob of `blob_len` bytes and has the size that
/// length needs.
fn check_outboard(path: &Path, blob_len: u64) -> Result<(), DropReason> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(DropReason::OutboardMissing),
        Err(e) => return Err(DropReason::OutboardUnreadable(e.to_string())),
    };
    let actual = file
        .metadata()
        .map_err(|e| DropReason::OutboardUnreadable(e.to_string()))?
        .len();
    let mut header = [0u8; OUTBOARD_HEADER_LEN];
    file.read_exact(&mut header)
        .map_err(|e| DropReason::OutboardUnreadable(e.to_string()))?;
    let described = u64::from_le_bytes(header);
    if described != blob_len {
        return Err(DropReason::LengthMismatch {
            blob: blob_len,
            described,
        });
    }
    let expected = outboard_len(described);
    if actual != expected {
        return Err(DropReason::OutboardSize {
            described,
            expected,
            actual,
        });
    }
    Ok(())
}
