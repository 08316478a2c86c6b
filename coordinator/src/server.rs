//! Assembles the coordinator: its identity, its ledger and the round clock, the gRPC router (dualrig.v1,
//! health, reflection) with message limits raised for segments, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use dualrig_proto::identity::Identity;
use dualrig_proto::v1::coordinator_server::CoordinatorServer;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;

use crate::config::Config;
use crate::db::Backend;
use crate::error::StartError;
use crate::evidence::EvidenceStore;
use crate::ledger::{Genesis, Ledger, LedgerError, Registration};
use crate::pool::WorkerPool;
use crate::service::CoordinatorService;
use crate::slashing::{EvidenceKeeping, Slasher};
use crate::storage::BlobService;

/// File in the data dir that holds the address the coordinator is serving on.
pub const ADDR_FILE: &str = "coordinator.addr";

/// A coordinator bound to its listener, ready to serve.
#[derive(Debug)]
pub struct Coordinator {
    listener: TcpListener,
    service: CoordinatorService,
    pool: Arc<WorkerPool>,
    identity: Arc<Identity>,
    ledger: Arc<Ledger>,
    storage: Arc<BlobService>,
    relay: Arc<crate::relay::Relay>,
    round: std::time::Duration,
    registration: Registration,
    heartbeat: std::time::Duration,
    silent_after: u64,
}

impl Coordinator {
    /// Prepares the data dir, loads or creates the coordinator's key, and binds `config.listen`.
    pub async fn bind(config: Config) -> Result<Self, StartError> {
        config.validate()?;
        dualrig_media::init();
        std::fs::create_dir_all(config.scratch_dir()).map_err(|source| StartError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        clean_scratch(&config);
        let identity = Arc::new(Identity::load_or_create(
            &config.data_dir.join("coordinator.key"),
        )?);
        let ledger = open_ledger(&config).await?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Listen {
                    addr: config.listen,
                    source,
                })?;
        let bound = listener.local_addr().map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
        let registration = Registration {
            id: identity.id(),
            advertise_addr: config.advertised(bound),
            run: rand::random(),
            started_unix: now_unix(),
        };
        let silent_after = config.coordinator_silent_after_secs();
        register(&config, &ledger, &registration, silent_after).await?;
        let heartbeat = config.heartbeat_interval;
        let pool = Arc::new(match config.draw_seed {
            Some(seed) => WorkerPool::with_rng(config.min_stake, StdRng::seed_from_u64(seed)),
            None => WorkerPool::new(config.min_stake),
        });
        let round = config.round;
        let config = Arc::new(config);
        let evidence = open_evidence(&config, &ledger).await?;
        let slasher = Arc::new(Slasher::new(
            Arc::clone(&ledger),
            Arc::clone(&pool),
            config.slash_fraction,
            evidence,
            EvidenceKeeping {
                max_bytes: config.evidence_max_bytes,
                retention: config.evidence_retention,
            },
        ));
        let storage = Arc::new(
            BlobService::open(
                Arc::clone(&config),
                Arc::clone(&pool),
                Arc::clone(&slasher),
                Arc::clone(&ledger),
            )
            .map_err(|source| StartError::BlobIndex {
                path: match &config.database_url {
                    Some(url) => std::path::PathBuf::from(crate::config::shown_url(url)),
                    None => config.blob_index_path(),
                },
                source,
            })?,
        );
        let relay = crate::relay::Relay::new(
            Arc::clone(&identity),
            Arc::clone(&ledger),
            Arc::clone(&pool),
            Arc::clone(&storage),
            silent_after,
        );
        let service = CoordinatorService::new(
            Arc::clone(&identity),
            config,
            Arc::clone(&pool),
            Arc::clone(&ledger),
            Arc::clone(&storage),
            slasher,
            Arc::clone(&relay),
        );
        Ok(Self {
            listener,
            service,
            pool,
            identity,
            ledger,
            storage,
            relay,
            round,
            registration,
            heartbeat,
            silent_after,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn pool(&self) -> Arc<WorkerPool> {
        Arc::clone(&self.pool)
    }

    pub fn id(&self) -> dualrig_proto::identity::PublicId {
        self.identity.id()
    }

    pub fn ledger(&self) -> Arc<Ledger> {
        Arc::clone(&self.ledger)
    }

    pub fn storage(&self) -> Arc<BlobService> {
        Arc::clone(&self.storage)
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<CoordinatorServer<CoordinatorService>>()
            .await;
        // Both reflection versions: grpcurl speaks v1, Python's stock grpcio-reflection and many
        // older tools only v1alpha.
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(dualrig_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1alpha = reflection().build_v1alpha()?;
        let reflection = reflection().build_v1()?;
        let (stop_rounds, rounds_stopped) = oneshot::channel();
        let rounds = tokio::spawn(run_rounds(
            self.identity.id(),
            Arc::clone(&self.ledger),
            Arc::clone(&self.pool),
            self.round,
            rounds_stopped,
        ));
        let heartbeats = tokio::spawn(run_heartbeats(
            Arc::clone(&self.ledger),
            self.registration.clone(),
            self.heartbeat,
            self.silent_after,
        ));
        let challenges = tokio::spawn(Arc::clone(&self.storage).challenge_forever());
        let repairs = tokio::spawn(Arc::clone(&self.storage).repair_forever());
        let links = tokio::spawn(Arc::clone(&self.relay).dial_forever(self.heartbeat));
        let pool = Arc::clone(&self.pool);
        let relay = Arc::clone(&self.relay);
        let shutdown = async move {
            shutdown.await;
            pool.close();
            relay.close();
            let _ = stop_rounds.send(());
        };
        let peer = dualrig_proto::v1::peer_server::PeerServer::new(crate::relay::PeerService::new(
            Arc::clone(&self.relay),
        ))
        .max_decoding_message_size(crate::relay::MAX_LINK_MESSAGE)
        .max_encoding_message_size(crate::relay::MAX_LINK_MESSAGE);
        let api = CoordinatorServer::new(self.service)
            .max_decoding_message_size(dualrig_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(dualrig_proto::MAX_MESSAGE_BYTES);
        let served = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(std::time::Duration::from_secs(10)))
            .layer(crate::limits::MessageLimitLayer)
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_v1alpha)
            .add_service(api)
            .add_service(peer)
            .serve_with_incoming_shutdown(TcpListenerStream::new(self.listener), shutdown)
            .await;
        rounds.abort();
        heartbeats.abort();
        challenges.abort();
        repairs.abort();
        links.abort();
        // A clean stop leaves the registry at once rather than after the silent bound.
        let me = self.registration;
        if let Err(e) = self.ledger.call(move |l| l.coordinator_leave(&me)).await {
            tracing::warn!(error = %e, "cannot remove this coordinator from the registry");
        }
        served?;
        Ok(())
    }
}

/// Binds and serves `config` until `shutdown`; the convenience entry point for the binary.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let config_addr = config.listen;
    let addr_file = config.data_dir.join(ADDR_FILE);
    let coordinator = Coordinator::bind(config).await?;
    let addr = coordinator
        .local_addr()
        .map_err(|source| StartError::Listen {
            addr: config_addr,
            source,
        })?;
    // Scripts and operators that asked for port 0 learn the real address here.
    std::fs::write(&addr_file, format!("{addr}\n")).map_err(|source| StartError::DataDir {
        path: addr_file.clone(),
        source,
    })?;
    tracing::info!(%addr, id = %coordinator.id(), "coordinator listening");
    coordinator.serve(shutdown).await
}

/// Staged files from a previous run are never needed again.
fn clean_scratch(config: &Config) {
    if let Ok(entries) = std::fs::read_dir(config.scratch_dir()) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Opens `DATA_DIR/ledger.db` (or the ledger in `--database-url`), applying the genesis file only when
/// the ledger is new.
async fn open_ledger(config: &Config) -> Result<Arc<Ledger>, StartError> {
    let path = config.ledger_shown();
    let genesis = config.genesis.clone();
    let rules = config.ledger_config();
    let at = config.ledger_path();
    let url = config.database_url.clone();
    let opened = tokio::task::spawn_blocking(move || {
        let genesis = match &genesis {
            Some(file) => Genesis::load(file)?,
            None => Genesis::empty(),
        };
        match &url {
            Some(url) => Ledger::open_postgres(url, rules, &genesis),
            None => Ledger::open(&at, rules, &genesis),
        }
    })
    .await
    .map_err(|e| LedgerError::Task(e.to_string()))
    .and_then(|opened| opened);
    opened
        .map(Arc::new)
        .map_err(|source| StartError::Ledger { path, source })
}

/// Advances the ledger one round every `round` until `stop`, and refreshes the pool's view of stake.
/// Rounds the round clock's lease outlives its holder's last tick: a coordinator that dies is replaced as
/// the clock within this many rounds (plus one tick of the next).
pub const ROUND_LEASE_ROUNDS: u32 = 3;

/// Every coordinator ticks; the one holding the round clock's lease advances the round (see
/// `Ledger::advance_round_leased`), so coordinators sharing one database move it once per round.
async fn run_rounds(
    me: dualrig_proto::identity::PublicId,
    ledger: Arc<Ledger>,
    pool: Arc<WorkerPool>,
    round: std::time::Duration,
    mut stop: oneshot::Receiver<()>,
) {
    // The round a restarted coordinator resumes at is on the page before the first tick.
    match ledger.call(|l| l.round()).await {
        Ok(n) => crate::metrics::ledger_round(n),
        Err(e) => tracing::error!(error = %e, "cannot read the ledger round"),
    }
    crate::service::refresh_collective_totals(&ledger).await;
    crate::service::refresh_sip_metrics(&ledger).await;
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + round, round);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = ticks.tick() => {}
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let lease_secs = (round * ROUND_LEASE_ROUNDS).as_secs().max(1);
        match ledger
            .call(move |l| l.advance_round_leased(&me, now, lease_secs))
            .await
        {
            Ok(Some(n)) => {
                crate::metrics::ledger_round(n);
                tracing::debug!(round = n, "ledger round");
            }
            Ok(None) => match ledger.call(|l| l.round()).await {
                // Another coordinator holds the clock; show the round it moved to.
                Ok(n) => crate::metrics::ledger_round(n),
                Err(e) => tracing::error!(error = %e, "cannot read the ledger round"),
            },
            Err(e) => tracing::error!(error = %e, "ledger round did not advance"),
        }
        crate::stakes::refresh(&ledger, &pool).await;
        crate::service::refresh_sip_metrics(&ledger).await;
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Rows silent for this many silent bounds are deleted by the round clock's holder.
pub const FORGET_AFTER_SILENT: u64 = 10;

/// Registers `me` in the coordinators registry. A recent row with this key and another run is either
/// another live process with the same key, or this key's previous run killed before it could leave:
/// the coordinator watches the row for one silent bound, and refuses to start if it keeps beating.
async fn register(
    config: &Config,
    ledger: &Arc<Ledger>,
    me: &Registration,
    silent_after: u64,
) -> Result<(), StartError> {
    let failed = |source| StartError::Ledger {
        path: config.ledger_shown(),
        source,
    };
    let id = me.id;
    let first = ledger
        .call(move |l| l.coordinator_seen(&id))
        .await
        .map_err(failed)?;
    if let Some((run, addr, last_seen)) = first
        && run != me.run
        && last_seen.saturating_add(silent_after) >= now_unix()
    {
        tracing::info!(
            %addr,
            last_seen,
            "a coordinator with this key heartbeat {}s ago; waiting up to {silent_after}s to see whether it still runs",
            now_unix().saturating_sub(last_seen)
        );
        loop {
            tokio::time::sleep(
                config
                    .heartbeat_interval
                    .min(std::time::Duration::from_secs(1)),
            )
            .await;
            let seen = ledger
                .call(move |l| l.coordinator_seen(&id))
                .await
                .map_err(failed)?;
            match seen {
                Some((later_run, later_addr, later)) if later_run != run || later > last_seen => {
                    return Err(failed(LedgerError::CoordinatorKeyInUse {
                        id,
                        advertise_addr: later_addr,
                        last_seen_unix: later,
                    }));
                }
                Some(_) if last_seen.saturating_add(silent_after) >= now_unix() => continue,
                _ => break,
            }
        }
    }
    heartbeat(ledger, me, silent_after).await.map_err(failed)
}

/// One heartbeat of `me`; rows silent for `FORGET_AFTER_SILENT` bounds go if this coordinator holds the
/// round clock.
async fn heartbeat(
    ledger: &Arc<Ledger>,
    me: &Registration,
    silent_after: u64,
) -> Result<(), LedgerError> {
    let me = me.clone();
    ledger
        .call(move |l| {
            l.coordinator_heartbeat(
                &me,
                now_unix(),
                silent_after,
                silent_after * FORGET_AFTER_SILENT,
            )
        })
        .await
}

/// Heartbeats into the coordinators registry every `interval`, the workers' heartbeat interval.
async fn run_heartbeats(
    ledger: Arc<Ledger>,
    me: Registration,
    interval: std::time::Duration,
    silent_after: u64,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(e) = heartbeat(&ledger, &me, silent_after).await {
            tracing::error!(error = %e, "coordinator heartbeat not recorded");
        }
    }
}

/// Opens the evidence store and deletes what no kept slash names (a crash between writing evidence and
/// committing its slash leaves such a file). On PostgreSQL the items live in the database, where every
/// coordinator on it reads them; items an earlier version kept in this data directory move there.
async fn open_evidence(
    config: &Config,
    ledger: &Arc<Ledger>,
) -> Result<Arc<EvidenceStore>, StartError> {
    let dir = config.evidence_dir();
    let data_dir_error = |source| StartError::DataDir {
        path: dir.clone(),
        source,
    };
    let kept = ledger
        .call(|l| l.kept_evidence())
        .await
        .map_err(|source| StartError::Ledger {
            path: config.ledger_path(),
            source,
        })?;
    let store = Arc::new(match ledger.backend() {
        Backend::Sqlite => EvidenceStore::open(dir.clone()).map_err(data_dir_error)?,
        Backend::Postgres => EvidenceStore::in_database(Arc::clone(ledger)),
    });
    let (opened, from) = (Arc::clone(&store), dir.clone());
    let (moved, swept) = tokio::task::spawn_blocking(move || {
        let moved = opened.import_files(&from, &kept)?;
        Ok((moved, opened.sweep(&kept)?))
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    .map_err(data_dir_error)?;
    if moved > 0 {
        tracing::info!(
            moved,
            "slash evidence kept in files moved into the database"
        );
    }
    if swept > 0 {
        tracing::info!(swept, "slash evidence no slash names was deleted");
    }
    Ok(store)
}
