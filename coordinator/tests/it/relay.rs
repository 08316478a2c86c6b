//! Jobs and blobs across coordinators (PROTOCOL §8.4): three real coordinator binaries on one
//! PostgreSQL database, workers attached to two of them, clients talking to the third. Every job the
//! third takes goes to a worker attached elsewhere over a link and comes back verified; a blob put
//! through one coordinator lands on workers attached to others and comes back byte-identical through
//! another; a peer with a throwaway key cannot open a link.

use std::time::Duration;

use dualrig_client::DualrigClient;
use dualrig_proto::identity::{Identity, PublicId};
use dualrig_proto::v1::peer_client::PeerClient;
use dualrig_proto::v1::{LinkOpen, LinkUp, link_up};

use crate::support::{
    CoordinatorProcess, RunningWorker, file_hash, make_lavfi_clip, random_file, small_profile,
};

fn start(dir: &std::path::Path, url: &str) -> CoordinatorProcess {
    CoordinatorProcess::start(dir, &["--database-url", url, "--round-secs", "1"])
}

/// Waits until `client`'s coordinator lists `n` workers, attached to it or reached over its links.
async fn wait_listed(client: &DualrigClient, n: usize) {
    for _ in 0..400 {
        if client.list_workers().await.expect("list workers").len() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the coordinator never listed {n} workers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_and_blobs_cross_coordinators_and_a_throwaway_key_cannot_link() {
    let Some(url) = crate::cluster::postgres_or_rerun(
        "relay::jobs_and_blobs_cross_coordinators_and_a_throwaway_key_cannot_link",
    ) else {
        return;
    };
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    // One creates the tables; the others find them.
    let a = start(dirs[0].path(), &url);
    let b = start(dirs[1].path(), &url);
    let c = start(dirs[2].path(), &url);
    let on_b = RunningWorker::start(&b.url).await;
    let on_c = RunningWorker::start(&c.url).await;
    let client_a = DualrigClient::connect(&a.url).await.expect("connect A");
    let client_c = DualrigClient::connect(&c.url).await.expect("connect C");
    // A has no worker of its own: it lists B's and C's over its links to them.
    wait_listed(&client_a, 2).await;
    wait_listed(&client_c, 2).await;

    let work = tempfile::tempdir().expect("tempdir");
    let clip = make_lavfi_clip(
        work.path(),
        "src.ts",
        "testsrc2=size=160x90:rate=30,format=yuv420p",
        0.5,
    );
    let segment = std::fs::read(&clip).expect("segment");
    let profiles = vec![small_profile("72p", 128, 72, 180_000)];
    let remote = [on_b.id, on_c.id];
    for n in 0..6 {
        let done = tokio::time::timeout(
            Duration::from_secs(120),
            client_a.transcode_segment(segment.clone(), &profiles, "relayed"),
        )
        .await
        .expect("nothing hangs")
        .unwrap_or_else(|e| panic!("job {n} through A: {e}"));
        let worker = PublicId::from_slice("worker", &done.worker_id).expect("worker id");
        assert!(
            remote.contains(&worker),
            "job {n} was done by {worker}, a worker attached to B or C"
        );
        assert_eq!(done.renditions.len(), 1);
        // Decodes: the rendition is real video of the asked size.
        let out = work.path().join(format!("out-{n}.ts"));
        std::fs::write(&out, &done.renditions[0].data).expect("write rendition");
        let info = dualrig_media::inspect(&out).expect("the rendition decodes");
        assert!(info.frames > 0, "frames decode");
        assert_eq!((info.width, info.height), (128, 72));
    }

    // A put through A lands on the workers attached to B and C, and comes back through C.
    let file = random_file(work.path(), "blob", (3 << 20) + 17, 7);
    let put = client_a.put_file(&file, 2).await.expect("put through A");
    let mut holders = put.holders.clone();
    holders.sort();
    let mut expected = remote.to_vec();
    expected.sort();
    assert_eq!(holders, expected, "both copies are on remote workers");
    for worker in [&on_b, &on_c] {
        assert!(
            worker.store.get(&put.root).is_some(),
            "{} holds it",
            worker.id
        );
    }
    let back = work.path().join("back");
    client_c
        .get_to_file(*put.root.as_bytes(), 0, None, &back)
        .await
        .expect("get through C");
    assert_eq!(file_hash(&back), file_hash(&file), "byte-identical");
    let again = work.path().join("again");
    client_a
        .get_to_file(*put.root.as_bytes(), 0, None, &again)
        .await
        .expect("get through A");
    assert_eq!(file_hash(&again), file_hash(&file));

    // A throwaway key speaking the real Peer protocol is refused before anything is listed.
    let throwaway = Identity::from_secret(rand::random());
    let mut peer = PeerClient::connect(b.url.clone()).await.expect("dial B");
    let open = LinkUp {
        message: Some(link_up::Message::Open(LinkOpen {
            coordinator_id: throwaway.id().as_bytes().to_vec(),
            nonce: vec![7; 32],
        })),
    };
    let refused = peer
        .link(futures::stream::iter([open]))
        .await
        .expect_err("an unregistered key is refused");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(
        refused.message().contains("registry"),
        "says why: {}",
        refused.message()
    );
    // B still serves its own clients and links.
    wait_listed(&client_a, 2).await;
    drop((a, b, c));
}
