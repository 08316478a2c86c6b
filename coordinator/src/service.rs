//! The `dualrig.v1.Coordinator` gRPC service: worker registration and attachment, client uploads.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::BytesMut;
use dualrig_proto::identity::{Identity, PublicId};
use dualrig_proto::profile::ladder_from_wire;
use dualrig_proto::v1::coordinator_server::Coordinator as CoordinatorApi;
use dualrig_proto::v1::{
    AccountInfo, AccountRequest, CollectiveInfo, CollectiveRequest, DownloadQuoteRequest,
    DownloadQuoteResponse, GetRequest, HelloRequest, HelloResponse, LedgerReceipt, LedgerRequest,
    ListBlobsRequest, ListBlobsResponse, ListCollectivesRequest, ListCollectivesResponse,
    ListProposalsRequest, ListProposalsResponse, ListSlashesRequest, ListSlashesResponse,
    ListStatementsRequest, ListStatementsResponse, ListWorkersRequest, ListWorkersResponse,
    PutResponse, PutUpload, QuoteRequest, QuoteResponse, RegisterRequest, RegisterResponse,
    TranscodeHeader, TranscodeResponse, TranscodeUpload, WorkerCommand, WorkerEvent,
    transcode_upload, worker_event,
};
use futures::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, info, info_span, warn};

use crate::config::Config;
use crate::dispatch::{JobDispatcher, JobPayment, JobSpec};
use crate::error::{CoordinatorError, QuoteLost};
use crate::evidence::EvidenceStore;
use crate::inspections::{Inspected, KeptFrames};
use crate::ledger::{Ledger, LedgerError, Operation, Receipt, SignedRequest};
use crate::metrics;
use crate::paging::Page;
use crate::pool::{Requirements, WorkerPool};
use crate::slashing::Slasher;
use crate::staging::{Reservation, StagingBudget, UploadDeadlines};
use crate::storage::{BlobService, GetStream};

/// How long a quote holds its draw.
const QUOTE_TTL: std::time::Duration = std::time::Duration::from_secs(60);
/// Quotes open at once: a flood of Quote calls is refused past this instead of growing the table.
const MAX_OPEN_QUOTES: usize = 16_384;

/// `ListSlashes` pages with evidence read at once: each may hold 32 MiB, so many at once would hold
/// the coordinator's memory for whoever asks.
const EVIDENCE_PAGES_AT_ONCE: usize = 4;

#[derive(Debug)]
pub struct CoordinatorService {
    identity: Arc<Identity>,
    config: Arc<Config>,
    pool: Arc<WorkerPool>,
    ledger: Arc<Ledger>,
    dispatcher: JobDispatcher,
    storage: Arc<BlobService>,
    /// Where slash evidence is kept, for ListSlashes.
    evidence: Arc<EvidenceStore>,
    /// `ListSlashes` pages carrying evidence (up to 32 MiB each) being read at once.
    evidence_pages: Arc<tokio::sync::Semaphore>,
    /// Signed ledger requests, several to a transaction under load.
    ledger_writes: crate::ledger::GroupCommit,
    next_job: AtomicU64,
    /// Segment bytes held for uploads and their jobs.
    segment_budget: Arc<StagingBudget>,
    /// Open quotes: id → (drawn worker, when).
    quotes: std::sync::Mutex<std::collections::HashMap<String, (PublicId, Instant)>>,
    /// Recent segments' inspections, for a client that uploads one again after losing its quote.
    inspections: crate::inspections::Inspections,
    /// Memory of source frames kept for content checks.
    kept_budget: Arc<StagingBudget>,
    /// Links to the other coordinators: answers of workers here to their commands go back by it.
    relay: Arc<crate::relay::Relay>,
}

impl CoordinatorService {
    pub fn new(
        identity: Arc<Identity>,
        config: Arc<Config>,
        pool: Arc<WorkerPool>,
        ledger: Arc<Ledger>,
        storage: Arc<BlobService>,
        slasher: Arc<Slasher>,
        relay: Arc<crate::relay::Relay>,
    ) -> Self {
        let segment_budget = StagingBudget::new(
            "segment",
            config.max_staged_segment_bytes,
            config.max_staged_segment_bytes_per_client,
        );
        Self {
            storage,
            segment_budget,
            evidence: Arc::clone(slasher.evidence_store()),
            evidence_pages: Arc::new(tokio::sync::Semaphore::new(EVIDENCE_PAGES_AT_ONCE)),
            ledger_writes: crate::ledger::GroupCommit::start(Arc::clone(&ledger)),
            dispatcher: JobDispatcher::new(Arc::clone(&pool), Arc::clone(&config), slasher),
            identity,
            config,
            pool,
            ledger,
            next_job: AtomicU64::new(1),
            inspections: crate::inspections::Inspections::default(),
            kept_budget: StagingBudget::with_gauge(
                "kept source frame",
                crate::inspections::KEPT_FRAMES_BYTES,
                crate::inspections::KEPT_FRAMES_BYTES_PER_CLIENT,
                metrics::kept_frames_bytes,
            ),
            quotes: std::sync::Mutex::default(),
            relay,
        }
    }

    fn new_job_id(&self) -> String {
        // A random prefix keeps ids unique across restarts; the counter keeps them readable in logs.
        let n = self.next_job.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", hex::encode(rand::random::<[u8; 4]>()))
    }

    /// Reads a client's upload: the header, then chunks up to the declared size and the limit, each
    /// within the upload deadlines, the declared size reserved from the segment budget first (the
    /// reservation is held as long as the segment is).
    async fn receive_upload(
        &self,
        client: Option<std::net::IpAddr>,
        mut upload: Streaming<TranscodeUpload>,
    ) -> Result<(TranscodeHeader, BytesMut, Reservation), CoordinatorError> {
        let deadlines = UploadDeadlines::new(self.config.upload_idle, self.config.upload_deadline);
        let first = deadlines
            .next("segment", 0, upload.message())
            .await?
            .map_err(|s| CoordinatorError::BadUpload(format!("stream broke: {}", s.message())))?
            .ok_or_else(|| {
                CoordinatorError::BadUpload("empty upload; send a header first".into())
            })?;
        let Some(transcode_upload::Part::Header(header)) = first.part else {
            return Err(CoordinatorError::BadUpload(
                "the first message must be the header (profiles, segment_size)".into(),
            ));
        };
        let limit = self.config.max_segment_bytes;
        if header.segment_size > limit {
            return Err(CoordinatorError::SegmentTooLarge {
                size: header.segment_size,
                limit,
            });
        }
        if header.segment_size == 0 {
            return Err(CoordinatorError::BadSegment(
                "segment is empty (0 bytes); send an MPEG-TS or MP4 segment".into(),
            ));
        }
        // A paid job's sender must be able to cover its tickets before any segment byte is taken.
        self.check_funds(&header).await?;
        let reservation = self.segment_budget.reserve(client, header.segment_size)?;
        // Grown as bytes arrive: a header alone holds no memory.
        let mut segment = BytesMut::new();
        while let Some(message) = deadlines
            .next("segment", segment.len() as u64, upload.message())
            .await?
            .map_err(|s| {
                CoordinatorError::ShortUpload {
                    got: segment.len() as u64,
                    declared: header.segment_size,
                }
                .with_cause(s)
            })?
        {
            match message.part {
                Some(transcode_upload::Part::Chunk(chunk)) => {
                    let size = (segment.len() + chunk.len()) as u64;
                    if size > header.segment_size {
                        return Err(CoordinatorError::BadUpload(format!(
                            "upload carries more than the {} bytes its header announced",
                            header.segment_size
                        )));
                    }
                    segment.extend_from_slice(&chunk);
                }
                _ => {
                    return Err(CoordinatorError::BadUpload(
                        "only one header per upload; the rest must be chunks".into(),
                    ));
                }
            }
        }
        if (segment.len() as u64) < header.segment_size {
            return Err(CoordinatorError::ShortUpload {
                got: segment.len() as u64,
                declared: header.segment_size,
            });
        }
        metrics::bytes_in("segment", segment.len());
        Ok((header, segment, reservation))
    }

    /// Stages `segment` in scratch (deleted with the returned path) and inspects it (a full decode:
    /// what decodes is what an honest rendition must match), keeping the source frames its first
    /// content check will need while the kept-frames budget allows; a segment inspected moments ago
    /// is only staged.
    async fn stage_and_inspect(
        &self,
        client: Option<std::net::IpAddr>,
        segment: bytes::Bytes,
    ) -> Result<(Arc<tempfile::TempPath>, Arc<Inspected>), CoordinatorError> {
        let hash = blake3::hash(&segment);
        let known = self.inspections.get(&hash);
        // Past the budget the job is served all the same; its content check decodes the source.
        let held = match known {
            Some(_) => None,
            None => self
                .kept_budget
                .reserve(client, crate::inspections::KEPT_PER_JOB)
                .ok(),
        };
        let scratch = self.config.scratch_dir();
        let (staged, inspected) = tokio::task::spawn_blocking(move || {
            let mut file = tempfile::Builder::new()
                .prefix("segment-")
                .tempfile_in(&scratch)?;
            std::io::Write::write_all(&mut file, &segment)?;
            let staged = file.into_temp_path();
            if let Some(known) = known {
                return Ok((Arc::new(staged), known));
            }
            let rejected = |e| CoordinatorError::BadSegment(format!("segment rejected: {e}"));
            let budget = dualrig_media::DecodeBudget::SEGMENT;
            let inspected = match held {
                // The first content check's seed is drawn now, so its source frames can be kept
                // from this decode; no worker ever sees it.
                Some(held) => {
                    let (source, frames) = dualrig_media::inspect_keeping(
                        &staged,
                        budget,
                        crate::verify::CONTENT_SAMPLES,
                        rand::random(),
                    )
                    .map_err(rejected)?;
                    let kept = Some(Arc::new(KeptFrames { frames, held }));
                    Inspected { source, kept }
                }
                None => Inspected {
                    source: dualrig_media::inspect_within(&staged, budget).map_err(rejected)?,
                    kept: None,
                },
            };
            Ok::<_, CoordinatorError>((Arc::new(staged), Arc::new(inspected)))
        })
        .await
        .map_err(|e| CoordinatorError::BadSegment(format!("segment inspection crashed: {e}")))??;
        self.inspections.insert(hash, Arc::clone(&inspected));
        Ok((staged, inspected))
    }

    async fn transcode(
        &self,
        client: Option<std::net::IpAddr>,
        upload: Streaming<TranscodeUpload>,
        job_id: String,
    ) -> Result<TranscodeResponse, CoordinatorError> {
        let (header, segment, _held) = self.receive_upload(client, upload).await?;
        let profiles = ladder_from_wire(&header.profiles)?;
        let segment = segment.freeze();

        let (staged, inspected) = self.stage_and_inspect(client, segment.clone()).await?;
        let source = inspected.source.clone();
        info!(
            frames = source.frames,
            width = source.width,
            height = source.height,
            label = %header.label,
            "segment accepted"
        );

        // Before any worker or payment sees it: a ladder starved of bits at this frame rate cannot
        // pass the content check honestly (PROTOCOL §5.1).
        dualrig_proto::profile::check_ladder_floor(&profiles, source.output_rate())?;
        let units = dualrig_proto::profile::job_units(&profiles, source.frames);
        let payment = self.payment_for(&header, units)?;
        let round = match self.ledger.call(|l| l.round()).await {
            Ok(round) => round,
            Err(e) => {
                warn!(error = %e, "cannot read the ledger round; the job goes out without it");
                0
            }
        };
        let verified = self
            .dispatcher
            .run(JobSpec {
                job_id: job_id.clone(),
                segment,
                staged,
                source,
                source_frames: inspected.kept.clone(),
                profiles,
                units,
                round,
                payment,
            })
            .await?;
        let bytes: usize = verified
            .result
            .renditions
            .iter()
            .map(|r| r.data.len())
            .sum();
        metrics::bytes_out("result", bytes);
        if let Some(sessions) = verified.sessions_proven {
            let worker = verified.worker;
            // The job is done whatever the ledger says; a count lost here is proven again later.
            match self
                .ledger
                .call(move |l| l.prove_sessions(&worker, sessions))
                .await
            {
                Ok(proof) if proof.bonus > 0 => info!(
                    worker = %worker.short(),
                    sessions,
                    added = proof.added_sessions,
                    bonus = proof.bonus,
                    "capacity bonus paid for encoder sessions"
                ),
                Ok(_) => {}
                Err(e) => {
                    warn!(worker = %worker.short(), error = %e, "cannot record proven sessions")
                }
            }
        }
        Ok(TranscodeResponse {
            job_id,
            worker_id: verified.worker.as_bytes().to_vec(),
            worker_signature: verified.result.signature,
            encoder: verified.result.encoder,
            renditions: verified.result.renditions,
            attempts: verified.attempts,
        })
    }
}

impl CoordinatorService {
    /// Checks a job's payment against its quote and its size before any worker sees it: the quote
    /// must be open, and the tickets' expected values must cover the quoted worker's price for
    /// `units`. The worker checks the tickets themselves again.
    fn payment_for(
        &self,
        header: &TranscodeHeader,
        units: u64,
    ) -> Result<Option<JobPayment>, CoordinatorError> {
        let checked = self.check_payment(header, units);
        match &checked {
            Ok(Some((_, offered))) => metrics::payment("accepted", *offered),
            Ok(None) => {}
            Err(CoordinatorError::QuoteLost(_)) => metrics::payment("quote_lost", 0),
            Err(_) => metrics::payment("refused", 0),
        }
        Ok(checked?.map(|(payment, _)| payment))
    }

    /// The sender of a paid job must be able to cover what its tickets put at risk (as a payment
    /// broker's sender monitor does): every ticket's face value within its deposit plus the share of
    /// its reserve a recipient may claim, and it must not be unlocking. Checked on the header, so an
    /// unfunded sender costs no upload, no inspection and no work.
    async fn check_funds(&self, header: &TranscodeHeader) -> Result<(), CoordinatorError> {
        if header.quote_id.is_empty() || header.payment.is_empty() {
            return Ok(());
        }
        let tickets = header
            .payment
            .iter()
            .map(dualrig_proto::ticket::SignedTicket::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let checked = check_sender_covers(&self.ledger, &self.config, &tickets).await;
        if let Err(CoordinatorError::SenderCannotCover { .. }) = &checked {
            metrics::payment("unfunded", 0);
        }
        checked
    }
}

/// The checks on a payment's sender that need the ledger (PROTOCOL §3.4), for a transcode's header and
/// a download's Get alike: one sender, not unlocking, every ticket's face value within its deposit plus
/// its reserve share, and no ticket that outlives the unlock period. `tickets` is not empty.
pub(crate) async fn check_sender_covers(
    ledger: &Arc<Ledger>,
    config: &Config,
    tickets: &[dualrig_proto::ticket::SignedTicket],
) -> Result<(), CoordinatorError> {
    let Some(first) = tickets.first() else {
        return Ok(());
    };
    let sender = first.ticket.sender;
    if let Some(other) = tickets.iter().find(|t| t.ticket.sender != sender) {
        return Err(CoordinatorError::MixedSenders {
            first: sender,
            other: other.ticket.sender,
        });
    }
    let face_value = tickets
        .iter()
        .map(|t| t.ticket.face_value)
        .max()
        .unwrap_or(0);
    let (account, recipients, round) = ledger
        .call(move |l| {
            Ok((
                l.account(&sender)?.sender,
                l.eligible_stakes()?.len(),
                l.round()?,
            ))
        })
        .await?;
    // A ticket must expire before its sender, unlocking now, could withdraw what backs it.
    let latest = round.saturating_add(config.ticket_validity());
    if let Some(t) = tickets.iter().find(|t| t.ticket.expiration_round > latest) {
        return Err(CoordinatorError::TicketOutlivesUnlock {
            expiration_round: t.ticket.expiration_round,
            latest,
        });
    }
    if let Some(withdraw_round) = account.withdraw_round {
        return Err(CoordinatorError::SenderUnlocking {
            sender,
            withdraw_round,
        });
    }
    // A recipient may claim its share of the reserve when the deposit runs dry.
    let reserve_share = account.reserve / recipients.max(1) as u64;
    let cover = account.deposit.saturating_add(reserve_share);
    if cover < face_value {
        return Err(CoordinatorError::SenderCannotCover {
            sender,
            deposit: account.deposit,
            reserve_share,
            face_value,
        });
    }
    Ok(())
}

impl CoordinatorService {
    fn check_payment(
        &self,
        header: &TranscodeHeader,
        units: u64,
    ) -> Result<Option<(JobPayment, u64)>, CoordinatorError> {
        if header.quote_id.is_empty() {
            if self.config.require_payment {
                return Err(CoordinatorError::PaymentRequired { units });
            }
            return Ok(None);
        }
        let quoted = self
            .quotes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&header.quote_id);
        let Some((worker, _)) = quoted.filter(|(_, at)| at.elapsed() < QUOTE_TTL) else {
            return Err(CoordinatorError::QuoteLost(QuoteLost::Unknown {
                quote_id: header.quote_id.clone(),
            }));
        };
        let params = self
            .pool
            .ticket_params(&worker)
            .and_then(|p| dualrig_proto::ticket::TicketParams::try_from(&p).ok())
            .ok_or(CoordinatorError::QuoteLost(QuoteLost::WorkerGone {
                worker,
            }))?;
        let mut offered = 0u64;
        for wire in &header.payment {
            let ticket = dualrig_proto::ticket::SignedTicket::try_from(wire)?;
            if ticket.ticket.recipient != worker {
                return Err(CoordinatorError::WrongPayee {
                    payee: ticket.ticket.recipient,
                    quoted: worker,
                });
            }
            offered = offered.saturating_add(ticket.ticket.expected_value());
        }
        let covered = offered
            .checked_div(params.price_per_unit)
            .unwrap_or(u64::MAX);
        if covered < units {
            return Err(CoordinatorError::PaymentShort {
                covered,
                units,
                price: params.price_per_unit,
            });
        }
        Ok(Some((
            JobPayment {
                worker,
                tickets: header.payment.clone(),
            },
            offered,
        )))
    }

    async fn quote(&self, request: QuoteRequest) -> Result<QuoteResponse, CoordinatorError> {
        let profiles = ladder_from_wire(&request.profiles)?;
        let needs = Requirements {
            width: profiles.iter().map(|p| p.width).max().unwrap_or(0),
            height: profiles.iter().map(|p| p.height).max().unwrap_or(0),
        };
        let worker = self.pool.draw_for_quote(needs).ok_or_else(|| {
            CoordinatorError::NoWorker(
                "no worker can take this ladder now; start a worker or retry later".into(),
            )
        })?;
        let params = self.pool.ticket_params(&worker).unwrap_or_default();
        let round = self
            .ledger
            .call(|l| l.round())
            .await
            .map_err(|e| CoordinatorError::NoWorker(format!("ledger unavailable: {e}")))?;
        let quote_id = hex::encode(rand::random::<[u8; 16]>());
        let mut quotes = self
            .quotes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        quotes.retain(|_, (_, at)| at.elapsed() < QUOTE_TTL);
        if quotes.len() >= MAX_OPEN_QUOTES {
            return Err(CoordinatorError::Busy(format!(
                "{MAX_OPEN_QUOTES} quotes are open; use one or try again in a minute"
            )));
        }
        quotes.insert(quote_id.clone(), (worker, Instant::now()));
        Ok(QuoteResponse {
            quote_id,
            worker_id: worker.as_bytes().to_vec(),
            params: Some(params),
            round,
        })
    }
}

impl CoordinatorError {
    fn with_cause(self, status: Status) -> Self {
        match self {
            CoordinatorError::ShortUpload { .. } => {
                CoordinatorError::BadUpload(format!("{self} (stream broke: {})", status.message()))
            }
            other => other,
        }
    }
}

type CommandStream = Pin<Box<dyn Stream<Item = Result<WorkerCommand, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl CoordinatorApi for CoordinatorService {
    async fn hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloResponse>, Status> {
        let worker = PublicId::from_slice("worker_id", &request.get_ref().worker_id)
            .map_err(CoordinatorError::from)?;
        let nonce = if request.get_ref().for_get {
            self.pool.issue_get_nonce(worker)?
        } else {
            self.pool.issue_nonce(worker)?
        };
        Ok(Response::new(HelloResponse {
            nonce: nonce.to_vec(),
            coordinator_id: self.identity.id().as_bytes().to_vec(),
            ticket_validity_rounds: self.config.ticket_validity(),
        }))
    }

    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        let req = request.into_inner();
        let worker =
            PublicId::from_slice("worker_id", &req.worker_id).map_err(CoordinatorError::from)?;
        let capabilities = req.capabilities.unwrap_or_default();
        match self
            .pool
            .register(worker, &req.nonce, &req.signature, capabilities.clone())
        {
            Ok(token) => {
                metrics::registration("accepted");
                info!(
                    worker = %worker.short(),
                    encoder = %capabilities.selected_encoder,
                    reason = %clipped(&capabilities.encoder_reason),
                    sessions = capabilities.sessions,
                    hasher = %capabilities.hasher,
                    "worker registered"
                );
                Ok(Response::new(RegisterResponse {
                    session_token: token,
                    heartbeat_interval_ms: self.config.heartbeat_interval.as_millis() as u32,
                }))
            }
            Err(e) => {
                metrics::registration("refused");
                warn!(worker = %worker.short(), error = %e, "registration refused");
                Err(e.into())
            }
        }
    }

    type AttachStream = CommandStream;

    async fn attach(
        &self,
        request: Request<Streaming<WorkerEvent>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let peer = request.remote_addr().map(|a| a.ip());
        let token = request
            .metadata()
            .get(dualrig_proto::SESSION_METADATA_KEY)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                CoordinatorError::Unauthenticated(format!(
                    "missing {} metadata; call Register first",
                    dualrig_proto::SESSION_METADATA_KEY
                ))
            })?
            .to_owned();
        let (worker, connection, queues) = self.pool.attach(&token)?;
        if let Some(ip) = peer {
            self.pool
                .set_network(worker, connection, crate::network::Network::of(ip));
        }
        info!(worker = %worker.short(), "worker attached");
        crate::stakes::refresh(&self.ledger, &self.pool).await;
        let mut events = request.into_inner();
        let pool = Arc::clone(&self.pool);
        let storage = Arc::clone(&self.storage);
        let relay = Arc::clone(&self.relay);
        let silence = self.config.heartbeat_interval * 3;
        tokio::spawn(
            async move {
                loop {
                    let event = match tokio::time::timeout(silence, events.message()).await {
                        Ok(Ok(Some(event))) => event,
                        Ok(Ok(None)) => {
                            info!("worker closed its stream");
                            break;
                        }
                        Ok(Err(status)) => {
                            info!(error = %status.message(), "worker stream broke");
                            break;
                        }
                        Err(_) => {
                            warn!(
                                silent_s = silence.as_secs_f64(),
                                "worker missed its heartbeats; dropping it"
                            );
                            break;
                        }
                    };
                    match event.event {
                        Some(worker_event::Event::Heartbeat(_)) | None => {}
                        Some(worker_event::Event::Capacity(c)) => {
                            info!(sessions = c.free_sessions, "worker changed its sessions");
                            pool.set_capacity(worker, connection, c.free_sessions)
                        }
                        Some(
                            event @ (worker_event::Event::Result(_)
                            | worker_event::Event::Failure(_)),
                        ) => {
                            if let Ok((job_id, outcome)) = crate::pool::job_outcome(event)
                                && !pool.complete(worker, connection, &job_id, outcome)
                            {
                                info!(job = %job_id, "discarded an outcome for a job this worker no longer holds");
                            }
                        }
                        Some(worker_event::Event::Params(params)) => {
                            pool.set_ticket_params(worker, connection, params)
                        }
                        Some(other) => {
                            // An answer to another coordinator's command goes back by its link.
                            if !relay.answer(worker, &other).await {
                                storage.on_event(worker, connection, other).await
                            }
                        }
                    }
                }
                pool.detach(worker, connection);
            }
            .instrument(info_span!("worker", id = %worker.short())),
        );
        // Control first, always: a challenge never waits behind a client's blob pieces or a job.
        let commands = futures::stream::select_with_strategy(
            ReceiverStream::new(queues.control),
            ReceiverStream::new(queues.bulk),
            |_: &mut ()| futures::stream::PollNext::Left,
        );
        Ok(Response::new(Box::pin(commands) as Self::AttachStream))
    }

    async fn transcode(
        &self,
        request: Request<Streaming<TranscodeUpload>>,
    ) -> Result<Response<TranscodeResponse>, Status> {
        let job_id = self.new_job_id();
        let started = Instant::now();
        let span = info_span!("job", id = %job_id);
        let client = request.remote_addr().map(|a| a.ip());
        let outcome = self
            .transcode(client, request.into_inner(), job_id)
            .instrument(span.clone())
            .await;
        let label = match &outcome {
            Ok(_) => "verified",
            Err(CoordinatorError::NoWorker(_)) => "no_worker",
            Err(CoordinatorError::Exhausted { .. }) => "failed",
            Err(_) => "rejected",
        };
        metrics::job_finished(label, started.elapsed());
        span.in_scope(|| match &outcome {
            Ok(r) => info!(
                attempts = r.attempts,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "job done"
            ),
            Err(e) => warn!(error = %e, "job not done"),
        });
        Ok(Response::new(outcome?))
    }

    async fn quote(
        &self,
        request: Request<QuoteRequest>,
    ) -> Result<Response<QuoteResponse>, Status> {
        Ok(Response::new(self.quote(request.into_inner()).await?))
    }

    async fn execute(
        &self,
        request: Request<LedgerRequest>,
    ) -> Result<Response<LedgerReceipt>, Status> {
        let req = request.into_inner();
        let account =
            PublicId::from_slice("account", &req.account).map_err(CoordinatorError::from)?;
        let signed = SignedRequest::from_parts(account, req.nonce, req.operation, &req.sig)
            .map_err(LedgerError::from)?;
        let operation = Operation::decode(&signed.operation).ok();
        let name = operation.as_ref().map_or("malformed", operation_name);
        let nonce = signed.nonce;
        // Signatures are checked here, in parallel, before the request may wait for a transaction.
        let outcome = match tokio::task::spawn_blocking(move || crate::ledger::Checked::new(signed))
            .await
        {
            Ok(Ok(checked)) => {
                // An add names a blob of the index, which the ledger does not see.
                if let Some(Operation::AddToCollective {
                    name: collective,
                    root,
                }) = &operation
                    && let Err(e) = self.storage.check_addable(collective, *root).await
                {
                    metrics::ledger_request(name, "refused");
                    info!(account = %account.short(), operation = name, error = %e, "ledger request refused");
                    return Err(e.into());
                }
                self.ledger_writes.execute(checked).await
            }
            Ok(Err(e)) => Err(e),
            Err(e) => Err(LedgerError::Task(e.to_string())),
        };
        let (receipt, round) = match outcome {
            Ok(done) => {
                metrics::ledger_request(name, "applied");
                done
            }
            Err(e) => {
                metrics::ledger_request(name, "refused");
                info!(account = %account.short(), operation = name, error = %e, "ledger request refused");
                return Err(e.into());
            }
        };
        if matches!(
            operation,
            Some(
                Operation::Bond { .. }
                    | Operation::Delegate { .. }
                    | Operation::Unbond { .. }
                    | Operation::BuyWeight { .. }
            )
        ) {
            crate::stakes::refresh(&self.ledger, &self.pool).await;
        }
        if matches!(
            operation,
            Some(Operation::BuyWeight { .. } | Operation::RedeemTicket { .. })
        ) {
            refresh_sip_metrics(&self.ledger).await;
        }
        match &operation {
            Some(Operation::AddToCollective { name, root }) => {
                let (name, root) = (name.clone(), *root);
                let collective = self.ledger.call(move |l| l.collective(&name)).await?;
                self.storage
                    .raise_replicas(root, collective.rules.replicas)
                    .await?;
            }
            Some(
                Operation::JoinCollective { .. }
                | Operation::LeaveCollective { .. }
                | Operation::WithdrawUnbonded,
            ) => refresh_collective_totals(&self.ledger).await,
            _ => {}
        }
        let (amount, proposal, vote_weight) = match receipt {
            Receipt::Done => (0, 0, 0),
            Receipt::Withdrawn { amount } => (amount, 0, 0),
            Receipt::Redeemed(r) => (r.credited(), 0, 0),
            Receipt::Bought { weight } => (weight, 0, 0),
            Receipt::Proposed { id } => (0, id, 0),
            Receipt::Voted { weight } => (0, 0, weight),
        };
        Ok(Response::new(LedgerReceipt {
            amount,
            nonce,
            round,
            proposal,
            vote_weight,
        }))
    }

    async fn account(
        &self,
        request: Request<AccountRequest>,
    ) -> Result<Response<AccountInfo>, Status> {
        let account = PublicId::from_slice("account", &request.get_ref().account)
            .map_err(CoordinatorError::from)?;
        let state = self.ledger.call(move |l| l.account(&account)).await?;
        Ok(Response::new(AccountInfo {
            account: account.as_bytes().to_vec(),
            balance: state.balance,
            nonce: state.last_nonce,
            deposit: state.sender.deposit,
            reserve: state.sender.reserve,
            withdraw_round: state.sender.withdraw_round.unwrap_or(0),
            bonded_to_self: state.bonded_to_self,
            stake: state.stake,
            unbonding: state
                .unbonding
                .iter()
                .map(|u| dualrig_proto::v1::UnbondingEntry {
                    worker: u.worker.as_bytes().to_vec(),
                    amount: u.amount,
                    release_round: u.release_round,
                })
                .collect(),
            round: state.round,
            suspended_until: state.suspended_until.unwrap_or(0),
            collective_stakes: state
                .collective_stakes
                .iter()
                .map(|s| dualrig_proto::v1::CollectiveStake {
                    collective: s.collective.clone(),
                    amount: s.amount,
                    release_round: s.release_round.unwrap_or(0),
                })
                .collect(),
            mining_weight: state.mining_weight,
            redirect_ppm: state.redirect.share_ppm,
            redirect_next_ppm: state.redirect.next_ppm,
            redirected: state.redirect.redirected,
        }))
    }

    async fn list_workers(
        &self,
        request: Request<ListWorkersRequest>,
    ) -> Result<Response<ListWorkersResponse>, Status> {
        let request = request.into_inner();
        let page = Page::requested("workers", &request.page_token, request.page_size)?;
        let workers = self
            .pool
            .snapshot_after(page.after.as_deref(), page.size + 1);
        let (workers, next_page_token) = page.finish(workers, |w| w.worker_id.clone());
        Ok(Response::new(ListWorkersResponse {
            workers,
            next_page_token,
        }))
    }

    async fn list_slashes(
        &self,
        request: Request<ListSlashesRequest>,
    ) -> Result<Response<ListSlashesResponse>, Status> {
        let request = request.into_inner();
        let _reading = if request.with_evidence {
            let busy = |_| {
                CoordinatorError::Busy(format!(
                    "{EVIDENCE_PAGES_AT_ONCE} pages of slash evidence are being read; try again shortly, or list without evidence"
                ))
            };
            Some(
                Arc::clone(&self.evidence_pages)
                    .try_acquire_owned()
                    .map_err(busy)?,
            )
        } else {
            None
        };
        let slashes = crate::evidence::list_slashes(&self.ledger, &self.evidence, request).await?;
        Ok(Response::new(slashes))
    }

    async fn list_statements(
        &self,
        request: Request<ListStatementsRequest>,
    ) -> Result<Response<ListStatementsResponse>, Status> {
        let statements =
            crate::statements::list_statements(&self.ledger, request.into_inner()).await?;
        Ok(Response::new(statements))
    }

    async fn sip_status(
        &self,
        request: Request<dualrig_proto::v1::SipStatusRequest>,
    ) -> Result<Response<dualrig_proto::v1::SipStatusResponse>, Status> {
        Ok(Response::new(
            crate::sip::sip_status(&self.ledger, request.into_inner()).await?,
        ))
    }

    async fn list_proposals(
        &self,
        request: Request<ListProposalsRequest>,
    ) -> Result<Response<ListProposalsResponse>, Status> {
        let proposals =
            crate::proposals::list_proposals(&self.ledger, request.into_inner()).await?;
        Ok(Response::new(proposals))
    }

    async fn list_coordinators(
        &self,
        _request: Request<dualrig_proto::v1::ListCoordinatorsRequest>,
    ) -> Result<Response<dualrig_proto::v1::ListCoordinatorsResponse>, Status> {
        Ok(Response::new(
            crate::cluster::list_coordinators(
                &self.ledger,
                self.identity.id(),
                self.config.coordinator_silent_after_secs(),
            )
            .await?,
        ))
    }

    async fn put(
        &self,
        request: Request<Streaming<PutUpload>>,
    ) -> Result<Response<PutResponse>, Status> {
        let client = request.remote_addr().map(|a| a.ip());
        Ok(Response::new(
            self.storage.put(client, request.into_inner()).await?,
        ))
    }

    async fn download_quote(
        &self,
        request: Request<DownloadQuoteRequest>,
    ) -> Result<Response<DownloadQuoteResponse>, Status> {
        Ok(Response::new(
            self.storage.download_quote(request.into_inner()).await?,
        ))
    }

    type GetStream = GetStream;

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<Self::GetStream>, Status> {
        Ok(Response::new(self.storage.get(request.into_inner()).await?))
    }

    async fn collective(
        &self,
        request: Request<CollectiveRequest>,
    ) -> Result<Response<CollectiveInfo>, Status> {
        let request = request.into_inner();
        let page = Page::requested("collective blobs", &request.page_token, request.page_size)?;
        let after = page.after_key::<32>("collective blobs")?;
        let name = request.name;
        dualrig_proto::access::check_name(&name).map_err(LedgerError::CollectiveName)?;
        let limit = page.size + 1;
        let (collective, roots) = self
            .ledger
            .call(move |l| {
                let c = l.collective(&name)?;
                let roots = l.collective_roots(&name, after.as_ref(), limit)?;
                Ok((c, roots))
            })
            .await?;
        let (roots, next_page_token) = page.finish(roots, |r| r.to_vec());
        let mut info = collective_info(&collective);
        info.roots = roots.iter().map(|r| r.to_vec()).collect();
        info.next_page_token = next_page_token;
        Ok(Response::new(info))
    }

    async fn list_collectives(
        &self,
        request: Request<ListCollectivesRequest>,
    ) -> Result<Response<ListCollectivesResponse>, Status> {
        let request = request.into_inner();
        let page = Page::requested("collectives", &request.page_token, request.page_size)?;
        let after = match &page.after {
            Some(token) => Some(String::from_utf8(token.clone()).map_err(|_| {
                CoordinatorError::BadPageToken {
                    list: "collectives",
                    len: token.len(),
                }
            })?),
            None => None,
        };
        let limit = page.size + 1;
        let collectives = self
            .ledger
            .call(move |l| l.collectives_page(after.as_deref(), limit))
            .await?;
        let (collectives, next_page_token) =
            page.finish(collectives, |c| c.name.as_bytes().to_vec());
        Ok(Response::new(ListCollectivesResponse {
            collectives: collectives.iter().map(collective_info).collect(),
            next_page_token,
        }))
    }

    async fn list_blobs(
        &self,
        request: Request<ListBlobsRequest>,
    ) -> Result<Response<ListBlobsResponse>, Status> {
        let request = request.into_inner();
        let page = Page::requested("blobs", &request.page_token, request.page_size)?;
        let after = page.after_key::<32>("blobs")?;
        Ok(Response::new(self.storage.list(page, after).await?))
    }
}

fn collective_info(c: &crate::ledger::Collective) -> CollectiveInfo {
    CollectiveInfo {
        name: c.name.clone(),
        owner: c.owner.as_bytes().to_vec(),
        access_stake: c.rules.access_stake,
        price_per_byte: c.rules.price_per_byte,
        free_bytes_per_round: c.rules.free_bytes_per_round,
        replicas: c.rules.replicas,
        members: c.members,
        stake_locked: c.stake_locked,
        blob_count: c.blobs,
        roots: Vec::new(),
        next_page_token: Vec::new(),
    }
}

/// Sets the collectives' gauges from the ledger.
pub async fn refresh_collective_totals(ledger: &Arc<Ledger>) {
    match ledger.call(|l| l.collective_totals()).await {
        Ok((members, stake)) => metrics::collective_totals(members, stake),
        Err(e) => tracing::error!(error = %e, "cannot read the collectives' totals"),
    }
}

/// Sets the SIP's gauges and counters from the ledger.
pub async fn refresh_sip_metrics(ledger: &Arc<Ledger>) {
    match ledger.call(|l| l.sip_status(0)).await {
        Ok(status) => metrics::sip(&status),
        Err(e) => tracing::error!(error = %e, "cannot read the SIP's figures"),
    }
}

/// A label for metrics and logs.
fn operation_name(operation: &Operation) -> &'static str {
    match operation {
        Operation::Transfer { .. } => "transfer",
        Operation::Bond { .. } => "bond",
        Operation::Delegate { .. } => "delegate",
        Operation::Unbond { .. } => "unbond",
        Operation::WithdrawUnbonded => "withdraw_unbonded",
        Operation::Deposit { .. } => "deposit",
        Operation::Reserve { .. } => "reserve",
        Operation::Unlock => "unlock",
        Operation::CancelUnlock => "cancel_unlock",
        Operation::Withdraw => "withdraw",
        Operation::RedeemTicket { .. } => "redeem_ticket",
        Operation::CreateCollective { .. } => "create_collective",
        Operation::AddToCollective { .. } => "add_to_collective",
        Operation::JoinCollective { .. } => "join_collective",
        Operation::LeaveCollective { .. } => "leave_collective",
        Operation::BuyWeight { .. } => "buy_weight",
        Operation::Propose { .. } => "propose",
        Operation::Vote { .. } => "vote",
        Operation::SetRedirect { .. } => "set_redirect",
    }
}

/// At most the first 240 bytes of `text` a peer sent, for a log line.
fn clipped(text: &str) -> &str {
    let mut end = text.len().min(240);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
