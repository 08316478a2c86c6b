//! Frame-rate conversion for profiles that set an fps: frames are dropped or repeated by timestamp onto a
//! regular grid of output slots, the way FFmpeg's `fps` filter does, so a rendition of D seconds at F fps
//! has round(D × F) frames.

use ffmpeg_next::Rational;

/// Maps source frames onto output slots 1/fps apart, starting at the first frame's pts.
pub(crate) struct FrameRateConverter<F> {
    fps: i64,
    /// Time base numerator and denominator.
    tb: (i64, i64),
    origin: Option<i64>,
    next_slot: i64,
    held: Option<F>,
}

impl<F: Clone> FrameRateConverter<F> {
    pub(crate) fn new(fps: u32, time_base: Rational) -> Self {
        FrameRateConverter {
            fps: i64::from(fps.max(1)),
            tb: (
                i64::from(time_base.numerator()).max(1),
                i64::from(time_base.denominator()).max(1),
            ),
            origin: None,
            next_slot: 0,
            held: None,
        }
    }

    /// The slot a timestamp falls into, rounded to the nearest.
    fn slot(&self, pts: i64) -> i64 {
        let origin = self.origin.unwrap_or(pts);
        let scaled = i128::from(pts - origin) * i128::from(self.tb.0) * i128::from(self.fps);
        let den = i128::from(self.tb.1);
        // Round half away from zero.
        let slot = if scaled >= 0 {
            (2 * scaled + den) / (2 * den)
        } else {
            -((-2 * scaled + den) / (2 * den))
        };
        slot as i64
    }

    /// The output timestamp of a slot, in the input time base.
    fn pts_of(&self, slot: i64) -> i64 {
        let origin = self.origin.unwrap_or(0);
        let num = i128::from(slot) * i128::from(self.tb.1);
        let den = i128::from(self.fps) * i128::from(self.tb.0);
        origin + ((2 * num + den) / (2 * den)) as i64
    }

    /// Takes the next source frame (in presentation order); returns the frames to encode now, each with
    /// its output pts. A frame is shown from its own slot until the next frame's slot.
    pub(crate) fn push(&mut self, frame: F, pts: i64) -> Vec<(F, i64)> {
        if self.origin.is_none() {
            self.origin = Some(pts);
        }
        let slot = self.slot(pts);
        let out = match self.held.take() {
            Some(held) => self.fill(held, slot),
            None => Vec::new(),
        };
        self.held = Some(frame);
        out
    }

    /// Ends the stream at `end_pts` (last frame's pts + its duration): the held frame fills the slots left,
    /// and a stream shorter than one slot still yields one frame.
    pub(crate) fn finish(&mut self, end_pts: i64) -> Vec<(F, i64)> {
        let Some(held) = self.held.take() else {
            return Vec::new();
        };
        let end_slot = self.slot(end_pts).max(1);
        self.fill(held, end_slot)
    }

    fn fill(&mut self, frame: F, until_slot: i64) -> Vec<(F, i64)> {
        let mut out = Vec::new();
        while self.next_slot < until_slot {
            out.push((frame.clone(), self.pts_of(self.next_slot)));
            self.next_slot += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `count` frames of a `source_fps` stream starting at `start` (90 kHz) through a converter.
    fn convert(source_fps: i64, count: i64, target: u32, start: i64) -> Vec<(i64, i64)> {
        let mut c = FrameRateConverter::new(target, Rational::new(1, 90_000));
        let step = 90_000 / source_fps;
        let mut out = Vec::new();
        for i in 0..count {
            out.extend(c.push(i, start + i * step));
        }
        out.extend(c.finish(start + count * step));
        out
    }

    #[test]
    fn halving_keeps_every_other_frame_on_a_regular_grid() {
        let out = convert(60, 120, 30, 126_000);
        assert_eq!(out.len(), 60);
        for (k, (_, pts)) in out.iter().enumerate() {
            assert_eq!(*pts, 126_000 + 3000 * k as i64);
        }
    }

    #[test]
    fn raising_the_rate_repeats_frames_and_counts_round_duration_times_fps() {
        // 2 s at 24 fps to 30 fps: 60 frames, some shown twice.
        let out = convert(24, 48, 30, 0);
        assert_eq!(out.len(), 60);
        let sources: Vec<i64> = out.iter().map(|(f, _)| *f).collect();
        assert!(sources.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(sources.first(), Some(&0));
        assert_eq!(sources.last(), Some(&47));
    }

    #[test]
    fn same_rate_is_one_to_one() {
        let out = convert(30, 45, 30, 900);
        assert_eq!(out.len(), 45);
        assert!(out.iter().enumerate().all(|(i, (f, _))| *f == i as i64));
    }

    #[test]
    fn one_frame_gives_one_frame() {
        let out = convert(30, 1, 5, 0);
        assert_eq!(out.len(), 1);
    }
}
