//! The worker pool: registration nonces and sessions, the workers attached right now, the jobs each
//! one holds, and what assignment weighs them by (stake cached from the ledger, a score of recent
//! success). Every change that could make a waiting job assignable wakes the waiters.
//!
//! The pool never touches the ledger: [`crate::stakes`] reads it off the pool's lock and hands the
//! result to [`WorkerPool::set_stakes`].

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dualrig_proto::identity::{PublicId, registration_message};
use dualrig_proto::v1::{
    CancelJob, Capabilities, JobResult, TicketParams, TranscodeJob, WorkerCommand, WorkerInfo,
    worker_command, worker_event,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::{Notify, mpsc, oneshot};
use tonic::Status;

use crate::error::CoordinatorError;
use crate::ledger::{Candidate, draw_weighted};
use crate::metrics;
use crate::network::Network;

#[cfg(test)]
mod tests;

/// How long a Hello nonce stays valid.
const NONCE_TTL: Duration = Duration::from_secs(30);
/// How long a session token may wait before its Attach.
const SESSION_TTL: Duration = Duration::from_secs(60);
/// Registrations in progress at once (nonces issued, tokens not yet attached): a flood of Hellos
/// from fresh keys is refused past this instead of growing the pool's maps.
pub const MAX_PENDING_REGISTRATIONS: usize = 4096;
/// Live Get nonces one account may hold.
pub const MAX_GET_NONCES_PER_ACCOUNT: usize = 16;
/// Commands queued to one worker before it counts as unable to take more.
const COMMAND_QUEUE: usize = 16;
/// Control commands (challenges, cancels, credits) queued to one worker; they go out ahead of bulk.
const CONTROL_QUEUE: usize = 64;
/// A worker's score when nothing is known against it.
const FULL_SCORE: f64 = 1.0;
/// The lowest a score goes, so a worker that recovers can be drawn again.
const MIN_SCORE: f64 = 0.01;
/// What a success adds back to a score.
const SCORE_RECOVERY: f64 = 0.1;

pub type CommandSender = mpsc::Sender<Result<WorkerCommand, Status>>;
pub type CommandReceiver = mpsc::Receiver<Result<WorkerCommand, Status>>;

/// What goes down one worker's Attach stream: bulk (jobs, blob pieces, fetch requests) and control
/// (challenges, cancels, fetch credits). The stream sends control first, so no client's bulk traffic
/// delays a challenge.
#[derive(Debug)]
pub struct CommandQueues {
    pub bulk: CommandReceiver,
    pub control: CommandReceiver,
}

/// How one attempt of a job on one worker ended, as seen by the pool.
#[derive(Debug)]
pub enum AttemptOutcome {
    Result(Box<JobResult>),
    Failed(String),
    /// The worker refused the job's payment: not its fault, so neither its score nor its failure
    /// count moves.
    PaymentRefused(String),
    WorkerLost,
}

/// What a job needs of a worker.
#[derive(Debug, Clone, Copy)]
pub struct Requirements {
    pub width: u32,
    pub height: u32,
}

struct Registration {
    id: PublicId,
    capabilities: Capabilities,
    expires: Instant,
}

struct ConnectedWorker {
    connection: u64,
    capabilities: Capabilities,
    sessions: u32,
    in_flight: HashSet<String>,
    commands: CommandSender,
    control: CommandSender,
    jobs_done: u64,
    jobs_failed: u64,
    /// The network its connection comes from, as the coordinator it is attached to sees it.
    network: Option<Network>,
    /// The coordinator it is attached to when that is another one sharing the database (its commands
    /// go over that coordinator's link, [`crate::relay`]); `None` when it is attached here.
    via: Option<PublicId>,
}

impl ConnectedWorker {
    fn can_take(&self, needs: Requirements) -> bool {
        (self.in_flight.len() as u32) < self.sessions
            && needs.width <= self.capabilities.max_width
            && needs.height <= self.capabilities.max_height
    }
}

/// A worker's stake as the ledger last said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StakeView {
    /// Bonded plus delegated stake.
    pub stake: u64,
    /// Mining weight bought from the SIP, in stake units; it counts only next to eligible stake.
    pub mining: u64,
    /// Suspended after a slash; not eligible until the suspension ends.
    pub suspended: bool,
}

struct PendingJob {
    worker: PublicId,
    connection: u64,
    reply: oneshot::Sender<AttemptOutcome>,
}

struct PoolState {
    nonces: HashMap<[u8; 32], (PublicId, Instant)>,
    /// Nonces for signed Gets (PROTOCOL §6.10), apart from registrations so neither replaces the other.
    get_nonces: HashMap<[u8; 32], (PublicId, Instant)>,
    registrations: HashMap<String, Registration>,
    workers: HashMap<PublicId, ConnectedWorker>,
    pending: HashMap<String, PendingJob>,
    next_connection: u64,
    closed: bool,
    /// Stake per worker from the ledger; kept by id, so a reconnect keeps it.
    stakes: HashMap<PublicId, StakeView>,
    /// Recent success in [MIN_SCORE, 1], by id; absent means FULL_SCORE.
    scores: HashMap<PublicId, f64>,
    rng: StdRng,
}

impl PoolState {
    fn score(&self, id: &PublicId) -> f64 {
        self.scores.get(id).copied().unwrap_or(FULL_SCORE)
    }

    /// The stake assignment weighs `id` by, or `None` when it may not be drawn. With `min_stake`
    /// 0 every worker that is not suspended counts, with at least 1 so unstaked ones can be drawn.
    fn weight_stake(&self, id: &PublicId, min_stake: u64) -> Option<u64> {
        let view = self.stakes.get(id).copied().unwrap_or_default();
        if view.suspended {
            None
        } else if min_stake == 0 {
            Some(view.stake.max(1))
        } else if view.stake >= min_stake {
            Some(view.stake)
        } else {
            None
        }
    }

    /// Draws one of `ids` with weight (stake + mining weight) × score; ids that may not be drawn are skipped. The ids are
    /// sorted first: map order varies from run to run, and a fixed order makes a seeded draw repeat.
    fn draw(&mut self, ids: Vec<PublicId>, min_stake: u64) -> Option<PublicId> {
        let mut candidates: Vec<Candidate> = ids
            .into_iter()
            .filter_map(|id| {
                Some(Candidate {
                    worker: id,
                    stake: self.weight_stake(&id, min_stake)?,
                    mining: self.stakes.get(&id).map_or(0, |v| v.mining),
                    score: self.score(&id),
                })
            })
            .collect();
        candidates.sort_by(|a, b| a.worker.as_bytes().cmp(b.worker.as_bytes()));
        draw_weighted(&candidates, &mut self.rng).map(|c| c.worker)
    }
}

/// A job handed to a worker; the receiver yields how the attempt ended.
#[derive(Debug)]
pub struct Assignment {
    pub worker: PublicId,
    pub outcome: oneshot::Receiver<AttemptOutcome>,
}

/// Why no worker could be picked, for the error a client sees.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shortage {
    pub connected: usize,
    pub busy: usize,
    pub excluded: usize,
    pub too_small: usize,
    /// Free workers without enough stake, or suspended.
    pub unstaked: usize,
    /// The stake a worker needs to be drawn, in base units.
    pub min_stake: u64,
}

impl std::fmt::Display for Shortage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} worker(s) connected: {} busy, {} already failed this job, {} cannot output this size, {} below the minimum stake or suspended",
            self.connected, self.busy, self.excluded, self.too_small, self.unstaked
        )?;
        if self.unstaked > 0 {
            let stake = dualrig_proto::amount::format_tokens(self.min_stake);
            write!(
                f,
                "; a worker is drawn once it has bonded at least {stake} tokens (`dualrig --key WORKER_DATA_DIR/worker.key stake bond {stake}`, from tokens in its account), or start the coordinator with `--min-stake 0` to draw every worker"
            )?;
        }
        Ok(())
    }
}

pub struct WorkerPool {
    state: Mutex<PoolState>,
    changed: Notify,
    /// Least stake to be drawn; 0 opens the pool to every attached worker.
    min_stake: u64,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool").finish_non_exhaustive()
    }
}

impl WorkerPool {
    pub fn new(min_stake: u64) -> Self {
        Self::with_rng(min_stake, StdRng::from_entropy())
    }

    /// A pool that draws workers from `rng`: seeded, a sequence of draws is reproducible.
    pub fn with_rng(min_stake: u64, rng: StdRng) -> Self {
        Self {
            state: Mutex::new(PoolState {
                nonces: HashMap::new(),
                get_nonces: HashMap::new(),
                registrations: HashMap::new(),
                workers: HashMap::new(),
                pending: HashMap::new(),
                next_connection: 0,
                closed: false,
                stakes: HashMap::new(),
                scores: HashMap::new(),
                rng,
            }),
            changed: Notify::new(),
            min_stake,
        }
    }

    pub fn min_stake(&self) -> u64 {
        self.min_stake
    }

    /// Replaces the stake the pool weighs workers by with the ledger's latest word.
    pub fn set_stakes(&self, stakes: HashMap<PublicId, StakeView>) {
        self.lock().stakes = stakes;
        self.changed.notify_waiters();
    }

    /// Ids of the workers attached now.
    pub fn attached(&self) -> Vec<PublicId> {
        self.lock().workers.keys().copied().collect()
    }

    /// `id`'s score of recent success, in (0, 1].
    pub fn score(&self, id: &PublicId) -> f64 {
        self.lock().score(id)
    }

    /// Halves `id`'s score (a timeout or a failed verification), down to the floor.
    pub fn lower_score(&self, id: PublicId) {
        let mut state = self.lock();
        let score = (state.score(&id) * 0.5).max(MIN_SCORE);
        state.scores.insert(id, score);
    }

    fn raise_score(state: &mut PoolState, id: PublicId) {
        let score = (state.score(&id) + SCORE_RECOVERY).min(FULL_SCORE);
        state.scores.insert(id, score);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        // A panic while holding the lock leaves maps that are still each consistent; keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh nonce for `worker` to sign.
    pub fn issue_nonce(&self, worker: PublicId) -> Result<[u8; 32], CoordinatorError> {
        let nonce: [u8; 32] = rand::random();
        let mut state = self.lock();
        let now = Instant::now();
        // One live nonce per id: a later Hello replaces the earlier one.
        state
            .nonces
            .retain(|_, (id, issued)| now - *issued < NONCE_TTL && *id != worker);
        if state.nonces.len() >= MAX_PENDING_REGISTRATIONS {
            return Err(CoordinatorError::Busy(format!(
                "{MAX_PENDING_REGISTRATIONS} registrations are in progress; try again in a few seconds"
            )));
        }
        state.nonces.insert(nonce, (worker, now));
        Ok(nonce)
    }

    /// A fresh nonce for `account` to sign a Get with. An account holds at most
    /// [`MAX_GET_NONCES_PER_ACCOUNT`] live ones (its oldest goes first), so several Gets can run at once.
    pub fn issue_get_nonce(&self, account: PublicId) -> Result<[u8; 32], CoordinatorError> {
        let nonce: [u8; 32] = rand::random();
        let mut state = self.lock();
        let now = Instant::now();
        state
            .get_nonces
            .retain(|_, (_, issued)| now - *issued < NONCE_TTL);
        let mut mine: Vec<([u8; 32], Instant)> = state
            .get_nonces
            .iter()
            .filter(|(_, (id, _))| *id == account)
            .map(|(n, (_, at))| (*n, *at))
            .collect();
        if mine.len() >= MAX_GET_NONCES_PER_ACCOUNT {
            mine.sort_by_key(|(_, at)| *at);
            state.get_nonces.remove(&mine[0].0);
        }
        if state.get_nonces.len() >= MAX_PENDING_REGISTRATIONS {
            return Err(CoordinatorError::Busy(format!(
                "{MAX_PENDING_REGISTRATIONS} signed Gets are being prepared; try again in a few seconds"
            )));
        }
        state.get_nonces.insert(nonce, (account, now));
        Ok(nonce)
    }

    /// Uses up a Get nonce: it must have been issued to `account` within the last 30 s and not used.
    pub fn take_get_nonce(&self, nonce: &[u8], account: &PublicId) -> Result<(), CoordinatorError> {
        let key: [u8; 32] = nonce.try_into().map_err(|_| {
            CoordinatorError::Unauthenticated(format!(
                "nonce is {} bytes; send the 32-byte nonce Hello (for_get) returned",
                nonce.len()
            ))
        })?;
        let (issued_to, issued) = self.lock().get_nonces.remove(&key).ok_or_else(|| {
            CoordinatorError::Unauthenticated(
                "unknown or already used Get nonce; call Hello with for_get again".into(),
            )
        })?;
        if issued_to != *account || issued.elapsed() > NONCE_TTL {
            return Err(CoordinatorError::Unauthenticated(
                "Get nonce was issued to another account or has expired; call Hello with for_get again"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Checks a registration's signature over its nonce and returns the session token for Attach.
    pub fn register(
        &self,
        worker: PublicId,
        nonce: &[u8],
        signature: &[u8],
        capabilities: Capabilities,
    ) -> Result<String, CoordinatorError> {
        let key: [u8; 32] = nonce.try_into().map_err(|_| {
            CoordinatorError::Unauthenticated(format!(
                "nonce is {} bytes; send the 32-byte nonce Hello returned",
                nonce.len()
            ))
        })?;
        let mut state = self.lock();
        let (issued_to, issued) = state.nonces.remove(&key).ok_or_else(|| {
            CoordinatorError::Unauthenticated(
                "unknown or already used nonce; call Hello again".into(),
            )
        })?;
        if issued_to != worker || issued.elapsed() > NONCE_TTL {
            return Err(CoordinatorError::Unauthenticated(
                "nonce was issued to another worker id or has expired; call Hello again".into(),
            ));
        }
        worker
            .verify(&registration_message(nonce, &worker), signature)
            .map_err(|e| {
                CoordinatorError::Unauthenticated(format!(
                    "registration signature does not match worker id {worker}: {e}"
                ))
            })?;
        check_capabilities(&capabilities)?;
        let token = hex::encode(rand::random::<[u8; 24]>());
        let now = Instant::now();
        state
            .registrations
            .retain(|_, r| r.expires > now && r.id != worker);
        if state.registrations.len() >= MAX_PENDING_REGISTRATIONS {
            return Err(CoordinatorError::Busy(format!(
                "{MAX_PENDING_REGISTRATIONS} registrations are waiting for their Attach; try again in a few seconds"
            )));
        }
        state.registrations.insert(
            token.clone(),
            Registration {
                id: worker,
                capabilities,
                expires: now + SESSION_TTL,
            },
        );
        Ok(token)
    }

    /// Turns a session token into an attached worker with a command queue. A worker already attached under
    /// the same id is replaced, and the jobs it held are treated as lost.
    pub fn attach(&self, token: &str) -> Result<(PublicId, u64, CommandQueues), CoordinatorError> {
        let mut state = self.lock();
        if state.closed {
            return Err(CoordinatorError::ShuttingDown);
        }
        let registration = state.registrations.remove(token).ok_or_else(|| {
            CoordinatorError::Unauthenticated(
                "unknown or expired session token; register again".into(),
            )
        })?;
        let id = registration.id;
        state.next_connection += 1;
        let connection = state.next_connection;
        let (tx, bulk) = mpsc::channel(COMMAND_QUEUE);
        let (control_tx, control) = mpsc::channel(CONTROL_QUEUE);
        let sessions = registration.capabilities.sessions.max(1);
        if let Some(old) = state.workers.remove(&id) {
            fail_jobs_of(&mut state, id, old.connection);
        }
        state.workers.insert(
            id,
            ConnectedWorker {
                connection,
                capabilities: registration.capabilities,
                sessions,
                in_flight: HashSet::new(),
                commands: tx,
                control: control_tx,
                jobs_done: 0,
                jobs_failed: 0,
                network: None,
                via: None,
            },
        );
        metrics::workers_connected(attached_here_count(&state));
        drop(state);
        self.changed.notify_waiters();
        Ok((id, connection, CommandQueues { bulk, control }))
    }

    /// Lists a worker attached to coordinator `via` (it reached this one over `via`'s link) with a
    /// command queue whose commands the link carries there. A worker attached here stays as it is, and
    /// a listing from the coordinator it is already listed through only updates its capabilities:
    /// both return `None`. A listing through another coordinator replaces the old one (the worker
    /// moved), and the jobs it held there are treated as lost.
    pub fn attach_remote(
        &self,
        id: PublicId,
        capabilities: Capabilities,
        network: Option<Network>,
        via: PublicId,
    ) -> Option<(u64, CommandQueues)> {
        let mut state = self.lock();
        if state.closed {
            return None;
        }
        if let Some(w) = state.workers.get_mut(&id) {
            match w.via {
                None => return None,
                Some(old) if old == via => {
                    w.sessions = capabilities.sessions.max(1);
                    w.capabilities = capabilities;
                    w.network = network;
                    drop(state);
                    self.changed.notify_waiters();
                    return None;
                }
                Some(_) => {
                    let old = w.connection;
                    state.workers.remove(&id);
                    fail_jobs_of(&mut state, id, old);
                }
            }
        }
        state.next_connection += 1;
        let connection = state.next_connection;
        let (tx, bulk) = mpsc::channel(COMMAND_QUEUE);
        let (control_tx, control) = mpsc::channel(CONTROL_QUEUE);
        state.workers.insert(
            id,
            ConnectedWorker {
                connection,
                sessions: capabilities.sessions.max(1),
                capabilities,
                in_flight: HashSet::new(),
                commands: tx,
                control: control_tx,
                jobs_done: 0,
                jobs_failed: 0,
                network,
                via: Some(via),
            },
        );
        drop(state);
        self.changed.notify_waiters();
        Some((connection, CommandQueues { bulk, control }))
    }

    /// The bulk and control queues of `id` when it is attached here (not through another's link).
    pub fn queues_here(&self, id: &PublicId) -> Option<(CommandSender, CommandSender)> {
        self.lock()
            .workers
            .get(id)
            .filter(|w| w.via.is_none())
            .map(|w| (w.commands.clone(), w.control.clone()))
    }

    /// Ids of the workers attached to this coordinator (not through another's link): the ones its
    /// challenge rounds cover and its links list.
    pub fn attached_here(&self) -> Vec<PublicId> {
        self.lock()
            .workers
            .iter()
            .filter(|(_, w)| w.via.is_none())
            .map(|(id, _)| *id)
            .collect()
    }

    /// What a link lists of each worker attached here: its capabilities and network.
    pub fn listing_here(&self) -> Vec<(PublicId, Capabilities, Option<Network>)> {
        self.lock()
            .workers
            .iter()
            .filter(|(_, w)| w.via.is_none())
            .map(|(id, w)| (*id, w.capabilities.clone(), w.network))
            .collect()
    }

    /// Hands `job`, relayed from another coordinator, to `id` when it is attached here: the job counts
    /// against the worker's sessions here as one of this coordinator's own would, and the receiver
    /// yields its outcome. `None` when `id` is not attached here or its queue is closed or full.
    pub fn assign_relayed(
        &self,
        id: &PublicId,
        job: TranscodeJob,
    ) -> Option<oneshot::Receiver<AttemptOutcome>> {
        let mut state = self.lock();
        let worker = state.workers.get_mut(id).filter(|w| w.via.is_none())?;
        let job_id = job.job_id.clone();
        let command = WorkerCommand {
            command: Some(worker_command::Command::Job(job)),
        };
        worker.commands.try_send(Ok(command)).ok()?;
        worker.in_flight.insert(job_id.clone());
        let connection = worker.connection;
        let (reply, outcome) = oneshot::channel();
        state.pending.insert(
            job_id,
            PendingJob {
                worker: *id,
                connection,
                reply,
            },
        );
        Some(outcome)
    }

    /// Records the network connection `connection` of `id` comes from (its peer address).
    pub fn set_network(&self, id: PublicId, connection: u64, network: Network) {
        let mut state = self.lock();
        if let Some(w) = state.workers.get_mut(&id)
            && w.connection == connection
        {
            w.network = Some(network);
        }
    }

    /// The network `id` is attached from, if it is attached and its address is known.
    pub fn network_of(&self, id: &PublicId) -> Option<Network> {
        self.lock().workers.get(id).and_then(|w| w.network)
    }

    /// Drops a worker whose stream ended; the jobs it held come back to their dispatchers as lost.
    pub fn detach(&self, id: PublicId, connection: u64) {
        let mut state = self.lock();
        if state
            .workers
            .get(&id)
            .is_some_and(|w| w.connection == connection)
        {
            state.workers.remove(&id);
            fail_jobs_of(&mut state, id, connection);
            metrics::workers_connected(attached_here_count(&state));
        }
        drop(state);
        self.changed.notify_waiters();
    }

    /// Ends every worker's stream and refuses new ones: part of shutting down, so that long-lived
    /// streams do not hold the server open. Jobs in flight come back to their dispatchers as lost.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        let attached: Vec<(PublicId, u64)> = state
            .workers
            .iter()
            .map(|(id, w)| (*id, w.connection))
            .collect();
        for (id, connection) in attached {
            state.workers.remove(&id);
            fail_jobs_of(&mut state, id, connection);
        }
        metrics::workers_connected(0);
        drop(state);
        self.changed.notify_waiters();
    }

    /// The command queue of an attached worker, with its connection number.
    pub fn commands(&self, id: &PublicId) -> Option<(u64, CommandSender)> {
        self.lock()
            .workers
            .get(id)
            .map(|w| (w.connection, w.commands.clone()))
    }

    /// The control queue of `id`'s stream, when it is attached.
    pub fn control(&self, id: &PublicId) -> Option<CommandSender> {
        self.lock().workers.get(id).map(|w| w.control.clone())
    }

    /// Whether `id` is attached on `connection` right now.
    pub fn is_attached(&self, id: &PublicId, connection: u64) -> bool {
        self.lock()
            .workers
            .get(id)
            .is_some_and(|w| w.connection == connection)
    }

    /// Draws one of `ids` that is attached and eligible, with weight stake × score (storage placement).
    pub fn draw_among(&self, ids: &[PublicId]) -> Option<PublicId> {
        let mut state = self.lock();
        let attached: Vec<PublicId> = ids
            .iter()
            .filter(|id| state.workers.contains_key(id))
            .copied()
            .collect();
        state.draw(attached, self.min_stake)
    }

    /// Replaces the ticket params a worker published (after a win retired the old ones).
    pub fn set_ticket_params(&self, id: PublicId, connection: u64, params: TicketParams) {
        let mut state = self.lock();
        if let Some(w) = state.workers.get_mut(&id)
            && w.connection == connection
        {
            w.capabilities.ticket_params = Some(params);
        }
        drop(state);
        // Paid jobs waiting for this worker under its old params can give up now.
        self.changed.notify_waiters();
    }

    /// Attached workers that charge for their work (a price above zero).
    pub fn priced_workers(&self) -> HashSet<PublicId> {
        self.lock()
            .workers
            .iter()
            .filter(|(_, w)| {
                w.capabilities
                    .ticket_params
                    .as_ref()
                    .is_some_and(|p| p.price_per_unit > 0)
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// The ticket params a worker attached now publishes, if any.
    pub fn ticket_params(&self, id: &PublicId) -> Option<TicketParams> {
        self.lock()
            .workers
            .get(id)
            .and_then(|w| w.capabilities.ticket_params.clone())
    }

    /// Draws the worker a paid job will go to, weighted like an assignment (`stake × score`), among
    /// attached workers big enough for it, busy or not: the job queues behind the worker's others.
    pub fn draw_for_quote(&self, needs: Requirements) -> Option<PublicId> {
        let mut state = self.lock();
        let big_enough: Vec<PublicId> = state
            .workers
            .iter()
            .filter(|(_, w)| {
                needs.width <= w.capabilities.max_width && needs.height <= w.capabilities.max_height
            })
            .map(|(id, _)| *id)
            .collect();
        state.draw(big_enough, self.min_stake)
    }

    /// Sets how many jobs a worker takes at once, as its `Capacity` says (PROTOCOL §8.2); the worker
    /// list shows it as the worker's sessions from then on. Jobs it holds beyond the new count finish.
    pub fn set_capacity(&self, id: PublicId, connection: u64, sessions: u32) {
        let mut state = self.lock();
        if let Some(w) = state.workers.get_mut(&id)
            && w.connection == connection
        {
            w.sessions = sessions;
            w.capabilities.sessions = sessions;
        }
        drop(state);
        self.changed.notify_waiters();
    }

    /// Routes an outcome from a worker to the job's dispatcher. Outcomes for jobs the worker no longer
    /// holds (late, cancelled, reassigned, or never its own) are dropped and reported as `false`.
    pub fn complete(
        &self,
        id: PublicId,
        connection: u64,
        job_id: &str,
        outcome: AttemptOutcome,
    ) -> bool {
        let mut state = self.lock();
        let holds = state
            .pending
            .get(job_id)
            .is_some_and(|p| p.worker == id && p.connection == connection);
        if !holds {
            return false;
        }
        let Some(pending) = state.pending.remove(job_id) else {
            return false;
        };
        if let Some(w) = state.workers.get_mut(&id) {
            w.in_flight.remove(job_id);
            if !matches!(
                outcome,
                AttemptOutcome::Result(_) | AttemptOutcome::PaymentRefused(_)
            ) {
                w.jobs_failed += 1;
            }
        }
        drop(state);
        // The dispatcher may have given up already; then nobody wants the outcome.
        let _ = pending.reply.send(outcome);
        self.changed.notify_waiters();
        true
    }

    /// Records the verifier's verdict on a result a worker returned, and moves its score.
    pub fn record_verdict(&self, id: PublicId, accepted: bool) {
        let mut state = self.lock();
        if let Some(w) = state.workers.get_mut(&id) {
            if accepted {
                w.jobs_done += 1;
            } else {
                w.jobs_failed += 1;
            }
        }
        if accepted {
            Self::raise_score(&mut state, id);
        } else {
            drop(state);
            self.lower_score(id);
        }
    }

    /// Raises the score of `id` for a fully passed storage challenge. Not a verified job: `jobs_done`
    /// (what `ListWorkers` reports and the content check counts) stays a count of transcode results.
    pub fn record_challenge_passed(&self, id: PublicId) {
        Self::raise_score(&mut self.lock(), id);
    }

    /// Hands `job` to an eligible worker drawn with weight `stake × score`, or says why none is
    /// eligible.
    pub fn try_assign(
        &self,
        job: &TranscodeJob,
        needs: Requirements,
        exclude: &HashSet<PublicId>,
    ) -> Result<Assignment, Shortage> {
        let mut state = self.lock();
        let mut shortage = Shortage {
            connected: state.workers.len(),
            min_stake: self.min_stake,
            ..Shortage::default()
        };
        let eligible: Vec<PublicId> = state
            .workers
            .iter()
            .filter(|(id, w)| {
                if exclude.contains(id) {
                    shortage.excluded += 1;
                    false
                } else if !w.can_take(needs) {
                    if needs.width > w.capabilities.max_width
                        || needs.height > w.capabilities.max_height
                    {
                        shortage.too_small += 1;
                    } else {
                        shortage.busy += 1;
                    }
                    false
                } else if state.weight_stake(id, self.min_stake).is_none() {
                    shortage.unstaked += 1;
                    false
                } else {
                    true
                }
            })
            .map(|(id, _)| *id)
            .collect();
        let Some(id) = state.draw(eligible, self.min_stake) else {
            return Err(shortage);
        };
        let Some(worker) = state.workers.get_mut(&id) else {
            return Err(shortage);
        };
        let command = WorkerCommand {
            command: Some(worker_command::Command::Job(job.clone())),
        };
        if worker.commands.try_send(Ok(command)).is_err() {
            // Its stream is gone or clogged; it will be detached by its own task.
            shortage.busy += 1;
            return Err(shortage);
        }
        worker.in_flight.insert(job.job_id.clone());
        let connection = worker.connection;
        let (reply, outcome) = oneshot::channel();
        state.pending.insert(
            job.job_id.clone(),
            PendingJob {
                worker: id,
                connection,
                reply,
            },
        );
        Ok(Assignment {
            worker: id,
            outcome,
        })
    }

    /// Takes a job back from the worker that holds it (timeout): the worker is told to drop it, any
    /// late result is discarded, and its score is halved.
    pub fn cancel(&self, job_id: &str) {
        let mut state = self.lock();
        let Some(pending) = state.pending.remove(job_id) else {
            return;
        };
        let worker = pending.worker;
        let score = (state.score(&worker) * 0.5).max(MIN_SCORE);
        state.scores.insert(worker, score);
        if let Some(w) = state.workers.get_mut(&worker) {
            w.in_flight.remove(job_id);
            w.jobs_failed += 1;
            let _ = w.commands.try_send(Ok(WorkerCommand {
                command: Some(worker_command::Command::Cancel(CancelJob {
                    job_id: job_id.to_owned(),
                })),
            }));
        }
        drop(state);
        self.changed.notify_waiters();
    }

    /// A future that completes at the next change of the pool. Create it before checking the pool so a
    /// change in between is not missed.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    pub fn connected(&self) -> usize {
        self.lock().workers.len()
    }

    /// Results of `id` that passed verification since it connected (0 for a worker not connected).
    pub fn jobs_done(&self, id: &PublicId) -> u64 {
        self.lock().workers.get(id).map_or(0, |w| w.jobs_done)
    }

    pub fn snapshot(&self) -> Vec<WorkerInfo> {
        self.snapshot_after(None, usize::MAX)
    }

    /// At most `limit` workers listed here (attached here, or to another coordinator and reached over
    /// its link, which `attached_to` names) with ids after `after`, in id order: a page of
    /// [`Self::snapshot`].
    pub fn snapshot_after(&self, after: Option<&[u8]>, limit: usize) -> Vec<WorkerInfo> {
        let state = self.lock();
        let mut list: Vec<WorkerInfo> = state
            .workers
            .iter()
            .filter(|(id, _)| after.is_none_or(|a| id.as_bytes().as_slice() > a))
            .map(|(id, w)| WorkerInfo {
                worker_id: id.as_bytes().to_vec(),
                capabilities: Some(w.capabilities.clone()),
                free_sessions: w.sessions.saturating_sub(w.in_flight.len() as u32),
                jobs_done: w.jobs_done,
                jobs_failed: w.jobs_failed,
                attached_to: w.via.map(|v| v.as_bytes().to_vec()).unwrap_or_default(),
            })
            .collect();
        list.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
        list.truncate(limit);
        list
    }
}

/// The job a worker's `JobResult` or `JobFailure` answers, and how its attempt ended; any other
/// event is handed back. One reading for events off an Attach stream and off a link.
pub fn job_outcome(
    event: worker_event::Event,
) -> Result<(String, AttemptOutcome), worker_event::Event> {
    match event {
        worker_event::Event::Result(result) => Ok((
            result.job_id.clone(),
            AttemptOutcome::Result(Box::new(result)),
        )),
        worker_event::Event::Failure(f) if f.payment_refused => {
            Ok((f.job_id, AttemptOutcome::PaymentRefused(f.reason)))
        }
        worker_event::Event::Failure(f) => Ok((f.job_id, AttemptOutcome::Failed(f.reason))),
        other => Err(other),
    }
}

/// Workers attached to this coordinator itself, for its gauge.
fn attached_here_count(state: &PoolState) -> usize {
    state.workers.values().filter(|w| w.via.is_none()).count()
}

fn fail_jobs_of(state: &mut PoolState, id: PublicId, connection: u64) {
    let lost: Vec<String> = state
        .pending
        .iter()
        .filter(|(_, p)| p.worker == id && p.connection == connection)
        .map(|(job, _)| job.clone())
        .collect();
    for job in lost {
        if let Some(p) = state.pending.remove(&job) {
            let _ = p.reply.send(AttemptOutcome::WorkerLost);
        }
    }
}

/// Longest text a worker may put in one capability field, and most encoders it may list.
const MAX_CAPABILITY_TEXT: usize = 4096;
const MAX_ENCODERS: usize = 16;

/// Refuses capabilities whose fields are larger than any real worker's: they are kept for as long as
/// the worker is attached and served by ListWorkers.
fn check_capabilities(c: &Capabilities) -> Result<(), CoordinatorError> {
    let too_long = [
        ("selected_encoder", &c.selected_encoder),
        ("encoder_reason", &c.encoder_reason),
        ("hasher", &c.hasher),
    ]
    .into_iter()
    .chain(c.encoders.iter().map(|e| ("encoders", e)))
    .find(|(_, text)| text.len() > MAX_CAPABILITY_TEXT);
    if let Some((field, text)) = too_long {
        return Err(CoordinatorError::BadCapabilities(format!(
            "capabilities.{field} is {} bytes; at most {MAX_CAPABILITY_TEXT} are kept",
            text.len()
        )));
    }
    if c.encoders.len() > MAX_ENCODERS {
        return Err(CoordinatorError::BadCapabilities(format!(
            "capabilities list {} encoders; at most {MAX_ENCODERS}",
            c.encoders.len()
        )));
    }
    Ok(())
}
