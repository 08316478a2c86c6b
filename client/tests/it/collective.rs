//! `dualrig collective` and a gated `dualrig get` through the real binary against a real coordinator:
//! what the owner, a member and a stranger each see.

use std::path::Path;
use std::time::Duration;

use crate::support::{CoordinatorProcess, RunningWorker, dualrig, wait_for_idle_workers};

fn ok(url: &str, key: &Path, args: &[&str]) -> String {
    let (ok, stdout, stderr) = dualrig(url, key, args);
    assert!(ok, "dualrig {args:?} failed: {stderr}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_members_get_a_collectives_file_through_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let coordinator = CoordinatorProcess::start(dir.path(), 0);
    let worker = RunningWorker::start(&coordinator.url).await;
    wait_for_idle_workers(&coordinator.url, 1).await;
    let url = coordinator.url.clone();
    let owner = dir.path().join("owner.key");
    let member = dir.path().join("member.key");

    let (refused, _, stderr) = dualrig(&url, &owner, &["collective", "create", "Films"]);
    assert!(!refused && stderr.contains("may hold only"), "{stderr}");
    ok(
        &url,
        &owner,
        &[
            "collective",
            "create",
            "films",
            "--free-bytes",
            "100000",
            "--replicas",
            "1",
        ],
    );

    let file = dir.path().join("clip.bin");
    let bytes: Vec<u8> = (0..50_000u32).map(|i| (i % 241) as u8).collect();
    std::fs::write(&file, &bytes).expect("write");
    let file_arg = file.to_str().expect("utf-8");
    let mut put = String::new();
    for _ in 0..200 {
        let (done, stdout, stderr) = dualrig(
            &url,
            &owner,
            &["put", file_arg, "--replicas", "1", "--collective", "films"],
        );
        if done {
            put = stdout;
            break;
        }
        assert!(stderr.contains("room"), "{stderr}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let root = put
        .split_whitespace()
        .next()
        .expect("root printed")
        .to_owned();
    assert_eq!(root, blake3::hash(&bytes).to_hex().as_str());
    ok(&url, &owner, &["collective", "add", "films", &root]);

    let out = dir.path().join("got.bin");
    let out_arg = out.to_str().expect("utf-8");
    let (fetched, _, stderr) = dualrig(&url, &member, &["get", &root, "-o", out_arg]);
    assert!(!fetched, "a stranger fetched it");
    assert!(
        stderr.contains("collective 'films'") && stderr.contains("access stake of 0 units"),
        "{stderr}"
    );
    assert!(!out.exists());

    ok(&url, &member, &["collective", "join", "films"]);
    ok(&url, &member, &["get", &root, "-o", out_arg]);
    assert_eq!(std::fs::read(&out).expect("read"), bytes);
    let (anonymous, _, stderr) =
        dualrig(&url, &member, &["get", &root, "-o", out_arg, "--anonymous"]);
    assert!(
        !anonymous && stderr.contains("collective 'films'"),
        "{stderr}"
    );

    let listed = ok(&url, &member, &["collective", "ls"]);
    assert!(
        listed.contains("films") && listed.contains("members 1") && listed.contains("blobs 1"),
        "{listed}"
    );
    let one = ok(&url, &member, &["collective", "ls", "films"]);
    assert!(one.contains(&root), "{one}");

    ok(&url, &member, &["collective", "leave", "films"]);
    let (after, _, stderr) = dualrig(&url, &member, &["get", &root, "-o", out_arg]);
    assert!(!after && stderr.contains("not a member"), "{stderr}");
    let (again, _, stderr) = dualrig(&url, &member, &["collective", "leave", "films"]);
    assert!(
        !again && stderr.contains("not a member of collective 'films'"),
        "{stderr}"
    );
    worker.stop().await;
    coordinator.kill();
}
