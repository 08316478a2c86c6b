//! Storage proofs on one core: a worker producing chunk proofs for challenges (the chunk and the
//! siblings read from its store, the proof checked before it is sent, then encoded), and the
//! coordinator checking a whole k = 16 answer against the blob id.
use std::io::Write;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dualrig_coordinator::storage::check_blob_answer;
use dualrig_proto::identity::Identity;
use dualrig_proto::proof::{challenge_indices, chunk_count};
use dualrig_proto::v1::BlobProofs;
use dualrig_worker::hash::CpuHasher;
use dualrig_worker::store::BlobStore;

const BLOB_LEN: u64 = 64 << 20;
const K: u32 = 16;

fn proofs(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("blob");
    let mut file = std::fs::File::create(&input).expect("create");
    let mut block = vec![0u8; 1 << 20];
    for i in 0..(BLOB_LEN >> 20) {
        for (j, b) in block.iter_mut().enumerate() {
            *b = (i as usize * 31 + j * 7) as u8;
        }
        file.write_all(&block).expect("write");
    }
    drop(file);
    let store = BlobStore::open(
        &dir.path().join("store"),
        1 << 30,
        std::sync::Arc::new(CpuHasher::new()),
    )
    .expect("store");
    let info = store.put_file(&input).expect("put");
    let worker = Identity::from_secret([7; 32]).id();
    let chunks = chunk_count(BLOB_LEN);

    let mut group = c.benchmark_group("proofs_64MiB_blob");
    group.throughput(Throughput::Elements(1));
    let mut n = 0u64;
    group.bench_function("produce", |b| {
        b.iter(|| {
            n = (n + 7919) % chunks;
            store
                .prove(&info.root, n)
                .expect("prove")
                .to_bytes()
                .expect("encode")
        })
    });

    let answers: Vec<([u8; 32], BlobProofs)> = (0..64u64)
        .map(|s| {
            let seed = *blake3::hash(&s.to_le_bytes()).as_bytes();
            let proofs =
                challenge_indices(&seed, &worker, info.root.as_bytes(), BLOB_LEN, K as usize)
                    .into_iter()
                    .map(|i| {
                        store
                            .prove(&info.root, i)
                            .expect("prove")
                            .to_bytes()
                            .expect("encode")
                    })
                    .collect();
            (
                seed,
                BlobProofs {
                    root: info.root.as_bytes().to_vec(),
                    proofs,
                    error: String::new(),
                },
            )
        })
        .collect();
    let answer_bytes: usize = answers[0].1.proofs.iter().map(Vec::len).sum();
    eprintln!("one k = {K} answer for a 64 MiB blob: {answer_bytes} bytes");
    group.throughput(Throughput::Elements(u64::from(K)));
    let mut i = 0usize;
    group.bench_function("verify_answer_k16", |b| {
        b.iter(|| {
            i = (i + 1) % answers.len();
            let (seed, answer) = &answers[i];
            check_blob_answer(
                seed,
                &worker,
                info.root.as_bytes(),
                BLOB_LEN,
                K,
                Some(answer),
            )
            .expect("verifies")
        })
    });
    group.finish();
}

criterion_group!(benches, proofs);
criterion_main!(benches);
