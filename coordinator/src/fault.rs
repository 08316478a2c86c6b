//! A worker's fault as data: what the live checks conclude (`verify::check_result`,
//! `storage::check_blob_answer`), what a slash records (`SlashEvidence.fault`), and what re-verification
//! recomputes and compares (`evidence::reverify`). The text a person reads is derived from a [`Fault`]
//! by its `Display`, and no program ever reads that text back.

use dualrig_media::VerifyError;
use dualrig_proto::v1;
use dualrig_proto::v1::{fault as wire_fault, storage_fault, structure_fault};

/// What was wrong with a worker's work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Fault {
    /// The result is not the worker's: `rendition` is `None` when the signature fails, otherwise the
    /// rendition whose data is not what the worker hashed and signed.
    #[error("{}", forged_text(.rendition))]
    Forged { rendition: Option<String> },
    /// The result's renditions are not exactly the ones asked.
    #[error("rendition '{rendition}' {what}")]
    Renditions {
        rendition: String,
        what: RenditionSet,
    },
    /// A rendition fails the structural check (never `VerifyError::Content`: see [`Fault::Content`]).
    #[error("{0}")]
    Structure(VerifyError),
    /// A rendition fails the content check on the frames `seed` draws.
    #[error(
        "rendition {rendition} does not show its source: frame {frame_index} (at {pts_secs:.3} s) scores {score_db:.1} dB, under the {threshold_db:.1} dB threshold, where libx264 at the same profile scores {reference_db:.1} dB (content check seed {seed})"
    )]
    Content {
        rendition: String,
        seed: u64,
        frame_index: u64,
        pts_secs: f64,
        score_db: f64,
        threshold_db: f64,
        /// The reference encoder's lowest score on the same frames (`verify::REFERENCE_MARGIN_DB`).
        reference_db: f64,
    },
    /// A challenged blob was not proven.
    #[error("{0}")]
    Storage(StorageFault),
}

fn forged_text(rendition: &Option<String>) -> String {
    match rendition {
        None => "result is not the worker's: its signature does not verify".to_owned(),
        Some(r) => format!(
            "result is not the worker's: rendition '{r}' is not the data whose hash it signed"
        ),
    }
}

/// How a result's set of renditions differs from the ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenditionSet {
    Unexpected,
    Missing,
    Duplicate,
}

impl std::fmt::Display for RenditionSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RenditionSet::Unexpected => "was not asked for",
            RenditionSet::Missing => "is missing",
            RenditionSet::Duplicate => "is listed twice",
        })
    }
}

/// Why a challenged blob counts as not proven.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageFault {
    /// No answer before the deadline.
    #[error("no answer before the deadline")]
    Late,
    #[error("no proofs for this blob in the answer")]
    Missing,
    /// The worker said it cannot prove the blob; `error` is its own words.
    #[error("the worker could not prove it: {error}")]
    Refused { error: String },
    #[error("{got} proofs for {asked} challenged chunks")]
    ProofCount { got: u32, asked: u32 },
    #[error("the proof for chunk {index} {why}")]
    Proof { index: u64, why: ProofFailure },
}

/// What is wrong with one chunk proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofFailure {
    Malformed,
    WrongIndex { found: u64 },
    Mismatch,
}

impl std::fmt::Display for ProofFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProofFailure::Malformed => f.write_str("does not decode"),
            ProofFailure::WrongIndex { found } => write!(f, "is a proof of chunk {found}"),
            ProofFailure::Mismatch => {
                f.write_str("does not hash to the blob id under its recorded length")
            }
        }
    }
}

impl Fault {
    /// The content check's failure, with the seed that drew its frames and the reference encoder's score
    /// on them; any other `VerifyError` is a structural fault.
    pub fn from_content(error: VerifyError, seed: u64, reference_db: f64) -> Self {
        match error {
            VerifyError::Content {
                rendition,
                index,
                pts_secs,
                psnr_db,
                threshold_db,
            } => Fault::Content {
                rendition,
                seed,
                frame_index: index,
                pts_secs,
                score_db: psnr_db,
                threshold_db,
                reference_db,
            },
            other => Fault::Structure(other),
        }
    }

    /// The same fault field by field, except a content fault's reference score: libx264 on another
    /// machine (another thread count) may encode the reference a little differently. A content fault
    /// exists only where its reference cleared the margin, so both did.
    pub fn same_finding(&self, other: &Fault) -> bool {
        let without_reference = |fault: &Fault| match fault {
            Fault::Content { .. } => {
                let mut fault = fault.clone();
                if let Fault::Content { reference_db, .. } = &mut fault {
                    *reference_db = 0.0;
                }
                fault
            }
            other => other.clone(),
        };
        without_reference(self) == without_reference(other)
    }

    /// Whether this is a storage fault (decided from a challenge) rather than a transcode one.
    pub fn is_storage(&self) -> bool {
        matches!(self, Fault::Storage(_))
    }

    /// The metric label of the fault's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Forged { .. } => "forged",
            Fault::Renditions { .. } => "renditions",
            Fault::Structure(_) => "structure",
            Fault::Content { .. } => "content",
            Fault::Storage(StorageFault::Late) => "storage_late",
            Fault::Storage(_) => "storage_proof",
        }
    }

    pub fn to_wire(&self) -> v1::Fault {
        let kind = match self {
            Fault::Forged { rendition } => wire_fault::Kind::Forged(v1::ForgedResult {
                rendition: rendition.clone().unwrap_or_default(),
            }),
            Fault::Renditions { rendition, what } => {
                use v1::rendition_set_fault::What;
                let what = match what {
                    RenditionSet::Unexpected => What::Unexpected,
                    RenditionSet::Missing => What::Missing,
                    RenditionSet::Duplicate => What::Duplicate,
                };
                wire_fault::Kind::Renditions(v1::RenditionSetFault {
                    what: what.into(),
                    rendition: rendition.clone(),
                })
            }
            Fault::Structure(e) => structure_to_wire(e),
            Fault::Content {
                rendition,
                seed,
                frame_index,
                pts_secs,
                score_db,
                threshold_db,
                reference_db,
            } => wire_fault::Kind::Content(v1::ContentFault {
                rendition: rendition.clone(),
                seed: *seed,
                frame_index: *frame_index,
                pts_secs: *pts_secs,
                score_db: *score_db,
                threshold_db: *threshold_db,
                reference_db: *reference_db,
            }),
            Fault::Storage(s) => wire_fault::Kind::Storage(storage_to_wire(s)),
        };
        v1::Fault { kind: Some(kind) }
    }

    /// A fault from its wire form; `None` when the message names no fault this version knows.
    pub fn from_wire(wire: &v1::Fault) -> Option<Self> {
        Some(match wire.kind.as_ref()? {
            wire_fault::Kind::Forged(f) => Fault::Forged {
                rendition: (!f.rendition.is_empty()).then(|| f.rendition.clone()),
            },
            wire_fault::Kind::Renditions(r) => {
                use v1::rendition_set_fault::What;
                let what = match What::try_from(r.what).ok()? {
                    What::Unexpected => RenditionSet::Unexpected,
                    What::Missing => RenditionSet::Missing,
                    What::Duplicate => RenditionSet::Duplicate,
                    What::Unspecified => return None,
                };
                Fault::Renditions {
                    rendition: r.rendition.clone(),
                    what,
                }
            }
            wire_fault::Kind::Structure(s) => Fault::Structure(structure_from_wire(s)?),
            wire_fault::Kind::Content(c) => Fault::Content {
                rendition: c.rendition.clone(),
                seed: c.seed,
                frame_index: c.frame_index,
                pts_secs: c.pts_secs,
                score_db: c.score_db,
                threshold_db: c.threshold_db,
                reference_db: c.reference_db,
            },
            wire_fault::Kind::Storage(s) => Fault::Storage(storage_from_wire(s)?),
        })
    }
}

fn structure_to_wire(e: &VerifyError) -> wire_fault::Kind {
    use structure_fault::What;
    let what = match e {
        VerifyError::Undecodable { detail, .. } => What::Undecodable(detail.clone()),
        VerifyError::Codec { found, asked, .. } => What::Codec(v1::CodecMismatch {
            found: found.clone(),
            asked: asked.clone(),
        }),
        VerifyError::Size {
            width,
            height,
            asked_width,
            asked_height,
            ..
        } => What::Size(v1::SizeMismatch {
            width: *width,
            height: *height,
            asked_width: *asked_width,
            asked_height: *asked_height,
        }),
        VerifyError::FrameCount {
            frames,
            source_frames,
            ..
        } => What::FrameCount(v1::FrameCountMismatch {
            frames: *frames,
            expected: *source_frames,
            duration_secs: 0.0,
            fps: 0,
        }),
        VerifyError::ConvertedFrameCount {
            frames,
            expected,
            duration_secs,
            fps,
            ..
        } => What::FrameCount(v1::FrameCountMismatch {
            frames: *frames,
            expected: *expected,
            duration_secs: *duration_secs,
            fps: *fps,
        }),
        VerifyError::Start {
            start_secs,
            source_start_secs,
            ..
        } => What::Start(v1::StartMismatch {
            start_secs: *start_secs,
            source_start_secs: *source_start_secs,
        }),
        VerifyError::NoLeadingKeyframe { .. } => What::NoLeadingKeyframe(true),
        VerifyError::Content { .. } => {
            // `Fault::from_content` never builds this; kept lossless all the same, without a seed.
            let content = Fault::from_content(e.clone(), 0, 0.0).to_wire();
            return content
                .kind
                .unwrap_or(wire_fault::Kind::Structure(v1::StructureFault {
                    rendition: e.rendition().to_owned(),
                    what: None,
                }));
        }
    };
    wire_fault::Kind::Structure(v1::StructureFault {
        rendition: e.rendition().to_owned(),
        what: Some(what),
    })
}

fn structure_from_wire(s: &v1::StructureFault) -> Option<VerifyError> {
    use structure_fault::What;
    let rendition = s.rendition.clone();
    Some(match s.what.as_ref()? {
        What::Undecodable(detail) => VerifyError::Undecodable {
            rendition,
            detail: detail.clone(),
        },
        What::Codec(c) => VerifyError::Codec {
            rendition,
            found: c.found.clone(),
            asked: c.asked.clone(),
        },
        What::Size(z) => VerifyError::Size {
            rendition,
            width: z.width,
            height: z.height,
            asked_width: z.asked_width,
            asked_height: z.asked_height,
        },
        What::FrameCount(f) if f.fps == 0 => VerifyError::FrameCount {
            rendition,
            frames: f.frames,
            source_frames: f.expected,
        },
        What::FrameCount(f) => VerifyError::ConvertedFrameCount {
            rendition,
            frames: f.frames,
            expected: f.expected,
            duration_secs: f.duration_secs,
            fps: f.fps,
        },
        What::Start(t) => VerifyError::Start {
            rendition,
            start_secs: t.start_secs,
            source_start_secs: t.source_start_secs,
        },
        What::NoLeadingKeyframe(_) => VerifyError::NoLeadingKeyframe { rendition },
    })
}

fn storage_to_wire(s: &StorageFault) -> v1::StorageFault {
    use storage_fault::What;
    let what = match s {
        StorageFault::Late => What::Late(true),
        StorageFault::Missing => What::Missing(true),
        StorageFault::Refused { error } => What::Refused(error.clone()),
        StorageFault::ProofCount { got, asked } => What::ProofCount(v1::ProofCount {
            got: *got,
            asked: *asked,
        }),
        StorageFault::Proof { index, why } => {
            use v1::proof_failure::What as W;
            let (what, found_index) = match why {
                ProofFailure::Malformed => (W::Malformed, 0),
                ProofFailure::WrongIndex { found } => (W::WrongIndex, *found),
                ProofFailure::Mismatch => (W::Mismatch, 0),
            };
            What::Proof(v1::ProofFailure {
                index: *index,
                what: what.into(),
                found_index,
            })
        }
    };
    v1::StorageFault { what: Some(what) }
}

fn storage_from_wire(s: &v1::StorageFault) -> Option<StorageFault> {
    use storage_fault::What;
    Some(match s.what.as_ref()? {
        What::Late(_) => StorageFault::Late,
        What::Missing(_) => StorageFault::Missing,
        What::Refused(error) => StorageFault::Refused {
            error: error.clone(),
        },
        What::ProofCount(c) => StorageFault::ProofCount {
            got: c.got,
            asked: c.asked,
        },
        What::Proof(p) => {
            use v1::proof_failure::What as W;
            let why = match W::try_from(p.what).ok()? {
                W::Malformed => ProofFailure::Malformed,
                W::WrongIndex => ProofFailure::WrongIndex {
                    found: p.found_index,
                },
                W::Mismatch => ProofFailure::Mismatch,
                W::Unspecified => return None,
            };
            StorageFault::Proof {
                index: p.index,
                why,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of every fault shape, each field set to something other than its default.
    pub(crate) fn every_fault() -> Vec<Fault> {
        let r = || "720p".to_owned();
        vec![
            Fault::Forged { rendition: None },
            Fault::Forged {
                rendition: Some(r()),
            },
            Fault::Renditions {
                rendition: r(),
                what: RenditionSet::Unexpected,
            },
            Fault::Renditions {
                rendition: r(),
                what: RenditionSet::Missing,
            },
            Fault::Renditions {
                rendition: r(),
                what: RenditionSet::Duplicate,
            },
            Fault::Structure(VerifyError::Undecodable {
                rendition: r(),
                detail: "Invalid data found when processing input".into(),
            }),
            Fault::Structure(VerifyError::Codec {
                rendition: r(),
                found: "hevc".into(),
                asked: "h264".into(),
            }),
            Fault::Structure(VerifyError::Size {
                rendition: r(),
                width: 1264,
                height: 704,
                asked_width: 1280,
                asked_height: 720,
            }),
            Fault::Structure(VerifyError::FrameCount {
                rendition: r(),
                frames: 30,
                source_frames: 60,
            }),
            Fault::Structure(VerifyError::ConvertedFrameCount {
                rendition: r(),
                frames: 30,
                expected: 48,
                duration_secs: 2.002,
                fps: 24,
            }),
            Fault::Structure(VerifyError::Start {
                rendition: r(),
                start_secs: 3.5,
                source_start_secs: 1.4,
            }),
            Fault::Structure(VerifyError::NoLeadingKeyframe { rendition: r() }),
            Fault::Content {
                rendition: r(),
                seed: 0xdead_beef_0123,
                frame_index: 17,
                pts_secs: 2.1,
                score_db: 10.7,
                threshold_db: 22.0,
                reference_db: 41.3,
            },
            Fault::Storage(StorageFault::Late),
            Fault::Storage(StorageFault::Missing),
            Fault::Storage(StorageFault::Refused {
                error: "blob not found".into(),
            }),
            Fault::Storage(StorageFault::ProofCount { got: 3, asked: 16 }),
            Fault::Storage(StorageFault::Proof {
                index: 9,
                why: ProofFailure::Malformed,
            }),
            Fault::Storage(StorageFault::Proof {
                index: 9,
                why: ProofFailure::WrongIndex { found: 4 },
            }),
            Fault::Storage(StorageFault::Proof {
                index: 9,
                why: ProofFailure::Mismatch,
            }),
        ]
    }

    #[test]
    fn every_fault_survives_the_wire_field_by_field() {
        for fault in every_fault() {
            let wire = prost::Message::encode_to_vec(&fault.to_wire());
            let decoded: v1::Fault = prost::Message::decode(wire.as_slice()).expect("decodes");
            assert_eq!(Fault::from_wire(&decoded).as_ref(), Some(&fault));
        }
    }

    #[test]
    fn a_fault_this_version_does_not_know_is_none() {
        assert_eq!(Fault::from_wire(&v1::Fault { kind: None }), None);
        let unknown = v1::Fault {
            kind: Some(wire_fault::Kind::Renditions(v1::RenditionSetFault {
                what: 99,
                rendition: "x".into(),
            })),
        };
        assert_eq!(Fault::from_wire(&unknown), None);
    }
}
