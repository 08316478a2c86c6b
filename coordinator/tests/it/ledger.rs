//! The ledger and tickets through their public API only, as the coordinator, a client and a worker use
//! them: genesis from a TOML file, stake, a paid job stream, redemption from async code, a restart.

use std::sync::Arc;

use dualrig_coordinator::ledger::{
    Candidate, Genesis, Ledger, LedgerConfig, LedgerError, Operation, Receipt, SignedRequest,
    draw_weighted,
};
use dualrig_proto::identity::Identity;
use dualrig_proto::ticket::{
    TicketError, TicketPayer, TicketTerms, TicketValidator, win_prob_one_in,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

const CONFIG: LedgerConfig = LedgerConfig {
    unbonding_rounds: 2,
    unlock_rounds: 3,
    min_stake: 1_000_000,
    suspend_rounds: 1,
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
