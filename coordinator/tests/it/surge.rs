//! Surge pricing (PROTOCOL §6.8): a blob many clients fetch within the demand window gets a price
//! multiplier above ×1, shown in its quote, in `ListBlobs` and by `BlobService::surge_multiplier_ppm`,
//! and an extra copy; once the window passes without demand it is back to ×1.

use std::time::Duration;

use dualrig_coordinator::storage::surge::{SurgeRules, UNIT_PPM};
use dualrig_proto::v1::DownloadQuoteRequest;

use crate::support::{RunningCoordinator, RunningWorker, put_bytes, wait_for_workers};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_blob_many_clients_fetch_surges_gains_a_copy_and_cools_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    // One holder serves 1000 B/s: 10 000 bytes a window. Four fetches of 20 000 bytes saturate it.
    let coordinator = RunningCoordinator::start(|c| {
        c.replicas = 1;
        c.surge = SurgeRules {
            window: Duration::from_secs(10),
            serve_bytes_per_sec: 1_000,
            threshold_ppm: 1_000_000,
            max_multiplier_ppm: 4_000_000,
            extra_replicas: 1,
        };
    })
    .await;
    let client = coordinator.client().await;
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(RunningWorker::start(&coordinator.url).await);
    }
    wait_for_workers(&client, 3).await;
    let bytes: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let stored = put_bytes(&client, dir.path(), &bytes, 1).await;
    let root = *stored.root.as_bytes();
    let storage = coordinator.storage.clone();
    assert_eq!(
        storage.surge_multiplier_ppm(&root),
        UNIT_PPM,
        "cold at first"
    );
    let listed = client.list_blobs().await.expect("ls");
    assert_eq!(listed[0].surge_multiplier_ppm, UNIT_PPM);

    for n in 0..4 {
        let reader = coordinator.client().await;
        let out = dir.path().join(format!("out{n}"));
        reader
            .get_to_file(root, 0, None, &out)
            .await
            .expect("fetched");
        assert_eq!(std::fs::read(&out).expect("read"), bytes);
    }
    let hot = storage.surge_multiplier_ppm(&root);
    assert!(hot > UNIT_PPM, "multiplier {hot} after four fetches");
    let listed = client.list_blobs().await.expect("ls");
    assert!(listed[0].surge_multiplier_ppm > UNIT_PPM, "{listed:?}");
    let quote = client
        .api()
        .download_quote(DownloadQuoteRequest {
            root: root.to_vec(),
            ..DownloadQuoteRequest::default()
        })
        .await
        .expect("quote")
        .into_inner();
    assert!(quote.surge_multiplier_ppm > UNIT_PPM, "{quote:?}");

    // Repair keeps an extra copy while the blob is hot.
    let index = storage.index();
    let mut holders = 0;
    for _ in 0..1200 {
        holders = index
            .blob(&root)
            .expect("index")
            .map(|b| b.holders.len())
            .unwrap_or(0);
        if holders >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(holders, 2, "one copy more than the replicas while hot");

    // No more demand: the window slides past it and the multiplier falls back to ×1.
    let mut now = hot;
    for _ in 0..2400 {
        now = storage.surge_multiplier_ppm(&root);
        if now == UNIT_PPM {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(now, UNIT_PPM, "the surge decays once demand stops");
    let listed = client.list_blobs().await.expect("ls");
    assert_eq!(listed[0].surge_multiplier_ppm, UNIT_PPM);
    for worker in workers {
        worker.kill().await;
    }
    coordinator.stop().await;
}
