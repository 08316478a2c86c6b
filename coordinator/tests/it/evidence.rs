//! Slash evidence that anyone can check again: every cheat the coordinator slashes is listed by
//! `ListSlashes` with the job, the worker's signed result and the typed fault; re-verification runs the
//! same check again and finds the very same fault, field by field, whatever the reason text says, and
//! evidence from before faults were typed (no `fault`) is still upheld; the evidence of an honest result
//! is not upheld; a staked cheat loses exactly its slash fraction to the pool and is suspended; the
//! `slashes` command prints and checks them.

use std::time::Duration;

use dualrig_coordinator::evidence::{Verdict, reverify};
use dualrig_coordinator::fault::{Fault, StorageFault};
use dualrig_coordinator::ledger::SlashFraction;
use dualrig_coordinator::slashing::Offence;
use dualrig_media::VerifyError;
use dualrig_proto::identity::{Identity, PublicId};
use dualrig_proto::ledger_request::Operation;
use dualrig_proto::profile::Profile;
use dualrig_proto::v1::{JobResult, SlashEntry, SlashEvidence, TranscodeJob, slash_evidence};
use dualrig_worker::WorkerConfig;
use dualrig_worker::job::Fault as Cheat;
use prost::Message;

use crate::support::{
    RunningCoordinator, RunningWorker, list_slashes, make_clip, outcome, put_bytes, small_profile,
    submit, wait_for_workers, write_genesis,
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

/// The entry with its evidence rewritten by `edit`.
fn with_evidence(entry: &SlashEntry, edit: impl FnOnce(&mut SlashEvidence)) -> SlashEntry {
    let mut evidence = SlashEvidence::decode(entry.evidence.as_slice()).expect("SlashEvidence");
    edit(&mut evidence);
    SlashEntry {
        evidence: evidence.encode_to_vec(),
        ..entry.clone()
    }
}

/// A reason worded nothing like `Fault`'s `Display`: the same fault, another template.
fn reworded(fault: &Fault) -> String {
    format!("VERDICT<{}>", fault.kind().to_uppercase())
}

/// A coordinator where the only worker cheats with `cheat` on the one attempt a job gets; returns
/// them once the job has failed.
async fn one_cheat(cheat: Cheat) -> (RunningCoordinator, RunningWorker) {
    let media = tempfile::tempdir().expect("tempdir");
    let segment = segment(media.path());
    let coordinator = RunningCoordinator::start(|c| {
        c.max_attempts = 1;
        c.job_timeout = Duration::from_secs(60);
        c.content_check_share = 1.0;
    })
    .await;
    let client = coordinator.client().await;
    let worker = RunningWorker::start_with(&coordinator.url, |c| c.fault = Some(cheat)).await;
    wait_for_workers(&client, 1).await;
    let err = outcome(submit(&client, &segment, &ladder(), "cheat"))
        .await
        .expect_err("the cheat's result is refused and no other worker may try");
    assert_eq!(err.code(), Some(tonic::Code::Aborted), "{cheat:?}: {err}");
    (coordinator, worker)
}

/// The cheat was slashed once; the evidence is the job, its signed result and the fault the live check
/// found, which `expected` accepts; checking it again finds that same fault field by field, with the
/// reason text reworded too; and the same evidence without its typed fault (as recorded before faults
/// were typed) is still upheld. Returns the recorded fault.
async fn cheat_is_slashed_and_the_slash_upheld(
    cheat: Cheat,
    expected: impl Fn(&Fault) -> bool,
) -> Fault {
    let (coordinator, worker) = one_cheat(cheat).await;
    let slashes = list_slashes(&coordinator.url, None).await;
    assert_eq!(slashes.len(), 1, "{cheat:?}");
    let entry = &slashes[0];
    assert_eq!(entry.worker, worker.id.as_bytes().to_vec());
    assert_eq!(
        list_slashes(&coordinator.url, Some(worker.id)).await,
        slashes
    );

    let evidence = SlashEvidence::decode(entry.evidence.as_slice()).expect("SlashEvidence");
    let Some(slash_evidence::Kind::Transcode(transcode)) = &evidence.kind else {
        panic!("{cheat:?}: transcode evidence");
    };
    let job = transcode.job.as_ref().expect("the job");
    let result = transcode.result.as_ref().expect("the result");
    assert_eq!(result.job_id, job.job_id);
    assert!(job.payment.is_empty());
    let recorded = evidence
        .fault
        .as_ref()
        .and_then(Fault::from_wire)
        .expect("the evidence records a typed fault");
    assert!(expected(&recorded), "{cheat:?}: {recorded:?}");
    assert_eq!(entry.reason, recorded.to_string(), "the reason is derived");
    assert_eq!(
        entry.fault.as_ref().and_then(Fault::from_wire).as_ref(),
        Some(&recorded),
        "the listing carries the verdict"
    );
    assert_eq!(
        entry.evidence_hash,
        blake3::hash(&entry.evidence).as_bytes().to_vec(),
        "the evidence is named by its hash"
    );
    assert_eq!(entry.evidence_size, entry.evidence.len() as u64);
    eprintln!("{cheat:?} slashed: {recorded}");

    let verdict = reverified(entry).await;
    assert!(verdict.upheld, "{cheat:?}: {verdict}");
    assert_eq!(verdict.recorded.as_ref(), Some(&recorded));
    // Field by field, but for the reference encoder's score (libx264 need not encode twice alike).
    assert!(
        verdict
            .found
            .as_ref()
            .is_some_and(|f| f.same_finding(&recorded)),
        "{cheat:?}: {verdict}"
    );
    assert!(verdict.agrees());

    // Rewording the reason, or dropping it, changes no verdict: no program reads it.
    for reason in [reworded(&recorded), String::new()] {
        let again = reverified(&with_evidence(entry, |e| e.reason = reason)).await;
        assert!(again.upheld && again.agrees(), "{cheat:?}: {again}");
        assert_eq!(again.recorded, verdict.recorded, "{cheat:?}");
    }

    // Evidence in the text-only form (no typed fault) is still re-verifiable: a forged result cannot
    // be upheld without the typed record, every other fault is found again.
    let legacy = reverified(&with_evidence(entry, |e| e.fault = None)).await;
    assert_eq!(legacy.recorded, None);
    let forged = matches!(recorded, Fault::Forged { .. });
    assert_eq!(legacy.upheld, !forged, "{cheat:?}: {legacy}");
    assert!(
        legacy.found.as_ref().is_some_and(&expected),
        "{cheat:?}: {legacy}"
    );

    worker.kill().await;
    coordinator.stop().await;
    recorded
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blank_renditions_leave_an_upheld_slash_replayed_on_the_same_frames() {
    let recorded = cheat_is_slashed_and_the_slash_upheld(Cheat::Blank, |f| {
        matches!(f, Fault::Content { rendition, score_db, threshold_db, reference_db, .. }
            if rendition == "90p" && score_db < threshold_db
                && *reference_db >= threshold_db + dualrig_media::REFERENCE_MARGIN_DB)
    })
    .await;
    let Fault::Content { seed, .. } = recorded else {
        unreachable!("checked above");
    };
    eprintln!("replayed with seed {seed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_video_leaves_an_upheld_slash() {
    cheat_is_slashed_and_the_slash_upheld(Cheat::OtherVideo, |f| {
        matches!(f, Fault::Content { .. })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrong_size_leaves_an_upheld_slash() {
    cheat_is_slashed_and_the_slash_upheld(Cheat::WrongSize, |f| {
        matches!(
            f,
            Fault::Structure(VerifyError::Size {
                asked_width: 160,
                asked_height: 90,
                ..
            })
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropped_frames_leave_an_upheld_slash() {
    cheat_is_slashed_and_the_slash_upheld(Cheat::DropFrames, |f| {
        matches!(
            f,
            Fault::Structure(VerifyError::FrameCount { frames, source_frames, .. })
                if frames < source_frames
        )
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_leaves_an_upheld_slash_that_the_slashes_command_prints_and_checks() {
    cheat_is_slashed_and_the_slash_upheld(Cheat::Garbage, |f| {
        matches!(f, Fault::Structure(VerifyError::Undecodable { .. }))
    })
    .await;
    let (coordinator, cheat) = one_cheat(Cheat::Garbage).await;
    let slashes = list_slashes(&coordinator.url, None).await;
    assert_eq!(slashes.len(), 1);

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
    cheat_is_slashed_and_the_slash_upheld(Cheat::WrongSignature, |f| {
        *f == Fault::Forged { rendition: None }
    })
    .await;
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
        evidence: Offence::Transcode {
            job,
            result,
            fault: Fault::Structure(VerifyError::NoLeadingKeyframe {
                rendition: "90p".into(),
            }),
        }
        .evidence()
        .encode_to_vec(),
        ..SlashEntry::default()
    };
    let verdict = reverified(&entry).await;
    assert!(!verdict.upheld, "{verdict}");
    assert_eq!(verdict.found, None, "{verdict}");
    // Nor when no fault was recorded: the content check then looks at every frame, and passes.
    let verdict = reverified(&with_evidence(&entry, |e| e.fault = None)).await;
    assert!(!verdict.upheld && verdict.found.is_none(), "{verdict}");

    // The same evidence charged to another worker is found forged, which the record does not say.
    let other = SlashEntry {
        worker: Identity::generate().id().as_bytes().to_vec(),
        ..entry
    };
    let verdict = reverified(&other).await;
    assert!(!verdict.upheld, "{verdict}");
    assert_eq!(verdict.found, Some(Fault::Forged { rendition: None }));
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
        c.slash_fraction = SlashFraction::from_ppm(PPM).expect("fraction");
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
        c.fault = Some(Cheat::Blank);
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
    let bytes: Vec<u8> = (0..50_000u32).map(|i| (i * 31 + i / 977) as u8).collect();
    let stored = put_bytes(&client, dir.path(), &bytes, 1).await;

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
    // The deleted blob cannot be proven: the worker says so in its answer.
    let recorded = evidence.fault.as_ref().and_then(Fault::from_wire);
    assert!(
        matches!(recorded, Some(Fault::Storage(StorageFault::Refused { .. }))),
        "{recorded:?}"
    );
    assert!(verdict.agrees(), "{verdict}");
    for reason in [reworded(recorded.as_ref().expect("fault")), String::new()] {
        let again = reverified(&with_evidence(&slashes[0], |e| e.reason = reason)).await;
        assert_eq!(again, verdict);
    }
    let legacy = reverified(&with_evidence(&slashes[0], |e| e.fault = None)).await;
    assert!(legacy.upheld && legacy.found == verdict.found, "{legacy}");
    holder.kill().await;
    coordinator.stop().await;
}
