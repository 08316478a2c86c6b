//! Paid downloads end to end (PROTOCOL §6.7): a priced holder is paid per byte with tickets through
//! the real client, what it earns matches price × bytes, an unfunded downloader and a refusing holder
//! stop the download cleanly, and a hostile client speaking the wire protocol is refused at each
//! trick with a status that says why.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dualrig_client::{DualrigClient, Payment};
use dualrig_proto::identity::{Identity, PublicId};
use dualrig_proto::ledger_request::Operation;
use dualrig_proto::ticket::{
    Rate, SignedTicket, TicketParams, TicketPayer, TicketTerms, TicketValidator, win_prob_one_in,
};
use dualrig_proto::v1::{
    BlobPiece, BlobStored, DownloadQuoteRequest, GetRequest, Holdings, WorkerEvent, worker_command,
    worker_event,
};
use tonic::Code;

use crate::failover::HoldingWorker;
use crate::support::{
    RunningCoordinator, RunningWorker, file_hash, random_file, wait_for_workers, write_genesis,
};

const TOKEN: u64 = 1_000_000;

/// Puts `path` on one holder once the workers have reported room.
async fn put_one_copy(client: &DualrigClient, path: &Path) -> blake3::Hash {
    put_one_copy_on(client, path, 1).await
}

/// Puts `path` on `replicas` holders once the workers have reported room.
async fn put_one_copy_on(client: &DualrigClient, path: &Path, replicas: u32) -> blake3::Hash {
    for _ in 0..400 {
        match client.put_file(path, replicas).await {
            Ok(stored) => return stored.root,
            Err(e) if e.code() == Some(Code::FailedPrecondition) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("put: {e}"),
        }
    }
    panic!("no worker reported room for the blob");
}

/// A coordinator whose genesis gives `payer` 1000 tokens, `deposit` of them moved to its deposit.
async fn coordinator_with_payer(
    dir: &Path,
    payer: &Identity,
    deposit: u64,
) -> (RunningCoordinator, DualrigClient) {
    let genesis = dir.join("genesis.toml");
    write_genesis(&genesis, &[(payer.id(), 1_000 * TOKEN)]);
    let coordinator = RunningCoordinator::start_at(&dir.join("data"), |c| {
        c.genesis = Some(genesis.clone());
        c.replicas = 1;
    })
    .await;
    let client = coordinator.client().await;
    if deposit > 0 {
        client
            .execute(payer, Operation::Deposit { amount: deposit })
            .await
            .expect("deposit");
    }
    (coordinator, client)
}

async fn priced_worker(url: &str, price: u64, face: u64, one_in: u64) -> RunningWorker {
    RunningWorker::start_with(url, |w| {
        w.price_per_byte = price;
        w.ticket_face_value = face;
        w.ticket_win_prob_one_in = one_in;
    })
    .await
}

/// Waits until the worker has no winning ticket left to redeem.
async fn wait_until_redeemed(worker: &RunningWorker) {
    let winners = worker.data_dir().join("winners");
    for _ in 0..2400 {
        let left = std::fs::read_dir(&winners).map(|d| d.count()).unwrap_or(0);
        if left == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the worker's winning tickets were never all redeemed");
}

/// Downloads a `size`-byte blob from a holder asking 1 per byte, in tickets of face value F at a win
/// chance of 1/50, and checks what the holder and the hosting-fee pot gained: together within 5σ of
/// price × bytes, σ = F·√(n·p·(1−p)) for the n tickets paid; the pot exactly its 10 % share of each
/// win; the bytes and the tickets' worth recorded as served; the supply unchanged.
async fn paid_download_pays_the_holder(size: u64) {
    const PRICE: u64 = 1;
    // EV 65 535 a ticket: a 32 MiB piece takes 513 tickets.
    const FACE: u64 = 3_276_800;
    const ONE_IN: u64 = 50;
    let dir = tempfile::tempdir().expect("tempdir");
    let payer = Identity::from_secret([41; 32]);
    let (coordinator, client) = coordinator_with_payer(dir.path(), &payer, 900 * TOKEN).await;
    let worker = priced_worker(&coordinator.url, PRICE, FACE, ONE_IN).await;
    wait_for_workers(&client, 1).await;
    let blob = random_file(dir.path(), "blob", size, 7);
    let root = put_one_copy(&client, &blob).await;

    let payment = Payment::new(Identity::from_secret([41; 32]), Some(PRICE));
    *payment.payer.lock().expect("payer") = TicketPayer::starting_at(1 << 32);
    let first_nonce = payment.payer.lock().expect("payer").next_nonce();
    let before = client.account(worker.id).await.expect("holder").balance;
    let out = dir.path().join("out");
    let got = client
        .get_to_file_paid(*root.as_bytes(), 0, None, &out, &payment)
        .await
        .expect("the paid download completes");
    assert_eq!((got.start, got.end, got.size), (0, size, size));
    assert!(got.skipped.is_empty());
    assert_eq!(file_hash(&out), root);
    let tickets = payment.payer.lock().expect("payer").next_nonce() - first_nonce;

    wait_until_redeemed(&worker).await;
    let gain = client.account(worker.id).await.expect("holder").balance - before;
    let fees = coordinator.ledger.hosting_fees().expect("fees");
    assert_eq!(
        fees * 9,
        gain,
        "the pot holds 10 % of each win, the holder 90 %"
    );
    let total = gain + fees;
    let p = win_prob_one_in(ONE_IN) as f64 / 2f64.powi(64);
    let sigma = FACE as f64 * (tickets as f64 * p * (1.0 - p)).sqrt();
    let owed = (PRICE * size) as f64;
    assert!(
        (total as f64 - owed).abs() <= 5.0 * sigma,
        "{tickets} tickets paid {total}; price × bytes is {owed}, σ {sigma:.0}"
    );
    let payer_after = client.account(payer.id()).await.expect("payer");
    assert_eq!(payer_after.deposit, 900 * TOKEN - total);

    let ev = dualrig_proto::ticket::expected_value(FACE, win_prob_one_in(ONE_IN));
    let round = coordinator.ledger.round().expect("round");
    let (mut bytes, mut paid) = (0, 0);
    for r in 0..=round {
        let served = coordinator.ledger.served(r, &worker.id).expect("served");
        bytes += served.bytes;
        paid += served.paid;
    }
    assert_eq!((bytes, paid), (size, tickets * ev));
    assert_eq!(
        coordinator.ledger.supply().expect("supply"),
        u128::from(1_000 * TOKEN)
    );
    worker.kill().await;
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paid_download_of_200_mib_pays_the_holder_price_times_bytes() {
    paid_download_pays_the_holder(200 << 20).await;
}

/// The same at a size that runs in a few seconds: two paid pieces, the second one short.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paid_download_of_two_pieces_pays_the_holder_price_times_bytes() {
    paid_download_pays_the_holder((40 << 20) + 12_345).await;
}

/// A holder on the wire: it publishes priced params, keeps whatever is pushed to it, counts the
/// fetches it is sent with their tickets, and refuses every one's payment (or, `garbage`, takes it and
/// serves bytes that are no slice of the blob).
struct RefusingHolder {
    id: PublicId,
    fetches: Arc<AtomicUsize>,
    tickets_seen: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl RefusingHolder {
    async fn attach(url: &str) -> Self {
        Self::attach_as(url, Identity::generate(), false).await
    }

    async fn attach_as(url: &str, identity: Identity, garbage: bool) -> Self {
        let mut validator = TicketValidator::new(identity.id(), [9; 32], 0);
        let params = validator
            .issue(
                TicketTerms {
                    face_value: 1_000_000,
                    win_prob: win_prob_one_in(100),
                    expiration_round: 100,
                    price_per_unit: 0,
                    price_per_byte: 1,
                },
                [3; 32],
            )
            .expect("params");
        let mut holder = HoldingWorker::attach_with(url, identity, Some((&params).into())).await;
        let fetches = Arc::new(AtomicUsize::new(0));
        let tickets_seen = Arc::new(AtomicUsize::new(0));
        let (id, events, _) = holder.parts();
        let room = Holdings {
            full: true,
            free_bytes: 1 << 40,
            capacity_bytes: 1 << 40,
            ..Holdings::default()
        };
        send(&events, worker_event::Event::Holdings(room)).await;
        let (counted, seen) = (Arc::clone(&fetches), Arc::clone(&tickets_seen));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            loop {
                let (_, events, commands) = holder.parts();
                let command = tokio::select! {
                    _ = &mut stopped => break,
                    command = commands.message() => command,
                };
                let Ok(Some(command)) = command else { break };
                match command.command {
                    Some(worker_command::Command::Store(piece)) if piece.last => {
                        let stored = BlobStored {
                            transfer_id: piece.transfer_id,
                            root: piece.root,
                            error: String::new(),
                        };
                        send(&events, worker_event::Event::Stored(stored)).await;
                    }
                    Some(worker_command::Command::Fetch(fetch)) => {
                        counted.fetch_add(1, Ordering::SeqCst);
                        seen.fetch_add(fetch.payment.len(), Ordering::SeqCst);
                        let refusal = if garbage {
                            BlobPiece {
                                fetch_id: fetch.fetch_id,
                                data: vec![0x5a; 4096],
                                last: true,
                                ..BlobPiece::default()
                            }
                        } else {
                            BlobPiece {
                                fetch_id: fetch.fetch_id,
                                last: true,
                                error: "payment short: the tickets are not good here".into(),
                                payment_refused: true,
                                ..BlobPiece::default()
                            }
                        };
                        send(&events, worker_event::Event::Piece(refusal)).await;
                    }
                    _ => {}
                }
            }
            holder.die();
        });
        Self {
            id,
            fetches,
            tickets_seen,
            stop: Some(stop),
        }
    }
}

impl Drop for RefusingHolder {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn send(events: &tokio::sync::mpsc::Sender<WorkerEvent>, event: worker_event::Event) {
    events
        .send(WorkerEvent { event: Some(event) })
        .await
        .expect("stream open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unfunded_downloader_is_refused_before_the_holder_is_asked_for_a_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let payer = Identity::from_secret([42; 32]);
    // A balance, but nothing in the deposit that pays tickets.
    let (coordinator, client) = coordinator_with_payer(dir.path(), &payer, 0).await;
    let holder = RefusingHolder::attach(&coordinator.url).await;
    wait_for_workers(&client, 1).await;
    let blob = random_file(dir.path(), "blob", 100_000, 1);
    let root = put_one_copy(&client, &blob).await;

    let payment = Payment::new(Identity::from_secret([42; 32]), None);
    let out = dir.path().join("out");
    let refused = client
        .get_to_file_paid(*root.as_bytes(), 0, None, &out, &payment)
        .await
        .expect_err("an empty deposit cannot back the tickets");
    assert_eq!(refused.code(), Some(Code::FailedPrecondition), "{refused}");
    assert!(
        refused.to_string().contains("cannot cover its tickets"),
        "{refused}"
    );
    assert!(!out.exists(), "nothing is written");
    assert_eq!(holder.fetches.load(Ordering::SeqCst), 0, "no FetchBlob");
    let snapshot = coordinator.ledger.snapshot().expect("snapshot");
    assert!(snapshot.tables["download_tickets"].is_empty());
    assert!(snapshot.tables["served"].is_empty());
    drop(holder);
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_holder_that_refuses_the_tickets_fails_the_download_with_nothing_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let payer = Identity::from_secret([43; 32]);
    let (coordinator, client) = coordinator_with_payer(dir.path(), &payer, 500 * TOKEN).await;
    let holder = RefusingHolder::attach(&coordinator.url).await;
    wait_for_workers(&client, 1).await;
    let blob = random_file(dir.path(), "blob", 100_000, 2);
    let root = put_one_copy(&client, &blob).await;

    let payment = Payment::new(Identity::from_secret([43; 32]), None);
    let out = dir.path().join("out");
    let refused = client
        .get_to_file_paid(*root.as_bytes(), 0, None, &out, &payment)
        .await
        .expect_err("the holder refuses");
    assert_eq!(refused.code(), Some(Code::FailedPrecondition), "{refused}");
    let text = refused.to_string();
    assert!(text.contains("refused the download's payment"), "{text}");
    assert!(text.contains(&holder.id.short()), "{text}");
    assert!(text.contains("not good here"), "the holder's words: {text}");
    assert!(!out.exists(), "nothing is written as complete");
    assert_eq!(holder.fetches.load(Ordering::SeqCst), 1, "asked once");
    assert!(
        holder.tickets_seen.load(Ordering::SeqCst) > 0,
        "with tickets"
    );
    // Nothing counts as served.
    assert!(coordinator.ledger.snapshot().expect("snapshot").tables["served"].is_empty());
    drop(holder);
    coordinator.stop().await;
}

/// A client speaking the wire protocol tries to get a priced holder's bytes cheaply; each trick is
/// refused with FAILED_PRECONDITION naming what is wrong, and only the honest payment is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hostile_downloader_is_refused_at_every_trick() {
    const FACE: u64 = 100 * TOKEN;
    const ONE_IN: u64 = 100_000;
    const HALF: u64 = 32 << 10;
    let dir = tempfile::tempdir().expect("tempdir");
    let payer = Identity::from_secret([44; 32]);
    let (coordinator, client) = coordinator_with_payer(dir.path(), &payer, 500 * TOKEN).await;
    // A win chance so small the params never change under the test.
    let worker = priced_worker(&coordinator.url, 1, FACE, ONE_IN).await;
    wait_for_workers(&client, 1).await;
    let blob = random_file(dir.path(), "blob", 2 * HALF, 3);
    let root = put_one_copy(&client, &blob).await;
    let quoter = client.api();
    let mut api = client.api();
    let mut payer_nonces = TicketPayer::starting_at(1);
    let quote = |start: u64, end: u64| {
        let mut api = quoter.clone();
        async move {
            let q = api
                .download_quote(DownloadQuoteRequest {
                    root: root.as_bytes().to_vec(),
                    start,
                    end: Some(end),
                    exclude: Vec::new(),
                })
                .await
                .expect("quote")
                .into_inner();
            let params =
                TicketParams::try_from(q.params.as_ref().expect("params")).expect("params");
            (q.quote_id, params)
        }
    };
    let get = |quote_id: String, start: u64, end: u64, tickets: &[SignedTicket]| GetRequest {
        root: root.as_bytes().to_vec(),
        start,
        end: Some(end),
        quote_id,
        payment: tickets.iter().map(Into::into).collect(),
        ..GetRequest::default()
    };
    let refused = |status: tonic::Status, says: &str| {
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert!(
            status.message().contains(says),
            "{says:?} in {}",
            status.message()
        );
    };

    // No payment at all: the only holder charges.
    let unpaid = api
        .get(GetRequest {
            root: root.as_bytes().to_vec(),
            ..GetRequest::default()
        })
        .await
        .expect_err("unpaid");
    refused(unpaid, "charges for downloads");

    // Tickets worth half the range.
    let (id, params) = quote(0, HALF).await;
    assert_eq!(params.price_per_byte, 1);
    let owed = params
        .amount_owed_at(Rate::PerByte, HALF / 2)
        .expect("owed");
    let short = payer_nonces.pay(&payer, &params, owed).expect("tickets");
    let status = api.get(get(id, 0, HALF, &short)).await.expect_err("short");
    refused(status, "payment covers");

    // Tickets made out to someone else.
    let (id, params) = quote(0, HALF).await;
    let other = TicketParams {
        recipient: Identity::generate().id(),
        ..params
    };
    let owed = params.amount_owed_at(Rate::PerByte, HALF).expect("owed");
    let elsewhere = payer_nonces.pay(&payer, &other, owed).expect("tickets");
    let status = api
        .get(get(id, 0, HALF, &elsewhere))
        .await
        .expect_err("payee");
    refused(status, "not the quoted worker");

    // A quote for the first half, used for the second.
    let (id, params) = quote(0, HALF).await;
    let good = payer_nonces.pay(&payer, &params, owed).expect("tickets");
    let status = api
        .get(get(id, HALF, 2 * HALF, &good))
        .await
        .expect_err("another range");
    refused(status, "is for bytes 0..32768");

    // The honest payment goes through and streams the range.
    let (id, _) = quote(0, HALF).await;
    let mut stream = api
        .get(get(id, 0, HALF, &good))
        .await
        .expect("paid")
        .into_inner();
    let mut slice = 0;
    while let Some(chunk) = stream.message().await.expect("stream") {
        if let Some(dualrig_proto::v1::get_chunk::Part::Slice(data)) = chunk.part {
            slice += data.len();
        }
    }
    assert!(
        slice as u64 > HALF,
        "the slice carries the range and its proof"
    );

    // The same tickets again, under a fresh quote.
    let (id, _) = quote(0, HALF).await;
    let status = api.get(get(id, 0, HALF, &good)).await.expect_err("reused");
    refused(status, "already paid for a download");

    let snapshot = coordinator.ledger.snapshot().expect("snapshot");
    assert_eq!(
        snapshot.tables["download_tickets"].len(),
        good.len(),
        "only the honest payment's tickets were forwarded"
    );
    worker.kill().await;
    coordinator.stop().await;
}

/// A holder that takes the payment and serves bad bytes is skipped; the rest is quoted again and paid
/// to the next holder, and the file is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_switch_to_another_holder_quotes_and_pays_the_new_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let payer = Identity::from_secret([45; 32]);
    let liar_key = Identity::from_secret([46; 32]);
    let genesis = dir.path().join("genesis.toml");
    write_genesis(
        &genesis,
        &[(payer.id(), 1_000 * TOKEN), (liar_key.id(), 1_000 * TOKEN)],
    );
    let coordinator = RunningCoordinator::start_at(&dir.path().join("data"), |c| {
        c.genesis = Some(genesis.clone());
        c.replicas = 2;
    })
    .await;
    let client = coordinator.client().await;
    client
        .execute(
            &payer,
            Operation::Deposit {
                amount: 500 * TOKEN,
            },
        )
        .await
        .expect("deposit");
    // The liar's stake makes it the one drawn first (an unstaked worker weighs 1 unit).
    client
        .execute(
            &liar_key,
            Operation::Bond {
                amount: 900 * TOKEN,
            },
        )
        .await
        .expect("bond");
    let liar = RefusingHolder::attach_as(&coordinator.url, liar_key, true).await;
    let honest = priced_worker(&coordinator.url, 1, 1_000_000, 100).await;
    wait_for_workers(&client, 2).await;
    let blob = random_file(dir.path(), "blob", 100_000, 4);
    let root = put_one_copy_on(&client, &blob, 2).await;

    let payment = Payment::new(Identity::from_secret([45; 32]), None);
    let out = dir.path().join("out");
    let got = client
        .get_to_file_paid(*root.as_bytes(), 0, None, &out, &payment)
        .await
        .expect("the honest holder serves the rest");
    assert_eq!(file_hash(&out), root);
    assert_eq!(
        got.skipped,
        [liar.id],
        "the liar was tried first and skipped"
    );
    assert_eq!(liar.fetches.load(Ordering::SeqCst), 1);
    assert!(
        liar.tickets_seen.load(Ordering::SeqCst) > 0,
        "the liar was paid"
    );
    let round = coordinator.ledger.round().expect("round");
    let served = coordinator
        .ledger
        .served(round, &honest.id)
        .expect("served");
    assert_eq!(
        served.bytes, 100_000,
        "the honest holder served the whole range"
    );
    assert!(served.paid >= 100_000, "and was paid for it: {served:?}");
    drop(liar);
    honest.kill().await;
    coordinator.stop().await;
}
