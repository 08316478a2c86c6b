//! Which decoder reads a segment's video (PROTOCOL §5, §7): a hardware decoder where one really decodes on
//! this machine, else FFmpeg's software decoder. Like encoders, hardware decoders are tried rather than
//! assumed: `h264_qsv` opens wherever FFmpeg was built with libmfx and only fails at its first packet when
//! there is no Intel GPU, so the probe decodes a few frames it made itself.
//!
//! Only decoders FFmpeg offers by name can be used (`h264_cuvid` / `hevc_cuvid` on NVDEC, `h264_qsv` /
//! `hevc_qsv` on Quick Sync): they hand their frames back in system memory (NV12) without any hardware
//! device being attached from outside. The hwaccel route (VAAPI, or CUDA frames that stay on the GPU)
//! needs an `AVHWDeviceContext` on the codec context, which ffmpeg-next has no safe API for.

use std::time::Instant;

use ffmpeg_next::{
    self as ffmpeg, Dictionary, Packet, Rational, codec, decoder, encoder, format::Pixel, frame,
};

use crate::ffmpeg_log;

/// Families of hardware decoders FFmpeg names `<codec>_<family>`, in the order they are tried when the
/// encoder does not say otherwise.
pub const HARDWARE_DECODER_FAMILIES: [&str; 2] = ["cuvid", "qsv"];

/// Source codecs probed, with the software encoder that makes their probe stream.
const PROBED_CODECS: [(codec::Id, &str); 2] =
    [(codec::Id::H264, "libx264"), (codec::Id::HEVC, "libx265")];

/// The probe stream's size: above every hardware decoder's minimum (NVDEC's HEVC minimum is 144x144).
const PROBE_WIDTH: u32 = 320;
const PROBE_HEIGHT: u32 = 240;
/// Frames in the probe stream; hardware decoders hold a few back until the end of the stream.
const PROBE_FRAMES: i64 = 6;

/// The outcome of trying one hardware decoder.
#[derive(Debug, Clone)]
pub struct DecoderProbe {
    /// FFmpeg's decoder name, e.g. `h264_cuvid`.
    pub name: String,
    /// The codec it decodes, by FFmpeg's codec name, e.g. `h264`.
    pub codec: String,
    /// Whether it decoded the probe stream.
    pub decodes: bool,
    /// What it decoded and how long that took, or why it did not, in FFmpeg's words where it gave any.
    pub detail: String,
}

/// A hardware decoder chosen for one source codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HardwareDecoder {
    /// FFmpeg's codec name, e.g. `h264`.
    pub codec: String,
    /// FFmpeg's decoder name, e.g. `h264_cuvid`.
    pub name: String,
}

/// The decoders the transcoder uses, and why.
#[derive(Debug, Clone, Default)]
pub struct DecoderSelection {
    /// The hardware decoder for each source codec that has one here; every other codec is decoded in
    /// software.
    pub hardware: Vec<HardwareDecoder>,
    /// One sentence per probed codec: which decoder reads it and, for software, why no hardware
    /// decoder does.
    pub reason: String,
}

impl DecoderSelection {
    /// Software decoding for every codec, without probing.
    pub fn software() -> Self {
        DecoderSelection {
            hardware: Vec::new(),
            reason: "software decoding chosen by the caller".to_owned(),
        }
    }

    /// A selection that uses `name` for `codec` whether or not it works here; for tests and benchmarks
    /// that exercise a particular decoder, or the fallback from one.
    pub fn forced(codec: &str, name: &str) -> Self {
        DecoderSelection {
            hardware: vec![HardwareDecoder {
                codec: codec.to_owned(),
                name: name.to_owned(),
            }],
            reason: format!("{codec} decoded by {name}, asked for by name"),
        }
    }

    /// The hardware decoder for `codec` (FFmpeg's codec name), if there is one.
    pub fn for_codec(&self, codec: &str) -> Option<&str> {
        self.hardware
            .iter()
            .find(|d| d.codec == codec)
            .map(|d| d.name.as_str())
    }
}

/// The families in the order to try them next to `encoder`: the encoder's own vendor first, so one GPU
/// both decodes and encodes.
pub(crate) fn family_order(encoder: &str) -> Vec<&'static str> {
    let mut order = HARDWARE_DECODER_FAMILIES.to_vec();
    let first = if encoder.ends_with("_qsv") {
        Some("qsv")
    } else if encoder.ends_with("_nvenc") {
        Some("cuvid")
    } else {
        None
    };
    if let Some(first) = first {
        order.sort_by_key(|f| *f != first);
    }
    order
}

/// Tries every hardware decoder of every probed codec (H.264, HEVC), in the order that suits `encoder`,
/// on a short stream made here with the codec's software encoder.
pub fn probe_decoders(encoder: &str) -> Vec<DecoderProbe> {
    crate::init();
    let mut probes = Vec::new();
    for (id, software_encoder) in PROBED_CODECS {
        let codec = id.name().to_owned();
        // Made once per codec, and only if FFmpeg has a hardware decoder for it to try.
        let mut stream: Option<Result<ProbeStream, String>> = None;
        for family in family_order(encoder) {
            let name = format!("{codec}_{family}");
            let started = Instant::now();
            let outcome = if decoder::find_by_name(&name).is_none() {
                Err("not built into this FFmpeg".to_owned())
            } else {
                match stream.get_or_insert_with(|| probe_stream(id, software_encoder)) {
                    Ok(stream) => decode_probe(&name, stream),
                    Err(reason) => Err(reason.clone()),
                }
            };
            let (decodes, detail) = match outcome {
                Ok((frames, format)) => (
                    true,
                    format!(
                        "decoded {frames} {}x{} frames ({format:?} in system memory) in {} ms",
                        PROBE_WIDTH,
                        PROBE_HEIGHT,
                        started.elapsed().as_millis()
                    ),
                ),
                Err(reason) => (false, reason),
            };
            if !decodes {
                tracing::debug!(decoder = %name, %detail, "hardware decoder not usable");
            }
            probes.push(DecoderProbe {
                name,
                codec: codec.clone(),
                decodes,
                detail,
            });
        }
    }
    probes
}

/// Probes the hardware decoders and picks, for each codec, the first that decodes.
pub fn select_decoders(encoder: &str) -> DecoderSelection {
    let selection = selection_from(&probe_decoders(encoder));
    tracing::info!(decoders = %selection.reason, "decoders selected");
    selection
}

pub(crate) fn selection_from(probes: &[DecoderProbe]) -> DecoderSelection {
    let mut hardware = Vec::new();
    let mut sentences = Vec::new();
    let mut codecs: Vec<&str> = probes.iter().map(|p| p.codec.as_str()).collect();
    codecs.dedup();
    for codec in codecs {
        let of_codec: Vec<&DecoderProbe> = probes.iter().filter(|p| p.codec == codec).collect();
        let failed = |upto: usize| {
            of_codec[..upto]
                .iter()
                .map(|p| format!("{}: {}", p.name, p.detail))
                .collect::<Vec<_>>()
                .join("; ")
        };
        match of_codec.iter().position(|p| p.decodes) {
            Some(i) => {
                let name = &of_codec[i].name;
                hardware.push(HardwareDecoder {
                    codec: codec.to_owned(),
                    name: name.clone(),
                });
                sentences.push(if i == 0 {
                    format!("{codec} decoded by {name}")
                } else {
                    format!("{codec} decoded by {name} ({})", failed(i))
                });
            }
            None => sentences.push(format!(
                "{codec} decoded in software ({})",
                failed(of_codec.len())
            )),
        }
    }
    DecoderSelection {
        hardware,
        reason: sentences.join("; "),
    }
}

/// Opens the hardware decoder `name` for a stream with `parameters`. The error is a sentence saying why.
pub(crate) fn open_hardware(
    name: &str,
    parameters: codec::Parameters,
    packet_time_base: Rational,
) -> Result<decoder::Video, String> {
    let found =
        decoder::find_by_name(name).ok_or_else(|| "not built into this FFmpeg".to_owned())?;
    let context = codec::context::Context::from_parameters(parameters)
        .map_err(|e| format!("the stream's parameters are unusable: {e}"))?;
    let mut opening = context.decoder();
    opening.set_packet_time_base(packet_time_base);
    let (opened, msgs) = ffmpeg_log::capture(|| opening.open_as(found));
    let opened = opened.map_err(|e| first_words(name, &msgs, e))?;
    opened
        .video()
        .map_err(|e| format!("does not decode video: {e}"))
}

/// FFmpeg's first message, which names the cause (the ones after it report the consequences), without
/// the decoder's name, which every message that reports on it already carries; else `fallback`.
fn first_words(name: &str, msgs: &[String], fallback: impl std::fmt::Display) -> String {
    msgs.first().map_or_else(
        || fallback.to_string(),
        |m| m.replace(&format!("[{name}] "), ""),
    )
}

/// Packets of a few frames of one codec, and the parameters a decoder needs for them.
struct ProbeStream {
    parameters: codec::Parameters,
    packets: Vec<Packet>,
}

/// Encodes [`PROBE_FRAMES`] frames of a moving gradient with `encoder_name`.
fn probe_stream(id: codec::Id, encoder_name: &str) -> Result<ProbeStream, String> {
    let unavailable = |why: String| format!("no {} probe stream to try it on ({why})", id.name());
    let found = encoder::find_by_name(encoder_name)
        .ok_or_else(|| unavailable(format!("{encoder_name} is not built into this FFmpeg")))?;
    let mut video = codec::context::Context::new_with_codec(found)
        .encoder()
        .video()
        .map_err(|e| unavailable(e.to_string()))?;
    video.set_width(PROBE_WIDTH);
    video.set_height(PROBE_HEIGHT);
    video.set_format(Pixel::YUV420P);
    video.set_time_base(Rational::new(1, 30));
    video.set_frame_rate(Some(Rational::new(30, 1)));
    let mut options = Dictionary::new();
    options.set("preset", "ultrafast");
    options.set("bf", "0");
    options.set("threads", "1");
    if encoder_name == "libx265" {
        // x265 reports its settings on stderr unless told otherwise.
        options.set("x265-params", "log-level=error");
    }
    let (opened, msgs) = ffmpeg_log::capture(|| video.open_with(options));
    let mut opened = opened.map_err(|e| unavailable(ffmpeg_log::explain(&msgs, e)))?;
    let parameters = codec::Parameters::from(&opened);
    let mut packets = Vec::new();
    let mut picture = frame::Video::new(Pixel::YUV420P, PROBE_WIDTH, PROBE_HEIGHT);
    for index in 0..PROBE_FRAMES {
        paint(&mut picture, index as usize);
        picture.set_pts(Some(index));
        opened
            .send_frame(&picture)
            .map_err(|e| unavailable(e.to_string()))?;
        collect(&mut opened, &mut packets).map_err(unavailable)?;
    }
    opened.send_eof().map_err(|e| unavailable(e.to_string()))?;
    collect(&mut opened, &mut packets).map_err(unavailable)?;
    if packets.is_empty() {
        return Err(unavailable(format!("{encoder_name} made no packets")));
    }
    Ok(ProbeStream {
        parameters,
        packets,
    })
}

fn collect(encoder: &mut encoder::video::Encoder, packets: &mut Vec<Packet>) -> Result<(), String> {
    loop {
        let mut packet = Packet::empty();
        match encoder.receive_packet(&mut packet) {
            Ok(()) => packets.push(packet),
            Err(ffmpeg::Error::Eof) => return Ok(()),
            Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                return Ok(());
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// A diagonal gradient that moves with `index`, and neutral chroma.
fn paint(picture: &mut frame::Video, index: usize) {
    let (width, height) = (picture.width() as usize, picture.height() as usize);
    for plane in 0..picture.planes() {
        let stride = picture.stride(plane);
        let data = picture.data_mut(plane);
        if plane == 0 {
            for (y, row) in data.chunks_mut(stride).take(height).enumerate() {
                for (x, px) in row.iter_mut().take(width).enumerate() {
                    *px = ((x + y + 4 * index) % 220 + 16) as u8;
                }
            }
        } else {
            data.fill(128);
        }
    }
}

/// Decodes `stream` with `found`: the number of frames and their format, or why none came out.
fn decode_probe(name: &str, stream: &ProbeStream) -> Result<(u64, Pixel), String> {
    let (outcome, msgs) = ffmpeg_log::capture(|| decode_all(name, stream));
    // FFmpeg's own words say more than an error code, when it logged any.
    outcome.map_err(|e| first_words(name, &msgs, e))
}

fn decode_all(name: &str, stream: &ProbeStream) -> Result<(u64, Pixel), String> {
    let mut decoder = open_hardware(name, stream.parameters.clone(), Rational::new(1, 30))?;
    let mut decoded = Decoded::default();
    for packet in &stream.packets {
        decoder
            .send_packet(packet)
            .map_err(|e| format!("refuses a packet: {e}"))?;
        drain(&mut decoder, &mut decoded)?;
    }
    decoder
        .send_eof()
        .map_err(|e| format!("fails at the end of the stream: {e}"))?;
    drain(&mut decoder, &mut decoded)?;
    match decoded.last {
        Some((format, _, _)) if decoded.frames > 0 => Ok((decoded.frames, format)),
        _ => Err("decodes no frame".to_owned()),
    }
}

/// What came out of a decoder: how many frames, and the format and size of the last.
#[derive(Default)]
struct Decoded {
    frames: u64,
    last: Option<(Pixel, u32, u32)>,
}

/// Receives every frame the decoder has ready.
fn drain(decoder: &mut decoder::Video, decoded: &mut Decoded) -> Result<(), String> {
    let mut picture = frame::Video::empty();
    loop {
        match decoder.receive_frame(&mut picture) {
            Ok(()) => {
                decoded.frames += 1;
                decoded.last = Some((picture.format(), picture.width(), picture.height()));
            }
            Err(ffmpeg::Error::Eof) => return Ok(()),
            Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                return Ok(());
            }
            Err(e) => return Err(format!("fails to decode: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(name: &str, codec: &str, decodes: bool, detail: &str) -> DecoderProbe {
        DecoderProbe {
            name: name.to_owned(),
            codec: codec.to_owned(),
            decodes,
            detail: detail.to_owned(),
        }
    }

    #[test]
    fn the_encoders_vendor_is_tried_first() {
        assert_eq!(family_order("h264_nvenc"), ["cuvid", "qsv"]);
        assert_eq!(family_order("h264_qsv"), ["qsv", "cuvid"]);
        assert_eq!(family_order("libx264"), ["cuvid", "qsv"]);
        assert_eq!(family_order("h264_vaapi"), ["cuvid", "qsv"]);
    }

    #[test]
    fn each_codec_takes_the_first_decoder_that_decodes_and_the_reason_names_the_rest() {
        let selection = selection_from(&[
            probe("h264_cuvid", "h264", false, "Cannot load libnvcuvid.so.1"),
            probe("h264_qsv", "h264", true, "decoded 6 frames"),
            probe("hevc_cuvid", "hevc", false, "Cannot load libnvcuvid.so.1"),
            probe("hevc_qsv", "hevc", false, "unsupported (-3)"),
        ]);
        assert_eq!(selection.for_codec("h264"), Some("h264_qsv"));
        assert_eq!(selection.for_codec("hevc"), None);
        assert_eq!(
            selection.reason,
            "h264 decoded by h264_qsv (h264_cuvid: Cannot load libnvcuvid.so.1); \
             hevc decoded in software (hevc_cuvid: Cannot load libnvcuvid.so.1; \
             hevc_qsv: unsupported (-3))"
        );
    }

    #[test]
    fn software_and_forced_selections() {
        assert_eq!(DecoderSelection::software().for_codec("h264"), None);
        let forced = DecoderSelection::forced("h264", "h264_cuvid");
        assert_eq!(forced.for_codec("h264"), Some("h264_cuvid"));
        assert_eq!(forced.for_codec("hevc"), None);
    }

    #[test]
    fn the_probe_stream_decodes_in_software() {
        // The stream every hardware decoder is tried on must itself be sound.
        crate::init();
        for (id, encoder) in PROBED_CODECS {
            if encoder::find_by_name(encoder).is_none() {
                eprintln!(
                    "{encoder} is not built into this FFmpeg; its probe stream is not checked"
                );
                continue;
            }
            let stream = probe_stream(id, encoder).expect("probe stream");
            let software = decoder::find(id).expect("software decoder");
            let mut decoder = codec::context::Context::from_parameters(stream.parameters.clone())
                .expect("parameters")
                .decoder()
                .open_as(software)
                .expect("opens")
                .video()
                .expect("video");
            let mut decoded = Decoded::default();
            for packet in &stream.packets {
                decoder.send_packet(packet).expect("packet");
                drain(&mut decoder, &mut decoded).expect("decodes");
            }
            decoder.send_eof().expect("eof");
            drain(&mut decoder, &mut decoded).expect("decodes");
            assert_eq!(decoded.frames, PROBE_FRAMES as u64, "{encoder}");
            assert_eq!(
                decoded.last,
                Some((Pixel::YUV420P, PROBE_WIDTH, PROBE_HEIGHT)),
                "{encoder}"
            );
        }
    }
}
