//! Collectives through the real gRPC: gated Gets (non-members refused naming the stake, members served
//! byte for byte within the round's allotment, signed requests that cannot be replayed), leaving and
//! the stake's return after the unbonding rounds, every refusal clear and harmless, and a worker that
//! hosts a collective of its own accord becoming a verified holder.

use std::path::Path;
use std::time::Duration;

use dualrig_client::DualrigClient;
use dualrig_proto::access::sign_get;
use dualrig_proto::identity::Identity;
use dualrig_proto::ledger_request::{CollectiveRules, Operation, SignedRequest};
use dualrig_proto::v1::coordinator_client::CoordinatorClient;
use dualrig_proto::v1::{DownloadQuoteRequest, GetRequest, HelloRequest, LedgerRequest};
use tonic::Code;

use crate::support::{RunningCoordinator, RunningWorker, wait_for_workers, write_genesis};

const TOKEN: u64 = 1_000_000;
const STAKE: u64 = 5 * TOKEN;
const BLOB: usize = 2_000;
const FREE: u64 = 3_000;

fn rules() -> CollectiveRules {
    CollectiveRules {
        access_stake: STAKE,
        price_per_byte: 7,
        free_bytes_per_round: FREE,
        replicas: 1,
    }
}

/// A coordinator whose rounds only the test advances, with the genesis `accounts`.
async fn coordinator(dir: &Path, accounts: &[(&Identity, u64)]) -> RunningCoordinator {
    let genesis = dir.join("genesis.toml");
    let accounts: Vec<_> = accounts.iter().map(|(who, b)| (who.id(), *b)).collect();
    write_genesis(&genesis, &accounts);
    RunningCoordinator::start_at(&dir.join("data"), |c| {
        c.genesis = Some(genesis.clone());
        c.unbonding_rounds = 2;
        c.round = Duration::from_secs(3600);
        c.challenge_interval = Duration::from_millis(500);
    })
    .await
}

/// Puts `bytes` for `collective`, waiting for the workers to report room.
async fn put_for(
    client: &DualrigClient,
    dir: &Path,
    bytes: &[u8],
    collective: Option<&str>,
) -> [u8; 32] {
    let path = dir.join(format!("blob-{}", blake3::hash(bytes).to_hex()));
    std::fs::write(&path, bytes).expect("write blob");
    for _ in 0..200 {
        match client.put_file_for(&path, 1, collective).await {
            Ok(stored) => return *stored.root.as_bytes(),
            Err(e)
                if e.code() == Some(Code::FailedPrecondition) && e.to_string().contains("room") =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("put: {e}"),
        }
    }
    panic!("the workers never reported room for the blob");
}

/// Collective "films" under [`rules`], owned by `owner`, holding `bytes` put for it; their root.
async fn films_with(
    client: &DualrigClient,
    dir: &Path,
    owner: &Identity,
    bytes: &[u8],
) -> [u8; 32] {
    client
        .execute(
            owner,
            Operation::CreateCollective {
                name: "films".into(),
                rules: rules(),
            },
        )
        .await
        .expect("create");
    let root = put_for(client, dir, bytes, Some("films")).await;
    client
        .execute(
            owner,
            Operation::AddToCollective {
                name: "films".into(),
                root,
            },
        )
        .await
        .expect("add");
    root
}

/// A signed Get of the whole of `root` as a hostile peer builds it from the .proto.
async fn signed_get(
    api: &mut CoordinatorClient<tonic::transport::Channel>,
    who: &Identity,
    root: [u8; 32],
) -> GetRequest {
    let hello = api
        .hello(HelloRequest {
            worker_id: who.id().as_bytes().to_vec(),
            for_get: true,
        })
        .await
        .expect("hello")
        .into_inner();
    let nonce: [u8; 32] = hello.nonce.as_slice().try_into().expect("32-byte nonce");
    GetRequest {
        root: root.to_vec(),
        start: 0,
        end: None,
        exclude: Vec::new(),
        auth: Some(sign_get(who, &nonce, &root, 0, None)),
        ..GetRequest::default()
    }
}

/// Sends `request` and reads the whole answer: Ok with the slice bytes, or the refusal.
async fn fetch(
    api: &mut CoordinatorClient<tonic::transport::Channel>,
    request: GetRequest,
) -> Result<usize, tonic::Status> {
    let mut stream = api.get(request).await?.into_inner();
    let mut bytes = 0;
    while let Some(chunk) = stream.message().await? {
        if let Some(dualrig_proto::v1::get_chunk::Part::Slice(s)) = chunk.part {
            bytes += s.len();
        }
    }
    Ok(bytes)
}

fn assert_refused<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: Code,
    words: &[&str],
) {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), code, "{}", status.message());
    for w in words {
        assert!(
            status.message().contains(w),
            "{:?} lacks {w:?}",
            status.message()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_members_fetch_within_their_allotment_and_leaving_ends_access() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (owner, member, stranger) = (
        Identity::from_secret([41; 32]),
        Identity::from_secret([42; 32]),
        Identity::from_secret([43; 32]),
    );
    let coordinator = coordinator(
        dir.path(),
        &[
            (&owner, 10 * TOKEN),
            (&member, 10 * TOKEN),
            (&stranger, 10 * TOKEN),
        ],
    )
    .await;
    let client = coordinator.client().await;
    let _holder = RunningWorker::start(&coordinator.url).await;
    wait_for_workers(&client, 1).await;

    let bytes: Vec<u8> = (0..BLOB).map(|i| (i * 7 % 251) as u8).collect();
    let root = films_with(&client, dir.path(), &owner, &bytes).await;
    let mut api = client.api();

    // Nobody outside the collective gets a byte: anonymous or signed, the stake to join is named.
    let anonymous = GetRequest {
        root: root.to_vec(),
        ..GetRequest::default()
    };
    assert_refused(
        fetch(&mut api, anonymous).await,
        Code::PermissionDenied,
        &["films", "5000000 units"],
    );
    let request = signed_get(&mut api, &stranger, root).await;
    assert_refused(
        fetch(&mut api, request).await,
        Code::PermissionDenied,
        &["films", "5000000 units"],
    );

    client
        .execute(
            &member,
            Operation::JoinCollective {
                name: "films".into(),
            },
        )
        .await
        .expect("join");
    assert_eq!(
        client.account(member.id()).await.expect("account").balance,
        5 * TOKEN
    );
    let out = dir.path().join("fetched");
    client
        .get_to_file_as(root, 0, None, &out, Some(&member))
        .await
        .expect("a member fetches");
    assert_eq!(std::fs::read(&out).expect("read"), bytes, "byte for byte");

    // A captured signed Get is worth nothing again, to its author or anyone, nor for another range.
    let request = signed_get(&mut api, &member, root).await;
    let mut other_range = request.clone();
    other_range.end = Some(10);
    assert_refused(
        fetch(&mut api, other_range).await,
        Code::Unauthenticated,
        &["signature"],
    );
    let mut stolen = signed_get(&mut api, &member, root).await;
    if let Some(auth) = stolen.auth.as_mut() {
        auth.account = stranger.id().as_bytes().to_vec();
    }
    assert_refused(
        fetch(&mut api, stolen).await,
        Code::Unauthenticated,
        &["another account"],
    );
    let request = signed_get(&mut api, &member, root).await;
    let replayed = request.clone();
    assert!(
        fetch(&mut api, request)
            .await
            .is_err_and(|s| s.code() == Code::ResourceExhausted),
        "the second whole fetch is past the allotment"
    );
    assert_refused(
        fetch(&mut api, replayed).await,
        Code::Unauthenticated,
        &["already used"],
    );

    // 2,000 of 3,000 free bytes are used: the next whole Get waits for the next round.
    assert_refused(
        client
            .get_to_file_as(root, 0, None, &out, Some(&member))
            .await
            .map_err(|e| match e {
                dualrig_client::ClientError::Status(s) => s,
                other => panic!("{other}"),
            }),
        Code::ResourceExhausted,
        &["films", "renews at round 1"],
    );
    client
        .get_to_file_as(root, 0, Some(1_000), &out, Some(&member))
        .await
        .expect("what is left of the allotment");
    coordinator.ledger.advance_round().expect("round");
    client
        .get_to_file_as(root, 0, None, &out, Some(&member))
        .await
        .expect("the allotment renews");

    // Leaving ends access at once; the stake comes back only after the unbonding rounds.
    client
        .execute(
            &member,
            Operation::LeaveCollective {
                name: "films".into(),
            },
        )
        .await
        .expect("leave");
    let request = signed_get(&mut api, &member, root).await;
    assert_refused(
        fetch(&mut api, request).await,
        Code::PermissionDenied,
        &["films"],
    );
    let early = client.execute(&member, Operation::WithdrawUnbonded).await;
    assert!(early.is_err_and(|e| e.code() == Some(Code::FailedPrecondition)));
    coordinator.ledger.advance_round().expect("round");
    let early = client.execute(&member, Operation::WithdrawUnbonded).await;
    assert!(early.is_err_and(|e| e.code() == Some(Code::FailedPrecondition)));
    coordinator.ledger.advance_round().expect("round");
    let back = client
        .execute(&member, Operation::WithdrawUnbonded)
        .await
        .expect("withdraw");
    assert_eq!(back.amount, STAKE);
    assert_eq!(
        client.account(member.id()).await.expect("account").balance,
        10 * TOKEN
    );
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn collective_refusals_name_the_fault_and_leave_the_ledger_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (owner, member, poor) = (
        Identity::from_secret([51; 32]),
        Identity::from_secret([52; 32]),
        Identity::from_secret([53; 32]),
    );
    let coordinator = coordinator(
        dir.path(),
        &[(&owner, 10 * TOKEN), (&member, 10 * TOKEN), (&poor, TOKEN)],
    )
    .await;
    let client = coordinator.client().await;
    let _holder = RunningWorker::start(&coordinator.url).await;
    wait_for_workers(&client, 1).await;
    client
        .execute(
            &owner,
            Operation::CreateCollective {
                name: "films".into(),
                rules: rules(),
            },
        )
        .await
        .expect("create");
    client
        .execute(
            &member,
            Operation::JoinCollective {
                name: "films".into(),
            },
        )
        .await
        .expect("join");
    let gated = put_for(&client, dir.path(), b"for the collective", Some("films")).await;
    let public = put_for(&client, dir.path(), b"public bytes", None).await;
    let mut api = client.api();

    // Each request is built and signed as a hostile peer would, sent raw.
    let cases: Vec<(&Identity, Operation, Code, &str)> = vec![
        (
            &member,
            Operation::AddToCollective {
                name: "films".into(),
                root: gated,
            },
            Code::PermissionDenied,
            "only collective 'films''s owner",
        ),
        (
            &owner,
            Operation::AddToCollective {
                name: "films".into(),
                root: public,
            },
            Code::FailedPrecondition,
            "stored public",
        ),
        (
            &owner,
            Operation::AddToCollective {
                name: "films".into(),
                root: [9; 32],
            },
            Code::NotFound,
            "no blob",
        ),
        (
            &member,
            Operation::JoinCollective {
                name: "films".into(),
            },
            Code::AlreadyExists,
            "already a member",
        ),
        (
            &poor,
            Operation::JoinCollective {
                name: "films".into(),
            },
            Code::FailedPrecondition,
            "locks an access stake of 5000000 units",
        ),
        (
            &poor,
            Operation::LeaveCollective {
                name: "films".into(),
            },
            Code::FailedPrecondition,
            "not a member",
        ),
        (
            &poor,
            Operation::JoinCollective {
                name: "nowhere".into(),
            },
            Code::NotFound,
            "no collective is named 'nowhere'",
        ),
        (
            &owner,
            Operation::CreateCollective {
                name: "films".into(),
                rules: rules(),
            },
            Code::AlreadyExists,
            "already exists",
        ),
        (
            &owner,
            Operation::CreateCollective {
                name: "Films!".into(),
                rules: rules(),
            },
            Code::InvalidArgument,
            "may hold only",
        ),
        (
            &owner,
            Operation::CreateCollective {
                name: "x".repeat(65),
                rules: rules(),
            },
            Code::InvalidArgument,
            "1 to 64 bytes",
        ),
    ];
    for (who, operation, code, words) in cases {
        let before = coordinator.ledger.snapshot().expect("snapshot");
        let nonce = client.account(who.id()).await.expect("account").nonce + 1;
        let signed = SignedRequest::sign(who, nonce, &operation);
        let answer = api
            .execute(LedgerRequest {
                account: signed.account.as_bytes().to_vec(),
                nonce: signed.nonce,
                operation: signed.operation.clone(),
                sig: signed.sig.to_vec(),
            })
            .await;
        assert_refused(answer, code, &[words]);
        assert_eq!(
            coordinator.ledger.snapshot().expect("snapshot"),
            before,
            "{operation:?}"
        );
    }
    // An add raises the blob's kept copies to the collective's replicas; repair places the rest.
    client
        .execute(
            &owner,
            Operation::CreateCollective {
                name: "shows".into(),
                rules: CollectiveRules {
                    replicas: 3,
                    ..rules()
                },
            },
        )
        .await
        .expect("create");
    let show = put_for(&client, dir.path(), b"an episode", Some("shows")).await;
    let index = coordinator.storage.index();
    assert_eq!(
        index.blob(&show).expect("index").expect("known").replicas,
        1
    );
    client
        .execute(
            &owner,
            Operation::AddToCollective {
                name: "shows".into(),
                root: show,
            },
        )
        .await
        .expect("add");
    assert_eq!(
        index.blob(&show).expect("index").expect("known").replicas,
        3
    );
    // A Put for a collective that does not exist, and of a public blob for a collective, are refused.
    let path = dir.path().join("blob-public");
    std::fs::write(&path, b"public bytes").expect("write");
    let e = client
        .put_file_for(&path, 1, Some("films"))
        .await
        .expect_err("public stays public");
    assert_eq!(e.code(), Some(Code::FailedPrecondition), "{e}");
    let e = client
        .put_file_for(&path, 1, Some("nowhere"))
        .await
        .expect_err("no such collective");
    assert_eq!(e.code(), Some(Code::NotFound), "{e}");
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_worker_hosting_a_collective_pulls_its_blobs_and_becomes_a_verified_holder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let owner = Identity::from_secret([61; 32]);
    let host_dir = dir.path().join("host");
    std::fs::create_dir_all(&host_dir).expect("mkdir");
    let host_key =
        Identity::load_or_create(&host_dir.join(dualrig_worker::config::KEY_FILE)).expect("key");
    let coordinator =
        coordinator(dir.path(), &[(&owner, 10 * TOKEN), (&host_key, 10 * TOKEN)]).await;
    let client = coordinator.client().await;
    let placed = RunningWorker::start(&coordinator.url).await;
    wait_for_workers(&client, 1).await;
    client
        .execute(
            &owner,
            Operation::CreateCollective {
                name: "films".into(),
                rules: CollectiveRules {
                    // Pulling counts against the allotment like any member's Get.
                    free_bytes_per_round: 1 << 20,
                    ..rules()
                },
            },
        )
        .await
        .expect("create");
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let root = put_for(&client, dir.path(), &bytes, Some("films")).await;
    client
        .execute(
            &owner,
            Operation::AddToCollective {
                name: "films".into(),
                root,
            },
        )
        .await
        .expect("add");
    client
        .execute(
            &host_key,
            Operation::JoinCollective {
                name: "films".into(),
            },
        )
        .await
        .expect("join");

    let host = RunningWorker::start_with(&coordinator.url, |c| {
        c.data_dir = host_dir.clone();
        c.host_collectives = vec!["films".into()];
    })
    .await;
    assert_eq!(host.id, host_key.id());
    let index = coordinator.storage.index();
    let mut verified = false;
    for _ in 0..1200 {
        let holders = index
            .blob(&root)
            .expect("index")
            .map(|b| b.holders)
            .unwrap_or_default();
        if holders.contains(&host.id) {
            verified = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        verified,
        "the hosting worker never passed a challenge on the pulled blob (stored: {:?}, index: {:?})",
        host.store.get(&blake3::Hash::from_bytes(root)),
        index.blob(&root)
    );
    let stored = host
        .store
        .get(&blake3::Hash::from_bytes(root))
        .expect("pulled");
    assert_eq!(stored.len, bytes.len() as u64);
    assert!(
        index
            .blob(&root)
            .expect("index")
            .expect("known")
            .holders
            .contains(&placed.id)
    );
    coordinator.stop().await;
}

/// The value of the series `line` (name and labels as the page writes them), if the page has it.
fn metric(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The real coordinator binary's collective series: members and locked stake follow joins and leaves,
/// and a refused Get is counted by why.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_collective_series_follow_members_and_refused_gets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = format!("127.0.0.1:{}", crate::support::free_port());
    let coordinator =
        crate::support::CoordinatorProcess::start(dir.path(), &["--metrics-addr", &metrics]);
    let client = DualrigClient::connect(&coordinator.url)
        .await
        .expect("connect");
    let _holder = RunningWorker::start(&coordinator.url).await;
    wait_for_workers(&client, 1).await;
    // Throwaway keys with no tokens: a collective with no access stake costs nothing to join.
    let (owner, member) = (Identity::generate(), Identity::generate());
    let free = CollectiveRules {
        access_stake: 0,
        ..rules()
    };
    client
        .execute(
            &owner,
            Operation::CreateCollective {
                name: "films".into(),
                rules: free,
            },
        )
        .await
        .expect("create");
    let root = put_for(&client, dir.path(), b"gated bytes", Some("films")).await;
    let page = || crate::support::http_get(&metrics, "/metrics").expect("metrics page");
    assert_eq!(metric(&page(), "dualrig_collective_members"), Some(0.0));
    client
        .execute(
            &member,
            Operation::JoinCollective {
                name: "films".into(),
            },
        )
        .await
        .expect("join");
    assert_eq!(metric(&page(), "dualrig_collective_members"), Some(1.0));
    let mut api = client.api();
    let anonymous = GetRequest {
        root: root.to_vec(),
        ..GetRequest::default()
    };
    assert!(fetch(&mut api, anonymous).await.is_err());
    let request = signed_get(&mut api, &member, root).await;
    assert_eq!(fetch(&mut api, request).await.expect("member"), 11 + 8);
    let shown = page();
    for (series, value) in [
        ("dualrig_collective_gets_total{outcome=\"not_member\"}", 1.0),
        ("dualrig_collective_gets_total{outcome=\"served\"}", 1.0),
        (
            "dualrig_collective_gets_total{outcome=\"unauthenticated\"}",
            0.0,
        ),
    ] {
        assert_eq!(metric(&shown, series), Some(value), "{series} in\n{shown}");
    }
    client
        .execute(
            &member,
            Operation::LeaveCollective {
                name: "films".into(),
            },
        )
        .await
        .expect("leave");
    assert_eq!(metric(&page(), "dualrig_collective_members"), Some(0.0));
}

/// A paid Get of a gated blob still needs membership: a stranger that pays is refused naming the stake.
/// A holder that is not a member serves on its own terms, never below the collective's price, and a
/// member's free bytes only if it serves everyone free: a collective cannot make a priced holder serve
/// for nothing. A holder that joined serves members on the collective's terms: free within the
/// allotment, at the collective's price past it, without using the free bytes. A collective whose price
/// is 0 sells no bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paying_opens_no_collective_to_a_stranger_and_spares_a_members_allotment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (owner, member, stranger) = (
        Identity::from_secret([51; 32]),
        Identity::from_secret([52; 32]),
        Identity::from_secret([53; 32]),
    );
    let holder_dir = dir.path().join("holder");
    let holder_key =
        Identity::load_or_create(&holder_dir.join(dualrig_worker::config::KEY_FILE)).expect("key");
    let coordinator = coordinator(
        dir.path(),
        &[
            (&owner, 10 * TOKEN),
            (&member, 10 * TOKEN),
            (&stranger, 10 * TOKEN),
            (&holder_key, 10 * TOKEN),
        ],
    )
    .await;
    let client = coordinator.client().await;
    // Dearer than the collective's 7 per byte.
    let _holder = RunningWorker::start_with(&coordinator.url, |c| {
        c.data_dir = holder_dir.clone();
        c.price_per_byte = 10;
    })
    .await;
    wait_for_workers(&client, 1).await;
    let bytes: Vec<u8> = (0..BLOB).map(|i| (i * 11 % 253) as u8).collect();
    let root = films_with(&client, dir.path(), &owner, &bytes).await;
    client
        .execute(
            &member,
            Operation::JoinCollective {
                name: "films".into(),
            },
        )
        .await
        .expect("join");
    for who in [&member, &stranger] {
        client
            .execute(who, Operation::Deposit { amount: 2 * TOKEN })
            .await
            .expect("deposit");
    }

    let out = dir.path().join("stranger");
    let refused = client
        .get_to_file_paid(
            root,
            0,
            None,
            &out,
            &dualrig_client::Payment::new(Identity::from_secret([53; 32]), None),
        )
        .await
        .expect_err("a stranger's payment opens nothing");
    assert_eq!(refused.code(), Some(Code::PermissionDenied), "{refused}");
    assert!(refused.to_string().contains("films"), "{refused}");
    assert!(!out.exists());

    // The holder is no member: it serves no free bytes, and sells at its own price, not the
    // collective's lower one.
    let out = dir.path().join("free");
    let refused = client
        .get_to_file_as(root, 0, None, &out, Some(&member))
        .await
        .expect_err("a priced holder outside the collective serves nothing free");
    assert_eq!(refused.code(), Some(Code::FailedPrecondition), "{refused}");
    assert!(refused.to_string().contains("--pay"), "{refused}");
    let mut api = CoordinatorClient::connect(coordinator.url.clone())
        .await
        .expect("connect");
    let quote = |api: &mut CoordinatorClient<tonic::transport::Channel>| {
        let mut api = api.clone();
        async move {
            api.download_quote(DownloadQuoteRequest {
                root: root.to_vec(),
                start: 0,
                end: None,
                exclude: Vec::new(),
            })
            .await
            .expect("quote")
            .into_inner()
        }
    };
    let outside = quote(&mut api).await;
    assert_eq!(
        (outside.price_per_byte, outside.collective.as_str()),
        (10, "films")
    );

    // Once the holder joins, it serves the collective's members on the collective's terms.
    client
        .execute(
            &holder_key,
            Operation::JoinCollective {
                name: "films".into(),
            },
        )
        .await
        .expect("the holder joins");
    client
        .get_to_file_as(root, 0, None, &out, Some(&member))
        .await
        .expect("a member's free bytes from a holder in the collective");
    assert_eq!(std::fs::read(&out).expect("read"), bytes, "byte for byte");
    let quote = quote(&mut api).await;
    assert_eq!(
        (quote.price_per_byte, quote.collective.as_str()),
        (7, "films"),
        "a member holder sells at the collective's price"
    );

    let round = coordinator.ledger.round().expect("round");
    let holder =
        dualrig_proto::identity::PublicId::from_slice("holder", &quote.holder).expect("holder id");
    let before = coordinator.ledger.served(round, &holder).expect("served");
    let out = dir.path().join("member");
    for _ in 0..2 {
        client
            .get_to_file_paid(
                root,
                0,
                None,
                &out,
                &dualrig_client::Payment::new(Identity::from_secret([52; 32]), None),
            )
            .await
            .expect("a member's paid Get");
        assert_eq!(std::fs::read(&out).expect("read"), bytes, "byte for byte");
    }
    let after = coordinator.ledger.served(round, &holder).expect("served");
    let paid_bytes = 2 * BLOB as u64;
    assert_eq!(after.bytes - before.bytes, paid_bytes);
    assert!(
        after.paid - before.paid >= 7 * paid_bytes,
        "paid {} for {paid_bytes} bytes at the collective's 7 per byte",
        after.paid - before.paid
    );
    // The free Get used 2000 of the 3000 free bytes; the paid ones used none of what is left.
    let used = coordinator
        .ledger
        .admit_collective_get("films", &member.id(), FREE - BLOB as u64, false)
        .expect("the rest of the allotment is still free");
    assert_eq!(used.used, FREE);

    // A collective that sells nothing past its free bytes: a quote says so.
    client
        .execute(
            &owner,
            Operation::CreateCollective {
                name: "gift".into(),
                rules: CollectiveRules {
                    price_per_byte: 0,
                    ..rules()
                },
            },
        )
        .await
        .expect("create");
    let gift: Vec<u8> = (0..BLOB).map(|i| (i * 13 % 251) as u8).collect();
    let gift = put_for(&client, dir.path(), &gift, Some("gift")).await;
    assert_refused(
        api.download_quote(DownloadQuoteRequest {
            root: gift.to_vec(),
            start: 0,
            end: None,
            exclude: Vec::new(),
        })
        .await,
        Code::FailedPrecondition,
        &["'gift' sells no bytes", "3000 bytes a round"],
    );
    coordinator.stop().await;
}
