//! The service infrastructure pool through the real gRPC: a client buys mining weight for a worker,
//! `SipStatus` reports the purchase, the coordinator's draw picks that worker in proportion to stake
//! plus weight, and a throwaway key's purchases are refused with the ledger unchanged.

use dualrig_coordinator::ledger::{Operation, SipRules};
use dualrig_proto::identity::{Identity, PublicId};
use dualrig_proto::profile::Profile;
use dualrig_proto::v1::QuoteRequest;
use tonic::Code;

use crate::support::{RunningCoordinator, RunningWorker, wait_for_workers, write_genesis};

const TOKEN: u64 = 1_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bought_weight_is_in_the_sip_and_wins_its_worker_more_draws() {
    let dir = tempfile::tempdir().expect("tempdir");
    let buyer = Identity::from_secret([41; 32]);
    let throwaway = Identity::from_secret([42; 32]);
    let genesis = dir.path().join("genesis.toml");
    write_genesis(
        &genesis,
        &[(buyer.id(), 1_000 * TOKEN), (throwaway.id(), 10 * TOKEN)],
    );
    let coordinator = RunningCoordinator::start_at(&dir.path().join("data"), |c| {
        c.genesis = Some(genesis.clone());
        c.min_stake = TOKEN;
        c.sip = SipRules::DEFAULT;
    })
    .await;
    let client = coordinator.client().await;
    let (a, b) = (
        RunningWorker::start(&coordinator.url).await,
        RunningWorker::start(&coordinator.url).await,
    );
    wait_for_workers(&client, 2).await;
    for w in [&a, &b] {
        let key = Identity::load_or_create(&w.key_path()).expect("worker key");
        client
            .execute(
                &buyer,
                Operation::Transfer {
                    to: w.id,
                    amount: 2 * TOKEN,
                },
            )
            .await
            .expect("fund the worker");
        client
            .execute(&key, Operation::Bond { amount: TOKEN })
            .await
            .expect("bond");
    }

    // The quote is the price the purchase gets, so it passes as the limit.
    let quoted = client.sip_status(0, 3 * TOKEN).await.expect("status");
    assert!(quoted.quote_weight > 0, "{quoted:?}");
    let receipt = client
        .execute(
            &buyer,
            Operation::BuyWeight {
                worker: b.id,
                amount: 3 * TOKEN,
                max_price_ppm: quoted.quote_price_ppm,
            },
        )
        .await
        .expect("buy weight");
    let weight = receipt.amount;
    assert_eq!(weight, quoted.quote_weight);
    let status = client.sip_status(5, 0).await.expect("status");
    assert_eq!(status.balance, 3 * TOKEN);
    assert_eq!(status.weight_outstanding, weight);
    let purchases: Vec<_> = status
        .recent
        .iter()
        .filter(|f| f.source == "purchases")
        .collect();
    assert_eq!(purchases.len(), 1, "{status:?}");
    assert_eq!(
        (purchases[0].round, purchases[0].amount_in),
        (receipt.round, 3 * TOKEN)
    );
    let total = |source: &str| {
        status
            .totals
            .iter()
            .find(|t| t.source == source)
            .map(|t| t.amount_in)
    };
    assert_eq!(total("purchases"), Some(3 * TOKEN));
    assert_eq!(total("fees"), Some(0));
    assert_eq!(
        client.account(b.id).await.expect("account").mining_weight,
        weight
    );

    // b weighs its stake plus its weight (k = 1), a its stake alone.
    let expected_b = (TOKEN + weight) as f64 / (2 * TOKEN + weight) as f64;
    let profiles = Profile::parse_list("240p").expect("profile");
    const QUOTES: u32 = 400;
    let mut to_b = 0u32;
    for _ in 0..QUOTES {
        let quote = client
            .api()
            .quote(QuoteRequest {
                profiles: profiles.iter().map(|p| p.to_wire()).collect(),
                segment_size: 1_000,
            })
            .await
            .expect("quote")
            .into_inner();
        let drawn = PublicId::from_slice("worker", &quote.worker_id).expect("worker id");
        assert!(drawn == a.id || drawn == b.id, "{drawn}");
        to_b += u32::from(drawn == b.id);
    }
    // σ = √(400 · p(1 − p)) ≈ 8.3 draws; five of them either way.
    let sigma = (f64::from(QUOTES) * expected_b * (1.0 - expected_b)).sqrt();
    let mean = f64::from(QUOTES) * expected_b;
    assert!(
        (f64::from(to_b) - mean).abs() < 5.0 * sigma,
        "b drawn {to_b} of {QUOTES}; stake plus weight expects {mean:.0}"
    );

    // A throwaway key: weight for itself (no stake), a price limit below the curve's, a worker id
    // that is no key, and a status asking for too much. Each refused, the ledger as it was.
    // y = 2 is not on the curve.
    let mut not_a_key = PublicId([0; 32]);
    not_a_key.0[0] = 2;
    let before = coordinator.ledger.snapshot().expect("snapshot");
    let refusals = [
        (
            Operation::BuyWeight {
                worker: throwaway.id(),
                amount: TOKEN,
                max_price_ppm: u64::MAX,
            },
            Code::FailedPrecondition,
            "bond stake on it first",
        ),
        (
            Operation::BuyWeight {
                worker: a.id,
                amount: TOKEN,
                max_price_ppm: 1,
            },
            Code::FailedPrecondition,
            "raise --max-price",
        ),
        (
            Operation::BuyWeight {
                worker: not_a_key,
                amount: TOKEN,
                max_price_ppm: u64::MAX,
            },
            Code::InvalidArgument,
            "not a valid ed25519 public key",
        ),
        (
            Operation::BuyWeight {
                worker: a.id,
                amount: 0,
                max_price_ppm: u64::MAX,
            },
            Code::InvalidArgument,
            "zero",
        ),
        (
            Operation::BuyWeight {
                worker: a.id,
                amount: 11 * TOKEN,
                max_price_ppm: u64::MAX,
            },
            Code::FailedPrecondition,
            "the operation needs",
        ),
    ];
    for (operation, code, says) in refusals {
        let shown = format!("{operation:?}");
        let err = client
            .execute(&throwaway, operation)
            .await
            .expect_err("refused");
        assert_eq!(err.code(), Some(code), "{shown}: {err}");
        assert!(err.to_string().contains(says), "{shown}: {err}");
    }
    let too_many = client
        .sip_status(1_001, 0)
        .await
        .expect_err("too many rounds");
    assert_eq!(too_many.code(), Some(Code::InvalidArgument), "{too_many}");
    assert_eq!(coordinator.ledger.snapshot().expect("snapshot"), before);
    a.kill().await;
    b.kill().await;
    coordinator.stop().await;
}
