//! Each way a worker can cheat or misbehave is caught, and the job is redone by an honest worker: a cheat
//! built with the worker's `fault-injection` feature takes the job first, an honest worker finishes it.

use std::time::Duration;

use dualrig_proto::profile::Profile;
use dualrig_worker::job::Fault;

use crate::support::{
    RunningCoordinator, RunningWorker, make_clip, outcome, submit, wait_for_workers,
};

/// Runs one job whose first attempt goes to a worker with `fault`, and checks that the honest worker
/// that attaches afterwards delivers it on the second attempt.
async fn cheat_is_caught_and_the_job_redone(fault: Fault, job_timeout: Duration) {
    let media = tempfile::tempdir().expect("tempdir");
    let segment = std::fs::read(make_clip(media.path(), "seg.ts", 2, "640x360")).expect("clip");
    let coordinator = RunningCoordinator::start(|c| {
        c.worker_wait = Duration::from_secs(30);
        c.job_timeout = job_timeout;
        c.content_check_share = 1.0;
    })
    .await;
    let client = coordinator.client().await;

    let cheat = RunningWorker::start_with(&coordinator.url, |c| c.fault = Some(fault)).await;
    wait_for_workers(&client, 1).await;
    let profiles = Profile::parse_list("360p,240p").expect("ladder");
    let job = submit(&client, &segment, &profiles, "fault");
    // The only worker gets the job; the honest one attaches once the cheat holds it (or already failed).
    let mut taken = false;
    for _ in 0..3000 {
        let listed = client.list_workers().await.expect("workers");
        if listed
            .iter()
            .any(|w| w.free_sessions == 0 || w.jobs_failed > 0)
        {
            taken = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(taken, "the cheat never took the job");
    let honest = RunningWorker::start(&coordinator.url).await;

    let response = outcome(job)
        .await
        .unwrap_or_else(|e| panic!("{fault:?}: the job completes on the honest worker: {e}"));
    assert_eq!(
        response.worker_id,
        honest.id.as_bytes().to_vec(),
        "{fault:?}: the cheat's result was accepted"
    );
    assert_eq!(response.attempts, 2, "{fault:?}");
    assert_eq!(response.renditions.len(), 2);
    if fault != Fault::Stall {
        let listed = client.list_workers().await.expect("workers");
        if let Some(record) = listed.iter().find(|w| w.worker_id == cheat.id.as_bytes()) {
            assert_eq!((record.jobs_done, record.jobs_failed), (0, 1), "{fault:?}");
        }
    }
    cheat.kill().await;
    honest.kill().await;
    coordinator.stop().await;
}

const QUICK: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blank_renditions_fail_the_content_check() {
    cheat_is_caught_and_the_job_redone(Fault::Blank, QUICK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_video_fails_the_content_check() {
    cheat_is_caught_and_the_job_redone(Fault::OtherVideo, QUICK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrong_size_is_refused() {
    cheat_is_caught_and_the_job_redone(Fault::WrongSize, QUICK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropped_frames_are_refused() {
    cheat_is_caught_and_the_job_redone(Fault::DropFrames, QUICK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_is_refused() {
    cheat_is_caught_and_the_job_redone(Fault::Garbage, QUICK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forged_signature_is_refused() {
    cheat_is_caught_and_the_job_redone(Fault::WrongSignature, QUICK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_job_moves_on_after_the_job_timeout() {
    cheat_is_caught_and_the_job_redone(Fault::Stall, Duration::from_secs(4)).await;
}

/// The control for the two content-check tests: with the content check off, blank renditions pass the
/// structural check, so it is the content check that refuses them above.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_content_check_blank_renditions_get_through() {
    let media = tempfile::tempdir().expect("tempdir");
    let segment = std::fs::read(make_clip(media.path(), "seg.ts", 2, "640x360")).expect("clip");
    let coordinator = RunningCoordinator::start(|c| {
        c.content_check_share = 0.0;
        c.content_check_first_jobs = 0;
    })
    .await;
    let client = coordinator.client().await;
    let cheat = RunningWorker::start_with(&coordinator.url, |c| c.fault = Some(Fault::Blank)).await;
    wait_for_workers(&client, 1).await;
    let profiles = Profile::parse_list("240p").expect("ladder");
    let response = tokio::time::timeout(
        Duration::from_secs(120),
        client.transcode_segment(segment, &profiles, "unchecked"),
    )
    .await
    .expect("nothing hangs")
    .expect("the structural check alone accepts it");
    assert_eq!(response.worker_id, cheat.id.as_bytes().to_vec());
    assert_eq!(response.attempts, 1);
    cheat.kill().await;
    coordinator.stop().await;
}
