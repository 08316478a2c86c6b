//! Hardware decoder probing and the fallback to software decoding, on whatever machine runs the tests.
//! Without an NVIDIA or Intel GPU the hardware path itself is not exercised; each test says so and why.

use dualrig_media::{
    DecoderSelection, EncoderChoice, EncoderSelection, HARDWARE_DECODER_FAMILIES, inspect,
    probe_decoders, select_decoders, select_encoder, transcode_segment, verify_rendition,
};
use dualrig_proto::profile::Profile;

use crate::support::clip;

#[test]
fn probing_tries_each_hardware_decoder_and_says_why_one_is_not_used() {
    let probes = probe_decoders("libx264");
    let names: Vec<&str> = probes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["h264_cuvid", "h264_qsv", "hevc_cuvid", "hevc_qsv"]);
    for p in &probes {
        assert!(
            HARDWARE_DECODER_FAMILIES
                .iter()
                .any(|f| p.name == format!("{}_{f}", p.codec)),
            "{p:?}"
        );
        assert!(!p.detail.is_empty(), "{} gives no detail", p.name);
        if p.decodes {
            eprintln!("{}: decodes here ({})", p.name, p.detail);
        } else {
            eprintln!(
                "{}: hardware decoding not exercised here: {}",
                p.name, p.detail
            );
        }
    }

    let selection = select_decoders("libx264");
    eprintln!("decoders: {}", selection.reason);
    for codec in ["h264", "hevc"] {
        match selection.for_codec(codec) {
            Some(name) => {
                let probe = probes.iter().find(|p| p.name == name).expect("probed");
                assert!(probe.decodes, "{name} chosen but its probe failed");
                assert!(
                    selection
                        .reason
                        .contains(&format!("{codec} decoded by {name}")),
                    "{}",
                    selection.reason
                );
            }
            None => {
                assert!(
                    selection
                        .reason
                        .contains(&format!("{codec} decoded in software")),
                    "{}",
                    selection.reason
                );
                for p in probes.iter().filter(|p| p.codec == codec) {
                    assert!(!p.decodes, "{} decodes yet was not chosen", p.name);
                    assert!(selection.reason.contains(&p.name), "{}", selection.reason);
                }
            }
        }
    }
}

#[test]
fn the_nvenc_encoder_puts_nvdec_first_and_qsv_puts_quick_sync_first() {
    let order = |encoder: &str| -> Vec<String> {
        probe_decoders(encoder)
            .into_iter()
            .filter(|p| p.codec == "h264")
            .map(|p| p.name)
            .collect()
    };
    assert_eq!(order("h264_nvenc"), ["h264_cuvid", "h264_qsv"]);
    assert_eq!(order("h264_qsv"), ["h264_qsv", "h264_cuvid"]);
}

#[test]
fn a_hardware_decoder_that_fails_falls_back_to_software_and_the_ladder_still_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = clip(dir.path(), "segment.ts", 2, "640x360");
    let source_info = inspect(&source).expect("source");
    let profiles = Profile::parse_list("360p,240p").expect("ladder");

    // Every H.264 hardware decoder that does not work here (h264_cuvid does not open without the NVIDIA
    // driver; h264_qsv opens and fails at the first packet without an Intel GPU), and a name FFmpeg does
    // not know, so the fallback runs on any machine.
    let mut failing: Vec<(String, String)> = probe_decoders("libx264")
        .into_iter()
        .filter(|p| p.codec == "h264" && !p.decodes)
        .map(|p| (p.name, p.detail))
        .collect();
    failing.push((
        "h264_nonesuch".to_owned(),
        "not built into FFmpeg".to_owned(),
    ));
    for (name, why) in failing {
        let encoder = EncoderSelection {
            decoders: DecoderSelection::forced("h264", &name),
            ..EncoderSelection::software()
        };
        let out = dir.path().join(&name);
        let renditions = transcode_segment(&source, &profiles, &encoder, &out)
            .unwrap_or_else(|e| panic!("with {name} forced: {e}"));
        assert_eq!(renditions.len(), 2);
        for (r, profile) in renditions.iter().zip(&profiles) {
            assert_eq!(r.decoder, "h264", "{name}: decoded by {}", r.decoder);
            assert_eq!(r.frames, source_info.frames, "{name} {}", profile.name);
            verify_rendition(&source_info, &r.path, profile)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        eprintln!("{name}: fell back to software decoding ({why})");
    }
}

#[test]
fn where_a_hardware_decoder_works_the_ladder_is_decoded_on_it() {
    let selection = select_encoder(&EncoderChoice::Auto).expect("some encoder opens");
    let Some(decoder) = selection.decoders.for_codec("h264").map(str::to_owned) else {
        assert!(
            selection
                .decoders
                .reason
                .contains("h264 decoded in software"),
            "{}",
            selection.decoders.reason
        );
        eprintln!(
            "hardware decode path not exercised: {}",
            selection.decoders.reason
        );
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let source = clip(dir.path(), "segment.ts", 2, "1280x720");
    let source_info = inspect(&source).expect("source");
    let profiles = Profile::parse_list("720p,360p").expect("ladder");
    let renditions = transcode_segment(&source, &profiles, &selection, &dir.path().join("out"))
        .expect("transcodes");
    for (r, profile) in renditions.iter().zip(&profiles) {
        assert_eq!(r.decoder, decoder);
        verify_rendition(&source_info, &r.path, profile).expect("verifies");
    }
    eprintln!(
        "hardware decode path exercised: {decoder} with {}",
        selection.name
    );
}
