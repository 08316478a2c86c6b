//! Encoder sessions counted from verified work only (PROTOCOL §6.13): a worker that announces four
//! sessions and returns a bad result proves none, and an honest worker given its jobs one after another
//! proves one, whatever it announced.

use std::num::NonZeroU32;
use std::time::Duration;

use dualrig_proto::profile::Profile;
use dualrig_worker::config::Sessions;
use dualrig_worker::job::Fault;

use crate::support::{
    RunningCoordinator, RunningWorker, make_clip, outcome, submit, wait_for_workers,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_a_worker_announces_but_does_not_prove_earn_nothing() {
    let media = tempfile::tempdir().expect("tempdir");
    let segment = std::fs::read(make_clip(media.path(), "seg.ts", 1, "320x180")).expect("clip");
    let coordinator = RunningCoordinator::start(|c| {
        c.worker_wait = Duration::from_secs(30);
        c.capacity_bonus_per_session = 1_000;
    })
    .await;
    let client = coordinator.client().await;
    let four = Sessions::Fixed(NonZeroU32::new(4).expect("four"));

    let cheat = RunningWorker::start_with(&coordinator.url, |c| {
        c.fault = Some(Fault::Garbage);
        c.sessions = four;
    })
    .await;
    let cheat_id = cheat.id;
    wait_for_workers(&client, 1).await;
    let profiles = Profile::parse_list("240p").expect("ladder");
    let job = submit(&client, &segment, &profiles, "cheat first");
    // The cheat takes the job first; the honest worker attaches once it has failed it.
    for _ in 0..3000 {
        let listed = client.list_workers().await.expect("workers");
        if listed.iter().any(|w| w.jobs_failed > 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let honest = RunningWorker::start_with(&coordinator.url, |c| c.sessions = four).await;
    let response = outcome(job).await.expect("the honest worker finishes it");
    assert_eq!(response.worker_id, honest.id.as_bytes().to_vec());
    assert!(
        coordinator
            .ledger
            .session_proofs(&cheat_id)
            .expect("proofs")
            .is_empty(),
        "a refused result proved a session"
    );
    cheat.kill().await;

    // Three more jobs, each after the last came back: never two at once.
    for n in 0..3 {
        let job = submit(&client, &segment, &profiles, "one at a time");
        let response = outcome(job).await.expect("job");
        assert_eq!(response.worker_id, honest.id.as_bytes().to_vec(), "job {n}");
    }
    let round = coordinator.ledger.round().expect("round");
    let proofs = coordinator
        .ledger
        .session_proofs(&honest.id)
        .expect("proofs");
    assert!(
        proofs
            .iter()
            .all(|(r, sessions)| *r <= round && *sessions == 1),
        "{proofs:?}"
    );
    assert!(!proofs.is_empty(), "verified jobs proved nothing");
    // The fund is empty, so the first session's bonus is nothing: a count, never a claim, and never
    // more than the fund.
    let bonuses = coordinator
        .ledger
        .session_bonuses(&honest.id)
        .expect("bonuses");
    assert_eq!(
        bonuses
            .iter()
            .map(|b| (b.added_sessions, b.bonus))
            .collect::<Vec<_>>(),
        vec![(1, 0)]
    );
    assert!(
        coordinator
            .ledger
            .session_bonuses(&cheat_id)
            .expect("bonuses")
            .is_empty()
    );
    honest.kill().await;
    coordinator.stop().await;
}
