//! The rendition ladder (PROTOCOL §5): named profiles, their validation, and their wire form.

use std::fmt;

use crate::v1;

/// Largest rendition any worker is asked for.
pub const MAX_WIDTH: u32 = 4096;
pub const MAX_HEIGHT: u32 = 2304;
/// Highest output frame rate a profile may ask for.
pub const MAX_FPS: u32 = 240;
/// Bitrates outside this range are mistakes, not requests.
pub const MIN_BITRATE: u64 = 16_000;
pub const MAX_BITRATE: u64 = 200_000_000;

/// Fewest bits per pixel of each output frame a rendition may ask for, by the rendition's size:
/// `(least pixels per frame, floor)`, largest first. Below these an honest encoder cannot keep fast
/// motion above the content check's threshold (PROTOCOL §5.1): measured with libx264 on a fast pan and a
/// mandelbrot zoom (benches/RESULTS.md "Bitrate floor"), each the lowest rate that kept the reference
/// margin above the threshold at that size, times 1.5. Smaller frames need more bits per pixel.
pub const BITS_PER_PIXEL_FLOOR: [(u64, f64); 4] = [
    (600_000, 0.011),
    (150_000, 0.015),
    (40_000, 0.03),
    (0, 0.075),
];

/// The bits-per-pixel floor for a `width` × `height` rendition ([`BITS_PER_PIXEL_FLOOR`]).
pub fn bits_per_pixel_floor(width: u32, height: u32) -> f64 {
    let pixels = u64::from(width) * u64::from(height);
    BITS_PER_PIXEL_FLOOR
        .iter()
        .find(|(least, _)| pixels >= *least)
        .map_or(
            BITS_PER_PIXEL_FLOOR[BITS_PER_PIXEL_FLOOR.len() - 1].1,
            |(_, floor)| *floor,
        )
}

/// The default ladder a client gets when it names none.
pub const DEFAULT_LADDER: &[&str] = &["720p", "480p", "360p", "240p"];

/// Output codec of a rendition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    H264,
}

impl Codec {
    /// The FFmpeg codec name a decoder reports for this codec.
    pub fn ffmpeg_name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
        }
    }
}

/// One validated rung of an adaptive-bitrate ladder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Profile {
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// 0 keeps the source's frame rate.
    pub fps: u32,
    /// Target video bitrate, bits per second.
    pub bitrate: u64,
    pub codec: Codec,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProfileError {
    #[error(
        "unknown profile '{name}'; known profiles are {known}, or give width, height and bitrate"
    )]
    Unknown { name: String, known: String },
    #[error("profile '{name}' has an empty name")]
    EmptyName { name: String },
    #[error("profile '{name}': width and height must be non-zero (got {width}x{height})")]
    ZeroSize {
        name: String,
        width: u32,
        height: u32,
    },
    #[error(
        "profile '{name}': width and height must be even for 4:2:0 video (got {width}x{height})"
    )]
    OddSize {
        name: String,
        width: u32,
        height: u32,
    },
    #[error("profile '{name}': {width}x{height} is above the {MAX_WIDTH}x{MAX_HEIGHT} limit")]
    TooLarge {
        name: String,
        width: u32,
        height: u32,
    },
    #[error(
        "profile '{name}': bitrate {bitrate} b/s is outside {MIN_BITRATE}..={MAX_BITRATE} b/s (zero is not a bitrate)"
    )]
    Bitrate { name: String, bitrate: u64 },
    #[error("profile '{name}': fps {fps} is above {MAX_FPS}")]
    Fps { name: String, fps: u32 },
    #[error("profile '{name}': codec is unspecified or unsupported; only H.264 is offered")]
    Codec { name: String },
    #[error("profile '{name}' is listed twice")]
    Duplicate { name: String },
    #[error("no profiles given; ask for at least one (e.g. {})", DEFAULT_LADDER.join(","))]
    Empty,
    #[error("{count} profiles asked for; at most {max} per job")]
    TooMany { count: usize, max: usize },
    #[error(
        "profile '{name}': {bitrate} b/s at {width}x{height} and {fps:.2} fps is {bits_per_pixel:.4} bits per pixel, under the {floor} floor at this size, where no encoder can pass the content check on fast motion; ask for at least {needed} b/s"
    )]
    UnderFloor {
        name: String,
        width: u32,
        height: u32,
        bitrate: u64,
        fps: f64,
        bits_per_pixel: f64,
        floor: f64,
        needed: u64,
    },
}

/// Most renditions one job may ask for.
pub const MAX_PROFILES_PER_JOB: usize = 8;

const STANDARD: &[(&str, u32, u32, u64)] = &[
    ("1080p", 1920, 1080, 5_000_000),
    ("720p", 1280, 720, 2_800_000),
    ("480p", 854, 480, 1_400_000),
    ("360p", 640, 360, 800_000),
    ("240p", 426, 240, 400_000),
];

impl Profile {
    /// A profile from the standard ladder.
    pub fn standard(name: &str) -> Result<Self, ProfileError> {
        STANDARD
            .iter()
            .find(|(n, ..)| *n == name)
            .map(|&(n, w, h, b)| Profile {
                name: n.to_owned(),
                // 854 is the customary 480p width but odd heights/widths break 4:2:0; keep it even.
                width: w & !1,
                height: h,
                fps: 0,
                bitrate: b,
                codec: Codec::H264,
            })
            .ok_or_else(|| ProfileError::Unknown {
                name: name.to_owned(),
                known: STANDARD
                    .iter()
                    .map(|(n, ..)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Parses a comma-separated list of standard names ("720p,480p").
    pub fn parse_list(list: &str) -> Result<Vec<Self>, ProfileError> {
        let profiles = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Self::standard)
            .collect::<Result<Vec<_>, _>>()?;
        validate_ladder(&profiles)?;
        Ok(profiles)
    }

    /// Checks the limits every worker relies on.
    pub fn validate(&self) -> Result<(), ProfileError> {
        let name = self.name.clone();
        let (width, height) = (self.width, self.height);
        if self.name.trim().is_empty() {
            return Err(ProfileError::EmptyName { name });
        }
        if width == 0 || height == 0 {
            return Err(ProfileError::ZeroSize {
                name,
                width,
                height,
            });
        }
        if width % 2 == 1 || height % 2 == 1 {
            return Err(ProfileError::OddSize {
                name,
                width,
                height,
            });
        }
        if width > MAX_WIDTH || height > MAX_HEIGHT {
            return Err(ProfileError::TooLarge {
                name,
                width,
                height,
            });
        }
        if !(MIN_BITRATE..=MAX_BITRATE).contains(&self.bitrate) {
            return Err(ProfileError::Bitrate {
                name,
                bitrate: self.bitrate,
            });
        }
        if self.fps > MAX_FPS {
            return Err(ProfileError::Fps {
                name,
                fps: self.fps,
            });
        }
        Ok(())
    }

    /// Checks the bitrate against [`bits_per_pixel_floor`] for frames at the rendition's rate: its own
    /// `fps`, or `source_fps` when it keeps the source's. Needs the source, so it runs once the segment
    /// is inspected (the coordinator) or probed (the client).
    pub fn check_floor(&self, source_fps: f64) -> Result<(), ProfileError> {
        let fps = if self.fps > 0 {
            f64::from(self.fps)
        } else {
            source_fps
        };
        if !fps.is_finite() || fps <= 0.0 {
            return Ok(());
        }
        let pixels = f64::from(self.width) * f64::from(self.height);
        let bits_per_pixel = self.bitrate as f64 / (pixels * fps);
        let floor = bits_per_pixel_floor(self.width, self.height);
        if bits_per_pixel >= floor {
            return Ok(());
        }
        Err(ProfileError::UnderFloor {
            name: self.name.clone(),
            width: self.width,
            height: self.height,
            bitrate: self.bitrate,
            fps,
            bits_per_pixel,
            floor,
            needed: (floor * pixels * fps).ceil() as u64,
        })
    }

    /// Reads a profile off the wire. A profile with a name and no size is taken from the standard ladder
    /// (its bitrate may be overridden).
    pub fn from_wire(wire: &v1::Profile) -> Result<Self, ProfileError> {
        let profile = if wire.width == 0 && wire.height == 0 {
            let mut p = Self::standard(&wire.name)?;
            if wire.bitrate != 0 {
                p.bitrate = wire.bitrate;
            }
            p.fps = wire.fps;
            p
        } else {
            let codec = match v1::VideoCodec::try_from(wire.codec) {
                Ok(v1::VideoCodec::H264) | Ok(v1::VideoCodec::Unspecified) => Codec::H264,
                Err(_) => {
                    return Err(ProfileError::Codec {
                        name: wire.name.clone(),
                    });
                }
            };
            Profile {
                name: wire.name.clone(),
                width: wire.width,
                height: wire.height,
                fps: wire.fps,
                bitrate: wire.bitrate,
                codec,
            }
        };
        profile.validate()?;
        Ok(profile)
    }

    pub fn to_wire(&self) -> v1::Profile {
        v1::Profile {
            name: self.name.clone(),
            width: self.width,
            height: self.height,
            fps: self.fps,
            bitrate: self.bitrate,
            codec: match self.codec {
                Codec::H264 => v1::VideoCodec::H264 as i32,
            },
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}x{}, {} kb/s)",
            self.name,
            self.width,
            self.height,
            self.bitrate / 1000
        )
    }
}

/// Checks a whole ladder: non-empty, bounded, names unique, every profile valid.
pub fn validate_ladder(profiles: &[Profile]) -> Result<(), ProfileError> {
    if profiles.is_empty() {
        return Err(ProfileError::Empty);
    }
    if profiles.len() > MAX_PROFILES_PER_JOB {
        return Err(ProfileError::TooMany {
            count: profiles.len(),
            max: MAX_PROFILES_PER_JOB,
        });
    }
    for (i, p) in profiles.iter().enumerate() {
        p.validate()?;
        if profiles[..i].iter().any(|q| q.name == p.name) {
            return Err(ProfileError::Duplicate {
                name: p.name.clone(),
            });
        }
    }
    Ok(())
}

/// What a job owes, in units of work: output pixels, `Σ width × height × frames` over its profiles,
/// with the source's frame count (PROTOCOL §3). Client, coordinator and worker all count with this.
pub fn job_units(profiles: &[Profile], frames: u64) -> u64 {
    profiles
        .iter()
        .map(|p| u64::from(p.width) * u64::from(p.height))
        .fold(0u64, u64::saturating_add)
        .saturating_mul(frames)
}

/// Checks every profile of a ladder against the bitrate floor at `source_fps` ([`Profile::check_floor`]).
pub fn check_ladder_floor(profiles: &[Profile], source_fps: f64) -> Result<(), ProfileError> {
    profiles.iter().try_for_each(|p| p.check_floor(source_fps))
}

/// Reads and validates a ladder off the wire.
pub fn ladder_from_wire(wire: &[v1::Profile]) -> Result<Vec<Profile>, ProfileError> {
    let profiles = wire
        .iter()
        .map(Profile::from_wire)
        .collect::<Result<Vec<_>, _>>()?;
    validate_ladder(&profiles)?;
    Ok(profiles)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn custom(width: u32, height: u32, bitrate: u64) -> v1::Profile {
        v1::Profile {
            name: "custom".into(),
            width,
            height,
            fps: 0,
            bitrate,
            codec: v1::VideoCodec::H264 as i32,
        }
    }

    #[test]
    fn the_floor_refuses_starved_renditions_and_names_the_bitrate_needed() {
        let mut p720 = Profile::standard("720p").expect("720p");
        p720.bitrate = MIN_BITRATE;
        let err = p720
            .check_floor(30.0)
            .expect_err("16 kb/s at 720p30 is starved");
        let ProfileError::UnderFloor { needed, floor, .. } = err.clone() else {
            panic!("{err}");
        };
        assert_eq!(floor, 0.011);
        assert_eq!(needed, 304_128);
        assert!(err.to_string().contains("at least 304128 b/s"), "{err}");
        p720.bitrate = needed;
        p720.check_floor(30.0).expect("at the floor");
        // Its own frame rate, not the source's, sets the bits each frame gets.
        p720.fps = 60;
        assert!(p720.check_floor(24.0).is_err());
        // The default ladder clears it at 60 fps.
        let ladder = Profile::parse_list(&DEFAULT_LADDER.join(",")).expect("ladder");
        check_ladder_floor(&ladder, 60.0).expect("default ladder at 60 fps");
        // Smaller frames need more bits per pixel.
        assert!(bits_per_pixel_floor(160, 90) > bits_per_pixel_floor(640, 360));
        assert!(bits_per_pixel_floor(640, 360) > bits_per_pixel_floor(1920, 1080));
        // A source whose rate is unknown is left to the content check's reference.
        check_ladder_floor(&ladder, 0.0).expect("unknown rate");
    }

    #[test]
    fn default_ladder_parses_and_is_even() {
        let ladder = Profile::parse_list(&DEFAULT_LADDER.join(",")).expect("ladder");
        assert_eq!(ladder.len(), 4);
        for p in &ladder {
            assert_eq!(p.width % 2, 0, "{p}");
            assert_eq!(p.height % 2, 0, "{p}");
        }
    }

    #[test]
    fn bad_profiles_are_named_in_the_error() {
        let unknown = Profile::parse_list("720p,999p").expect_err("unknown");
        assert!(unknown.to_string().contains("999p"), "{unknown}");
        assert!(matches!(
            Profile::from_wire(&custom(641, 360, 800_000)),
            Err(ProfileError::OddSize { .. })
        ));
        assert!(matches!(
            Profile::from_wire(&custom(640, 0, 800_000)),
            Err(ProfileError::ZeroSize { .. })
        ));
        assert!(matches!(
            Profile::from_wire(&custom(4098, 2304, 800_000)),
            Err(ProfileError::TooLarge { .. })
        ));
        assert!(matches!(
            Profile::from_wire(&custom(640, 360, 0)),
            Err(ProfileError::Bitrate { .. })
        ));
        assert!(Profile::from_wire(&custom(4096, 2304, 8_000_000)).is_ok());
    }

    #[test]
    fn a_ladder_rejects_duplicates_and_emptiness() {
        assert!(matches!(
            Profile::parse_list("720p,720p"),
            Err(ProfileError::Duplicate { .. })
        ));
        assert!(matches!(Profile::parse_list(""), Err(ProfileError::Empty)));
    }

    #[test]
    fn wire_round_trip_keeps_a_profile() {
        let p = Profile::standard("360p").expect("360p");
        assert_eq!(Profile::from_wire(&p.to_wire()).expect("back"), p);
    }
}
