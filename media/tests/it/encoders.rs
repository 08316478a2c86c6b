//! Encoder probing and selection on whatever machine runs the tests.

use std::time::Instant;

use dualrig_media::{
    EncoderChoice, HARDWARE_ENCODERS, MediaError, SOFTWARE_ENCODER, probe_encoders, select_encoder,
};

#[test]
fn probing_opens_libx264_and_says_why_each_hardware_encoder_did_not_open() {
    let started = Instant::now();
    let probes = probe_encoders();
    let elapsed = started.elapsed();
    let names: Vec<&str> = probes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["h264_nvenc", "h264_vaapi", "h264_qsv", "libx264"]);
    let x264 = probes.last().expect("libx264 probed");
    assert!(x264.opened, "libx264 must open: {}", x264.detail);
    assert!(!x264.hardware);
    for p in &probes[..3] {
        assert!(p.hardware, "{} is hardware", p.name);
        if p.opened {
            eprintln!("{}: opened here ({})", p.name, p.detail);
        } else {
            assert!(!p.detail.is_empty(), "{} gives no reason", p.name);
            eprintln!("{}: not exercised on this machine: {}", p.name, p.detail);
        }
    }
    assert!(elapsed.as_secs_f64() < 5.0, "probing took {elapsed:?}");
}

#[test]
fn auto_prefers_hardware_and_otherwise_falls_back_to_libx264_naming_what_it_tried() {
    let selection = select_encoder(&EncoderChoice::Auto).expect("some encoder opens");
    eprintln!("auto: {} ({})", selection.name, selection.reason);
    // The decoders are chosen with the encoder, and say which decoder reads each probed codec.
    for codec in ["h264", "hevc"] {
        assert!(
            selection
                .decoders
                .reason
                .contains(&format!("{codec} decoded")),
            "{}",
            selection.decoders.reason
        );
    }
    assert!(selection.available.contains(&SOFTWARE_ENCODER.to_owned()));
    if selection.hardware {
        assert!(HARDWARE_ENCODERS.contains(&selection.name.as_str()));
    } else {
        assert_eq!(selection.name, SOFTWARE_ENCODER);
        for hw in HARDWARE_ENCODERS {
            assert!(selection.reason.contains(hw), "{}", selection.reason);
        }
        assert!(
            selection.reason.ends_with("falling back to libx264"),
            "{}",
            selection.reason
        );
    }
}

#[test]
fn a_named_encoder_is_used_only_if_it_opens_and_makes_h264() {
    let x264 = select_encoder(&"libx264".parse().expect("parses")).expect("libx264");
    assert_eq!(x264.name, "libx264");
    assert!(!x264.hardware);

    let unknown =
        select_encoder(&EncoderChoice::Named("h264_nonesuch".into())).expect_err("no such encoder");
    assert!(
        unknown.to_string().contains("not built into this FFmpeg"),
        "{unknown}"
    );

    if ffmpeg_next_has("libx265") {
        let hevc = select_encoder(&EncoderChoice::Named("libx265".into())).expect_err("hevc");
        assert!(hevc.to_string().contains("not H.264"), "{hevc}");
    }

    let probes = probe_encoders();
    if let Some(closed) = probes.iter().find(|p| p.hardware && !p.opened) {
        let err = select_encoder(&EncoderChoice::Named(closed.name.clone()))
            .expect_err("a hardware encoder that does not open");
        assert!(
            matches!(&err, MediaError::EncoderUnavailable { name, .. } if *name == closed.name),
            "{err}"
        );
    }
}

fn ffmpeg_next_has(encoder: &str) -> bool {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-encoders"])
        .output()
        .expect("ffmpeg CLI");
    String::from_utf8_lossy(&out.stdout).contains(encoder)
}
