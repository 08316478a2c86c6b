//! Token amounts as people write them: 1 token = 10^6 base units (PROTOCOL §2), up to six decimals.

/// Base units in one token.
pub const UNITS_PER_TOKEN: u64 = 1_000_000;
const DECIMALS: usize = 6;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("'{0}' is not an amount; write tokens like 12 or 1.5 (up to 6 decimals)")]
    Malformed(String),
    #[error("'{0}' has more than 6 decimals; 0.000001 token is the smallest unit")]
    TooPrecise(String),
    #[error("'{0}' tokens do not fit in a u64 of base units")]
    Overflow(String),
}

/// Parses tokens with up to six decimals into base units: `"1.5"` is 1_500_000.
pub fn parse_tokens(text: &str) -> Result<u64, AmountError> {
    let malformed = || AmountError::Malformed(text.to_owned());
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
        return Err(malformed());
    }
    if text.ends_with('.') {
        return Err(malformed());
    }
    if frac.len() > DECIMALS {
        return Err(AmountError::TooPrecise(text.to_owned()));
    }
    let overflow = || AmountError::Overflow(text.to_owned());
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| overflow())?
    };
    let frac: u64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<DECIMALS$}")
            .parse()
            .map_err(|_| malformed())?
    };
    whole
        .checked_mul(UNITS_PER_TOKEN)
        .and_then(|w| w.checked_add(frac))
        .ok_or_else(overflow)
}

/// Base units as tokens, trailing zeros dropped: 1_500_000 is `"1.5"`.
pub fn format_tokens(units: u64) -> String {
    let whole = units / UNITS_PER_TOKEN;
    let frac = units % UNITS_PER_TOKEN;
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:0>DECIMALS$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn tokens_parse_to_base_units() {
        assert_eq!(parse_tokens("1.5"), Ok(1_500_000));
        assert_eq!(parse_tokens("12"), Ok(12_000_000));
        assert_eq!(parse_tokens("0.000001"), Ok(1));
        assert_eq!(parse_tokens(".25"), Ok(250_000));
        assert_eq!(parse_tokens("0"), Ok(0));
        assert_eq!(
            parse_tokens("18446744073709.551615"),
            Ok(u64::MAX),
            "the largest amount"
        );
    }

    #[test]
    fn nonsense_and_overflow_are_errors() {
        for bad in ["", ".", "1.", "-1", "1e6", "1,5", " 1", "1.2.3", "abc"] {
            assert!(
                matches!(parse_tokens(bad), Err(AmountError::Malformed(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            parse_tokens("0.0000001"),
            Err(AmountError::TooPrecise(_))
        ));
        for big in [
            "18446744073709.551616",
            "18446744073710",
            "99999999999999999999",
        ] {
            assert!(
                matches!(parse_tokens(big), Err(AmountError::Overflow(_))),
                "{big}"
            );
        }
    }

    proptest! {
        #[test]
        fn format_and_parse_round_trip(units: u64) {
            prop_assert_eq!(parse_tokens(&format_tokens(units)), Ok(units));
        }
    }
}
