//! Deposits, reserves, unlocks and how a winning ticket is paid.

use super::*;

const FACE: u64 = 1000;

#[test]
fn winner_is_paid_from_the_deposit_once() {
    let (client, worker) = (actor(1), actor(2));
    let h = Harness::on_disk(&[(&client, 10_000)]);
    h.ok(&client, Operation::Deposit { amount: 5000 });
    let (ticket, rand) = winning_ticket(&client, &worker.id(), FACE, 10, 1);
    let receipt = h.ok(&worker, redeem_op(ticket, rand));
    assert_eq!(
        receipt,
        Receipt::Redeemed(Redemption {
            ticket_hash: ticket.ticket_hash(),
            sender: client.id(),
            recipient: worker.id(),
            from_deposit: FACE,
            from_reserve: 0,
            unpaid: 0,
            fee: 0,
            sip_fee: 0,
            redirected: 0,
        })
    );
    assert_eq!(h.balance(&worker), FACE);
    assert_eq!(h.ledger.sender(&client.id()).expect("sender").deposit, 4000);
    assert!(
        h.ledger
            .is_redeemed(&ticket.ticket_hash())
            .expect("redeemed")
    );
    assert!(matches!(
        h.refused(&worker, redeem_op(ticket, rand)),
        LedgerError::AlreadyRedeemed { .. }
    ));
    assert_eq!(h.balance(&worker), FACE);
}

#[test]
fn every_bad_redemption_has_its_own_error() {
    let (client, worker, other) = (actor(1), actor(2), actor(3));
    let h = Harness::in_memory(&[(&client, 10_000)]);
    h.ok(&client, Operation::Deposit { amount: 5000 });

    let (ticket, rand) = winning_ticket(&client, &worker.id(), FACE, 1, 1);
    let forged = SignedTicket::sign(ticket.ticket, &other);
    assert!(matches!(
        h.refused(&worker, redeem_op(forged, rand)),
        LedgerError::Ticket(TicketError::ForgedSignature { .. })
    ));
    assert!(matches!(
        h.refused(&other, redeem_op(ticket, rand)),
        LedgerError::NotRecipient { .. }
    ));
    assert!(matches!(
        h.refused(&worker, redeem_op(ticket, [0; 32])),
        LedgerError::Ticket(TicketError::RandMismatch)
    ));
    let mut losing = ticket.ticket;
    losing.win_prob = 0;
    let losing = SignedTicket::sign(losing, &client);
    assert!(matches!(
        h.refused(&worker, redeem_op(losing, rand)),
        LedgerError::Ticket(TicketError::NotWinning)
    ));
    h.advance(2);
    assert!(matches!(
        h.refused(&worker, redeem_op(ticket, rand)),
        LedgerError::Ticket(TicketError::Expired {
            expiration_round: 1,
            current_round: 2
        })
    ));
}

#[test]
fn short_deposit_falls_back_to_a_capped_share_of_the_reserve() {
    let (client, w1, w2, idle) = (actor(1), actor(2), actor(3), actor(4));
    let h = Harness::on_disk(&[(&client, 10_000), (&w1, 100), (&w2, 100)]);
    h.ok(&w1, Operation::Bond { amount: 100 });
    h.ok(&w2, Operation::Bond { amount: 100 });
    h.ok(&client, Operation::Reserve { amount: 1000 });
    let redeem = |who: &Identity, face, tag| {
        let (t, r) = winning_ticket(&client, &who.id(), face, 100, tag);
        h.act(who, redeem_op(t, r))
    };
    let paid = |r: Result<Receipt, LedgerError>| match r {
        Ok(Receipt::Redeemed(x)) => (x.from_deposit, x.from_reserve, x.unpaid),
        other => panic!("expected a redemption, got {other:?}"),
    };

    // Two eligible workers: each may take 1000 / 2 = 500 this round.
    assert_eq!(paid(redeem(&w1, 800, 1)), (0, 500, 300));
    assert!(matches!(
        redeem(&w1, 100, 2),
        Err(LedgerError::SenderCannotPay { .. })
    ));
    assert_eq!(paid(redeem(&w2, 300, 3)), (0, 300, 0));
    assert_eq!(paid(redeem(&w2, 300, 4)), (0, 200, 100));
    assert_eq!(h.ledger.sender(&client.id()).expect("s").reserve, 0);
    // An unbonded recipient never claims from a reserve.
    assert!(matches!(
        redeem(&idle, 10, 5),
        Err(LedgerError::SenderCannotPay { .. })
    ));

    // Next round: a fresh cap over what is left; the deposit pays first.
    h.advance(1);
    h.ok(&client, Operation::Deposit { amount: 50 });
    h.ok(&client, Operation::Reserve { amount: 100 });
    assert_eq!(paid(redeem(&w1, 80, 6)), (50, 30, 0));
    assert_eq!(paid(redeem(&w1, 80, 7)), (0, 20, 60));
    assert_eq!(
        h.ledger.sender(&client.id()).expect("s"),
        SenderAccount {
            deposit: 0,
            reserve: 50,
            withdraw_round: None
        }
    );
    assert_eq!(h.balance(&w1), 500 + 80 + 20);
    assert_eq!(h.balance(&w2), 500);
    assert_eq!(h.ledger.supply().expect("supply"), 10_200);
}

#[test]
fn withdrawal_needs_an_unlock_and_the_unlock_wait() {
    let (client, worker) = (actor(1), actor(2));
    let h = Harness::on_disk(&[(&client, 10_000)]);
    assert!(matches!(
        h.refused(&client, Operation::Unlock),
        LedgerError::NothingToUnlock { .. }
    ));
    h.ok(&client, Operation::Deposit { amount: 3000 });
    h.ok(&client, Operation::Reserve { amount: 1000 });
    assert!(matches!(
        h.refused(&client, Operation::Withdraw),
        LedgerError::NotUnlocking { .. }
    ));
    h.ok(&client, Operation::Unlock);
    assert!(matches!(
        h.refused(&client, Operation::Unlock),
        LedgerError::AlreadyUnlocking {
            withdraw_round: 2,
            ..
        }
    ));
    h.advance(1);
    assert!(matches!(
        h.refused(&client, Operation::Withdraw),
        LedgerError::UnlockPending {
            withdraw_round: 2,
            current_round: 1,
            ..
        }
    ));
    // Pending winners are still paid during the wait.
    let (t, r) = winning_ticket(&client, &worker.id(), FACE, 5, 1);
    h.ok(&worker, redeem_op(t, r));
    h.advance(1);
    assert_eq!(
        h.ok(&client, Operation::Withdraw),
        Receipt::Withdrawn { amount: 3000 }
    );
    assert_eq!(h.balance(&client), 6000 + 3000);
    assert_eq!(
        h.ledger.sender(&client.id()).expect("s"),
        SenderAccount::default()
    );
}

#[test]
fn a_cancelled_unlock_keeps_the_funds_in_place() {
    let client = actor(1);
    let h = Harness::in_memory(&[(&client, 100)]);
    assert!(matches!(
        h.refused(&client, Operation::CancelUnlock),
        LedgerError::NotUnlocking { .. }
    ));
    h.ok(&client, Operation::Deposit { amount: 100 });
    h.ok(&client, Operation::Unlock);
    h.ok(&client, Operation::CancelUnlock);
    h.advance(5);
    assert!(matches!(
        h.refused(&client, Operation::Withdraw),
        LedgerError::NotUnlocking { .. }
    ));
    assert!(matches!(
        h.refused(&client, Operation::Deposit { amount: 1 }),
        LedgerError::InsufficientBalance { .. }
    ));
}

#[test]
fn a_sender_with_nothing_pays_nothing_and_the_ticket_stays_redeemable() {
    let (client, worker) = (actor(1), actor(2));
    let h = Harness::in_memory(&[(&client, 1000)]);
    let (t, r) = winning_ticket(&client, &worker.id(), FACE, 5, 1);
    assert!(matches!(
        h.refused(&worker, redeem_op(t, r)),
        LedgerError::SenderCannotPay { .. }
    ));
    h.ok(&client, Operation::Deposit { amount: 1000 });
    h.ok(&worker, redeem_op(t, r));
    assert_eq!(h.balance(&worker), FACE);
}

/// Group commit: a batch applies each request exactly as it would alone, in order, in one
/// transaction; a refused one leaves no trace and does not stop the rest.
#[test]
fn a_batch_of_requests_applies_each_as_alone_in_one_transaction() {
    let (client, worker) = (actor(1), actor(2));
    let h = Harness::on_disk(&[(&client, 10_000)]);
    h.ok(&client, Operation::Deposit { amount: 5000 });
    let (first, first_rand) = winning_ticket(&client, &worker.id(), FACE, 10, 1);
    let (second, second_rand) = winning_ticket(&client, &worker.id(), FACE, 10, 2);
    let nonce = h.ledger.last_nonce(&worker.id()).expect("nonce");
    let sign = |n: u64, op: Operation| SignedRequest::sign(&worker, n, &op);
    let mut forged = sign(nonce + 3, redeem_op(second, second_rand));
    forged.sig[0] ^= 1;
    let batch = [
        sign(nonce + 1, redeem_op(first, first_rand)),
        // The same ticket again, with a fresh nonce: already redeemed, within the same transaction.
        sign(nonce + 2, redeem_op(first, first_rand)),
        forged,
        // A nonce the batch already used.
        sign(nonce + 1, redeem_op(second, second_rand)),
        sign(nonce + 2, redeem_op(second, second_rand)),
    ];
    let outcomes = h.ledger.execute_batch(&batch).expect("commits");
    assert!(
        matches!(outcomes[0], Ok((Receipt::Redeemed(_), _))),
        "{:?}",
        outcomes[0]
    );
    assert!(
        matches!(outcomes[1], Err(LedgerError::AlreadyRedeemed { .. })),
        "{:?}",
        outcomes[1]
    );
    assert!(
        matches!(outcomes[2], Err(LedgerError::BadSignature { .. })),
        "{:?}",
        outcomes[2]
    );
    assert!(
        matches!(outcomes[3], Err(LedgerError::StaleNonce { .. })),
        "{:?}",
        outcomes[3]
    );
    assert!(
        matches!(outcomes[4], Ok((Receipt::Redeemed(_), _))),
        "{:?}",
        outcomes[4]
    );
    // Exactly two payments, and the refused requests left nothing (the nonce of the second refusal
    // was not taken: the last applied request's is).
    assert_eq!(h.balance(&worker), 2 * FACE);
    assert_eq!(
        h.ledger.sender(&client.id()).expect("sender").deposit,
        5000 - 2 * FACE
    );
    assert_eq!(h.ledger.last_nonce(&worker.id()).expect("nonce"), nonce + 2);
}
