//! Just enough H.264 Annex B parsing to keep every segment decodable on its own: a keyframe that starts a
//! segment must carry the SPS and PPS, and some encoders only send them once at the start of a stream.

const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_AUD: u8 = 9;

/// The NAL units of an Annex B buffer, without start codes or trailing zero bytes.
fn nal_units(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut units = Vec::with_capacity(starts.len());
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map_or(data.len(), |&next| next - 3);
        let mut unit = &data[start..end];
        while let [rest @ .., 0] = unit {
            unit = rest;
        }
        if !unit.is_empty() {
            units.push(unit);
        }
    }
    units
}

fn nal_type(unit: &[u8]) -> u8 {
    unit.first().map_or(0, |b| b & 0x1f)
}

/// The RFC 6381 codec string of the first SPS in an Annex B buffer (`avc1.` then profile_idc, the
/// constraint flags byte and level_idc in hex), as an HLS `CODECS` attribute names H.264.
pub(crate) fn avc1_codec_string(data: &[u8]) -> Option<String> {
    let sps = nal_units(data)
        .into_iter()
        .find(|u| nal_type(u) == NAL_SPS)?;
    match sps {
        [_, profile, constraints, level, ..] => {
            Some(format!("avc1.{profile:02x}{constraints:02x}{level:02x}"))
        }
        _ => None,
    }
}

/// Whether a packet is Annex B (start codes) rather than length-prefixed, as in MP4.
pub(crate) fn is_annex_b(data: &[u8]) -> bool {
    data.starts_with(&[0, 0, 1]) || data.starts_with(&[0, 0, 0, 1])
}

/// The latest SPS and PPS seen in a stream.
#[derive(Debug, Default)]
pub(crate) struct ParameterSets {
    sps: Vec<Vec<u8>>,
    pps: Vec<Vec<u8>>,
}

impl ParameterSets {
    /// Remembers the parameter sets an access unit carries, replacing older ones.
    pub(crate) fn observe(&mut self, data: &[u8]) {
        let units = nal_units(data);
        let sps: Vec<Vec<u8>> = units
            .iter()
            .filter(|u| nal_type(u) == NAL_SPS)
            .map(|u| u.to_vec())
            .collect();
        let pps: Vec<Vec<u8>> = units
            .iter()
            .filter(|u| nal_type(u) == NAL_PPS)
            .map(|u| u.to_vec())
            .collect();
        if !sps.is_empty() {
            self.sps = sps;
        }
        if !pps.is_empty() {
            self.pps = pps;
        }
    }

    /// The access unit with the remembered SPS and PPS put in front (after an access unit delimiter, if
    /// any), or `None` when it already has an SPS or none is known.
    pub(crate) fn complete(&self, data: &[u8]) -> Option<Vec<u8>> {
        if self.sps.is_empty() || self.pps.is_empty() {
            return None;
        }
        let units = nal_units(data);
        if units.iter().any(|u| nal_type(u) == NAL_SPS) {
            return None;
        }
        let mut out = Vec::with_capacity(data.len() + 64);
        let mut push = |unit: &[u8]| {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(unit);
        };
        let mut rest = &units[..];
        if let [aud, tail @ ..] = rest
            && nal_type(aud) == NAL_AUD
        {
            push(aud);
            rest = tail;
        }
        for unit in self.sps.iter().chain(&self.pps) {
            push(unit);
        }
        for unit in rest {
            push(unit);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0x67, 0x64, 0x00, 0x1f];
    const PPS: &[u8] = &[0x68, 0xee, 0x3c];
    const AUD: &[u8] = &[0x09, 0xf0];
    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x10];

    fn annex_b(units: &[&[u8]]) -> Vec<u8> {
        units
            .iter()
            .flat_map(|u| [&[0, 0, 0, 1][..], u].concat())
            .collect()
    }

    #[test]
    fn a_keyframe_without_parameter_sets_gets_them_after_its_delimiter() {
        let mut sets = ParameterSets::default();
        sets.observe(&annex_b(&[AUD, SPS, PPS, IDR]));
        let bare = annex_b(&[AUD, IDR]);
        assert!(is_annex_b(&bare));
        assert_eq!(sets.complete(&bare), Some(annex_b(&[AUD, SPS, PPS, IDR])));
        assert_eq!(sets.complete(&annex_b(&[SPS, PPS, IDR])), None);
    }

    #[test]
    fn three_byte_start_codes_and_trailing_zeros_parse() {
        let data = [&[0, 0, 1][..], SPS, &[0, 0], &[0, 0, 1], IDR].concat();
        let units = nal_units(&data);
        assert_eq!(units, vec![SPS, IDR]);
    }

    #[test]
    fn the_codec_string_comes_from_the_first_sps() {
        let data = annex_b(&[
            &[NAL_AUD, 0xf0],
            &[0x67, 0x64, 0x00, 0x1f, 0xac],
            &[0x68, 1],
        ]);
        assert_eq!(avc1_codec_string(&data).as_deref(), Some("avc1.64001f"));
        assert_eq!(avc1_codec_string(&annex_b(&[&[0x68, 1]])), None);
        assert_eq!(avc1_codec_string(&annex_b(&[&[0x67, 0x64]])), None);
    }

    #[test]
    fn nothing_known_means_nothing_added() {
        assert_eq!(ParameterSets::default().complete(&annex_b(&[IDR])), None);
    }
}
