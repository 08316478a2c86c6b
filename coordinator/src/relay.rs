//! Links between coordinators sharing one database (PROTOCOL §8.4). Every coordinator opens a `Peer.Link`
//! to every other live one in the registry; over it the acceptor lists the workers attached to it, and
//! the dialer sends them commands as if they were attached to itself. So the dialer's pool holds every
//! worker attached anywhere (a remote one is a pool entry whose queues the link drains), its stake ×
//! score draw is over all of them, and jobs, pushes, fetches and repairs reach a remote worker unchanged.
//! The acceptor hands a relayed job to its worker through its own pool (it counts against the worker's
//! sessions like a job of its own) and sends the outcome back unverified: the dialer took the job, so
//! the dialer verifies it, once. Storage answers (`BlobStored`, `BlobPiece`) go back by the transfer or
//! fetch id the command carried. Challenges never cross: each coordinator challenges the workers
//! attached to it.
//!
//! Both ends prove their coordinator key over both ends' fresh nonces ([`link_message`]), and each end
//! accepts only a key the registry lists as live, the dialer only the key the registry lists at the
//! address it dialed: a peer with a throwaway key gets `PermissionDenied` before any worker is listed.
//! Until a link is proven it is cheap to hold: its messages are held to [`MAX_HANDSHAKE_MESSAGE`]
//! ([`crate::limits`]), at most [`OPENING_PER_HOST`] links from one address and [`OPENING`] in all are
//! being opened at once (the rest get `ResourceExhausted` at once), and the registry is read at most
//! once per [`REGISTRY_FRESH`] however many links are opened.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dualrig_proto::identity::{Identity, LinkRole, PublicId, link_message};
use dualrig_proto::v1::peer_client::PeerClient;
use dualrig_proto::v1::peer_server::Peer;
use dualrig_proto::v1::{
    JobFailure, LinkChallenge, LinkDown, LinkOpen, LinkProve, LinkUp, RelayedCommand, RelayedEvent,
    RemoteWorker, WorkerCommand, WorkerEvent, link_down, link_up, worker_command, worker_event,
};
use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, info, info_span, warn};

use crate::ledger::{CoordinatorEntry, Ledger};
use crate::network::Network;
use crate::pool::{AttemptOutcome, CommandQueues, WorkerPool};
use crate::slots::Slots;
use crate::storage::BlobService;

/// How long each end of a link may take over its step of the handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// The dialer's handshake messages: its open and its proof.
pub const HANDSHAKE_MESSAGES: u32 = 2;
/// The largest handshake message a dialer may send: a key, a nonce and a signature fit many times.
pub const MAX_HANDSHAKE_MESSAGE: usize = 4 << 10;
/// Links being opened (not yet proven) at once, from all addresses.
pub const OPENING: usize = 256;
/// Links being opened at once from one address.
pub const OPENING_PER_HOST: usize = 8;
/// How long a read of the registry answers for the links opened after it.
pub const REGISTRY_FRESH: Duration = Duration::from_millis(250);
/// How often an acceptor looks for changes in what it lists, besides every change of its pool.
const LISTING_EVERY: Duration = Duration::from_millis(500);
/// Messages queued to one link before a sender waits.
const LINK_QUEUE: usize = 256;
/// How long a worker's answer may wait for room in its link before it is dropped (the dialer's
/// push or fetch then times out, as with a worker that never answered).
const ANSWER_WAIT: Duration = Duration::from_secs(5);
/// Room above a worker's largest message for the link's own fields.
const LINK_OVERHEAD: usize = 64 << 10;

/// The largest message either end of a link sends: a relayed job or result and its envelope.
pub const MAX_LINK_MESSAGE: usize = dualrig_proto::MAX_MESSAGE_BYTES + LINK_OVERHEAD;

type Down = Result<LinkDown, Status>;

/// Where a worker attached here sends the answer to a relayed storage command.
struct Route {
    worker: PublicId,
    link: mpsc::Sender<Down>,
}

/// This coordinator's links: the ones it accepted (serving its workers) and the ones it dialed
/// (reaching the others').
pub struct Relay {
    identity: Arc<Identity>,
    ledger: Arc<Ledger>,
    pool: Arc<WorkerPool>,
    storage: Arc<BlobService>,
    /// A registry row older than this many seconds is not a live coordinator.
    silent_after: u64,
    /// Transfer and fetch ids of relayed storage commands still owed an answer, by id.
    routes: Mutex<HashMap<String, Route>>,
    /// Dialed links running, by the coordinator they reach.
    dialed: Mutex<HashMap<PublicId, tokio::task::JoinHandle<()>>>,
    /// Accepted links not yet proven, by the address they came from.
    opening: Slots,
    /// The last read of the registry's live coordinators, and when it was read.
    registry: tokio::sync::Mutex<Option<(Instant, Vec<CoordinatorEntry>)>>,
    closed: watch::Sender<bool>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").finish_non_exhaustive()
    }
}

/// Why a link was refused or ended, as its other end is told.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("the link's next message must be {expected}")]
    OutOfOrder { expected: &'static str },
    #[error("waited {} s for {expected}", HANDSHAKE.as_secs())]
    Slow { expected: &'static str },
    #[error(
        "{here} links from {from} are being opened already (at most {OPENING_PER_HOST} from one address, {OPENING} in all); finish or drop one and try again"
    )]
    Busy { here: usize, from: String },
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Malformed(String),
    #[error(
        "coordinator {0} is not a live coordinator in this database's registry; only coordinators sharing the database may link"
    )]
    NotRegistered(PublicId),
    #[error("a coordinator cannot link to itself")]
    Itself,
    #[error(
        "the coordinator at {addr} answered as {answered}, but the registry lists {listed} there"
    )]
    WrongPeer {
        addr: String,
        answered: PublicId,
        listed: PublicId,
    },
    #[error("link signature does not verify: {0}")]
    BadSignature(String),
    #[error("cannot reach {addr}: {why}")]
    Unreachable { addr: String, why: String },
    #[error("the registry cannot be read: {0}")]
    Registry(String),
    #[error("the link broke: {0}")]
    Broken(String),
}

impl From<LinkError> for Status {
    fn from(e: LinkError) -> Self {
        let text = e.to_string();
        match e {
            LinkError::OutOfOrder { .. } | LinkError::Malformed(_) | LinkError::Itself => {
                Status::invalid_argument(text)
            }
            LinkError::Slow { .. } => Status::deadline_exceeded(text),
            LinkError::Busy { .. } | LinkError::TooLarge(_) => Status::resource_exhausted(text),
            LinkError::NotRegistered(_) | LinkError::WrongPeer { .. } => {
                Status::permission_denied(text)
            }
            LinkError::BadSignature(_) => Status::unauthenticated(text),
            LinkError::Unreachable { .. } | LinkError::Broken(_) => Status::unavailable(text),
            LinkError::Registry(_) => Status::internal(text),
        }
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn nonce() -> Vec<u8> {
    rand::random::<[u8; 32]>().to_vec()
}

fn check_nonce(nonce: &[u8]) -> Result<(), LinkError> {
    if nonce.len() == 32 {
        Ok(())
    } else {
        Err(LinkError::Malformed(format!(
            "nonce is {} bytes; send 32 fresh random bytes",
            nonce.len()
        )))
    }
}

fn coordinator_id(bytes: &[u8]) -> Result<PublicId, LinkError> {
    PublicId::from_slice("coordinator_id", bytes).map_err(|e| LinkError::Malformed(e.to_string()))
}

impl Relay {
    pub fn new(
        identity: Arc<Identity>,
        ledger: Arc<Ledger>,
        pool: Arc<WorkerPool>,
        storage: Arc<BlobService>,
        silent_after: u64,
    ) -> Arc<Self> {
        Arc::new(Self {
            identity,
            ledger,
            pool,
            storage,
            silent_after,
            routes: Mutex::default(),
            dialed: Mutex::default(),
            opening: Slots::new(OPENING_PER_HOST, OPENING),
            registry: tokio::sync::Mutex::new(None),
            closed: watch::channel(false).0,
        })
    }

    /// Ends every link: part of shutting down, so that no link holds the server open.
    pub fn close(&self) {
        self.closed.send_replace(true);
        for (_, task) in lock(&self.dialed).drain() {
            task.abort();
        }
    }

    /// The live coordinators in the registry, read again once the last read is older than
    /// [`REGISTRY_FRESH`]: links opened at once share one read.
    async fn live(&self) -> Result<Vec<CoordinatorEntry>, LinkError> {
        let mut last = self.registry.lock().await;
        if let Some((at, live)) = last.as_ref()
            && at.elapsed() < REGISTRY_FRESH
        {
            return Ok(live.clone());
        }
        let silent_after = self.silent_after;
        let live = self
            .ledger
            .call(move |l| l.live_coordinators(now_unix(), silent_after))
            .await
            .map_err(|e| LinkError::Registry(e.to_string()))?;
        *last = Some((Instant::now(), live.clone()));
        Ok(live)
    }

    async fn check_registered(&self, id: PublicId) -> Result<(), LinkError> {
        if id == self.identity.id() {
            return Err(LinkError::Itself);
        }
        if self.live().await?.iter().any(|c| c.id == id) {
            Ok(())
        } else {
            Err(LinkError::NotRegistered(id))
        }
    }

    /// Hands a worker's answer to the link whose command it answers; `false` when it answers none
    /// (it is this coordinator's own).
    pub async fn answer(&self, worker: PublicId, event: &worker_event::Event) -> bool {
        let route = {
            let mut routes = lock(&self.routes);
            let (id, done) = match event {
                worker_event::Event::Stored(s) => (&s.transfer_id, true),
                worker_event::Event::Piece(p) => (&p.fetch_id, p.last || !p.error.is_empty()),
                _ => return false,
            };
            match routes.get(id) {
                Some(r) if r.worker == worker => {
                    let link = r.link.clone();
                    if done {
                        routes.remove(id);
                    }
                    link
                }
                _ => return false,
            }
        };
        let down = LinkDown {
            message: Some(link_down::Message::Event(RelayedEvent {
                worker_id: worker.as_bytes().to_vec(),
                event: Some(WorkerEvent {
                    event: Some(event.clone()),
                }),
            })),
        };
        if tokio::time::timeout(ANSWER_WAIT, route.send(Ok(down)))
            .await
            .is_err()
        {
            warn!(worker = %worker.short(), "a link was too slow to take a worker's answer; dropped");
        }
        crate::metrics::relayed("answer");
        true
    }

    // ---- Dialing --------------------------------------------------------------------------------

    /// Keeps a link open to every other live coordinator in the registry, looking again every
    /// `every`; a link that ends is opened again at the next look while its coordinator is live.
    pub async fn dial_forever(self: Arc<Self>, every: Duration) {
        let mut closed = self.closed.subscribe();
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = closed.wait_for(|c| *c) => return,
                _ = ticks.tick() => {}
            }
            let live = match self.live().await {
                Ok(live) => live,
                Err(e) => {
                    warn!(error = %e, "cannot read the coordinators registry; links unchanged");
                    continue;
                }
            };
            let mut dialed = lock(&self.dialed);
            dialed.retain(|_, task| !task.is_finished());
            for peer in live {
                if peer.id == self.identity.id() || dialed.contains_key(&peer.id) {
                    continue;
                }
                let relay = Arc::clone(&self);
                let id = peer.id;
                let span = info_span!("link", to = %id.short());
                dialed.insert(
                    id,
                    tokio::spawn(
                        async move {
                            match relay.dial(&peer).await {
                                Ok(()) => info!("link closed"),
                                Err(e) => info!(error = %e, "link ended"),
                            }
                        }
                        .instrument(span),
                    ),
                );
            }
            crate::metrics::links_dialed(dialed.len());
        }
    }

    /// Runs one link to `peer` until it ends: the handshake, then the peer's workers listed in this
    /// coordinator's pool and their answers routed in, until either end goes.
    async fn dial(&self, peer: &CoordinatorEntry) -> Result<(), LinkError> {
        let addr = peer.advertise_addr.clone();
        let unreachable = |why: String| LinkError::Unreachable {
            addr: addr.clone(),
            why,
        };
        let channel = tonic::transport::Endpoint::from_shared(addr.clone())
            .map_err(|e| unreachable(e.to_string()))?
            .connect_timeout(HANDSHAKE)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .connect()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let mut client = PeerClient::new(channel)
            .max_decoding_message_size(MAX_LINK_MESSAGE)
            .max_encoding_message_size(MAX_LINK_MESSAGE);
        let (up, up_rx) = mpsc::channel::<LinkUp>(LINK_QUEUE);
        let my_nonce = nonce();
        let me = self.identity.id();
        let _ = up
            .send(LinkUp {
                message: Some(link_up::Message::Open(LinkOpen {
                    coordinator_id: me.as_bytes().to_vec(),
                    nonce: my_nonce.clone(),
                })),
            })
            .await;
        let mut down = client
            .link(ReceiverStream::new(up_rx))
            .await
            .map_err(|s| unreachable(s.message().to_owned()))?
            .into_inner();
        let challenge = handshake_step(&mut down, "a challenge", |m: LinkDown| match m.message {
            Some(link_down::Message::Challenge(c)) => Some(c),
            _ => None,
        })
        .await?;
        let answered = coordinator_id(&challenge.coordinator_id)?;
        if answered != peer.id {
            return Err(LinkError::WrongPeer {
                addr: addr.clone(),
                answered,
                listed: peer.id,
            });
        }
        check_nonce(&challenge.nonce)?;
        let signed = link_message(
            LinkRole::Acceptor,
            &me,
            &peer.id,
            &my_nonce,
            &challenge.nonce,
        );
        peer.id
            .verify(&signed, &challenge.signature)
            .map_err(|e| LinkError::BadSignature(e.to_string()))?;
        let proof = self.identity.sign(&link_message(
            LinkRole::Dialer,
            &me,
            &peer.id,
            &my_nonce,
            &challenge.nonce,
        ));
        let _ = up
            .send(LinkUp {
                message: Some(link_up::Message::Prove(LinkProve {
                    signature: proof.to_vec(),
                })),
            })
            .await;
        info!(addr = %addr, "link open");
        let mut remote = RemoteWorkers {
            pool: &self.pool,
            connections: HashMap::new(),
        };
        let ended = self.receive(peer.id, &mut down, &up, &mut remote).await;
        remote.detach_all();
        ended
    }

    /// What comes down a dialed link, applied until it ends.
    async fn receive(
        &self,
        via: PublicId,
        down: &mut Streaming<LinkDown>,
        up: &mpsc::Sender<LinkUp>,
        remote: &mut RemoteWorkers<'_>,
    ) -> Result<(), LinkError> {
        let mut closed = self.closed.subscribe();
        loop {
            let message = tokio::select! {
                _ = closed.wait_for(|c| *c) => return Ok(()),
                m = down.message() => m,
            };
            let message = match message {
                Ok(Some(m)) => m.message,
                Ok(None) => return Ok(()),
                Err(status) => return Err(LinkError::Broken(status.message().to_owned())),
            };
            match message {
                Some(link_down::Message::Attached(listed)) => {
                    let Ok(worker) = PublicId::from_slice("worker_id", &listed.worker_id) else {
                        continue;
                    };
                    let capabilities = listed.capabilities.unwrap_or_default();
                    let network = Network::from_wire(&listed.network);
                    if let Some((connection, queues)) =
                        self.pool.attach_remote(worker, capabilities, network, via)
                    {
                        remote.connections.insert(worker, connection);
                        tokio::spawn(forward(worker, queues, up.clone()));
                    }
                    if remote.connections.contains_key(&worker) {
                        self.storage
                            .set_room(worker, listed.free_bytes, listed.capacity_bytes);
                    }
                }
                Some(link_down::Message::Detached(worker)) => {
                    if let Ok(worker) = PublicId::from_slice("worker_id", &worker) {
                        remote.detach(worker);
                    }
                }
                Some(link_down::Message::Event(relayed)) => {
                    let Ok(worker) = PublicId::from_slice("worker_id", &relayed.worker_id) else {
                        continue;
                    };
                    let (Some(&connection), Some(event)) = (
                        remote.connections.get(&worker),
                        relayed.event.and_then(|e| e.event),
                    ) else {
                        continue;
                    };
                    self.take_answer(worker, connection, event).await;
                }
                Some(link_down::Message::Challenge(_)) | None => {}
            }
        }
    }

    /// A remote worker's answer, handled as if it had come up its own Attach stream here.
    async fn take_answer(&self, worker: PublicId, connection: u64, event: worker_event::Event) {
        let event = match crate::pool::job_outcome(event) {
            Ok((job_id, outcome)) => {
                self.pool.complete(worker, connection, &job_id, outcome);
                return;
            }
            Err(other) => other,
        };
        // Holdings, challenge answers and the rest stay with the coordinator the worker is attached
        // to.
        if let event @ (worker_event::Event::Stored(_) | worker_event::Event::Piece(_)) = event {
            self.storage.on_event(worker, connection, event).await
        }
    }

    // ---- Accepting ------------------------------------------------------------------------------

    /// The first half of an accepted link's handshake: the dialer's open, checked against the
    /// registry, answered with this coordinator's challenge.
    async fn accept(
        self: Arc<Self>,
        mut up: Streaming<LinkUp>,
        from: Option<IpAddr>,
    ) -> Result<ReceiverStream<Down>, LinkError> {
        // Held until the link is proven or refused.
        let opening = self.opening.take(from).map_err(|full| LinkError::Busy {
            here: full.here,
            from: from.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string()),
        })?;
        let open = handshake_step(&mut up, "an open", |m: LinkUp| match m.message {
            Some(link_up::Message::Open(open)) => Some(open),
            _ => None,
        })
        .await?;
        let dialer = coordinator_id(&open.coordinator_id)?;
        check_nonce(&open.nonce)?;
        self.check_registered(dialer).await?;
        let me = self.identity.id();
        let my_nonce = nonce();
        let signature = self.identity.sign(&link_message(
            LinkRole::Acceptor,
            &dialer,
            &me,
            &open.nonce,
            &my_nonce,
        ));
        let (down, down_rx) = mpsc::channel::<Down>(LINK_QUEUE);
        let _ = down
            .send(Ok(LinkDown {
                message: Some(link_down::Message::Challenge(LinkChallenge {
                    coordinator_id: me.as_bytes().to_vec(),
                    nonce: my_nonce.clone(),
                    signature: signature.to_vec(),
                })),
            }))
            .await;
        let span = info_span!("link", from = %dialer.short());
        tokio::spawn(
            async move {
                let proven = self.prove(dialer, &open.nonce, &my_nonce, &mut up).await;
                drop(opening);
                match proven {
                    Ok(()) => {
                        info!("link accepted");
                        crate::metrics::link_accepted(1);
                        let ended = self.serve(up, down.clone()).await;
                        crate::metrics::link_accepted(-1);
                        if let Err(e) = ended {
                            info!(error = %e, "link ended");
                            let _ = down.send(Err(e.into())).await;
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "link refused");
                        let _ = down.send(Err(e.into())).await;
                    }
                }
            }
            .instrument(span),
        );
        Ok(ReceiverStream::new(down_rx))
    }

    /// The second half: the dialer's signature over both nonces.
    async fn prove(
        &self,
        dialer: PublicId,
        dialer_nonce: &[u8],
        my_nonce: &[u8],
        up: &mut Streaming<LinkUp>,
    ) -> Result<(), LinkError> {
        let prove = handshake_step(up, "a proof", |m: LinkUp| match m.message {
            Some(link_up::Message::Prove(p)) => Some(p),
            _ => None,
        })
        .await?;
        let signed = link_message(
            LinkRole::Dialer,
            &dialer,
            &self.identity.id(),
            dialer_nonce,
            my_nonce,
        );
        dialer
            .verify(&signed, &prove.signature)
            .map_err(|e| LinkError::BadSignature(e.to_string()))
    }

    /// An accepted, proven link: this coordinator's workers listed down it, its commands carried to
    /// them, until the dialer goes.
    async fn serve(
        self: &Arc<Self>,
        mut up: Streaming<LinkUp>,
        down: mpsc::Sender<Down>,
    ) -> Result<(), LinkError> {
        // Workers a command found gone, told to the dialer by `carry`: the lister lists them again
        // should they be attached here once more.
        let told_gone: Arc<Mutex<HashSet<PublicId>>> = Arc::default();
        let lister = tokio::spawn(Arc::clone(self).list(down.clone(), Arc::clone(&told_gone)));
        let mut jobs: HashSet<String> = HashSet::new();
        let mut closed = self.closed.subscribe();
        let ended = loop {
            let message = tokio::select! {
                _ = closed.wait_for(|c| *c) => break Ok(()),
                m = up.message() => m,
            };
            let relayed = match message {
                Ok(Some(LinkUp {
                    message: Some(link_up::Message::Command(c)),
                })) => c,
                Ok(Some(_)) => {
                    break Err(LinkError::OutOfOrder {
                        expected: "a command after the handshake",
                    });
                }
                Ok(None) => break Ok(()),
                Err(status) => break Err(LinkError::Broken(status.message().to_owned())),
            };
            self.carry(relayed, &mut jobs, &down, &told_gone).await;
        };
        lister.abort();
        lock(&self.routes).retain(|_, r| !r.link.same_channel(&down));
        ended
    }

    /// Carries one relayed command to the worker it names, when that worker is attached here;
    /// otherwise tells the dialer the worker is not, and notes it in `told_gone` so that the lister
    /// lists it again if it is back (a worker that reattached here between two listings would
    /// otherwise stay unlisted until something listed of it changed).
    async fn carry(
        self: &Arc<Self>,
        relayed: RelayedCommand,
        jobs: &mut HashSet<String>,
        down: &mpsc::Sender<Down>,
        told_gone: &Mutex<HashSet<PublicId>>,
    ) {
        // Sent before it is noted, so any listing that follows the note comes after it on the link.
        let gone = |worker: PublicId| async move {
            let _ = down.send(Ok(detached(worker))).await;
            lock(told_gone).insert(worker);
        };
        let Ok(worker) = PublicId::from_slice("worker_id", &relayed.worker_id) else {
            return;
        };
        let Some(command) = relayed.command.and_then(|c| c.command) else {
            return;
        };
        crate::metrics::relayed("command");
        let queue = match self.pool.queues_here(&worker) {
            Some((bulk, control)) => {
                if relayed.control {
                    control
                } else {
                    bulk
                }
            }
            None => {
                gone(worker).await;
                return;
            }
        };
        let command = match command {
            worker_command::Command::Job(job) => {
                let job_id = job.job_id.clone();
                match self.pool.assign_relayed(&worker, job) {
                    Some(outcome) => {
                        jobs.insert(job_id.clone());
                        tokio::spawn(send_outcome(worker, job_id, outcome, down.clone()));
                    }
                    None => {
                        let _ = down
                            .send(Ok(failure(
                                worker,
                                job_id,
                                "the worker's queue at its coordinator is full or closed",
                            )))
                            .await;
                    }
                }
                return;
            }
            worker_command::Command::Cancel(cancel) => {
                if jobs.remove(&cancel.job_id) {
                    self.pool.cancel(&cancel.job_id);
                }
                return;
            }
            // Each coordinator challenges the workers attached to it, never another's.
            worker_command::Command::Challenge(_) => return,
            worker_command::Command::Store(store) => {
                if store.offset == 0 {
                    self.route(&store.transfer_id, worker, down);
                }
                worker_command::Command::Store(store)
            }
            worker_command::Command::Fetch(fetch) => {
                self.route(&fetch.fetch_id, worker, down);
                worker_command::Command::Fetch(fetch)
            }
            worker_command::Command::CancelFetch(cancel) => {
                lock(&self.routes).remove(&cancel.fetch_id);
                worker_command::Command::CancelFetch(cancel)
            }
            other @ worker_command::Command::FetchCredit(_) => other,
        };
        let sent = queue
            .send(Ok(WorkerCommand {
                command: Some(command),
            }))
            .await;
        if sent.is_err() {
            gone(worker).await;
        }
    }

    /// Remembers that `worker`'s answer to `id` goes down `down`. An id already routed elsewhere (or
    /// owned by this coordinator's own transfer) is left as it is: the dialer's command then gets no
    /// answer and times out, and no other link's answer is taken.
    fn route(&self, id: &str, worker: PublicId, down: &mpsc::Sender<Down>) {
        lock(&self.routes)
            .entry(id.to_owned())
            .or_insert_with(|| Route {
                worker,
                link: down.clone(),
            });
    }

    /// Lists this coordinator's workers down an accepted link: each one when it attaches or what is
    /// listed of it changes (or after `carry` told the dialer it was gone), and its id when it goes.
    async fn list(
        self: Arc<Self>,
        down: mpsc::Sender<Down>,
        told_gone: Arc<Mutex<HashSet<PublicId>>>,
    ) {
        let mut sent: HashMap<PublicId, RemoteWorker> = HashMap::new();
        loop {
            let changed = self.pool.changed();
            for id in std::mem::take(&mut *lock(&told_gone)) {
                sent.remove(&id);
            }
            let now: HashMap<PublicId, RemoteWorker> = self
                .pool
                .listing_here()
                .into_iter()
                .map(|(id, capabilities, network)| {
                    let room = self.storage.room(&id);
                    let listed = RemoteWorker {
                        worker_id: id.as_bytes().to_vec(),
                        capabilities: Some(capabilities),
                        free_bytes: room.free,
                        capacity_bytes: room.capacity,
                        network: network.map(Network::to_wire).unwrap_or_default(),
                    };
                    (id, listed)
                })
                .collect();
            for (id, listed) in &now {
                if sent.get(id) != Some(listed) {
                    let message = LinkDown {
                        message: Some(link_down::Message::Attached(listed.clone())),
                    };
                    if down.send(Ok(message)).await.is_err() {
                        return;
                    }
                }
            }
            for id in sent.keys().filter(|id| !now.contains_key(id)) {
                if down.send(Ok(detached(*id))).await.is_err() {
                    return;
                }
            }
            sent = now;
            let _ = tokio::time::timeout(LISTING_EVERY, changed).await;
        }
    }
}

/// The workers a dialed link listed in this coordinator's pool, by the connection they were given.
struct RemoteWorkers<'a> {
    pool: &'a WorkerPool,
    connections: HashMap<PublicId, u64>,
}

impl RemoteWorkers<'_> {
    fn detach(&mut self, worker: PublicId) {
        if let Some(connection) = self.connections.remove(&worker) {
            self.pool.detach(worker, connection);
        }
    }

    fn detach_all(&mut self) {
        for (worker, connection) in self.connections.drain() {
            self.pool.detach(worker, connection);
        }
    }
}

/// Drains a remote worker's queues up its link, control first, as an Attach stream would.
async fn forward(worker: PublicId, queues: CommandQueues, up: mpsc::Sender<LinkUp>) {
    let control = ReceiverStream::new(queues.control).map(|c| (true, c));
    let bulk = ReceiverStream::new(queues.bulk).map(|c| (false, c));
    let mut commands = futures::stream::select_with_strategy(control, bulk, |_: &mut ()| {
        futures::stream::PollNext::Left
    });
    while let Some((control, command)) = commands.next().await {
        let Ok(command) = command else { continue };
        let message = LinkUp {
            message: Some(link_up::Message::Command(RelayedCommand {
                worker_id: worker.as_bytes().to_vec(),
                command: Some(command),
                control,
            })),
        };
        if up.send(message).await.is_err() {
            return;
        }
    }
}

/// Sends a relayed job's outcome back down its link, unverified: the coordinator that took the job
/// verifies it.
async fn send_outcome(
    worker: PublicId,
    job_id: String,
    outcome: tokio::sync::oneshot::Receiver<AttemptOutcome>,
    down: mpsc::Sender<Down>,
) {
    let event = match outcome.await {
        Ok(AttemptOutcome::Result(result)) => worker_event::Event::Result(*result),
        Ok(AttemptOutcome::Failed(reason)) => worker_event::Event::Failure(JobFailure {
            job_id,
            reason,
            payment_refused: false,
        }),
        Ok(AttemptOutcome::PaymentRefused(reason)) => worker_event::Event::Failure(JobFailure {
            job_id,
            reason,
            payment_refused: true,
        }),
        // The worker left; its listing's `detached` tells the dialer so.
        Ok(AttemptOutcome::WorkerLost) => return,
        // Cancelled here at the dialer's word.
        Err(_) => return,
    };
    let message = LinkDown {
        message: Some(link_down::Message::Event(RelayedEvent {
            worker_id: worker.as_bytes().to_vec(),
            event: Some(WorkerEvent { event: Some(event) }),
        })),
    };
    let _ = down.send(Ok(message)).await;
}

/// The next message of a handshake, which must arrive within [`HANDSHAKE`] and be the one `pick`
/// takes.
async fn handshake_step<M, T>(
    stream: &mut Streaming<M>,
    expected: &'static str,
    pick: impl FnOnce(M) -> Option<T>,
) -> Result<T, LinkError> {
    match tokio::time::timeout(HANDSHAKE, stream.message()).await {
        Err(_) => Err(LinkError::Slow { expected }),
        // Over the handshake's message limit (`crate::limits`): said as it is.
        Ok(Err(status)) if status.code() == tonic::Code::ResourceExhausted => {
            Err(LinkError::TooLarge(status.message().to_owned()))
        }
        Ok(Err(status)) => Err(LinkError::Broken(status.message().to_owned())),
        Ok(Ok(message)) => message
            .and_then(pick)
            .ok_or(LinkError::OutOfOrder { expected }),
    }
}

fn detached(worker: PublicId) -> LinkDown {
    LinkDown {
        message: Some(link_down::Message::Detached(worker.as_bytes().to_vec())),
    }
}

fn failure(worker: PublicId, job_id: String, reason: &str) -> LinkDown {
    LinkDown {
        message: Some(link_down::Message::Event(RelayedEvent {
            worker_id: worker.as_bytes().to_vec(),
            event: Some(WorkerEvent {
                event: Some(worker_event::Event::Failure(JobFailure {
                    job_id,
                    reason: reason.to_owned(),
                    payment_refused: false,
                })),
            }),
        })),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The `dualrig.v1.Peer` service: links from the other coordinators sharing the database.
#[derive(Debug)]
pub struct PeerService {
    relay: Arc<Relay>,
}

impl PeerService {
    pub fn new(relay: Arc<Relay>) -> Self {
        Self { relay }
    }
}

pub type LinkStream = Pin<Box<dyn Stream<Item = Down> + Send + 'static>>;

#[tonic::async_trait]
impl Peer for PeerService {
    type LinkStream = LinkStream;

    async fn link(
        &self,
        request: Request<Streaming<LinkUp>>,
    ) -> Result<Response<Self::LinkStream>, Status> {
        let from = request.remote_addr().map(|a| a.ip());
        let down = Arc::clone(&self.relay)
            .accept(request.into_inner(), from)
            .await?;
        Ok(Response::new(Box::pin(down) as Self::LinkStream))
    }
}
