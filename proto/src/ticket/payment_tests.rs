//! A sender paying a recipient: every way the recipient refuses a payment, and what an accepted one does.

use proptest::prelude::*;

use super::*;

const FACE: u64 = 50_000;

struct Setup {
    worker: Identity,
    client: Identity,
    validator: TicketValidator,
    params: TicketParams,
    payer: TicketPayer,
}

fn terms(win_prob: u64) -> TicketTerms {
    TicketTerms {
        face_value: FACE,
        win_prob,
        expiration_round: 10,
        price_per_unit: 3,
        price_per_byte: 0,
    }
}

fn setup(win_prob: u64) -> Setup {
    let worker = Identity::from_secret([1; 32]);
    let client = Identity::from_secret([2; 32]);
    let mut validator = TicketValidator::new(worker.id(), [3; 32], 5);
    let params = validator.issue(terms(win_prob), [4; 32]).expect("issue");
    Setup {
        worker,
        client,
        validator,
        params,
        payer: TicketPayer::starting_at(100),
    }
}

impl Setup {
    /// One ticket under `params` with the payer's next nonce.
    fn one(&mut self, params: &TicketParams) -> Vec<SignedTicket> {
        let nonce = self.payer.next_nonce();
        self.payer = TicketPayer::starting_at(nonce + 1);
        vec![SignedTicket::sign(
            params.ticket(self.client.id(), nonce),
            &self.client,
        )]
    }
}

/// Never wins, so params stay live through a test.
const NEVER: u64 = 0;
/// EV 999 per ticket at FACE.
fn one_in_50() -> u64 {
    win_prob_one_in(50)
}

#[test]
fn honest_payment_is_accepted_and_covers_the_price() {
    let mut s = setup(one_in_50());
    let units = 1000;
    let tickets = s
        .payer
        .pay_for_units(&s.client, &s.params, units)
        .expect("pay");
    // 3 × 1000 = 3000 owed at 999 per ticket: 4 tickets.
    assert_eq!(tickets.len(), 4);
    let nonces: Vec<u64> = tickets.iter().map(|t| t.ticket.sender_nonce).collect();
    assert_eq!(nonces, vec![100, 101, 102, 103]);
    let accepted = s.validator.validate(&tickets, units).expect("accepted");
    assert_eq!(accepted.owed, 3000);
    assert_eq!(accepted.expected_value, 4 * 999);
}

#[test]
fn forged_signature_is_refused() {
    let mut s = setup(NEVER);
    let ticket = s.params.ticket(s.client.id(), 1);
    let forged = SignedTicket::sign(ticket, &s.worker);
    assert_eq!(
        s.validator.validate(&[forged], 0),
        Err(TicketError::ForgedSignature {
            sender: s.client.id()
        })
    );
}

#[test]
fn one_forged_ticket_among_many_refuses_the_payment_and_records_nothing() {
    let mut s = setup(NEVER);
    let mut tickets: Vec<SignedTicket> = (0..64)
        .map(|n| SignedTicket::sign(s.params.ticket(s.client.id(), n), &s.client))
        .collect();
    let honest = tickets[37];
    // Each way a signature can be bad, in the middle of an otherwise good payment.
    let mut flipped_s = honest;
    flipped_s.sig[40] ^= 1;
    let mut flipped_r = honest;
    flipped_r.sig[3] ^= 1;
    let mut other_ticket = honest;
    other_ticket.ticket.sender_nonce = 1000;
    let signed_by_another = SignedTicket::sign(honest.ticket, &s.worker);
    for bad in [flipped_s, flipped_r, other_ticket, signed_by_another] {
        tickets[37] = bad;
        assert_eq!(
            s.validator.validate(&tickets, 0),
            Err(TicketError::ForgedSignature {
                sender: s.client.id()
            })
        );
    }
    // The refusal names the ticket at fault.
    let refused = s
        .validator
        .validate_naming_ticket(&tickets, 0)
        .expect_err("still refused");
    assert_eq!(refused.ticket, Some((37, honest.ticket.sender_nonce)));
    assert!(
        refused.to_string().starts_with("ticket 37 (nonce 37): "),
        "{refused}"
    );
    // Nothing was recorded: the same nonces, all honest, are accepted.
    tickets[37] = honest;
    s.validator.validate(&tickets, 0).expect("accepted");
}

#[test]
fn ticket_for_another_recipient_is_refused() {
    let mut s = setup(NEVER);
    let mut ticket = s.params.ticket(s.client.id(), 1);
    ticket.recipient = s.client.id();
    let signed = SignedTicket::sign(ticket, &s.client);
    assert_eq!(
        s.validator.validate(&[signed], 0),
        Err(TicketError::WrongRecipient {
            expected: s.worker.id(),
            got: s.client.id()
        })
    );
}

#[test]
fn replayed_nonce_is_refused_across_and_within_payments() {
    let mut s = setup(NEVER);
    let tickets = s.one(&s.params.clone());
    s.validator.validate(&tickets, 0).expect("first time");
    assert!(matches!(
        s.validator.validate(&tickets, 0),
        Err(TicketError::ReplayedNonce { nonce: 100, .. })
    ));
    let fresh = s.one(&s.params.clone());
    let doubled = [fresh[0], fresh[0]];
    assert!(matches!(
        s.validator.validate(&doubled, 0),
        Err(TicketError::ReplayedNonce { nonce: 101, .. })
    ));
}

#[test]
fn expired_ticket_is_refused() {
    let mut s = setup(NEVER);
    let tickets = s.one(&s.params.clone());
    s.validator.set_round(11);
    assert_eq!(
        s.validator.validate(&tickets, 0),
        Err(TicketError::Expired {
            expiration_round: 10,
            current_round: 11
        })
    );
}

#[test]
fn ticket_on_retired_params_is_refused() {
    let mut s = setup(NEVER);
    assert!(s.validator.retire(&s.params.recipient_rand_hash));
    let tickets = s.one(&s.params.clone());
    assert!(matches!(
        s.validator.validate(&tickets, 0),
        Err(TicketError::RetiredParams { .. })
    ));
}

#[test]
fn ticket_on_params_never_issued_is_refused() {
    let mut s = setup(NEVER);
    let mut other = s.params;
    other.recipient_rand_hash = [9; 32];
    let tickets = s.one(&other);
    assert!(matches!(
        s.validator.validate(&tickets, 0),
        Err(TicketError::UnknownParams { .. })
    ));
}

#[test]
fn ticket_with_other_terms_is_refused() {
    let mut s = setup(NEVER);
    let mut richer = s.params;
    richer.win_prob = 1;
    let t = SignedTicket::sign(richer.ticket(s.client.id(), 1), &s.client);
    assert!(matches!(
        s.validator.validate(&[t], 0),
        Err(TicketError::TermsMismatch {
            field: "win_prob",
            got: 1,
            expected: NEVER,
            ..
        })
    ));
}

#[test]
fn payment_short_of_the_price_is_refused() {
    let mut s = setup(one_in_50());
    let tickets = s.payer.pay(&s.client, &s.params, 2 * 999).expect("pay");
    assert_eq!(tickets.len(), 2);
    assert_eq!(
        s.validator.validate(&tickets, 1000),
        Err(TicketError::EvShort {
            offered: 1998,
            owed: 3000
        })
    );
    assert_eq!(
        s.validator.validate(&[], 1),
        Err(TicketError::NoTickets { units: 1 })
    );
}

#[test]
fn overflow_is_an_error_not_a_wrap() {
    let mut s = setup(NEVER);
    let tickets = s.payer.pay(&s.client, &s.params, 0).expect("pay");
    assert!(tickets.is_empty());
    let t = SignedTicket::sign(s.params.ticket(s.client.id(), 1), &s.client);
    assert!(matches!(
        s.validator.validate(&[t], u64::MAX),
        Err(TicketError::Overflow { .. })
    ));

    let worker = Identity::from_secret([1; 32]);
    let mut v = TicketValidator::new(worker.id(), [3; 32], 0);
    let huge = v
        .issue(
            TicketTerms {
                face_value: u64::MAX,
                win_prob: u64::MAX,
                expiration_round: 1,
                price_per_unit: 0,
                price_per_byte: 0,
            },
            [5; 32],
        )
        .expect("issue");
    let mut payer = TicketPayer::starting_at(0);
    let two = payer.pay(&s.client, &huge, u64::MAX).expect("pay");
    assert_eq!(two.len(), 2);
    assert_eq!(
        v.validate(&two, 0),
        Err(TicketError::Overflow {
            what: "sum of ticket expected values"
        })
    );
    let mut at_the_end = TicketPayer::starting_at(u64::MAX - 1);
    assert_eq!(
        at_the_end.pay(&s.client, &huge, u64::MAX),
        Err(TicketError::Overflow {
            what: "sender nonce"
        })
    );
}

#[test]
fn refused_payment_changes_nothing() {
    let mut s = setup(NEVER);
    let good = s.one(&s.params.clone());
    let forged = SignedTicket::sign(s.params.ticket(s.client.id(), 5), &s.worker);
    assert!(s.validator.validate(&[good[0], forged], 0).is_err());
    // The good ticket's nonce was not recorded by the refused payment.
    s.validator.validate(&good, 0).expect("still fresh");
}

#[test]
fn a_win_retires_its_params_and_returns_the_secret_to_redeem() {
    let mut s = setup(u64::MAX);
    let tickets = s.one(&s.params.clone());
    let accepted = s.validator.validate(&tickets, 0).expect("accepted");
    assert_eq!(accepted.winners.len(), 1);
    assert_eq!(accepted.retired, vec![s.params.recipient_rand_hash]);
    let w = &accepted.winners[0];
    w.ticket
        .check_redeemable(&w.ticket.ticket.recipient, &w.recipient_rand, 10)
        .expect("redeemable");
    let again = s.one(&s.params.clone());
    assert!(matches!(
        s.validator.validate(&again, 0),
        Err(TicketError::RetiredParams { .. })
    ));
    assert!(s.validator.params(&s.params.recipient_rand_hash).is_none());
}

#[test]
fn every_winner_of_one_payment_is_returned() {
    let mut s = setup(u64::MAX);
    let tickets = s
        .payer
        .pay(&s.client, &s.params, 3 * (FACE - 1))
        .expect("pay");
    assert_eq!(tickets.len(), 3);
    let accepted = s.validator.validate(&tickets, 0).expect("accepted");
    assert_eq!(accepted.winners.len(), 3);
    assert_eq!(accepted.retired.len(), 1);
}

#[test]
fn a_seed_is_never_issued_twice() {
    let mut s = setup(NEVER);
    assert!(matches!(
        s.validator.issue(terms(NEVER), [4; 32]),
        Err(TicketError::ReusedSeed { .. })
    ));
    s.validator.retire(&s.params.recipient_rand_hash);
    assert!(matches!(
        s.validator.issue(terms(NEVER), [4; 32]),
        Err(TicketError::ReusedSeed { .. })
    ));
    s.validator.issue_random(terms(NEVER)).expect("fresh seed");
}

#[test]
fn expired_params_are_forgotten() {
    let mut s = setup(NEVER);
    assert_eq!(s.validator.live_params().count(), 1);
    s.validator.set_round(11);
    assert_eq!(s.validator.live_params().count(), 0);
}

#[test]
fn payer_refuses_worthless_params_and_oversized_payments() {
    let mut s = setup(NEVER);
    assert!(matches!(
        s.payer.pay(&s.client, &s.params, 1),
        Err(TicketError::ZeroExpectedValue { .. })
    ));
    let mut cheap = s.params;
    cheap.win_prob = win_prob_one_in(1 << 20);
    cheap.face_value = 1 << 20;
    assert!(matches!(
        s.payer.pay(&s.client, &cheap, 1 << 20),
        Err(TicketError::TooManyTickets { .. })
    ));
    assert_eq!(s.payer.next_nonce(), 100);
}

#[test]
fn validator_refuses_oversized_payments_before_checking_signatures() {
    let mut s = setup(NEVER);
    let t = SignedTicket::sign(s.params.ticket(s.client.id(), 1), &s.client);
    let many = vec![t; MAX_TICKETS_PER_PAYMENT + 1];
    assert!(matches!(
        s.validator.validate(&many, 0),
        Err(TicketError::TooManyTickets { .. })
    ));
}

proptest! {
    #[test]
    fn tickets_needed_is_the_least_count_that_covers(
        face_value in 1u64..,
        win_prob in 1u64..,
        owed in 0u64..,
    ) {
        let mut p = setup(NEVER).params;
        p.face_value = face_value;
        p.win_prob = win_prob;
        let ev = p.expected_value();
        match TicketPayer::tickets_needed(&p, owed) {
            Ok(n) => {
                prop_assert!(u128::from(n) * u128::from(ev) >= u128::from(owed));
                if n > 0 {
                    prop_assert!(u128::from(n - 1) * u128::from(ev) < u128::from(owed));
                }
            }
            Err(TicketError::ZeroExpectedValue { .. }) => prop_assert!(ev == 0 && owed > 0),
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }

    #[test]
    fn ticket_bytes_round_trip(bytes in proptest::collection::vec(any::<u8>(), TICKET_LEN)) {
        let mut arr = [0u8; TICKET_LEN];
        arr.copy_from_slice(&bytes);
        prop_assert_eq!(Ticket::from_bytes(&arr).bytes(), arr);
    }

    #[test]
    fn expected_value_matches_wide_arithmetic(face_value: u64, win_prob: u64) {
        let ev = expected_value(face_value, win_prob);
        let exact = u128::from(face_value) * u128::from(win_prob);
        prop_assert!(u128::from(ev) << 64 <= exact);
        prop_assert!((u128::from(ev) + 1) << 64 > exact);
    }
}
