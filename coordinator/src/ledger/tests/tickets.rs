//! Tickets end to end: a client pays per job, the worker validates and redeems its winners, and over
//! many tickets what the worker is paid converges on what the tickets were worth.

use dualrig_proto::ticket::{TicketPayer, TicketValidator, win_prob_one_in};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

#[test]
fn twenty_thousand_one_in_fifty_tickets_pay_their_expected_value() {
    const TICKETS: u64 = 20_000;
    const FACE: u64 = 1_000_000;
    let (client, worker) = (actor(1), actor(2));
    let h = Harness::on_disk(&[(&client, 10_000_000_000)]);
    h.ok(
        &client,
        Operation::Deposit {
            amount: 10_000_000_000,
        },
    );

    let mut rng = StdRng::seed_from_u64(50);
    let mut validator = TicketValidator::new(worker.id(), rng.r#gen(), 0);
    let terms = TicketTerms {
        face_value: FACE,
        win_prob: win_prob_one_in(50),
        expiration_round: 1_000,
        price_per_unit: 1,
        price_per_byte: 0,
    };
    let mut params = validator.issue(terms, rng.r#gen()).expect("issue");
    let mut payer = TicketPayer::starting_at(1);
    let ev_per_ticket = params.expected_value();

    let (mut wins, mut redeemed) = (0u64, 0u64);
    for _ in 0..TICKETS {
        // One job that owes exactly one ticket's worth.
        let tickets = payer
            .pay_for_units(&client, &params, ev_per_ticket)
            .expect("pay");
        assert_eq!(tickets.len(), 1);
        let accepted = validator.validate(&tickets, ev_per_ticket).expect("valid");
        for w in accepted.winners {
            wins += 1;
            match h.ok(&worker, redeem_op(w.ticket, w.recipient_rand)) {
                Receipt::Redeemed(r) => redeemed += r.paid(),
                other => panic!("unexpected {other:?}"),
            }
        }
        if !accepted.retired.is_empty() {
            params = validator.issue(terms, rng.r#gen()).expect("issue");
        }
    }

    let p = 1.0 / 50.0;
    let n = TICKETS as f64;
    let expected = n * p * FACE as f64;
    let sigma = FACE as f64 * (n * p * (1.0 - p)).sqrt();
    let paid = h.balance(&worker);
    assert_eq!(paid, redeemed);
    assert_eq!(paid, wins * FACE);
    assert!(
        (paid as f64 - expected).abs() < 5.0 * sigma,
        "paid {paid} over {wins} wins; expected {expected} ± 5 × {sigma:.0}"
    );
    assert_eq!(h.ledger.supply().expect("supply"), 10_000_000_000);
}

#[test]
fn a_ticket_validated_by_the_worker_is_redeemable_at_the_ledger_once() {
    let (client, worker) = (actor(1), actor(2));
    let h = Harness::in_memory(&[(&client, 1_000_000)]);
    h.ok(&client, Operation::Deposit { amount: 1_000_000 });
    let mut validator = TicketValidator::new(worker.id(), [9; 32], 0);
    let params = validator
        .issue(
            TicketTerms {
                face_value: 10_000,
                win_prob: u64::MAX,
                expiration_round: 3,
                price_per_unit: 2,
                price_per_byte: 0,
            },
            [1; 32],
        )
        .expect("issue");
    let tickets = TicketPayer::starting_at(1)
        .pay_for_units(&client, &params, 100)
        .expect("pay");
    let accepted = validator.validate(&tickets, 100).expect("valid");
    let w = accepted.winners.first().expect("a certain winner");
    h.ok(&worker, redeem_op(w.ticket, w.recipient_rand));
    assert!(matches!(
        h.refused(&worker, redeem_op(w.ticket, w.recipient_rand)),
        LedgerError::AlreadyRedeemed { .. }
    ));
    assert_eq!(h.balance(&worker), 10_000);
}

/// A download's ticket sends the configured share of what it pays into the hosting-fee pot, the rest
/// to the holder; an ordinary ticket pays its recipient whole; the supply counts the pot.
#[test]
fn a_download_ticket_pays_its_fee_share_into_the_hosting_fees_pot() {
    let (client, worker) = (actor(1), actor(2));
    let h = Harness::in_memory(&[(&client, 10_000)]);
    h.act(&client, Operation::Deposit { amount: 5_000 })
        .expect("deposit");
    let (download, download_rand) = winning_ticket(&client, &worker.id(), 1_000, 10, 1);
    let (job, job_rand) = winning_ticket(&client, &worker.id(), 1_000, 10, 2);
    let round = h
        .ledger
        .record_download_tickets(&worker.id(), &[download.ticket_hash()])
        .expect("forwarded");
    assert_eq!(round, 0);
    // Forwarding it again (a client reusing its payment) is refused and records nothing.
    let before = h.ledger.snapshot().expect("snapshot");
    let again = h
        .ledger
        .record_download_tickets(&worker.id(), &[job.ticket_hash(), download.ticket_hash()])
        .expect_err("a ticket is forwarded once");
    assert!(
        matches!(again, LedgerError::TicketForwarded { .. }),
        "{again}"
    );
    assert!(
        again.to_string().contains("already paid for a download"),
        "{again}"
    );
    assert_eq!(h.ledger.snapshot().expect("snapshot"), before);

    let paid = match h
        .act(&worker, redeem_op(download, download_rand))
        .expect("redeem")
    {
        Receipt::Redeemed(r) => r,
        other => panic!("{other:?}"),
    };
    // CONFIG takes 10 %.
    assert_eq!((paid.paid(), paid.fee, paid.credited()), (1_000, 100, 900));
    assert_eq!(h.ledger.hosting_fees().expect("fees"), 100);
    assert_eq!(h.ledger.balance(&worker.id()).expect("balance"), 900);
    let whole = match h.act(&worker, redeem_op(job, job_rand)).expect("redeem") {
        Receipt::Redeemed(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!((whole.fee, whole.credited()), (0, 1_000));
    assert_eq!(h.ledger.hosting_fees().expect("fees"), 100);
    assert_eq!(h.ledger.supply().expect("supply"), 10_000);
}

/// A forwarded download ticket is remembered while it could still be redeemed or forwarded again, and
/// forgotten once every ticket forwarded in its round has expired (`unlock_rounds` later), so the table
/// stays bounded.
#[test]
fn forwarded_download_tickets_are_forgotten_once_they_have_expired() {
    let (client, worker) = (actor(1), actor(2));
    let h = Harness::in_memory(&[(&client, 10_000)]);
    let (old, _) = winning_ticket(&client, &worker.id(), 1_000, 10, 1);
    let (new, _) = winning_ticket(&client, &worker.id(), 1_000, 10, 2);
    h.ledger
        .record_download_tickets(&worker.id(), &[old.ticket_hash()])
        .expect("forwarded");
    h.ledger.advance_round().expect("round");
    h.ledger
        .record_download_tickets(&worker.id(), &[new.ticket_hash()])
        .expect("forwarded");
    let rows = || {
        h.ledger.snapshot().expect("snapshot").tables["download_tickets"]
            .iter()
            .map(|row| row[0].clone())
            .collect::<Vec<_>>()
    };
    let hash =
        |t: &dualrig_proto::ticket::SignedTicket| crate::db::Value::Bytes(t.ticket_hash().to_vec());
    // CONFIG's unlock_rounds is 2: round 2 still keeps round 0's ticket.
    h.ledger.advance_round().expect("round");
    assert_eq!(rows().len(), 2);
    let again = h
        .ledger
        .record_download_tickets(&worker.id(), &[old.ticket_hash()])
        .expect_err("still remembered");
    assert!(
        matches!(again, LedgerError::TicketForwarded { .. }),
        "{again}"
    );
    h.ledger.advance_round().expect("round");
    assert_eq!(rows(), [hash(&new)], "round 3 forgets round 0's ticket");
    h.ledger.advance_round().expect("round");
    assert!(rows().is_empty());
}

#[test]
fn bytes_served_add_up_per_round_and_worker() {
    let (a, b) = (actor(1), actor(2));
    let h = Harness::in_memory(&[(&a, 1)]);
    h.ledger.record_served(&a.id(), 100, 7).expect("served");
    h.ledger.record_served(&a.id(), 50, 0).expect("served");
    h.ledger.record_served(&b.id(), 1, 1).expect("served");
    h.ledger.advance_round().expect("round");
    h.ledger.record_served(&a.id(), 5, 5).expect("served");
    assert_eq!(
        h.ledger.served(0, &a.id()).expect("served"),
        Served {
            bytes: 150,
            paid: 7
        }
    );
    assert_eq!(h.ledger.served(1, &a.id()).expect("served").bytes, 5);
    assert_eq!(
        h.ledger.served(1, &b.id()).expect("served"),
        Served::default()
    );
    let mut both = vec![
        (
            a.id(),
            Served {
                bytes: 150,
                paid: 7,
            },
        ),
        (b.id(), Served { bytes: 1, paid: 1 }),
    ];
    both.sort_by_key(|(w, _)| *w.as_bytes());
    assert_eq!(h.ledger.served_in_round(0).expect("round 0"), both);
}
