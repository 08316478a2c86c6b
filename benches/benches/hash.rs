//! BLAKE3 on the CPU backends, the baseline the GPU kernels are judged against.
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn cpu_hash(c: &mut Criterion) {
    let data = vec![0x5au8; 16 << 20];
    let mut group = c.benchmark_group("blake3_cpu");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("single_thread_16MiB", |b| b.iter(|| blake3::hash(&data)));
    group.bench_function("rayon_16MiB", |b| {
        b.iter(|| blake3::Hasher::new().update_rayon(&data).finalize())
    });
    group.finish();
}

criterion_group!(benches, cpu_hash);
criterion_main!(benches);
