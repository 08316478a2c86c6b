//! Micropayment costs: a client signing tickets, a worker validating them (one core), and the ledger
//! redeeming winners on disk (WAL, `synchronous=FULL`, one fsync'd transaction each, or 64 to a
//! transaction as group commit does under load) and in memory.
//!
//! Every measured loop gets its own fresh tickets, so nothing is refused as a replay.
//!
//! Under `scripts/with-postgres` (`DUALRIG_TEST_DATABASE_URL` set) the same redemptions also run on
//! PostgreSQL, side by side with SQLite in one run: `DUALRIG_PG_FSYNC=on scripts/with-postgres cargo
//! bench -p dualrig-benches --bench tickets -- ledger/` keeps the server's fsync on, as SQLite's is.
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dualrig_coordinator::ledger::{
    Genesis, GenesisAccount, Ledger, LedgerConfig, Operation, SignedRequest,
};
use dualrig_proto::identity::Identity;
use dualrig_proto::ticket::{
    SignedTicket, TicketParams, TicketPayer, TicketTerms, TicketValidator, recipient_rand,
    win_prob_one_in,
};

const SECRET: [u8; 32] = [0x5a; 32];

fn terms(win_prob: u64) -> TicketTerms {
    TicketTerms {
        face_value: 1_000_000,
        win_prob,
        expiration_round: u64::MAX,
        price_per_unit: 1,
        price_per_byte: 0,
    }
}

fn tickets(c: &mut Criterion) {
    let client = Identity::from_secret([1; 32]);
    let worker = Identity::from_secret([2; 32]);
    let mut group = c.benchmark_group("tickets");
    group.throughput(Throughput::Elements(1));

    let params = TicketParams::derive(worker.id(), &SECRET, [3; 32], terms(win_prob_one_in(50)));
    let mut payer = TicketPayer::starting_at(0);
    group.bench_function("sign", |b| {
        b.iter(|| payer.pay(&client, &params, 1).expect("pay"))
    });

    // win_prob 0 keeps the params live through the loop; the win draw is computed all the same.
    group.bench_function("validate", |b| {
        b.iter_custom(|iters| {
            let mut validator = TicketValidator::new(worker.id(), SECRET, 0);
            let params = validator.issue(terms(0), [4; 32]).expect("issue");
            let batch: Vec<SignedTicket> = (0..iters)
                .map(|n| SignedTicket::sign(params.ticket(client.id(), n), &client))
                .collect();
            let start = Instant::now();
            for t in &batch {
                validator
                    .validate(std::slice::from_ref(t), 0)
                    .expect("valid");
            }
            start.elapsed()
        })
    });

    // A whole payment of 64 tickets at once, as a worker checks a job's, per ticket.
    group.bench_function("validate_payment_of_64", |b| {
        b.iter_custom(|iters| {
            let mut validator = TicketValidator::new(worker.id(), SECRET, 0);
            let params = validator.issue(terms(0), [5; 32]).expect("issue");
            let payments: Vec<Vec<SignedTicket>> = (0..iters.div_ceil(64))
                .map(|p| {
                    (0..64)
                        .map(|n| {
                            SignedTicket::sign(params.ticket(client.id(), p * 64 + n), &client)
                        })
                        .collect()
                })
                .collect();
            let start = Instant::now();
            for payment in &payments {
                validator.validate(payment, 0).expect("valid");
            }
            start
                .elapsed()
                .mul_f64(iters as f64 / (payments.len() * 64) as f64)
        })
    });

    // The signature check alone, key decompressed once: the floor under `validate`.
    group.bench_function("verify_strict", |b| {
        let params = TicketParams::derive(worker.id(), &SECRET, [6; 32], terms(0));
        let signed = SignedTicket::sign(params.ticket(client.id(), 1), &client);
        let key = signed.sender_key().expect("key");
        b.iter(|| signed.verify_with(&key).expect("valid"))
    });
    group.finish();
}

const DEPOSIT: u64 = 1 << 60;

/// Where a bench ledger lives.
enum At<'a> {
    File(&'a std::path::Path),
    Memory,
    Postgres(&'a str),
}

fn open(at: At<'_>, client: &Identity) -> Ledger {
    let genesis = Genesis::new(vec![GenesisAccount {
        id: client.id(),
        balance: DEPOSIT,
    }])
    .expect("genesis");
    let config = LedgerConfig::default();
    let ledger = match at {
        At::File(p) => Ledger::open(p, config, &genesis),
        At::Memory => Ledger::open_in_memory(config, &genesis),
        At::Postgres(url) => {
            let schema = dualrig_coordinator::db::postgres::fresh_schema(url, "bench")
                .expect("bench schema");
            Ledger::open_postgres(&schema, config, &genesis)
        }
    }
    .expect("open");
    ledger
        .execute(&SignedRequest::sign(
            client,
            1,
            &Operation::Deposit { amount: DEPOSIT },
        ))
        .expect("deposit");
    ledger
}

/// `count` winning redemption requests from `worker`, nonces from `first_nonce` on.
fn winners(
    client: &Identity,
    worker: &Identity,
    tag: u64,
    first_nonce: u64,
    count: u64,
) -> Vec<SignedRequest> {
    (0..count)
        .map(|n| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&tag.to_le_bytes());
            seed[8..16].copy_from_slice(&n.to_le_bytes());
            let params = TicketParams::derive(worker.id(), &SECRET, seed, terms(u64::MAX));
            let ticket = SignedTicket::sign(params.ticket(client.id(), n), client);
            SignedRequest::sign(
                worker,
                first_nonce + n,
                &Operation::RedeemTicket {
                    ticket,
                    recipient_rand: recipient_rand(&SECRET, &seed),
                },
            )
        })
        .collect()
}

fn redemptions(c: &mut Criterion) {
    let client = Identity::from_secret([1; 32]);
    let worker = Identity::from_secret([2; 32]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group("ledger");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));

    let postgres = std::env::var("DUALRIG_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let file = dir.path().join("ledger.db");
    let mut places = vec![
        ("redeem_on_disk", At::File(&file)),
        ("redeem_in_memory", At::Memory),
    ];
    if let Some(url) = &postgres {
        places.push(("redeem_postgres", At::Postgres(url)));
    }
    for (name, at) in places {
        let counts_rows = !matches!(at, At::Memory);
        let ledger = open(at, &client);
        let mut tag = 0u64;
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                tag += 1;
                let first = ledger.last_nonce(&worker.id()).expect("nonce") + 1;
                let batch = winners(&client, &worker, tag, first, iters);
                let start = Instant::now();
                for request in &batch {
                    ledger.execute(request).expect("redeem");
                }
                start.elapsed()
            })
        });
        if counts_rows {
            let before = ledger.rows_written();
            let first = ledger.last_nonce(&worker.id()).expect("nonce") + 1;
            for request in winners(&client, &worker, u64::MAX, first, 100) {
                ledger.execute(&request).expect("redeem");
            }
            eprintln!(
                "ledger ({name}): {:.1} rows written per redemption (one transaction each)",
                (ledger.rows_written() - before) as f64 / 100.0
            );
        }
    }
    // Group commit, as `Execute` runs under load: 64 redemptions to a transaction, one fsync for all.
    let grouped = dir.path().join("grouped.db");
    let mut places = vec![("redeem_on_disk_grouped_64", At::File(&grouped))];
    if let Some(url) = &postgres {
        places.push(("redeem_postgres_grouped_64", At::Postgres(url)));
    }
    for (n, (name, at)) in places.into_iter().enumerate() {
        grouped_redemptions(
            &mut group,
            name,
            open(at, &client),
            &client,
            &worker,
            n as u64,
        );
    }
    group.finish();
}

fn grouped_redemptions(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    ledger: Ledger,
    client: &Identity,
    worker: &Identity,
    n: u64,
) {
    let mut tag = (1 << 32) + (n << 24);
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            tag += 1;
            let first = ledger.last_nonce(&worker.id()).expect("nonce") + 1;
            let batch = winners(client, worker, tag, first, iters);
            let start = Instant::now();
            for group in batch.chunks(64) {
                for outcome in ledger.execute_batch(group).expect("commits") {
                    outcome.expect("redeem");
                }
            }
            start.elapsed()
        })
    });
}

criterion_group!(benches, tickets, redemptions);
criterion_main!(benches);
