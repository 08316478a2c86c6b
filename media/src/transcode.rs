//! Transcoding one segment into a rendition ladder (PROTOCOL §5): the source is decoded once, on the calling
//! thread (by a hardware decoder where one works here, see `decoder`); each rendition scales and encodes
//! on a thread of its own, fed the same reference-counted frames through a bounded channel, and copies the
//! audio packets. A hardware decoder that fails on a segment costs a second pass in software, not the job.
//!
//! Encoders pick their own thread counts, as the ffmpeg CLI lets them: renditions advance in lockstep
//! (the queues are bounded), so the largest one sets the pace, and only the encoder's own frame threads
//! let it use the cores the smaller renditions leave idle. (Fixed shares of the cores, one thread for each
//! encoder on two cores, were measured: a little less CPU time, more wall time, as the largest rendition
//! then encodes on one thread.) Each rendition scales into the same picture every frame when its encoder
//! copies its input.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Instant;

use dualrig_proto::profile::{Profile, validate_ladder};
use ffmpeg_next::{self as ffmpeg, Packet, Rational, codec, encoder, frame, software::scaling};

use crate::decode::{VideoSource, video_timing};
use crate::decoder::DecoderSelection;
use crate::encoder::{EncoderSelection, open_video_encoder};
use crate::error::MediaError;
use crate::frame_rate::FrameRateConverter;
use crate::ladder::{RenditionSettings, rendition_settings};
use crate::mux;

/// Frames queued per rendition: enough to keep every encoder busy, little enough to bound memory.
const QUEUE_DEPTH: usize = 8;

/// One finished rendition.
#[derive(Debug, Clone)]
pub struct RenditionOutput {
    pub profile: Profile,
    pub path: PathBuf,
    /// Video frames written.
    pub frames: u64,
    /// Source frames decoded (the same for every rendition of a transcode): what the job's units count.
    pub source_frames: u64,
    /// The decoder that read the source, by FFmpeg's name: `h264` (software), `h264_cuvid` …
    pub decoder: String,
}

/// The file a rendition is written to, `<profile name>.ts`. Names that could leave the output folder or
/// confuse a shell are refused.
pub fn rendition_file_name(profile: &Profile) -> Result<String, MediaError> {
    let name = &profile.name;
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(format!("{name}.ts"))
    } else {
        Err(MediaError::ProfileName { name: name.clone() })
    }
}

/// Transcodes `input` into one MPEG-TS file per profile in `out_dir` with the selected encoder, keeping the
/// source's timestamps and copying its main audio stream (audio stamped before zero, such as an MP4's
/// AAC priming, is left out). Every rendition has the source's frame count when its profile keeps the
/// frame rate, and starts with an IDR frame. On error no rendition files are left.
pub fn transcode_segment(
    input: &Path,
    profiles: &[Profile],
    encoder: &EncoderSelection,
    out_dir: &Path,
) -> Result<Vec<RenditionOutput>, MediaError> {
    transcode_edited(input, profiles, encoder, out_dir, &mut |_, frame| {
        Some(frame)
    })
}

/// [`transcode_segment`] with every decoded source frame (numbered from 0 in presentation order) passed
/// through `edit` first, which may replace it or, by returning `None`, drop it.
pub(crate) fn transcode_edited(
    input: &Path,
    profiles: &[Profile],
    encoder: &EncoderSelection,
    out_dir: &Path,
    edit: &mut dyn FnMut(u64, frame::Video) -> Option<frame::Video>,
) -> Result<Vec<RenditionOutput>, MediaError> {
    validate_ladder(profiles)?;
    let paths = profiles
        .iter()
        .map(|p| rendition_file_name(p).map(|f| out_dir.join(f)))
        .collect::<Result<Vec<_>, _>>()?;
    std::fs::create_dir_all(out_dir).map_err(|e| MediaError::Write {
        path: out_dir.to_owned(),
        detail: e.to_string(),
    })?;
    let attempt =
        |decoders: &DecoderSelection,
         edit: &mut dyn FnMut(u64, frame::Video) -> Option<frame::Video>| {
            transcode_once(input, profiles, &paths, encoder, decoders, edit)
        };
    match attempt(&encoder.decoders, edit) {
        // A hardware decoder can fail on a stream its probe did not resemble (a profile or size NVDEC
        // does not take, a driver fault): the segment is decoded again in software, from the start.
        Err(Failed {
            error,
            hardware_decoder: Some(decoder),
        }) => {
            tracing::warn!(
                input = %input.display(),
                %decoder,
                %error,
                "transcoding with the hardware decoder failed; decoding the segment again in software"
            );
            attempt(&DecoderSelection::software(), edit).map_err(|f| f.error)
        }
        outcome => outcome.map_err(|f| f.error),
    }
}

/// Why one attempt at a transcode failed, and whether a hardware decoder was reading the source.
struct Failed {
    error: MediaError,
    hardware_decoder: Option<String>,
}

impl From<MediaError> for Failed {
    fn from(error: MediaError) -> Self {
        Failed {
            error,
            hardware_decoder: None,
        }
    }
}

/// One attempt at [`transcode_edited`], the source read with the decoder `decoders` names for it.
fn transcode_once(
    input: &Path,
    profiles: &[Profile],
    paths: &[PathBuf],
    encoder: &EncoderSelection,
    decoders: &DecoderSelection,
    edit: &mut dyn FnMut(u64, frame::Video) -> Option<frame::Video>,
) -> Result<Vec<RenditionOutput>, Failed> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    let mut source = VideoSource::open_with(input, cores.min(4), decoders)?;
    let decoder_name = source.decoder_name.clone();
    let hardware_decoder = source.hardware_decoder.then(|| decoder_name.clone());
    let timing = source
        .input
        .stream(source.video_index)
        .map(|s| video_timing(&s))
        .ok_or_else(|| MediaError::Internal("the video stream vanished".to_owned()))?;
    let audio = source.audio_index.and_then(|i| {
        let stream = source.input.stream(i)?;
        Some((stream.parameters().clone(), stream.time_base()))
    });
    let jobs: Vec<RenditionJob> = profiles
        .iter()
        .zip(paths)
        .map(|(profile, path)| RenditionJob {
            settings: rendition_settings(&encoder.name, profile, &timing),
            profile: profile.clone(),
            path: path.clone(),
            encoder: encoder.name.clone(),
            decoder: decoder_name.clone(),
            time_base: source.video_time_base,
            source_frame_rate: source.frame_rate,
            frame_duration: source.frame_duration_ts(),
            audio: audio.clone(),
        })
        .collect();
    drop(audio);

    let outcome = std::thread::scope(|scope| {
        let mut senders: Vec<SyncSender<Feed>> = Vec::new();
        let mut handles = Vec::new();
        for job in jobs {
            let (tx, rx) = sync_channel(QUEUE_DEPTH);
            let name = job.profile.name.clone();
            let handle = std::thread::Builder::new()
                .name(format!("rendition-{name}"))
                .spawn_scoped(scope, move || run_rendition(job, rx))
                .map_err(|e| MediaError::Internal(format!("cannot start a thread: {e}")));
            match handle {
                Ok(h) => {
                    senders.push(tx);
                    handles.push((name, h));
                }
                Err(e) => return (Err(e), Vec::new(), 0),
            }
        }
        let gone = || MediaError::RenditionGone;
        let mut index = 0u64;
        let decoded = source.decode(
            |frame| {
                index += 1;
                let Some(frame) = edit(index - 1, frame) else {
                    return Ok(());
                };
                let frame = Arc::new(frame);
                for tx in &senders {
                    tx.send(Feed::Video(Arc::clone(&frame)))
                        .map_err(|_| gone())?;
                }
                Ok(())
            },
            |packet| {
                // MPEG-TS cannot carry timestamps below zero; given one, the muxer would shift every
                // stream, video included, off the source's clock. Audio from before zero (an MP4's AAC
                // priming) is dropped instead.
                if packet.pts().or(packet.dts()).is_some_and(|t| t < 0)
                    || packet.dts().is_some_and(|t| t < 0)
                {
                    return Ok(());
                }
                for tx in &senders {
                    tx.send(Feed::Audio(packet.clone())).map_err(|_| gone())?;
                }
                Ok(())
            },
        );
        if decoded.is_ok() {
            for tx in &senders {
                let _ = tx.send(Feed::End);
            }
        }
        drop(senders);
        let results = handles
            .into_iter()
            .map(|(name, h)| {
                h.join().unwrap_or_else(|_| {
                    Err(MediaError::Internal(format!(
                        "the thread encoding rendition {name} panicked"
                    )))
                })
            })
            .collect::<Vec<_>>();
        (decoded.map(|_| ()), results, index)
    });

    let (decoded, results, source_frames) = outcome;
    let first_real_failure = results
        .iter()
        .position(|r| matches!(r, Err(e) if !matches!(e, MediaError::DecodingAbandoned)));
    let failure = match (decoded, first_real_failure) {
        (_, Some(i)) => results.into_iter().nth(i).and_then(Result::err),
        (Err(e), None) => Some(e),
        (Ok(()), None) => match results.into_iter().collect::<Result<Vec<_>, _>>() {
            Ok(mut outputs) => {
                for output in &mut outputs {
                    output.source_frames = source_frames;
                }
                tracing::debug!(
                    input = %input.display(),
                    renditions = outputs.len(),
                    encoder = %encoder.name,
                    decoder = %decoder_name,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "segment transcoded"
                );
                return Ok(outputs);
            }
            Err(e) => Some(e),
        },
    };
    for path in paths {
        let _ = std::fs::remove_file(path);
    }
    Err(Failed {
        error: failure.unwrap_or_else(|| {
            MediaError::Internal("a rendition failed without a reason".to_owned())
        }),
        hardware_decoder,
    })
}

/// Whether `encoder` is known to copy a picture in system memory before `send_frame` returns: x264
/// copies it into its own frames. Others (h264_qsv, for one) may keep a reference to it instead.
fn copies_input(encoder: &str) -> bool {
    encoder == "libx264"
}

enum Feed {
    Video(Arc<frame::Video>),
    Audio(Packet),
    End,
}

struct RenditionJob {
    profile: Profile,
    path: PathBuf,
    encoder: String,
    decoder: String,
    settings: RenditionSettings,
    time_base: Rational,
    source_frame_rate: f64,
    frame_duration: i64,
    audio: Option<(codec::Parameters, Rational)>,
}

/// The per-rendition half: scale, encode, mux.
struct RenditionWriter {
    job: RenditionJob,
    out: ffmpeg::format::context::Output,
    encoder: encoder::video::Encoder,
    surfaces: Option<crate::vaapi::SurfacePool>,
    /// The last scaled picture, once the encoder no longer needs it.
    spare: Option<frame::Video>,
    scaler: Option<scaling::Context>,
    encoder_time_base: Rational,
    video_time_base_out: Rational,
    audio_out: Option<(usize, Rational, Rational)>,
    written: u64,
}

fn run_rendition(job: RenditionJob, feed: Receiver<Feed>) -> Result<RenditionOutput, MediaError> {
    let mut writer = RenditionWriter::open(job)?;
    let mut converter = (writer.job.profile.fps != 0
        && (f64::from(writer.job.profile.fps) - writer.job.source_frame_rate).abs() > 0.01)
        .then(|| FrameRateConverter::new(writer.job.profile.fps, writer.job.time_base));
    let mut last_pts = None;
    loop {
        match feed.recv() {
            Ok(Feed::Video(frame)) => {
                let pts = frame.pts().unwrap_or(0);
                last_pts = Some(last_pts.map_or(pts, |l: i64| l.max(pts)));
                match converter.as_mut() {
                    Some(c) => {
                        for (f, pts) in c.push(frame, pts) {
                            writer.encode(&f, pts)?;
                        }
                    }
                    None => writer.encode(&frame, pts)?,
                }
            }
            Ok(Feed::Audio(packet)) => writer.write_audio(packet)?,
            Ok(Feed::End) => break,
            Err(_) => return Err(MediaError::DecodingAbandoned),
        }
    }
    if let (Some(c), Some(last)) = (converter.as_mut(), last_pts) {
        for (f, pts) in c.finish(last + writer.job.frame_duration) {
            writer.encode(&f, pts)?;
        }
    }
    writer.finish()
}

impl RenditionWriter {
    fn open(job: RenditionJob) -> Result<Self, MediaError> {
        let (width, height) = (job.profile.width, job.profile.height);
        let mut out = mux::create(&job.path)?;
        let opened = open_video_encoder(&job.encoder, width, height, job.time_base, &job.settings)
            .map_err(|reason| MediaError::EncoderUnavailable {
                name: job.encoder.clone(),
                reason,
            })?;
        let mut stream = out
            .add_stream(encoder::find_by_name(&job.encoder))
            .map_err(|e| mux::write_error(&job.path, &[], e))?;
        stream.set_parameters(&opened.encoder);
        stream.set_time_base(job.time_base);
        let audio_index = match &job.audio {
            Some((parameters, _)) => Some(mux::add_copy_stream(
                &mut out,
                parameters.clone(),
                &job.path,
            )?),
            None => None,
        };
        mux::write_header(&mut out, &job.path)?;
        let stream_tb = |out: &ffmpeg::format::context::Output, i: usize| {
            out.stream(i)
                .map_or(Rational::new(1, 90_000), |s| s.time_base())
        };
        let video_time_base_out = stream_tb(&out, 0);
        let audio_out = match (audio_index, &job.audio) {
            (Some(i), Some((_, in_tb))) => Some((i, *in_tb, stream_tb(&out, i))),
            _ => None,
        };
        let encoder_time_base = opened.encoder.time_base();
        Ok(RenditionWriter {
            job,
            out,
            encoder: opened.encoder,
            surfaces: opened.surfaces,
            spare: None,
            scaler: None,
            encoder_time_base,
            video_time_base_out,
            audio_out,
            written: 0,
        })
    }

    fn fail(&self, what: &str, e: impl std::fmt::Display) -> MediaError {
        MediaError::Encode {
            rendition: self.job.profile.name.clone(),
            detail: format!("{what}: {e}"),
        }
    }

    /// Scales `source` to the rendition's size and format, stamps it `pts` and encodes it.
    fn encode(&mut self, source: &frame::Video, pts: i64) -> Result<(), MediaError> {
        let (width, height) = (self.job.profile.width, self.job.profile.height);
        let format = self.job.settings.pixel_format;
        let stale = self.scaler.as_ref().is_none_or(|s| {
            let input = s.input();
            input.format != source.format()
                || input.width != source.width()
                || input.height != source.height()
        });
        if stale {
            // Made on first use, and again if the source changes size or format mid-segment.
            let scaler = scaling::Context::get(
                source.format(),
                source.width(),
                source.height(),
                format,
                width,
                height,
                scaling::Flags::BICUBIC,
            )
            .map_err(|e| self.fail("cannot set up scaling", e))?;
            self.scaler = Some(scaler);
        }
        let mut scaled = self
            .spare
            .take()
            .unwrap_or_else(|| frame::Video::new(format, width, height));
        if let Some(scaler) = self.scaler.as_mut() {
            scaler
                .run(source, &mut scaled)
                .map_err(|e| MediaError::Encode {
                    rendition: self.job.profile.name.clone(),
                    detail: format!("scaling failed: {e}"),
                })?;
        }
        scaled.set_pts(Some(pts));
        let sent = match &self.surfaces {
            Some(pool) => {
                let surface = pool
                    .upload(&scaled)
                    .map_err(|e| self.fail("uploading to a VAAPI surface failed", e))?;
                self.encoder.send_frame(&surface)
            }
            None => self.encoder.send_frame(&scaled),
        };
        sent.map_err(|e| self.fail("the encoder refused a frame", e))?;
        self.drain()?;
        if self.surfaces.is_some() || copies_input(&self.job.encoder) {
            // Nothing holds the picture any more: the next one is scaled into the same memory rather
            // than into a fresh allocation the kernel must zero.
            self.spare = Some(scaled);
        }
        Ok(())
    }

    fn drain(&mut self) -> Result<(), MediaError> {
        let mut packet = Packet::empty();
        loop {
            match self.encoder.receive_packet(&mut packet) {
                Ok(()) => {}
                Err(ffmpeg::Error::Eof) => return Ok(()),
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    return Ok(());
                }
                Err(e) => return Err(self.fail("encoding failed", e)),
            }
            packet.set_stream(0);
            packet.rescale_ts(self.encoder_time_base, self.video_time_base_out);
            packet
                .write_interleaved(&mut self.out)
                .map_err(|e| mux::write_error(&self.job.path, &[], e))?;
            self.written += 1;
        }
    }

    fn write_audio(&mut self, mut packet: Packet) -> Result<(), MediaError> {
        let Some((index, in_tb, out_tb)) = self.audio_out else {
            return Ok(());
        };
        packet.rescale_ts(in_tb, out_tb);
        packet.set_position(-1);
        packet.set_stream(index);
        packet
            .write_interleaved(&mut self.out)
            .map_err(|e| mux::write_error(&self.job.path, &[], e))
    }

    fn finish(mut self) -> Result<RenditionOutput, MediaError> {
        self.encoder
            .send_eof()
            .map_err(|e| self.fail("flushing the encoder failed", e))?;
        self.drain()?;
        self.out
            .write_trailer()
            .map_err(|e| mux::write_error(&self.job.path, &[], e))?;
        Ok(RenditionOutput {
            profile: self.job.profile.clone(),
            path: self.job.path.clone(),
            frames: self.written,
            source_frames: 0,
            decoder: self.job.decoder.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_stay_inside_the_output_folder() {
        let mut p = Profile::standard("720p").expect("720p");
        assert_eq!(rendition_file_name(&p).expect("720p"), "720p.ts");
        for bad in ["../x", "a/b", ".hidden", "a b", ""] {
            p.name = bad.to_owned();
            assert!(rendition_file_name(&p).is_err(), "{bad}");
        }
    }
}
