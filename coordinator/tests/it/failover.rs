//! Jobs keep flowing when workers die, stall, or are absent.

use std::time::Duration;

use dualrig_proto::identity::{Identity, registration_message};
use dualrig_proto::profile::Profile;
use dualrig_proto::v1::coordinator_client::CoordinatorClient;
use dualrig_proto::v1::{
    Capabilities, Heartbeat, HelloRequest, RegisterRequest, WorkerCommand, WorkerEvent,
    worker_command, worker_event,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::support::{
    RunningCoordinator, RunningWorker, make_clip, outcome, submit, wait_for_workers, write_genesis,
};

/// A protocol-level worker the test controls: it registers honestly, takes a job, and answers nothing.
pub struct HoldingWorker {
    identity: Identity,
    events: Option<mpsc::Sender<WorkerEvent>>,
    heartbeats: tokio::task::JoinHandle<()>,
    commands: tonic::Streaming<WorkerCommand>,
}

impl HoldingWorker {
    pub async fn attach(url: &str) -> Self {
        Self::attach_as(url, Identity::generate()).await
    }

    /// Attaches under a key the test chose, so it can give that worker stake first.
    pub async fn attach_as(url: &str, identity: Identity) -> Self {
        Self::attach_with(url, identity, None).await
    }

    /// Attaches under `identity`, publishing `params` as its ticket params.
    pub async fn attach_with(
        url: &str,
        identity: Identity,
        params: Option<dualrig_proto::v1::TicketParams>,
    ) -> Self {
        let mut api = CoordinatorClient::<Channel>::connect(url.to_owned())
            .await
            .expect("connect");
        let id = identity.id();
        let hello = api
            .hello(HelloRequest {
                for_get: false,
                worker_id: id.as_bytes().to_vec(),
            })
            .await
            .expect("hello")
            .into_inner();
        let token = api
            .register(RegisterRequest {
                worker_id: id.as_bytes().to_vec(),
                signature: identity
                    .sign(&registration_message(&hello.nonce, &id))
                    .to_vec(),
                nonce: hello.nonce,
                capabilities: Some(Capabilities {
                    encoders: vec!["libx264".into()],
                    selected_encoder: "libx264".into(),
                    sessions: 1,
                    max_width: 4096,
                    max_height: 2304,
                    ticket_params: params,
                    ..Capabilities::default()
                }),
                version: "test".into(),
            })
            .await
            .expect("register")
            .into_inner()
            .session_token;
        let (events, outbound) = mpsc::channel(8);
        let mut request = tonic::Request::new(ReceiverStream::new(outbound));
        request.metadata_mut().insert(
            dualrig_proto::SESSION_METADATA_KEY,
            token.parse().expect("ascii token"),
        );
        let commands = api.attach(request).await.expect("attach").into_inner();
        let beats = events.clone();
        let heartbeats = tokio::spawn(async move {
            loop {
                let beat = WorkerEvent {
                    event: Some(worker_event::Event::Heartbeat(Heartbeat {
                        sent_unix_ms: 0,
                    })),
                };
                if beats.send(beat).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Self {
            identity,
            events: Some(events),
            heartbeats,
            commands,
        }
    }

    /// Answers a job with renditions that are signed and hashed correctly but are not video.
    pub async fn answer_with_garbage(&self, job_id: &str, profiles: &[Profile]) {
        let renditions: Vec<_> = profiles
            .iter()
            .map(|p| dualrig_proto::result::rendition(&p.name, vec![0x47; 188 * 10]))
            .collect();
        let signature = dualrig_proto::result::sign_result(&self.identity, job_id, &renditions);
        let result = dualrig_proto::v1::JobResult {
            job_id: job_id.to_owned(),
            renditions,
            signature: signature.to_vec(),
            encoder: "libx264".into(),
            transcode_ms: 1,
        };
        self.events
            .as_ref()
            .expect("attached")
            .send(WorkerEvent {
                event: Some(worker_event::Event::Result(result)),
            })
            .await
            .expect("stream open");
    }

    /// Keeps the connection open but sends nothing more, as a hung process would.
    pub fn go_silent(&self) {
        self.heartbeats.abort();
    }

    /// Waits for the next job to arrive.
    pub async fn next_job(&mut self) -> String {
        loop {
            let command = self
                .commands
                .message()
                .await
                .expect("stream")
                .expect("open stream");
            if let Some(worker_command::Command::Job(job)) = command.command {
                return job.job_id;
            }
        }
    }

    /// Closes the connection as a crashed process would.
    pub fn die(mut self) {
        self.heartbeats.abort();
        self.events.take();
    }

    /// Its id, its event sender and its command stream, for tests that script other exchanges; the
    /// heartbeats go on.
    pub fn parts(
        &mut self,
    ) -> (
        dualrig_proto::identity::PublicId,
        mpsc::Sender<WorkerEvent>,
        &mut tonic::Streaming<WorkerCommand>,
    ) {
        (
            self.identity.id(),
            self.events.clone().expect("attached"),
            &mut self.commands,
        )
    }
}

fn segment_of(dir: &std::path::Path) -> Vec<u8> {
    let clip = make_clip(dir, "seg.ts", 2, "640x360");
    std::fs::read(clip).expect("read clip")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_moves_on_when_its_worker_dies_holding_it() {
    let media = tempfile::tempdir().expect("tempdir");
    let segment = segment_of(media.path());
    let coordinator = RunningCoordinator::start(|c| c.worker_wait = Duration::from_secs(20)).await;
    let client = coordinator.client().await;

    let mut holder = HoldingWorker::attach(&coordinator.url).await;
    wait_for_workers(&client, 1).await;
    let profiles = Profile::parse_list("360p,240p").expect("ladder");
    let job = submit(&client, &segment, &profiles, "failover");
    let _job_id = tokio::time::timeout(Duration::from_secs(60), holder.next_job())
        .await
        .expect("the only worker gets the job");

    let honest = RunningWorker::start(&coordinator.url).await;
    wait_for_workers(&client, 2).await;
    holder.die();

    let response = outcome(job)
        .await
        .expect("job completes on the other worker");
    assert_eq!(response.worker_id, honest.id.as_bytes().to_vec());
    assert_eq!(response.attempts, 2);
    assert_eq!(response.renditions.len(), 2);
    honest.kill().await;
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_moves_on_when_its_worker_goes_silent() {
    let media = tempfile::tempdir().expect("tempdir");
    let segment = segment_of(media.path());
    let coordinator = RunningCoordinator::start(|c| c.worker_wait = Duration::from_secs(20)).await;
    let client = coordinator.client().await;

    // This worker takes the job, then keeps its connection open but falls silent.
    let mut silent = HoldingWorker::attach(&coordinator.url).await;
    wait_for_workers(&client, 1).await;
    let profiles = Profile::parse_list("240p").expect("ladder");
    let job = submit(&client, &segment, &profiles, "silent");
    tokio::time::timeout(Duration::from_secs(60), silent.next_job())
        .await
        .expect("the only worker gets the job");
    silent.go_silent();
    let honest = RunningWorker::start(&coordinator.url).await;

    let response = outcome(job)
        .await
        .expect("job completes on the other worker");
    assert_eq!(response.worker_id, honest.id.as_bytes().to_vec());
    drop(silent);
    honest.kill().await;
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_worker_gives_unavailable_after_a_bounded_wait() {
    let media = tempfile::tempdir().expect("tempdir");
    let segment = segment_of(media.path());
    let coordinator =
        RunningCoordinator::start(|c| c.worker_wait = Duration::from_millis(500)).await;
    let client = coordinator.client().await;
    let profiles = Profile::parse_list("240p").expect("ladder");
    let err = tokio::time::timeout(
        Duration::from_secs(60),
        client.transcode_segment(segment, &profiles, "nobody"),
    )
    .await
    .expect("a bounded wait, not a hang")
    .expect_err("no worker");
    assert_eq!(err.code(), Some(tonic::Code::Unavailable), "{err}");
    assert!(err.to_string().contains("no worker"), "{err}");
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_reconnects_when_the_coordinator_comes_back() {
    let first = RunningCoordinator::start(|_| {}).await;
    let addr = first.addr;
    let worker = RunningWorker::start(&first.url).await;
    wait_for_workers(&first.client().await, 1).await;
    first.stop().await;

    let second = RunningCoordinator::start(|c| c.listen = addr).await;
    let client = second.client().await;
    tokio::time::timeout(Duration::from_secs(60), wait_for_workers(&client, 1))
        .await
        .expect("the worker comes back on its own");
    let listed = client.list_workers().await.expect("workers");
    assert_eq!(listed[0].worker_id, worker.id.as_bytes().to_vec());
    worker.kill().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_result_that_fails_verification_is_redone_elsewhere() {
    let media = tempfile::tempdir().expect("tempdir");
    let segment = segment_of(media.path());
    let coordinator = RunningCoordinator::start(|c| c.worker_wait = Duration::from_secs(20)).await;
    let client = coordinator.client().await;

    let mut cheat = HoldingWorker::attach(&coordinator.url).await;
    wait_for_workers(&client, 1).await;
    let profiles = Profile::parse_list("360p,240p").expect("ladder");
    let job = submit(&client, &segment, &profiles, "cheat");
    let job_id = tokio::time::timeout(Duration::from_secs(60), cheat.next_job())
        .await
        .expect("the only worker gets the job");
    let honest = RunningWorker::start(&coordinator.url).await;
    wait_for_workers(&client, 2).await;
    cheat.answer_with_garbage(&job_id, &profiles).await;

    let response = outcome(job)
        .await
        .expect("job completes on the honest worker");
    assert_eq!(response.worker_id, honest.id.as_bytes().to_vec());
    assert_eq!(response.attempts, 2);
    let listed = client.list_workers().await.expect("workers");
    let cheat_record = listed
        .iter()
        .find(|w| w.worker_id != honest.id.as_bytes().to_vec())
        .expect("cheat still listed");
    assert_eq!((cheat_record.jobs_done, cheat_record.jobs_failed), (0, 1));
    cheat.die();
    honest.kill().await;
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_staked_worker_whose_result_fails_verification_is_slashed_and_suspended() {
    let media = tempfile::tempdir().expect("tempdir");
    let segment = segment_of(media.path());
    let cheat_key = Identity::from_secret([31; 32]);
    let cheat_id = cheat_key.id();
    let genesis = media.path().join("genesis.toml");
    write_genesis(&genesis, &[(cheat_id, 10_000_000)]);
    let coordinator = RunningCoordinator::start(|c| {
        c.worker_wait = Duration::from_secs(20);
        c.genesis = Some(genesis.clone());
        c.slash_fraction =
            dualrig_coordinator::ledger::SlashFraction::from_ppm(250_000).expect("fraction");
        c.suspend_rounds = 5;
    })
    .await;
    let client = coordinator.client().await;
    client
        .execute(
            &cheat_key,
            dualrig_proto::ledger_request::Operation::Bond { amount: 8_000_000 },
        )
        .await
        .expect("the cheat bonds");

    let mut cheat = HoldingWorker::attach_as(&coordinator.url, cheat_key).await;
    wait_for_workers(&client, 1).await;
    let profiles = Profile::parse_list("360p,240p").expect("ladder");
    let job = submit(&client, &segment, &profiles, "cheat");
    let job_id = tokio::time::timeout(Duration::from_secs(60), cheat.next_job())
        .await
        .expect("the only worker gets the job");
    let honest = RunningWorker::start(&coordinator.url).await;
    wait_for_workers(&client, 2).await;
    cheat.answer_with_garbage(&job_id, &profiles).await;

    let response = outcome(job)
        .await
        .expect("job completes on the honest worker");
    assert_eq!(response.worker_id, honest.id.as_bytes().to_vec());
    assert_eq!(response.attempts, 2);

    // A quarter of the bond went to the pool, with the signed result as evidence.
    let account = client.account(cheat_id).await.expect("account");
    assert_eq!(
        (account.stake, account.bonded_to_self),
        (6_000_000, 6_000_000)
    );
    assert_eq!(account.suspended_until, account.round + 5);
    assert_eq!(coordinator.ledger.pool_balance().expect("pool"), 2_000_000);
    assert_eq!(
        coordinator
            .ledger
            .slashes(&cheat_id)
            .expect("slashes")
            .len(),
        1
    );
    // The ledger keeps the verdict; the evidence itself is in the evidence store, served with it.
    let slashes = crate::support::list_slashes(&coordinator.url, Some(cheat_id)).await;
    assert_eq!(slashes.len(), 1);
    let evidence: dualrig_proto::v1::SlashEvidence =
        prost::Message::decode(slashes[0].evidence.as_slice())
            .expect("evidence is a SlashEvidence");
    let Some(dualrig_proto::v1::slash_evidence::Kind::Transcode(evidence)) = evidence.kind else {
        panic!("transcode evidence");
    };
    let evidence = evidence.result.expect("the signed result");
    assert_eq!(evidence.job_id, job_id);
    dualrig_proto::result::verify_result(
        &cheat_id,
        &evidence.job_id,
        &evidence.renditions,
        &evidence.signature,
    )
    .expect("the evidence carries the cheat's own signature");

    // Suspended, it is passed over even when it is the only free worker left.
    honest.kill().await;
    wait_for_workers(&client, 1).await;
    let refused = client
        .transcode_segment(segment_of(media.path()), &profiles, "after")
        .await
        .expect_err("no eligible worker");
    assert_eq!(refused.code(), Some(tonic::Code::Unavailable), "{refused}");
    assert!(
        refused
            .to_string()
            .contains("1 below the minimum stake or suspended"),
        "{refused}"
    );
    // And says how a worker gets drawn.
    assert!(refused.to_string().contains("stake bond"), "{refused}");
    assert!(refused.to_string().contains("--min-stake 0"), "{refused}");
    cheat.die();
    coordinator.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_queues_behind_a_busy_worker_instead_of_failing() {
    let media = tempfile::tempdir().expect("tempdir");
    let segment = segment_of(media.path());
    let coordinator =
        RunningCoordinator::start(|c| c.worker_wait = Duration::from_millis(300)).await;
    let client = coordinator.client().await;

    let mut holder = HoldingWorker::attach(&coordinator.url).await;
    wait_for_workers(&client, 1).await;
    let profiles = Profile::parse_list("240p").expect("ladder");
    let first = submit(&client, &segment, &profiles, "first");
    tokio::time::timeout(Duration::from_secs(60), holder.next_job())
        .await
        .expect("the only worker gets the first job");
    let second = submit(&client, &segment, &profiles, "second");
    // Well past worker_wait: the second job must still be waiting in line, not refused.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !second.is_finished(),
        "a queued job was refused while its worker was busy"
    );

    let honest = RunningWorker::start(&coordinator.url).await;
    let second = outcome(second)
        .await
        .expect("the queued job runs once a worker frees up");
    assert_eq!(second.worker_id, honest.id.as_bytes().to_vec());
    holder.die();
    let first = outcome(first).await.expect("the held job moves on");
    assert_eq!(first.worker_id, honest.id.as_bytes().to_vec());
    honest.kill().await;
    coordinator.stop().await;
}
