//! HLS output (RFC 8216): one media playlist per rendition and a master playlist that lists them all.
//!
//! Written by hand rather than with m3u8-rs (ARCHITECTURE.md, "Crates chosen"); the tests read every
//! playlist back with m3u8-rs's parser, an independent reading of the RFC.

use std::fmt::Write as _;
use std::path::Path;

use dualrig_proto::profile::Profile;

/// One segment as it appears in every rendition's playlist.
#[derive(Debug, Clone)]
pub struct PlaylistEntry {
    pub uri: String,
    pub duration_secs: f64,
}

/// The media playlist of one rendition (VOD: every segment, then the end tag).
pub fn media_playlist(entries: &[PlaylistEntry]) -> String {
    let target = entries
        .iter()
        .map(|e| e.duration_secs.ceil() as u64)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut out = String::new();
    let _ = writeln!(out, "#EXTM3U");
    let _ = writeln!(out, "#EXT-X-VERSION:3");
    let _ = writeln!(out, "#EXT-X-PLAYLIST-TYPE:VOD");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:0");
    for e in entries {
        let _ = writeln!(out, "#EXTINF:{:.6},", e.duration_secs);
        let _ = writeln!(out, "{}", e.uri);
    }
    let _ = writeln!(out, "#EXT-X-ENDLIST");
    out
}

/// A rendition as the master playlist lists it.
#[derive(Debug, Clone)]
pub struct Variant {
    pub profile: Profile,
    /// Peak bits per second measured over the segments, at least the profile's target.
    pub bandwidth: u64,
    pub uri: String,
    /// The `CODECS` attribute (RFC 6381 codec strings, e.g. `avc1.64001f,mp4a.40.2`), when known.
    pub codecs: Option<String>,
}

/// The master playlist, highest resolution first.
pub fn master_playlist(variants: &[Variant]) -> String {
    let mut sorted: Vec<&Variant> = variants.iter().collect();
    sorted.sort_by_key(|v| std::cmp::Reverse(v.profile.width * v.profile.height));
    let mut out = String::new();
    let _ = writeln!(out, "#EXTM3U");
    let _ = writeln!(out, "#EXT-X-VERSION:3");
    for v in sorted {
        let codecs = v
            .codecs
            .as_ref()
            .map(|c| format!(",CODECS=\"{c}\""))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={},RESOLUTION={}x{}{codecs},NAME=\"{}\"",
            v.bandwidth, v.profile.width, v.profile.height, v.profile.name
        );
        let _ = writeln!(out, "{}", v.uri);
    }
    out
}

/// Writes `text` to `path` atomically, so a reader never sees half a playlist.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("m3u8.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_playlist_rounds_target_duration_up_and_ends() {
        let text = media_playlist(&[
            PlaylistEntry {
                uri: "seg_00000.ts".into(),
                duration_secs: 2.0,
            },
            PlaylistEntry {
                uri: "seg_00001.ts".into(),
                duration_secs: 2.1,
            },
        ]);
        assert!(text.contains("#EXT-X-TARGETDURATION:3\n"), "{text}");
        assert!(text.contains("#EXTINF:2.100000,\nseg_00001.ts\n"), "{text}");
        assert!(text.ends_with("#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn master_lists_every_variant_largest_first() {
        let variant = |name: &str| Variant {
            profile: Profile::standard(name).expect("standard"),
            bandwidth: 1_000_000,
            uri: format!("{name}/index.m3u8"),
            codecs: None,
        };
        let text = master_playlist(&[variant("360p"), variant("720p")]);
        let first = text.find("720p/index.m3u8").expect("720p");
        let second = text.find("360p/index.m3u8").expect("360p");
        assert!(first < second, "{text}");
        assert!(text.contains("RESOLUTION=1280x720"), "{text}");
        assert!(!text.contains("CODECS"), "{text}");
    }

    #[test]
    fn a_known_codec_string_is_the_codecs_attribute() {
        let text = master_playlist(&[Variant {
            profile: Profile::standard("240p").expect("standard"),
            bandwidth: 400_000,
            uri: "240p/index.m3u8".into(),
            codecs: Some("avc1.64001e,mp4a.40.2".into()),
        }]);
        assert!(
            text.contains(
                "#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=426x240,CODECS=\"avc1.64001e,mp4a.40.2\",NAME=\"240p\"\n"
            ),
            "{text}"
        );
    }

    /// m3u8-rs, another reading of RFC 8216, finds in our playlists what we meant to write.
    #[test]
    fn an_independent_parser_reads_both_playlists_back() {
        let media = media_playlist(&[
            PlaylistEntry {
                uri: "seg_00000.ts".into(),
                duration_secs: 2.002,
            },
            PlaylistEntry {
                uri: "seg_00001.ts".into(),
                duration_secs: 0.5,
            },
        ]);
        let parsed = m3u8_rs::parse_media_playlist_res(media.as_bytes()).expect("media playlist");
        assert_eq!(parsed.version, Some(3));
        assert_eq!(parsed.target_duration, 3);
        assert_eq!(parsed.playlist_type, Some(m3u8_rs::MediaPlaylistType::Vod));
        assert!(parsed.end_list);
        let segments: Vec<(&str, f32)> = parsed
            .segments
            .iter()
            .map(|s| (s.uri.as_str(), s.duration))
            .collect();
        assert_eq!(segments, [("seg_00000.ts", 2.002), ("seg_00001.ts", 0.5)]);

        let master = master_playlist(&[
            Variant {
                profile: Profile::standard("240p").expect("standard"),
                bandwidth: 400_000,
                uri: "240p/index.m3u8".into(),
                codecs: Some("avc1.64001e,mp4a.40.2".into()),
            },
            Variant {
                profile: Profile::standard("720p").expect("standard"),
                bandwidth: 3_000_000,
                uri: "720p/index.m3u8".into(),
                codecs: None,
            },
        ]);
        let parsed =
            m3u8_rs::parse_master_playlist_res(master.as_bytes()).expect("master playlist");
        assert_eq!(parsed.version, Some(3));
        type Read<'a> = (&'a str, u64, Option<(u64, u64)>, Option<&'a str>);
        let variants: Vec<Read> = parsed
            .variants
            .iter()
            .map(|v| {
                (
                    v.uri.as_str(),
                    v.bandwidth,
                    v.resolution.map(|r| (r.width, r.height)),
                    v.codecs.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            variants,
            [
                ("720p/index.m3u8", 3_000_000, Some((1280, 720)), None),
                (
                    "240p/index.m3u8",
                    400_000,
                    Some((426, 240)),
                    Some("avc1.64001e,mp4a.40.2")
                ),
            ]
        );
    }
}
