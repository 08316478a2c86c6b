//! Repair: a blob with fewer holders than the copies it is kept at gets new ones. The coordinator
//! fetches the whole blob from a holder that is online, verifying it against the root as it arrives
//! (a bad holder is skipped for the next), stages it, and pushes it to workers with room that do not
//! hold it yet. Only verified copies count, and a holder offline longer than `holder_offline_grace`
//! stops counting: its blobs are copied elsewhere (it keeps its copy, and counts again once proven).
//! A hot blob (surge pricing, [`super::surge`]) is kept at `surge_extra_replicas` more copies while it
//! stays hot.

use std::io::Write;
use std::sync::Arc;

use dualrig_proto::chunk_reader::ChunkReader;
use dualrig_proto::identity::PublicId;
use dualrig_proto::proof::slice::verified_reader;
use tracing::{info, warn};

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
            made += self.repair(blob, &live, wanted).await;
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
