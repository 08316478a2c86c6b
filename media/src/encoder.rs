//! Which H.264 encoder a worker uses (PROTOCOL §5): each candidate is actually opened, because being built
//! into FFmpeg says nothing about whether the GPU, its driver or a free encode session is there.

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use dualrig_proto::profile::{Codec, Profile};
use ffmpeg_next::{Dictionary, Rational, codec, encoder};

use crate::decoder::{DecoderSelection, select_decoders};
use crate::error::MediaError;
use crate::ffmpeg_log;
use crate::ladder::{RenditionSettings, SourceTiming, rendition_settings};
use crate::vaapi;

/// Hardware encoders in the order `auto` prefers them.
pub const HARDWARE_ENCODERS: [&str; 3] = ["h264_nvenc", "h264_vaapi", "h264_qsv"];
/// The encoder every machine has.
pub const SOFTWARE_ENCODER: &str = "libx264";

/// Size the probe opens encoders at: small, but above every hardware encoder's minimum.
const PROBE_WIDTH: u32 = 320;
const PROBE_HEIGHT: u32 = 240;

/// What the operator asked for: `auto`, or one encoder by its FFmpeg name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EncoderChoice {
    #[default]
    Auto,
    Named(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "encoder must be 'auto' or an FFmpeg encoder name such as libx264 or h264_nvenc (got '{0}')"
)]
pub struct EncoderChoiceError(pub String);

impl FromStr for EncoderChoice {
    type Err = EncoderChoiceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("auto") {
            Ok(EncoderChoice::Auto)
        } else if !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            Ok(EncoderChoice::Named(s.to_owned()))
        } else {
            Err(EncoderChoiceError(s.to_owned()))
        }
    }
}

impl fmt::Display for EncoderChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncoderChoice::Auto => f.write_str("auto"),
            EncoderChoice::Named(name) => f.write_str(name),
        }
    }
}

/// The outcome of trying to open one encoder.
#[derive(Debug, Clone)]
pub struct EncoderProbe {
    pub name: String,
    pub opened: bool,
    pub hardware: bool,
    /// How long opening took, or why it did not open, in FFmpeg's words where it gave any.
    pub detail: String,
}

/// The encoder a worker will use, and why; with the decoders that read the segments it encodes.
#[derive(Debug, Clone)]
pub struct EncoderSelection {
    pub name: String,
    pub hardware: bool,
    pub reason: String,
    /// Every probed encoder that opened.
    pub available: Vec<String>,
    /// Which decoder reads each source codec (hardware where one decodes here), and why.
    pub decoders: DecoderSelection,
}

impl EncoderSelection {
    /// libx264 and software decoding without probing, for callers that know they want software.
    pub fn software() -> Self {
        EncoderSelection {
            name: SOFTWARE_ENCODER.to_owned(),
            hardware: false,
            reason: "software encoder chosen by the caller".to_owned(),
            available: vec![SOFTWARE_ENCODER.to_owned()],
            decoders: DecoderSelection::software(),
        }
    }
}

/// Tries to open h264_nvenc, h264_vaapi, h264_qsv and libx264, in that order, at a small size.
pub fn probe_encoders() -> Vec<EncoderProbe> {
    crate::init();
    HARDWARE_ENCODERS
        .iter()
        .chain(std::iter::once(&SOFTWARE_ENCODER))
        .map(|name| probe_one(name))
        .collect()
}

/// Picks the encoder: for `Auto` the first hardware encoder that opens (h264_nvenc, then h264_vaapi,
/// then h264_qsv), else libx264; for a name, that encoder if it opens. The decoders are probed next to
/// it ([`select_decoders`]).
pub fn select_encoder(choice: &EncoderChoice) -> Result<EncoderSelection, MediaError> {
    let probes = probe_encoders();
    let available: Vec<String> = probes
        .iter()
        .filter(|p| p.opened)
        .map(|p| p.name.clone())
        .collect();
    let failures = |probes: &[EncoderProbe]| {
        probes
            .iter()
            .filter(|p| !p.opened)
            .map(|p| format!("{}: {}", p.name, p.detail))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let selection = match choice {
        EncoderChoice::Auto => {
            if let Some(i) = probes.iter().position(|p| p.hardware && p.opened) {
                let before = failures(&probes[..i]);
                let reason = if before.is_empty() {
                    format!(
                        "{} is the first hardware encoder that opens",
                        probes[i].name
                    )
                } else {
                    format!(
                        "{before}; {} is the first hardware encoder that opens",
                        probes[i].name
                    )
                };
                EncoderSelection {
                    name: probes[i].name.clone(),
                    hardware: true,
                    reason,
                    available,
                    decoders: DecoderSelection::default(),
                }
            } else if probes
                .iter()
                .any(|p| p.name == SOFTWARE_ENCODER && p.opened)
            {
                EncoderSelection {
                    name: SOFTWARE_ENCODER.to_owned(),
                    hardware: false,
                    reason: format!("{}; falling back to {SOFTWARE_ENCODER}", failures(&probes)),
                    available,
                    decoders: DecoderSelection::default(),
                }
            } else {
                return Err(MediaError::NoEncoder {
                    reason: failures(&probes),
                });
            }
        }
        EncoderChoice::Named(name) => {
            let probe = match probes.iter().find(|p| p.name == *name) {
                Some(p) => p.clone(),
                None => probe_one(name),
            };
            if !probe.opened {
                return Err(MediaError::EncoderUnavailable {
                    name: name.clone(),
                    reason: probe.detail,
                });
            }
            let mut available = available;
            if !available.contains(name) {
                available.push(name.clone());
            }
            EncoderSelection {
                name: name.clone(),
                hardware: probe.hardware,
                reason: format!("{name} asked for by name and it opens"),
                available,
                decoders: DecoderSelection::default(),
            }
        }
    };
    tracing::info!(encoder = %selection.name, reason = %selection.reason, "encoder selected");
    let decoders = select_decoders(&selection.name);
    Ok(EncoderSelection {
        decoders,
        ..selection
    })
}

/// Whether an encoder drives dedicated hardware rather than the CPU.
pub(crate) fn is_hardware(name: &str) -> bool {
    [
        "_nvenc",
        "_vaapi",
        "_qsv",
        "_amf",
        "_videotoolbox",
        "_v4l2m2m",
        "_mf",
        "_omx",
    ]
    .iter()
    .any(|suffix| name.ends_with(suffix))
}

fn probe_one(name: &str) -> EncoderProbe {
    let started = Instant::now();
    let profile = Profile {
        name: "probe".to_owned(),
        width: PROBE_WIDTH,
        height: PROBE_HEIGHT,
        fps: 0,
        bitrate: 500_000,
        codec: Codec::H264,
    };
    let timing = SourceTiming {
        frame_rate: 30.0,
        start_secs: 10.0,
    };
    let settings = rendition_settings(name, &profile, &timing);
    let result = open_video_encoder(
        name,
        PROBE_WIDTH,
        PROBE_HEIGHT,
        Rational::new(1, 90_000),
        &settings,
    );
    let (opened, detail) = match result {
        Ok(_) => (
            true,
            format!("opened in {} ms", started.elapsed().as_millis()),
        ),
        Err(reason) => (false, reason),
    };
    if !opened {
        tracing::debug!(encoder = name, %detail, "encoder did not open");
    }
    EncoderProbe {
        name: name.to_owned(),
        opened,
        hardware: is_hardware(name),
        detail,
    }
}

/// An opened encoder and, for VAAPI, the surfaces it takes its frames on.
pub(crate) struct OpenedEncoder {
    pub encoder: encoder::video::Encoder,
    pub surfaces: Option<vaapi::SurfacePool>,
}

/// Opens `name` for `width`x`height` frames stamped in `time_base`. The error is a sentence saying why.
pub(crate) fn open_video_encoder(
    name: &str,
    width: u32,
    height: u32,
    time_base: Rational,
    settings: &RenditionSettings,
) -> Result<OpenedEncoder, String> {
    let codec =
        encoder::find_by_name(name).ok_or_else(|| "not built into this FFmpeg".to_owned())?;
    if codec.id() != codec::Id::H264 {
        return Err(format!("produces {}, not H.264", codec.id().name()));
    }
    let surfaces = if name == "h264_vaapi" {
        if let Some(reason) = vaapi::unavailable_reason() {
            return Err(reason);
        }
        let (pool, msgs) = ffmpeg_log::capture(|| vaapi::SurfacePool::open(width, height));
        Some(pool.map_err(|e| {
            format!(
                "cannot open the VAAPI device {}: {}",
                vaapi::RENDER_NODE,
                ffmpeg_log::explain(&msgs, e)
            )
        })?)
    } else {
        None
    };
    let mut video = codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(|e| format!("cannot make an encoder context: {e}"))?;
    video.set_width(width);
    video.set_height(height);
    video.set_time_base(time_base);
    video.set_frame_rate(Some(frame_rate_rational(settings.frame_rate)));
    video.set_format(settings.pixel_format);
    if let Some(pool) = &surfaces {
        pool.attach(&mut video);
    }
    let mut options = Dictionary::new();
    for (key, value) in &settings.options {
        options.set(key, value);
    }
    let (opened, msgs) = ffmpeg_log::capture(|| video.open_with(options));
    // The encoder's name is already in every message that reports this.
    let encoder =
        opened.map_err(|e| ffmpeg_log::explain(&msgs, e).replace(&format!("[{name}] "), ""))?;
    Ok(OpenedEncoder { encoder, surfaces })
}

/// A frame rate as the exact rational FFmpeg expects for the common NTSC rates, else in thousandths.
pub(crate) fn frame_rate_rational(fps: f64) -> Rational {
    for (num, den) in [(24_000, 1001), (30_000, 1001), (60_000, 1001)] {
        if (fps - f64::from(num) / f64::from(den)).abs() < 1e-3 {
            return Rational::new(num, den);
        }
    }
    if (fps - fps.round()).abs() < 1e-6 {
        Rational::new(fps.round() as i32, 1)
    } else {
        Rational::new((fps * 1000.0).round() as i32, 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse() {
        assert_eq!("auto".parse::<EncoderChoice>(), Ok(EncoderChoice::Auto));
        assert_eq!("AUTO".parse::<EncoderChoice>(), Ok(EncoderChoice::Auto));
        assert_eq!(
            "h264_nvenc".parse::<EncoderChoice>(),
            Ok(EncoderChoice::Named("h264_nvenc".into()))
        );
        assert!("".parse::<EncoderChoice>().is_err());
        assert!("lib x264".parse::<EncoderChoice>().is_err());
        assert_eq!(
            EncoderChoice::Named("libx264".into()).to_string(),
            "libx264"
        );
    }

    #[test]
    fn hardware_names() {
        assert!(is_hardware("h264_nvenc"));
        assert!(is_hardware("h264_vaapi"));
        assert!(!is_hardware("libx264"));
    }

    #[test]
    fn ntsc_rates_stay_exact() {
        assert_eq!(
            frame_rate_rational(29.97002997),
            Rational::new(30_000, 1001)
        );
        assert_eq!(frame_rate_rational(30.0), Rational::new(30, 1));
        assert_eq!(frame_rate_rational(12.5), Rational::new(12_500, 1000));
    }
}
