//! The worker's life on the network: probe what this machine can do, dial a coordinator, prove the key,
//! attach, run the jobs that come down the stream, and whenever that coordinator goes away dial the next
//! of the [`Coordinators`], with backoff once every one has been tried.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dualrig_media::EncoderSelection;
use dualrig_proto::identity::{Identity, registration_message};
use dualrig_proto::v1::coordinator_client::CoordinatorClient;
use dualrig_proto::v1::{
    Capabilities, Capacity, Heartbeat, HelloRequest, JobFailure, RegisterRequest, WorkerEvent,
    worker_command, worker_event,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tracing::{Instrument, info, info_span, warn};

use crate::config::{ConfigSource, WorkerConfig};
use crate::coordinators::Coordinators;
use crate::hosting::Hosting;
use crate::job::run_transcode;
use crate::metrics;
use crate::payment::{Payments, redeem_forever};
use crate::reload::Reloader;
use crate::slots::JobSlots;
use crate::store::BlobStore;
use dualrig_proto::v1::AccountRequest;

/// Largest 4:2:0 frame any encoder here is asked to produce.
const MAX_WIDTH: u32 = dualrig_proto::profile::MAX_WIDTH;
const MAX_HEIGHT: u32 = dualrig_proto::profile::MAX_HEIGHT;
/// A session that lasted this long resets the backoff.
const STABLE_SESSION: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("worker key: {0}")]
    Identity(#[from] dualrig_proto::identity::IdentityError),
    #[error("no usable encoder: {0}")]
    Encoder(#[from] dualrig_media::MediaError),
    #[error("hasher: {0}")]
    Hash(#[from] crate::hash::HashError),
    #[error("blob store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("data dir {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Why one session with the coordinator ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("cannot reach {url}: {source}")]
    Connect {
        url: String,
        source: tonic::transport::Error,
    },
    #[error("{call} refused: {}", .status.message())]
    Refused {
        call: &'static str,
        status: tonic::Status,
    },
    #[error("job stream broke: {}", .0.message())]
    Stream(tonic::Status),
    #[error("coordinator closed the job stream")]
    Closed,
}

/// A worker ready to serve: its key, its encoder, what it tells the coordinator it can do.
#[derive(Debug)]
pub struct Worker {
    config: WorkerConfig,
    identity: Arc<Identity>,
    encoder: Arc<EncoderSelection>,
    capabilities: Capabilities,
    coordinators: Arc<Coordinators>,
    payments: Arc<Payments>,
    hosting: Arc<Hosting>,
    slots: Arc<JobSlots>,
    winners: std::sync::Mutex<Option<mpsc::UnboundedReceiver<crate::payment::QueuedWinner>>>,
}

impl Worker {
    /// Loads or creates the key, probes the encoders and the hasher. Blocking: probing opens encoders.
    pub fn prepare(config: WorkerConfig) -> Result<Self, WorkerError> {
        config.validate().map_err(WorkerError::Config)?;
        std::fs::create_dir_all(config.scratch_dir()).map_err(|source| WorkerError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let identity = Identity::load_or_create(&config.key_path())?;
        let coordinators = Arc::new(
            Coordinators::new(
                config.coordinators.clone(),
                Coordinators::rotation_start(&identity.id(), config.coordinators.len()),
                config.source_addr,
            )
            .map_err(WorkerError::Config)?,
        );
        let (payments, winners) =
            Payments::new(&config, &identity).map_err(|source| WorkerError::DataDir {
                path: config.ticket_secret_path(),
                source,
            })?;
        dualrig_media::init();
        let encoder = dualrig_media::select_encoder(&config.encoder)?;
        info!(
            encoder = %encoder.name,
            hardware = encoder.hardware,
            reason = %encoder.reason,
            decoders = %encoder.decoders.reason,
            "encoder selected"
        );
        let hasher = crate::hash::share::SharedHasher::wrap(
            crate::hash::select_hasher(config.gpu)?,
            config.gpu_hash_share,
        )
        .map_err(|e| WorkerError::Config(e.to_string()))?;
        let store = BlobStore::open(
            &config.data_dir,
            config.storage_capacity,
            Arc::clone(&hasher),
        )?;
        info!(
            blobs = store.list().len(),
            used = store.used_bytes(),
            capacity = store.capacity_bytes(),
            "blob store open"
        );
        let payments = Arc::new(payments);
        let hosting = Arc::new(Hosting::new(
            identity.id(),
            Arc::new(store),
            Arc::clone(&payments),
        ));
        let sessions = crate::slots::initial_sessions(config.sessions, &encoder);
        info!(sessions, setting = %config.sessions, "jobs run at once");
        let capabilities = Capabilities {
            encoders: encoder.available.clone(),
            selected_encoder: encoder.name.clone(),
            encoder_reason: format!("{}; decoding: {}", encoder.reason, encoder.decoders.reason),
            sessions,
            max_width: MAX_WIDTH,
            max_height: MAX_HEIGHT,
            hasher: hasher.describe(),
            ticket_params: None,
        };
        metrics::started(
            &identity.id().to_string(),
            coordinators.urls(),
            coordinators.current_url(),
            &capabilities,
            encoder.hardware,
        );
        Ok(Self {
            config,
            identity: Arc::new(identity),
            encoder: Arc::new(encoder),
            capabilities,
            coordinators,
            payments,
            hosting,
            slots: JobSlots::new(sessions),
            winners: std::sync::Mutex::new(Some(winners)),
        })
    }

    pub fn id(&self) -> dualrig_proto::identity::PublicId {
        self.identity.id()
    }

    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// What applies `source` again to this worker once it runs (on SIGHUP): `source` is where its
    /// config came from.
    pub fn reloader(&self, source: ConfigSource) -> Reloader {
        Reloader::new(
            source,
            self.config.clone(),
            Arc::clone(&self.slots),
            Arc::clone(&self.encoder),
        )
    }

    /// The coordinators it may serve, and the one it serves now.
    pub fn coordinators(&self) -> Arc<Coordinators> {
        Arc::clone(&self.coordinators)
    }

    /// The worker's blob store.
    pub fn store(&self) -> &Arc<BlobStore> {
        self.hosting.store()
    }

    /// Serves the coordinators until `shutdown` completes, one at a time, moving to the next whenever
    /// the session ends.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let span = info_span!("worker", id = %self.identity.id().short());
        let winners = self
            .winners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let redeem = async {
            if let Some(winners) = winners {
                redeem_forever(
                    Arc::clone(&self.coordinators),
                    Arc::clone(&self.identity),
                    winners,
                    self.payments.winner_store(),
                    self.config.redeem_delay,
                )
                .await;
            }
            std::future::pending::<()>().await
        };
        let scrub = Arc::clone(&self.hosting).scrub_forever(self.config.scrub_interval);
        let pull = crate::pull::Puller::new(
            Arc::clone(&self.identity),
            Arc::clone(&self.hosting),
            Arc::clone(&self.coordinators),
            self.config.host_collectives.clone(),
            &self.config.host_roots,
        )
        .pull_forever();
        tokio::select! {
            () = pull.instrument(span.clone()) => {}
            () = self.serve_forever().instrument(span.clone()) => {}
            () = scrub.instrument(span.clone()) => {}
            () = redeem.instrument(span) => {}
            () = shutdown => info!("worker stopping"),
        }
    }

    /// Attaches to one coordinator at a time: when a session ends the next in the list is dialled at
    /// once, and the backoff is waited only after a whole round of the list without a stable session,
    /// so a dead coordinator costs one failed dial.
    async fn serve_forever(&self) {
        let coordinators = &self.coordinators;
        let mut backoff = Duration::from_millis(250);
        // Dials since the last wait: a wait comes once every coordinator has had one.
        let mut dials = 0;
        let mut last_attached = None;
        // Jobs outlive the session that assigned them: a transcode under way holds its encoder
        // session until it ends, and its outcome is then dropped, logged, if its session is gone.
        let mut jobs = JoinSet::new();
        loop {
            let index = coordinators.current();
            let url = coordinators.url(index).to_owned();
            let started = Instant::now();
            metrics::connecting(&url);
            let ended = self.session(index, &mut last_attached, &mut jobs).await;
            metrics::disconnected(&url, &ended.to_string());
            while jobs.try_join_next().is_some() {}
            if started.elapsed() > STABLE_SESSION {
                backoff = Duration::from_millis(250);
                dials = 0;
            }
            dials += 1;
            let next = coordinators.url(coordinators.advance()).to_owned();
            if dials < coordinators.len() {
                warn!(
                    coordinator = %url,
                    error = %ended,
                    next = %next,
                    "not connected to the coordinator; trying the next"
                );
                continue;
            }
            dials = 0;
            let jitter = rand::random::<f64>() * 0.5 + 0.75;
            let wait = backoff.mul_f64(jitter);
            warn!(
                coordinator = %url,
                error = %ended,
                retry_in_ms = wait.as_millis() as u64,
                next = %next,
                "not connected to the coordinator"
            );
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(self.config.max_backoff);
        }
    }

    /// One connection to coordinator `index`: register, attach, serve jobs until the stream ends.
    /// Dropping the returned future aborts every task it started but the `jobs`, so a stopped worker
    /// holds nothing open once those are dropped too.
    async fn session(
        &self,
        index: usize,
        last_attached: &mut Option<usize>,
        jobs: &mut JoinSet<()>,
    ) -> SessionError {
        match self.try_session(index, last_attached, jobs).await {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    async fn try_session(
        &self,
        index: usize,
        last_attached: &mut Option<usize>,
        jobs: &mut JoinSet<()>,
    ) -> Result<std::convert::Infallible, SessionError> {
        let url = self.coordinators.url(index).to_owned();
        let channel: Channel = Endpoint::from_shared(url.clone())
            .map_err(|source| SessionError::Connect {
                url: url.clone(),
                source,
            })?
            .connect_timeout(Duration::from_secs(5))
            .http2_keep_alive_interval(Duration::from_secs(10))
            .local_address(self.config.source_addr)
            .connect()
            .await
            .map_err(|source| SessionError::Connect {
                url: url.clone(),
                source,
            })?;
        let mut client = CoordinatorClient::new(channel)
            .max_decoding_message_size(dualrig_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(dualrig_proto::MAX_MESSAGE_BYTES);

        let id = self.identity.id();
        let hello = client
            .hello(HelloRequest {
                for_get: false,
                worker_id: id.as_bytes().to_vec(),
            })
            .await
            .map_err(|status| SessionError::Refused {
                call: "Hello",
                status,
            })?
            .into_inner();
        // The ledger's round dates the params published below; without it they keep their dates.
        if let Ok(account) = client
            .account(AccountRequest {
                account: id.as_bytes().to_vec(),
            })
            .await
        {
            self.payments.set_round(account.into_inner().round);
        }
        // Params must expire before a paying sender could withdraw: the coordinator says how soon.
        self.payments.set_validity(hello.ticket_validity_rounds);
        let mut capabilities = self.capabilities.clone();
        // Registered with the count in effect now; a later change goes up as a `Capacity`.
        let mut sessions = self.slots.subscribe();
        capabilities.sessions = *sessions.borrow_and_update();
        capabilities.ticket_params = Some((&self.payments.current()).into());
        let signature = self.identity.sign(&registration_message(&hello.nonce, &id));
        let registered = client
            .register(RegisterRequest {
                worker_id: id.as_bytes().to_vec(),
                nonce: hello.nonce,
                signature: signature.to_vec(),
                capabilities: Some(capabilities),
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .await
            .map_err(|status| SessionError::Refused {
                call: "Register",
                status,
            })?
            .into_inner();

        let (events, outbound) = mpsc::channel::<WorkerEvent>(32);
        let mut request = tonic::Request::new(ReceiverStream::new(outbound));
        let token = registered
            .session_token
            .parse()
            .map_err(|_| SessionError::Closed)?;
        request
            .metadata_mut()
            .insert(dualrig_proto::SESSION_METADATA_KEY, token);
        let mut commands = client
            .attach(request)
            .await
            .map_err(|status| SessionError::Refused {
                call: "Attach",
                status,
            })?
            .into_inner();
        let coordinator_id =
            hex::encode(&hello.coordinator_id[..hello.coordinator_id.len().min(4)]);
        let before = last_attached.replace(index);
        let switched = before.is_some_and(|before| before != index);
        metrics::attached(&url, &coordinator_id, switched);
        if let Some(before) = before.filter(|_| switched) {
            info!(
                from = %self.coordinators.url(before),
                to = %url,
                "switched coordinator"
            );
        }
        info!(
            coordinator = %coordinator_id,
            url = %url,
            "attached; waiting for jobs"
        );
        // Open while this session is: a job that ends after it knows its outcome has nowhere to go.
        let (_open, session_open) = watch::channel(());

        let mut tasks = JoinSet::new();
        let interval = Duration::from_millis(u64::from(registered.heartbeat_interval_ms.max(100)));
        tasks.spawn(heartbeats(events.clone(), interval));
        tasks.spawn(announce_sessions(events.clone(), sessions).in_current_span());
        self.hosting.attached(&events).await;
        loop {
            let command = commands
                .message()
                .await
                .map_err(SessionError::Stream)?
                .ok_or(SessionError::Closed)?;
            match command.command {
                Some(worker_command::Command::Job(job)) => {
                    let span = info_span!("job", id = %job.job_id);
                    jobs.spawn(
                        self.start_job(job, events.clone(), session_open.clone())
                            .instrument(span),
                    );
                }
                Some(worker_command::Command::Cancel(cancel)) => {
                    // The coordinator has already given the job to someone else and will discard our
                    // result; the transcode in progress finishes and is dropped.
                    info!(job = %cancel.job_id, "job cancelled by the coordinator");
                }
                Some(worker_command::Command::Store(piece)) => {
                    self.hosting.on_store(piece, &events).await;
                }
                Some(worker_command::Command::Fetch(fetch)) => {
                    self.hosting.on_fetch(fetch, &events)
                }
                Some(worker_command::Command::CancelFetch(cancel)) => {
                    self.hosting.on_cancel_fetch(&cancel.fetch_id);
                }
                Some(worker_command::Command::FetchCredit(credit)) => {
                    self.hosting
                        .on_fetch_credit(&credit.fetch_id, credit.pieces);
                }
                Some(worker_command::Command::Challenge(challenge)) => {
                    self.hosting.on_challenge(challenge, &events);
                }
                None => {}
            }
            while tasks.try_join_next().is_some() {}
            while jobs.try_join_next().is_some() {}
        }
    }

    fn start_job(
        &self,
        job: dualrig_proto::v1::TranscodeJob,
        events: mpsc::Sender<WorkerEvent>,
        session_open: watch::Receiver<()>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let slots = Arc::clone(&self.slots);
        let encoder = Arc::clone(&self.encoder);
        let identity = Arc::clone(&self.identity);
        let scratch = self.config.scratch_dir();
        let injection = crate::job::Injection::from_config(&self.config);
        let payments = Arc::clone(&self.payments);
        async move {
            // Nothing is transcoded for a job whose payment does not hold.
            match payments.accept(&job) {
                Ok(None) => {}
                Ok(Some(params)) => {
                    let event = worker_event::Event::Params((&params).into());
                    let _ = events.send(WorkerEvent { event: Some(event) }).await;
                }
                Err(refused) => {
                    metrics::job("payment_refused");
                    warn!(error = %refused, "job refused");
                    let failure = JobFailure {
                        job_id: job.job_id.clone(),
                        reason: refused.to_string(),
                        payment_refused: true,
                    };
                    let event = worker_event::Event::Failure(failure);
                    deliver(&events, &session_open, event).await;
                    return;
                }
            }
            // Held until the result is sent: a reload that shrinks the sessions waits for it.
            let _slot = slots.acquire(job.profiles.len() as u32).await;
            metrics::job_running(true);
            let job_id = job.job_id.clone();
            info!(
                bytes = job.segment.len(),
                profiles = job.profiles.len(),
                "transcoding"
            );
            let outcome = tokio::task::spawn_blocking(move || {
                run_transcode(&job, &encoder, &identity, &scratch, injection)
            })
            .await;
            let event = match outcome {
                Ok(Ok(result)) => {
                    metrics::job("done");
                    info!(ms = result.transcode_ms, "transcoded");
                    worker_event::Event::Result(result)
                }
                Ok(Err(e)) => {
                    let payment_refused =
                        matches!(e, crate::job::JobError::UnitsUnderstated { .. });
                    metrics::job(if payment_refused {
                        "payment_refused"
                    } else {
                        "failed"
                    });
                    warn!(error = %e, "job failed");
                    worker_event::Event::Failure(JobFailure {
                        job_id,
                        reason: e.to_string(),
                        payment_refused,
                    })
                }
                Err(e) => {
                    metrics::job("crashed");
                    worker_event::Event::Failure(JobFailure {
                        job_id,
                        reason: format!("transcoder crashed: {e}"),
                        payment_refused: false,
                    })
                }
            };
            metrics::job_running(false);
            deliver(&events, &session_open, event).await;
        }
    }
}

/// Sends a job's outcome on the session that assigned the job. When that session has ended the
/// outcome is dropped, logged and counted: the job belongs to the coordinator that assigned it, which
/// gives it to another worker once this one is gone, and no other coordinator knows it. Winning
/// tickets of the job stay on disk and are redeemed all the same.
async fn deliver(
    events: &mpsc::Sender<WorkerEvent>,
    session_open: &watch::Receiver<()>,
    event: worker_event::Event,
) {
    let what = match &event {
        worker_event::Event::Result(_) => "result",
        _ => "failure",
    };
    let sent = session_open.has_changed().is_ok()
        && events
            .send(WorkerEvent { event: Some(event) })
            .await
            .is_ok();
    if !sent {
        metrics::undelivered();
        warn!(
            outcome = %what,
            "job outcome not delivered: the session with the coordinator that assigned the job has ended, and that coordinator gives the job to another worker"
        );
    }
}

/// Tells the coordinator each new session count (PROTOCOL §8.2: `capacity` replaces `sessions`).
async fn announce_sessions(events: mpsc::Sender<WorkerEvent>, mut sessions: watch::Receiver<u32>) {
    while sessions.changed().await.is_ok() {
        let free_sessions = *sessions.borrow_and_update();
        info!(
            sessions = free_sessions,
            "telling the coordinator the new sessions"
        );
        let capacity = WorkerEvent {
            event: Some(worker_event::Event::Capacity(Capacity { free_sessions })),
        };
        if events.send(capacity).await.is_err() {
            return;
        }
    }
}

async fn heartbeats(events: mpsc::Sender<WorkerEvent>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        let sent_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let beat = WorkerEvent {
            event: Some(worker_event::Event::Heartbeat(Heartbeat { sent_unix_ms })),
        };
        if events.send(beat).await.is_err() {
            return;
        }
    }
}
