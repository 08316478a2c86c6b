//! The resume record of a ladder: `DIR/.dualrig-transcode.json` names the input (its size and BLAKE3)
//! and the settings, and lists every segment whose renditions are written and verified, with each
//! file's BLAKE3, so that running the same command again keeps what is done and sends the rest.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use dualrig_proto::profile::Profile;
use serde::{Deserialize, Serialize};

use crate::ClientError;

/// The record's file name inside the output directory.
pub const RECORD_FILE: &str = ".dualrig-transcode.json";
/// Bumped when the record's meaning changes; a record of another version is not trusted.
const RECORD_VERSION: u32 = 1;

/// The input file, by content: the same bytes under another name resume; other bytes under the same
/// name do not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputId {
    pub size: u64,
    pub blake3: String,
}

impl InputId {
    /// Hashes the whole file (mapped and on every core, as b3sum does).
    pub fn of(path: &Path) -> Result<Self, ClientError> {
        let mut hasher = blake3::Hasher::new();
        hasher
            .update_mmap_rayon(path)
            .map_err(ClientError::io(format!("cannot read {}", path.display())))?;
        Ok(Self {
            size: hasher.count(),
            blake3: hasher.finalize().to_hex().to_string(),
        })
    }
}

/// What shapes the output besides the input: a different value makes different segments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub segment_secs: f64,
    pub profiles: Vec<ProfileSetting>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileSetting {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate: u64,
    pub codec: String,
}

impl Settings {
    pub fn new(profiles: &[Profile], segment_secs: f64) -> Self {
        Self {
            segment_secs,
            profiles: profiles
                .iter()
                .map(|p| ProfileSetting {
                    name: p.name.clone(),
                    width: p.width,
                    height: p.height,
                    fps: p.fps,
                    bitrate: p.bitrate,
                    codec: p.codec.ffmpeg_name().to_owned(),
                })
                .collect(),
        }
    }

    fn describe(&self) -> String {
        let names: Vec<&str> = self.profiles.iter().map(|p| p.name.as_str()).collect();
        format!(
            "profiles {} at --segment-secs {}",
            names.join(","),
            self.segment_secs
        )
    }
}

/// One segment whose renditions are all on disk and verified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinishedSegment {
    pub index: usize,
    pub duration_secs: f64,
    pub renditions: Vec<RenditionFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenditionFile {
    pub profile: String,
    pub bytes: u64,
    pub blake3: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResumeRecord {
    pub version: u32,
    pub input: InputId,
    pub settings: Settings,
    pub segments: Vec<FinishedSegment>,
}

/// Why a record cannot be resumed from.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error(
        "{dir} holds the output of another input ({recorded} bytes, BLAKE3 {recorded_hash}); pick another --out DIR, or pass --fresh to start over there"
    )]
    OtherInput {
        dir: PathBuf,
        recorded: u64,
        recorded_hash: String,
    },
    #[error(
        "{dir} holds output made with other settings ({recorded}, not {asked}); pick another --out DIR, or pass --fresh to start over there"
    )]
    OtherSettings {
        dir: PathBuf,
        recorded: String,
        asked: String,
    },
    #[error(
        "{path} is not a resume record this version of dualrig reads ({reason}); pick another --out DIR, or pass --fresh to start over there"
    )]
    Unreadable { path: PathBuf, reason: String },
}

impl ResumeRecord {
    pub fn new(input: InputId, settings: Settings) -> Self {
        Self {
            version: RECORD_VERSION,
            input,
            settings,
            segments: Vec::new(),
        }
    }

    pub fn path(dir: &Path) -> PathBuf {
        dir.join(RECORD_FILE)
    }

    /// The record in `dir`, if there is one.
    pub fn load(dir: &Path) -> Result<Option<Self>, ClientError> {
        let path = Self::path(dir);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(ClientError::io(format!("cannot read {}", path.display()))(
                    e,
                ));
            }
        };
        let record: Self = serde_json::from_slice(&text).map_err(|e| ResumeError::Unreadable {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if record.version != RECORD_VERSION {
            return Err(ResumeError::Unreadable {
                path,
                reason: format!(
                    "version {}, this one reads {RECORD_VERSION}",
                    record.version
                ),
            }
            .into());
        }
        Ok(Some(record))
    }

    /// Refuses a record made from another input or with other settings: their segments must never be
    /// mixed with this run's.
    pub fn check_same(
        &self,
        dir: &Path,
        input: &InputId,
        settings: &Settings,
    ) -> Result<(), ResumeError> {
        if self.input != *input {
            return Err(ResumeError::OtherInput {
                dir: dir.to_owned(),
                recorded: self.input.size,
                recorded_hash: self.input.blake3.clone(),
            });
        }
        if self.settings != *settings {
            return Err(ResumeError::OtherSettings {
                dir: dir.to_owned(),
                recorded: self.settings.describe(),
                asked: settings.describe(),
            });
        }
        Ok(())
    }

    /// Keeps only the recorded segments that still stand: the cut still has a segment of that index
    /// and duration, and every rendition file in `dir` has the recorded length and BLAKE3. Returns how
    /// many recorded segments were dropped.
    pub fn keep_intact(&mut self, dir: &Path, cut: &[dualrig_media::Segment]) -> usize {
        let before = self.segments.len();
        let profiles: Vec<String> = self
            .settings
            .profiles
            .iter()
            .map(|p| p.name.clone())
            .collect();
        self.segments.retain(|s| {
            let same_cut = cut
                .get(s.index)
                .is_some_and(|c| c.index == s.index && c.duration_secs == s.duration_secs);
            let every_rendition = profiles
                .iter()
                .all(|p| s.renditions.iter().any(|r| r.profile == *p));
            same_cut
                && every_rendition
                && s.renditions.iter().all(|r| {
                    let path = dir.join(&r.profile).join(segment_name(s.index));
                    file_matches(&path, r)
                })
        });
        self.segments.sort_by_key(|s| s.index);
        self.segments.dedup_by_key(|s| s.index);
        before - self.segments.len()
    }

    pub fn has(&self, index: usize) -> bool {
        self.segments.iter().any(|s| s.index == index)
    }

    /// Writes the record into `dir` so that a crash leaves the old record or the new one, whole.
    pub fn save(&self, dir: &Path) -> Result<(), ClientError> {
        let path = Self::path(dir);
        let text = serde_json::to_vec_pretty(self).map_err(|e| ClientError::Io {
            what: format!("cannot write {}", path.display()),
            source: std::io::Error::other(e),
        })?;
        write_durably(&path, &text)
            .map_err(ClientError::io(format!("cannot write {}", path.display())))
    }
}

fn file_matches(path: &Path, recorded: &RenditionFile) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    if meta.len() != recorded.bytes {
        return false;
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update_mmap(path).is_ok() && hasher.finalize().to_hex().as_str() == recorded.blake3
}

/// The file name of segment `index` in every rendition's directory.
pub fn segment_name(index: usize) -> String {
    format!("seg_{index:05}.ts")
}

/// Writes `bytes` to `path` through a temporary file beside it, synced before the rename and the
/// directory synced after, so the name only ever holds a whole file and survives a power cut.
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(dir: &Path) -> ResumeRecord {
        let profiles = Profile::parse_list("240p").expect("profiles");
        let mut record = ResumeRecord::new(
            InputId {
                size: 5,
                blake3: blake3::hash(b"hello").to_hex().to_string(),
            },
            Settings::new(&profiles, 2.0),
        );
        std::fs::create_dir_all(dir.join("240p")).expect("dir");
        let data = b"rendition bytes";
        std::fs::write(dir.join("240p").join(segment_name(0)), data).expect("write");
        record.segments.push(FinishedSegment {
            index: 0,
            duration_secs: 2.0,
            renditions: vec![RenditionFile {
                profile: "240p".into(),
                bytes: data.len() as u64,
                blake3: blake3::hash(data).to_hex().to_string(),
            }],
        });
        record
    }

    fn cut(durations: &[f64]) -> Vec<dualrig_media::Segment> {
        durations
            .iter()
            .enumerate()
            .map(|(index, d)| dualrig_media::Segment {
                index,
                path: PathBuf::new(),
                start_secs: 0.0,
                duration_secs: *d,
                bytes: 0,
            })
            .collect()
    }

    #[test]
    fn a_saved_record_reads_back_and_keeps_intact_segments() {
        let dir = tempfile::tempdir().expect("tempdir");
        record(dir.path()).save(dir.path()).expect("save");
        let mut back = ResumeRecord::load(dir.path())
            .expect("load")
            .expect("a record");
        assert_eq!(back.keep_intact(dir.path(), &cut(&[2.0, 1.0])), 0);
        assert!(back.has(0));
    }

    #[test]
    fn durations_read_back_bit_for_bit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut record = record(dir.path());
        // Durations as the cutter computes them: sums and quotients of time bases, rarely short.
        let durations: Vec<f64> = (1..200).map(|i| f64::from(i) * 1.001 / 3.0 + 0.1).collect();
        record.settings.segment_secs = 0.1 + 0.2;
        record.segments[0].duration_secs = durations[0];
        record.save(dir.path()).expect("save");
        let mut back = ResumeRecord::load(dir.path())
            .expect("load")
            .expect("a record");
        assert_eq!(back.settings, record.settings);
        assert_eq!(back.keep_intact(dir.path(), &cut(&durations)), 0);
        for d in durations {
            let text = serde_json::to_string(&d).expect("to json");
            assert_eq!(serde_json::from_str::<f64>(&text).expect("from json"), d);
        }
    }

    #[test]
    fn a_changed_file_or_another_cut_drops_the_segment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut changed = record(dir.path());
        std::fs::write(
            dir.path().join("240p").join(segment_name(0)),
            b"rendition bytez",
        )
        .expect("write");
        assert_eq!(changed.keep_intact(dir.path(), &cut(&[2.0])), 1);
        assert!(!changed.has(0));

        let mut recut = record(dir.path());
        assert_eq!(recut.keep_intact(dir.path(), &cut(&[1.5])), 1);
    }

    #[test]
    fn another_input_or_other_settings_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let record = record(dir.path());
        let other = InputId {
            size: 5,
            blake3: blake3::hash(b"world").to_hex().to_string(),
        };
        let err = record
            .check_same(dir.path(), &other, &record.settings)
            .expect_err("another input");
        assert!(err.to_string().contains("--fresh"), "{err}");
        let profiles = Profile::parse_list("360p").expect("profiles");
        let err = record
            .check_same(dir.path(), &record.input, &Settings::new(&profiles, 2.0))
            .expect_err("other settings");
        assert!(err.to_string().contains("360p"), "{err}");
    }

    #[test]
    fn a_damaged_record_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(RECORD_FILE), b"{ not json").expect("write");
        let err = ResumeRecord::load(dir.path()).expect_err("damaged");
        assert!(err.to_string().contains(RECORD_FILE), "{err}");
    }
}
