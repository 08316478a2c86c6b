//! What the coordinator's verification of one result costs next to the transcode that made it: for a few
//! generated segments, the worker's ladder is transcoded with `dualrig_media` (the selected encoder), then
//! the result is checked with the coordinator's own `check_result`, once structurally only and once with the
//! content check; beside them, every rendition decoded in full with `verify_rendition` (what the
//! structural check did before it read bitstreams). Prints the median of several runs of each, in CPU
//! milliseconds of this process (every thread, so a frame-threaded decode counts all its cores) and in
//! wall milliseconds, and the CPU ratios to the transcode.
//!
//! Run: `cargo bench -p dualrig-benches --bench verify` (`VERIFY_BENCH_RUNS` sets the runs, default 5).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dualrig_benches::process_cpu;
use dualrig_coordinator::verify::{ContentCheck, check_result};
use dualrig_media::{EncoderChoice, inspect, select_encoder, transcode_segment, verify_rendition};
use dualrig_proto::identity::Identity;
use dualrig_proto::profile::Profile;
use dualrig_proto::result::{rendition, sign_result};
use dualrig_proto::v1::JobResult;
use dualrig_worker::bench::stats::median;

/// (name, lavfi graph, seconds, ladder).
const SEGMENTS: &[(&str, &str, u32, &str)] = &[
    (
        "720p testsrc2",
        "testsrc2=size=1280x720:rate=30",
        2,
        "720p,480p,360p,240p",
    ),
    (
        "720p noise",
        "nullsrc=size=1280x720:rate=30,format=yuv420p,geq=lum='random(1)*255':cb=128:cr=128",
        2,
        "720p,480p,360p,240p",
    ),
    (
        "360p fast pan",
        "testsrc2=size=1920x1080:rate=30,crop=640:360:x='mod(t*900,1280)':y='mod(t*500,720)'",
        2,
        "360p,240p",
    ),
];

fn generate(dir: &Path, name: &str, graph: &str, secs: u32) -> PathBuf {
    let path = dir.join(format!("{}.ts", name.replace(' ', "-")));
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(graph)
        .args([
            "-t",
            &secs.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
        ])
        .args(["-g", "30", "-pix_fmt", "yuv420p", "-an"])
        .arg(&path)
        .output()
        .expect("the ffmpeg CLI is installed");
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// Medians of CPU and wall time over `runs` runs of `f`.
#[derive(Clone, Copy)]
struct Cost {
    cpu: Duration,
    wall: Duration,
}

fn measure(runs: usize, mut f: impl FnMut()) -> Cost {
    let (mut cpu, mut wall) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        let (c, w) = (process_cpu(), Instant::now());
        f();
        wall.push(w.elapsed());
        cpu.push(process_cpu() - c);
    }
    Cost {
        cpu: median(&cpu),
        wall: median(&wall),
    }
}

fn main() {
    let runs: usize = std::env::var("VERIFY_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    dualrig_media::init();
    let encoder = select_encoder(&EncoderChoice::Auto).expect("an H.264 encoder opens");
    let dir = tempfile::tempdir().expect("tempdir");
    let scratch = dir.path().join("scratch");
    std::fs::create_dir_all(&scratch).expect("scratch");
    let worker = Identity::generate();
    println!(
        "encoder {}, {runs} runs each, medians: CPU ms (wall ms)",
        encoder.name
    );
    println!(
        "{:<16} {:>15} {:>13} {:>13} {:>13} {:>15} {:>9} {:>9} {:>11}",
        "segment",
        "transcode",
        "inspect",
        "structural",
        "full decode",
        "+content",
        "struct/tx",
        "full/tx",
        "+content/tx"
    );
    for (name, graph, secs, ladder) in SEGMENTS {
        let segment_path = generate(dir.path(), name, graph, *secs);
        let profiles = Profile::parse_list(ladder).expect("ladder");
        let out = dir.path().join("out");

        let mut outputs = Vec::new();
        let transcode = measure(runs, || {
            let _ = std::fs::remove_dir_all(&out);
            outputs =
                transcode_segment(&segment_path, &profiles, &encoder, &out).expect("transcodes");
        });
        let renditions: Vec<_> = outputs
            .iter()
            .map(|o| rendition(&o.profile.name, std::fs::read(&o.path).expect("rendition")))
            .collect();
        let job_id = format!("bench-{name}");
        let result = JobResult {
            job_id: job_id.clone(),
            signature: sign_result(&worker, &job_id, &renditions).to_vec(),
            renditions,
            encoder: encoder.name.clone(),
            transcode_ms: 0,
        };

        let mut source = None;
        let inspected = measure(runs, || {
            source = Some(inspect(&segment_path).expect("inspects"));
        });
        let source = source.expect("at least one run");

        let check = |content: ContentCheck<'_>| {
            measure(runs, || {
                check_result(
                    &worker.id(),
                    &job_id,
                    &source,
                    &profiles,
                    &result,
                    &scratch,
                    content,
                )
                .expect("an honest result passes");
            })
        };
        let structural = check(ContentCheck::Off);
        let full_decode = measure(runs, || {
            for o in &outputs {
                verify_rendition(&source, &o.path, &o.profile).expect("an honest rendition");
            }
        });
        let with_content = check(ContentCheck::Sampled {
            segment: &segment_path,
            seed: 7,
            kept: None,
        });
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let cell = |c: Cost| format!("{:.0} ({:.0})", ms(c.cpu), ms(c.wall));
        let ratio = |c: Cost| ms(c.cpu) / ms(transcode.cpu);
        println!(
            "{:<16} {:>15} {:>13} {:>13} {:>13} {:>15} {:>9.3} {:>9.3} {:>11.3}",
            name,
            cell(transcode),
            cell(inspected),
            cell(structural),
            cell(full_decode),
            cell(with_content),
            ratio(structural),
            ratio(full_decode),
            ratio(with_content),
        );
    }
}
