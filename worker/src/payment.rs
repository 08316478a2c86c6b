//! Getting paid (PROTOCOL §3): the worker's ticket params, the check of each job's tickets before it is
//! transcoded, and the redemption of winning tickets at the coordinator's ledger.
//!
//! The params derive from a secret kept in the data dir (`ticket.secret`, 0600), and every winning ticket
//! is on disk ([`winners`]) before its job is taken on, so a win received before a crash still redeems
//! after it, once. A worker whose price is 0 issues params all the same (clients see it works for free)
//! and takes jobs without tickets. Downloads are paid the same way, per byte served
//! ([`Payments::accept_download`]): one validator and one redemption queue for both.

pub mod winners;

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dualrig_proto::identity::Identity;
use dualrig_proto::ledger_request::{Operation, SignedRequest};
use dualrig_proto::ticket::{
    Rate, SignedTicket, TicketParams, TicketTerms, TicketValidator, WinningTicket, win_prob_one_in,
};
use dualrig_proto::v1::coordinator_client::CoordinatorClient;
use dualrig_proto::v1::{AccountRequest, FetchBlob, LedgerRequest, TranscodeJob};
use tokio::sync::mpsc;
use tonic::Code;
use tonic::transport::Channel;
use tracing::{info, warn};

use crate::config::WorkerConfig;
use crate::coordinators::Coordinators;
use crate::metrics;
use winners::WinnerStore;

/// A winning ticket waiting for redemption, and since when.
pub type QueuedWinner = (WinningTicket, tokio::time::Instant);

/// Rounds a params stays valid after it is issued, unless the coordinator announces less.
const PARAMS_ROUNDS: u64 = 10_000;
/// Tries per winning ticket before it is given up (the sender may never refill its deposit).
const REDEEM_TRIES: u32 = 40;
const REDEEM_MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Reads the ticket secret, or creates it (32 random bytes, owner-only) on first use.
pub fn load_or_create_secret(path: &Path) -> std::io::Result<[u8; 32]> {
    match std::fs::read(path) {
        Ok(bytes) => bytes.as_slice().try_into().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} holds {} bytes, not a 32-byte ticket secret",
                    path.display(),
                    bytes.len()
                ),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret: [u8; 32] = rand::random();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path)?;
            std::io::Write::write_all(&mut file, &secret)?;
            file.sync_all()?;
            Ok(secret)
        }
        Err(e) => Err(e),
    }
}

/// Why a job's payment was refused.
#[derive(Debug, thiserror::Error)]
#[error("payment short: {0}")]
pub struct PaymentRefused(String);

struct State {
    validator: TicketValidator,
    current: TicketParams,
}

/// The worker's side of payments: its live params, the ticket check, the redemption queue.
pub struct Payments {
    price_per_unit: u64,
    price_per_byte: u64,
    /// Rounds new params stay valid: [`PARAMS_ROUNDS`] or the coordinator's bound, if lower.
    validity: std::sync::atomic::AtomicU64,
    face_value: u64,
    win_prob: u64,
    state: Mutex<State>,
    winners: mpsc::UnboundedSender<QueuedWinner>,
    store: Arc<WinnerStore>,
}

impl std::fmt::Debug for Payments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payments")
            .field("price_per_unit", &self.price_per_unit)
            .field("price_per_byte", &self.price_per_byte)
            .finish_non_exhaustive()
    }
}

impl Payments {
    /// Loads the secret and issues the first params. The receiver yields the winning tickets to
    /// redeem, first those a previous run left on disk; hand it to [`redeem_forever`].
    pub fn new(
        config: &WorkerConfig,
        identity: &Identity,
    ) -> std::io::Result<(Self, mpsc::UnboundedReceiver<QueuedWinner>)> {
        let secret = load_or_create_secret(&config.ticket_secret_path())?;
        let mut validator = TicketValidator::new(identity.id(), secret, 0);
        let win_prob = win_prob_one_in(config.ticket_win_prob_one_in.max(1));
        let terms = terms(
            (config.price_per_unit, config.price_per_byte),
            config.ticket_face_value,
            win_prob,
            0,
            PARAMS_ROUNDS,
        );
        let current = validator
            .issue_random(terms)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let (winners, queue) = mpsc::unbounded_channel();
        let store = Arc::new(WinnerStore::open(config.winners_dir())?);
        let left = store.load()?;
        if !left.is_empty() {
            info!(
                tickets = left.len(),
                "winning tickets from before a restart; queued for redemption"
            );
        }
        for winner in left {
            metrics::winner_queued(winner.ticket.ticket.face_value, false);
            let _ = winners.send((winner, tokio::time::Instant::now()));
        }
        Ok((
            Self {
                price_per_unit: config.price_per_unit,
                price_per_byte: config.price_per_byte,
                validity: std::sync::atomic::AtomicU64::new(PARAMS_ROUNDS),
                face_value: config.ticket_face_value,
                win_prob,
                state: Mutex::new(State { validator, current }),
                winners,
                store,
            },
            queue,
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The params clients pay under now.
    pub fn current(&self) -> TicketParams {
        self.lock().current
    }

    /// Moves to the ledger's `round`; re-issues the params when they are past half their life.
    /// Returns the new params when it did.
    pub fn set_round(&self, round: u64) -> Option<TicketParams> {
        let mut state = self.lock();
        if round <= state.validator.current_round() && round != 0 {
            return None;
        }
        state.validator.set_round(round);
        if state.current.expiration_round >= round.saturating_add(self.validity() / 2) {
            return None;
        }
        self.reissue(&mut state, round)
    }

    fn validity(&self) -> u64 {
        self.validity.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Takes the coordinator's bound on how long params may stay valid (0: none announced) and
    /// re-issues the params when they would outlive it. Returns the new params when it did.
    pub fn set_validity(&self, rounds: u64) -> Option<TicketParams> {
        let rounds = if rounds == 0 {
            PARAMS_ROUNDS
        } else {
            rounds.min(PARAMS_ROUNDS)
        };
        self.validity
            .store(rounds, std::sync::atomic::Ordering::Relaxed);
        let mut state = self.lock();
        let round = state.validator.current_round();
        if state.current.expiration_round <= round.saturating_add(rounds) {
            return None;
        }
        self.reissue(&mut state, round)
    }

    fn reissue(&self, state: &mut State, round: u64) -> Option<TicketParams> {
        let terms = terms(
            (self.price_per_unit, self.price_per_byte),
            self.face_value,
            self.win_prob,
            round,
            self.validity(),
        );
        match state.validator.issue_random(terms) {
            Ok(params) => {
                state.current = params;
                Some(params)
            }
            Err(e) => {
                warn!(error = %e, "cannot issue ticket params");
                None
            }
        }
    }

    /// Checks `job`'s tickets before any work: a free worker takes every job; a priced one takes a
    /// job only when its tickets are good and cover `price × units`. Winners go to the redemption
    /// queue. Returns new params to publish when a win retired the old ones.
    pub fn accept(&self, job: &TranscodeJob) -> Result<Option<TicketParams>, PaymentRefused> {
        let published = self.set_round(job.round);
        if self.price_per_unit == 0 {
            return Ok(published);
        }
        self.take_payment(&job.payment, job.units, Rate::PerUnit, published)
            .map_err(|why| PaymentRefused(format!("{why} (job is {} units)", job.units)))
    }

    /// Checks a client download's tickets before a byte is served, as [`Self::accept`] does a job's:
    /// a worker whose `price_per_byte` is 0 serves every fetch; a priced one serves a download only
    /// when its tickets are good and cover `price_per_byte × (end − start)`. A member's fetch of a
    /// collective's blob is held to the price the coordinator set for it instead (PROTOCOL §6.10: 0
    /// within the member's free allotment; never below this worker's own price unless it joined the
    /// collective). A fetch that is no download (the coordinator copying a blob for repair) is served free. Returns new params to
    /// publish when a win retired the old ones.
    pub fn accept_download(
        &self,
        fetch: &FetchBlob,
    ) -> Result<Option<TicketParams>, PaymentRefused> {
        let published = self.set_round(fetch.round);
        if !self.charges(fetch) {
            return Ok(published);
        }
        let (price, rate) = self.download_price(fetch);
        let bytes = fetch.end.saturating_sub(fetch.start);
        self.take_payment(&fetch.payment, bytes, rate, published)
            .map_err(|why| {
                PaymentRefused(format!(
                    "{why} (the range is {bytes} bytes at {price} per byte)"
                ))
            })
    }

    /// Whether `fetch` is a download this worker is paid for.
    pub fn charges(&self, fetch: &FetchBlob) -> bool {
        fetch.download && self.download_price(fetch).0 > 0
    }

    /// The price per byte `fetch` is held to, and the rate that names it: a collective's when the
    /// coordinator set one, this worker's own otherwise.
    fn download_price(&self, fetch: &FetchBlob) -> (u64, Rate) {
        match fetch.collective_price_per_byte {
            Some(price) => (price, Rate::Fixed(price)),
            None => (self.price_per_byte, Rate::PerByte),
        }
    }

    /// Validates `payment` for `units` at `rate`, queues its winners, and re-issues the params when a
    /// win retired them (returned, or `published` when none was).
    fn take_payment(
        &self,
        payment: &[dualrig_proto::v1::SignedTicket],
        units: u64,
        rate: Rate,
        mut published: Option<TicketParams>,
    ) -> Result<Option<TicketParams>, String> {
        let tickets = payment
            .iter()
            .map(SignedTicket::try_from)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                metrics::tickets("refused", payment.len());
                e.to_string()
            })?;
        let mut state = self.lock();
        let accepted = match state.validator.validate_at(&tickets, units, rate) {
            Ok(accepted) => accepted,
            Err(e) => {
                metrics::tickets("refused", tickets.len());
                return Err(e.to_string());
            }
        };
        metrics::tickets("received", tickets.len());
        metrics::tickets("won", accepted.winners.len());
        if accepted
            .retired
            .contains(&state.current.recipient_rand_hash)
        {
            let round = state.validator.current_round();
            published = self.reissue(&mut state, round).or(published);
        }
        drop(state);
        for winner in accepted.winners {
            info!(
                face_value = winner.ticket.ticket.face_value,
                "winning ticket; queued for redemption"
            );
            // On disk before the job is taken on, so a crash loses no win.
            if let Err(e) = self.store.save(&winner) {
                tracing::error!(error = %e, "cannot record a winning ticket; it is redeemed only if the worker keeps running");
            }
            metrics::winner_queued(winner.ticket.ticket.face_value, true);
            // The receiver lives as long as the worker runs.
            let _ = self.winners.send((winner, tokio::time::Instant::now()));
        }
        Ok(published)
    }
}

fn terms(
    (price_per_unit, price_per_byte): (u64, u64),
    face_value: u64,
    win_prob: u64,
    round: u64,
    validity: u64,
) -> TicketTerms {
    TicketTerms {
        face_value,
        win_prob,
        expiration_round: round.saturating_add(validity),
        price_per_unit,
        price_per_byte,
    }
}

impl Payments {
    /// Where winning tickets wait for redemption.
    pub fn winner_store(&self) -> Arc<WinnerStore> {
        Arc::clone(&self.store)
    }
}

/// Redeems winning tickets one by one through `Execute(RedeemTicket)`, signed with the worker's key,
/// each no sooner than `delay` after it was won, retrying with backoff while the ledger cannot pay yet
/// or cannot be reached. Each try goes to the coordinator the worker serves now and, when that one
/// cannot be reached, to the others of the same ledger in turn: the ledger redeems a ticket once, by
/// its hash, whichever coordinator it comes through, so a win made under one coordinator is paid
/// through another. A ticket leaves `store` when the ledger has paid it or refused it for good; one
/// given up on stays, to be tried again after a restart.
pub async fn redeem_forever(
    coordinators: Arc<Coordinators>,
    identity: Arc<Identity>,
    mut queue: mpsc::UnboundedReceiver<QueuedWinner>,
    store: Arc<WinnerStore>,
    delay: Duration,
) {
    while let Some((winner, won_at)) = queue.recv().await {
        tokio::time::sleep_until(won_at + delay).await;
        let face_value = winner.ticket.ticket.face_value;
        let mut backoff = Duration::from_millis(500);
        for attempt in 1..=REDEEM_TRIES {
            match coordinators
                .call(|api| redeem(api, &identity, &winner))
                .await
            {
                Ok(amount) => {
                    metrics::redeemed("paid", amount, face_value);
                    info!(amount, "ticket redeemed");
                    forget(&store, &winner);
                    break;
                }
                Err(status)
                    if matches!(
                        status.code(),
                        Code::AlreadyExists
                            | Code::InvalidArgument
                            | Code::PermissionDenied
                            | Code::Unauthenticated
                    ) =>
                {
                    metrics::redeemed("refused", 0, face_value);
                    warn!(face_value, error = %status.message(), "ticket not redeemable; dropped");
                    forget(&store, &winner);
                    break;
                }
                Err(status) if attempt == REDEEM_TRIES => {
                    metrics::redeemed("given_up", 0, face_value);
                    warn!(face_value, error = %status.message(), "ticket redemption given up");
                }
                Err(status) => {
                    metrics::redeemed("retry", 0, face_value);
                    info!(face_value, error = %status.message(), "ticket redemption will be retried");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(REDEEM_MAX_BACKOFF);
                }
            }
        }
    }
}

fn forget(store: &WinnerStore, winner: &WinningTicket) {
    if let Err(e) = store.remove(winner) {
        warn!(error = %e, "cannot remove a redeemed ticket's record; it is tried again after a restart");
    }
}

async fn redeem(
    mut api: CoordinatorClient<Channel>,
    identity: &Identity,
    winner: &WinningTicket,
) -> Result<u64, tonic::Status> {
    let id = identity.id();
    let last = api
        .account(AccountRequest {
            account: id.as_bytes().to_vec(),
        })
        .await?
        .into_inner()
        .nonce;
    let request = SignedRequest::sign(
        identity,
        last.saturating_add(1),
        &Operation::RedeemTicket {
            ticket: winner.ticket,
            recipient_rand: winner.recipient_rand,
        },
    );
    let receipt = api
        .execute(LedgerRequest {
            account: request.account.as_bytes().to_vec(),
            nonce: request.nonce,
            operation: request.operation,
            sig: request.sig.to_vec(),
        })
        .await?
        .into_inner();
    Ok(receipt.amount)
}

#[cfg(test)]
mod tests {
    use dualrig_proto::ticket::TicketPayer;

    use super::*;

    fn priced(dir: &Path) -> (Payments, mpsc::UnboundedReceiver<QueuedWinner>) {
        let mut config = WorkerConfig::new("http://127.0.0.1:1", dir.to_owned());
        config.price_per_unit = 2;
        config.ticket_face_value = 100;
        config.ticket_win_prob_one_in = 1;
        Payments::new(&config, &Identity::from_secret([7; 32])).expect("payments")
    }

    fn job(tickets: &[SignedTicket], units: u64) -> TranscodeJob {
        TranscodeJob {
            job_id: "j".into(),
            payment: tickets.iter().map(Into::into).collect(),
            units,
            round: 1,
            ..TranscodeJob::default()
        }
    }

    #[test]
    fn short_payment_is_refused_and_a_win_queues_and_reissues() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (payments, mut winners) = priced(dir.path());
        let params = payments.current();
        let sender = Identity::from_secret([8; 32]);
        let mut payer = TicketPayer::starting_at(1);
        // 100 units at 2 each owe 200: one ticket of EV 100 is short.
        let short = payer.pay(&sender, &params, 100).expect("tickets");
        let refused = payments.accept(&job(&short, 100)).expect_err("short");
        assert!(
            refused.to_string().starts_with("payment short"),
            "{refused}"
        );
        assert!(payments.accept(&job(&[], 100)).is_err(), "no tickets");

        let enough = payer.pay(&sender, &params, 200).expect("tickets");
        let published = payments.accept(&job(&enough, 100)).expect("paid");
        let new = published.expect("a win retires the params");
        assert_ne!(new.recipient_rand_hash, params.recipient_rand_hash);
        assert_eq!(payments.current(), new);
        assert_eq!(winners.try_recv().map(|w| w.0.ticket), Ok(enough[0]));
        // The same tickets again are refused: their params are retired.
        assert!(payments.accept(&job(&enough, 100)).is_err());
    }

    #[test]
    fn a_download_is_served_only_against_tickets_covering_its_bytes_at_the_byte_price() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = WorkerConfig::new("http://127.0.0.1:1", dir.path().to_owned());
        config.price_per_unit = 1_000;
        config.price_per_byte = 3;
        config.ticket_face_value = 100;
        config.ticket_win_prob_one_in = 1;
        let (payments, _winners) =
            Payments::new(&config, &Identity::from_secret([7; 32])).expect("payments");
        let params = payments.current();
        assert_eq!((params.price_per_unit, params.price_per_byte), (1_000, 3));
        let fetch = |tickets: &[SignedTicket], download: bool| FetchBlob {
            fetch_id: "f".into(),
            start: 10,
            end: 110,
            download,
            payment: tickets.iter().map(Into::into).collect(),
            round: 1,
            ..FetchBlob::default()
        };
        // The coordinator's own copy (repair) is free; a client's download is not.
        assert!(payments.accept_download(&fetch(&[], false)).is_ok());
        let unpaid = payments
            .accept_download(&fetch(&[], true))
            .expect_err("unpaid");
        assert!(
            unpaid.to_string().contains("100 bytes at 3 per byte"),
            "{unpaid}"
        );
        let sender = Identity::from_secret([8; 32]);
        let mut payer = TicketPayer::starting_at(1);
        // 100 bytes at 3 owe 300: two tickets of 100 are short, three pay (not the pixel price).
        let short = payer.pay(&sender, &params, 200).expect("tickets");
        assert!(payments.accept_download(&fetch(&short, true)).is_err());
        let enough = payer.pay(&sender, &params, 300).expect("tickets");
        let renewed = payments
            .accept_download(&fetch(&enough, true))
            .expect("paid");
        assert!(renewed.is_some(), "a win retires the params");

        // A member's fetch of a collective's blob is held to the collective's price: free within its
        // allotment, and at 5 per byte (not 3) past it.
        let params = payments.current();
        let member = |tickets: &[SignedTicket], price: u64| FetchBlob {
            collective_price_per_byte: Some(price),
            ..fetch(tickets, true)
        };
        assert!(!payments.charges(&member(&[], 0)));
        assert!(payments.accept_download(&member(&[], 0)).is_ok());
        let at_holders_price = payer.pay(&sender, &params, 300).expect("tickets");
        let short = payments
            .accept_download(&member(&at_holders_price, 5))
            .expect_err("the holder's price is short of the collective's");
        assert!(
            short.to_string().contains("100 bytes at 5 per byte"),
            "{short}"
        );
        let at_collectives_price = payer.pay(&sender, &params, 500).expect("tickets");
        payments
            .accept_download(&member(&at_collectives_price, 5))
            .expect("paid at the collective's price");
    }

    #[test]
    fn a_win_is_on_disk_before_the_job_is_taken_and_queued_again_after_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (payments, _winners) = priced(dir.path());
        let params = payments.current();
        let sender = Identity::from_secret([8; 32]);
        let tickets = TicketPayer::starting_at(1)
            .pay(&sender, &params, 200)
            .expect("tickets");
        payments.accept(&job(&tickets, 100)).expect("paid");
        let store = payments.winner_store();
        let on_disk = store.load().expect("load");
        assert_eq!(on_disk.len(), tickets.len(), "every ticket wins");
        for t in &tickets {
            assert!(on_disk.iter().any(|w| w.ticket == *t));
        }
        drop(payments);

        // A restart on the same data dir queues them again, with the recipient_rand that redeems each.
        let (again, mut queued) = priced(dir.path());
        for expected in &on_disk {
            let (winner, _) = queued.try_recv().expect("queued after the restart");
            assert_eq!(winner, *expected);
            winner
                .ticket
                .check_redeemable(&winner.ticket.ticket.recipient, &winner.recipient_rand, 1)
                .expect("redeemable");
            again.winner_store().remove(&winner).expect("forget");
        }
        assert!(queued.try_recv().is_err());
        assert!(again.winner_store().load().expect("load").is_empty());
        // A stray file that is not a record is left alone, not queued.
        std::fs::write(dir.path().join("winners").join("0".repeat(64)), b"junk").expect("junk");
        assert!(again.winner_store().load().expect("load").is_empty());
    }

    #[test]
    fn the_secret_outlives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ticket.secret");
        let first = load_or_create_secret(&path).expect("created");
        assert_eq!(load_or_create_secret(&path).expect("read"), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
