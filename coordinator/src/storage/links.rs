//! What travels to and from workers for storage, matched up: pushes waiting for their `BlobStored`,
//! fetches receiving their slice pieces, challenges waiting for their answers, and the room each
//! worker last reported. Commands go down a worker's Attach queue; the answers come back through
//! `BlobService::on_event`, which hands them to [`Links::on_stored`], [`Links::on_piece`] and
//! [`Links::on_answer`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use dualrig_proto::chunk_reader::Piece;
use dualrig_proto::identity::PublicId;
use dualrig_proto::v1::{
    BlobStored, CancelFetch, Challenge, ChallengeAnswer, FetchBlob, StoreBlob, WorkerCommand,
    worker_command,
};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};

use crate::pool::WorkerPool;

/// Bytes of blob per StoreBlob command.
const PUSH_PIECE: usize = 1 << 20;
/// Slice pieces buffered per fetch before the worker's stream waits for the reader.
const FETCH_QUEUE: usize = 16;
/// How long a worker's stream may wait for a slow fetch reader before the fetch is dropped.
const FETCH_STALL: Duration = Duration::from_secs(20);

/// The room a worker reported for blobs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Room {
    pub free: u64,
    pub capacity: u64,
}

#[derive(Default)]
struct Pending {
    pushes: HashMap<String, oneshot::Sender<BlobStored>>,
    fetches: HashMap<String, mpsc::Sender<Piece>>,
    challenges: HashMap<String, oneshot::Sender<ChallengeAnswer>>,
    rooms: HashMap<PublicId, Room>,
}

#[derive(Default)]
pub struct Links {
    pending: Mutex<Pending>,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links").finish_non_exhaustive()
    }
}

fn new_id() -> String {
    hex::encode(rand::random::<[u8; 12]>())
}

async fn send(
    pool: &WorkerPool,
    worker: &PublicId,
    command: worker_command::Command,
) -> Result<(), String> {
    let (_, commands) = pool
        .commands(worker)
        .ok_or_else(|| format!("worker {} is not attached", worker.short()))?;
    commands
        .send(Ok(WorkerCommand {
            command: Some(command),
        }))
        .await
        .map_err(|_| format!("worker {} went away", worker.short()))
}

/// A fetch in progress; dropping it before the end tells the worker to stop.
pub struct Fetch {
    pub pieces: mpsc::Receiver<Piece>,
    id: String,
    worker: PublicId,
    links: Arc<Links>,
    pool: Arc<WorkerPool>,
}

impl Fetch {
    /// Takes the pieces for a blocking reader; the fetch itself must stay alive until they are read.
    pub fn take_pieces(&mut self) -> mpsc::Receiver<Piece> {
        std::mem::replace(&mut self.pieces, mpsc::channel(1).1)
    }
}

impl Drop for Fetch {
    fn drop(&mut self) {
        if self.links.lock().fetches.remove(&self.id).is_some()
            && let Some((_, commands)) = self.pool.commands(&self.worker)
        {
            let cancel = worker_command::Command::CancelFetch(CancelFetch {
                fetch_id: self.id.clone(),
            });
            let _ = commands.try_send(Ok(WorkerCommand {
                command: Some(cancel),
            }));
        }
    }
}

impl Links {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_room(&self, worker: PublicId, room: Room) {
        self.lock().rooms.insert(worker, room);
    }

    pub fn room(&self, worker: &PublicId) -> Room {
        self.lock().rooms.get(worker).copied().unwrap_or_default()
    }

    /// Sends the staged file at `path` (`size` bytes hashing to `root`) to `worker` and waits until it
    /// says the blob is stored, or `timeout` passes.
    pub async fn push(
        &self,
        pool: &WorkerPool,
        worker: &PublicId,
        path: &Path,
        root: &[u8; 32],
        size: u64,
        timeout: Duration,
    ) -> Result<(), String> {
        let id = new_id();
        let (done, stored) = oneshot::channel();
        self.lock().pushes.insert(id.clone(), done);
        let outcome = tokio::time::timeout(timeout, async {
            let mut file = tokio::fs::File::open(path)
                .await
                .map_err(|e| format!("cannot read the staged blob: {e}"))?;
            let mut offset = 0u64;
            loop {
                let mut data = vec![0u8; PUSH_PIECE.min((size - offset) as usize)];
                file.read_exact(&mut data)
                    .await
                    .map_err(|e| format!("cannot read the staged blob: {e}"))?;
                let len = data.len() as u64;
                let last = offset + len == size;
                let piece = StoreBlob {
                    transfer_id: id.clone(),
                    root: root.to_vec(),
                    size,
                    offset,
                    data,
                    last,
                };
                send(pool, worker, worker_command::Command::Store(piece)).await?;
                offset += len;
                if last {
                    break;
                }
            }
            let stored = stored
                .await
                .map_err(|_| format!("worker {} went away", worker.short()))?;
            if stored.error.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "worker {} did not store it: {}",
                    worker.short(),
                    stored.error
                ))
            }
        })
        .await;
        self.lock().pushes.remove(&id);
        outcome.unwrap_or_else(|_| {
            Err(format!(
                "worker {} did not confirm within {} s",
                worker.short(),
                timeout.as_secs()
            ))
        })
    }

    /// Asks `worker` for bytes `start..end` of `root` as a slice; the pieces arrive on the returned
    /// fetch (an `Err` piece when the worker fails).
    pub async fn fetch(
        self: &Arc<Self>,
        pool: &Arc<WorkerPool>,
        worker: &PublicId,
        root: &[u8; 32],
        start: u64,
        end: u64,
    ) -> Result<Fetch, String> {
        let id = new_id();
        let (tx, pieces) = mpsc::channel(FETCH_QUEUE);
        self.lock().fetches.insert(id.clone(), tx);
        let fetch = Fetch {
            pieces,
            id: id.clone(),
            worker: *worker,
            links: Arc::clone(self),
            pool: Arc::clone(pool),
        };
        let command = worker_command::Command::Fetch(FetchBlob {
            fetch_id: id,
            root: root.to_vec(),
            start,
            end,
        });
        send(pool, worker, command).await?;
        Ok(fetch)
    }

    /// Sends `challenge` to `worker` and waits for its answer until `deadline` passes.
    pub async fn challenge(
        &self,
        pool: &WorkerPool,
        worker: &PublicId,
        challenge: Challenge,
        deadline: Duration,
    ) -> Option<ChallengeAnswer> {
        let id = challenge.challenge_id.clone();
        let (done, answer) = oneshot::channel();
        self.lock().challenges.insert(id.clone(), done);
        let outcome = tokio::time::timeout(deadline, async {
            send(pool, worker, worker_command::Command::Challenge(challenge))
                .await
                .ok()?;
            answer.await.ok()
        })
        .await;
        self.lock().challenges.remove(&id);
        outcome.ok().flatten()
    }

    pub fn on_stored(&self, stored: BlobStored) {
        if let Some(done) = self.lock().pushes.remove(&stored.transfer_id) {
            let _ = done.send(stored);
        }
    }

    pub fn on_answer(&self, answer: ChallengeAnswer) {
        if let Some(done) = self.lock().challenges.remove(&answer.challenge_id) {
            let _ = done.send(answer);
        }
    }

    /// Hands a slice piece to its fetch. Waits (up to [`FETCH_STALL`]) when the reader is behind, which
    /// holds up this worker's stream: better than buffering a whole blob here.
    pub async fn on_piece(&self, fetch_id: &str, data: Vec<u8>, last: bool, error: String) {
        let sender = self.lock().fetches.get(fetch_id).cloned();
        let Some(sender) = sender else {
            return;
        };
        let piece = if error.is_empty() {
            Ok(Bytes::from(data))
        } else {
            Err(error)
        };
        let failed = piece.is_err();
        let delivered = matches!(
            tokio::time::timeout(FETCH_STALL, sender.send(piece)).await,
            Ok(Ok(()))
        );
        if last || failed || !delivered {
            // Dropping the sender ends the fetch's stream.
            self.lock().fetches.remove(fetch_id);
        }
    }
}
