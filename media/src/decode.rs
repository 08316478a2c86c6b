//! Opening a segment and decoding its video stream once, with every way that can fail sorted into an error
//! a person can act on: empty file, not a media file, no video, undecodable, truncated.

use std::io::Read;
use std::path::Path;

use ffmpeg_next::{
    self as ffmpeg, Packet, Rational, codec, decoder, format, frame, media, picture, threading,
};

use crate::decoder::DecoderSelection;
use crate::error::MediaError;
use crate::ffmpeg_log;
use crate::ladder::{FALLBACK_FRAME_RATE, SourceTiming};

/// Sizes a transport stream may be made of (plain, M2TS with timecodes, with Reed-Solomon parity).
const TS_PACKET_SIZES: [usize; 3] = [188, 192, 204];
const TS_SYNC_BYTE: u8 = 0x47;

/// An open file with its video decoder ready.
pub(crate) struct VideoSource {
    pub input: format::context::Input,
    pub video_index: usize,
    pub audio_index: Option<usize>,
    pub decoder: decoder::Video,
    pub video_time_base: Rational,
    /// The stated frame rate, or [`FALLBACK_FRAME_RATE`] when the file states none.
    pub frame_rate: f64,
    pub container: String,
    pub video_codec: String,
    pub audio_codec: Option<String>,
    /// The decoder reading the video, by FFmpeg's name: `h264` for the software one, `h264_cuvid` …
    pub decoder_name: String,
    /// Whether `decoder_name` is a hardware decoder.
    pub hardware_decoder: bool,
    threads: usize,
}

/// What decoding the whole video stream found.
#[derive(Debug, Clone, Default)]
pub(crate) struct DecodeSummary {
    pub frames: u64,
    pub first_pts: Option<i64>,
    pub last_pts: Option<i64>,
    pub first_is_key: bool,
    pub width: u32,
    pub height: u32,
}

/// A decode error and how many video packets had been sent when it surfaced.
struct DecodeFault {
    at_packet: u64,
    message: String,
}

impl VideoSource {
    /// Opens `path` and its best video stream, for decoding in software with `threads` frame threads
    /// (at least 1) and every error reported.
    pub(crate) fn open(path: &Path, threads: usize) -> Result<Self, MediaError> {
        Self::open_with(path, threads, &DecoderSelection::software())
    }

    /// [`VideoSource::open`] with the hardware decoder `decoders` names for the stream's codec, when it
    /// opens; a hardware decoder that does not open is logged and the software one used instead.
    pub(crate) fn open_with(
        path: &Path,
        threads: usize,
        decoders: &DecoderSelection,
    ) -> Result<Self, MediaError> {
        crate::init();
        let len = std::fs::metadata(path)
            .map_err(|source| MediaError::Read {
                path: path.to_owned(),
                source,
            })?
            .len();
        if len == 0 {
            return Err(MediaError::Empty {
                path: path.to_owned(),
            });
        }
        let (opened, msgs) = ffmpeg_log::capture(|| format::input(path));
        let input = opened.map_err(|e| MediaError::Undecodable {
            detail: format!(
                "FFmpeg does not recognise it as a media file ({})",
                ffmpeg_log::explain(&msgs, e)
            ),
        })?;
        let container = input.format().name().to_owned();
        if container == "mpegts" {
            check_whole_transport_packets(path, len)?;
        }
        let Some(video) = input.streams().best(media::Type::Video) else {
            return Err(MediaError::NoVideo {
                found: describe_streams(&input),
            });
        };
        let video_index = video.index();
        let video_time_base = video.time_base();
        let video_codec = video.parameters().id().name().to_owned();
        let frame_rate = stated_frame_rate(&video).unwrap_or(FALLBACK_FRAME_RATE);
        let audio = input.streams().best(media::Type::Audio);
        let audio_index = audio.as_ref().map(|s| s.index());
        let audio_codec = audio.map(|s| s.parameters().id().name().to_owned());

        let hardware = decoders.for_codec(&video_codec).and_then(|name| {
            crate::decoder::open_hardware(name, video.parameters(), video_time_base)
                .map_err(|reason| {
                    tracing::warn!(
                        decoder = name,
                        %reason,
                        "the hardware decoder does not open for this segment; decoding in software"
                    )
                })
                .ok()
                .map(|decoder| (decoder, name.to_owned()))
        });
        let (decoder, decoder_name, hardware_decoder, threads) = match hardware {
            Some((decoder, name)) => (decoder, name, true, 1),
            None => {
                let decoder = open_software(&video, &video_codec, video_time_base, threads)?;
                let name = decoder
                    .codec()
                    .map_or_else(|| video_codec.clone(), |c| c.name().to_owned());
                (decoder, name, false, threads)
            }
        };
        Ok(VideoSource {
            input,
            video_index,
            audio_index,
            decoder,
            video_time_base,
            frame_rate,
            container,
            video_codec,
            audio_codec,
            decoder_name,
            hardware_decoder,
            threads,
        })
    }

    /// One frame's duration in the video stream's time base (at least 1).
    pub(crate) fn frame_duration_ts(&self) -> i64 {
        let tb = f64::from(self.video_time_base);
        ((1.0 / self.frame_rate) / tb).round().max(1.0) as i64
    }

    /// Reads the whole file once. Every decoded video frame goes to `on_frame`, with its pts set to its
    /// best-effort timestamp and its picture type cleared; every packet of the chosen audio stream goes to
    /// `on_audio`. Either callback may stop the run by returning an error.
    pub(crate) fn decode(
        &mut self,
        mut on_frame: impl FnMut(frame::Video) -> Result<(), MediaError>,
        mut on_audio: impl FnMut(Packet) -> Result<(), MediaError>,
    ) -> Result<DecodeSummary, MediaError> {
        let mut summary = DecodeSummary::default();
        let mut fault: Option<DecodeFault> = None;
        let mut read_error = None;
        let mut video_packets = 0u64;
        let mut packets = 0u64;
        let mut last_corrupt = None;
        let mut next_pts = None;
        let frame_duration = self.frame_duration_ts();
        loop {
            let packet = match self.next_packet() {
                Ok(Some(packet)) => packet,
                Ok(None) => break,
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            };
            packets += 1;
            if packet.is_corrupt() {
                last_corrupt = Some(packets);
            }
            if packet.stream() == self.video_index {
                video_packets += 1;
                if let Err(e) = self.decoder.send_packet(&packet) {
                    note(&mut fault, video_packets, e.to_string());
                }
            } else if Some(packet.stream()) == self.audio_index {
                on_audio(packet)?;
                continue;
            } else {
                continue;
            }
            self.drain(
                &mut on_frame,
                &mut summary,
                &mut fault,
                &mut next_pts,
                frame_duration,
                video_packets,
            )?;
        }
        // Flushing: whatever surfaces now belongs to the stream's end. With frame threading a bad last
        // packet is reported here.
        match self.decoder.send_eof() {
            Ok(()) | Err(ffmpeg::Error::Eof) => {}
            Err(e) => note(&mut fault, video_packets + 1, e.to_string()),
        }
        self.drain(
            &mut on_frame,
            &mut summary,
            &mut fault,
            &mut next_pts,
            frame_duration,
            video_packets + 1,
        )?;

        // Frame threading hands an error back up to `threads` packets late.
        let tail = (self.threads.max(1) as u64) + 2;
        let near_end = |at: u64| at + tail > video_packets;
        if let Some(fault) = fault {
            return Err(if near_end(fault.at_packet) {
                MediaError::Truncated {
                    detail: format!(
                        "the last video packets do not decode ({}); {} frames decoded before that",
                        fault.message, summary.frames
                    ),
                }
            } else {
                MediaError::Undecodable {
                    detail: format!(
                        "video packet {} of {video_packets} does not decode: {}",
                        fault.at_packet, fault.message
                    ),
                }
            });
        }
        if let Some(e) = read_error {
            return Err(MediaError::Undecodable {
                detail: format!("reading stops after {packets} packets: {e}"),
            });
        }
        if last_corrupt.is_some_and(|at| at + 2 >= packets) {
            return Err(MediaError::Truncated {
                detail: "the last packets of the file are incomplete".to_owned(),
            });
        }
        if summary.frames == 0 {
            return Err(MediaError::Undecodable {
                detail: format!(
                    "no {} frame decodes from {video_packets} video packets",
                    self.video_codec
                ),
            });
        }
        Ok(summary)
    }

    /// Reads every packet without decoding the stream: video packets counted, their presentation
    /// timestamps' span and the key flag of the earliest one kept, and only the first frame decoded
    /// (its size, and that the stream starts as a picture). At most `max_packets` video packets are
    /// read. What the bitstream says, for a check that need not decode all of it.
    pub(crate) fn scan(&mut self, max_packets: u64) -> Result<DecodeSummary, MediaError> {
        let mut summary = DecodeSummary::default();
        let mut video_packets = 0u64;
        let mut earliest_key = false;
        let mut first_frame: Option<frame::Video> = None;
        while let Some(packet) = self.next_packet().map_err(|e| MediaError::Undecodable {
            detail: format!("reading stops after {video_packets} video packets: {e}"),
        })? {
            if packet.stream() != self.video_index {
                continue;
            }
            if packet.is_corrupt() {
                return Err(MediaError::Undecodable {
                    detail: format!("video packet {} is damaged", video_packets + 1),
                });
            }
            video_packets += 1;
            if video_packets > max_packets {
                return Err(MediaError::TooManyFrames {
                    frames: video_packets,
                    limit: max_packets,
                });
            }
            let Some(pts) = packet.pts().or(packet.dts()) else {
                return Err(MediaError::Undecodable {
                    detail: format!("video packet {video_packets} carries no timestamp"),
                });
            };
            if summary.first_pts.is_none_or(|p| pts < p) {
                summary.first_pts = Some(pts);
                earliest_key = packet.is_key();
            }
            summary.last_pts = Some(summary.last_pts.map_or(pts, |p| p.max(pts)));
            if first_frame.is_none() {
                self.decoder
                    .send_packet(&packet)
                    .map_err(|e| MediaError::Undecodable {
                        detail: format!("video packet {video_packets} does not decode: {e}"),
                    })?;
                first_frame = self.receive_one()?;
            }
        }
        if first_frame.is_none() {
            match self.decoder.send_eof() {
                Ok(()) | Err(ffmpeg::Error::Eof) => {}
                Err(e) => {
                    return Err(MediaError::Undecodable {
                        detail: format!("the video does not decode: {e}"),
                    });
                }
            }
            first_frame = self.receive_one()?;
        }
        let Some(frame) = first_frame else {
            return Err(MediaError::Undecodable {
                detail: format!(
                    "no {} frame decodes from {video_packets} video packets",
                    self.video_codec
                ),
            });
        };
        summary.frames = video_packets;
        summary.width = frame.width();
        summary.height = frame.height();
        summary.first_is_key = earliest_key && frame.is_key();
        Ok(summary)
    }

    /// The codec string of the first SPS among the first video packets (Annex B, as in a transport
    /// stream), or `None` when the first few carry none.
    pub(crate) fn first_sps_codec_string(&mut self) -> Result<Option<String>, MediaError> {
        let mut video_packets = 0;
        while video_packets < 8 {
            let Some(packet) = self.next_packet().map_err(|e| MediaError::Undecodable {
                detail: format!("reading stops after {video_packets} video packets: {e}"),
            })?
            else {
                break;
            };
            if packet.stream() != self.video_index {
                continue;
            }
            video_packets += 1;
            if let Some(codec) = packet.data().and_then(crate::h264::avc1_codec_string) {
                return Ok(Some(codec));
            }
        }
        Ok(None)
    }

    /// The file's next packet, or `None` at its end.
    fn next_packet(&mut self) -> Result<Option<Packet>, ffmpeg::Error> {
        let mut packet = Packet::empty();
        match packet.read(&mut self.input) {
            Ok(()) => Ok(Some(packet)),
            Err(ffmpeg::Error::Eof) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The next decoded frame, or `None` while the decoder wants more packets.
    fn receive_one(&mut self) -> Result<Option<frame::Video>, MediaError> {
        let mut frame = frame::Video::empty();
        match self.decoder.receive_frame(&mut frame) {
            Ok(()) if frame.is_corrupt() => Err(MediaError::Undecodable {
                detail: "the first frame decodes damaged".to_owned(),
            }),
            Ok(()) => Ok(Some(frame)),
            Err(ffmpeg::Error::Eof) => Ok(None),
            Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => Ok(None),
            Err(e) => Err(MediaError::Undecodable {
                detail: format!("the first frame does not decode: {e}"),
            }),
        }
    }

    fn drain(
        &mut self,
        on_frame: &mut impl FnMut(frame::Video) -> Result<(), MediaError>,
        summary: &mut DecodeSummary,
        fault: &mut Option<DecodeFault>,
        next_pts: &mut Option<i64>,
        frame_duration: i64,
        at_packet: u64,
    ) -> Result<(), MediaError> {
        loop {
            let mut frame = frame::Video::empty();
            match self.decoder.receive_frame(&mut frame) {
                Ok(()) => {}
                Err(ffmpeg::Error::Eof) => return Ok(()),
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    return Ok(());
                }
                Err(e) => {
                    note(fault, at_packet, e.to_string());
                    return Ok(());
                }
            }
            if frame.is_corrupt() {
                note(fault, at_packet, "a frame decodes damaged".to_owned());
            }
            let pts = frame.timestamp().or(*next_pts).unwrap_or(0);
            *next_pts = Some(pts + frame_duration);
            frame.set_pts(Some(pts));
            frame.set_kind(picture::Type::None);
            if summary.frames == 0 {
                summary.first_is_key = frame.is_key();
                summary.width = frame.width();
                summary.height = frame.height();
            }
            summary.frames += 1;
            summary.first_pts = Some(summary.first_pts.map_or(pts, |p| p.min(pts)));
            summary.last_pts = Some(summary.last_pts.map_or(pts, |p| p.max(pts)));
            on_frame(frame)?;
        }
    }
}

/// The software decoder for `video`, frame-threaded over `threads`, that reports damaged data as an
/// error instead of concealing it, so a truncated or corrupted segment is never taken for a good one.
fn open_software(
    video: &format::stream::Stream<'_>,
    video_codec: &str,
    time_base: Rational,
    threads: usize,
) -> Result<decoder::Video, MediaError> {
    let mut context =
        codec::context::Context::from_parameters(video.parameters()).map_err(|e| {
            MediaError::Undecodable {
                detail: format!("the {video_codec} stream's parameters are unusable: {e}"),
            }
        })?;
    context.set_threading(threading::Config {
        kind: threading::Type::Frame,
        count: threads.max(1),
        ..Default::default()
    });
    let mut opening = context.decoder();
    opening.check(decoder::Check::CRC | decoder::Check::EXPLODE);
    opening.set_packet_time_base(time_base);
    let (decoder, msgs) = ffmpeg_log::capture(|| opening.video());
    decoder.map_err(|e| MediaError::Undecodable {
        detail: format!(
            "cannot open a {video_codec} decoder: {}",
            ffmpeg_log::explain(&msgs, e)
        ),
    })
}

/// A transport stream is a run of fixed-size packets; a file that ends part way into one was cut short.
fn check_whole_transport_packets(path: &Path, len: u64) -> Result<(), MediaError> {
    let mut head = Vec::with_capacity(1024);
    std::fs::File::open(path)
        .and_then(|f| f.take(1024).read_to_end(&mut head))
        .map_err(|source| MediaError::Read {
            path: path.to_owned(),
            source,
        })?;
    let size = ts_packet_size(&head).unwrap_or(188);
    if len.is_multiple_of(size as u64) {
        return Ok(());
    }
    Err(MediaError::Truncated {
        detail: format!(
            "{len} bytes is not a whole number of {size}-byte transport packets; the file ends {} bytes into one",
            len % size as u64
        ),
    })
}

/// The packet size of a transport stream, from where its sync bytes repeat.
fn ts_packet_size(head: &[u8]) -> Option<usize> {
    TS_PACKET_SIZES.into_iter().find(|&size| {
        // M2TS puts a 4-byte timecode before each packet's sync byte.
        let first = if size == 192 { 4 } else { 0 };
        (0..3).all(|k| head.get(first + k * size) == Some(&TS_SYNC_BYTE))
    })
}

fn note(fault: &mut Option<DecodeFault>, at_packet: u64, message: String) {
    if fault.is_none() {
        *fault = Some(DecodeFault { at_packet, message });
    }
}

/// A stream's frame rate as the file states it.
pub(crate) fn stated_frame_rate(stream: &format::stream::Stream) -> Option<f64> {
    [stream.avg_frame_rate(), stream.rate()]
        .into_iter()
        .find(|r| r.numerator() > 0 && r.denominator() > 0)
        .map(f64::from)
        .filter(|fps| fps.is_finite() && *fps > 0.0 && *fps <= 1000.0)
}

/// The frame rate and first timestamp a video stream states, which a rendition's settings depend on.
pub(crate) fn video_timing(stream: &format::stream::Stream) -> SourceTiming {
    let start = stream.start_time();
    SourceTiming {
        frame_rate: stated_frame_rate(stream).unwrap_or(FALLBACK_FRAME_RATE),
        start_secs: if start == ffmpeg::ffi::AV_NOPTS_VALUE {
            0.0
        } else {
            start as f64 * f64::from(stream.time_base())
        },
    }
}

/// "audio aac, subtitle dvb_subtitle", or "no streams".
pub(crate) fn describe_streams(input: &format::context::Input) -> String {
    let found: Vec<String> = input
        .streams()
        .map(|s| {
            let p = s.parameters();
            let kind = match p.medium() {
                media::Type::Video => "video",
                media::Type::Audio => "audio",
                media::Type::Subtitle => "subtitle",
                media::Type::Data => "data",
                media::Type::Attachment => "attachment",
                _ => "unknown",
            };
            format!("{kind} {}", p.id().name())
        })
        .collect();
    if found.is_empty() {
        "no streams".to_owned()
    } else {
        found.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(size: usize, prefix: usize) -> Vec<u8> {
        let mut data = vec![0u8; size * 4];
        for k in 0..4 {
            data[k * size + prefix] = TS_SYNC_BYTE;
        }
        data
    }

    #[test]
    fn packet_sizes_are_told_apart() {
        assert_eq!(ts_packet_size(&stream(188, 0)), Some(188));
        assert_eq!(ts_packet_size(&stream(192, 4)), Some(192));
        assert_eq!(ts_packet_size(&stream(204, 0)), Some(204));
        assert_eq!(ts_packet_size(&[0u8; 600]), None);
    }
}
