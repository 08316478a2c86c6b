//! Test video made with the ffmpeg CLI, and ffprobe as an independent second opinion.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use dualrig_testkit::ffmpeg;

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// A clip of `secs` seconds of testsrc2 at `size` and 30 fps with a 440 Hz AAC tone, H.264 with a
/// keyframe every 2 s (`-g 60`), in the container the file name's extension implies (.ts or .mp4).
pub fn clip(dir: &Path, name: &str, secs: u32, size: &str) -> PathBuf {
    let path = dir.join(name);
    let duration = secs.to_string();
    let video = format!("testsrc2=size={size}:rate=30");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &video,
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        &duration,
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-g",
        "60",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        path_str(&path),
    ]);
    path
}

/// An audio-only MPEG-TS file.
pub fn audio_only(dir: &Path) -> PathBuf {
    let path = dir.join("audio.ts");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        "1",
        "-c:a",
        "aac",
        path_str(&path),
    ]);
    path
}

/// What `ffprobe -count_frames` says about the first video stream (and whether there is audio).
#[derive(Debug)]
pub struct Probe {
    pub frames: u64,
    pub width: u32,
    pub height: u32,
    pub start_secs: f64,
    pub codec: String,
    pub audio_codec: Option<String>,
}

fn ffprobe_entries(path: &Path, select: &str, entries: &str) -> HashMap<String, String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", select])
        .args([
            "-show_entries",
            entries,
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(path)
        .output()
        .expect("ffprobe is installed");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

pub fn ffprobe(path: &Path) -> Probe {
    let v = ffprobe_entries(
        path,
        "v:0",
        "stream=codec_name,width,height,start_time,nb_read_frames",
    );
    let a = ffprobe_entries(path, "a:0", "stream=codec_name");
    let num = |k: &str| v.get(k).and_then(|s| s.parse::<f64>().ok()).unwrap_or(-1.0);
    Probe {
        frames: num("nb_read_frames") as u64,
        width: num("width") as u32,
        height: num("height") as u32,
        start_secs: num("start_time"),
        codec: v.get("codec_name").cloned().unwrap_or_default(),
        audio_codec: a.get("codec_name").cloned(),
    }
}

/// Whether two times in seconds agree to a tenth of a millisecond (90 kHz rounding).
pub fn same_time(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-4
}

/// An MPEG-TS file whose H.264 carries access unit delimiters and its SPS/PPS only once, at the start,
/// as some encoders write it: 6 s at 30 fps, a keyframe every 2 s, no audio.
pub fn parameter_sets_only_at_start(dir: &Path) -> PathBuf {
    let raw = dir.join("raw.h264");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30",
        "-t",
        "6",
        "-c:v",
        "libx264",
        "-bf",
        "0",
        "-g",
        "60",
        "-x264-params",
        "aud=1",
        "-f",
        "h264",
        path_str(&raw),
    ]);
    let data = std::fs::read(&raw).expect("raw stream");
    let mut starts = Vec::new();
    for i in 0..data.len().saturating_sub(2) {
        if data[i..i + 3] == [0, 0, 1] {
            starts.push(i);
        }
    }
    let mut stripped = Vec::with_capacity(data.len());
    let mut seen_pps = false;
    for (n, &at) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(data.len());
        let kind = data[at + 3] & 0x1f;
        if (kind == 7 || kind == 8) && seen_pps {
            continue;
        }
        seen_pps |= kind == 8;
        stripped.extend_from_slice(&data[at..end]);
    }
    let bare = dir.join("bare.h264");
    std::fs::write(&bare, stripped).expect("write");
    let ts = dir.join("headers_once.ts");
    ffmpeg(&[
        "-framerate",
        "30",
        "-i",
        path_str(&bare),
        "-c",
        "copy",
        path_str(&ts),
    ]);
    ts
}
