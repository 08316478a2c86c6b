//! Blobs on the network: `put` hashes a file (the root is what `b3sum` prints) and streams it to the
//! coordinator, which keeps it on several workers; `get` streams a range back as a bao slice and
//! verifies every chunk against the root before a byte of it is written, switching to another holder
//! (from where the last one's verified bytes ended) when one serves bad bytes or fails. A paid `get`
//! quotes and pays each piece of the range before it is streamed.

use std::io::Write;
use std::path::Path;

use dualrig_proto::access::sign_get;
use dualrig_proto::chunk_reader::ChunkReader;
use dualrig_proto::identity::{Identity, PublicId};
use dualrig_proto::proof::slice::verified_reader;
use dualrig_proto::ticket::{Rate, SURGE_UNIT_PPM, TicketParams, surged_price};
use dualrig_proto::v1::{
    BlobListing, CollectiveInfo, CollectiveRequest, DownloadQuoteRequest, GetAuth, GetRequest,
    HelloRequest, ListBlobsRequest, ListCollectivesRequest, PutHeader, PutUpload, get_chunk,
    put_upload,
};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::{ClientError, DualrigClient, Payment, UPLOAD_CHUNK};

/// Holders a Get tries before giving up.
const MAX_HOLDERS_TRIED: usize = 8;

/// Bytes a paid download pays for and streams at once: at the default ticket terms a payment stays
/// well under the 4096 tickets a holder takes, and a refused one loses at most this much.
pub const PAID_RANGE: u64 = 32 << 20;

/// One quoted and paid piece of a download.
struct PaidRange {
    quote_id: String,
    end: u64,
    tickets: Vec<dualrig_proto::ticket::SignedTicket>,
}

/// What one Get stream delivered.
struct Fetched {
    holder: PublicId,
    /// Verified bytes written.
    copied: u64,
    /// Why the holder is to be skipped, when it is.
    failure: Option<String>,
}

pub use dualrig_proto::proof::parse_root;

/// What a Put did.
#[derive(Debug, Clone)]
pub struct PutSummary {
    pub root: blake3::Hash,
    pub size: u64,
    pub holders: Vec<PublicId>,
}

/// What a Get did.
#[derive(Debug, Clone)]
pub struct GetSummary {
    pub size: u64,
    /// The range written.
    pub start: u64,
    pub end: u64,
    /// Holders that served bad bytes or failed, skipped for the next.
    pub skipped: Vec<PublicId>,
}

impl DualrigClient {
    /// Stores the file at `path` on `replicas` workers (0: the coordinator's default).
    pub async fn put_file(&self, path: &Path, replicas: u32) -> Result<PutSummary, ClientError> {
        self.put_file_for(path, replicas, None).await
    }

    /// [`Self::put_file`] for `collective`: the blob is gated by it from the start, and its owner may
    /// add it (`None`: a public blob).
    pub async fn put_file_for(
        &self,
        path: &Path,
        replicas: u32,
        collective: Option<&str>,
    ) -> Result<PutSummary, ClientError> {
        let what = || format!("reading {}", path.display());
        let hashed_path = path.to_owned();
        let root = tokio::task::spawn_blocking(move || {
            let mut hasher = blake3::Hasher::new();
            hasher.update_mmap_rayon(&hashed_path).map(|h| h.finalize())
        })
        .await
        .map_err(|e| ClientError::Unverified(format!("hashing task failed: {e}")))?
        .map_err(ClientError::io(what()))?;
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(ClientError::io(what()))?;
        let size = file
            .metadata()
            .await
            .map_err(ClientError::io(what()))?
            .len();
        let (tx, rx) = mpsc::channel::<PutUpload>(4);
        let header = PutUpload {
            part: Some(put_upload::Part::Header(PutHeader {
                root: root.as_bytes().to_vec(),
                size,
                replicas,
                collective: collective.unwrap_or_default().to_owned(),
            })),
        };
        let path_text = path.display().to_string();
        let feeder = tokio::spawn(async move {
            if tx.send(header).await.is_err() {
                return Ok(());
            }
            let mut sent = 0u64;
            while sent < size {
                let mut chunk = vec![0u8; UPLOAD_CHUNK.min((size - sent) as usize)];
                file.read_exact(&mut chunk)
                    .await
                    .map_err(|e| ClientError::Io {
                        what: format!("reading {path_text} (did it change while being stored?)"),
                        source: e,
                    })?;
                sent += chunk.len() as u64;
                let message = PutUpload {
                    part: Some(put_upload::Part::Chunk(chunk)),
                };
                if tx.send(message).await.is_err() {
                    break;
                }
            }
            Ok::<(), ClientError>(())
        });
        let answer = self
            .api()
            .put(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await;
        let fed = feeder
            .await
            .map_err(|e| ClientError::Unverified(format!("upload task failed: {e}")))?;
        let answer = answer?.into_inner();
        fed?;
        if answer.root != root.as_bytes() || answer.size != size {
            return Err(ClientError::Unverified(format!(
                "asked to store {root} ({size} bytes), the coordinator stored {} ({} bytes)",
                hex::encode(&answer.root),
                answer.size
            )));
        }
        let holders = answer
            .holders
            .iter()
            .map(|h| PublicId::from_slice("holder", h))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ClientError::Unverified(e.to_string()))?;
        Ok(PutSummary {
            root,
            size,
            holders,
        })
    }

    /// Writes bytes `start..end` (`end` absent: to the blob's end) of blob `root` to `out`, verified.
    /// The file appears only when every byte has checked out. Free: served by a holder that charges
    /// nothing.
    pub async fn get_to_file(
        &self,
        root: [u8; 32],
        start: u64,
        end: Option<u64>,
        out: &Path,
    ) -> Result<GetSummary, ClientError> {
        self.get_to_file_as(root, start, end, out, None).await
    }

    /// A nonce and signature proving `identity` asks for `root`'s `start..end` (PROTOCOL §6.10).
    pub async fn get_auth(
        &self,
        identity: &Identity,
        root: &[u8; 32],
        start: u64,
        end: Option<u64>,
    ) -> Result<GetAuth, ClientError> {
        let hello = self
            .api()
            .hello(HelloRequest {
                worker_id: identity.id().as_bytes().to_vec(),
                for_get: true,
            })
            .await?
            .into_inner();
        let nonce: [u8; 32] = hello.nonce.as_slice().try_into().map_err(|_| {
            ClientError::Unverified(format!(
                "the coordinator's Get nonce is {} bytes, not 32",
                hello.nonce.len()
            ))
        })?;
        Ok(sign_get(identity, &nonce, root, start, end))
    }

    /// [`Self::get_to_file`], each request signed by `identity` when given: a collective's blob is
    /// served only to a member that signs.
    pub async fn get_to_file_as(
        &self,
        root: [u8; 32],
        start: u64,
        end: Option<u64>,
        out: &Path,
        identity: Option<&Identity>,
    ) -> Result<GetSummary, ClientError> {
        self.get_blob(root, (start, end), out, None, identity).await
    }

    /// [`Self::get_to_file`], paying the serving holder with tickets from `payment`: the range goes in
    /// pieces of [`PAID_RANGE`], each quoted (which holder, its params) and paid before it is
    /// streamed. A holder that fails or serves bad bytes is skipped and the rest of its piece quoted
    /// again, so the next holder is paid for what it serves. A refused payment stops the download with
    /// the coordinator's or the holder's words, and nothing is written to `out`. Each request is signed
    /// by the payer, so a collective's member pays past its free bytes.
    pub async fn get_to_file_paid(
        &self,
        root: [u8; 32],
        start: u64,
        end: Option<u64>,
        out: &Path,
        payment: &Payment,
    ) -> Result<GetSummary, ClientError> {
        self.get_blob(
            root,
            (start, end),
            out,
            Some(payment),
            Some(&payment.sender),
        )
        .await
    }

    async fn get_blob(
        &self,
        root: [u8; 32],
        (start, end): (u64, Option<u64>),
        out: &Path,
        payment: Option<&Payment>,
        identity: Option<&Identity>,
    ) -> Result<GetSummary, ClientError> {
        let dir = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => std::path::PathBuf::from("."),
        };
        let staged = tempfile::NamedTempFile::new_in(&dir).map_err(ClientError::io(format!(
            "creating a file in {}",
            dir.display()
        )))?;
        let hash = blake3::Hash::from_bytes(root);
        let mut skipped: Vec<PublicId> = Vec::new();
        let mut written = 0u64;
        let mut bounds: Option<(u64, u64, u64)> = None; // start, end, size
        let mut stale_quotes = 0;
        loop {
            let (from, to) = match bounds {
                Some((s, e, _)) => (s + written, Some(e)),
                None => (start, end),
            };
            let exclude = skipped.iter().map(|h| h.as_bytes().to_vec()).collect();
            let mut request = GetRequest {
                root: root.to_vec(),
                start: from,
                end: to,
                exclude,
                ..GetRequest::default()
            };
            if let Some(payment) = payment {
                let quote = self.quote_range(&request, payment, &mut bounds).await?;
                request.end = Some(quote.end);
                request.quote_id = quote.quote_id;
                request.payment = quote.tickets.iter().map(Into::into).collect();
            }
            if let Some(identity) = identity {
                let auth = self
                    .get_auth(identity, &root, request.start, request.end)
                    .await?;
                request.auth = Some(auth);
            }
            let fetched = match self
                .fetch_range(request, &hash, &staged, written, &mut bounds)
                .await
            {
                // The quote went stale (the holder's params changed, or it left): quote again.
                Err(e) if e.code() == Some(tonic::Code::Aborted) && payment.is_some() => {
                    stale_quotes += 1;
                    if stale_quotes >= crate::PAID_TRIES {
                        return Err(e);
                    }
                    continue;
                }
                other => other?,
            };
            written += fetched.copied;
            let (_, total_end, _) = bounds.unwrap_or_default();
            let done = bounds.is_some_and(|(s, _, _)| s + written >= total_end);
            match fetched.failure {
                None if done => break,
                None => stale_quotes = 0,
                Some(why) => {
                    tracing::warn!(holder = %fetched.holder.short(), %why, "holder skipped");
                    skipped.push(fetched.holder);
                    if skipped.len() >= MAX_HOLDERS_TRIED {
                        return Err(ClientError::Unverified(format!(
                            "{} holders in a row served bytes that do not verify against {hash}; last: {why}",
                            skipped.len()
                        )));
                    }
                }
            }
        }
        let (start, end, size) = bounds.unwrap_or_default();
        staged
            .as_file()
            .sync_all()
            .map_err(ClientError::io(format!("writing {}", out.display())))?;
        staged
            .persist(out)
            .map_err(|e| ClientError::io(format!("writing {}", out.display()))(e.error))?;
        Ok(GetSummary {
            size,
            start,
            end,
            skipped,
        })
    }

    /// Quotes the next piece of a paid download (at most [`PAID_RANGE`] from `request.start`), checks
    /// the quote, and signs the tickets that pay for it. The first quote settles `bounds`.
    async fn quote_range(
        &self,
        request: &GetRequest,
        payment: &Payment,
        bounds: &mut Option<(u64, u64, u64)>,
    ) -> Result<PaidRange, ClientError> {
        let end = match *bounds {
            Some((_, end, _)) => Some(end.min(request.start.saturating_add(PAID_RANGE))),
            None => request.end,
        };
        let mut api = self.api();
        let mut ask = DownloadQuoteRequest {
            root: request.root.clone(),
            start: request.start,
            end,
            exclude: request.exclude.clone(),
        };
        let mut quote = api.download_quote(ask.clone()).await?.into_inner();
        if bounds.is_none() {
            *bounds = Some((quote.start, quote.end, quote.size));
            if quote.end - quote.start > PAID_RANGE {
                // The whole range is known now: quote its first piece only.
                ask.end = Some(quote.start + PAID_RANGE);
                quote = api.download_quote(ask.clone()).await?.into_inner();
            }
        }
        let params = quote
            .params
            .as_ref()
            .ok_or_else(|| {
                ClientError::Unverified("download quote carries no ticket params".into())
            })
            .and_then(|p| {
                TicketParams::try_from(p).map_err(|e| ClientError::Unverified(e.to_string()))
            })?;
        if params.recipient.as_bytes()[..] != quote.holder[..] {
            return Err(ClientError::Unverified(
                "quoted params are not the quoted holder's".into(),
            ));
        }
        if quote.start != ask.start || ask.end.is_some_and(|e| e != quote.end) {
            return Err(ClientError::Unverified(format!(
                "asked to quote bytes {}.., the quote is for {}..{}",
                ask.start, quote.start, quote.end
            )));
        }
        // The quote's price (the holder's, or a collective's for its members) times the blob's surge
        // multiplier while it is hot (PROTOCOL §6.8, §6.10).
        let multiplier = quote.surge_multiplier_ppm.max(SURGE_UNIT_PPM);
        let price = surged_price(quote.price_per_byte, multiplier);
        if let Some(max) = payment.max_price
            && price > max
        {
            return Err(ClientError::OverMaxBytePrice { price, max });
        }
        let surged = TicketParams {
            price_per_byte: price,
            ..params
        };
        let owed = surged.amount_owed_at(Rate::PerByte, quote.end - quote.start)?;
        let tickets = payment
            .payer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pay(&payment.sender, &params, owed)?;
        Ok(PaidRange {
            quote_id: quote.quote_id,
            end: quote.end,
            tickets,
        })
    }

    /// Streams one Get into `staged` at `offset` (from the start of the whole range), verifying as it
    /// goes. A refusal before the first byte, or a holder's refusal of the payment, is an error; a
    /// holder that fails or sends bad bytes comes back as a failure to skip it.
    async fn fetch_range(
        &self,
        request: GetRequest,
        hash: &blake3::Hash,
        staged: &tempfile::NamedTempFile,
        offset: u64,
        bounds: &mut Option<(u64, u64, u64)>,
    ) -> Result<Fetched, ClientError> {
        let mut stream = self.api().get(request).await?.into_inner();
        let header = match stream.message().await?.and_then(|m| m.part) {
            Some(get_chunk::Part::Header(h)) => h,
            _ => {
                return Err(ClientError::Unverified(
                    "the coordinator's answer did not start with a header".into(),
                ));
            }
        };
        let holder = PublicId::from_slice("holder", &header.holder)
            .map_err(|e| ClientError::Unverified(e.to_string()))?;
        if bounds.is_none() {
            *bounds = Some((header.start, header.end, header.size));
        }
        let len = header.end.saturating_sub(header.start);
        let (tx, rx) = mpsc::channel(16);
        let mut file = staged
            .reopen()
            .map_err(ClientError::io("reopening the output"))?;
        let hash = *hash;
        let decode = tokio::task::spawn_blocking(move || {
            use std::io::{Seek, SeekFrom};
            file.seek(SeekFrom::Start(offset))?;
            let mut verified = verified_reader(ChunkReader::new(rx), &hash, header.start, len);
            let mut copied = 0u64;
            let mut buf = vec![0u8; 64 << 10];
            loop {
                match std::io::Read::read(&mut verified, &mut buf) {
                    Ok(0) => return Ok::<_, std::io::Error>((copied, None)),
                    Ok(n) => {
                        file.write_all(&buf[..n])?;
                        copied += n as u64;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Ok((copied, Some(e.to_string()))),
                }
            }
        });
        let mut refused = None;
        loop {
            match stream.message().await {
                Ok(Some(message)) => {
                    if let Some(get_chunk::Part::Slice(data)) = message.part
                        && tx.send(Ok(data.into())).await.is_err()
                    {
                        break;
                    }
                }
                Ok(None) => break,
                Err(status) => {
                    let _ = tx.send(Err(status.message().to_owned())).await;
                    if status.code() == tonic::Code::FailedPrecondition {
                        refused = Some(status);
                    }
                    break;
                }
            }
        }
        drop(tx);
        let (copied, failure) = decode
            .await
            .map_err(|e| ClientError::Unverified(format!("verification task failed: {e}")))?
            .map_err(ClientError::io("writing the output"))?;
        if let Some(status) = refused {
            return Err(ClientError::Status(status));
        }
        let failure = match failure {
            None if copied == len => None,
            failure => Some(failure.unwrap_or_else(|| format!("sent {copied} of {len} bytes"))),
        };
        Ok(Fetched {
            holder,
            copied,
            failure,
        })
    }

    /// Every collective, without its blobs, following the list's pages.
    pub async fn list_collectives(&self) -> Result<Vec<CollectiveInfo>, ClientError> {
        let api = self.api();
        crate::every_page(|page_token| {
            let mut api = api.clone();
            async move {
                let page = api
                    .list_collectives(ListCollectivesRequest {
                        page_token,
                        page_size: 0,
                    })
                    .await?
                    .into_inner();
                Ok((page.collectives, page.next_page_token))
            }
        })
        .await
    }

    /// Collective `name`'s rules and figures, and every root of its blobs.
    pub async fn collective(
        &self,
        name: &str,
    ) -> Result<(CollectiveInfo, Vec<[u8; 32]>), ClientError> {
        let mut api = self.api();
        let mut info: Option<CollectiveInfo> = None;
        let mut roots = Vec::new();
        let mut page_token = Vec::new();
        loop {
            let page = api
                .collective(CollectiveRequest {
                    name: name.to_owned(),
                    page_token,
                    page_size: 0,
                })
                .await?
                .into_inner();
            for r in &page.roots {
                roots.push(<[u8; 32]>::try_from(r.as_slice()).map_err(|_| {
                    ClientError::Unverified(format!("a root of {name} is {} bytes", r.len()))
                })?);
            }
            page_token = page.next_page_token.clone();
            let done = page_token.is_empty();
            info.get_or_insert(page);
            if done {
                break;
            }
        }
        let mut info = info.unwrap_or_default();
        info.roots.clear();
        info.next_page_token.clear();
        Ok((info, roots))
    }

    /// Every blob the network keeps, with its holders.
    /// Following the list's pages.
    pub async fn list_blobs(&self) -> Result<Vec<BlobListing>, ClientError> {
        let api = self.api();
        crate::every_page(|page_token| {
            let mut api = api.clone();
            async move {
                let page = api
                    .list_blobs(ListBlobsRequest {
                        page_token,
                        page_size: 0,
                    })
                    .await?
                    .into_inner();
                Ok((page.blobs, page.next_page_token))
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_parse_from_b3sum_hex_only() {
        let hex = blake3::hash(b"x").to_hex();
        assert_eq!(
            parse_root(&hex).expect("root"),
            *blake3::hash(b"x").as_bytes()
        );
        assert!(
            parse_root("abc")
                .expect_err("short")
                .contains("not a blob root")
        );
        assert!(
            parse_root(&"zz".repeat(32))
                .expect_err("not hex")
                .contains("64 hex digits")
        );
        assert!(
            parse_root(&"ab".repeat(33))
                .expect_err("long")
                .contains("33 bytes")
        );
    }
}
