//! What travels to and from workers for storage, matched up: pushes waiting for their `BlobStored`,
//! fetches receiving their slice pieces, challenges waiting for their answers, and the room each
//! worker last reported. Nothing here makes a worker's Attach loop wait on a client: a fetch is
//! flow-controlled end to end (the worker sends a window of pieces, then one more per piece the
//! reader takes), and challenges travel on the control queue ahead of bulk. Commands go down a worker's Attach queue; the answers come back through
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
    BlobStored, CancelFetch, Challenge, ChallengeAnswer, FetchBlob, FetchCredit, SignedTicket,
    StoreBlob, WorkerCommand, worker_command,
};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};

use crate::pool::WorkerPool;

/// Bytes of blob per StoreBlob command.
const PUSH_PIECE: usize = 1 << 20;
/// Slice pieces a worker may send for one fetch ahead of its reader (`FetchBlob.window`): what the
/// coordinator buffers per fetch, at most.
pub const FETCH_WINDOW: u32 = 8;
/// How long a fetch's reader may leave a piece untaken before the fetch is dropped (the holder is
/// told to stop; nothing counts against it).
const FETCH_IDLE: Duration = Duration::from_secs(20);

/// The room a worker reported for blobs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Room {
    pub free: u64,
    pub capacity: u64,
}

#[derive(Default)]
struct Pending {
    /// Each waits for an answer from one worker: an answer with the right id from another is ignored.
    pushes: HashMap<String, (PublicId, oneshot::Sender<BlobStored>)>,
    /// Each fetch's inbox: the Attach loop hands pieces in without waiting, the fetch's relay takes
    /// them out as its reader reads.
    fetches: HashMap<String, (PublicId, Inbox)>,
    challenges: HashMap<String, (PublicId, oneshot::Sender<ChallengeAnswer>)>,
    rooms: HashMap<PublicId, Room>,
}

/// Where one fetch's pieces wait for its relay: room for the window the worker was granted and one
/// more, so the coordinator's own "sent more than it was granted" always fits behind them.
#[derive(Clone)]
struct Inbox {
    pieces: mpsc::Sender<Piece>,
    /// Pieces in `pieces` the relay has not taken yet.
    waiting: Arc<std::sync::atomic::AtomicU32>,
    /// The holder's words when it refused the fetch's payment.
    refused: Arc<Mutex<Option<String>>>,
}

/// What a client's download carries to its holder: the tickets that pay for the range, the round, and
/// for a member's Get of a collective's blob the collective's price, which the holder serves at
/// instead of its own (0 within the member's free allotment).
#[derive(Debug, Clone, Default)]
pub struct DownloadPayment {
    pub tickets: Vec<SignedTicket>,
    pub round: u64,
    pub collective_price: Option<u64>,
}

#[derive(Default)]
pub struct Links {
    pending: Mutex<Pending>,
    /// Woken whenever a worker's reported room changes, for Puts waiting for room.
    room_changed: tokio::sync::Notify,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links").finish_non_exhaustive()
    }
}

fn new_id() -> String {
    hex::encode(rand::random::<[u8; 12]>())
}

/// Sends a bulk command (blob pieces, fetch requests) down `worker`'s stream.
async fn send(
    pool: &WorkerPool,
    worker: &PublicId,
    command: worker_command::Command,
) -> Result<(), String> {
    let (_, commands) = pool
        .commands(worker)
        .ok_or_else(|| format!("worker {} is not attached", worker.short()))?;
    deliver(&commands, worker, command).await
}

/// Sends a control command (challenges, cancels, credits), which goes out ahead of bulk.
async fn send_control(
    pool: &WorkerPool,
    worker: &PublicId,
    command: worker_command::Command,
) -> Result<(), String> {
    let control = pool
        .control(worker)
        .ok_or_else(|| format!("worker {} is not attached", worker.short()))?;
    deliver(&control, worker, command).await
}

async fn deliver(
    queue: &crate::pool::CommandSender,
    worker: &PublicId,
    command: worker_command::Command,
) -> Result<(), String> {
    queue
        .send(Ok(WorkerCommand {
            command: Some(command),
        }))
        .await
        .map_err(|_| format!("worker {} went away", worker.short()))
}

/// Tells `worker` to stop fetch `id`, without waiting (a full control queue drops the cancel: the
/// worker's fetch then ends when its credit wait times out).
fn cancel_fetch(pool: &WorkerPool, worker: &PublicId, id: &str) {
    if let Some(control) = pool.control(worker) {
        let cancel = worker_command::Command::CancelFetch(CancelFetch {
            fetch_id: id.to_owned(),
        });
        let _ = control.try_send(Ok(WorkerCommand {
            command: Some(cancel),
        }));
    }
}

/// A fetch in progress; dropping it before the end tells the worker to stop.
pub struct Fetch {
    pub pieces: mpsc::Receiver<Piece>,
    refused: Arc<Mutex<Option<String>>>,
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

    /// Why the holder refused this download's payment, once it has (its error piece then ends the
    /// fetch).
    pub fn payment_refused(&self) -> Option<String> {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for Fetch {
    fn drop(&mut self) {
        if self.links.lock().fetches.remove(&self.id).is_some() {
            cancel_fetch(&self.pool, &self.worker, &self.id);
        }
    }
}

impl Links {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_room(&self, worker: PublicId, room: Room) {
        let old = self.lock().rooms.insert(worker, room);
        if old != Some(room) {
            self.room_changed.notify_waiters();
        }
    }

    /// Resolves at the next change of any worker's reported room.
    pub fn room_changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.room_changed.notified()
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
        self.lock().pushes.insert(id.clone(), (*worker, done));
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
    /// fetch (an `Err` piece when the worker fails). `download` marks a client's download, with its
    /// payment; `None` is the coordinator's own copy (repair), which holders serve free.
    pub async fn fetch(
        self: &Arc<Self>,
        pool: &Arc<WorkerPool>,
        worker: &PublicId,
        root: &[u8; 32],
        (start, end): (u64, u64),
        download: Option<DownloadPayment>,
    ) -> Result<Fetch, String> {
        let id = new_id();
        let (waiting, queued, refused) = self.open_inbox(worker, &id);
        let (out, pieces) = mpsc::channel(1);
        tokio::spawn(relay(
            Arc::clone(self),
            Arc::clone(pool),
            *worker,
            id.clone(),
            (waiting, queued),
            out,
        ));
        let fetch = Fetch {
            pieces,
            refused,
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
            window: FETCH_WINDOW,
            download: download.is_some(),
            round: download.as_ref().map_or(0, |d| d.round),
            collective_price_per_byte: download.as_ref().and_then(|d| d.collective_price),
            payment: download.map(|d| d.tickets).unwrap_or_default(),
        });
        send(pool, worker, command).await?;
        Ok(fetch)
    }

    /// Registers fetch `id` from `worker`; returns its inbox's count of waiting pieces, its receiver
    /// and where a refusal of its payment is kept.
    #[allow(clippy::type_complexity)]
    fn open_inbox(
        &self,
        worker: &PublicId,
        id: &str,
    ) -> (
        Arc<std::sync::atomic::AtomicU32>,
        mpsc::Receiver<Piece>,
        Arc<Mutex<Option<String>>>,
    ) {
        let (pieces, queued) = mpsc::channel(FETCH_WINDOW as usize + 1);
        let waiting = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let refused = Arc::new(Mutex::new(None));
        let inbox = Inbox {
            pieces,
            waiting: Arc::clone(&waiting),
            refused: Arc::clone(&refused),
        };
        self.lock().fetches.insert(id.to_owned(), (*worker, inbox));
        (waiting, queued, refused)
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
        self.lock().challenges.insert(id.clone(), (*worker, done));
        let outcome = tokio::time::timeout(deadline, async {
            send_control(pool, worker, worker_command::Command::Challenge(challenge))
                .await
                .ok()?;
            answer.await.ok()
        })
        .await;
        self.lock().challenges.remove(&id);
        outcome.ok().flatten()
    }

    pub fn on_stored(&self, worker: &PublicId, stored: BlobStored) {
        if let Some(done) = take_if_from(&mut self.lock().pushes, &stored.transfer_id, worker) {
            let _ = done.send(stored);
        }
    }

    pub fn on_answer(&self, worker: &PublicId, answer: ChallengeAnswer) {
        if let Some(done) = take_if_from(&mut self.lock().challenges, &answer.challenge_id, worker)
        {
            let _ = done.send(answer);
        }
    }

    /// Hands a slice piece to its fetch's inbox, never waiting: the Attach loop that calls this also
    /// carries the worker's challenge answers, results and heartbeats. A worker that sends more than
    /// the window it was granted breaks the protocol, and the fetch is dropped. An error piece marked
    /// `payment_refused` is kept as the fetch's refusal.
    pub fn on_piece(&self, worker: &PublicId, piece: dualrig_proto::v1::BlobPiece) {
        let dualrig_proto::v1::BlobPiece {
            fetch_id,
            data,
            last,
            error,
            payment_refused,
        } = piece;
        let fetch_id = fetch_id.as_str();
        let mut pending = self.lock();
        let Some((_, inbox)) = pending.fetches.get(fetch_id).filter(|(w, _)| w == worker) else {
            return;
        };
        if payment_refused && !error.is_empty() {
            *inbox.refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.clone());
        }
        let piece = if error.is_empty() {
            Ok(Bytes::from(data))
        } else {
            Err(error)
        };
        let failed = piece.is_err();
        let waiting = inbox
            .waiting
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel)
            + 1;
        let overrun = waiting > FETCH_WINDOW;
        if overrun {
            tracing::warn!(
                fetch = fetch_id,
                "worker sent past its fetch window; fetch dropped"
            );
            let _ = inbox
                .pieces
                .try_send(Err("the holder sent more than it was granted".into()));
        } else {
            let _ = inbox.pieces.try_send(piece);
        }
        if last || failed || overrun {
            // Dropping the inbox's sender ends the fetch once its relay has handed on what it holds.
            pending.fetches.remove(fetch_id);
        }
    }
}

/// The waiter for `id` when `worker` is the one it waits on.
fn take_if_from<T>(
    waiting: &mut HashMap<String, (PublicId, T)>,
    id: &str,
    worker: &PublicId,
) -> Option<T> {
    if waiting.get(id).is_some_and(|(w, _)| w == worker) {
        waiting.remove(id).map(|(_, t)| t)
    } else {
        None
    }
}

/// Moves one fetch's pieces from its inbox to its reader, one at a time, granting the worker a credit
/// for each piece the reader takes. A reader that leaves a piece untaken for [`FETCH_IDLE`] loses the
/// fetch: the worker is told to stop, and nothing counts against it.
async fn relay(
    links: Arc<Links>,
    pool: Arc<WorkerPool>,
    worker: PublicId,
    id: String,
    (waiting, mut queued): (Arc<std::sync::atomic::AtomicU32>, mpsc::Receiver<Piece>),
    out: mpsc::Sender<Piece>,
) {
    while let Some(piece) = queued.recv().await {
        waiting.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        match tokio::time::timeout(FETCH_IDLE, out.send(piece)).await {
            Ok(Ok(())) => {
                let credit = worker_command::Command::FetchCredit(FetchCredit {
                    fetch_id: id.clone(),
                    pieces: 1,
                });
                if links.lock().fetches.contains_key(&id) {
                    let _ = send_control(&pool, &worker, credit).await;
                }
            }
            // The reader is gone or does not read.
            _ => {
                if links.lock().fetches.remove(&id).is_some() {
                    cancel_fetch(&pool, &worker, &id);
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualrig_proto::identity::Identity;

    fn piece(fetch_id: &str, data: Vec<u8>, last: bool) -> dualrig_proto::v1::BlobPiece {
        dualrig_proto::v1::BlobPiece {
            fetch_id: fetch_id.into(),
            data,
            last,
            ..Default::default()
        }
    }

    /// A reply carries an id any peer could copy; it counts only from the worker it was asked of.
    #[test]
    fn replies_with_another_workers_ids_are_ignored() {
        let links = Links::default();
        let (asked, spoofer) = (Identity::generate().id(), Identity::generate().id());

        let (done, mut answer) = oneshot::channel();
        links.lock().challenges.insert("c1".into(), (asked, done));
        let reply = |by: &str| ChallengeAnswer {
            challenge_id: "c1".into(),
            blobs: vec![dualrig_proto::v1::BlobProofs {
                error: by.into(),
                ..Default::default()
            }],
        };
        links.on_answer(&spoofer, reply("spoofed"));
        assert!(answer.try_recv().is_err(), "a spoofed answer is not taken");
        links.on_answer(&asked, reply("asked"));
        assert_eq!(
            answer.try_recv().expect("the answer").blobs[0].error,
            "asked"
        );

        let (done, mut stored) = oneshot::channel();
        links.lock().pushes.insert("t1".into(), (asked, done));
        let confirm = BlobStored {
            transfer_id: "t1".into(),
            ..Default::default()
        };
        links.on_stored(&spoofer, confirm.clone());
        assert!(
            stored.try_recv().is_err(),
            "a spoofed confirmation is not taken"
        );
        links.on_stored(&asked, confirm);
        assert!(stored.try_recv().is_ok());

        let (_, mut pieces, _) = links.open_inbox(&asked, "f1");
        links.on_piece(&spoofer, piece("f1", vec![6; 4], true));
        assert!(pieces.try_recv().is_err(), "a spoofed piece is not taken");
        assert!(
            links.lock().fetches.contains_key("f1"),
            "nor does it end the fetch"
        );
        links.on_piece(&asked, piece("f1", vec![7; 4], true));
        assert_eq!(
            &pieces.try_recv().expect("piece").expect("data")[..],
            &[7; 4]
        );
    }

    /// A holder that sends past the window it was granted loses the fetch, and the reader is told why
    /// after the pieces it was granted.
    #[test]
    fn a_holder_that_sends_past_its_window_loses_the_fetch() {
        let links = Links::default();
        let holder = Identity::generate().id();
        let (_, mut pieces, _) = links.open_inbox(&holder, "f1");
        for _ in 0..=FETCH_WINDOW + 3 {
            links.on_piece(&holder, piece("f1", vec![1; 8], false));
        }
        assert!(
            !links.lock().fetches.contains_key("f1"),
            "the fetch is dropped"
        );
        for _ in 0..FETCH_WINDOW {
            assert!(pieces.try_recv().expect("a granted piece").is_ok());
        }
        let why = pieces
            .try_recv()
            .expect("the coordinator's word")
            .expect_err("an error");
        assert!(why.contains("more than it was granted"), "{why}");
        assert!(pieces.try_recv().is_err(), "nothing after it");
    }
}
