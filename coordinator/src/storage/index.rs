//! The blob index: which blobs the network keeps, how many copies of each it maintains, who holds
//! them, which coordinator is repairing which blob, and every storage fault with its evidence. SQLite
//! in the data dir (`blobs.db`, WAL, synchronous=FULL), so a restarted coordinator knows what it knew;
//! workers' full reports on attach reconcile it with what they really hold.

use std::path::Path;
use std::sync::Arc;

use crate::db::{Backend, Connection, DbError, DbFailure, OptionalExtension, Store, params};
use dualrig_proto::identity::PublicId;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("blob index: {0}")]
    Db(#[from] DbError),
    #[error("blob index task failed: {0}")]
    Task(String),
    #[error("blob index holds a malformed {what}")]
    Corrupt { what: &'static str },
}

/// Most blobs one worker may claim to hold beyond the copies placed on it (claims are challenged, so
/// each costs rows and proofs).
pub const MAX_CLAIMS_PER_WORKER: usize = 4096;

/// One blob as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedBlob {
    pub root: [u8; 32],
    pub size: u64,
    /// Copies the coordinator keeps; 0 for blobs a worker hosts of its own accord.
    pub replicas: u32,
    /// Verified copies: placed here and acknowledged, or proven in a challenge. Only these count.
    pub holders: Vec<PublicId>,
    /// Workers that report the blob but have not shown they hold it: challenged, never counted.
    pub claims: Vec<PublicId>,
}

/// A storage fault as recorded.
#[derive(Debug, Clone)]
pub struct FaultRecord {
    pub root: [u8; 32],
    pub worker: PublicId,
    pub kind: String,
    pub round: u64,
    /// The BLAKE3 hash of the encoded `SlashEvidence`: its name in the evidence store (the slash's
    /// `evidence_hash` in ListSlashes).
    pub evidence: Vec<u8>,
}

#[derive(Debug)]
pub struct BlobIndex {
    store: Store,
}

impl From<rusqlite::Error> for IndexError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Db(e.into())
    }
}

impl DbFailure for IndexError {
    fn db_error(&self) -> Option<&DbError> {
        match self {
            Self::Db(e) => Some(e),
            _ => None,
        }
    }
}

/// The index's tables, in SQLite's terms (PostgreSQL reads them through `db::postgres::ddl`).
const TABLES: &str = "
CREATE TABLE IF NOT EXISTS blobs (
    root BLOB PRIMARY KEY,
    size INTEGER NOT NULL,
    replicas INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS holders (
    root BLOB NOT NULL REFERENCES blobs(root),
    worker BLOB NOT NULL,
    PRIMARY KEY (root, worker)
);
CREATE INDEX IF NOT EXISTS holders_by_worker ON holders(worker);
CREATE TABLE IF NOT EXISTS holder_checks (
    root BLOB NOT NULL,
    worker BLOB NOT NULL,
    PRIMARY KEY (root, worker)
);
CREATE TABLE IF NOT EXISTS blob_collectives (
    root BLOB PRIMARY KEY,
    collective TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS faults (
    id INTEGER PRIMARY KEY,
    root BLOB NOT NULL,
    worker BLOB NOT NULL,
    kind TEXT NOT NULL,
    round INTEGER NOT NULL,
    evidence BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS repair_claims (
    root BLOB PRIMARY KEY,
    owner BLOB NOT NULL,
    expires_unix INTEGER NOT NULL
);
";

/// Who holds a repair claim: a token each coordinator process draws when it starts, so coordinators
/// sharing the index (and a coordinator and its own earlier run) never hold a claim for one another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Claimant([u8; 16]);

impl Claimant {
    pub fn random() -> Self {
        Self(rand::random())
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

/// A blob's repair claim as the index holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepairClaim {
    pub owner: Claimant,
    /// Seconds since the epoch from which anyone may claim the blob again.
    pub expires_unix: u64,
}

/// The claim's first step: the candidate blob's row. On PostgreSQL it is locked for the claim's
/// transaction, and a row another coordinator's transaction holds locked is skipped (the claim is
/// refused at once, with no wait and no serialization retry). SQLite has one writer at a time, so the
/// plain read decides the same.
fn claim_candidate(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "SELECT root FROM blobs WHERE root = ?1",
        Backend::Postgres => "SELECT root FROM blobs WHERE root = ?1 FOR UPDATE SKIP LOCKED",
    }
}

/// PostgreSQL has no `rowid`: the order copies were verified in is a column of its own there.
const POSTGRES_VERIFIED_ORDER: &str =
    "ALTER TABLE holder_checks ADD COLUMN IF NOT EXISTS seq BIGINT GENERATED ALWAYS AS IDENTITY;";

fn root_of(bytes: Vec<u8>) -> Result<[u8; 32], IndexError> {
    bytes
        .try_into()
        .map_err(|_| IndexError::Corrupt { what: "root" })
}

fn worker_of(bytes: &[u8]) -> Result<PublicId, IndexError> {
    PublicId::from_slice("worker", bytes).map_err(|_| IndexError::Corrupt { what: "worker id" })
}

impl BlobIndex {
    pub fn open(path: &Path) -> Result<Self, IndexError> {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(TABLES)?;
        Ok(Self {
            store: Store::sqlite(conn),
        })
    }

    /// The index in the PostgreSQL database at `url`, shared by every coordinator that opens it.
    pub fn open_postgres(url: &str) -> Result<Self, IndexError> {
        let store = Store::postgres(url)?;
        store.exclusive(|| {
            store.write(|conn| {
                conn.execute_batch(&crate::db::postgres::ddl(TABLES))?;
                conn.execute_batch(POSTGRES_VERIFIED_ORDER)
            })
        })?;
        Ok(Self { store })
    }

    /// Which database holds the index.
    pub fn backend(&self) -> Backend {
        self.store.backend()
    }

    /// A copy counts toward a blob's replicas once it is *verified*: placed by this coordinator and
    /// acknowledged by the worker after hashing, or proven since in a challenge. `holder_checks` lists
    /// the verified (root, worker) pairs; a holder that is not there is only a claim.
    fn verified_of(conn: &Connection, root: &[u8; 32]) -> Result<Vec<PublicId>, IndexError> {
        let mut stmt = conn.prepare_cached(
            "SELECT h.worker FROM holders h JOIN holder_checks c
             ON c.root = h.root AND c.worker = h.worker WHERE h.root = ?1 ORDER BY h.worker",
        )?;
        let rows = stmt
            .query_map(params![&root[..]], |r| r.get::<_, Vec<u8>>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        rows.iter().map(|w| worker_of(w)).collect()
    }

    /// Runs `f` on a blocking thread, for async callers.
    pub async fn call<T, F>(self: &Arc<Self>, f: F) -> Result<T, IndexError>
    where
        F: FnOnce(&BlobIndex) -> Result<T, IndexError> + Send + 'static,
        T: Send + 'static,
    {
        let index = Arc::clone(self);
        tokio::task::spawn_blocking(move || f(&index))
            .await
            .map_err(|e| IndexError::Task(e.to_string()))?
    }

    /// The blob `root`, if the index knows it.
    pub fn blob(&self, root: &[u8; 32]) -> Result<Option<IndexedBlob>, IndexError> {
        self.store.read(|conn| {
            let found: Option<(i64, i64)> = conn
                .query_row(
                    "SELECT size, replicas FROM blobs WHERE root = ?1",
                    params![&root[..]],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((size, replicas)) = found else {
                return Ok(None);
            };
            Ok(Some(IndexedBlob {
                root: *root,
                size: size as u64,
                replicas: replicas as u32,
                holders: Self::verified_of(conn, root)?,
                claims: claims_of(conn, root)?,
            }))
        })
    }

    /// `root`'s kept copy count and its verified holders in the order they were verified (placed and
    /// acknowledged, or first proven), for the hosting payout; `None` for an unknown blob.
    pub fn earning_order(
        &self,
        root: &[u8; 32],
    ) -> Result<Option<(u32, Vec<PublicId>)>, IndexError> {
        self.store.read(|conn| {
            let replicas: Option<i64> = conn
                .query_row(
                    "SELECT replicas FROM blobs WHERE root = ?1",
                    params![&root[..]],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(replicas) = replicas else {
                return Ok(None);
            };
            let mut stmt = conn.prepare_cached(match conn.backend() {
                Backend::Sqlite => {
                    "SELECT h.worker FROM holders h JOIN holder_checks c
                 ON c.root = h.root AND c.worker = h.worker WHERE h.root = ?1 ORDER BY c.rowid"
                }
                Backend::Postgres => {
                    "SELECT h.worker FROM holders h JOIN holder_checks c
                 ON c.root = h.root AND c.worker = h.worker WHERE h.root = ?1 ORDER BY c.seq"
                }
            })?;
            let rows = stmt
                .query_map(params![&root[..]], |r| r.get::<_, Vec<u8>>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            let holders = rows
                .iter()
                .map(|w| worker_of(w))
                .collect::<Result<_, _>>()?;
            Ok(Some((u32::try_from(replicas).unwrap_or(0), holders)))
        })
    }

    /// Every blob, ordered by root.
    pub fn blobs(&self) -> Result<Vec<IndexedBlob>, IndexError> {
        self.blobs_page(None, usize::MAX)
    }

    /// At most `limit` blobs with roots after `after`, in root order: a page of [`Self::blobs`].
    pub fn blobs_page(
        &self,
        after: Option<&[u8; 32]>,
        limit: usize,
    ) -> Result<Vec<IndexedBlob>, IndexError> {
        self.store.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT root, size, replicas FROM blobs WHERE root > ?1 ORDER BY root LIMIT ?2",
            )?;
            let after: &[u8] = after.map_or(&[], |a| &a[..]);
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = stmt
                .query_map(params![after, limit], |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(root, size, replicas)| {
                    let root = root_of(root)?;
                    Ok(IndexedBlob {
                        holders: Self::verified_of(conn, &root)?,
                        claims: claims_of(conn, &root)?,
                        root,
                        size: size as u64,
                        replicas: replicas as u32,
                    })
                })
                .collect()
        })
    }

    /// The blobs `worker` holds, with their sizes.
    pub fn held_by(&self, worker: &PublicId) -> Result<Vec<([u8; 32], u64)>, IndexError> {
        self.store.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT b.root, b.size FROM holders h JOIN blobs b ON b.root = h.root
             WHERE h.worker = ?1 ORDER BY b.root",
            )?;
            let rows = stmt
                .query_map(params![worker.as_bytes().as_slice()], |r| {
                    Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(root, size)| Ok((root_of(root)?, size as u64)))
                .collect()
        })
    }

    /// Records a blob the network keeps `replicas` copies of (raising an existing blob's count).
    pub fn add_blob(&self, root: &[u8; 32], size: u64, replicas: u32) -> Result<(), IndexError> {
        self.store.write(|conn| {
            conn.execute(
                "INSERT INTO blobs (root, size, replicas) VALUES (?1, ?2, ?3)
                 ON CONFLICT (root) DO UPDATE SET replicas = CASE
                     WHEN excluded.replicas > blobs.replicas THEN excluded.replicas
                     ELSE blobs.replicas END",
                params![&root[..], size as i64, replicas],
            )
        })?;
        Ok(())
    }

    /// Forgets a blob nobody holds (a Put that stored no copy).
    pub fn drop_if_unheld(&self, root: &[u8; 32]) -> Result<(), IndexError> {
        self.store.write(|conn| {
            let dropped = conn.execute(
                "DELETE FROM blobs WHERE root = ?1
             AND NOT EXISTS (SELECT 1 FROM holders WHERE root = ?1)",
                params![&root[..]],
            )?;
            if dropped > 0 {
                conn.execute(
                    "DELETE FROM blob_collectives WHERE root = ?1",
                    params![&root[..]],
                )?;
                conn.execute(
                    "DELETE FROM repair_claims WHERE root = ?1",
                    params![&root[..]],
                )?;
            }
            Ok(())
        })
    }

    /// Claims the repair of `root` for `claimant` until `now_unix + lease_secs`, unless another
    /// claimant's claim on it lasts past `now_unix`; renews `claimant`'s own. Whether it now holds the
    /// claim: `false` also for a blob the index does not know, or, on PostgreSQL, one whose row another
    /// coordinator holds locked at this instant (its claim is being taken; the next pass asks again).
    pub fn claim_repair(
        &self,
        root: &[u8; 32],
        claimant: &Claimant,
        now_unix: u64,
        lease_secs: u64,
    ) -> Result<bool, IndexError> {
        let now = i64::try_from(now_unix).unwrap_or(i64::MAX);
        let expires = i64::try_from(now_unix.saturating_add(lease_secs)).unwrap_or(i64::MAX);
        self.store.write(|tx| {
            if !tx
                .prepare_cached(claim_candidate(tx.backend()))?
                .exists(params![&root[..]])?
            {
                return Ok(false);
            }
            let granted = tx.execute(
                "INSERT INTO repair_claims (root, owner, expires_unix) VALUES (?1, ?2, ?3)
                 ON CONFLICT (root) DO UPDATE SET owner = excluded.owner,
                     expires_unix = excluded.expires_unix
                 WHERE repair_claims.owner = excluded.owner OR repair_claims.expires_unix <= ?4",
                params![&root[..], &claimant.0[..], expires, now],
            )?;
            Ok(granted > 0)
        })
    }

    /// Ends `claimant`'s claim on `root`, whatever the repair came to; another's claim is left alone.
    pub fn release_repair(&self, root: &[u8; 32], claimant: &Claimant) -> Result<(), IndexError> {
        self.store.write(|tx| {
            tx.execute(
                "DELETE FROM repair_claims WHERE root = ?1 AND owner = ?2",
                params![&root[..], &claimant.0[..]],
            )
        })?;
        Ok(())
    }

    /// The claim recorded on `root`, expired or not.
    pub fn repair_claim(&self, root: &[u8; 32]) -> Result<Option<RepairClaim>, IndexError> {
        let found: Option<(Vec<u8>, i64)> = self.store.read(|conn| {
            conn.query_row(
                "SELECT owner, expires_unix FROM repair_claims WHERE root = ?1",
                params![&root[..]],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })?;
        found
            .map(|(owner, expires)| {
                Ok(RepairClaim {
                    owner: Claimant(owner.try_into().map_err(|_| IndexError::Corrupt {
                        what: "repair claimant",
                    })?),
                    expires_unix: u64::try_from(expires).map_err(|_| IndexError::Corrupt {
                        what: "repair claim expiry",
                    })?,
                })
            })
            .transpose()
    }

    /// The collective `root` was stored for, if any: its Gets are gated by that collective's rule.
    pub fn collective_of(&self, root: &[u8; 32]) -> Result<Option<String>, IndexError> {
        Ok(self.store.read(|conn| {
            conn.query_row(
                "SELECT collective FROM blob_collectives WHERE root = ?1",
                params![&root[..]],
                |r| r.get(0),
            )
            .optional()
        })?)
    }

    /// Records that `root` is stored for collective `name`. A blob keeps the first collective it was
    /// stored for.
    pub fn set_collective(&self, root: &[u8; 32], name: &str) -> Result<(), IndexError> {
        self.store.write(|conn| {
            conn.execute(
                "INSERT INTO blob_collectives (root, collective) VALUES (?1, ?2)
                 ON CONFLICT DO NOTHING",
                params![&root[..], name],
            )
        })?;
        Ok(())
    }

    /// Records a verified copy: one this coordinator placed and the worker acknowledged after hashing,
    /// or one the worker just proved in a challenge.
    pub fn add_holder(&self, root: &[u8; 32], worker: &PublicId) -> Result<(), IndexError> {
        self.store.write(|tx| {
            let w = worker.as_bytes().as_slice();
            tx.execute(
                "INSERT INTO holders (root, worker) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![&root[..], w],
            )?;
            tx.execute(
                "INSERT INTO holder_checks (root, worker) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![&root[..], w],
            )?;
            Ok(())
        })
    }

    /// A Put's size is the one its bytes hashed to. A blob nobody put before (known from claims only)
    /// takes that size, and claims made under another size are dropped; a blob that was put keeps its.
    pub fn settle_size(&self, root: &[u8; 32], size: u64) -> Result<(), IndexError> {
        self.store.write(|tx| {
        let changed = tx.execute(
            "UPDATE blobs SET size = ?2 WHERE root = ?1 AND size != ?2 AND replicas = 0",
            params![&root[..], size as i64],
        )?;
        if changed > 0 {
            tx.execute(
                "DELETE FROM holders WHERE root = ?1 AND NOT EXISTS (
                     SELECT 1 FROM holder_checks c WHERE c.root = ?1 AND c.worker = holders.worker)",
                params![&root[..]],
            )?;
        }
        Ok(())
        })
    }

    /// Removes `worker` as a holder of `root`; returns whether it was one.
    pub fn remove_holder(&self, root: &[u8; 32], worker: &PublicId) -> Result<bool, IndexError> {
        self.store.write(|tx| {
            let was = forget_holder(tx, root, worker.as_bytes())?;
            Ok(was)
        })
    }

    /// Applies a worker's report: blobs it added (recorded, with 0 maintained copies, when the index
    /// did not know them; ignored when their size contradicts the index) and removed, or with `full`,
    /// makes the reported set its whole holding. New claims beyond [`MAX_CLAIMS_PER_WORKER`], or whose
    /// sizes add up past `capacity` (what the worker says it has room for), are not recorded. Returns
    /// the roots it stopped holding.
    pub fn apply_report(
        &self,
        worker: &PublicId,
        full: bool,
        added: &[([u8; 32], u64)],
        removed: &[[u8; 32]],
        capacity: u64,
    ) -> Result<Vec<[u8; 32]>, IndexError> {
        self.store.write(|tx| {
        let w = worker.as_bytes().as_slice();
        let mut lost = Vec::new();
        if full {
            let mut stmt = tx.prepare_cached("SELECT root FROM holders WHERE worker = ?1")?;
            let held = stmt
                .query_map(params![w], |r| r.get::<_, Vec<u8>>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            for root in held {
                let root = root_of(root)?;
                if !added.iter().any(|(r, _)| *r == root) {
                    lost.push(root);
                }
            }
        }
        lost.extend(removed.iter().copied());
        for root in &lost {
            forget_holder(tx, root, w)?;
        }
        let (mut claims, mut claimed): (i64, i64) = tx.query_row(
            "SELECT COUNT(*), CAST(COALESCE(SUM(b.size), 0) AS BIGINT) FROM holders h JOIN blobs b ON b.root = h.root
             WHERE h.worker = ?1 AND NOT EXISTS (
                 SELECT 1 FROM holder_checks c WHERE c.root = h.root AND c.worker = h.worker)",
            params![w],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        for (root, size) in added {
            let held: bool = tx
                .query_row(
                    "SELECT 1 FROM holders WHERE root = ?1 AND worker = ?2",
                    params![&root[..], w],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if held {
                continue;
            }
            // A claim costs the network a row and challenges; a worker gets a bounded number of them,
            // within the room it says it has.
            if claims >= MAX_CLAIMS_PER_WORKER as i64
                || (claimed as u64).saturating_add(*size) > capacity
            {
                continue;
            }
            claims += 1;
            claimed = claimed.saturating_add(*size as i64);
            tx.execute(
                "INSERT INTO blobs (root, size, replicas) VALUES (?1, ?2, 0) ON CONFLICT DO NOTHING",
                params![&root[..], *size as i64],
            )?;
            tx.execute(
                "INSERT INTO holders (root, worker)
                 SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM blobs WHERE root = ?1 AND size = ?3)
                 ON CONFLICT DO NOTHING",
                params![&root[..], w, *size as i64],
            )?;
        }
        Ok(lost)
        })
    }

    pub fn record_fault(&self, fault: &FaultRecord) -> Result<(), IndexError> {
        self.store.write(|conn| {
            conn.execute(
                "INSERT INTO faults (root, worker, kind, round, evidence) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    &fault.root[..],
                    fault.worker.as_bytes().as_slice(),
                    fault.kind,
                    fault.round as i64,
                    fault.evidence
                ],
            )
        })?;
        Ok(())
    }

    /// Every recorded fault, oldest first.
    pub fn faults(&self) -> Result<Vec<FaultRecord>, IndexError> {
        self.store.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT root, worker, kind, round, evidence FROM faults ORDER BY id",
            )?;
            let rows = stmt
                .query_map(params![], |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Vec<u8>>(4)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(root, worker, kind, round, evidence)| {
                    Ok(FaultRecord {
                        root: root_of(root)?,
                        worker: worker_of(&worker)?,
                        kind,
                        round: round as u64,
                        evidence,
                    })
                })
                .collect()
        })
    }
}

/// Drops `worker` as a holder of `root`, with its verification; returns whether it was one.
fn forget_holder(conn: &Connection, root: &[u8; 32], worker: &[u8]) -> Result<bool, IndexError> {
    let n = conn.execute(
        "DELETE FROM holders WHERE root = ?1 AND worker = ?2",
        params![&root[..], worker],
    )?;
    conn.execute(
        "DELETE FROM holder_checks WHERE root = ?1 AND worker = ?2",
        params![&root[..], worker],
    )?;
    Ok(n > 0)
}

/// Holders of `root` that only claim it: they reported it, nobody placed it there, no challenge proved it.
fn claims_of(conn: &Connection, root: &[u8; 32]) -> Result<Vec<PublicId>, IndexError> {
    let mut stmt = conn.prepare_cached(
        "SELECT worker FROM holders WHERE root = ?1 AND NOT EXISTS (
             SELECT 1 FROM holder_checks c WHERE c.root = holders.root AND c.worker = holders.worker)
         ORDER BY worker",
    )?;
    let rows = stmt
        .query_map(params![&root[..]], |r| r.get::<_, Vec<u8>>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    rows.iter().map(|w| worker_of(w)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(n: u8) -> PublicId {
        dualrig_proto::identity::Identity::from_secret([n; 32]).id()
    }

    /// Where a test's index lives: a SQLite file in `dir`, or a fresh schema on the test PostgreSQL
    /// server (`DUALRIG_TEST_DATABASE_URL`).
    fn place(dir: &tempfile::TempDir) -> String {
        match crate::db::test_postgres() {
            Some(url) => crate::db::postgres::fresh_schema(&url, "index").expect("test schema"),
            None => dir.path().join("blobs.db").to_string_lossy().into_owned(),
        }
    }

    fn open(at: &str) -> BlobIndex {
        if at.starts_with("postgres://") {
            BlobIndex::open_postgres(at).expect("open")
        } else {
            BlobIndex::open(Path::new(at)).expect("open")
        }
    }

    #[test]
    fn reports_reconcile_holders_and_survive_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = place(&dir);
        let (a, b) = (worker(1), worker(2));
        {
            let index = open(&path);
            index.add_blob(&[1; 32], 100, 3).expect("add");
            index.add_holder(&[1; 32], &a).expect("holder");
            index.add_holder(&[1; 32], &b).expect("holder");
            // A full report without blob 1 and with an unknown blob 2.
            let lost = index
                .apply_report(&a, true, &[([2; 32], 7)], &[], u64::MAX)
                .expect("report");
            assert_eq!(lost, vec![[1; 32]]);
            // A size that contradicts the index is not believed.
            index
                .apply_report(&b, false, &[([2; 32], 8)], &[], u64::MAX)
                .expect("report");
        }
        let index = open(&path);
        let one = index.blob(&[1; 32]).expect("read").expect("known");
        assert_eq!((one.size, one.replicas, one.holders), (100, 3, vec![b]));
        // A reported blob is a claim: held, challenged, not counted.
        let two = index.blob(&[2; 32]).expect("read").expect("known");
        assert_eq!((two.size, two.replicas), (7, 0));
        assert_eq!((two.holders, two.claims.clone()), (vec![], vec![a]));
        assert_eq!(index.held_by(&a).expect("held"), vec![([2; 32], 7)]);
        assert!(index.remove_holder(&[1; 32], &b).expect("remove"));
        index.drop_if_unheld(&[1; 32]).expect("drop");
        assert!(index.blob(&[1; 32]).expect("read").is_none());
        // A proven claim counts; a Put's size replaces a claimed one, dropping the claims under it.
        index.add_holder(&[2; 32], &a).expect("proven");
        assert_eq!(
            index.blob(&[2; 32]).expect("read").expect("known").holders,
            vec![a]
        );
        index
            .apply_report(&b, false, &[([3; 32], 5)], &[], u64::MAX)
            .expect("claim");
        index.settle_size(&[3; 32], 6).expect("settle");
        let three = index.blob(&[3; 32]).expect("read").expect("known");
        assert_eq!((three.size, three.claims), (6, vec![]));
    }

    /// Two coordinators over one index: a claim holds the other off while its lease lasts, to the
    /// last second, and no longer; a release frees the blob at once; only the holder renews or
    /// releases it.
    #[test]
    fn a_repair_claim_holds_off_another_coordinator_until_it_expires_or_is_released() {
        let dir = tempfile::tempdir().expect("tempdir");
        let at = place(&dir);
        let (here, there) = (open(&at), open(&at));
        let (me, other) = (Claimant::random(), Claimant::random());
        let x = [7; 32];
        here.add_blob(&x, 100, 3).expect("add");
        assert!(
            !here.claim_repair(&[8; 32], &me, 1_000, 600).expect("claim"),
            "a blob the index does not know is not claimed"
        );

        assert!(here.claim_repair(&x, &me, 1_000, 600).expect("claim"));
        let claim = RepairClaim {
            owner: me,
            expires_unix: 1_600,
        };
        assert_eq!(there.repair_claim(&x).expect("read"), Some(claim));
        for now in [1_000, 1_599] {
            assert!(
                !there.claim_repair(&x, &other, now, 600).expect("claim"),
                "refused at {now}, within the lease"
            );
        }
        assert_eq!(there.repair_claim(&x).expect("read"), Some(claim));
        assert!(there.claim_repair(&x, &other, 1_600, 600).expect("claim"));
        assert!(
            !here.claim_repair(&x, &me, 1_700, 600).expect("claim"),
            "the first holder lost it with its lease"
        );

        // A release by someone else leaves the claim; its holder's frees the blob at once.
        here.release_repair(&x, &me).expect("release");
        assert_eq!(
            here.repair_claim(&x).expect("read").map(|c| c.owner),
            Some(other)
        );
        there.release_repair(&x, &other).expect("release");
        assert_eq!(here.repair_claim(&x).expect("read"), None);
        assert!(here.claim_repair(&x, &me, 1_700, 600).expect("claim"));
        // Its holder renews it.
        assert!(here.claim_repair(&x, &me, 1_800, 600).expect("claim"));
        assert_eq!(
            there
                .repair_claim(&x)
                .expect("read")
                .map(|c| c.expires_unix),
            Some(2_400)
        );
        // A blob dropped from the index takes its claim with it.
        here.drop_if_unheld(&x).expect("drop");
        assert_eq!(there.repair_claim(&x).expect("read"), None);
    }

    /// Coordinators claiming one blob at the same instant, each on its own connection: one gets it.
    #[test]
    fn coordinators_claiming_one_blob_at_once_get_it_once() {
        const RACERS: usize = 8;
        let dir = tempfile::tempdir().expect("tempdir");
        let at = place(&dir);
        open(&at).add_blob(&[9; 32], 100, 3).expect("add");
        let barrier = std::sync::Barrier::new(RACERS);
        let granted = std::thread::scope(|s| {
            let racers: Vec<_> = (0..RACERS)
                .map(|_| {
                    let (index, barrier) = (open(&at), &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        index
                            .claim_repair(&[9; 32], &Claimant::random(), 1_000, 600)
                            .expect("claim")
                    })
                })
                .collect();
            racers
                .into_iter()
                .map(|r| r.join().expect("racer"))
                .filter(|granted| *granted)
                .count()
        });
        assert_eq!(granted, 1);
    }

    #[test]
    fn claims_are_bounded_by_count_and_by_the_room_a_worker_declares() {
        let dir = tempfile::tempdir().expect("tempdir");
        let index = open(&place(&dir));
        let sybil = worker(9);
        let flood: Vec<([u8; 32], u64)> = (0..MAX_CLAIMS_PER_WORKER as u32 + 500)
            .map(|i| (*blake3::hash(&i.to_le_bytes()).as_bytes(), 1))
            .collect();
        index
            .apply_report(&sybil, true, &flood, &[], u64::MAX)
            .expect("report");
        assert_eq!(
            index.held_by(&sybil).expect("held").len(),
            MAX_CLAIMS_PER_WORKER
        );
        assert_eq!(index.blobs().expect("blobs").len(), MAX_CLAIMS_PER_WORKER);
        // Within the room it declares: 10 bytes of room, claims of 4 bytes each.
        let small = worker(10);
        let claims: Vec<([u8; 32], u64)> = (0..5u8).map(|i| ([i; 32], 4)).collect();
        index
            .apply_report(&small, true, &claims, &[], 10)
            .expect("report");
        assert_eq!(index.held_by(&small).expect("held").len(), 2);
        // A copy placed on it is not a claim and is not limited by them.
        index.add_blob(&[200; 32], 1000, 1).expect("blob");
        index.add_holder(&[200; 32], &small).expect("placed");
        assert_eq!(index.held_by(&small).expect("held").len(), 3);
    }
}
