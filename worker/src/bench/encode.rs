//! `bench encode`: the worker's transcoder on a generated 1080p clip, per rendition, for the whole ladder
//! and for 1, 2, 4 … concurrent sessions, next to the ffmpeg CLI making the same ladder from the same clip
//! in the same run. The CLI's renditions must have the worker's frame counts and sizes, or the benchmark
//! fails.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dualrig_media::{
    EncoderSelection, ffmpeg_cli_ladder_args_for, inspect, select_decoders, transcode_segment,
};
use dualrig_proto::profile::{DEFAULT_LADDER, Profile};

use super::report::{
    CliRun, ClipInfo, ENCODE_SCHEMA, EncodeBenchReport, EncoderResult, LadderRun, NotMeasured,
    RenditionRate,
};
use super::stats::{median, median_index};
use super::{BenchArgs, BenchError};

const CLIP_WIDTH: u32 = 1920;
const CLIP_HEIGHT: u32 = 1080;
const CLIP_FPS: u32 = 30;

pub(crate) fn progress(text: &str) {
    let mut err = std::io::stderr().lock();
    // Progress is best effort.
    let _ = writeln!(err, "bench: {text}");
}

pub(crate) fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
    let what = what.into();
    move |source| BenchError::Io { what, source }
}

pub(crate) fn media_error(what: &str, e: dualrig_media::MediaError) -> BenchError {
    BenchError::Mismatch(format!("{what}: {e}"))
}

/// The default ladder as profiles.
pub(crate) fn default_ladder() -> Vec<Profile> {
    // The default ladder is a constant every build parses.
    Profile::parse_list(&DEFAULT_LADDER.join(",")).unwrap_or_default()
}

/// Makes the test clip with the ffmpeg CLI: testsrc2 at 1080p30 and a sine tone, as MPEG-TS.
pub(crate) fn make_clip(dir: &Path, secs: u32) -> Result<(PathBuf, ClipInfo), BenchError> {
    let path = dir.join("clip.ts");
    let video = format!("testsrc2=size={CLIP_WIDTH}x{CLIP_HEIGHT}:rate={CLIP_FPS}:duration={secs}");
    let audio = format!("sine=frequency=440:sample_rate=48000:duration={secs}");
    progress(&format!(
        "making a {secs} s 1080p30 test clip with the ffmpeg CLI"
    ));
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-y", "-loglevel", "error"])
        .args(["-f", "lavfi", "-i", &video, "-f", "lavfi", "-i", &audio])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .args([
            "-g",
            &(2 * CLIP_FPS).to_string(),
            "-c:a",
            "aac",
            "-f",
            "mpegts",
        ])
        .arg(&path)
        .output()
        .map_err(io_error(
            "cannot run the ffmpeg CLI to make the test clip; install ffmpeg",
        ))?;
    if !out.status.success() {
        return Err(BenchError::Mismatch(format!(
            "the ffmpeg CLI could not make the test clip: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let info = inspect(&path).map_err(|e| media_error("the test clip does not decode", e))?;
    let clip = ClipInfo {
        source: format!(
            "testsrc2 {CLIP_WIDTH}x{CLIP_HEIGHT} {CLIP_FPS} fps + 440 Hz sine, libx264 ultrafast, MPEG-TS"
        ),
        width: info.width,
        height: info.height,
        fps: info.frame_rate,
        frames: info.frames,
        seconds: info.frames as f64 / info.frame_rate,
    };
    Ok((path, clip))
}

/// A selection for measuring `name`, which the probe opened, with the decoders the worker would pair
/// with it.
fn selection(name: &str, hardware: bool) -> EncoderSelection {
    EncoderSelection {
        name: name.to_owned(),
        hardware,
        reason: "measured by bench".to_owned(),
        available: vec![name.to_owned()],
        decoders: select_decoders(name),
    }
}

/// CPU seconds (user + system) this process has used, and those of its children it has waited for,
/// where the system reports them (`/proc/self/stat`, in Linux's fixed 100 ticks a second).
fn cpu_seconds() -> Option<(f64, f64)> {
    parse_cpu_seconds(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

fn parse_cpu_seconds(stat: &str) -> Option<(f64, f64)> {
    const TICKS_PER_SECOND: f64 = 100.0;
    // The command name, in parentheses, may hold spaces: fields are counted after its end.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    // utime, stime, cutime, cstime are fields 14 to 17 of the line, 11 to 14 after the name.
    Some((
        (tick(11)? + tick(12)?) / TICKS_PER_SECOND,
        (tick(13)? + tick(14)?) / TICKS_PER_SECOND,
    ))
}

/// The 1, 5 and 15 minute load averages, where the system reports them (`/proc/loadavg`).
fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

/// Runs `sessions` ladder transcodes of `clip` at once, each on its own thread, into `dir`.
pub(crate) fn ladder_run(
    clip: &Path,
    info: &ClipInfo,
    ladder: &[Profile],
    encoder: &EncoderSelection,
    sessions: u32,
    dir: &Path,
) -> Result<LadderRun, BenchError> {
    let started = Instant::now();
    let outcomes: Vec<Result<Duration, BenchError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..sessions)
            .map(|i| {
                let out = dir.join(format!("session-{i}"));
                scope.spawn(move || {
                    let started = Instant::now();
                    transcode_segment(clip, ladder, encoder, &out)
                        .map_err(|e| media_error(&format!("{} transcode", encoder.name), e))?;
                    Ok(started.elapsed())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(BenchError::Mismatch("a transcode thread panicked".into()))
                })
            })
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut slowest = Duration::ZERO;
    for outcome in outcomes {
        slowest = slowest.max(outcome?);
    }
    Ok(ladder_figures(
        info,
        sessions,
        seconds,
        slowest.as_secs_f64(),
    ))
}

pub(crate) fn ladder_figures(
    info: &ClipInfo,
    sessions: u32,
    seconds: f64,
    slowest: f64,
) -> LadderRun {
    let frames = info.frames * u64::from(sessions);
    let session_fps = info.frames as f64 / slowest;
    LadderRun {
        sessions,
        frames,
        seconds,
        fps: frames as f64 / seconds,
        slowest_session_seconds: slowest,
        session_fps,
        realtime_ratio: session_fps / info.fps,
    }
}

/// Measures every encoder that opens on a fresh clip.
pub fn measure(args: &BenchArgs) -> Result<EncodeBenchReport, BenchError> {
    dualrig_media::init();
    let load_start = load_average();
    let dir = tempfile::tempdir().map_err(io_error("cannot make a scratch directory"))?;
    let (clip, info) = make_clip(dir.path(), args.clip_secs)?;
    let ladder = default_ladder();
    let mut encoders = Vec::new();
    let mut not_measured = Vec::new();
    for probe in dualrig_media::probe_encoders() {
        if !probe.opened {
            progress(&format!("{}: not measured: {}", probe.name, probe.detail));
            not_measured.push(NotMeasured {
                what: probe.name.clone(),
                reason: probe.detail.clone(),
            });
            continue;
        }
        let encoder = selection(&probe.name, probe.hardware);
        let (result, cli_missing) =
            measure_encoder(args, &clip, &info, &ladder, &encoder, dir.path())?;
        encoders.push(result);
        not_measured.extend(cli_missing);
    }
    Ok(EncodeBenchReport {
        schema: ENCODE_SCHEMA,
        clip: info,
        ladder: ladder.iter().map(|p| p.name.clone()).collect(),
        runs: args.runs,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_start,
        load_end: load_average(),
        encoders,
        not_measured,
    })
}

fn measure_encoder(
    args: &BenchArgs,
    clip: &Path,
    info: &ClipInfo,
    ladder: &[Profile],
    encoder: &EncoderSelection,
    scratch: &Path,
) -> Result<(EncoderResult, Option<NotMeasured>), BenchError> {
    let name = &encoder.name;
    let dir = scratch.join(name);
    let mut renditions = Vec::new();
    let mut decoder = String::new();
    for profile in ladder {
        progress(&format!("{name}: {} alone", profile.name));
        let mut times = Vec::new();
        let mut frames = 0;
        for _ in 0..args.runs {
            let started = Instant::now();
            let out = transcode_segment(
                clip,
                std::slice::from_ref(profile),
                encoder,
                &dir.join("alone"),
            )
            .map_err(|e| media_error(&format!("{name} {}", profile.name), e))?;
            times.push(started.elapsed());
            if let Some(r) = out.first() {
                frames = r.frames;
                decoder.clone_from(&r.decoder);
            }
        }
        let seconds = median(&times).as_secs_f64();
        let fps = frames as f64 / seconds;
        renditions.push(RenditionRate {
            profile: profile.name.clone(),
            width: profile.width,
            height: profile.height,
            frames,
            seconds,
            fps,
            realtime_ratio: fps / info.fps,
        });
    }

    // The worker and the CLI run in pairs, taking turns at going first, so drift in the machine's speed
    // (other work starting or stopping, a CPU changing clock) hits both alike; the pair with the median
    // ratio is reported.
    let cli_dir = dir.join("cli");
    std::fs::create_dir_all(&cli_dir).map_err(io_error("cannot make a scratch directory"))?;
    let cli_args = ffmpeg_cli_ladder_args_for(clip, ladder, encoder, &cli_dir);
    let mut pairs: Vec<(LadderRun, Option<Duration>)> = Vec::new();
    let mut cpu_ratios = Vec::new();
    let mut cli_missing = None;
    for run in 0..args.runs {
        let worker_first = run % 2 == 0;
        let mut cli_time = None;
        let mut cli_cpu = None;
        let mut run_cli_now = |cli_missing: &mut Option<NotMeasured>| {
            if cli_missing.is_some() {
                return;
            }
            let before = cpu_seconds();
            match run_cli("ffmpeg", &cli_args) {
                Ok(time) => {
                    cli_time = Some(time);
                    cli_cpu = before.zip(cpu_seconds()).map(|(b, a)| a.1 - b.1);
                }
                Err(reason) => {
                    progress(&format!("ffmpeg CLI ({name}): not measured: {reason}"));
                    *cli_missing = Some(NotMeasured {
                        what: format!("ffmpeg CLI ({name})"),
                        reason,
                    });
                }
            }
        };
        if !worker_first {
            run_cli_now(&mut cli_missing);
        }
        let before = cpu_seconds();
        let worker = ladder_run(clip, info, ladder, encoder, 1, &dir.join("ladder"))?;
        let worker_cpu = before.zip(cpu_seconds()).map(|(b, a)| a.0 - b.0);
        if worker_first {
            run_cli_now(&mut cli_missing);
        }
        if let (Some(w), Some(c)) = (worker_cpu, cli_cpu.filter(|c| *c > 0.0)) {
            cpu_ratios.push(w / c);
        }
        progress(&match cli_time {
            Some(cli) => format!(
                "{name}: whole ladder, pair {}/{}: worker {:.3} s, ffmpeg CLI {:.3} s, ratio {:.3}",
                run + 1,
                args.runs,
                worker.seconds,
                cli.as_secs_f64(),
                worker.seconds / cli.as_secs_f64()
            ),
            None => format!(
                "{name}: whole ladder, run {}/{}: {:.3} s",
                run + 1,
                args.runs,
                worker.seconds
            ),
        });
        pairs.push((worker, cli_time));
    }
    let timed: Vec<(LadderRun, Duration)> = pairs
        .iter()
        .filter_map(|(w, c)| c.map(|c| (w.clone(), c)))
        .collect();

    let (ladder_one, cli) = if cli_missing.is_none() && !timed.is_empty() {
        let ratios: Vec<f64> = timed
            .iter()
            .map(|(w, c)| w.seconds / c.as_secs_f64())
            .collect();
        let (worker, cli_time) = timed[median_index(&ratios)].clone();
        let seconds = cli_time.as_secs_f64();
        let rendition_frames =
            check_cli_renditions(ladder, &dir.join("ladder/session-0"), &cli_dir)?;
        let fps = info.frames as f64 / seconds;
        let cli = CliRun {
            command: format!("ffmpeg {}", cli_args.join(" ")),
            frames: info.frames,
            seconds,
            fps,
            realtime_ratio: fps / info.fps,
            worker_over_cli: worker.seconds / seconds,
            pair_ratios: ratios,
            cpu_over_cli: (!cpu_ratios.is_empty()).then(|| cpu_ratios[median_index(&cpu_ratios)]),
            pair_cpu_ratios: cpu_ratios,
            rendition_frames,
        };
        (worker, Some(cli))
    } else {
        let mut runs: Vec<LadderRun> = pairs.into_iter().map(|(w, _)| w).collect();
        runs.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
        (runs[runs.len() / 2].clone(), None)
    };

    let mut sessions = vec![ladder_one.clone()];
    let mut count = 1;
    while ladder_one.realtime_ratio >= 1.0
        && sessions.last().is_some_and(|r| r.realtime_ratio >= 1.0)
        && count * 2 <= args.sessions_max
    {
        count *= 2;
        progress(&format!("{name}: {count} sessions at once"));
        sessions.push(ladder_run(
            clip,
            info,
            ladder,
            encoder,
            count,
            &dir.join("sessions"),
        )?);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok((
        EncoderResult {
            encoder: name.clone(),
            hardware: encoder.hardware,
            decoder,
            decoder_reason: encoder.decoders.reason.clone(),
            renditions,
            ladder: ladder_one,
            sessions,
            cli,
        },
        cli_missing,
    ))
}

/// Runs the CLI once; the error is a sentence saying why it did not run.
fn run_cli(program: &str, args: &[String]) -> Result<Duration, String> {
    let started = Instant::now();
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let elapsed = started.elapsed();
    if out.status.success() {
        Ok(elapsed)
    } else {
        Err(format!(
            "{program} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The CLI's renditions must decode to the worker's frame counts and sizes.
fn check_cli_renditions(
    ladder: &[Profile],
    worker_dir: &Path,
    cli_dir: &Path,
) -> Result<Vec<u64>, BenchError> {
    let mut frames = Vec::new();
    for profile in ladder {
        let file = format!("{}.ts", profile.name);
        let ours = inspect(&worker_dir.join(&file))
            .map_err(|e| media_error(&format!("the worker's {file}"), e))?;
        let theirs = inspect(&cli_dir.join(&file))
            .map_err(|e| media_error(&format!("the ffmpeg CLI's {file}"), e))?;
        if (ours.frames, ours.width, ours.height) != (theirs.frames, theirs.width, theirs.height) {
            return Err(BenchError::Mismatch(format!(
                "{file}: the worker made {} frames of {}x{}, the ffmpeg CLI {} of {}x{}",
                ours.frames, ours.width, ours.height, theirs.frames, theirs.width, theirs.height
            )));
        }
        frames.push(theirs.frames);
    }
    Ok(frames)
}

/// The human table.
pub fn render_table(report: &EncodeBenchReport) -> String {
    let clip = &report.clip;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "encode: {} frames of {}x{} at {:.2} fps ({:.1} s), ladder {}, median of {}",
        clip.frames,
        clip.width,
        clip.height,
        clip.fps,
        clip.seconds,
        report.ladder.join(","),
        report.runs
    );
    let load = |l: Option<[f64; 3]>| {
        l.map_or_else(
            || "unknown".to_owned(),
            |[a, b, c]| format!("{a:.2} {b:.2} {c:.2}"),
        )
    };
    let _ = writeln!(
        out,
        "machine: {} cores, load average (1, 5, 15 min) {} at the start, {} at the end",
        report.cores,
        load(report.load_start),
        load(report.load_end)
    );
    for enc in &report.encoders {
        let _ = writeln!(
            out,
            "\n{}{}",
            enc.encoder,
            if enc.hardware { " (hardware)" } else { "" }
        );
        let _ = writeln!(
            out,
            "  source decoded by {}: {}",
            enc.decoder, enc.decoder_reason
        );
        let _ = writeln!(
            out,
            "  {:<22} {:>9} {:>9} {:>10}",
            "what", "seconds", "fps", "× realtime"
        );
        for r in &enc.renditions {
            let _ = writeln!(
                out,
                "  {:<22} {:>9.3} {:>9.1} {:>10.2}",
                format!("{} alone", r.profile),
                r.seconds,
                r.fps,
                r.realtime_ratio
            );
        }
        let _ = writeln!(
            out,
            "  {:<22} {:>9.3} {:>9.1} {:>10.2}",
            "whole ladder", enc.ladder.seconds, enc.ladder.fps, enc.ladder.realtime_ratio
        );
        if let Some(cli) = &enc.cli {
            let _ = writeln!(
                out,
                "  {:<22} {:>9.3} {:>9.1} {:>10.2}",
                "ffmpeg CLI ladder", cli.seconds, cli.fps, cli.realtime_ratio
            );
            let ratios: Vec<String> = cli.pair_ratios.iter().map(|r| format!("{r:.2}")).collect();
            let _ = writeln!(
                out,
                "  worker / CLI time: {:.2}, median of the pairs {} (below 1: the worker is faster)",
                cli.worker_over_cli,
                ratios.join(" ")
            );
            if let Some(cpu) = cli.cpu_over_cli {
                let ratios: Vec<String> = cli
                    .pair_cpu_ratios
                    .iter()
                    .map(|r| format!("{r:.2}"))
                    .collect();
                let _ = writeln!(
                    out,
                    "  worker / CLI CPU time: {cpu:.2}, median of the pairs {}",
                    ratios.join(" ")
                );
            }
        }
        let _ = writeln!(
            out,
            "  {:<9} {:>9} {:>12} {:>12} {:>10}",
            "sessions", "seconds", "total fps", "session fps", "× realtime"
        );
        for s in &enc.sessions {
            let _ = writeln!(
                out,
                "  {:<9} {:>9.3} {:>12.1} {:>12.1} {:>10.2}",
                s.sessions, s.seconds, s.fps, s.session_fps, s.realtime_ratio
            );
        }
    }
    if !report.not_measured.is_empty() {
        let _ = writeln!(out);
        for n in &report.not_measured {
            let _ = writeln!(out, "{}: not measured: {}", n.what, n.reason);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_times_are_read_after_a_command_name_with_spaces() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
        // cutime cstime …
        let line = "42 (a b) c) R 1 42 42 0 -1 4194304 100 0 0 0 250 50 1000 30 20 0 8 0";
        assert_eq!(parse_cpu_seconds(line), Some((3.0, 10.3)));
        assert_eq!(parse_cpu_seconds("42 (x) R 1"), None);
    }
}
