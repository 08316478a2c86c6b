//! The ledger and tickets through their public API only, as the coordinator, a client and a worker use
//! them: genesis from a TOML file, stake, a paid job stream, redemption from async code, a restart; and
//! the same accounts over gRPC against a running coordinator.

use std::sync::Arc;

use dualrig_coordinator::ledger::{
    Candidate, Genesis, GovernanceRules, HostingRules, Ledger, LedgerConfig, LedgerError,
    Operation, Receipt, SignedRequest, SipRules, draw_weighted,
};
use dualrig_proto::identity::Identity;
use dualrig_proto::ticket::{
    TicketError, TicketPayer, TicketTerms, TicketValidator, win_prob_one_in,
};
use dualrig_proto::v1::AccountInfo;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tonic::Code;

use crate::support::{RunningCoordinator, write_genesis};

const CONFIG: LedgerConfig = LedgerConfig {
    unbonding_rounds: 2,
    unlock_rounds: 3,
    min_stake: 1_000_000,
    suspend_rounds: 1,
    hosting: HostingRules::NONE,
    download_fee_share_ppm: 100_000,
    sip: SipRules::NONE,
    governance: GovernanceRules::DEFAULT,
    capacity_bonus_per_byte: 0,
    capacity_bonus_per_session: 0,
};

struct Account {
    key: Identity,
    nonce: u64,
}

impl Account {
    fn new(byte: u8) -> Self {
        Self {
            key: Identity::from_secret([byte; 32]),
            nonce: 0,
        }
    }

    fn sign(&mut self, op: Operation) -> SignedRequest {
        self.nonce += 1;
        SignedRequest::sign(&self.key, self.nonce, &op)
    }
}

#[tokio::test]
async fn clients_pay_workers_with_tickets_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut client, mut worker) = (Account::new(11), Account::new(12));
    let genesis_path = dir.path().join("genesis.toml");
    std::fs::write(
        &genesis_path,
        format!(
            "[[accounts]]\nid = \"{}\"\nbalance = 500_000_000\n\n[[accounts]]\nid = \"{}\"\nbalance = 2_000_000\n",
            client.key.id(),
            worker.key.id()
        ),
    )
    .expect("write genesis");
    let genesis = Genesis::load(&genesis_path).expect("genesis");
    let db = dir.path().join("ledger.db");
    let ledger = Arc::new(Ledger::open(&db, CONFIG, &genesis).expect("open"));

    // The worker stakes; the client funds a deposit and a reserve. Requests run off the async runtime.
    let request = worker.sign(Operation::Bond { amount: 1_500_000 });
    ledger
        .call(move |l| l.execute(&request))
        .await
        .expect("bond");
    for op in [
        Operation::Deposit {
            amount: 300_000_000,
        },
        Operation::Reserve {
            amount: 100_000_000,
        },
    ] {
        let request = client.sign(op);
        ledger
            .call(move |l| l.execute(&request))
            .await
            .expect("fund");
    }
    let stakes = ledger.eligible_stakes().expect("stakes");
    assert_eq!(stakes, vec![(worker.key.id(), 1_500_000)]);
    let candidates: Vec<Candidate> = stakes
        .iter()
        .map(|&(worker, stake)| Candidate {
            worker,
            stake,
            mining: 0,
            score: 1.0,
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(3);
    assert_eq!(
        draw_weighted(&candidates, &mut rng).map(|c| c.worker),
        Some(worker.key.id())
    );

    // Two hundred jobs of 720p output pixels at 1 unit per 1000 pixels, one in ten tickets wins.
    let mut validator = TicketValidator::with_random_secret(worker.key.id(), 0);
    let terms = TicketTerms {
        face_value: 10_000,
        win_prob: win_prob_one_in(10),
        expiration_round: 5,
        price_per_unit: 1,
        price_per_byte: 0,
    };
    let mut params = validator.issue_random(terms).expect("issue");
    let mut payer = TicketPayer::new();
    let units = 1280 * 720 / 1000;
    let (mut owed, mut paid) = (0u64, 0u64);
    for _ in 0..200 {
        let tickets = payer
            .pay_for_units(&client.key, &params, units)
            .expect("pay");
        let accepted = validator.validate(&tickets, units).expect("accepted");
        owed += accepted.owed;
        for w in accepted.winners {
            let request = worker.sign(Operation::RedeemTicket {
                ticket: w.ticket,
                recipient_rand: w.recipient_rand,
            });
            match ledger.call(move |l| l.execute(&request)).await {
                Ok(Receipt::Redeemed(r)) => paid += r.paid(),
                other => panic!("redemption failed: {other:?}"),
            }
        }
        if !accepted.retired.is_empty() {
            params = validator.issue_random(terms).expect("issue");
        }
    }
    assert_eq!(owed, 200 * 921);
    assert!(paid > 0 && paid % 10_000 == 0, "paid {paid}");

    // A ticket on params the worker never issued is refused before it costs anything.
    let mut foreign = params;
    foreign.recipient_rand_hash = [0; 32];
    let stray = payer
        .pay_for_units(&client.key, &foreign, units)
        .expect("pay");
    assert!(matches!(
        validator.validate(&stray, units),
        Err(TicketError::UnknownParams { .. })
    ));

    // Restart: the same file, another genesis that must be ignored, everything still there.
    let before = ledger.snapshot().expect("snapshot");
    drop(ledger);
    let ledger = Ledger::open(&db, CONFIG, &Genesis::empty()).expect("reopen");
    assert_eq!(ledger.snapshot().expect("snapshot"), before);
    assert_eq!(
        ledger.balance(&worker.key.id()).expect("balance"),
        500_000 + paid
    );

    // The client leaves: unlock, wait, withdraw.
    ledger
        .execute(&client.sign(Operation::Unlock))
        .expect("unlock");
    assert!(matches!(
        ledger.execute(&client.sign(Operation::Withdraw)),
        Err(LedgerError::UnlockPending { .. })
    ));
    // A refused request does not use up its nonce.
    client.nonce -= 1;
    for _ in 0..3 {
        ledger.advance_round().expect("round");
    }
    let receipt = ledger
        .execute(&client.sign(Operation::Withdraw))
        .expect("withdraw");
    assert_eq!(
        receipt,
        Receipt::Withdrawn {
            amount: 400_000_000 - paid
        }
    );
    assert_eq!(
        ledger.balance(&client.key.id()).expect("balance"),
        500_000_000 - paid
    );
    assert_eq!(ledger.supply().expect("supply"), 502_000_000);
}

const TOKEN: u64 = 1_000_000;

/// An account as the coordinator reports it, without the round (which moves on its own).
fn without_round(mut info: AccountInfo) -> AccountInfo {
    info.round = 0;
    info
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_move_their_own_funds_over_grpc_and_keep_them_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = Identity::from_secret([21; 32]);
    let mallory = Identity::from_secret([22; 32]);
    let genesis = dir.path().join("genesis.toml");
    write_genesis(
        &genesis,
        &[(alice.id(), 100 * TOKEN), (mallory.id(), TOKEN)],
    );
    let data = dir.path().join("data");
    let tweak = |c: &mut dualrig_coordinator::Config| {
        c.genesis = Some(genesis.clone());
        c.unbonding_rounds = 2;
    };
    let coordinator = RunningCoordinator::start_at(&data, tweak).await;
    let client = coordinator.client().await;

    // Deposit, bond, unbond part of it: each request signed with the next nonce.
    for op in [
        Operation::Deposit { amount: 10 * TOKEN },
        Operation::Bond { amount: 5 * TOKEN },
        Operation::Unbond {
            worker: alice.id(),
            amount: 2 * TOKEN,
        },
    ] {
        client.execute(&alice, op).await.expect("alice's request");
    }
    let info = client.account(alice.id()).await.expect("account");
    assert_eq!(info.balance, 85 * TOKEN);
    assert_eq!(info.deposit, 10 * TOKEN);
    assert_eq!((info.bonded_to_self, info.stake), (3 * TOKEN, 3 * TOKEN));
    assert_eq!(info.unbonding.len(), 1);
    assert_eq!(info.unbonding[0].amount, 2 * TOKEN);
    assert_eq!(info.unbonding[0].release_round, info.round + 2);
    assert_eq!(info.nonce, 3);

    // Mallory signs a transfer out of Alice's account with her own key.
    let mut forged = SignedRequest::sign(
        &mallory,
        4,
        &Operation::Transfer {
            to: mallory.id(),
            amount: 50 * TOKEN,
        },
    );
    forged.account = alice.id();
    let refused = client.execute_signed(&forged).await.expect_err("forged");
    assert_eq!(refused.code(), Some(Code::Unauthenticated), "{refused}");

    // A request seen once is refused the second time.
    let pay = SignedRequest::sign(
        &alice,
        4,
        &Operation::Transfer {
            to: mallory.id(),
            amount: TOKEN,
        },
    );
    client.execute_signed(&pay).await.expect("first time");
    let replayed = client.execute_signed(&pay).await.expect_err("replay");
    assert_eq!(replayed.code(), Some(Code::Aborted), "{replayed}");
    let broke = client
        .execute(&mallory, Operation::Deposit { amount: 3 * TOKEN })
        .await
        .expect_err("mallory has 2 tokens");
    assert_eq!(broke.code(), Some(Code::FailedPrecondition), "{broke}");

    let before = [
        without_round(client.account(alice.id()).await.expect("alice")),
        without_round(client.account(mallory.id()).await.expect("mallory")),
    ];
    assert_eq!(before[1].balance, 2 * TOKEN);
    coordinator.stop().await;

    // Same data dir: the genesis is not applied again and every balance is as it was.
    let coordinator = RunningCoordinator::start_at(&data, tweak).await;
    let client = coordinator.client().await;
    let after = [
        without_round(client.account(alice.id()).await.expect("alice")),
        without_round(client.account(mallory.id()).await.expect("mallory")),
    ];
    assert_eq!(after, before);
    assert_eq!(
        coordinator.ledger.supply().expect("supply"),
        101 * u128::from(TOKEN)
    );
    client
        .execute(
            &alice,
            Operation::Transfer {
                to: mallory.id(),
                amount: TOKEN,
            },
        )
        .await
        .expect("nonces carry on after the restart");
    coordinator.stop().await;
}

/// A coordinator that requires payment, `payer` with 500 tokens deposited of its 1,000, and one
/// worker at one base unit per output pixel whose every ticket wins (face value `face`).
async fn paid_network(
    dir: &std::path::Path,
    payer: &Identity,
    face: u64,
) -> (
    RunningCoordinator,
    dualrig_client::DualrigClient,
    crate::support::RunningWorker,
) {
    let genesis = dir.join("genesis.toml");
    write_genesis(&genesis, &[(payer.id(), 1_000 * TOKEN)]);
    let coordinator = RunningCoordinator::start_at(&dir.join("data"), |c| {
        c.genesis = Some(genesis.clone());
        c.require_payment = true;
    })
    .await;
    let client = coordinator.client().await;
    client
        .execute(
            payer,
            Operation::Deposit {
                amount: 500 * TOKEN,
            },
        )
        .await
        .expect("deposit");
    let worker = crate::support::RunningWorker::start_with(&coordinator.url, |w| {
        w.price_per_unit = 1;
        w.ticket_face_value = face;
        w.ticket_win_prob_one_in = 1;
    })
    .await;
    crate::support::wait_for_workers(&client, 1).await;
    (coordinator, client, worker)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_job_pays_its_worker_through_redeemed_tickets() {
    const FACE: u64 = 1_000_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let payer_key = Identity::from_secret([31; 32]);
    // Every ticket wins, so what the worker earns is exactly the tickets' face values.
    let (coordinator, client, worker) = paid_network(dir.path(), &payer_key, FACE).await;

    let clip = crate::support::make_clip(dir.path(), "paid.ts", 1, "320x240");
    let segment = std::fs::read(&clip).expect("read clip");
    let profiles = dualrig_proto::profile::Profile::parse_list("240p").expect("standard profile");

    // Without payment the coordinator refuses the job before any worker sees it.
    let unpaid = client
        .transcode_segment(segment.clone(), &profiles, "unpaid")
        .await
        .expect_err("payment is required");
    assert_eq!(unpaid.code(), Some(Code::FailedPrecondition), "{unpaid}");
    assert!(unpaid.to_string().contains("paid jobs only"), "{unpaid}");

    let payment = dualrig_client::Payment::new(Identity::from_secret([31; 32]), Some(1));
    let payer = std::sync::Arc::clone(&payment.payer);
    let first_nonce = payer.lock().expect("payer").next_nonce();
    let done = client
        .transcode_segment_paid(segment, &profiles, "paid", &payment)
        .await
        .expect("the paid job is transcoded");
    assert_eq!(done.worker_id, worker.id.as_bytes().to_vec());

    // All tickets won; the worker redeems them in the background. Its balance must reach exactly their
    // face values, taken from the payer's deposit.
    let tickets = payer.lock().expect("payer").next_nonce() - first_nonce;
    assert!(tickets >= 1);
    let owed = tickets * FACE;
    let mut earned = 0;
    for _ in 0..300 {
        earned = client.account(worker.id).await.expect("worker").balance;
        if earned >= owed {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(earned, owed, "{tickets} winning tickets of {FACE}");
    let paid = client.account(payer_key.id()).await.expect("payer");
    assert_eq!(paid.deposit, 500 * TOKEN - owed);
    worker.kill().await;
    coordinator.stop().await;
}

/// Two jobs quoted under the same params, where the first one's ticket wins and retires them: the
/// worker refuses the second's tickets, and that refusal comes back `ABORTED` (ask again), not as the
/// client's fault; a new quote then pays and goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_under_params_another_win_retired_is_asked_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let payer_key = Identity::from_secret([33; 32]);
    // Every ticket wins, so every accepted job retires the params it was paid under.
    let (coordinator, client, worker) = paid_network(dir.path(), &payer_key, 1_000_000).await;
    let clip = crate::support::make_clip(dir.path(), "paid.ts", 1, "320x240");
    let segment = std::fs::read(&clip).expect("read clip");
    let profiles = dualrig_proto::profile::Profile::parse_list("240p").expect("standard profile");
    let units = dualrig_proto::profile::job_units(&profiles, 25);

    // Two quotes before either job runs: the same params.
    let mut api = client.api();
    let mut headers = Vec::new();
    let mut payer = TicketPayer::new();
    for label in ["first", "second"] {
        let (quote_id, params) = crate::support::quote(&mut api, &profiles, segment.len()).await;
        let tickets = payer
            .pay_for_units(&payer_key, &params, units * 2)
            .expect("tickets");
        headers.push(dualrig_proto::v1::TranscodeHeader {
            profiles: profiles.iter().map(|p| p.to_wire()).collect(),
            segment_size: segment.len() as u64,
            label: label.into(),
            quote_id,
            payment: tickets.iter().map(Into::into).collect(),
        });
    }
    assert_eq!(
        headers[0].payment[0]
            .ticket
            .as_ref()
            .map(|t| &t.recipient_rand_hash),
        headers[1].payment[0]
            .ticket
            .as_ref()
            .map(|t| &t.recipient_rand_hash),
        "both quotes carry the same params"
    );
    let mut headers = headers.into_iter();
    client
        .transcode_raw(headers.next().expect("first"), segment.clone())
        .await
        .expect("the first job is paid and done");
    let err = client
        .transcode_raw(headers.next().expect("second"), segment.clone())
        .await
        .expect_err("its params were retired by the first job's win");
    assert_eq!(err.code(), Some(Code::Aborted), "{err}");
    assert!(err.to_string().contains("ask for a new quote"), "{err}");

    // The client's own path quotes again and goes through.
    let payment = dualrig_client::Payment::new(Identity::from_secret([33; 32]), None);
    client
        .transcode_segment_paid(segment, &profiles, "third", &payment)
        .await
        .expect("a new quote pays under the new params");
    let listed = client.list_workers().await.expect("workers");
    assert_eq!((listed[0].jobs_done, listed[0].jobs_failed), (2, 0));
    worker.kill().await;
    coordinator.stop().await;
}

/// A funded sender pays with three tickets, the middle one's signature spoiled: the worker refuses
/// the payment before any work, the refusal that reaches the client names that ticket, and the worker
/// neither failed a job nor lost anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_with_one_forged_ticket_is_refused_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let payer_key = Identity::from_secret([34; 32]);
    let (coordinator, client, worker) = paid_network(dir.path(), &payer_key, 1_000_000).await;
    let clip = crate::support::make_clip(dir.path(), "paid.ts", 1, "320x240");
    let segment = std::fs::read(&clip).expect("read clip");
    let profiles = dualrig_proto::profile::Profile::parse_list("240p").expect("standard profile");
    let units = dualrig_proto::profile::job_units(&profiles, 30);
    let mut api = client.api();
    let (quote_id, params) = crate::support::quote(&mut api, &profiles, segment.len()).await;
    let mut payer = TicketPayer::new();
    let mut tickets = Vec::new();
    for _ in 0..3 {
        tickets.extend(
            payer
                .pay_for_units(&payer_key, &params, units)
                .expect("tickets"),
        );
    }
    let mut wire: Vec<dualrig_proto::v1::SignedTicket> = tickets.iter().map(Into::into).collect();
    wire[1].sig[10] ^= 1;
    let header = dualrig_proto::v1::TranscodeHeader {
        profiles: profiles.iter().map(|p| p.to_wire()).collect(),
        segment_size: segment.len() as u64,
        label: "one forged".into(),
        quote_id,
        payment: wire,
    };
    let err = client
        .transcode_raw(header, segment)
        .await
        .expect_err("a forged ticket refuses the payment");
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "{err}");
    let nonce = tickets[1].ticket.sender_nonce;
    assert!(
        err.to_string()
            .contains(&format!("ticket 1 (nonce {nonce})")),
        "{err}"
    );
    let listed = client.list_workers().await.expect("workers");
    assert_eq!((listed[0].jobs_done, listed[0].jobs_failed), (0, 0));
    let account = client.account(worker.id).await.expect("worker account");
    assert_eq!(account.balance, 0);
    worker.kill().await;
    coordinator.stop().await;
}
