//! One job outlives three bad workers in turn: the one holding it is killed, the next stalls past the job
//! timeout, the next disconnects; the fourth attempt, on an honest worker, delivers a verified ladder.

use std::collections::HashSet;
use std::time::Duration;

use dualrig_worker::job::Fault;

use crate::failover::HoldingWorker;
use crate::support::{
    RunningCoordinator, RunningWorker, list_slashes, make_clip, outcome, small_profile, submit,
    wait_for_workers, wait_until_holding,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_survives_its_workers_being_killed_stalled_and_disconnected_in_turn() {
    let media = tempfile::tempdir().expect("tempdir");
    let segment = std::fs::read(make_clip(media.path(), "seg.ts", 1, "320x180")).expect("clip");
    let coordinator = RunningCoordinator::start(|c| {
        // Three failed attempts, then the one that delivers.
        c.max_attempts = 4;
        c.job_timeout = Duration::from_secs(4);
        c.worker_wait = Duration::from_secs(60);
        c.content_check_share = 1.0;
    })
    .await;
    let client = coordinator.client().await;
    let profiles = vec![
        small_profile("90p", 160, 90, 200_000),
        small_profile("54p", 96, 54, 100_000),
    ];

    // 1. Killed. A real worker, built to hold its job (`--fault stall`) so the kill surely lands while
    // it has the job rather than after it answered.
    let killed =
        RunningWorker::start_with(&coordinator.url, |c| c.fault = Some(Fault::Stall)).await;
    let killed_id = killed.id;
    wait_for_workers(&client, 1).await;
    let job = submit(&client, &segment, &profiles, "survivor");
    wait_until_holding(&client, &killed_id).await;
    killed.kill().await;

    // 2. Stalls: takes the job and says nothing until well after the job timeout.
    let stalled =
        RunningWorker::start_with(&coordinator.url, |c| c.fault = Some(Fault::Stall)).await;
    wait_until_holding(&client, &stalled.id).await;

    // 3. Disconnects: attached while the stalled worker holds the job, it is the only one left to get it
    // when the stall times out; it drops its connection once an honest worker is there to take over.
    let mut dropping = HoldingWorker::attach(&coordinator.url).await;
    tokio::time::timeout(Duration::from_secs(60), dropping.next_job())
        .await
        .expect("the job moves on from the stalled worker after the job timeout");
    assert!(!job.is_finished(), "the job ended before its third attempt");
    let honest = RunningWorker::start(&coordinator.url).await;
    wait_for_workers(&client, 3).await;
    dropping.die();

    // 4. The honest worker delivers, on the last attempt allowed.
    let response = outcome(job)
        .await
        .expect("the job survives all three and completes");
    assert_eq!(response.worker_id, honest.id.as_bytes().to_vec());
    assert_eq!(response.attempts, 4);
    let names: Vec<&str> = response
        .renditions
        .iter()
        .map(|r| r.profile.as_str())
        .collect();
    assert_eq!(names, ["90p", "54p"]);

    // The killed and the disconnected workers are gone; the stalled one is still attached. None of the
    // three is a fault that can be proved, so nobody was slashed.
    let listed: HashSet<Vec<u8>> = client
        .list_workers()
        .await
        .expect("workers")
        .into_iter()
        .map(|w| w.worker_id)
        .collect();
    let expected: HashSet<Vec<u8>> = [stalled.id, honest.id]
        .iter()
        .map(|id| id.as_bytes().to_vec())
        .collect();
    assert_eq!(listed, expected);
    assert!(!listed.contains(killed_id.as_bytes().as_slice()));
    assert!(list_slashes(&coordinator.url, None).await.is_empty());

    stalled.kill().await;
    honest.kill().await;
    coordinator.stop().await;
}
