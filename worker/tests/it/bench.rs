//! `dualrig-worker bench` as a user runs it, on a machine without a GPU: it must say what it could not
//! measure, and its JSON must follow the documented schema (`benches/BENCH_JSON.md`) and agree with
//! itself. No timing is asserted: only that each reported rate is its own counts over its own seconds.

use std::process::Command;

use serde_json::Value;

fn bench(args: &[&str]) -> (Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dualrig-worker"))
        .arg("bench")
        .args(args)
        .output()
        .expect("runs dualrig-worker");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "bench {args:?} failed: {stderr}");
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bench {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (json, stderr)
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

/// Rates are printed rounded by nobody, but allow for float formatting.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
}

fn check_ladder_run(run: &Value, clip: &Value) {
    let frames = num(run, "frames");
    let seconds = num(run, "seconds");
    assert!(seconds > 0.0, "{run}");
    assert!(close(frames / seconds, num(run, "fps")), "{run}");
    assert_eq!(
        frames,
        num(clip, "frames") * num(run, "sessions"),
        "frames = sessions × clip frames: {run}"
    );
    let session_fps = num(clip, "frames") / num(run, "slowest_session_seconds");
    assert!(close(session_fps, num(run, "session_fps")), "{run}");
    assert!(
        close(session_fps / num(clip, "fps"), num(run, "realtime_ratio")),
        "{run}"
    );
}

fn check_encode(encode: &Value) {
    assert_eq!(encode["schema"], "dualrig.bench.encode/1");
    let clip = &encode["clip"];
    assert_eq!((num(clip, "width"), num(clip, "height")), (1920.0, 1080.0));
    assert!(close(
        num(clip, "frames") / num(clip, "fps"),
        num(clip, "seconds")
    ));
    assert_eq!(
        encode["ladder"],
        serde_json::json!(["720p", "480p", "360p", "240p"])
    );

    // No GPU here: every hardware encoder is listed as not measured, with a reason.
    let not_measured = encode["not_measured"].as_array().expect("not_measured");
    for name in ["h264_nvenc", "h264_vaapi", "h264_qsv"] {
        let entry = not_measured
            .iter()
            .find(|n| n["what"] == name)
            .unwrap_or_else(|| panic!("{name} missing from not_measured: {encode}"));
        assert!(
            !entry["reason"].as_str().unwrap_or_default().is_empty(),
            "{entry}"
        );
    }

    let encoders = encode["encoders"].as_array().expect("encoders");
    let x264 = encoders
        .iter()
        .find(|e| e["encoder"] == "libx264")
        .expect("libx264 measured");
    assert_eq!(x264["hardware"], false);
    for r in x264["renditions"].as_array().expect("renditions") {
        let fps = num(r, "frames") / num(r, "seconds");
        assert!(close(fps, num(r, "fps")), "{r}");
        assert!(
            close(fps / num(clip, "fps"), num(r, "realtime_ratio")),
            "{r}"
        );
        assert_eq!(num(r, "frames"), num(clip, "frames"), "{r}");
    }
    check_ladder_run(&x264["ladder"], clip);
    let sessions = x264["sessions"].as_array().expect("sessions");
    assert!(!sessions.is_empty());
    assert_eq!(num(&sessions[0], "sessions"), 1.0);
    for run in sessions {
        check_ladder_run(run, clip);
    }

    let cli = &x264["cli"];
    assert!(
        cli["command"]
            .as_str()
            .expect("command")
            .starts_with("ffmpeg ")
    );
    assert!(close(
        num(cli, "frames") / num(cli, "seconds"),
        num(cli, "fps")
    ));
    assert!(close(
        num(cli, "fps") / num(clip, "fps"),
        num(cli, "realtime_ratio")
    ));
    assert!(close(
        num(&x264["ladder"], "seconds") / num(cli, "seconds"),
        num(cli, "worker_over_cli")
    ));
    // The benchmark fails unless the CLI's renditions match the worker's, so every count is there.
    let frames = cli["rendition_frames"]
        .as_array()
        .expect("rendition_frames");
    assert_eq!(frames.len(), 4);
    for f in frames {
        assert_eq!(f.as_f64(), Some(num(clip, "frames")));
    }
}

#[test]
fn bench_encode_without_a_gpu_says_what_it_could_not_measure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let svg = dir.path().join("encode.svg");
    let (json, stderr) = bench(&[
        "encode",
        "--gpu",
        "off",
        "--clip-secs",
        "1",
        "--runs",
        "1",
        "--sessions-max",
        "2",
        "--json",
        "--plot",
        svg.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(json["schema"], "dualrig.bench/1");
    assert!(json["hash"].is_null() && json["dual"].is_null(), "{json}");
    check_encode(&json["encode"]);
    assert!(
        stderr.contains("h264_nvenc: not measured:"),
        "stderr: {stderr}"
    );
    let chart = std::fs::read_to_string(&svg).expect("chart written");
    assert!(chart.starts_with("<svg") && chart.trim_end().ends_with("</svg>"));
    assert!(chart.contains("libx264") && chart.contains("ffmpeg CLI (libx264)"));
}

#[test]
fn bench_all_json_is_one_self_consistent_document() {
    let (json, _) = bench(&[
        "all",
        "--gpu",
        "off",
        "--sizes",
        "1MiB",
        "--runs",
        "1",
        "--clip-secs",
        "1",
        "--sessions-max",
        "1",
        "--gpu-hash-share",
        "0.5",
        "--json",
    ]);
    assert_eq!(json["schema"], "dualrig.bench/1");

    let hash = &json["hash"];
    assert_eq!(hash["schema"], "dualrig.bench.hash/1");
    for size in hash["sizes"].as_array().expect("sizes") {
        let bytes = num(size, "bytes");
        for row in size["rows"].as_array().expect("rows") {
            let rate = bytes / num(row, "seconds") / 1e9;
            assert!(close(rate, num(row, "gb_per_s")), "{row}");
        }
    }

    check_encode(&json["encode"]);

    let dual = &json["dual"];
    assert_eq!(dual["schema"], "dualrig.bench.dual/1");
    assert_eq!(num(dual, "gpu_hash_share"), 0.5);
    assert_eq!(num(dual, "sessions"), 1.0);
    let clip = &dual["clip"];
    for key in ["hash_alone", "hash_together"] {
        let rate = &dual[key];
        assert!(num(rate, "bytes") >= num(dual, "buffer_bytes"), "{rate}");
        assert!(
            close(
                num(rate, "bytes") / num(rate, "seconds") / 1e9,
                num(rate, "gb_per_s")
            ),
            "{rate}"
        );
    }
    for key in ["encode_alone", "encode_together"] {
        check_ladder_run(&dual[key], clip);
    }
    let loss = |alone: f64, together: f64| (1.0 - together / alone) * 100.0;
    assert!(close(
        loss(
            num(&dual["hash_alone"], "gb_per_s"),
            num(&dual["hash_together"], "gb_per_s")
        ),
        num(dual, "hash_loss_percent")
    ));
    assert!(close(
        loss(
            num(&dual["encode_alone"], "fps"),
            num(&dual["encode_together"], "fps")
        ),
        num(dual, "encode_loss_percent")
    ));
}

#[test]
fn a_chart_needs_the_encode_benchmark() {
    let out = Command::new(env!("CARGO_BIN_EXE_dualrig-worker"))
        .args(["bench", "hash", "--gpu", "off", "--plot", "x.svg"])
        .output()
        .expect("runs dualrig-worker");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--plot"));
}
