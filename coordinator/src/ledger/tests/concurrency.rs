//! Many connections racing to redeem one winning ticket: it is paid exactly once.

use std::sync::{Arc, Barrier};

use super::*;

const RACERS: usize = 50;
const FACE: u64 = 700;

fn ledger_with_deposit(client: &Identity) -> (Place, String) {
    let place = Place::fresh();
    let ledger = place.open(CONFIG, &genesis(&[(client, 10_000)]));
    ledger
        .execute(&SignedRequest::sign(
            client,
            1,
            &Operation::Deposit { amount: 10_000 },
        ))
        .expect("deposit");
    let at = place.at().to_owned();
    (place, at)
}

/// Fifty signed requests from the recipient, each on its own connection. The requests carry distinct
/// nonces, so a loser is refused either as a second redemption or for a nonce a winner already passed.
#[test]
fn fifty_concurrent_redemptions_pay_exactly_once() {
    let (client, worker) = (actor(1), actor(2));
    let (_dir, path) = ledger_with_deposit(&client);
    let (ticket, rand) = winning_ticket(&client, &worker.id(), FACE, 10, 1);
    let barrier = Arc::new(Barrier::new(RACERS));
    let outcomes: Vec<Result<Receipt, LedgerError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..RACERS)
            .map(|i| {
                let (path, barrier, worker) = (&path, Arc::clone(&barrier), &worker);
                s.spawn(move || {
                    let ledger = open_again(path);
                    let request =
                        SignedRequest::sign(worker, i as u64 + 1, &redeem_op(ticket, rand));
                    barrier.wait();
                    ledger.execute(&request)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("racer"))
            .collect()
    });
    let accepted = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(accepted, 1, "{outcomes:?}");
    for o in &outcomes {
        assert!(
            matches!(
                o,
                Ok(Receipt::Redeemed(_))
                    | Err(LedgerError::AlreadyRedeemed { .. })
                    | Err(LedgerError::StaleNonce { .. })
            ),
            "{o:?}"
        );
    }
    let ledger = open_again(&path);
    assert_eq!(ledger.balance(&worker.id()).expect("balance"), FACE);
    assert_eq!(
        ledger.sender(&client.id()).expect("s").deposit,
        10_000 - FACE
    );
    assert_eq!(ledger.supply().expect("supply"), 10_000);
}

/// The same race below the request layer: fifty transactions on fifty connections run the redemption
/// itself, so only the ticket's unique key stands between them and a double payment.
#[test]
fn fifty_concurrent_redemption_transactions_pay_exactly_once() {
    let (client, worker) = (actor(1), actor(2));
    let (_dir, path) = ledger_with_deposit(&client);
    let (ticket, _) = winning_ticket(&client, &worker.id(), FACE, 10, 2);
    let barrier = Arc::new(Barrier::new(RACERS));
    let outcomes: Vec<Result<Redemption, LedgerError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..RACERS)
            .map(|_| {
                let (path, barrier) = (&path, Arc::clone(&barrier));
                s.spawn(move || {
                    let ledger = open_again(path);
                    barrier.wait();
                    ledger
                        .store
                        .write(|tx| super::super::broker::redeem(tx, &CONFIG, &ticket))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("racer"))
            .collect()
    });
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1);
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Ok(_) | Err(LedgerError::AlreadyRedeemed { .. }))),
        "{outcomes:?}"
    );
    let ledger = open_again(&path);
    assert_eq!(ledger.balance(&worker.id()).expect("balance"), FACE);
    assert_eq!(ledger.supply().expect("supply"), 10_000);
}

/// The same race through group commit, as `Execute` runs it: fifty callers at once, each redeeming one
/// of ten winning tickets (five tries each) with its own nonce. Whatever order the committer takes them
/// in, no ticket is paid twice, and every refusal is a second redemption or a nonce already passed.
#[test]
fn fifty_concurrent_executes_through_group_commit_pay_no_ticket_twice() {
    let (client, worker) = (actor(1), actor(2));
    let (_dir, path) = ledger_with_deposit(&client);
    let ledger = Arc::new(open_again(&path));
    let tickets: Vec<_> = (0..10u64)
        .map(|t| winning_ticket(&client, &worker.id(), FACE / 10, 10, 100 + t))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let outcomes: Vec<_> = runtime.block_on(async {
        let commits = GroupCommit::start(Arc::clone(&ledger));
        let calls = (0..RACERS).map(|i| {
            let commits = commits.clone();
            let (ticket, rand) = tickets[i % 10];
            let request = SignedRequest::sign(&worker, i as u64 + 1, &redeem_op(ticket, rand));
            async move {
                (
                    i % 10,
                    commits
                        .execute(Checked::new(request).expect("signed"))
                        .await,
                )
            }
        });
        futures::future::join_all(calls).await
    });
    let mut paid_tickets = std::collections::HashSet::new();
    for (ticket, outcome) in &outcomes {
        match outcome {
            Ok((Receipt::Redeemed(_), _)) => {
                assert!(paid_tickets.insert(*ticket), "ticket {ticket} paid twice");
            }
            Err(LedgerError::AlreadyRedeemed { .. } | LedgerError::StaleNonce { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(!paid_tickets.is_empty());
    let paid = paid_tickets.len() as u64 * (FACE / 10);
    assert_eq!(ledger.balance(&worker.id()).expect("balance"), paid);
    assert_eq!(
        ledger.sender(&client.id()).expect("s").deposit,
        10_000 - paid
    );
    assert_eq!(ledger.supply().expect("supply"), 10_000);
}

/// Two coordinators over one ledger tick the round clock: only the lease holder advances it; when the
/// holder falls silent past its lease, the other takes over; the old holder then waits its turn.
#[test]
fn the_round_clock_moves_once_per_tick_whichever_coordinator_holds_it() {
    let (a, b) = (actor(7).id(), actor(8).id());
    let place = Place::fresh();
    let on_a = place.open(CONFIG, &genesis(&[]));
    let on_b = open_again(place.at());
    const LEASE: u64 = 30;
    assert_eq!(
        on_a.advance_round_leased(&a, 1_000, LEASE).expect("a"),
        Some(1)
    );
    assert_eq!(
        on_b.advance_round_leased(&b, 1_010, LEASE).expect("b"),
        None
    );
    assert_eq!(
        on_a.advance_round_leased(&a, 1_020, LEASE).expect("a"),
        Some(2)
    );
    assert_eq!(
        on_b.advance_round_leased(&b, 1_049, LEASE).expect("b"),
        None
    );
    assert_eq!(
        on_b.round().expect("round"),
        2,
        "a refused tick changed the round"
    );
    // A's last renewal ran to 1_050; from then B holds the clock.
    assert_eq!(
        on_b.advance_round_leased(&b, 1_050, LEASE).expect("b"),
        Some(3)
    );
    assert_eq!(
        on_a.advance_round_leased(&a, 1_060, LEASE).expect("a"),
        None
    );
    assert_eq!(on_a.round_clock_holder().expect("holder"), Some((b, 1_080)));
    assert_eq!(on_a.round().expect("round"), 3);
}

fn registration(id: PublicId, port: u16, run: i64, started_unix: u64) -> Registration {
    Registration {
        id,
        advertise_addr: format!("http://127.0.0.1:{port}"),
        run,
        started_unix,
    }
}

/// Coordinators on one ledger list each other while they heartbeat; one silent past the bound is no
/// longer listed, and the round clock's holder deletes it once it is silent for long.
#[test]
fn coordinators_list_each_other_until_one_falls_silent() {
    let (a, b) = (actor(7).id(), actor(8).id());
    let place = Place::fresh();
    let on_a = place.open(CONFIG, &genesis(&[]));
    let on_b = open_again(place.at());
    let (me_a, me_b) = (registration(a, 1, 11, 1_000), registration(b, 2, 22, 1_001));
    const SILENT: u64 = 6;
    const FORGET: u64 = 60;
    on_a.coordinator_heartbeat(&me_a, 1_000, SILENT, FORGET)
        .expect("a registers");
    on_b.coordinator_heartbeat(&me_b, 1_001, SILENT, FORGET)
        .expect("b registers");
    let both = on_a.live_coordinators(1_002, SILENT).expect("live");
    assert_eq!(
        both.iter().map(|c| c.id).collect::<Vec<_>>(),
        {
            let mut ids = vec![a, b];
            ids.sort();
            ids
        },
        "{both:?}"
    );
    let entry_b = both.iter().find(|c| c.id == b).expect("b listed");
    assert_eq!(
        (
            entry_b.advertise_addr.as_str(),
            entry_b.started_unix,
            entry_b.last_seen_unix
        ),
        ("http://127.0.0.1:2", 1_001, 1_001)
    );
    assert_eq!(on_b.live_coordinators(1_002, SILENT).expect("live"), both);

    // A holds the round clock and keeps beating; B falls silent at 1_001.
    on_a.advance_round_leased(&a, 1_005, 30).expect("clock");
    on_a.coordinator_heartbeat(&me_a, 1_008, SILENT, FORGET)
        .expect("a beats");
    let ids = |l: Vec<CoordinatorEntry>| l.into_iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(
        ids(on_b.live_coordinators(1_008, SILENT).expect("live")),
        vec![a]
    );
    // Still a row (not yet forgotten): a fresh run of B's key must wait for it to go silent.
    assert_eq!(
        on_a.coordinator_seen(&b).expect("seen"),
        Some((22, "http://127.0.0.1:2".to_owned(), 1_001))
    );
    // Past the forget bound the clock's holder deletes it.
    on_a.coordinator_heartbeat(&me_a, 1_062, SILENT, FORGET)
        .expect("a beats");
    assert_eq!(on_a.coordinator_seen(&b).expect("seen"), None);
    // A clean stop leaves at once.
    on_a.coordinator_leave(&me_a).expect("leave");
    assert!(
        on_b.live_coordinators(1_062, SILENT)
            .expect("live")
            .is_empty()
    );
}

/// A second run of one key is refused while the first still heartbeats, and changes nothing; once the
/// first is silent past the bound, the second takes the row over and the first is refused in turn.
#[test]
fn a_second_run_of_one_coordinator_key_is_refused_while_the_first_beats() {
    let a = actor(7).id();
    let place = Place::fresh();
    let first = place.open(CONFIG, &genesis(&[]));
    let second = open_again(place.at());
    const SILENT: u64 = 6;
    let run_1 = registration(a, 1, 1, 1_000);
    let run_2 = registration(a, 2, 2, 1_004);
    first
        .coordinator_heartbeat(&run_1, 1_003, SILENT, 60)
        .expect("first");
    match second.coordinator_heartbeat(&run_2, 1_004, SILENT, 60) {
        Err(LedgerError::CoordinatorKeyInUse {
            id,
            advertise_addr,
            last_seen_unix,
        }) => {
            assert_eq!(
                (id, advertise_addr.as_str(), last_seen_unix),
                (a, "http://127.0.0.1:1", 1_003)
            );
        }
        other => panic!("second run registered: {other:?}"),
    }
    assert_eq!(
        first.coordinator_seen(&a).expect("seen"),
        Some((1, "http://127.0.0.1:1".to_owned(), 1_003)),
        "a refused registration changed the row"
    );
    // The first stays silent from 1_003: at 1_010 it is past the bound.
    second
        .coordinator_heartbeat(&run_2, 1_010, SILENT, 60)
        .expect("takes over");
    assert!(matches!(
        first.coordinator_heartbeat(&run_1, 1_011, SILENT, 60),
        Err(LedgerError::CoordinatorKeyInUse { .. })
    ));
    let live = first.live_coordinators(1_011, SILENT).expect("live");
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].advertise_addr, "http://127.0.0.1:2");
    // The first run's leaving does not delete the second's row.
    first.coordinator_leave(&run_1).expect("leave");
    assert_eq!(
        first.live_coordinators(1_011, SILENT).expect("live").len(),
        1
    );
}
