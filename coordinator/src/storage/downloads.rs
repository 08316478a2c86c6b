//! Paid downloads (PROTOCOL §6.7): the quotes that name which holder serves a range and under which
//! params, and the checks a paid Get passes before any byte is fetched. The holder checks the tickets
//! again, as for a transcode job, before it sends a piece.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dualrig_proto::identity::PublicId;
use dualrig_proto::ticket::{SignedTicket, TicketParams};

use crate::error::{CoordinatorError, QuoteLost, StorageError};

/// How long a download quote holds its holder.
pub const DOWNLOAD_QUOTE_TTL: Duration = Duration::from_secs(60);
/// Download quotes open at once; past it a quote is refused rather than the table grown.
const MAX_OPEN: usize = 16_384;

/// One open quote: the range, its holder, the params the client was told to pay under, and the
/// price it was told to pay.
#[derive(Debug, Clone, Copy)]
pub struct Quoted {
    pub holder: PublicId,
    pub root: [u8; 32],
    pub start: u64,
    pub end: u64,
    pub params: TicketParams,
    pub terms: Terms,
    at: Instant,
}

/// What a quote charges per byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terms {
    /// Before surge: the holder's price, or the collective's for a blob of a collective.
    pub price_per_byte: u64,
    /// Whether the price is a collective's, which the holder is told to serve at.
    pub collective: bool,
    /// The blob's surge multiplier when quoted, in ppm: the payment must cover the surged price.
    pub multiplier_ppm: u32,
}

/// The open download quotes, each single use.
#[derive(Debug, Default)]
pub struct DownloadQuotes {
    open: Mutex<HashMap<String, Quoted>>,
}

impl DownloadQuotes {
    /// Opens a quote and returns its id.
    pub fn open(
        &self,
        holder: PublicId,
        root: [u8; 32],
        (start, end): (u64, u64),
        params: TicketParams,
        terms: Terms,
    ) -> Result<String, StorageError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|_, q| q.at.elapsed() < DOWNLOAD_QUOTE_TTL);
        if open.len() >= MAX_OPEN {
            return Err(StorageError::Staged(CoordinatorError::Busy(format!(
                "{MAX_OPEN} download quotes are open; use one or try again in a minute"
            ))));
        }
        let id = hex::encode(rand::random::<[u8; 16]>());
        open.insert(
            id.clone(),
            Quoted {
                holder,
                root,
                start,
                end,
                params,
                terms,
                at: Instant::now(),
            },
        );
        Ok(id)
    }

    /// Takes quote `id` (it cannot be used again), or says why it cannot be used.
    pub fn take(&self, id: &str) -> Result<Quoted, StorageError> {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
            .filter(|q| q.at.elapsed() < DOWNLOAD_QUOTE_TTL)
            .ok_or_else(|| {
                StorageError::Staged(CoordinatorError::QuoteLost(QuoteLost::Unknown {
                    quote_id: id.to_owned(),
                }))
            })
    }
}

/// The checks of a paid Get's tickets that need no ledger, against its quote: the range is the one
/// quoted; every ticket parses, is made out to the quoted holder under the quoted params; and
/// together they cover the quoted price × bytes at the quoted surge multiplier. `current` is the holder's params now: when they
/// are no longer the quoted ones (a win retired them) the quote is stale. Returns the tickets and
/// the sum of their expected values.
pub fn check_download_payment(
    quote_id: &str,
    quoted: &Quoted,
    asked: ([u8; 32], u64, u64),
    wire: &[dualrig_proto::v1::SignedTicket],
    current: Option<TicketParams>,
) -> Result<(Vec<SignedTicket>, u64), StorageError> {
    let (root, start, end) = asked;
    if root != quoted.root || start != quoted.start || end != quoted.end {
        return Err(StorageError::DownloadQuoteMismatch {
            quote_id: quote_id.to_owned(),
            quoted: format!(
                "bytes {}..{} of {}",
                quoted.start,
                quoted.end,
                hex::encode(&quoted.root[..8])
            ),
            asked: format!("bytes {start}..{end} of {}", hex::encode(&root[..8])),
        });
    }
    let holder = quoted.holder;
    if current.map(|p| p.recipient_rand_hash) != Some(quoted.params.recipient_rand_hash) {
        return Err(StorageError::Staged(CoordinatorError::QuoteLost(
            QuoteLost::ParamsReplaced {
                worker: holder,
                why: "they changed after the quote".into(),
            },
        )));
    }
    let mut tickets = Vec::with_capacity(wire.len());
    let mut offered = 0u64;
    for w in wire {
        let ticket = SignedTicket::try_from(w).map_err(CoordinatorError::BadTicket)?;
        if ticket.ticket.recipient != holder {
            return Err(StorageError::Staged(CoordinatorError::WrongPayee {
                payee: ticket.ticket.recipient,
                quoted: holder,
            }));
        }
        if ticket.ticket.recipient_rand_hash != quoted.params.recipient_rand_hash {
            return Err(StorageError::NotQuotedParams {
                holder: holder.short(),
            });
        }
        offered = offered.saturating_add(ticket.ticket.expected_value());
        tickets.push(ticket);
    }
    if tickets.len() > dualrig_proto::ticket::MAX_TICKETS_PER_PAYMENT {
        return Err(StorageError::Staged(CoordinatorError::BadTicket(
            dualrig_proto::ticket::TicketError::TooManyTickets {
                count: tickets.len() as u64,
                limit: dualrig_proto::ticket::MAX_TICKETS_PER_PAYMENT,
            },
        )));
    }
    let price =
        super::surge::surged_price(quoted.terms.price_per_byte, quoted.terms.multiplier_ppm);
    let bytes = end - start;
    let covered = offered.checked_div(price).unwrap_or(u64::MAX);
    if covered < bytes {
        return Err(StorageError::DownloadPaymentShort {
            covered,
            bytes,
            price,
        });
    }
    Ok((tickets, offered))
}
