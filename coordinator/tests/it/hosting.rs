//! Hosting rewards through real challenge rounds (PROTOCOL §6.9): workers earn in proportion to the
//! bytes they hold and prove, a worker that deleted half its data earns half and is slashed, claims
//! earn nothing, extra copies past a blob's replicas earn nothing, and a copy alone on its network
//! earns the diversity boost.

use std::collections::HashMap;
use std::io::Read;
use std::time::Duration;

use dualrig_coordinator::ledger::{HELD_BACK_STEPS, HostingRules, Operation, SignedRequest};
use dualrig_proto::identity::{Identity, PublicId};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::support::{RunningCoordinator, RunningWorker, write_genesis};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const ROUNDS: usize = 200;
const MINT: u64 = 1_000_000;
const CHALLENGE_BLOBS: usize = 32;

/// Blob sizes from `rng`, 1 to 7 MiB each, adding up to exactly `total`.
fn sizes(rng: &mut StdRng, total: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut left = total;
    while left > 0 {
        let size = rng.gen_range(MIB..=7 * MIB).min(left);
        out.push(size);
        left -= size;
    }
    out
}

/// Puts blobs of `sizes` (bytes from blake3's XOF keyed by `tag`) straight into `worker`'s store and
/// records each in the coordinator's index as a verified copy of a blob kept once, as a Put that
/// placed it there would.
fn host(
    coordinator: &RunningCoordinator,
    worker: &RunningWorker,
    tag: u8,
    sizes: &[u64],
) -> Vec<([u8; 32], u64)> {
    let index = coordinator.storage.index();
    sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let mut key = [tag; 32];
            key[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let bytes = blake3::Hasher::new_keyed(&key).finalize_xof().take(size);
            let info = worker.store.put_reader(bytes, size).expect("store");
            let root = *info.root.as_bytes();
            index.add_blob(&root, size, 1).expect("index blob");
            index.add_holder(&root, &worker.id).expect("index holder");
            (root, size)
        })
        .collect()
}

/// What the payouts of the coordinator's ledger gave `worker`, summed over its statements.
fn rewards(coordinator: &RunningCoordinator, worker: &PublicId) -> u64 {
    coordinator
        .ledger
        .statements(worker, None, usize::MAX)
        .expect("statements")
        .iter()
        .map(|s| s.reward)
        .sum()
}

/// The spread of `wanted / base` reward ratios over [`ROUNDS`] payouts under the coordinator's sampling
/// (up to [`CHALLENGE_BLOBS`] of each worker's blobs a round, each passed blob credited `size × held /
/// sampled`, a blob found missing struck from then on), from 2,000 simulated runs: (mean, σ).
fn simulated_ratio(holdings: &[Vec<(u64, bool)>], wanted: usize, base: usize) -> (f64, f64) {
    let mut rng = StdRng::seed_from_u64(7);
    let runs = 2_000;
    let ratios: Vec<f64> = (0..runs)
        .map(|_| {
            let mut held: Vec<Vec<(u64, bool)>> = holdings.to_vec();
            let mut totals = vec![0f64; held.len()];
            for _ in 0..ROUNDS {
                let mut credits = vec![0f64; held.len()];
                for (w, blobs) in held.iter_mut().enumerate() {
                    let n = blobs.len();
                    let s = n.min(CHALLENGE_BLOBS);
                    blobs.shuffle(&mut rng);
                    let passed: u64 = blobs[..s].iter().filter(|b| b.1).map(|b| b.0).sum();
                    credits[w] = passed as f64 * n as f64 / s as f64;
                    // Blobs that failed are struck from the index.
                    let (sampled, rest) = blobs.split_at(s);
                    let mut kept: Vec<(u64, bool)> =
                        sampled.iter().filter(|b| b.1).copied().collect();
                    kept.extend_from_slice(rest);
                    *blobs = kept;
                }
                let total: f64 = credits.iter().sum();
                for (t, c) in totals.iter_mut().zip(&credits) {
                    *t += c / total;
                }
            }
            totals[wanted] / totals[base]
        })
        .collect();
    let mean = ratios.iter().sum::<f64>() / runs as f64;
    let var = ratios.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (runs - 1) as f64;
    (mean, var.sqrt())
}

fn test_rules() -> HostingRules {
    HostingRules {
        mint_per_round: MINT,
        held_back_ppm: [0; HELD_BACK_STEPS],
        ..HostingRules::DEFAULT
    }
}

/// Two honest workers holding 1 GiB and 2 GiB of blobs of a few MiB earn in the ratio 2 within 5σ of the
/// sampling noise over 200 rounds; a worker that deleted half of its 1 GiB earns half of what the
/// 1 GiB worker does and is slashed for what it lost; a worker that only claims blobs earns nothing;
/// a second copy of a blob kept once earns nothing. Every payout reproduces from the ledger, and the
/// supply is the genesis plus what was minted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rewards_follow_the_bytes_proven_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let funder = Identity::from_secret([41; 32]);
    let genesis = dir.path().join("genesis.toml");
    write_genesis(&genesis, &[(funder.id(), 1_000 * MINT)]);
    let coordinator = RunningCoordinator::start(|c| {
        c.genesis = Some(genesis.clone());
        c.hosting = test_rules();
        // Every copy here is alone on its network but the copier's: no boost, or the first worker's
        // copies shared with the copier would weigh less than the rest (the boost has its own test).
        c.diversity_boost_ppm = 0;
        // The test drives rounds and challenges itself.
        c.round = Duration::from_secs(3600);
        c.challenge_interval = Duration::from_secs(3600);
        c.challenge_deadline = Duration::from_secs(3);
        c.challenge_blobs = CHALLENGE_BLOBS as u32;
    })
    .await;
    let big_store = |c: &mut dualrig_worker::config::WorkerConfig| c.storage_capacity = 4 * GIB;
    let one = RunningWorker::start_with(&coordinator.url, big_store).await;
    let two = RunningWorker::start_with(&coordinator.url, big_store).await;
    let deleter = RunningWorker::start_with(&coordinator.url, big_store).await;
    let copier = RunningWorker::start_with(&coordinator.url, big_store).await;

    let started = std::time::Instant::now();
    let mut rng = StdRng::seed_from_u64(2026);
    let one_sizes = sizes(&mut rng, GIB);
    let two_sizes = sizes(&mut rng, 2 * GIB);
    let deleter_sizes = sizes(&mut rng, GIB);
    let one_blobs = tokio::task::block_in_place(|| host(&coordinator, &one, 1, &one_sizes));
    tokio::task::block_in_place(|| host(&coordinator, &two, 2, &two_sizes));
    let deleter_blobs =
        tokio::task::block_in_place(|| host(&coordinator, &deleter, 3, &deleter_sizes));
    // The copier holds real copies of 64 of the first worker's blobs, verified after it: past the one
    // copy those blobs are kept on.
    let index = coordinator.storage.index();
    for (i, (root, size)) in one_blobs.iter().take(64).enumerate() {
        let mut key = [1u8; 32];
        key[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let bytes = blake3::Hasher::new_keyed(&key).finalize_xof().take(*size);
        let info = copier.store.put_reader(bytes, *size).expect("store");
        assert_eq!(info.root.as_bytes(), root);
        index.add_holder(root, &copier.id).expect("holder");
    }
    // The deleter loses every other blob behind its own back: it still believes it holds them.
    let mut deleter_holdings = Vec::new();
    for (i, (root, size)) in deleter_blobs.iter().enumerate() {
        let keep = i % 2 == 0;
        if !keep {
            std::fs::remove_file(deleter.blob_path(&blake3::Hash::from_bytes(*root)))
                .expect("delete");
        }
        deleter_holdings.push((*size, keep));
    }
    let deleted: u64 = deleter_holdings.iter().filter(|b| !b.1).map(|b| b.0).sum();
    assert!(deleted > GIB / 3 && deleted < 2 * GIB / 3, "{deleted}");

    // The deleter has stake to lose.
    let deleter_key = Identity::load_or_create(&deleter.key_path()).expect("deleter key");
    assert_eq!(deleter_key.id(), deleter.id);
    let fund = SignedRequest::sign(
        &funder,
        1,
        &Operation::Transfer {
            to: deleter.id,
            amount: 100 * MINT,
        },
    );
    coordinator.ledger.execute(&fund).expect("fund");
    let bond = SignedRequest::sign(&deleter_key, 1, &Operation::Bond { amount: 100 * MINT });
    coordinator.ledger.execute(&bond).expect("bond");

    // A claimer reports the first worker's blobs and blobs nobody put, holding none of them.
    let mut claims: Vec<([u8; 32], u64)> = one_blobs.iter().take(16).copied().collect();
    claims.extend((0..16u8).map(|i| ([i + 100; 32], MIB)));
    let claimer = crate::attacks::claim_and_stay(&coordinator.url, &claims).await;

    eprintln!("stores filled in {:?}", started.elapsed());
    let genesis_supply = coordinator.ledger.supply().expect("supply");
    let first_round = coordinator.ledger.round().expect("round");
    for _ in 0..ROUNDS {
        coordinator.ledger.advance_round().expect("advance");
        coordinator.storage.challenge_round().await;
    }

    eprintln!("{ROUNDS} rounds in {:?}", started.elapsed());
    let one_reward = rewards(&coordinator, &one.id);
    let two_reward = rewards(&coordinator, &two.id);
    let deleter_reward = rewards(&coordinator, &deleter.id);
    let paid = one_reward + two_reward + deleter_reward;
    // Every round minted once, for one round, and split all of it but the dust.
    let (_, minted) = coordinator.ledger.genesis_and_minted().expect("minted");
    assert_eq!(minted, ROUNDS as u64 * MINT);
    assert!(
        minted - paid <= 3 * ROUNDS as u64,
        "{minted} minted, {paid} paid"
    );
    assert_eq!(
        coordinator.ledger.supply().expect("supply"),
        genesis_supply + u128::from(minted)
    );
    for round in first_round + 1..=first_round + ROUNDS as u64 {
        assert!(
            coordinator
                .ledger
                .recheck_payout(round)
                .expect("recheck")
                .is_empty(),
            "round {round}"
        );
    }

    let holdings: Vec<Vec<(u64, bool)>> = vec![
        one_sizes.iter().map(|s| (*s, true)).collect(),
        two_sizes.iter().map(|s| (*s, true)).collect(),
        deleter_holdings,
    ];
    let (mean, sigma) = simulated_ratio(&holdings, 1, 0);
    let ratio = two_reward as f64 / one_reward as f64;
    eprintln!("2 GiB / 1 GiB rewards: {ratio:.5} (simulated {mean:.5} ± {sigma:.5})");
    assert!(
        (mean - 2.0).abs() < sigma,
        "the sampling itself is unbiased"
    );
    assert!(
        (ratio - 2.0).abs() < 5.0 * sigma,
        "ratio {ratio} is more than 5σ ({sigma}) from 2"
    );

    let kept_share = (GIB - deleted) as f64 / GIB as f64;
    let (mean, sigma) = simulated_ratio(&holdings, 2, 0);
    let ratio = deleter_reward as f64 / one_reward as f64;
    eprintln!(
        "deleter / 1 GiB rewards: {ratio:.5} (kept {kept_share:.5}, simulated {mean:.5} ± {sigma:.5})"
    );
    assert!(
        (ratio - kept_share).abs() < 5.0 * sigma,
        "the deleter earned {ratio} of an honest 1 GiB worker, not its kept share {kept_share}"
    );
    let slashes = coordinator.ledger.slashes(&deleter.id).expect("slashes");
    assert!(!slashes.is_empty(), "the deleter is slashed");
    let slashed: u64 = slashes.iter().map(|s| s.amount).sum();
    let left = coordinator.ledger.total_stake(&deleter.id).expect("stake");
    assert_eq!(
        left + slashed,
        100 * MINT,
        "what it lost is what the slashes took"
    );
    eprintln!("deleter: earned {deleter_reward}, slashed {slashed}");

    // Claims and surplus copies earn nothing.
    assert!(
        coordinator
            .storage
            .index()
            .faults()
            .expect("faults")
            .iter()
            .any(|f| f.worker == claimer.id),
        "the claimer failed its challenge"
    );
    assert_eq!(rewards(&coordinator, &claimer.id), 0);
    assert_eq!(rewards(&coordinator, &copier.id), 0);
    let copier_statements = coordinator
        .ledger
        .statements(&copier.id, None, usize::MAX)
        .expect("statements");
    assert!(copier_statements.iter().all(|s| s.credited == 0));

    drop(claimer);
    for w in [one, two, deleter, copier] {
        w.kill().await;
    }
    coordinator.stop().await;
}

/// Copies on one /24 earn no diversity boost; a copy on another /24 does; a Put places its copies on
/// distinct networks first. Workers connect from 127.0.0.1 and 127.0.0.2 (one /24) and 127.0.1.1
/// (another).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_copy_alone_on_its_network_earns_the_diversity_boost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let coordinator = RunningCoordinator::start(|c| {
        c.hosting = test_rules();
        c.diversity_boost_ppm = 500_000;
        c.round = Duration::from_secs(3600);
        c.challenge_interval = Duration::from_secs(3600);
    })
    .await;
    let from = |ip: &str| {
        let ip: std::net::IpAddr = ip.parse().expect("ip");
        move |c: &mut dualrig_worker::config::WorkerConfig| c.source_addr = Some(ip)
    };
    let near_a = RunningWorker::start_with(&coordinator.url, from("127.0.0.1")).await;
    let near_b = RunningWorker::start_with(&coordinator.url, from("127.0.0.2")).await;
    let far = RunningWorker::start_with(&coordinator.url, from("127.0.1.1")).await;
    let client = coordinator.client().await;
    crate::support::wait_for_workers(&client, 3).await;

    // Puts of two copies: one always lands on the far network.
    let mut roots = Vec::new();
    for i in 0..6u32 {
        let bytes: Vec<u8> = (0..100_000u32).map(|j| (j * 7 + i * 31) as u8).collect();
        let root = *blake3::hash(&bytes).as_bytes();
        let put = crate::support::put_bytes(&client, dir.path(), &bytes, 2).await;
        assert_eq!(put.root.as_bytes(), &root);
        let holders = coordinator
            .storage
            .index()
            .blob(&root)
            .expect("index")
            .expect("blob")
            .holders;
        assert_eq!(holders.len(), 2);
        assert!(
            holders.contains(&far.id),
            "blob {i} has no copy off 127.0.0.0/24"
        );
        roots.push(root);
    }

    // One blob on all three: the two near copies share a /24, the far one is alone on its own.
    let bytes: Vec<u8> = (0..300_000u32).map(|j| (j / 3) as u8).collect();
    let put = crate::support::put_bytes(&client, dir.path(), &bytes, 3).await;
    let size = bytes.len() as u64;
    let index = coordinator.storage.index();
    for root in &roots {
        for w in [&near_a.id, &near_b.id, &far.id] {
            index.remove_holder(root, w).expect("drop");
        }
    }
    let round = coordinator.ledger.advance_round().expect("advance");
    coordinator.storage.challenge_round().await;
    let credited = |w: &PublicId| {
        coordinator
            .ledger
            .statements(w, Some(round - 1), 1)
            .expect("statements")
            .first()
            .map(|s| (s.proven_bytes, s.credited))
    };
    let _ = put;
    assert_eq!(credited(&near_a.id), Some((size, size)));
    assert_eq!(credited(&near_b.id), Some((size, size)));
    assert_eq!(credited(&far.id), Some((size, size + size / 2)));
    let shares: HashMap<PublicId, u64> = [&near_a.id, &near_b.id, &far.id]
        .into_iter()
        .map(|w| (*w, rewards(&coordinator, w)))
        .collect();
    // 1 : 1 : 1.5 of the round's mint.
    assert_eq!(shares[&far.id], MINT * 3 / 7);
    assert_eq!(shares[&near_a.id], MINT * 2 / 7);

    // The far worker's own statement, as `dualrig-worker earnings --json` prints it.
    let out = std::process::Command::new(crate::support::workspace_binary("dualrig-worker"))
        .args(["earnings", "--json", "--rounds", "5", "--coordinator"])
        .arg(&coordinator.url)
        .arg("--data-dir")
        .arg(far.key_path().parent().expect("data dir"))
        .output()
        .expect("run dualrig-worker earnings");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["worker"], far.id.to_string());
    let statement = &json["statements"][0];
    assert_eq!(statement["round"], round);
    assert_eq!(statement["proven_bytes"], size);
    assert_eq!(statement["credited_bytes"], size + size / 2);
    assert_eq!(statement["reward"], MINT * 3 / 7);
    assert_eq!(statement["paid"], MINT * 3 / 7);
    assert_eq!(statement["payout"]["minted"], MINT);
    assert_eq!(statement["payout"]["credited_bytes"], 3 * size + size / 2);
    let table = std::process::Command::new(crate::support::workspace_binary("dualrig-worker"))
        .args(["earnings", "--coordinator"])
        .arg(&coordinator.url)
        .arg("--data-dir")
        .arg(far.key_path().parent().expect("data dir"))
        .output()
        .expect("run dualrig-worker earnings");
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("paid in these rounds: 0.428571"), "{table}");

    for w in [near_a, near_b, far] {
        w.kill().await;
    }
    coordinator.stop().await;
}

/// `ListStatements` refuses what it cannot read with `INVALID_ARGUMENT` naming it, and answers an
/// unknown worker with an empty list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_refuse_bad_requests_and_know_nobody_they_never_paid() {
    use dualrig_proto::v1::ListStatementsRequest;
    use dualrig_proto::v1::coordinator_client::CoordinatorClient;

    let coordinator = RunningCoordinator::start(|_| {}).await;
    let mut api = CoordinatorClient::connect(coordinator.url.clone())
        .await
        .expect("connect");
    let nobody = Identity::from_secret([9; 32]).id();
    let ask = |worker: Vec<u8>, page_token: Vec<u8>| ListStatementsRequest {
        worker,
        rounds: 0,
        page_token,
        page_size: 0,
    };
    for (request, names) in [
        (ask(vec![1; 31], vec![]), "worker"),
        (ask(vec![], vec![]), "worker"),
        (ask(nobody.as_bytes().to_vec(), vec![0; 5]), "token"),
        (ask(nobody.as_bytes().to_vec(), vec![0; 33]), "token"),
    ] {
        let status = api.list_statements(request).await.expect_err("refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(names), "{}", status.message());
    }
    let empty = api
        .list_statements(ask(nobody.as_bytes().to_vec(), vec![]))
        .await
        .expect("list")
        .into_inner();
    assert!(empty.statements.is_empty() && empty.next_page_token.is_empty());
    assert_eq!(empty.held_back, 0);
    coordinator.stop().await;
}

/// The real worker binary's `host ROOT`: a worker pulls a public blob of its own choosing from its
/// holder, verified, and becomes a verified holder by passing a challenge. A copy beyond the blob's
/// replicas earns nothing, so piling onto a blob pays nobody; once the placed copy's worker is gone,
/// the chosen copy is the one kept and it earns. A root that is not 64 hex digits is refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_hosting_a_blob_of_its_choosing_earns_on_it_once_it_is_a_kept_copy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = std::process::Command::new(crate::support::workspace_binary("dualrig-worker"))
        .args([
            "host",
            "abc123",
            "--coordinator",
            "http://127.0.0.1:1",
            "--gpu",
            "off",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("bad"))
        .output()
        .expect("run dualrig-worker host");
    assert!(!bad.status.success(), "a bad root was taken");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("host \"abc123\"") && stderr.contains("64 hex digits"),
        "{stderr}"
    );

    let coordinator = RunningCoordinator::start(|c| {
        c.hosting = test_rules();
        c.round = Duration::from_secs(3600);
        c.challenge_interval = Duration::from_secs(3600);
    })
    .await;
    let client = coordinator.client().await;
    let placed = RunningWorker::start(&coordinator.url).await;
    crate::support::wait_for_workers(&client, 1).await;
    let bytes: Vec<u8> = (0..300_000u32).map(|j| (j * 13 / 7) as u8).collect();
    let size = bytes.len() as u64;
    let put = crate::support::put_bytes(&client, dir.path(), &bytes, 1).await;
    let root = *put.root.as_bytes();

    let host_dir = dir.path().join("host");
    let id = std::process::Command::new(crate::support::workspace_binary("dualrig-worker"))
        .args(["id", "--data-dir"])
        .arg(&host_dir)
        .output()
        .expect("run dualrig-worker id");
    let host_id = hex::decode(String::from_utf8_lossy(&id.stdout).trim())
        .map(|b| PublicId::from_slice("worker id", &b).expect("worker id"))
        .expect("hex worker id");
    let log = std::fs::File::create(dir.path().join("host.log")).expect("log");
    let mut host = std::process::Command::new(crate::support::workspace_binary("dualrig-worker"))
        .arg("host")
        .arg(hex::encode(root))
        .args(["--coordinator", &coordinator.url, "--gpu", "off"])
        .arg("--data-dir")
        .arg(&host_dir)
        .env("RUST_LOG", "info")
        .stderr(log)
        .spawn()
        .expect("spawn dualrig-worker host");
    let index = coordinator.storage.index();
    let blob = || index.blob(&root).expect("index").expect("blob");
    let mut claimed = false;
    for _ in 0..600 {
        if blob().claims.contains(&host_id) {
            claimed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let host_log = || std::fs::read_to_string(dir.path().join("host.log")).unwrap_or_default();
    assert!(claimed, "the host never reported the blob: {}", host_log());
    coordinator.storage.challenge_round().await;
    assert!(
        blob().holders.contains(&host_id),
        "the pulled copy did not pass its challenge: {:?}",
        blob()
    );

    // Two verified copies of a blob kept once: the placed one earns, the chosen one does not.
    let credited = |w: &PublicId, round: u64| {
        coordinator
            .ledger
            .statements(w, Some(round - 1), 1)
            .expect("statements")
            .first()
            .filter(|s| s.round == round)
            .map_or(0, |s| s.credited)
    };
    let round = coordinator.ledger.advance_round().expect("advance");
    coordinator.storage.challenge_round().await;
    assert!(credited(&placed.id, round) >= size);
    assert_eq!(
        credited(&host_id, round),
        0,
        "a copy past the replicas earned"
    );

    // The placed copy's worker leaves: the chosen copy is the one kept, and it earns.
    placed.kill().await;
    crate::support::wait_for_workers(&client, 1).await;
    let round = coordinator.ledger.advance_round().expect("advance");
    coordinator.storage.challenge_round().await;
    assert!(credited(&host_id, round) >= size, "{}", host_log());
    assert!(rewards(&coordinator, &host_id) > 0);
    let _ = host.kill();
    let _ = host.wait();
    coordinator.stop().await;
}
