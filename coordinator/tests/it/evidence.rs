//! Slash evidence that anyone can check again: every cheat the coordinator slashes is listed by
//! `ListSlashes` with the job and the worker's signed result, and re-verification of that evidence upholds
//! the slash; the evidence of an honest result would not be upheld; a staked cheat loses exactly its
//! slash fraction to the pool and is suspended; the `slashes` command prints and checks them.

use std::time::Duration;

use dualrig_coordinator::evidence::{Verdict, reverify, slash_reason, transcode_evidence};
use dualrig_coordinator::ledger::SlashFraction;
use dualrig_proto::identity::{Identity, PublicId};
use dualrig_proto::ledger_request::Operation;
use dualrig_proto::profile::Profile;
use dualrig_proto::v1::{JobResult, SlashEntry, SlashEvidence, TranscodeJob, slash_evidence};
use dualrig_worker::WorkerConfig;
use dualrig_worker::job::Fault;
use prost::Message;

use crate::support::{
    RunningCoordinator, RunningWorker, list_slashes, make_clip, outcome, small_profile, submit,
    wait_for_workers, write_genesis,
};

fn ladder() -> Vec<Profile> {
    vec![small_profile("90p", 160, 90, 200_000)]
}

fn segment(dir: &std::path::Path) -> Vec<u8> {
    std::fs::read(make_clip(dir, "seg.ts", 1, "320x180")).expect("clip")
}

async fn reverified(entry: &SlashEntry) -> Verdict {
    let entry = entry.clone();
    tokio::task::spawn_blocking(move || {
        let scratch = tempfile::tempdir().expect("tempdir");
        reverify(&entry, scratch.path()).expect("re-verification runs")
    })
    .await
    .expect("task")
}

/// A coordinator where the only worker cheats with `fault` on the one attempt a job gets; returns
/// them once the job has failed.
async fn one_cheat(fault: Fault) -> (RunningCoordinator, RunningWorker) {
    let media = tempfile::tempdir().expect("tempdir");
    let segment = segment(media.path());
    let coordinator = RunningCoordinator::start(|c| {
        c.max_attempts = 1;
        c.job_timeout = Duration::from_secs(60);
        c.content_check_share = 1.0;
    })
    .await;
    let client = coordinator.client().await;
    let cheat = RunningWorker::start_with(&coordinator.url, |c| c.fault = Some(fault)).await;
    wait_for_workers(&client, 1).await;
    let err = outcome(submit(&client, &segment, &ladder(), "cheat"))
        .await
        .expect_err("the cheat's result is refused and no other worker may try");
    assert_eq!(err.code(), Some(tonic::Code::Aborted), "{fault:?}: {err}");
    (coordinator, cheat)
}

/// The cheat was slashed once, the evidence is the job and its signed result, and checking it again
/// upholds the slash for the reason the coordinator gave.
async fn cheat_is_slashed_and_the_slash_upheld(fault: Fault, expect_in_reason: &str) {
    let (coordinator, cheat) = one_cheat(fault).await;
    let slashes = list_slashes(&coordinator.url, None).await;
    assert_eq!(slashes.len(), 1, "{fault:?}");
    let entry = &slashes[0];
    assert_eq!(entry.worker, cheat.id.as_bytes().to_vec());
    assert_eq!(
        list_slashes(&coordinator.url, Some(cheat.id)).await,
        slashes
    );

    let evidence = SlashEvidence::decode(entry.evidence.as_slice()).expect("SlashEvidence");
    let Some(slash_evidence::Kind::Transcode(transcode)) = &evidence.kind else {
        panic!("{fault:?}: transcode evidence");
    };
    let job = transcode.job.as_ref().expect("the job");
    let result = transcode.result.as_ref().expect("the result");
    assert_eq!(result.job_id, job.job_id);
    assert!(job.payment.is_empty());
    assert!(
        evidence.reason.contains(expect_in_reason),
        "{fault:?}: {}",
        evidence.reason
    );

    eprintln!("{fault:?} slashed: {}", evidence.reason);
    let verdict = reverified(entry).await;
    assert!(verdict.upheld, "{fault:?}: {verdict}");
    assert!(
        verdict.reason.contains(expect_in_reason),
        "{fault:?}: {verdict}"
    );
    cheat.kill().await;
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blank_renditions_leave_an_upheld_slash_replayed_on_the_same_frames() {
    let (coordinator, cheat) = one_cheat(Fault::Blank).await;
    let slashes = list_slashes(&coordinator.url, None).await;
    assert_eq!(slashes.len(), 1);
    let recorded = slash_reason(&slashes[0]);
    assert!(recorded.contains("content check seed"), "{recorded}");
    eprintln!("Blank slashed: {recorded}");
    // The seed in the reason draws the same frames again: the very same verdict comes back.
    let verdict = reverified(&slashes[0]).await;
    assert!(verdict.upheld, "{verdict}");
    assert!(
        verdict.reason.ends_with(&recorded),
        "{verdict} / {recorded}"
    );
    cheat.kill().await;
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_video_leaves_an_upheld_slash() {
    cheat_is_slashed_and_the_slash_upheld(Fault::OtherVideo, "does not show its source").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrong_size_leaves_an_upheld_slash() {
    cheat_is_slashed_and_the_slash_upheld(Fault::WrongSize, "asked 160x90").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropped_frames_leave_an_upheld_slash() {
    cheat_is_slashed_and_the_slash_upheld(Fault::DropFrames, "frames").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_leaves_an_upheld_slash_that_the_slashes_command_prints_and_checks() {
    let (coordinator, cheat) = one_cheat(Fault::Garbage).await;
    let slashes = list_slashes(&coordinator.url, None).await;
    assert_eq!(slashes.len(), 1);
    let verdict = reverified(&slashes[0]).await;
    assert!(verdict.upheld, "{verdict}");
    assert!(verdict.reason.contains("does not decode"), "{verdict}");

    let run = |args: Vec<String>| async move {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_dualrig-coordinator"))
            .arg("slashes")
            .args(&args)
            .output()
            .await
            .expect("run the slashes command");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let url = coordinator.url.clone();
    let (ok, stdout, stderr) = run(vec![
        "--coordinator".into(),
        url.clone(),
        "--verify".into(),
        "--json".into(),
    ])
    .await;
    assert!(ok, "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(
        lines[0].contains(&format!("\"worker\":\"{}\"", cheat.id.to_hex())),
        "{stdout}"
    );
    assert!(lines[0].contains("\"upheld\":true"), "{stdout}");

    let (ok, stdout, stderr) = run(vec![
        "--coordinator".into(),
        url.clone(),
        "--worker".into(),
        cheat.id.to_hex(),
    ])
    .await;
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains(&cheat.id.to_hex()), "{stdout}");
    assert!(stdout.contains("does not decode"), "{stdout}");
    assert!(stdout.ends_with("1 slashes\n"), "{stdout}");

    let someone_else = Identity::generate().id().to_hex();
    let (ok, stdout, _) = run(vec![
        "--coordinator".into(),
        url,
        "--worker".into(),
        someone_else,
        "--verify".into(),
    ])
    .await;
    assert!(ok);
    assert_eq!(stdout, "0 slashes, 0 upheld\n");
    cheat.kill().await;
    coordinator.stop().await;
}

/// A forged signature is slashed like any bad result. Re-verification upholds it as forged: the
/// signature does not verify, and that the worker sent it rests on the coordinator's record of the
/// worker's authenticated session (the result itself ties it to nobody).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_result_not_signed_by_its_worker_is_slashed_as_forged() {
    let (coordinator, cheat) = one_cheat(Fault::WrongSignature).await;
    let slashes = list_slashes(&coordinator.url, None).await;
    assert_eq!(slashes.len(), 1);
    assert_eq!(slashes[0].worker, cheat.id.as_bytes().to_vec());
    let verdict = reverified(&slashes[0]).await;
    assert!(verdict.upheld, "{verdict}");
    assert!(verdict.reason.contains("forged result"), "{verdict}");
    assert!(verdict.reason.contains("coordinator's record"), "{verdict}");
    cheat.kill().await;
    coordinator.stop().await;
}

/// The evidence an honest result would make is not upheld: re-verification is not a rubber stamp.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn evidence_made_from_an_honest_result_is_not_upheld() {
    let media = tempfile::tempdir().expect("tempdir");
    let segment = segment(media.path());
    let coordinator = RunningCoordinator::start(|c| c.content_check_share = 1.0).await;
    let client = coordinator.client().await;
    let honest = RunningWorker::start(&coordinator.url).await;
    wait_for_workers(&client, 1).await;
    let profiles = ladder();
    let response = outcome(submit(&client, &segment, &profiles, "honest"))
        .await
        .expect("the honest worker delivers");
    assert!(list_slashes(&coordinator.url, None).await.is_empty());

    let job = TranscodeJob {
        job_id: response.job_id.clone(),
        segment: segment.into(),
        profiles: profiles.iter().map(Profile::to_wire).collect(),
        ..TranscodeJob::default()
    };
    let result = JobResult {
        job_id: response.job_id,
        renditions: response.renditions,
        signature: response.worker_signature,
        encoder: response.encoder,
        transcode_ms: 0,
    };
    let entry = SlashEntry {
        worker: honest.id.as_bytes().to_vec(),
        round: 0,
        amount: 0,
        fraction_ppm: 100_000,
        evidence: transcode_evidence(&job, &result, "claimed bad").encode_to_vec(),
    };
    let verdict = reverified(&entry).await;
    assert!(!verdict.upheld, "{verdict}");
    assert!(
        verdict.reason.contains("passes verification again"),
        "{verdict}"
    );

    // The same evidence charged to another worker fails on the signature.
    let other = SlashEntry {
        worker: Identity::generate().id().as_bytes().to_vec(),
        ..entry
    };
    let verdict = reverified(&other).await;
    assert!(
        !verdict.upheld && verdict.reason.contains("not signed"),
        "{verdict}"
    );
    honest.kill().await;
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_staked_cheat_loses_exactly_its_slash_fraction_to_the_pool_and_is_suspended() {
    const BOND: u64 = 7_777_777;
    const PPM: u32 = 125_000;
    const SUSPEND: u64 = 4;
    let media = tempfile::tempdir().expect("tempdir");
    let segment = segment(media.path());
    // The cheat's key exists before the ledger does, so the genesis can fund it.
    let cheat_dir = tempfile::tempdir().expect("tempdir");
    let key_path = WorkerConfig::new("http://unused", cheat_dir.path().to_owned()).key_path();
    let cheat_key = Identity::load_or_create(&key_path).expect("cheat key");
    let cheat_id: PublicId = cheat_key.id();
    let genesis = media.path().join("genesis.toml");
    write_genesis(&genesis, &[(cheat_id, 10_000_000)]);
    let coordinator = RunningCoordinator::start(|c| {
        c.genesis = Some(genesis.clone());
        c.min_stake = 1_000_000;
        c.slash_fraction_ppm = PPM;
        c.suspend_rounds = SUSPEND;
        c.max_attempts = 1;
        c.content_check_share = 1.0;
    })
    .await;
    let client = coordinator.client().await;
    client
        .execute(&cheat_key, Operation::Bond { amount: BOND })
        .await
        .expect("the cheat bonds");

    let dir = cheat_dir.path().to_owned();
    let cheat = RunningWorker::start_with(&coordinator.url, move |c| {
        c.data_dir = dir;
        c.fault = Some(Fault::Blank);
    })
    .await;
    assert_eq!(cheat.id, cheat_id);
    wait_for_workers(&client, 1).await;
    let err = outcome(submit(&client, &segment, &ladder(), "staked cheat"))
        .await
        .expect_err("blank renditions are refused");
    assert_eq!(err.code(), Some(tonic::Code::Aborted), "{err}");

    let cut = SlashFraction::from_ppm(PPM).expect("ppm").of(BOND);
    assert_eq!(cut, 972_222, "an eighth of the bond, rounded down");
    let account = client.account(cheat_id).await.expect("account");
    assert_eq!(
        (account.stake, account.bonded_to_self),
        (BOND - cut, BOND - cut)
    );
    assert_eq!(account.balance, 10_000_000 - BOND);
    assert_eq!(coordinator.ledger.pool_balance().expect("pool"), cut);
    assert_eq!(
        coordinator.ledger.supply().expect("supply"),
        10_000_000,
        "a slash moves stake, it creates and destroys nothing"
    );
    let slashes = list_slashes(&coordinator.url, Some(cheat_id)).await;
    assert_eq!(slashes.len(), 1);
    assert_eq!(
        (slashes[0].amount, slashes[0].fraction_ppm),
        (cut, PPM),
        "the listed slash is the one the ledger applied"
    );
    assert_eq!(account.suspended_until, slashes[0].round + SUSPEND);
    let verdict = reverified(&slashes[0]).await;
    assert!(verdict.upheld, "{verdict}");

    // Suspended: still attached, but no job is handed to it.
    let refused = client
        .transcode_segment(segment, &ladder(), "after the slash")
        .await
        .expect_err("no eligible worker");
    assert_eq!(refused.code(), Some(tonic::Code::Unavailable), "{refused}");
    assert!(
        refused
            .to_string()
            .contains("below the minimum stake or suspended"),
        "{refused}"
    );
    cheat.kill().await;
    coordinator.stop().await;
}

/// A storage slash, made by a challenge round against a deleted blob, is served by `ListSlashes` and
/// upheld from its evidence; the round before the deletion slashes nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_blob_leaves_a_storage_slash_that_reverification_upholds() {
    let coordinator = RunningCoordinator::start(|_| {}).await;
    let client = coordinator.client().await;
    let holder = RunningWorker::start(&coordinator.url).await;
    wait_for_workers(&client, 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("blob");
    let bytes: Vec<u8> = (0..50_000u32).map(|i| (i * 31 + i / 977) as u8).collect();
    std::fs::write(&path, &bytes).expect("write blob");
    // The worker reports its room just after it attaches; a put before that is refused.
    let mut stored = None;
    for _ in 0..200 {
        match client.put_file(&path, 1).await {
            Ok(s) => {
                stored = Some(s);
                break;
            }
            Err(e) if e.code() == Some(tonic::Code::FailedPrecondition) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("put: {e}"),
        }
    }
    let stored = stored.expect("the worker never reported room for the blob");

    coordinator.storage.challenge_round().await;
    assert!(list_slashes(&coordinator.url, None).await.is_empty());

    std::fs::remove_file(holder.blob_path(&stored.root)).expect("delete the blob");
    coordinator.storage.challenge_round().await;
    let slashes = list_slashes(&coordinator.url, Some(holder.id)).await;
    assert_eq!(slashes.len(), 1);
    let evidence = SlashEvidence::decode(slashes[0].evidence.as_slice()).expect("SlashEvidence");
    let Some(slash_evidence::Kind::Storage(storage)) = &evidence.kind else {
        panic!("storage evidence");
    };
    assert_eq!(storage.root, stored.root.as_bytes().to_vec());
    let verdict = reverified(&slashes[0]).await;
    assert!(verdict.upheld, "{verdict}");
    holder.kill().await;
    coordinator.stop().await;
}
