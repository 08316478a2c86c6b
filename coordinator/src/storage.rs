//! Hosted blobs (PROTOCOL §6). Put stages the client's upload in the data dir while hashing it, checks it
//! against the root the client named, and pushes it to `replicas` distinct workers drawn by stake ×
//! score among those with room; Get streams a range from a holder as a bao slice that the client
//! verifies against the root, paid per byte through [`downloads`] when the holder charges; the
//! [`index`] remembers who holds what across restarts; [`challenge`]
//! rounds check that they still do, and [`repair`] brings a blob back to its copies after a holder
//! fails or loses it. Workers dial out, so every byte between clients and workers passes through here,
//! streamed: nothing holds a whole blob in memory.

mod access;
pub mod challenge;
pub mod downloads;
pub mod index;
pub mod links;
mod repair;
pub mod surge;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use dualrig_proto::identity::PublicId;
use dualrig_proto::v1::{
    BlobListing, DownloadQuoteRequest, DownloadQuoteResponse, GetChunk, GetHeader, GetRequest,
    ListBlobsResponse, PutHeader, PutResponse, PutUpload, get_chunk, put_upload, worker_event,
};
use futures::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use tonic::{Status, Streaming};
use tracing::{info, warn};

use crate::config::{Config, MAX_REPLICAS};
use crate::error::StorageError;
use crate::ledger::Ledger;
use crate::metrics;
use crate::paging::Page;
use crate::pool::WorkerPool;
use crate::slashing::Slasher;
use crate::slots::Slots;
use crate::staging::{StagingBudget, UploadDeadlines, check_disk};
use downloads::DownloadQuotes;
use index::{BlobIndex, IndexError};
use links::{DownloadPayment, Links, Room};

pub use challenge::check_blob_answer;

/// The stream a Get answers with.
pub type GetStream = Pin<Box<dyn Stream<Item = Result<GetChunk, Status>> + Send + 'static>>;

/// Puts waiting for workers with room at once from one address, and from all: past them a Put is
/// judged on the room there is, at once.
pub const WAITING_PUTS_PER_HOST: usize = 16;
pub const WAITING_PUTS: usize = 1024;

/// How long a worker gets to confirm a pushed blob: a floor plus 4 MiB/s.
fn push_timeout(size: u64) -> Duration {
    Duration::from_secs(30) + Duration::from_secs(size / (4 << 20))
}

/// A blob id from its wire form.
fn parse_root(bytes: &[u8]) -> Result<[u8; 32], StorageError> {
    bytes
        .try_into()
        .map_err(|_| StorageError::MalformedRoot { len: bytes.len() })
}

#[derive(Debug)]
pub struct BlobService {
    config: Arc<Config>,
    pool: Arc<WorkerPool>,
    slasher: Arc<Slasher>,
    /// Collectives' rules for gated Puts and Gets, and where forwarded download tickets and bytes
    /// served are recorded.
    ledger: Arc<Ledger>,
    /// Blob bytes staged for Puts.
    blob_budget: Arc<StagingBudget>,
    /// Puts waiting for workers with room, by client address.
    waiting_puts: Slots,
    index: Arc<BlobIndex>,
    links: Arc<Links>,
    /// Challenge rounds run so far.
    rounds: AtomicU64,
    /// Wakes the repair task.
    repair_wanted: Notify,
    /// When each holder was last seen attached; one offline longer than `holder_offline_grace` stops
    /// counting toward its blobs' copies (they are repaired elsewhere).
    last_seen: std::sync::Mutex<std::collections::HashMap<PublicId, std::time::Instant>>,
    /// Holders never seen since this process started count from here.
    started: std::time::Instant,
    /// Workers that failed a challenge on a blob or reported losing it: repair does not hand it back
    /// to them.
    lost_by: std::sync::Mutex<std::collections::HashMap<[u8; 32], Vec<PublicId>>>,
    /// Open download quotes.
    quotes: DownloadQuotes,
    /// Recent download demand per blob, for surge pricing.
    surge: surge::Surge,
    /// This process's name on the repair claims it takes in the index.
    claimant: index::Claimant,
}

/// A Get's blob, resolved range and excluded holders, checked.
struct Range {
    root: [u8; 32],
    blob: index::IndexedBlob,
    start: u64,
    end: u64,
    excluded: Vec<PublicId>,
}

impl BlobService {
    pub fn open(
        config: Arc<Config>,
        pool: Arc<WorkerPool>,
        slasher: Arc<Slasher>,
        ledger: Arc<Ledger>,
    ) -> Result<Self, IndexError> {
        let blob_budget = StagingBudget::new(
            "blob",
            config.max_staged_blob_bytes,
            config.max_staged_blob_bytes_per_client,
        );
        let index = Arc::new(match &config.database_url {
            Some(url) => BlobIndex::open_postgres(url)?,
            None => BlobIndex::open(&config.blob_index_path())?,
        });
        let config_surge = config.surge;
        Ok(Self {
            config,
            pool,
            slasher,
            ledger,
            blob_budget,
            waiting_puts: Slots::reporting(
                WAITING_PUTS_PER_HOST,
                WAITING_PUTS,
                metrics::puts_waiting,
            ),
            index,
            links: Arc::default(),
            rounds: AtomicU64::new(0),
            repair_wanted: Notify::new(),
            last_seen: std::sync::Mutex::default(),
            started: std::time::Instant::now(),
            lost_by: std::sync::Mutex::default(),
            quotes: DownloadQuotes::default(),
            surge: surge::Surge::new(config_surge),
            claimant: index::Claimant::random(),
        })
    }

    /// The index, for operators' tools and tests.
    pub fn index(&self) -> Arc<BlobIndex> {
        Arc::clone(&self.index)
    }

    /// Records the room for blobs a worker attached to another coordinator last reported there.
    pub fn set_room(&self, worker: PublicId, free: u64, capacity: u64) {
        self.links.set_room(worker, Room { free, capacity });
    }

    /// The room for blobs `worker` last reported.
    pub fn room(&self, worker: &PublicId) -> Room {
        self.links.room(worker)
    }

    /// Puts waiting for workers with room now.
    pub fn puts_waiting(&self) -> usize {
        self.waiting_puts.held()
    }

    /// Challenge rounds completed or in progress.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The holders that count: attached now, or offline for less than `holder_offline_grace`.
    fn live(&self, holders: &[PublicId]) -> Vec<PublicId> {
        let now = std::time::Instant::now();
        let mut seen = self.last_seen.lock().unwrap_or_else(|p| p.into_inner());
        holders
            .iter()
            .filter(|w| {
                if self.pool.commands(w).is_some() {
                    seen.insert(**w, now);
                    return true;
                }
                let last = seen.get(*w).copied().unwrap_or(self.started);
                now.duration_since(last) < self.config.holder_offline_grace
            })
            .copied()
            .collect()
    }

    /// Remembers that `worker` lost `root`.
    fn note_loss(&self, root: [u8; 32], worker: PublicId) {
        let mut lost = self.lost_by.lock().unwrap_or_else(|p| p.into_inner());
        let workers = lost.entry(root).or_default();
        if !workers.contains(&worker) {
            workers.push(worker);
        }
    }

    /// Workers not to place `root` on: its holders and those that lost it before.
    fn not_for(&self, root: &[u8; 32], holders: &[PublicId]) -> Vec<PublicId> {
        let lost = self.lost_by.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = holders.to_vec();
        out.extend(lost.get(root).into_iter().flatten().copied());
        out
    }

    /// The attached workers with room for a blob of `size`, except those in `exclude`.
    fn with_room(&self, size: u64, exclude: &[PublicId]) -> Vec<PublicId> {
        let needed = size.saturating_add(dualrig_proto::proof::outboard_len(size));
        self.pool
            .attached()
            .into_iter()
            .filter(|w| !exclude.contains(w) && self.links.room(w).free >= needed)
            .collect()
    }

    /// How many workers (not in `exclude`) have room for `size` bytes, once `missing` of them do or
    /// `worker_wait` has passed. A worker reports its room just after it attaches, and workers move
    /// to another coordinator when theirs dies: a Put that comes in between waits for them, as a job
    /// waits for a worker, rather than being refused.
    async fn wait_for_room(&self, size: u64, exclude: &[PublicId], missing: usize) -> usize {
        let deadline = tokio::time::Instant::now() + self.config.worker_wait;
        loop {
            let attached = self.pool.changed();
            let reported = self.links.room_changed();
            tokio::pin!(attached, reported);
            attached.as_mut().enable();
            reported.as_mut().enable();
            let room = self.with_room(size, exclude).len();
            if room >= missing {
                return room;
            }
            let changed = futures::future::select(attached, reported);
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return room;
            }
        }
    }

    /// Those of `candidates` on a network (PROTOCOL §6.9) none of `copies` is on, when there are any;
    /// otherwise all of them. Copies spread over networks survive one network's loss.
    fn on_new_networks<'a>(
        &self,
        candidates: Vec<PublicId>,
        copies: impl Iterator<Item = &'a PublicId>,
    ) -> Vec<PublicId> {
        let taken: std::collections::HashSet<crate::network::Network> =
            copies.filter_map(|w| self.pool.network_of(w)).collect();
        let fresh: Vec<PublicId> = candidates
            .iter()
            .filter(|w| self.pool.network_of(w).is_some_and(|n| !taken.contains(&n)))
            .copied()
            .collect();
        if fresh.is_empty() { candidates } else { fresh }
    }

    /// Pushes the staged blob to distinct workers, drawn by stake × score among those with room (on a
    /// network without a copy where there are such), until
    /// `wanted` of them (counting `holders`) hold it or nobody is left to try; no copy goes to `avoid`
    /// (workers that already hold one, counted or not). Returns the new holders.
    async fn place(
        &self,
        staged: &std::path::Path,
        root: &[u8; 32],
        size: u64,
        holders: &[PublicId],
        avoid: &[PublicId],
        wanted: usize,
    ) -> Vec<PublicId> {
        let mut tried = self.not_for(root, avoid);
        let mut placed = Vec::new();
        while holders.len() + placed.len() < wanted {
            let missing = wanted - holders.len() - placed.len();
            let mut batch = Vec::new();
            for _ in 0..missing {
                let candidates = self.with_room(size, &tried);
                let copies = holders.iter().chain(&placed).chain(&batch);
                let candidates = self.on_new_networks(candidates, copies);
                let Some(worker) = self.pool.draw_among(&candidates) else {
                    break;
                };
                tried.push(worker);
                batch.push(worker);
            }
            if batch.is_empty() {
                break;
            }
            let pushes = batch.iter().map(|worker| async move {
                let pushed = self
                    .links
                    .push(&self.pool, worker, staged, root, size, push_timeout(size))
                    .await;
                (*worker, pushed)
            });
            for (worker, pushed) in futures::future::join_all(pushes).await {
                match pushed {
                    Ok(()) => {
                        let root = *root;
                        if let Err(e) = self
                            .index
                            .call(move |ix| ix.add_holder(&root, &worker))
                            .await
                        {
                            tracing::error!(error = %e, "cannot record a holder");
                            continue;
                        }
                        metrics::blob_placed("stored");
                        placed.push(worker);
                    }
                    Err(why) => {
                        metrics::blob_placed("refused");
                        warn!(worker = %worker.short(), %why, "blob not placed");
                    }
                }
            }
        }
        placed
    }

    /// Receives a Put upload into a staging file, hashing it on the way; checks size and root.
    async fn stage(
        &self,
        header: &PutHeader,
        upload: &mut Streaming<PutUpload>,
        root: [u8; 32],
    ) -> Result<tempfile::TempPath, StorageError> {
        let scratch = self.config.scratch_dir();
        let staged = tempfile::NamedTempFile::new_in(&scratch)?.into_temp_path();
        let mut file = tokio::fs::File::create(&staged).await?;
        let mut hasher = blake3::Hasher::new();
        let mut received = 0u64;
        let declared = header.size;
        // A Put may take the Transcode deadline plus a second per MiB.
        let deadlines = UploadDeadlines::new(
            self.config.upload_idle,
            self.config.upload_deadline + Duration::from_secs(declared >> 20),
        );
        while let Some(message) = deadlines
            .next("blob", received, upload.message())
            .await?
            .map_err(|s| StorageError::UploadBroke {
                received,
                declared,
                cause: s.message().to_owned(),
            })?
        {
            let Some(put_upload::Part::Chunk(chunk)) = message.part else {
                return Err(StorageError::BadUpload(
                    "only one header per Put; the rest must be chunks",
                ));
            };
            received += chunk.len() as u64;
            if received > declared {
                return Err(StorageError::Overlong { declared });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
        }
        if received < declared {
            return Err(StorageError::Short { received, declared });
        }
        file.sync_all().await?;
        let hash = hasher.finalize();
        if hash.as_bytes() != &root {
            return Err(StorageError::RootMismatch { hash, root });
        }
        metrics::bytes_in("blob", received as usize);
        Ok(staged)
    }

    pub async fn put(
        &self,
        client: Option<std::net::IpAddr>,
        mut upload: Streaming<PutUpload>,
    ) -> Result<PutResponse, StorageError> {
        let first = UploadDeadlines::new(self.config.upload_idle, self.config.upload_deadline)
            .next("blob", 0, upload.message())
            .await?
            .map_err(|s| StorageError::UploadBroke {
                received: 0,
                declared: 0,
                cause: s.message().to_owned(),
            })?
            .ok_or(StorageError::BadUpload("empty Put; send a header first"))?;
        let Some(put_upload::Part::Header(header)) = first.part else {
            return Err(StorageError::BadUpload(
                "the first message of a Put must be the header (root, size, replicas)",
            ));
        };
        let root = parse_root(&header.root)?;
        if header.size > self.config.max_blob_bytes {
            return Err(StorageError::BlobTooLarge {
                size: header.size,
                limit: self.config.max_blob_bytes,
            });
        }
        let collective = self.collective_for_put(&header, &root).await?;
        let wanted = match header.replicas {
            0 => collective
                .as_ref()
                .map(|c| c.rules.replicas)
                .filter(|&n| n > 0)
                .unwrap_or(self.config.replicas),
            n if n > MAX_REPLICAS => {
                return Err(StorageError::TooManyReplicas {
                    asked: n,
                    max: MAX_REPLICAS,
                });
            }
            n => n,
        };
        let known = self.index.call(move |ix| ix.blob(&root)).await?;
        // A size only claims made is no record: the Put's hashed bytes settle it.
        if let Some(known) = &known
            && known.size != header.size
            && known.replicas > 0
        {
            return Err(StorageError::SizeConflict {
                root,
                known: known.size,
                declared: header.size,
            });
        }
        // Only verified copies on holders that are not long gone count; claims never do.
        let verified = known.map(|b| b.holders).unwrap_or_default();
        let holders = self.live(&verified);
        if holders.len() >= wanted as usize {
            // Already kept: nothing to upload.
            self.index
                .call(move |ix| ix.add_blob(&root, header.size, wanted))
                .await?;
            return Ok(PutResponse {
                root: root.to_vec(),
                size: header.size,
                holders: holders.iter().map(|w| w.as_bytes().to_vec()).collect(),
            });
        }
        // Room for it within the staging budget before a byte is taken, held while the Put waits for
        // workers with room: one client's waiting Puts stay within its share of the budget, and
        // within their number.
        let _held = self.blob_budget.reserve(client, header.size)?;
        let missing = wanted as usize - holders.len();
        let room = match self.waiting_puts.take(client) {
            Ok(_waiting) => self.wait_for_room(header.size, &verified, missing).await,
            Err(_) => self.with_room(header.size, &verified).len(),
        };
        if room < missing {
            return Err(StorageError::NoRoom {
                wanted,
                room,
                size: header.size,
                holders: holders.len(),
            });
        }
        check_disk(
            &self.config.scratch_dir(),
            header.size,
            self.config.disk_reserve_bytes,
        )?;
        let staged = self.stage(&header, &mut upload, root).await?;
        let size = header.size;
        let for_collective = collective.map(|c| c.name);
        self.index
            .call(move |ix| {
                ix.settle_size(&root, size)?;
                ix.add_blob(&root, size, wanted)?;
                match &for_collective {
                    Some(name) => ix.set_collective(&root, name),
                    None => Ok(()),
                }
            })
            .await?;
        let placed = self
            .place(&staged, &root, size, &holders, &verified, wanted as usize)
            .await;
        let mut all = holders;
        all.extend(placed);
        if all.len() < wanted as usize {
            if all.is_empty() {
                let _ = self.index.call(move |ix| ix.drop_if_unheld(&root)).await;
            } else {
                // What was placed stays; repair adds the rest when workers with room appear.
                self.repair_wanted.notify_one();
            }
            return Err(StorageError::Underplaced {
                stored: all.len(),
                wanted,
                root,
            });
        }
        info!(blob = %hex::encode(root), size, holders = all.len(), "blob stored");
        Ok(PutResponse {
            root: root.to_vec(),
            size,
            holders: all.iter().map(|w| w.as_bytes().to_vec()).collect(),
        })
    }

    /// The collective a Put names, checked: it exists, and the blob is new to the network or already
    /// stored for it. A blob the network already serves publicly is never gated afterwards, so no key
    /// can take public bytes behind a collective of its own.
    async fn collective_for_put(
        &self,
        header: &PutHeader,
        root: &[u8; 32],
    ) -> Result<Option<crate::ledger::Collective>, StorageError> {
        if header.collective.is_empty() {
            return Ok(None);
        }
        let root = *root;
        let stored_for = self.index.call(move |ix| ix.collective_of(&root)).await?;
        let name = header.collective.clone();
        let collective = self.ledger.call(move |l| l.collective(&name)).await?;
        let known = self.index.call(move |ix| ix.blob(&root)).await?;
        if known.is_some() && stored_for.as_deref() != Some(collective.name.as_str()) {
            return Err(StorageError::NotStoredFor {
                root,
                name: collective.name,
                stored_for,
            });
        }
        Ok(Some(collective))
    }

    /// Checks that `root` was put for collective `name`, before its owner's signed add goes to the
    /// ledger.
    pub async fn check_addable(&self, name: &str, root: [u8; 32]) -> Result<(), StorageError> {
        let known = self.index.call(move |ix| ix.blob(&root)).await?;
        if known.is_none() {
            return Err(StorageError::NotFound { root });
        }
        let stored_for = self.index.call(move |ix| ix.collective_of(&root)).await?;
        if stored_for.as_deref() != Some(name) {
            return Err(StorageError::NotStoredFor {
                root,
                name: name.to_owned(),
                stored_for,
            });
        }
        Ok(())
    }

    /// Raises `root`'s copies to its collective's `replicas` (after an add) and wakes repair to
    /// place the rest.
    pub async fn raise_replicas(&self, root: [u8; 32], replicas: u32) -> Result<(), StorageError> {
        if replicas == 0 {
            return Ok(());
        }
        let Some(blob) = self.index.call(move |ix| ix.blob(&root)).await? else {
            return Ok(());
        };
        if replicas > blob.replicas {
            let size = blob.size;
            self.index
                .call(move |ix| ix.add_blob(&root, size, replicas))
                .await?;
            self.repair_wanted.notify_one();
        }
        Ok(())
    }

    /// Checks a Get's or a quote's root, range and excluded holders against the index.
    async fn range(
        &self,
        root: &[u8],
        start: u64,
        end: Option<u64>,
        exclude: &[Vec<u8>],
    ) -> Result<Range, StorageError> {
        let root = parse_root(root)?;
        let blob = self
            .index
            .call(move |ix| ix.blob(&root))
            .await?
            .ok_or(StorageError::NotFound { root })?;
        let end = end.unwrap_or(blob.size);
        if start > end || end > blob.size {
            return Err(StorageError::OutOfRange {
                start,
                end,
                root,
                size: blob.size,
            });
        }
        let excluded = exclude
            .iter()
            .map(|w| PublicId::from_slice("exclude", w))
            .collect::<Result<Vec<PublicId>, _>>()?;
        Ok(Range {
            root,
            blob,
            start,
            end,
            excluded,
        })
    }

    /// Verified holders of `blob` attached now: who serves its downloads.
    fn serving(&self, blob: &index::IndexedBlob) -> usize {
        blob.holders
            .iter()
            .filter(|w| self.pool.commands(w).is_some())
            .count()
    }

    /// `blob`'s surge multiplier now, in ppm.
    fn multiplier_of(&self, blob: &index::IndexedBlob) -> u32 {
        self.surge.multiplier_ppm(&blob.root, self.serving(blob))
    }

    /// Blob `root`'s surge multiplier now, in ppm (1 000 000 = ×1; ×1 for an unknown blob): above ×1
    /// while its download demand saturates its holders (PROTOCOL §6.8). Reads the index (briefly
    /// blocking).
    pub fn surge_multiplier_ppm(&self, root: &[u8; 32]) -> u32 {
        match self.index.blob(root) {
            Ok(Some(blob)) => self.multiplier_of(&blob),
            _ => surge::UNIT_PPM,
        }
    }

    /// Counts a served Get's bytes as demand; wakes repair when that makes the blob hot.
    fn note_demand(&self, blob: &index::IndexedBlob, bytes: u64) {
        let was = self.multiplier_of(blob);
        self.surge.record(blob.root, bytes);
        let now = self.multiplier_of(blob);
        metrics::surge_multiplier(now);
        if now > surge::UNIT_PPM && was == surge::UNIT_PPM {
            info!(blob = %hex::encode(blob.root), multiplier_ppm = now, "blob is hot");
            self.repair_wanted.notify_one();
        }
    }

    /// The holder's published params, parsed.
    fn params_of(&self, holder: &PublicId) -> Option<dualrig_proto::ticket::TicketParams> {
        self.pool
            .ticket_params(holder)
            .and_then(|p| dualrig_proto::ticket::TicketParams::try_from(&p).ok())
    }

    /// Draws the holder to serve `range` among those `allowed` keeps: verified holders online and not
    /// excluded first, drawn by weight; a claim only when no verified one is online.
    fn pick_holder(
        &self,
        range: &Range,
        allowed: impl Fn(&PublicId) -> bool,
    ) -> Result<PublicId, StorageError> {
        let online = |workers: &[PublicId]| -> Vec<PublicId> {
            workers
                .iter()
                .filter(|w| {
                    !range.excluded.contains(w) && self.pool.commands(w).is_some() && allowed(w)
                })
                .copied()
                .collect()
        };
        let (verified, claimed) = (online(&range.blob.holders), online(&range.blob.claims));
        // Verified holders first; a claim is tried only when none is online (the client checks
        // every byte against the root either way).
        self.pool
            .draw_among(&verified)
            .or(verified.first().copied())
            .or(claimed.first().copied())
            .ok_or(StorageError::NoHolderOnline {
                root: range.root,
                holders: range.blob.holders.len(),
                excluded: !range.excluded.is_empty(),
            })
    }

    /// Draws the holder that will serve a range and opens a quote for it (PROTOCOL §6.7).
    pub async fn download_quote(
        &self,
        request: DownloadQuoteRequest,
    ) -> Result<DownloadQuoteResponse, StorageError> {
        let range = self
            .range(&request.root, request.start, request.end, &request.exclude)
            .await?;
        let collective = self.collective_price(range.root).await?;
        let holder = self.pick_holder(&range, |w| self.params_of(w).is_some())?;
        let params = self.params_of(&holder).ok_or_else(|| {
            StorageError::HolderUnreachable(format!(
                "holder {} published no ticket params",
                holder.short()
            ))
        })?;
        let round = self.ledger.call(|l| l.round()).await?;
        let price_per_byte = match &collective {
            None => params.price_per_byte,
            Some((name, price)) => {
                let member = self.members_among(name, &[holder]).await?;
                if member.is_empty() {
                    (*price).max(params.price_per_byte)
                } else {
                    *price
                }
            }
        };
        let terms = downloads::Terms {
            price_per_byte,
            collective: collective.is_some(),
            multiplier_ppm: self.multiplier_of(&range.blob),
        };
        let quote_id =
            self.quotes
                .open(holder, range.root, (range.start, range.end), params, terms)?;
        Ok(DownloadQuoteResponse {
            quote_id,
            holder: holder.as_bytes().to_vec(),
            params: Some((&params).into()),
            round,
            start: range.start,
            end: range.end,
            size: range.blob.size,
            surge_multiplier_ppm: terms.multiplier_ppm,
            price_per_byte: terms.price_per_byte,
            collective: collective.map(|(name, _)| name).unwrap_or_default(),
        })
    }

    /// Those of `workers` that are members of collective `name`: they serve its members on its terms.
    async fn members_among(
        &self,
        name: &str,
        workers: &[PublicId],
    ) -> Result<Vec<PublicId>, StorageError> {
        let (name, workers) = (name.to_owned(), workers.to_vec());
        Ok(self
            .ledger
            .call(move |l| {
                let mut members = Vec::new();
                for w in workers {
                    if l.is_member(&name, &w)? {
                        members.push(w);
                    }
                }
                Ok(members)
            })
            .await?)
    }

    /// For a blob of a collective, the collective and the price its members pay past their free
    /// allotment (PROTOCOL §6.10); `None` for a public blob. A collective whose price is 0 sells no
    /// bytes.
    async fn collective_price(
        &self,
        root: [u8; 32],
    ) -> Result<Option<(String, u64)>, StorageError> {
        let Some(name) = self.index.call(move |ix| ix.collective_of(&root)).await? else {
            return Ok(None);
        };
        let owned = name.clone();
        let rules = self.ledger.call(move |l| l.collective(&owned)).await?.rules;
        if rules.price_per_byte == 0 {
            return Err(StorageError::CollectiveSellsNoBytes {
                name,
                free_bytes: rules.free_bytes_per_round,
            });
        }
        Ok(Some((name, rules.price_per_byte)))
    }

    /// Streams a range from a holder. With a quote, the range goes to the quoted holder, paid by the
    /// request's tickets once they pass every check (quote, payee, params, price, the sender's funds,
    /// never forwarded before); without one, only a holder that serves for free is drawn. A blob of a
    /// collective goes to its members only: free within the allotment (counted once a holder is
    /// drawn) from a holder that is itself a member or serves free, and past it at the quoted price.
    pub async fn get(&self, request: GetRequest) -> Result<GetStream, StorageError> {
        let range = self
            .range(&request.root, request.start, request.end, &request.exclude)
            .await?;
        let root = range.root;
        let gated = self.index.call(move |ix| ix.collective_of(&root)).await?;
        let admit = |paid| {
            let name = gated.clone().unwrap_or_default();
            let request = &request;
            async move {
                access::admit(
                    &self.pool,
                    &self.ledger,
                    &name,
                    request,
                    &root,
                    range.end - range.start,
                    paid,
                )
                .await
            }
        };
        let (holder, payment, paid_ev) = if request.quote_id.is_empty() {
            // A holder that joined the collective serves its members' free bytes; any other serves
            // free bytes only when it serves everyone free.
            let members = match &gated {
                Some(name) => {
                    let mut all = range.blob.holders.clone();
                    all.extend_from_slice(&range.blob.claims);
                    self.members_among(name, &all).await?
                }
                None => Vec::new(),
            };
            let holder = self
                .pick_holder(&range, |w| {
                    members.contains(w) || self.params_of(w).is_none_or(|p| p.price_per_byte == 0)
                })
                .map_err(|no_free| {
                    let priced = range
                        .blob
                        .holders
                        .iter()
                        .filter(|w| !range.excluded.contains(w) && self.pool.commands(w).is_some())
                        .filter_map(|w| self.params_of(w).map(|p| p.price_per_byte))
                        .min();
                    match priced {
                        Some(price) => StorageError::DownloadPaymentRequired {
                            root: range.root,
                            price,
                        },
                        None => no_free,
                    }
                })?;
            if gated.is_some() {
                admit(false).await?;
            }
            let round = self.ledger.call(|l| l.round()).await?;
            let payment = DownloadPayment {
                tickets: Vec::new(),
                round,
                collective_price: gated.as_ref().map(|_| 0),
            };
            (holder, payment, None)
        } else {
            if gated.is_some() {
                // Membership before the tickets are recorded; a paid Get uses none of the allotment.
                admit(true).await?;
            }
            let paid = self.check_paid_get(&request, &range).await;
            if paid.is_err() {
                metrics::download_refused("coordinator");
            }
            paid?
        };
        let fetch = self
            .links
            .fetch(
                &self.pool,
                &holder,
                &range.root,
                (range.start, range.end),
                Some(payment),
            )
            .await
            .map_err(StorageError::HolderUnreachable)?;
        metrics::blob_served();
        self.note_demand(&range.blob, range.end - range.start);
        let header = GetChunk {
            part: Some(get_chunk::Part::Header(GetHeader {
                root: range.root.to_vec(),
                size: range.blob.size,
                start: range.start,
                end: range.end,
                holder: holder.as_bytes().to_vec(),
            })),
        };
        let bytes = range.end - range.start;
        let ledger = Arc::clone(&self.ledger);
        let pieces = futures::stream::unfold(Some(fetch), move |fetch| {
            let ledger = Arc::clone(&ledger);
            async move {
                let mut fetch = fetch?;
                let Some(piece) = fetch.pieces.recv().await else {
                    // The whole slice reached the reader.
                    metrics::download_served(bytes, paid_ev.is_some());
                    let paid = paid_ev.unwrap_or(0);
                    if let Err(e) = ledger
                        .call(move |l| l.record_served(&holder, bytes, paid))
                        .await
                    {
                        tracing::error!(error = %e, "cannot record bytes served");
                    }
                    return None;
                };
                match piece {
                    Ok(data) => Some((
                        Ok(GetChunk {
                            part: Some(get_chunk::Part::Slice(data.to_vec())),
                        }),
                        Some(fetch),
                    )),
                    Err(why) => {
                        let error = match fetch.payment_refused() {
                            Some(why) => {
                                metrics::download_refused("holder");
                                StorageError::HolderRefusedPayment {
                                    holder: holder.short(),
                                    why,
                                }
                            }
                            None => StorageError::HolderFailed {
                                holder: holder.short(),
                                why,
                            },
                        };
                        Some((Err(Status::from(error)), None))
                    }
                }
            }
        });
        Ok(Box::pin(
            futures::stream::once(async move { Ok(header) }).chain(pieces),
        ))
    }

    /// A paid Get's checks, before any byte is fetched: its quote (single use, this root and range),
    /// its tickets against the quote, the sender's funds, and that no ticket was forwarded before (the
    /// ledger records them as it checks). Returns the holder, what goes to it, and the payment's worth.
    async fn check_paid_get(
        &self,
        request: &GetRequest,
        range: &Range,
    ) -> Result<(PublicId, DownloadPayment, Option<u64>), StorageError> {
        let quoted = self.quotes.take(&request.quote_id)?;
        let holder = quoted.holder;
        if self.pool.commands(&holder).is_none() {
            return Err(StorageError::Staged(
                crate::error::CoordinatorError::QuoteLost(crate::error::QuoteLost::WorkerGone {
                    worker: holder,
                }),
            ));
        }
        let (tickets, offered) = downloads::check_download_payment(
            &request.quote_id,
            &quoted,
            (range.root, range.start, range.end),
            &request.payment,
            self.params_of(&holder),
        )?;
        crate::service::check_sender_covers(&self.ledger, &self.config, &tickets).await?;
        let hashes: Vec<[u8; 32]> = tickets.iter().map(|t| t.ticket_hash()).collect();
        let round = self
            .ledger
            .call(move |l| l.record_download_tickets(&holder, &hashes))
            .await?;
        metrics::download_tickets_forwarded(tickets.len());
        let terms = quoted.terms;
        Ok((
            holder,
            DownloadPayment {
                tickets: request.payment.clone(),
                round,
                collective_price: terms.collective.then_some(terms.price_per_byte),
            },
            (terms.price_per_byte > 0).then_some(offered),
        ))
    }

    /// One page of the index, in root order, after the root `after`.
    pub async fn list(
        &self,
        page: Page,
        after: Option<[u8; 32]>,
    ) -> Result<ListBlobsResponse, StorageError> {
        let limit = page.size + 1;
        let blobs = self
            .index
            .call(move |ix| ix.blobs_page(after.as_ref(), limit))
            .await?;
        let (blobs, next_page_token) = page.finish(blobs, |b| b.root.to_vec());
        Ok(ListBlobsResponse {
            blobs: blobs
                .into_iter()
                .map(|b| BlobListing {
                    root: b.root.to_vec(),
                    size: b.size,
                    holders: b.holders.iter().map(|w| w.as_bytes().to_vec()).collect(),
                    replicas: b.replicas,
                    surge_multiplier_ppm: self.multiplier_of(&b),
                })
                .collect(),
            next_page_token,
        })
    }

    /// A storage event from an attached worker's stream.
    pub async fn on_event(&self, worker: PublicId, _connection: u64, event: worker_event::Event) {
        match event {
            worker_event::Event::Holdings(report) => {
                self.links.set_room(
                    worker,
                    Room {
                        free: report.free_bytes,
                        capacity: report.capacity_bytes,
                    },
                );
                let dualrig_proto::holdings::Claims { added, removed } =
                    dualrig_proto::holdings::Claims::from_report(&report);
                if !report.corrupt.is_empty() {
                    metrics::scrub_reported(report.corrupt.len());
                    warn!(worker = %worker.short(), blobs = report.corrupt.len(), "worker's scrub dropped damaged blobs");
                }
                let full = report.full;
                let capacity = report.capacity_bytes;
                match self
                    .index
                    .call(move |ix| ix.apply_report(&worker, full, &added, &removed, capacity))
                    .await
                {
                    Ok(lost) if !lost.is_empty() => {
                        info!(worker = %worker.short(), blobs = lost.len(), "worker no longer holds blobs");
                        for root in lost {
                            self.note_loss(root, worker);
                        }
                        self.repair_wanted.notify_one();
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "cannot apply a holdings report"),
                }
            }
            worker_event::Event::Stored(stored) => self.links.on_stored(&worker, stored),
            worker_event::Event::Piece(piece) => self.links.on_piece(&worker, piece),
            worker_event::Event::Answer(answer) => self.links.on_answer(&worker, answer),
            _ => {}
        }
    }
}
