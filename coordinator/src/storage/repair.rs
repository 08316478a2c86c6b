//! Repair: a blob with fewer holders than the copies it is kept at gets new ones. The coordinator
//! fetches the whole blob from a holder that is online, verifying it against the root as it arrives
//! (a bad holder is skipped for the next), stages it, and pushes it to workers with room that do not
//! hold it yet. Only verified copies count, and a holder offline longer than `holder_offline_grace`
//! stops counting: its blobs are copied elsewhere (it keeps its copy, and counts again once proven).
//! A hot blob (surge pricing, [`super::surge`]) is kept at `surge_extra_replicas` more copies while it
//! stays hot.
//!
//! Coordinators sharing a blob index claim each blob in it before repairing it ([`BlobIndex`]'s
//! `claim_repair`), for a lease longer than the repair, and release it when the repair ends: a blob
//! another coordinator is repairing is skipped, so two never fetch and push copies of one blob at once.
//!
//! [`BlobIndex`]: super::index::BlobIndex

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dualrig_proto::chunk_reader::ChunkReader;
use dualrig_proto::identity::PublicId;
use dualrig_proto::proof::slice::verified_reader;
use tracing::{debug, info, warn};

use super::BlobService;
use super::index::IndexedBlob;
use crate::metrics;

impl BlobService {
    /// Repairs whenever a fault or a lost blob asks for it, and once a challenge interval anyway (for
    /// blobs that waited on workers with room).
    pub async fn repair_forever(self: Arc<Self>) {
        loop {
            let _ = tokio::time::timeout(
                self.config.challenge_interval,
                self.repair_wanted.notified(),
            )
            .await;
            self.repair_pass().await;
        }
    }

    /// One pass over the index; returns the copies made.
    pub async fn repair_pass(&self) -> usize {
        let blobs = match self.index.call(|ix| ix.blobs()).await {
            Ok(blobs) => blobs,
            Err(e) => {
                warn!(error = %e, "cannot read the blob index; repair skipped");
                return 0;
            }
        };
        let mut made = 0;
        let mut hot = 0;
        for blob in &blobs {
            let live = self.live(&blob.holders);
            let mut wanted = blob.replicas as usize;
            if blob.replicas > 0 && self.multiplier_of(blob) > super::surge::UNIT_PPM {
                hot += 1;
                wanted += self.surge.rules().extra_replicas as usize;
            }
            if blob.replicas == 0 || live.len() >= wanted {
                continue;
            }
            if !self.claim_repair(blob).await {
                continue;
            }
            made += self.repair(blob, &live, wanted).await;
            self.release_repair(blob.root).await;
        }
        metrics::hot_blobs(hot);
        let blobs = self.index.call(|ix| ix.blobs()).await.unwrap_or(blobs);
        metrics::replication(
            blobs
                .iter()
                .filter(|b| b.replicas > 0)
                .map(|b| (b.holders.len(), b.replicas as usize)),
        );
        made
    }

    /// Claims `blob`'s repair for this coordinator; whether it may go ahead. Refused while another
    /// coordinator's claim lasts, and when the index cannot be reached (the next pass asks again).
    async fn claim_repair(&self, blob: &IndexedBlob) -> bool {
        let (root, claimant) = (blob.root, self.claimant);
        let lease = repair_lease(blob.size).as_secs();
        let claimed = self
            .index
            .call(move |ix| ix.claim_repair(&root, &claimant, now_unix(), lease))
            .await;
        match claimed {
            Ok(true) => true,
            Ok(false) => {
                debug!(blob = %hex::encode(root), "another coordinator is repairing it; skipped");
                false
            }
            Err(e) => {
                warn!(blob = %hex::encode(root), error = %e, "cannot claim its repair; skipped");
                false
            }
        }
    }

    /// Ends this coordinator's claim on `root`'s repair. Should the index fail, the claim ends with its
    /// lease.
    async fn release_repair(&self, root: [u8; 32]) {
        let claimant = self.claimant;
        if let Err(e) = self
            .index
            .call(move |ix| ix.release_repair(&root, &claimant))
            .await
        {
            warn!(blob = %hex::encode(root), error = %e, "cannot release its repair claim");
        }
    }

    /// Brings `blob` to `wanted` copies on top of `live`, its verified holders that still count.
    async fn repair(&self, blob: &IndexedBlob, live: &[PublicId], wanted: usize) -> usize {
        let root = hex::encode(blob.root);
        let mut known = blob.holders.clone();
        known.extend(blob.claims.iter().copied());
        if self
            .with_room(blob.size, &self.not_for(&blob.root, &known))
            .is_empty()
        {
            return 0;
        }
        // Any online holder may serve the copy: the bytes are verified against the root as they come.
        let sources: Vec<PublicId> = known
            .iter()
            .filter(|w| self.pool.commands(w).is_some())
            .copied()
            .collect();
        for source in sources {
            let staged = match self.fetch_verified(&source, blob).await {
                Ok(staged) => staged,
                Err(why) => {
                    warn!(blob = %root, source = %source.short(), %why, "cannot copy from this holder");
                    continue;
                }
            };
            let placed = self
                .place(&staged, &blob.root, blob.size, live, &known, wanted)
                .await;
            info!(blob = %root, copies = placed.len(), "blob repaired");
            metrics::repaired(placed.len());
            return placed.len();
        }
        0
    }

    /// The whole blob from `source`, verified against its root, in a staging file.
    async fn fetch_verified(
        &self,
        source: &PublicId,
        blob: &IndexedBlob,
    ) -> Result<tempfile::TempPath, String> {
        let mut fetch = self
            .links
            .fetch(&self.pool, source, &blob.root, (0, blob.size), None)
            .await?;
        let pieces = fetch.take_pieces();
        let scratch = self.config.scratch_dir();
        let (root, size) = (blake3::Hash::from_bytes(blob.root), blob.size);
        let staged = tokio::task::spawn_blocking(move || {
            let mut staged = tempfile::NamedTempFile::new_in(&scratch)
                .map_err(|e| format!("cannot stage a copy: {e}"))?;
            let mut verified = verified_reader(ChunkReader::new(pieces), &root, 0, size);
            let copied = std::io::copy(&mut verified, staged.as_file_mut())
                .map_err(|e| format!("the holder's bytes do not verify: {e}"))?;
            if copied != size {
                return Err(format!("the holder sent {copied} of {size} bytes"));
            }
            staged
                .as_file_mut()
                .flush()
                .and_then(|()| staged.as_file().sync_all())
                .map_err(|e| format!("cannot stage a copy: {e}"))?;
            Ok(staged.into_temp_path())
        })
        .await
        .map_err(|e| format!("copy task failed: {e}"))?;
        drop(fetch);
        staged
    }
}

/// How long a repair claim lasts: ten minutes, plus three times what a push of the blob is given
/// (`push_timeout`, at 4 MiB/s), so it outlasts one repair (a fetch and a round or two of pushes) of a
/// blob of any size. A repair that runs past it anyway may be started again by another coordinator:
/// extra copies, never fewer.
fn repair_lease(size: u64) -> Duration {
    Duration::from_secs(600) + 3 * super::push_timeout(size)
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use dualrig_proto::identity::Identity;
    use dualrig_proto::v1::{Capabilities, worker_command};

    use super::*;
    use crate::config::Config;
    use crate::evidence::EvidenceStore;
    use crate::ledger::{Genesis, Ledger, LedgerConfig, SlashFraction};
    use crate::pool::{CommandReceiver, WorkerPool};
    use crate::slashing::{EvidenceKeeping, Slasher};
    use crate::storage::index::Claimant;

    /// A blob service over a fresh index (SQLite in `dir`, or a schema on the test PostgreSQL server).
    fn service(dir: &std::path::Path) -> BlobService {
        let mut config = Config::local(dir.to_path_buf());
        config.database_url = crate::db::test_postgres()
            .map(|url| crate::db::postgres::fresh_schema(&url, "repair").expect("test schema"));
        let ledger = Arc::new(
            Ledger::open_in_memory(LedgerConfig::default(), &Genesis::empty()).expect("ledger"),
        );
        let pool = Arc::new(WorkerPool::new(0));
        let evidence = Arc::new(EvidenceStore::open(config.evidence_dir()).expect("evidence"));
        let keeping = EvidenceKeeping {
            max_bytes: 1 << 20,
            retention: Duration::from_secs(3600),
        };
        let slasher = Arc::new(Slasher::new(
            Arc::clone(&ledger),
            Arc::clone(&pool),
            SlashFraction::DEFAULT,
            evidence,
            keeping,
        ));
        BlobService::open(Arc::new(config), pool, slasher, ledger).expect("blob service")
    }

    /// Attaches worker `n` as if through a link, and returns its id and its command queue.
    fn attach(service: &BlobService, n: u8) -> (PublicId, CommandReceiver) {
        let id = Identity::from_secret([n; 32]).id();
        let via = Identity::from_secret([0xC0; 32]).id();
        let (_, queues) = service
            .pool
            .attach_remote(id, Capabilities::default(), None, via)
            .expect("attached");
        (id, queues.bulk)
    }

    fn fetches(queue: &mut CommandReceiver) -> usize {
        std::iter::from_fn(|| queue.try_recv().ok())
            .filter(|c| {
                matches!(
                    c.as_ref().map(|c| c.command.as_ref()),
                    Ok(Some(worker_command::Command::Fetch(_)))
                )
            })
            .count()
    }

    #[tokio::test]
    async fn a_pass_skips_a_blob_another_coordinator_is_repairing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let service = service(dir.path());
        let index = service.index();
        let (holder, mut holder_queue) = attach(&service, 1);
        let (spare, _spare_queue) = attach(&service, 2);
        service.set_room(spare, 1 << 20, 1 << 20);
        let root = [5; 32];
        index.add_blob(&root, 1_000, 2).expect("add");
        index.add_holder(&root, &holder).expect("holder");

        // Another coordinator's claim, for as long as the index can say.
        let other = Claimant::random();
        assert!(
            index
                .claim_repair(&root, &other, 0, u64::MAX)
                .expect("claim")
        );
        assert_eq!(service.repair_pass().await, 0);
        assert_eq!(
            fetches(&mut holder_queue),
            0,
            "the holder was asked for a copy"
        );
        assert_eq!(
            index.repair_claim(&root).expect("read").map(|c| c.owner),
            Some(other)
        );

        // Released, the blob is this pass's: it fetches from the holder (the copy then stops at staging,
        // as the data dir has no scratch folder) and releases its own claim when the repair ends.
        index.release_repair(&root, &other).expect("release");
        assert_eq!(service.repair_pass().await, 0);
        assert_eq!(fetches(&mut holder_queue), 1);
        assert_eq!(index.repair_claim(&root).expect("read"), None);
    }
}
