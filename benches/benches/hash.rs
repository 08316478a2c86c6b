//! BLAKE3 on the CPU backends, the baseline the GPU kernels are judged against, and the GPU kernels
//! themselves: chunk and parent dispatches over input already on the device, and end to end.
//!
//! The GPU group runs on any adapter, lavapipe included (`WGPU_BACKEND`/`WGPU_ADAPTER_NAME` pick
//! one); without an adapter it says so and measures the CPU alone.
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dualrig_worker::hash::{AdapterPolicy, BlobHasher, GpuHasher, GpuOptions, HashMode};

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

fn gpu_hash(c: &mut Criterion) {
    let gpu = match GpuHasher::new(GpuOptions {
        policy: AdapterPolicy::Any,
        ..GpuOptions::default()
    }) {
        Ok(gpu) => gpu,
        Err(e) => {
            eprintln!("blake3_gpu: no adapter, GPU benches skipped: {e}");
            return;
        }
    };
    eprintln!("blake3_gpu on {}", gpu.describe());
    let mut group = c.benchmark_group("blake3_gpu");
    group.sample_size(10);
    for (label, size) in [("1MiB", 1usize << 20), ("16MiB", 16 << 20)] {
        let data = vec![0x5au8; size];
        let expected = blake3::hash(&data);
        let resident = gpu.upload(&data).expect("input fits one window");
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("kernels_resident", label), |b| {
            b.iter(|| {
                let hash = gpu
                    .hash_resident(&resident, HashMode::Plain)
                    .expect("GPU hashes");
                assert_eq!(hash, expected);
            })
        });
        group.bench_function(BenchmarkId::new("end_to_end", label), |b| {
            b.iter(|| {
                gpu.hash_bytes(&data, HashMode::Plain, false)
                    .expect("GPU hashes")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, cpu_hash, gpu_hash);
criterion_main!(benches);
