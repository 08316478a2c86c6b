//! The dualrig client library: send segments or whole videos to a coordinator and get back a verified
//! adaptive-bitrate ladder, written out as HLS.
//!
//! [`DualrigClient`] speaks the wire; [`ladder`] cuts a video into segments, runs them through the network
//! several at a time, and [`hls`] writes the playlists. [`DualrigClient::execute`] signs ledger requests
//! (deposits, stake, transfers) with the account's key; [`DualrigClient::account`] reads an account;
//! [`blobs`] stores files on the network and fetches them back verified. [`resume`] keeps the record
//! that lets an interrupted ladder carry on where it stopped.

pub mod blobs;
pub mod hls;
pub mod ladder;
pub mod resume;

use dualrig_proto::identity::{Identity, PublicId};
use dualrig_proto::ledger_request::{Operation, SignedRequest};
use dualrig_proto::profile::Profile;
use dualrig_proto::ticket::{TicketParams, TicketPayer};
use dualrig_proto::v1::coordinator_client::CoordinatorClient;
use dualrig_proto::v1::{
    AccountInfo, AccountRequest, LedgerReceipt, LedgerRequest, ListProposalsRequest,
    ListProposalsResponse, ListWorkersRequest, ProposalInfo, QuoteRequest, SipStatusRequest,
    SipStatusResponse, TranscodeHeader, TranscodeResponse, TranscodeUpload, WorkerInfo,
    transcode_upload,
};
use tonic::transport::{Channel, Endpoint};

pub use blobs::{GetSummary, PutSummary, parse_root};
pub use ladder::{LadderOptions, LadderSummary, transcode_file};

/// Bytes per upload message: small enough to interleave, large enough to keep per-message cost low.
const UPLOAD_CHUNK: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the coordinator at {url}: {source}")]
    Connect {
        url: String,
        source: tonic::transport::Error,
    },
    #[error("coordinator said {}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    #[error("the coordinator's answer does not check out: {0}")]
    Unverified(String),
    /// The ladder is not one a coordinator accepts (for this source).
    #[error("bad ladder: {0}")]
    Ladder(#[from] dualrig_proto::profile::ProfileError),
    /// The quoted worker's price per output pixel is above what the client will pay.
    #[error("worker asks {price} per output pixel, above --max-price {max}")]
    OverMaxPrice { price: u64, max: u64 },
    /// The quoted holder's price per byte is above what the client will pay.
    #[error("holder asks {price} per byte, above --max-price {max}")]
    OverMaxBytePrice { price: u64, max: u64 },
    /// The client cannot sign tickets covering the job.
    #[error("cannot pay: {0}")]
    CannotPay(#[from] dualrig_proto::ticket::TicketError),
    /// A local task (hashing, counting frames, cutting) died.
    #[error("{what} crashed: {source}")]
    Task {
        what: &'static str,
        source: tokio::task::JoinError,
    },
    #[error("{0}")]
    Media(#[from] dualrig_media::MediaError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// The output directory holds another ladder's record.
    #[error(transparent)]
    Resume(#[from] resume::ResumeError),
    /// A segment kept failing in a way worth retrying until its retry time ran out.
    #[error("{label}: gave up after retrying for {secs} s (--retry-secs): {last}")]
    RetriesSpent {
        label: String,
        secs: u64,
        last: Box<ClientError>,
    },
}

impl ClientError {
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| ClientError::Io { what, source }
    }

    /// The gRPC status code, when the coordinator answered with one.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            ClientError::Status(s) => Some(s.code()),
            _ => None,
        }
    }

    /// Whether sending the same request again, later, may succeed: the coordinator could not be
    /// reached or the connection broke (it is down or restarting), or it said to try again
    /// (`UNAVAILABLE`: no worker free or shutting down; `RESOURCE_EXHAUSTED`: its staging budgets;
    /// `ABORTED`: the job failed on every worker, or a quote was lost). A refusal of the request itself
    /// (bad ladder or segment, payment, permission) is not.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Connect { .. } => true,
            ClientError::Status(s) => match s.code() {
                tonic::Code::Unavailable
                | tonic::Code::ResourceExhausted
                | tonic::Code::Aborted => true,
                // Made here from a broken connection, not sent by the coordinator: those carry the
                // transport's error as their source.
                tonic::Code::Unknown | tonic::Code::Internal | tonic::Code::Cancelled => {
                    std::error::Error::source(s).is_some()
                }
                _ => false,
            },
            _ => false,
        }
    }
}

/// How a client pays for its jobs: its key, the numbering of its tickets, and the most it pays per
/// output pixel.
/// Clones share the ticket numbering.
#[derive(Debug, Clone)]
pub struct Payment {
    pub sender: std::sync::Arc<Identity>,
    pub payer: std::sync::Arc<std::sync::Mutex<TicketPayer>>,
    pub max_price: Option<u64>,
}

impl Payment {
    /// Pays as `sender` with a fresh ticket numbering.
    pub fn new(sender: Identity, max_price: Option<u64>) -> Self {
        Self {
            sender: std::sync::Arc::new(sender),
            payer: std::sync::Arc::default(),
            max_price,
        }
    }
}

/// Quotes a paid segment may take: a quote is lost (`Aborted`) when its worker cannot finish the job
/// or when another job's winning ticket retired the params it was paid under, which several segments
/// in flight to one worker make likely at a high win probability.
pub(crate) const PAID_TRIES: u32 = 4;

/// Frames in a segment, counted from its bitstream: at least what the coordinator's decode counts, so
/// the tickets cover the job (a segment whose packets do not all decode pays for a frame or two
/// more), at a small share of decoding it.
fn segment_frames(segment: &[u8]) -> Result<u64, ClientError> {
    let mut file = tempfile::NamedTempFile::new().map_err(ClientError::io("staging a segment"))?;
    std::io::Write::write_all(&mut file, segment).map_err(ClientError::io("staging a segment"))?;
    Ok(dualrig_media::count_frames(file.path())?)
}

/// Every entry of a paged list (PROTOCOL §10): asks for `fetch(token)` from the empty token until the
/// answer's next token is empty. Each token must come after the one before (lists page in key order),
/// so a coordinator that repeats a page cannot keep the client asking.
pub(crate) async fn every_page<T, F, Fut>(mut fetch: F) -> Result<Vec<T>, ClientError>
where
    F: FnMut(Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, Vec<u8>), ClientError>>,
{
    let mut all = Vec::new();
    let mut token = Vec::new();
    loop {
        let (mut items, next) = fetch(token.clone()).await?;
        all.append(&mut items);
        if next.is_empty() {
            return Ok(all);
        }
        if next <= token {
            return Err(ClientError::Unverified(
                "the coordinator's list pages do not advance".into(),
            ));
        }
        token = next;
    }
}

/// A connection to one coordinator. Cheap to clone: clones share the connection.
#[derive(Debug, Clone)]
pub struct DualrigClient {
    api: CoordinatorClient<Channel>,
    url: String,
}

impl DualrigClient {
    pub async fn connect(url: &str) -> Result<Self, ClientError> {
        let connect_err = |source| ClientError::Connect {
            url: url.to_owned(),
            source,
        };
        let channel = Endpoint::from_shared(url.to_owned())
            .map_err(connect_err)?
            .connect_timeout(std::time::Duration::from_secs(5))
            .connect()
            .await
            .map_err(connect_err)?;
        Ok(Self {
            api: CoordinatorClient::new(channel)
                .max_decoding_message_size(dualrig_proto::MAX_MESSAGE_BYTES)
                .max_encoding_message_size(dualrig_proto::MAX_MESSAGE_BYTES),
            url: url.to_owned(),
        })
    }

    /// A new connection to the same coordinator, for carrying on after the old one broke.
    pub async fn redial(&self) -> Result<Self, ClientError> {
        Self::connect(&self.url).await
    }

    /// The coordinator's URL, as given to [`Self::connect`].
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Uploads one segment and returns its verified renditions, checked once more here: every rendition
    /// asked for is present and matches its hash, and the list carries the worker's signature.
    pub async fn transcode_segment(
        &self,
        segment: Vec<u8>,
        profiles: &[Profile],
        label: &str,
    ) -> Result<TranscodeResponse, ClientError> {
        let header = TranscodeHeader {
            profiles: profiles.iter().map(Profile::to_wire).collect(),
            segment_size: segment.len() as u64,
            label: label.to_owned(),
            ..TranscodeHeader::default()
        };
        let response = self.transcode_raw(header, segment).await?;
        check_response(&response, profiles)?;
        Ok(response)
    }

    /// Like [`Self::transcode_segment`], paying the worker with tickets from `payer`, signed by
    /// `sender`: a Quote draws the worker and gives its params, the job's units (output pixels:
    /// `Σ width × height × frames`, frames counted here) set how many tickets, and the header carries
    /// them. A lost quote (`Aborted`: the quoted worker could not finish the job, or its params were
    /// retired by another job's win) costs a new quote, up to [`PAID_TRIES`] in all. `max_price`
    /// refuses a worker asking more per output pixel.
    pub async fn transcode_segment_paid(
        &self,
        segment: Vec<u8>,
        profiles: &[Profile],
        label: &str,
        payment: &Payment,
    ) -> Result<TranscodeResponse, ClientError> {
        let staged = segment.clone();
        let frames = tokio::task::spawn_blocking(move || segment_frames(&staged))
            .await
            .map_err(|source| ClientError::Task {
                what: "frame count",
                source,
            })??;
        let units = dualrig_proto::profile::job_units(profiles, frames);
        let mut tries = 0;
        loop {
            tries += 1;
            let mut api = self.api.clone();
            let quote = api
                .quote(QuoteRequest {
                    profiles: profiles.iter().map(Profile::to_wire).collect(),
                    segment_size: segment.len() as u64,
                })
                .await?
                .into_inner();
            let params = quote
                .params
                .as_ref()
                .ok_or_else(|| ClientError::Unverified("quote carries no ticket params".into()))
                .and_then(|p| {
                    TicketParams::try_from(p).map_err(|e| ClientError::Unverified(e.to_string()))
                })?;
            if params.recipient.as_bytes()[..] != quote.worker_id[..] {
                return Err(ClientError::Unverified(
                    "quoted params are not the quoted worker's".into(),
                ));
            }
            if let Some(max) = payment.max_price
                && params.price_per_unit > max
            {
                return Err(ClientError::OverMaxPrice {
                    price: params.price_per_unit,
                    max,
                });
            }
            let tickets = payment
                .payer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pay_for_units(&payment.sender, &params, units)?;
            let header = TranscodeHeader {
                profiles: profiles.iter().map(Profile::to_wire).collect(),
                segment_size: segment.len() as u64,
                label: label.to_owned(),
                quote_id: quote.quote_id,
                payment: tickets.iter().map(Into::into).collect(),
            };
            match self.transcode_raw(header, segment.clone()).await {
                Err(e) if e.code() == Some(tonic::Code::Aborted) && tries < PAID_TRIES => continue,
                Err(e) => return Err(e),
                Ok(response) => {
                    check_response(&response, profiles)?;
                    return Ok(response);
                }
            }
        }
    }

    /// Uploads a header and bytes as given, with no checks: for tools and tests that need to send what a
    /// well-behaved client would not.
    pub async fn transcode_raw(
        &self,
        header: TranscodeHeader,
        segment: Vec<u8>,
    ) -> Result<TranscodeResponse, ClientError> {
        let mut parts = vec![TranscodeUpload {
            part: Some(transcode_upload::Part::Header(header)),
        }];
        parts.extend(segment.chunks(UPLOAD_CHUNK).map(|c| TranscodeUpload {
            part: Some(transcode_upload::Part::Chunk(c.to_vec())),
        }));
        let mut api = self.api.clone();
        Ok(api.transcode(tokio_stream::iter(parts)).await?.into_inner())
    }

    /// Every attached worker, following the list's pages.
    pub async fn list_workers(&self) -> Result<Vec<WorkerInfo>, ClientError> {
        let api = self.api.clone();
        every_page(|page_token| {
            let mut api = api.clone();
            async move {
                let page = api
                    .list_workers(ListWorkersRequest {
                        page_token,
                        page_size: 0,
                    })
                    .await?
                    .into_inner();
                Ok((page.workers, page.next_page_token))
            }
        })
        .await
    }

    /// Every SIP proposal, oldest first, following the list's pages, with the last page's figures
    /// (round, SIP, capacity fund, rules).
    pub async fn list_proposals(
        &self,
    ) -> Result<(Vec<ProposalInfo>, ListProposalsResponse), ClientError> {
        let mut all = Vec::new();
        let mut page_token = Vec::new();
        loop {
            let mut api = self.api.clone();
            let mut page = api
                .list_proposals(ListProposalsRequest {
                    id: 0,
                    page_token,
                    page_size: 0,
                })
                .await?
                .into_inner();
            all.append(&mut page.proposals);
            if page.next_page_token.is_empty() {
                return Ok((all, page));
            }
            page_token = std::mem::take(&mut page.next_page_token);
        }
    }

    /// Proposal `id` with its tally and payments.
    pub async fn proposal(&self, id: u64) -> Result<ProposalInfo, ClientError> {
        let mut api = self.api.clone();
        let page = api
            .list_proposals(ListProposalsRequest {
                id,
                page_token: Vec::new(),
                page_size: 1,
            })
            .await?
            .into_inner();
        page.proposals.into_iter().next().ok_or_else(|| {
            ClientError::Unverified(format!("the coordinator sent no proposal {id}"))
        })
    }

    /// Signs `operation` as `identity` with the nonce after the account's last one, and has the
    /// coordinator's ledger apply it.
    ///
    /// Two requests from one key at once may pick the same nonce; the later is refused with `Aborted`
    /// and can be sent again.
    pub async fn execute(
        &self,
        identity: &Identity,
        operation: Operation,
    ) -> Result<LedgerReceipt, ClientError> {
        let last = self.account(identity.id()).await?.nonce;
        let nonce = last.checked_add(1).ok_or_else(|| {
            ClientError::Unverified(format!("account {} has used every nonce", identity.id()))
        })?;
        self.execute_signed(&SignedRequest::sign(identity, nonce, &operation))
            .await
    }

    /// Sends a request signed elsewhere, as it is.
    pub async fn execute_signed(
        &self,
        request: &SignedRequest,
    ) -> Result<LedgerReceipt, ClientError> {
        let mut api = self.api.clone();
        Ok(api
            .execute(LedgerRequest {
                account: request.account.as_bytes().to_vec(),
                nonce: request.nonce,
                operation: request.operation.clone(),
                sig: request.sig.to_vec(),
            })
            .await?
            .into_inner())
    }

    /// `account`'s balances, stake, unbonding entries and last nonce.
    pub async fn account(&self, account: PublicId) -> Result<AccountInfo, ClientError> {
        let mut api = self.api.clone();
        Ok(api
            .account(AccountRequest {
                account: account.as_bytes().to_vec(),
            })
            .await?
            .into_inner())
    }

    /// The service infrastructure pool: balance, flows of the last `recent_rounds` rounds, weight
    /// outstanding, and what `quote_amount` base units buy now.
    pub async fn sip_status(
        &self,
        recent_rounds: u64,
        quote_amount: u64,
    ) -> Result<SipStatusResponse, ClientError> {
        let mut api = self.api.clone();
        Ok(api
            .sip_status(SipStatusRequest {
                recent_rounds,
                quote_amount,
            })
            .await?
            .into_inner())
    }

    /// The coordinators sharing this one's database that heartbeat recently, and the round clock's
    /// holder.
    pub async fn list_coordinators(
        &self,
    ) -> Result<dualrig_proto::v1::ListCoordinatorsResponse, ClientError> {
        let mut api = self.api.clone();
        Ok(api
            .list_coordinators(dualrig_proto::v1::ListCoordinatorsRequest {})
            .await?
            .into_inner())
    }

    /// The generated gRPC client, for calls this library does not wrap.
    pub fn api(&self) -> CoordinatorClient<Channel> {
        self.api.clone()
    }
}

fn check_response(response: &TranscodeResponse, profiles: &[Profile]) -> Result<(), ClientError> {
    let worker = PublicId::from_slice("worker_id", &response.worker_id)
        .map_err(|e| ClientError::Unverified(e.to_string()))?;
    dualrig_proto::result::verify_result(
        &worker,
        &response.job_id,
        &response.renditions,
        &response.worker_signature,
    )
    .map_err(|e| ClientError::Unverified(e.to_string()))?;
    for p in profiles {
        if !response.renditions.iter().any(|r| r.profile == p.name) {
            return Err(ClientError::Unverified(format!(
                "rendition '{}' is missing",
                p.name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_coordinator_down_or_busy_is_retried_and_a_refusal_is_not() {
        for status in [
            tonic::Status::unavailable("no worker can take the job"),
            tonic::Status::resource_exhausted("staging budget"),
            tonic::Status::aborted("quote lost"),
            // What a broken connection turns into on this side: the transport's error as the source.
            tonic::Status::from_error(Box::new(std::io::Error::from(
                std::io::ErrorKind::ConnectionReset,
            ))),
        ] {
            assert!(
                ClientError::Status(status.clone()).is_retryable(),
                "{status:?}"
            );
        }
        for status in [
            tonic::Status::invalid_argument("bad ladder"),
            tonic::Status::failed_precondition("sender cannot cover the tickets"),
            tonic::Status::permission_denied("not the recipient"),
            tonic::Status::unknown("sent by the coordinator"),
            tonic::Status::internal("the ledger needs its operator"),
        ] {
            assert!(
                !ClientError::Status(status.clone()).is_retryable(),
                "{status:?}"
            );
        }
        assert!(!ClientError::Unverified("bad signature".into()).is_retryable());
    }
}
