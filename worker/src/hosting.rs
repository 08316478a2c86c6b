//! The worker's side of hosting (PROTOCOL §6) on the Attach stream: blobs the coordinator pushes go into
//! the [`BlobStore`] as they arrive (hashed on the way in, kept only when they hash to the root they
//! were sent under), ranges are served as verifiable slices (a client's download only once its tickets
//! are accepted, when the worker charges per byte), challenges are answered with chunk proofs
//! from the outboards, and the store is scrubbed on a schedule. Every change to what the worker holds
//! goes up as a `Holdings` report; the first report on each stream is the full list.

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use dualrig_proto::chunk_reader::{ChunkReader, Piece};
use dualrig_proto::identity::PublicId;
use dualrig_proto::proof::challenge_indices;
use dualrig_proto::v1::{
    BlobPiece, BlobProofs, BlobRef, BlobStored, Challenge, ChallengeAnswer, FetchBlob, Holdings,
    StoreBlob, WorkerEvent, worker_event,
};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::metrics;
use crate::payment::Payments;
use crate::store::{BlobInfo, BlobStore, StoreError};

/// Bytes of slice per BlobPiece sent up the stream.
const PIECE_BYTES: usize = 256 << 10;
/// Pieces of an incoming transfer buffered ahead of the store.
const TRANSFER_QUEUE: usize = 8;
/// Fetches served at once; more are refused at once, so stalled readers cannot take every thread.
const MAX_FETCHES: usize = 32;
/// How long a fetch waits for the coordinator's credit for its next piece before it gives up.
const CREDIT_WAIT: Duration = Duration::from_secs(30);

/// One outgoing fetch: the pieces it may still send, and whether it was cancelled.
#[derive(Debug, Default)]
struct FetchState {
    /// `None`: no window (the coordinator asked for none).
    credits: Mutex<Option<u64>>,
    cancelled: AtomicBool,
    wake: std::sync::Condvar,
}

impl FetchState {
    fn new(window: u32) -> Self {
        Self {
            credits: Mutex::new((window > 0).then_some(u64::from(window))),
            ..Self::default()
        }
    }

    fn grant(&self, pieces: u32) {
        if let Some(credits) = lock(&self.credits).as_mut() {
            *credits = credits.saturating_add(u64::from(pieces));
        }
        self.wake.notify_all();
    }

    fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
        self.wake.notify_all();
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Takes one credit, waiting for it up to `wait`; false when cancelled or none came.
    fn take_credit(&self, wait: Duration) -> bool {
        let mut credits = lock(&self.credits);
        let deadline = std::time::Instant::now() + wait;
        loop {
            if self.is_cancelled() {
                return false;
            }
            match credits.as_mut() {
                None => return true,
                Some(n) if *n > 0 => {
                    *n -= 1;
                    return true;
                }
                Some(_) => {}
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            credits = self
                .wake
                .wait_timeout(credits, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// What the worker hosts and the transfers in progress.
#[derive(Debug)]
pub struct Hosting {
    id: PublicId,
    store: Arc<BlobStore>,
    /// Checks a download's tickets before it is served.
    payments: Arc<Payments>,
    /// Incoming transfers: id → the feed into the store's put.
    transfers: Mutex<HashMap<String, mpsc::Sender<Piece>>>,
    /// Outgoing fetches by id.
    fetches: Arc<Mutex<HashMap<String, Arc<FetchState>>>>,
    /// The stream of the current session, for reports that do not answer a command (scrubs).
    events: Mutex<Option<mpsc::Sender<WorkerEvent>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn blob_ref(info: &BlobInfo) -> BlobRef {
    BlobRef {
        root: info.root.as_bytes().to_vec(),
        size: info.len,
    }
}

fn event(event: worker_event::Event) -> WorkerEvent {
    WorkerEvent { event: Some(event) }
}

impl Hosting {
    pub fn new(id: PublicId, store: Arc<BlobStore>, payments: Arc<Payments>) -> Self {
        metrics::store_usage(
            store.used_bytes(),
            store.list().len(),
            store.capacity_bytes(),
        );
        Self {
            id,
            store,
            payments,
            transfers: Mutex::default(),
            fetches: Arc::default(),
            events: Mutex::default(),
        }
    }

    pub fn store(&self) -> &Arc<BlobStore> {
        &self.store
    }

    /// A report of every blob held, for the start of a session.
    pub fn full_report(&self) -> Holdings {
        Holdings {
            full: true,
            added: self.store.list().iter().map(blob_ref).collect(),
            ..self.delta(Vec::new(), Vec::new(), Vec::new())
        }
    }

    fn delta(
        &self,
        added: Vec<BlobRef>,
        removed: Vec<blake3::Hash>,
        corrupt: Vec<blake3::Hash>,
    ) -> Holdings {
        metrics::store_usage(
            self.store.used_bytes(),
            self.store.list().len(),
            self.store.capacity_bytes(),
        );
        Holdings {
            full: false,
            added,
            removed: removed.iter().map(|r| r.as_bytes().to_vec()).collect(),
            free_bytes: self.store.free_bytes(),
            capacity_bytes: self.store.capacity_bytes(),
            corrupt: corrupt.iter().map(|r| r.as_bytes().to_vec()).collect(),
        }
    }

    /// Starts a session on `events`: sends the full report and keeps the sender for later reports.
    pub async fn attached(&self, events: &mpsc::Sender<WorkerEvent>) {
        *lock(&self.events) = Some(events.clone());
        let report = self.full_report();
        info!(
            blobs = report.added.len(),
            free = report.free_bytes,
            "reporting hosted blobs"
        );
        let _ = events
            .send(event(worker_event::Event::Holdings(report)))
            .await;
    }

    /// One piece of a pushed blob. Pieces arrive in order on the command stream, so feeding them in
    /// here (waiting when the store falls behind) keeps them in order.
    pub async fn on_store(self: &Arc<Self>, piece: StoreBlob, events: &mpsc::Sender<WorkerEvent>) {
        if piece.offset == 0 && !lock(&self.transfers).contains_key(&piece.transfer_id) {
            self.begin_transfer(&piece, events);
        }
        let feed = lock(&self.transfers).get(&piece.transfer_id).cloned();
        let Some(feed) = feed else {
            // A transfer that already failed (its put ended early): the coordinator has its answer.
            return;
        };
        if !piece.data.is_empty() {
            let _ = feed.send(Ok(Bytes::from(piece.data))).await;
        }
        if piece.last {
            lock(&self.transfers).remove(&piece.transfer_id);
        }
    }

    fn begin_transfer(self: &Arc<Self>, first: &StoreBlob, events: &mpsc::Sender<WorkerEvent>) {
        let (feed, pieces) = mpsc::channel(TRANSFER_QUEUE);
        lock(&self.transfers).insert(first.transfer_id.clone(), feed);
        let hosting = Arc::clone(self);
        let events = events.clone();
        let transfer_id = first.transfer_id.clone();
        let expected = first.root.clone();
        let size = first.size;
        tokio::spawn(async move {
            let store = Arc::clone(&hosting.store);
            let had_it = <[u8; 32]>::try_from(expected.as_slice())
                .is_ok_and(|r| store.get(&blake3::Hash::from_bytes(r)).is_some());
            let put = tokio::task::spawn_blocking(move || {
                store.put_reader(ChunkReader::new(pieces), size)
            })
            .await;
            lock(&hosting.transfers).remove(&transfer_id);
            let outcome = match put {
                Ok(Ok(info)) if info.root.as_bytes().as_slice() == expected.as_slice() => Ok(info),
                Ok(Ok(info)) => {
                    if !had_it {
                        let _ = hosting.store.remove(&info.root);
                    }
                    Err(format!(
                        "the bytes received hash to {}, not to the root they were sent under",
                        info.root
                    ))
                }
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(format!("store task failed: {e}")),
            };
            let stored = BlobStored {
                transfer_id,
                root: expected,
                error: outcome.as_ref().err().cloned().unwrap_or_default(),
            };
            match &outcome {
                Ok(info) => {
                    metrics::blob("stored");
                    info!(blob = %info.root, bytes = info.len, "blob stored");
                }
                Err(why) => {
                    metrics::blob("refused");
                    warn!(error = %why, "blob not stored");
                }
            }
            let _ = events
                .send(event(worker_event::Event::Stored(stored)))
                .await;
            if let Ok(info) = outcome {
                let report = hosting.delta(vec![blob_ref(&info)], Vec::new(), Vec::new());
                let _ = events
                    .send(event(worker_event::Event::Holdings(report)))
                    .await;
            }
        });
    }

    /// Serves a range as a slice, piece by piece, each once the coordinator has granted it (the
    /// window, then one credit per piece its reader took), until done, failed, cancelled, or no
    /// credit came for [`CREDIT_WAIT`]. A download's tickets are checked first
    /// ([`Payments::accept_download`]); a refused payment sends nothing but one error piece marked
    /// `payment_refused`.
    pub fn on_fetch(&self, fetch: FetchBlob, events: &mpsc::Sender<WorkerEvent>) {
        let piece = {
            let fetch_id = fetch.fetch_id.clone();
            move |data: Vec<u8>, last: bool, error: String| {
                event(worker_event::Event::Piece(BlobPiece {
                    fetch_id: fetch_id.clone(),
                    data,
                    last,
                    error,
                    payment_refused: false,
                }))
            }
        };
        let state = Arc::new(FetchState::new(fetch.window));
        {
            let mut fetches = lock(&self.fetches);
            if fetches.len() >= MAX_FETCHES {
                drop(fetches);
                let busy = format!("{MAX_FETCHES} fetches already in progress; try again");
                let _ = events.try_send(piece(Vec::new(), true, busy));
                return;
            }
            fetches.insert(fetch.fetch_id.clone(), Arc::clone(&state));
        }
        let store = Arc::clone(&self.store);
        let fetches = Arc::clone(&self.fetches);
        let payments = Arc::clone(&self.payments);
        let events = events.clone();
        tokio::task::spawn_blocking(move || {
            let paid = payments.charges(&fetch);
            match payments.accept_download(&fetch) {
                Ok(published) => {
                    if paid {
                        metrics::download_payment("accepted");
                    }
                    // Ahead of the pieces on the same stream: the coordinator quotes the new params
                    // by the time this range has reached its reader.
                    if let Some(params) = published {
                        let _ = events
                            .blocking_send(event(worker_event::Event::Params((&params).into())));
                    }
                }
                Err(refused) => {
                    metrics::download_payment("refused");
                    warn!(fetch = %fetch.fetch_id, error = %refused, "download refused");
                    let _ = events.blocking_send(event(worker_event::Event::Piece(BlobPiece {
                        fetch_id: fetch.fetch_id.clone(),
                        data: Vec::new(),
                        last: true,
                        error: refused.to_string(),
                        payment_refused: true,
                    })));
                    lock(&fetches).remove(&fetch.fetch_id);
                    return;
                }
            }
            let send = |data, last| {
                state.take_credit(CREDIT_WAIT)
                    && events
                        .blocking_send(piece(data, last, String::new()))
                        .is_ok()
            };
            match serve_slice(&store, &fetch, &state.cancelled, send) {
                Ok(true) if fetch.download => {
                    metrics::served(fetch.end.saturating_sub(fetch.start), paid);
                }
                Ok(_) => {}
                Err(error) => {
                    warn!(fetch = %fetch.fetch_id, %error, "fetch failed");
                    let _ = events.blocking_send(piece(Vec::new(), true, error));
                }
            }
            lock(&fetches).remove(&fetch.fetch_id);
        });
    }

    pub fn on_cancel_fetch(&self, fetch_id: &str) {
        if let Some(state) = lock(&self.fetches).remove(fetch_id) {
            state.cancel();
        }
    }

    pub fn on_fetch_credit(&self, fetch_id: &str, pieces: u32) {
        if let Some(state) = lock(&self.fetches).get(fetch_id) {
            state.grant(pieces);
        }
    }

    /// Answers a challenge with the proofs for every blob it names.
    pub fn on_challenge(&self, challenge: Challenge, events: &mpsc::Sender<WorkerEvent>) {
        let store = Arc::clone(&self.store);
        let events = events.clone();
        let id = self.id;
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let seed: Option<[u8; 32]> = challenge.seed.as_slice().try_into().ok();
            let blobs = challenge
                .blobs
                .iter()
                .map(|blob| prove_blob(&store, &id, seed.as_ref(), challenge.k, blob))
                .collect::<Vec<_>>();
            let proofs: usize = blobs.iter().map(|b| b.proofs.len()).sum();
            let failed = blobs.iter().filter(|b| !b.error.is_empty()).count();
            metrics::challenge_answered(proofs, blobs.len() - failed, failed, started.elapsed());
            let answer = ChallengeAnswer {
                challenge_id: challenge.challenge_id,
                blobs,
            };
            let _ = events.blocking_send(event(worker_event::Event::Answer(answer)));
        });
    }

    /// Reports a blob the worker stored of its own accord (pulled for a collective it hosts): the
    /// coordinator records it as a claim and challenges it like any other.
    pub async fn report_added(&self, info: &BlobInfo) {
        let delta = self.delta(vec![blob_ref(info)], Vec::new(), Vec::new());
        let events = lock(&self.events).clone();
        if let Some(events) = events {
            let _ = events
                .send(event(worker_event::Event::Holdings(delta)))
                .await;
        }
    }

    /// Rehashes the store every `interval` and reports what it dropped.
    pub async fn scrub_forever(self: Arc<Self>, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            tick.tick().await;
            let store = Arc::clone(&self.store);
            let report = match tokio::task::spawn_blocking(move || store.scrub()).await {
                Ok(Ok(report)) => report,
                Ok(Err(e)) => {
                    warn!(error = %e, "scrub stopped");
                    continue;
                }
                Err(e) => {
                    warn!(error = %e, "scrub task failed");
                    continue;
                }
            };
            metrics::scrubbed(
                report.checked,
                report.corrupt.len(),
                report.missing.len(),
                report.repaired_outboards.len(),
            );
            if report.corrupt.is_empty() && report.missing.is_empty() {
                continue;
            }
            warn!(
                corrupt = report.corrupt.len(),
                missing = report.missing.len(),
                "scrub dropped damaged blobs"
            );
            let mut removed = report.corrupt.clone();
            removed.extend(report.missing.iter().copied());
            let delta = self.delta(Vec::new(), removed, report.corrupt);
            let events = lock(&self.events).clone();
            if let Some(events) = events {
                let _ = events
                    .send(event(worker_event::Event::Holdings(delta)))
                    .await;
            }
        }
    }
}

/// Reads the slice of `fetch`'s range and hands it to `send` in pieces (`send` returns false once
/// nobody listens); stops early when `cancelled` is set. True when the whole slice went out.
fn serve_slice(
    store: &BlobStore,
    fetch: &FetchBlob,
    cancelled: &AtomicBool,
    mut send: impl FnMut(Vec<u8>, bool) -> bool,
) -> Result<bool, String> {
    let root = <[u8; 32]>::try_from(fetch.root.as_slice())
        .map(blake3::Hash::from_bytes)
        .map_err(|_| "the root is not 32 bytes".to_owned())?;
    let mut slice = store
        .slice(&root, fetch.start, fetch.end)
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; PIECE_BYTES];
    while !cancelled.load(Ordering::Relaxed) {
        let n = read_full(&mut slice, &mut buf)
            .map_err(|e| format!("cannot read blob {root}: {e}; a scrub will check it"))?;
        let last = n < buf.len();
        let sent = send(buf[..n].to_vec(), last);
        if !sent || last {
            metrics::blob("served");
            return Ok(sent && last);
        }
    }
    Ok(false)
}

/// The proofs for one challenged blob, or why there are none.
fn prove_blob(
    store: &BlobStore,
    id: &PublicId,
    seed: Option<&[u8; 32]>,
    k: u32,
    blob: &BlobRef,
) -> BlobProofs {
    let mut answer = BlobProofs {
        root: blob.root.clone(),
        proofs: Vec::new(),
        error: String::new(),
    };
    let proved = (|| -> Result<Vec<Vec<u8>>, String> {
        let seed = seed.ok_or("the challenge seed is not 32 bytes")?;
        let root_bytes: [u8; 32] = blob
            .root
            .as_slice()
            .try_into()
            .map_err(|_| "the root is not 32 bytes".to_owned())?;
        let root = blake3::Hash::from_bytes(root_bytes);
        let held = store
            .get(&root)
            .ok_or_else(|| StoreError::NotFound { root }.to_string())?;
        if held.len != blob.size {
            return Err(format!(
                "blob {root} is {} bytes here, the challenge says {}",
                held.len, blob.size
            ));
        }
        challenge_indices(seed, id, &root_bytes, held.len, k as usize)
            .into_iter()
            .map(|index| {
                store
                    .prove(&root, index)
                    .map_err(|e| e.to_string())?
                    .to_bytes()
                    .map_err(|e| e.to_string())
            })
            .collect()
    })();
    match proved {
        Ok(proofs) => answer.proofs = proofs,
        Err(e) => answer.error = e,
    }
    answer
}

/// Reads until `buf` is full or the reader ends; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
