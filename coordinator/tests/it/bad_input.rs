//! Bad input gets a clear status and loses nothing: after every case the same coordinator still serves.

use std::time::Duration;

use dualrig_client::DualrigClient;
use dualrig_proto::identity::{Identity, registration_message};
use dualrig_proto::profile::Profile;
use dualrig_proto::v1::coordinator_client::CoordinatorClient;
use dualrig_proto::v1::{
    AccountRequest, HelloRequest, LedgerRequest, ListSlashesRequest, RegisterRequest,
    TranscodeHeader, TranscodeUpload, VideoCodec, transcode_upload,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

use crate::support::{RunningCoordinator, RunningWorker, ffmpeg, make_clip, wait_for_workers};

const LIMIT: u64 = 4 << 20;

fn header(profiles: Vec<dualrig_proto::v1::Profile>, size: usize) -> TranscodeHeader {
    TranscodeHeader {
        profiles,
        segment_size: size as u64,
        label: "bad-input".into(),
        ..TranscodeHeader::default()
    }
}

fn named(name: &str) -> dualrig_proto::v1::Profile {
    dualrig_proto::v1::Profile {
        name: name.into(),
        ..Default::default()
    }
}

fn custom(width: u32, height: u32, bitrate: u64) -> dualrig_proto::v1::Profile {
    dualrig_proto::v1::Profile {
        name: "custom".into(),
        width,
        height,
        fps: 0,
        bitrate,
        codec: VideoCodec::H264 as i32,
    }
}

async fn expect_status(
    client: &DualrigClient,
    case: &str,
    profiles: Vec<dualrig_proto::v1::Profile>,
    segment: Vec<u8>,
    code: Code,
    mentions: &str,
) {
    let size = segment.len();
    let err = tokio::time::timeout(
        Duration::from_secs(60),
        client.transcode_raw(header(profiles, size), segment),
    )
    .await
    .unwrap_or_else(|_| panic!("{case}: no answer"))
    .expect_err(case);
    assert_eq!(err.code(), Some(code), "{case}: {err}");
    assert!(
        err.to_string().to_lowercase().contains(mentions),
        "{case}: message should mention {mentions:?}: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_is_refused_clearly_and_the_servers_keep_serving() {
    let media = tempfile::tempdir().expect("tempdir");
    let good_path = make_clip(media.path(), "good.ts", 2, "640x360");
    let good = std::fs::read(&good_path).expect("clip");
    let coordinator = RunningCoordinator::start(|c| c.max_segment_bytes = LIMIT).await;
    let worker = RunningWorker::start(&coordinator.url).await;
    let client = coordinator.client().await;
    wait_for_workers(&client, 1).await;
    let ok = vec![named("240p")];

    expect_status(
        &client,
        "empty segment",
        ok.clone(),
        vec![],
        Code::InvalidArgument,
        "empty",
    )
    .await;
    let noise: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    expect_status(
        &client,
        "random bytes",
        ok.clone(),
        noise,
        Code::InvalidArgument,
        "segment",
    )
    .await;
    let truncated = good[..good.len() / 2 + 77].to_vec();
    expect_status(
        &client,
        "truncated TS",
        ok.clone(),
        truncated,
        Code::InvalidArgument,
        "truncated",
    )
    .await;

    let audio_path = media.path().join("audio.ts");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        "2",
        "-c:a",
        "aac",
        audio_path.to_str().expect("utf-8"),
    ]);
    let audio = std::fs::read(&audio_path).expect("audio");
    expect_status(
        &client,
        "audio only",
        ok.clone(),
        audio,
        Code::InvalidArgument,
        "no video",
    )
    .await;

    expect_status(
        &client,
        "unknown profile",
        vec![named("999p")],
        good.clone(),
        Code::InvalidArgument,
        "999p",
    )
    .await;
    expect_status(
        &client,
        "odd width",
        vec![custom(641, 360, 800_000)],
        good.clone(),
        Code::InvalidArgument,
        "even",
    )
    .await;
    expect_status(
        &client,
        "zero height",
        vec![custom(640, 0, 800_000)],
        good.clone(),
        Code::InvalidArgument,
        "non-zero",
    )
    .await;
    expect_status(
        &client,
        "zero size",
        vec![custom(0, 0, 800_000)],
        good.clone(),
        Code::InvalidArgument,
        "unknown profile",
    )
    .await;
    expect_status(
        &client,
        "above 4096x2304",
        vec![custom(4096, 2306, 800_000)],
        good.clone(),
        Code::InvalidArgument,
        "4096x2304",
    )
    .await;
    expect_status(
        &client,
        "zero bitrate",
        vec![custom(640, 360, 0)],
        good.clone(),
        Code::InvalidArgument,
        "bitrate",
    )
    .await;
    expect_status(
        &client,
        "no profiles",
        vec![],
        good.clone(),
        Code::InvalidArgument,
        "no profiles",
    )
    .await;
    let oversized = vec![0x47u8; LIMIT as usize + 188];
    expect_status(
        &client,
        "over the size limit",
        ok.clone(),
        oversized,
        Code::ResourceExhausted,
        "limit",
    )
    .await;

    // A header that lies about the size: fewer bytes arrive than announced.
    let mut api = client.api();
    let parts = vec![
        TranscodeUpload {
            part: Some(transcode_upload::Part::Header(header(ok.clone(), 1000))),
        },
        TranscodeUpload {
            part: Some(transcode_upload::Part::Chunk(vec![0; 10])),
        },
    ];
    let err = api
        .transcode(tokio_stream::iter(parts))
        .await
        .expect_err("short upload");
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("10 of the 1000"), "{err}");

    // A client that disconnects mid-upload.
    let (tx, rx) = mpsc::channel(4);
    tx.send(TranscodeUpload {
        part: Some(transcode_upload::Part::Header(header(
            ok.clone(),
            good.len(),
        ))),
    })
    .await
    .expect("send header");
    tx.send(TranscodeUpload {
        part: Some(transcode_upload::Part::Chunk(good[..4096].to_vec())),
    })
    .await
    .expect("send chunk");
    let mut dropped_api = CoordinatorClient::connect(coordinator.url.clone())
        .await
        .expect("connect");
    let call = tokio::spawn(async move { dropped_api.transcode(ReceiverStream::new(rx)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    call.abort();
    drop(tx);

    // A worker whose signature does not match its id.
    let mut raw = client.api();
    let claimed = Identity::generate();
    let signer = Identity::generate();
    let hello = raw
        .hello(HelloRequest {
            for_get: false,
            worker_id: claimed.id().as_bytes().to_vec(),
        })
        .await
        .expect("hello")
        .into_inner();
    let err = raw
        .register(RegisterRequest {
            worker_id: claimed.id().as_bytes().to_vec(),
            signature: signer
                .sign(&registration_message(&hello.nonce, &claimed.id()))
                .to_vec(),
            nonce: hello.nonce,
            capabilities: None,
            version: "test".into(),
        })
        .await
        .expect_err("impostor refused");
    assert_eq!(err.code(), Code::Unauthenticated, "{err}");
    assert!(err.message().contains("does not match worker id"), "{err}");
    // A malformed id is the caller's mistake, with one code on every RPC that takes one: too short, or
    // a small-order point (the identity, y = 1), which would verify signatures nobody made.
    let mut small_order = vec![0u8; 32];
    small_order[0] = 1;
    for bad in [vec![1, 2, 3], small_order] {
        let codes = [
            raw.hello(HelloRequest {
                for_get: false,
                worker_id: bad.clone(),
            })
            .await
            .map(|_| ()),
            raw.account(AccountRequest {
                account: bad.clone(),
            })
            .await
            .map(|_| ()),
            raw.execute(LedgerRequest {
                account: bad.clone(),
                nonce: 1,
                operation: vec![0],
                sig: vec![0; 64],
            })
            .await
            .map(|_| ()),
            raw.list_slashes(ListSlashesRequest {
                worker: bad.clone(),
                ..ListSlashesRequest::default()
            })
            .await
            .map(|_| ()),
        ];
        for (rpc, outcome) in ["Hello", "Account", "Execute", "ListSlashes"]
            .iter()
            .zip(codes)
        {
            let err = outcome.expect_err("a malformed id is refused");
            assert_eq!(err.code(), Code::InvalidArgument, "{rpc} {bad:?}: {err}");
        }
    }
    let err = raw
        .attach(tokio_stream::iter(Vec::new()))
        .await
        .expect_err("attach without a session refused");
    assert_eq!(err.code(), Code::Unauthenticated, "{err}");

    // Still serving: health says so, the honest worker is still attached, and a good job goes through.
    let channel = tonic::transport::Endpoint::from_shared(coordinator.url.clone())
        .expect("url")
        .connect()
        .await
        .expect("health channel");
    let mut health = HealthClient::new(channel);
    let status = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health")
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);
    assert_eq!(client.list_workers().await.expect("workers").len(), 1);
    let profiles = Profile::parse_list("240p").expect("ladder");
    let response = client
        .transcode_segment(good, &profiles, "after-bad-input")
        .await
        .expect("a good job still goes through");
    assert_eq!(response.renditions.len(), 1);

    worker.kill().await;
    coordinator.stop().await;
}
