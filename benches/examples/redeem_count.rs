//! A fixed number of winning redemptions on an in-memory ledger, for instruction counts under
//! `valgrind --tool=callgrind` (wall time on a shared machine is too noisy to compare builds by):
//! `cargo build --release -p dualrig-benches --example redeem_count &&
//! valgrind --tool=callgrind target/release/examples/redeem_count 500`.
use dualrig_coordinator::ledger::{
    Genesis, GenesisAccount, Ledger, LedgerConfig, Operation, SignedRequest,
};
use dualrig_proto::identity::Identity;
use dualrig_proto::ticket::{SignedTicket, TicketParams, TicketTerms, recipient_rand};

const SECRET: [u8; 32] = [0x5a; 32];

fn main() {
    let count: u64 = std::env::args()
        .nth(1)
        .map_or(500, |n| n.parse().expect("a count"));
    let client = Identity::from_secret([1; 32]);
    let worker = Identity::from_secret([2; 32]);
    let genesis = Genesis::new(vec![GenesisAccount {
        id: client.id(),
        balance: 1 << 60,
    }])
    .expect("genesis");
    let ledger = Ledger::open_in_memory(LedgerConfig::default(), &genesis).expect("open");
    ledger
        .execute(&SignedRequest::sign(
            &client,
            1,
            &Operation::Deposit { amount: 1 << 60 },
        ))
        .expect("deposit");
    let requests: Vec<SignedRequest> = (0..count)
        .map(|n| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&n.to_le_bytes());
            let terms = TicketTerms {
                face_value: 1_000_000,
                win_prob: u64::MAX,
                expiration_round: u64::MAX,
                price_per_unit: 1,
                price_per_byte: 0,
            };
            let params = TicketParams::derive(worker.id(), &SECRET, seed, terms);
            let ticket = SignedTicket::sign(params.ticket(client.id(), n), &client);
            SignedRequest::sign(
                &worker,
                n + 1,
                &Operation::RedeemTicket {
                    ticket,
                    recipient_rand: recipient_rand(&SECRET, &seed),
                },
            )
        })
        .collect();
    for request in &requests {
        ledger.execute(request).expect("redeem");
    }
    println!("{count} redemptions");
}
