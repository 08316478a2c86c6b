//! The JSON documents `bench encode`, `bench dual` and `bench all` print with `--json` (described for
//! readers in `benches/BENCH_JSON.md`). Every rate here is derived from the counts and seconds next to it,
//! so a reader can recompute it.

use serde::Serialize;

use super::hash::HashBenchReport;

/// Value of [`BenchReport::schema`].
pub const SCHEMA: &str = "dualrig.bench/1";
/// Value of [`EncodeBenchReport::schema`].
pub const ENCODE_SCHEMA: &str = "dualrig.bench.encode/1";
/// Value of [`DualBenchReport::schema`].
pub const DUAL_SCHEMA: &str = "dualrig.bench.dual/1";

/// The one document `bench encode|dual|all --json` prints; a part that was not asked for is null.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// Layout of this document: `dualrig.bench/1`.
    pub schema: &'static str,
    /// `bench hash`'s own document (`dualrig.bench.hash/1`), or null.
    pub hash: Option<HashBenchReport>,
    /// The encode part, or null.
    pub encode: Option<EncodeBenchReport>,
    /// The dual-running part, or null.
    pub dual: Option<DualBenchReport>,
}

/// The test clip every encode measurement transcodes.
#[derive(Debug, Clone, Serialize)]
pub struct ClipInfo {
    /// How it was made, e.g. `testsrc2 1920x1080 30 fps + 440 Hz sine, libx264 ultrafast, MPEG-TS`.
    pub source: String,
    pub width: u32,
    pub height: u32,
    /// Frames per second of the clip.
    pub fps: f64,
    /// Video frames in the clip (they all decode).
    pub frames: u64,
    /// frames / fps.
    pub seconds: f64,
}

/// `bench encode`: transcoding rates of every encoder that opens, next to the ffmpeg CLI.
#[derive(Debug, Serialize)]
pub struct EncodeBenchReport {
    /// Layout of this part: `dualrig.bench.encode/1`.
    pub schema: &'static str,
    pub clip: ClipInfo,
    /// Profile names of the ladder, e.g. `["720p", "480p", "360p", "240p"]`.
    pub ladder: Vec<String>,
    /// Timed runs behind each median (the session sweep runs once per session count).
    pub runs: u32,
    /// Cores the machine offers this process.
    pub cores: usize,
    /// The 1, 5 and 15 minute load averages when the benchmark started, or null where the system does
    /// not report them: above 0 means other work shared the machine.
    pub load_start: Option<[f64; 3]>,
    /// The same when it ended.
    pub load_end: Option<[f64; 3]>,
    /// One entry per encoder that opened.
    pub encoders: Vec<EncoderResult>,
    /// Encoders, or the CLI, that could not be measured, and why.
    pub not_measured: Vec<NotMeasured>,
}

/// Something the benchmark could not measure.
#[derive(Debug, Clone, Serialize)]
pub struct NotMeasured {
    /// An encoder name, or `ffmpeg CLI (<encoder>)`.
    pub what: String,
    /// Why, in FFmpeg's or the system's words where it gave any.
    pub reason: String,
}

/// Every measurement of one encoder.
#[derive(Debug, Serialize)]
pub struct EncoderResult {
    /// FFmpeg's name, e.g. `libx264` or `h264_nvenc`.
    pub encoder: String,
    pub hardware: bool,
    /// The decoder that read the clip, by FFmpeg's name: `h264` (software), `h264_cuvid` …
    pub decoder: String,
    /// Why: which hardware decoders were tried and what each said.
    pub decoder_reason: String,
    /// Each rendition transcoded alone, one session.
    pub renditions: Vec<RenditionRate>,
    /// The whole ladder, one session: the worker's run of the pair with the median worker / CLI ratio
    /// (the median of `runs` when the CLI was not measured).
    pub ladder: LadderRun,
    /// The whole ladder at 1, 2, 4 … concurrent sessions, until a session falls below real time or
    /// `--sessions-max` is reached.
    pub sessions: Vec<LadderRun>,
    /// The ffmpeg CLI making the same ladder from the same clip, or null (see `not_measured`).
    pub cli: Option<CliRun>,
}

/// One rendition transcoded on its own.
#[derive(Debug, Serialize)]
pub struct RenditionRate {
    /// Profile name, e.g. `720p`.
    pub profile: String,
    pub width: u32,
    pub height: u32,
    /// Frames the rendition has.
    pub frames: u64,
    /// Median wall time of the transcode.
    pub seconds: f64,
    /// frames / seconds.
    pub fps: f64,
    /// fps / the clip's fps: above 1 is faster than real time.
    pub realtime_ratio: f64,
}

/// `sessions` transcodes of the whole ladder running at once, each on its own thread.
#[derive(Debug, Clone, Serialize)]
pub struct LadderRun {
    pub sessions: u32,
    /// Source frames transcoded in all: sessions × the clip's frames.
    pub frames: u64,
    /// Wall time until every session had finished.
    pub seconds: f64,
    /// frames / seconds: the machine's aggregate rate.
    pub fps: f64,
    /// Wall time of the slowest session.
    pub slowest_session_seconds: f64,
    /// The clip's frames / slowest_session_seconds: the rate every session at least kept.
    pub session_fps: f64,
    /// session_fps / the clip's fps: below 1, a session no longer keeps up with live video.
    pub realtime_ratio: f64,
}

/// The ffmpeg CLI making the ladder.
#[derive(Debug, Serialize)]
pub struct CliRun {
    /// The command line, arguments separated by spaces.
    pub command: String,
    /// Source frames transcoded (the clip's).
    pub frames: u64,
    /// Wall time, process start-up included, of the CLI's run in the pair with the median ratio.
    pub seconds: f64,
    /// frames / seconds.
    pub fps: f64,
    /// fps / the clip's fps.
    pub realtime_ratio: f64,
    /// The worker's one-session ladder seconds / these seconds, the median of `pair_ratios`: below 1,
    /// the worker is faster.
    pub worker_over_cli: f64,
    /// Worker seconds / CLI seconds of each pair, in the order they ran; the two of a pair run back to
    /// back, each going first in turn.
    pub pair_ratios: Vec<f64>,
    /// The median of `pair_cpu_ratios`, or null where the system does not report CPU time. Other work
    /// on the machine moves it less than the wall-time ratio, which it cannot replace: running in
    /// parallel costs CPU time and saves wall time.
    pub cpu_over_cli: Option<f64>,
    /// Worker CPU seconds (user + system) / CLI CPU seconds of each pair, in the order they ran.
    pub pair_cpu_ratios: Vec<f64>,
    /// Frames of each CLI rendition, in ladder order; the benchmark fails unless every count and size
    /// equals the worker's.
    pub rendition_frames: Vec<u64>,
}

/// `bench dual`: hashing at full rate while encode sessions run, and each alone.
#[derive(Debug, Serialize)]
pub struct DualBenchReport {
    /// Layout of this part: `dualrig.bench.dual/1`.
    pub schema: &'static str,
    /// The hasher, as it describes itself (share included).
    pub hasher: String,
    /// `--gpu-hash-share`: the most share of time hashing may keep its device busy.
    pub gpu_hash_share: f64,
    /// The buffer hashed over and over.
    pub buffer_bytes: u64,
    pub encoder: String,
    /// Concurrent ladder sessions while hashing.
    pub sessions: u32,
    pub clip: ClipInfo,
    pub hash_alone: HashRate,
    pub hash_together: HashRate,
    pub encode_alone: LadderRun,
    pub encode_together: LadderRun,
    /// (1 − together / alone) × 100 for the hash rate; negative when it went up.
    pub hash_loss_percent: f64,
    /// (1 − together / alone) × 100 for the encode fps.
    pub encode_loss_percent: f64,
}

/// Hashing throughput over a span of time.
#[derive(Debug, Clone, Serialize)]
pub struct HashRate {
    /// Bytes hashed.
    pub bytes: u64,
    /// Wall time from the first hash's start to the last one's end (share sleeps included).
    pub seconds: f64,
    /// bytes / seconds / 10^9.
    pub gb_per_s: f64,
}

impl HashRate {
    pub fn new(bytes: u64, seconds: f64) -> Self {
        Self {
            bytes,
            seconds,
            gb_per_s: bytes as f64 / seconds / 1e9,
        }
    }
}

/// Percent lost going from `alone` to `together`.
pub fn loss_percent(alone: f64, together: f64) -> f64 {
    (1.0 - together / alone) * 100.0
}
