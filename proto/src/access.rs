//! Who asks for a gated blob (PROTOCOL §6.10): an account signs its Get over a single-use nonce the
//! coordinator issued (`Hello` with `for_get`), so a captured request is worth nothing to anyone else
//! and nothing to its author a second time. Collective names and their rules live here too, so the
//! client refuses a bad name with the same words the ledger would.

use crate::identity::{Identity, PublicId};

/// Key-derivation context of the digest an account signs for a Get.
pub const GET_CONTEXT: &str = "dualrig 2026-12 signed get v1";

/// Longest collective name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Why a collective name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a collective name is 1 to {MAX_NAME_LEN} bytes; '{name}' is {len}")]
    Length { name: String, len: usize },
    #[error(
        "collective name '{name}' may hold only a-z, 0-9, '-', '_' and '.', and must start with a letter or digit"
    )]
    Charset { name: String },
}

/// Checks a collective name: 1–64 bytes of `a-z 0-9 - _ .`, starting with a letter or digit.
pub fn check_name(name: &str) -> Result<(), NameError> {
    let shown = || name.chars().take(MAX_NAME_LEN + 8).collect::<String>();
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(NameError::Length {
            name: shown(),
            len: name.len(),
        });
    }
    let allowed = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-_.".contains(&c);
    let first_ok = name
        .bytes()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !first_ok || !name.bytes().all(allowed) {
        return Err(NameError::Charset { name: shown() });
    }
    Ok(())
}

/// The digest an account signs for a Get: `blake3 derive_key(GET_CONTEXT, nonce ‖ account ‖ root ‖
/// start LE ‖ end_flag ‖ end LE)`, `end_flag` 1 with the end, 0 (and end 0) without. Every field has
/// a fixed width.
pub fn get_message(
    nonce: &[u8; 32],
    account: &PublicId,
    root: &[u8; 32],
    start: u64,
    end: Option<u64>,
) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(GET_CONTEXT);
    hasher.update(nonce);
    hasher.update(account.as_bytes());
    hasher.update(root);
    hasher.update(&start.to_le_bytes());
    hasher.update(&[u8::from(end.is_some())]);
    hasher.update(&end.unwrap_or(0).to_le_bytes());
    *hasher.finalize().as_bytes()
}

/// `GetAuth` for a Get of `root`'s `start..end` by `identity` under `nonce`.
pub fn sign_get(
    identity: &Identity,
    nonce: &[u8; 32],
    root: &[u8; 32],
    start: u64,
    end: Option<u64>,
) -> crate::v1::GetAuth {
    let account = identity.id();
    crate::v1::GetAuth {
        account: account.as_bytes().to_vec(),
        nonce: nonce.to_vec(),
        sig: identity
            .sign(&get_message(nonce, &account, root, start, end))
            .to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bounded_and_plain() {
        for good in ["a", "films-2026", "x.y_z", &"a".repeat(MAX_NAME_LEN)] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        assert!(matches!(check_name(""), Err(NameError::Length { .. })));
        assert!(matches!(
            check_name(&"a".repeat(MAX_NAME_LEN + 1)),
            Err(NameError::Length { .. })
        ));
        for bad in ["Films", "-x", ".x", "a b", "é", "a/b", "a\0"] {
            assert!(
                matches!(check_name(bad), Err(NameError::Charset { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn get_signature_binds_nonce_account_and_range() {
        let alice = Identity::from_secret([1; 32]);
        let nonce = [3; 32];
        let root = [4; 32];
        let auth = sign_get(&alice, &nonce, &root, 0, Some(10));
        let sig: [u8; 64] = auth.sig.as_slice().try_into().expect("64 bytes");
        let m = get_message(&nonce, &alice.id(), &root, 0, Some(10));
        alice.id().verify(&m, &sig).expect("honest");
        for other in [
            get_message(&[5; 32], &alice.id(), &root, 0, Some(10)),
            get_message(&nonce, &alice.id(), &[6; 32], 0, Some(10)),
            get_message(&nonce, &alice.id(), &root, 1, Some(10)),
            get_message(&nonce, &alice.id(), &root, 0, None),
            get_message(
                &nonce,
                &Identity::from_secret([2; 32]).id(),
                &root,
                0,
                Some(10),
            ),
        ] {
            assert!(alice.id().verify(&other, &sig).is_err());
        }
    }
}
