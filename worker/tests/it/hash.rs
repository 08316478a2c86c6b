//! The GPU kernels (on a real or software adapter) and the CPU backend against the `blake3` crate and
//! `b3sum`: tree edges, keyed mode, multi-window streaming, batches, outboards, and bad inputs.
//!
//! GPU tests fail, never skip, when no adapter is found: install Mesa's lavapipe
//! (`mesa-vulkan-drivers`) to run them without a GPU. `WGPU_BACKEND` and `WGPU_ADAPTER_NAME` are
//! respected; by default the tests search Vulkan and prefer llvmpipe.

use std::io::{self, Read};
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root,
};
use dualrig_worker::hash::{
    AdapterPolicy, BlobHasher, CHUNK_LEN, CpuHasher, GpuHasher, GpuOptions, HashError, HashMode,
    Outboard, cli,
};
use proptest::prelude::*;

const KEY: [u8; 32] = *b"dualrig keyed-hash test key 0001";

fn gpu_options(max_window_bytes: Option<u64>) -> GpuOptions {
    GpuOptions {
        policy: AdapterPolicy::Any,
        backends: std::env::var_os("WGPU_BACKEND")
            .is_none()
            .then_some(wgpu::Backends::VULKAN),
        prefer_adapter: Some("llvmpipe".to_owned()),
        max_window_bytes,
    }
}

fn open_gpu(max_window_bytes: Option<u64>) -> GpuHasher {
    GpuHasher::new(gpu_options(max_window_bytes)).unwrap_or_else(|e| {
        panic!(
            "GPU tests need a wgpu adapter (without a GPU: apt-get install mesa-vulkan-drivers): {}",
            cli::error_chain(&e)
        )
    })
}

/// The default hasher: 64 MiB windows (or what the adapter allows).
fn gpu() -> &'static GpuHasher {
    static GPU: OnceLock<GpuHasher> = OnceLock::new();
    GPU.get_or_init(|| open_gpu(None))
}

/// Windows of 4 chunks, so a few KiB already stream through several windows.
fn small_window_gpu() -> &'static GpuHasher {
    static GPU: OnceLock<GpuHasher> = OnceLock::new();
    GPU.get_or_init(|| {
        let gpu = open_gpu(Some(4 * CHUNK_LEN as u64));
        assert_eq!(gpu.window_bytes(), 4 * CHUNK_LEN as u64);
        gpu
    })
}

/// Deterministic pseudo-random bytes.
fn data(len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(b"dualrig hash tests")
        .finalize_xof()
        .fill(&mut out);
    out
}

fn shared_data() -> &'static [u8] {
    static DATA: OnceLock<Vec<u8>> = OnceLock::new();
    DATA.get_or_init(|| data((1 << 24) + 1))
}

fn reference(input: &[u8], mode: HashMode) -> blake3::Hash {
    match mode {
        HashMode::Plain => blake3::hash(input),
        HashMode::Keyed(key) => blake3::keyed_hash(&key, input),
    }
}

fn hazmat_mode(mode: &HashMode) -> Mode<'_> {
    match mode {
        HashMode::Plain => Mode::Hash,
        HashMode::Keyed(key) => Mode::KeyedHash(key),
    }
}

/// Chaining value of the subtree over `input`, whose first byte is at `offset`, computed by
/// recursive splitting with blake3's hazmat API (independent of the code under test).
fn subtree_cv(input: &[u8], offset: u64, mode: &HashMode) -> ChainingValue {
    if input.len() <= CHUNK_LEN {
        let mut hasher = mode.hasher();
        hasher.set_input_offset(offset);
        hasher.update(input);
        return hasher.finalize_non_root();
    }
    let split = left_subtree_len(input.len() as u64) as usize;
    let left = subtree_cv(&input[..split], offset, mode);
    let right = subtree_cv(&input[split..], offset + split as u64, mode);
    merge_subtrees_non_root(&left, &right, hazmat_mode(mode))
}

/// The bao-layout outboard, built by recursive splitting: header, then parents in pre-order.
fn reference_outboard(input: &[u8], mode: &HashMode) -> Vec<u8> {
    fn parents(input: &[u8], offset: u64, mode: &HashMode, out: &mut Vec<u8>) {
        if input.len() <= CHUNK_LEN {
            return;
        }
        let split = left_subtree_len(input.len() as u64) as usize;
        out.extend_from_slice(&subtree_cv(&input[..split], offset, mode));
        out.extend_from_slice(&subtree_cv(&input[split..], offset + split as u64, mode));
        parents(&input[..split], offset, mode, out);
        parents(&input[split..], offset + split as u64, mode, out);
    }
    let mut out = (input.len() as u64).to_le_bytes().to_vec();
    parents(input, 0, mode, &mut out);
    out
}

fn assert_root_from_outboard(input: &[u8], outboard: &Outboard, mode: &HashMode) {
    if let Some((left, right)) = outboard.parent(0) {
        assert_eq!(
            merge_subtrees_root(&left, &right, hazmat_mode(mode)),
            reference(input, *mode),
            "the first parent is the root's"
        );
    }
}

fn check_bytes(hasher: &dyn BlobHasher, input: &[u8], mode: HashMode, with_outboard: bool) {
    let digest = hasher
        .hash_bytes(input, mode, with_outboard)
        .unwrap_or_else(|e| panic!("{} bytes: {}", input.len(), cli::error_chain(&e)));
    assert_eq!(
        digest.hash,
        reference(input, mode),
        "{} on {} bytes ({mode:?})",
        hasher.describe(),
        input.len()
    );
    assert_eq!(digest.len, input.len() as u64);
    match digest.outboard {
        Some(outboard) => {
            assert!(with_outboard);
            assert_eq!(
                outboard.encode(),
                reference_outboard(input, &mode),
                "outboard of {} bytes on {}",
                input.len(),
                hasher.describe()
            );
            assert_root_from_outboard(input, &outboard, &mode);
        }
        None => assert!(!with_outboard, "an outboard was asked for"),
    }
}

/// Lengths where BLAKE3's tree changes shape: block and chunk edges, and every power of two ±1 up to
/// 2^24.
fn edge_lengths() -> Vec<usize> {
    let mut lengths = vec![
        0, 1, 63, 64, 65, 1023, 1024, 1025, 2047, 2048, 2049, 3072, 4095, 4096,
    ];
    for k in 1..=24 {
        let p = 1usize << k;
        lengths.extend([p - 1, p, p + 1]);
    }
    lengths.sort_unstable();
    lengths.dedup();
    lengths
}

#[test]
fn gpu_matches_blake3_at_every_tree_edge_up_to_2_pow_24() {
    let input = shared_data();
    for len in edge_lengths() {
        check_bytes(gpu(), &input[..len], HashMode::Plain, false);
    }
}

#[test]
fn gpu_keyed_mode_matches_blake3_keyed_hash() {
    let input = shared_data();
    for len in [
        0,
        1,
        64,
        1024,
        1025,
        4096,
        5000,
        65_537,
        1 << 20,
        (1 << 20) + 3,
    ] {
        check_bytes(gpu(), &input[..len], HashMode::Keyed(KEY), false);
    }
}

#[test]
fn gpu_outboard_holds_every_parent_in_pre_order() {
    let input = shared_data();
    for len in [0, 1, 1024, 1025, 2048, 3072, 4097, 10_000, 65_536, 100_003] {
        check_bytes(gpu(), &input[..len], HashMode::Plain, true);
    }
    check_bytes(gpu(), &input[..33_000], HashMode::Keyed(KEY), true);
}

#[test]
fn gpu_streams_many_small_windows_with_the_same_tree() {
    let gpu = small_window_gpu();
    let input = shared_data();
    // 4-chunk windows: lengths around 1, 2, 3 and many windows, with and without a short last one.
    for len in [
        4095, 4096, 4097, 8191, 8192, 8193, 12_288, 12_289, 20_480, 65_535, 65_536, 65_537, 200_000,
    ] {
        check_bytes(gpu, &input[..len], HashMode::Plain, false);
        check_bytes(gpu, &input[..len], HashMode::Plain, true);
        check_bytes(gpu, &input[..len], HashMode::Keyed(KEY), true);
    }
    check_bytes(gpu, &input[..(1 << 20) + 5], HashMode::Plain, false);
}

/// Yields its input a few bytes at a time, as pipes do.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.step).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        self.step = self.step % 1500 + 97;
        Ok(n)
    }
}

#[test]
fn readers_of_unknown_length_hash_like_slices() {
    let input = shared_data();
    for hasher in [
        small_window_gpu() as &dyn BlobHasher,
        gpu(),
        &CpuHasher::with_window_chunks(4),
    ] {
        for len in [0, 1, 1024, 4096, 4097, 16_384, 70_000] {
            let slice = &input[..len];
            let mut reader = Trickle {
                data: slice,
                step: 1,
            };
            let digest = hasher
                .hash_reader(&mut reader, None, HashMode::Plain, true)
                .expect("hashes a stream");
            assert_eq!(
                digest.hash,
                blake3::hash(slice),
                "{len} bytes on {}",
                hasher.describe()
            );
            assert_eq!(digest.len, len as u64);
            let outboard = digest.outboard.expect("outboard asked for");
            assert_eq!(
                outboard.encode(),
                reference_outboard(slice, &HashMode::Plain)
            );
        }
    }
}

#[test]
fn cpu_backend_matches_blake3_with_and_without_outboards() {
    let input = shared_data();
    let cpu = CpuHasher::new();
    let small = CpuHasher::with_window_chunks(4);
    for len in [
        0, 1, 63, 64, 65, 1023, 1024, 1025, 2049, 4096, 4097, 12_289, 65_537, 200_000,
    ] {
        for hasher in [&cpu, &small] {
            check_bytes(hasher, &input[..len], HashMode::Plain, false);
            check_bytes(hasher, &input[..len], HashMode::Plain, true);
            check_bytes(hasher, &input[..len], HashMode::Keyed(KEY), true);
            let digest = hasher
                .hash_reader(&mut &input[..len], Some(len as u64), HashMode::Plain, true)
                .expect("hashes a reader");
            assert_eq!(
                digest.outboard.map(|o| o.encode()),
                Some(reference_outboard(&input[..len], &HashMode::Plain))
            );
        }
    }
    check_bytes(&cpu, &input[..(1 << 24) + 1], HashMode::Plain, false);
}

fn mixed_blobs(count: usize, seed: u64) -> Vec<Vec<u8>> {
    let sizes = [
        0usize, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 3000, 5000, 40_000,
    ];
    let pool = shared_data();
    (0..count)
        .map(|i| {
            let pick = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed;
            let len = if i % 3 == 0 {
                sizes[(pick % sizes.len() as u64) as usize]
            } else {
                (pick % 20_000) as usize
            };
            let start = (pick % 1_000_000) as usize;
            pool[start..start + len].to_vec()
        })
        .collect()
}

#[test]
fn gpu_batch_of_1000_mixed_blobs_matches_blake3() {
    let blobs = mixed_blobs(1000, 7);
    let refs: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
    for mode in [HashMode::Plain, HashMode::Keyed(KEY)] {
        let hashes = gpu().hash_batch(&refs, mode).expect("batch hashes");
        assert_eq!(hashes.len(), refs.len());
        for (blob, hash) in refs.iter().zip(&hashes) {
            assert_eq!(
                *hash,
                reference(blob, mode),
                "{} bytes ({mode:?})",
                blob.len()
            );
        }
    }
}

#[test]
fn gpu_batch_splits_when_blobs_outgrow_a_window() {
    // 4-chunk windows: most blobs need a batch of their own, some exceed a quarter window.
    let blobs = mixed_blobs(60, 11);
    let refs: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
    let hashes = small_window_gpu()
        .hash_batch(&refs, HashMode::Plain)
        .expect("batch hashes");
    let expected: Vec<blake3::Hash> = refs.iter().map(|b| blake3::hash(b)).collect();
    assert_eq!(hashes, expected);
    assert!(
        gpu()
            .hash_batch(&[], HashMode::Plain)
            .expect("empty batch")
            .is_empty()
    );
}

#[test]
fn cpu_batch_matches_blake3() {
    let blobs = mixed_blobs(1000, 3);
    let refs: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
    let hashes = CpuHasher::new()
        .hash_batch(&refs, HashMode::Keyed(KEY))
        .expect("batch hashes");
    for (blob, hash) in refs.iter().zip(hashes) {
        assert_eq!(hash, blake3::keyed_hash(&KEY, blob));
    }
}

#[test]
fn resident_input_hashes_like_streamed_input() {
    let input = &shared_data()[..3 * 1024 * 1024 + 17];
    let resident = gpu().upload(input).expect("uploads");
    assert_eq!(resident.len(), input.len() as u64);
    for _ in 0..2 {
        assert_eq!(
            gpu()
                .hash_resident(&resident, HashMode::Plain)
                .expect("hashes"),
            blake3::hash(input)
        );
    }
    assert_eq!(
        gpu()
            .hash_resident(&resident, HashMode::Keyed(KEY))
            .expect("hashes"),
        blake3::keyed_hash(&KEY, input)
    );
    let too_big = vec![0u8; small_window_gpu().max_resident_len() as usize + 1];
    assert!(matches!(
        small_window_gpu().upload(&too_big),
        Err(HashError::Usage(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn gpu_matches_blake3_on_random_lengths_up_to_64_mib(len in 0usize..=64 << 20, seed: u64) {
        let mut input = vec![0u8; len];
        blake3::Hasher::new().update(&seed.to_le_bytes()).finalize_xof().fill(&mut input);
        let digest = gpu().hash_bytes(&input, HashMode::Plain, false).expect("hashes");
        prop_assert_eq!(digest.hash, blake3::Hasher::new().update_rayon(&input).finalize());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn small_windows_match_blake3_and_the_reference_outboard(len in 0usize..=48 * 1024, keyed: bool) {
        let input = &shared_data()[..len];
        let mode = if keyed { HashMode::Keyed(KEY) } else { HashMode::Plain };
        for hasher in [small_window_gpu() as &dyn BlobHasher, &CpuHasher::with_window_chunks(2)] {
            let digest = hasher.hash_bytes(input, mode, true).expect("hashes");
            prop_assert_eq!(digest.hash, reference(input, mode));
            let outboard = digest.outboard.expect("outboard asked for");
            prop_assert_eq!(outboard.encode(), reference_outboard(input, &mode));
            prop_assert_eq!(Outboard::decode(&outboard.encode()), Ok(outboard));
        }
    }
}

/// Reports `declared` bytes but ends after `actual`, as a file truncated mid-hash does.
struct Shrinking<'a> {
    data: &'a [u8],
}

impl Read for Shrinking<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.data.read(buf)
    }
}

fn backends_under_test() -> [&'static dyn BlobHasher; 3] {
    static CPU: OnceLock<CpuHasher> = OnceLock::new();
    [
        gpu(),
        small_window_gpu(),
        CPU.get_or_init(|| CpuHasher::with_window_chunks(4)),
    ]
}

#[test]
fn input_that_shrinks_while_hashed_is_an_error_not_a_hash() {
    let input = &shared_data()[..50_000];
    for hasher in backends_under_test() {
        for outboard in [false, true] {
            let mut reader = Shrinking {
                data: &input[..30_000],
            };
            let err = hasher
                .hash_reader(&mut reader, Some(50_000), HashMode::Plain, outboard)
                .expect_err("a short input has no hash");
            assert!(
                matches!(
                    err,
                    HashError::Truncated {
                        expected: 50_000,
                        got: 30_000,
                        ..
                    }
                ),
                "{}: {err}",
                hasher.describe()
            );
        }
        // The backend is still usable after the failure.
        check_bytes(hasher, input, HashMode::Plain, true);
    }
}

#[test]
fn input_that_grows_while_hashed_is_an_error_not_a_hash() {
    let input = &shared_data()[..20_000];
    for hasher in backends_under_test() {
        let err = hasher
            .hash_reader(&mut &input[..], Some(10_000), HashMode::Plain, false)
            .expect_err("a longer input has no hash");
        assert!(
            matches!(
                err,
                HashError::Grew {
                    expected: 10_000,
                    ..
                }
            ),
            "{err}"
        );
        check_bytes(hasher, &input[..10_000], HashMode::Plain, false);
    }
}

/// A file another process truncates after the first read (of at most 4 KiB, as from a slow disk).
struct TruncatedMidway {
    file: std::fs::File,
    reads: usize,
}

impl Read for TruncatedMidway {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len().min(4096);
        let n = self.file.read(&mut buf[..len])?;
        self.reads += 1;
        if self.reads == 1 {
            self.file.set_len(5000)?;
        }
        Ok(n)
    }
}

#[test]
fn file_truncated_on_disk_mid_hash_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("blob");
    for hasher in backends_under_test() {
        std::fs::write(&path, &shared_data()[..100_000]).expect("writes");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("opens");
        let mut reader = TruncatedMidway { file, reads: 0 };
        let err = hasher
            .hash_reader(&mut reader, Some(100_000), HashMode::Plain, false)
            .expect_err("a truncated file has no hash");
        assert!(
            matches!(
                err,
                HashError::Truncated {
                    expected: 100_000,
                    ..
                }
            ),
            "{err}"
        );
    }
}

/// Files large enough to be hashed in place (mapped under a read lease) are truncated by another
/// thread at every point of the hash: the result is an error, or the hash of the file as it was
/// before or after, never another hash and never a crash (SIGBUS).
#[test]
fn file_truncated_while_hashed_in_place_is_an_error_or_a_true_hash() {
    let data: Vec<u8> = (0..24u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let whole = blake3::hash(&data);
    let short = blake3::hash(&data[..5000]);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("blob");
    let cpu = CpuHasher::new();
    let mut errors = 0;
    for attempt in 0..8u64 {
        std::fs::write(&path, &data).expect("writes");
        let target = path.clone();
        let truncator = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_micros(attempt * 700));
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&target)
                .expect("opens for writing");
            file.set_len(5000).expect("truncates");
        });
        let outboard = attempt % 2 == 1;
        match cpu.hash_file(&path, HashMode::Plain, outboard) {
            Ok(digest) => assert!(
                digest.hash == whole || digest.hash == short,
                "attempt {attempt}: hashed to neither the file before nor after"
            ),
            Err(HashError::Truncated { .. }) => errors += 1,
            Err(e) => panic!("attempt {attempt}: {e}"),
        }
        truncator.join().expect("truncator");
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), 5000);
    }
    eprintln!("{errors} of 8 truncations were reported as errors, the rest hashed a whole file");
}

#[test]
fn missing_file_and_directory_are_clear_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("vanished");
    for hasher in backends_under_test() {
        let err = hasher
            .hash_file(&missing, HashMode::Plain, false)
            .expect_err("no such file");
        match &err {
            HashError::Io { name, source } => {
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
                assert!(name.contains("vanished"), "{name}");
            }
            other => panic!("unexpected error {other}"),
        }
        let err = hasher
            .hash_file(dir.path(), HashMode::Plain, false)
            .expect_err("a directory is no blob");
        assert!(matches!(err, HashError::NotAFile { .. }), "{err}");
    }
}

fn b3sum(files: &[&Path]) -> String {
    let out = Command::new("b3sum")
        .args(files)
        .output()
        .expect("b3sum runs (apt-get install b3sum)");
    assert!(out.status.success(), "b3sum failed: {out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

fn fixture_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let input = shared_data();
    let mut files = Vec::new();
    for (name, len) in [
        ("empty", 0),
        ("one byte", 1),
        ("chunk", 1024),
        ("chunk+1", 1025),
        ("back\\slash", 3000),
        ("new\nline", 77),
        ("big", 3 * 1024 * 1024 + 5),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, &input[..len]).expect("writes fixture");
        files.push(path);
    }
    files
}

#[test]
fn cli_output_is_byte_for_byte_b3sum() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = fixture_files(dir.path());
    let paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let expected = b3sum(&paths);
    let args = cli::HashArgs {
        gpu: dualrig_worker::hash::GpuMode::Require,
        outboard: None,
        files: files.clone(),
    };
    for hasher in [gpu() as &dyn BlobHasher, &CpuHasher::new()] {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        cli::run_with(&args, hasher, &mut out, &mut err).expect("hashes every file");
        assert_eq!(String::from_utf8(out).expect("utf-8"), expected);
        assert!(err.is_empty());
    }
}

#[test]
fn cli_reports_bad_inputs_and_hashes_the_rest() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = dir.path().join("good");
    std::fs::write(&good, b"abc").expect("writes");
    let args = cli::HashArgs {
        gpu: dualrig_worker::hash::GpuMode::Off,
        outboard: None,
        files: vec![
            dir.path().join("missing"),
            good.clone(),
            dir.path().to_path_buf(),
        ],
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let result = cli::run_with(&args, &CpuHasher::new(), &mut out, &mut err);
    assert!(matches!(
        result,
        Err(HashError::SomeFailed {
            failed: 2,
            total: 3
        })
    ));
    assert_eq!(String::from_utf8(out).expect("utf-8"), b3sum(&[&good]));
    let err = String::from_utf8(err).expect("utf-8");
    assert!(
        err.contains("missing") && err.contains("not a regular file"),
        "{err}"
    );

    let args = cli::HashArgs {
        outboard: Some(dir.path().join("ob")),
        ..args
    };
    assert!(matches!(
        cli::run_with(&args, &CpuHasher::new(), &mut Vec::new(), &mut Vec::new()),
        Err(HashError::Usage(_))
    ));
}

#[test]
fn binary_hash_require_matches_b3sum_and_writes_the_outboard() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = fixture_files(dir.path());
    let paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let run = |extra: &[&std::ffi::OsStr]| {
        let out = Command::new(env!("CARGO_BIN_EXE_dualrig-worker"))
            .args(["hash", "--gpu", "require"])
            .args(extra)
            .env(
                "WGPU_BACKEND",
                std::env::var("WGPU_BACKEND").unwrap_or("vulkan".into()),
            )
            .output()
            .expect("runs dualrig-worker");
        assert!(out.status.success(), "dualrig-worker hash failed: {out:?}");
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let args: Vec<&std::ffi::OsStr> = paths.iter().map(|p| p.as_os_str()).collect();
    assert_eq!(run(&args), b3sum(&paths));

    let big = files.last().expect("fixtures");
    let outboard_path = dir.path().join("big.obao");
    run(&[
        "--outboard".as_ref(),
        outboard_path.as_os_str(),
        big.as_os_str(),
    ]);
    let written = std::fs::read(&outboard_path).expect("outboard written");
    let content = std::fs::read(big).expect("reads fixture");
    assert_eq!(written, reference_outboard(&content, &HashMode::Plain));
}

/// `hash` with the default `--gpu auto`, on a headless machine (no session runtime dir) whose only
/// adapter is software, prints what b3sum prints and nothing on stderr: no Vulkan layer noise, no
/// fallback notice unless RUST_LOG asks for it.
#[test]
fn binary_hash_with_gpu_auto_is_quiet_on_a_headless_machine() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = fixture_files(dir.path());
    let paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let run = |log: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dualrig-worker"));
        command
            .arg("hash")
            .args(&paths)
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("NODEVICE_SELECT")
            .env_remove("RUST_LOG");
        if let Some(filter) = log {
            command.env("RUST_LOG", filter);
        }
        let out = command.output().expect("runs dualrig-worker");
        assert!(out.status.success(), "dualrig-worker hash failed: {out:?}");
        (
            String::from_utf8(out.stdout).expect("utf-8"),
            String::from_utf8(out.stderr).expect("utf-8"),
        )
    };
    let (stdout, stderr) = run(None);
    assert_eq!(stdout, b3sum(&paths));
    assert_eq!(stderr, "", "stderr should be empty");
    // Asked for, the choice of backend is told.
    let (_, stderr) = run(Some("info"));
    assert!(
        stderr.contains("hashing on the CPU") || stderr.contains("GPU"),
        "{stderr}"
    );
    assert!(!stderr.contains("XDG_RUNTIME_DIR"), "{stderr}");
}

#[test]
fn binary_hash_reads_standard_input_like_b3sum() {
    let input = &shared_data()[..70_001];
    let hash = |program: &str, args: &[&str]| {
        let mut child = Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawns");
        let mut stdin = child.stdin.take().expect("piped stdin");
        let writer = std::thread::spawn(move || io::Write::write_all(&mut stdin, input));
        let out = child.wait_with_output().expect("waits");
        writer.join().expect("writer").expect("writes stdin");
        assert!(out.status.success(), "{program} failed: {out:?}");
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let ours = hash(
        env!("CARGO_BIN_EXE_dualrig-worker"),
        &["hash", "--gpu", "off", "-"],
    );
    assert_eq!(ours, hash("b3sum", &["-"]));
    assert_eq!(
        hash(
            env!("CARGO_BIN_EXE_dualrig-worker"),
            &["hash", "--gpu", "off"]
        ),
        ours
    );
}

/// An outboard written to a file for a stream whose length is wrong is an error, not a hash.
#[test]
fn an_outboard_file_for_a_stream_of_the_wrong_length_is_an_error() {
    let input = shared_data();
    let hasher = CpuHasher::with_window_chunks(4);
    let file = tempfile::tempfile().expect("temp file");
    let short = hasher.hash_reader_to_file(&mut &input[..5000], 6000, HashMode::Plain, &file);
    assert!(
        matches!(short, Err(HashError::Truncated { .. })),
        "{short:?}"
    );
    let long = hasher.hash_reader_to_file(&mut &input[..7000], 6000, HashMode::Plain, &file);
    assert!(matches!(long, Err(HashError::Grew { .. })), "{long:?}");
}

/// Every way an outboard is made (in memory from bytes or a stream, or written into a file window by
/// window as a put does) gives bao's outboard byte for byte, across window boundaries: small windows
/// put many windows in a short input.
#[test]
fn outboards_are_bao_outboard_encodings() {
    let input = shared_data();
    let small_cpu = CpuHasher::with_window_chunks(4);
    for len in [
        0,
        1,
        1024,
        1025,
        4096,
        4097,
        7 * 1024 + 5,
        33 * 1024,
        100_000,
        (1 << 20) + 1,
    ] {
        let input = &input[..len];
        let (bao_outboard, bao_hash) = bao::encode::outboard(input);
        for hasher in [
            gpu() as &dyn BlobHasher,
            small_window_gpu(),
            &CpuHasher::new(),
            &small_cpu,
        ] {
            let file = tempfile::tempfile().expect("temp file");
            let streamed = hasher
                .hash_reader_to_file(&mut &input[..], len as u64, HashMode::Plain, &file)
                .expect("hashes");
            assert_eq!((streamed.hash, streamed.len), (bao_hash, len as u64));
            assert!(streamed.outboard.is_none());
            let mut written = Vec::new();
            (&file).read_to_end(&mut written).expect("reads back");
            assert_eq!(
                written,
                bao_outboard,
                "{len} bytes to a file on {}",
                hasher.describe()
            );
            let in_memory = hasher
                .hash_reader(&mut &input[..], Some(len as u64), HashMode::Plain, true)
                .expect("hashes")
                .outboard
                .expect("outboard");
            assert_eq!(
                in_memory.encode(),
                bao_outboard,
                "{len} bytes streamed in memory"
            );
            let digest = hasher
                .hash_bytes(input, HashMode::Plain, true)
                .expect("hashes");
            assert_eq!(digest.hash, bao_hash);
            let ours = digest.outboard.expect("outboard asked for").encode();
            assert_eq!(ours, bao_outboard, "{len} bytes on {}", hasher.describe());
            // bao verifies the content against the hash with our outboard.
            let mut decoder = bao::decode::Decoder::new_outboard(input, &ours[..], &digest.hash);
            let mut decoded = Vec::new();
            decoder
                .read_to_end(&mut decoded)
                .expect("bao accepts the outboard");
            assert_eq!(decoded, input);
        }
    }
}

/// Peak resident memory of this process, in bytes (`VmHWM`).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        * 1024
}

/// Run in a child process by the test below: hashes 1 GiB with its outboard either in memory or
/// written to a file, and prints how far its peak memory grew.
#[test]
#[ignore = "run in its own process by a_put_holds_one_window_of_its_outboard_in_memory"]
fn outboard_memory_child() {
    let Ok(how) = std::env::var("DUALRIG_OUTBOARD_CHILD") else {
        return;
    };
    const LEN: u64 = 1 << 30;
    let hasher = CpuHasher::with_window_chunks(1024);
    let before = peak_rss();
    let mut input = io::repeat(7).take(LEN);
    let digest = if how == "file" {
        let file = tempfile::tempfile().expect("temp file");
        hasher.hash_reader_to_file(&mut input, LEN, HashMode::Plain, &file)
    } else {
        hasher.hash_reader(&mut input, Some(LEN), HashMode::Plain, true)
    }
    .expect("hashes");
    assert_eq!(digest.len, LEN);
    println!("peak-growth {}", peak_rss().saturating_sub(before));
}

/// A put holds one window's tree, not its whole outboard: hashing 1 GiB (a 64 MiB outboard) with the
/// outboard written to a file grows the process's peak memory by less than half the outboard, while
/// keeping it in memory grows it by more than the outboard. Each in its own process, so nothing else
/// in the test run moves the peak.
#[test]
fn a_put_holds_one_window_of_its_outboard_in_memory() {
    let outboard_len = dualrig_proto::proof::outboard_len(1 << 30);
    let growth = |how: &str| -> u64 {
        let out = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--ignored",
                "--exact",
                "hash::outboard_memory_child",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("DUALRIG_OUTBOARD_CHILD", how)
            .output()
            .expect("child runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{how}: {stdout}");
        stdout
            .lines()
            .find_map(|l| l.split("peak-growth ").nth(1))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("{how}: no figure in {stdout}"))
    };
    let (streamed, in_memory) = (growth("file"), growth("memory"));
    eprintln!(
        "1 GiB hashed with its {outboard_len}-byte outboard: peak memory +{streamed} bytes written to a file, +{in_memory} bytes in memory"
    );
    assert!(streamed < outboard_len / 2, "streamed: +{streamed} bytes");
    assert!(in_memory > outboard_len, "in memory: +{in_memory} bytes");
}
