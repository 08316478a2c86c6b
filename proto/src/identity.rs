//! Ed25519 identities (PROTOCOL §2): every actor is a key pair whose id is its 32-byte public key, kept in a
//! file the binary creates on first run with mode 0600.

use std::fmt;
use std::io::Write;
use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// Context for the key derivation that binds a registration signature to its purpose.
const REGISTRATION_CONTEXT: &str = "dualrig 2026-11 worker register v1";
const LINK_CONTEXT: &str = "dualrig 2026-12 coordinator link v1";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write key file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("key file {path} is {len} bytes; expected a 32-byte ed25519 secret key")]
    Malformed { path: String, len: usize },
    #[error("{what} is {len} bytes; an id is a 32-byte ed25519 public key")]
    IdLength { what: &'static str, len: usize },
    #[error("{what} is not a valid ed25519 public key")]
    IdInvalid { what: &'static str },
    #[error("signature is {len} bytes; an ed25519 signature is 64")]
    SignatureLength { len: usize },
    #[error("signature does not verify under {id}")]
    BadSignature { id: PublicId },
}

/// A 32-byte ed25519 public key: the id of a worker, client or coordinator.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicId(pub [u8; 32]);

impl PublicId {
    /// Parses an id received from a peer.
    pub fn from_slice(what: &'static str, bytes: &[u8]) -> Result<Self, IdentityError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| IdentityError::IdLength {
            what,
            len: bytes.len(),
        })?;
        // A small-order key verifies signatures that nobody made; such a key is no identity.
        let key = VerifyingKey::from_bytes(&arr).map_err(|_| IdentityError::IdInvalid { what })?;
        if key.is_weak() {
            return Err(IdentityError::IdInvalid { what });
        }
        Ok(Self(arr))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 8 hex digits, for logs and tables.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    /// Checks `signature` over `message` under this id, strictly (no small-order keys, canonical `R`
    /// and `s`), as tickets and ledger requests are checked.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), IdentityError> {
        let sig: [u8; 64] = signature
            .try_into()
            .map_err(|_| IdentityError::SignatureLength {
                len: signature.len(),
            })?;
        let key = VerifyingKey::from_bytes(&self.0)
            .map_err(|_| IdentityError::IdInvalid { what: "id" })?;
        key.verify_strict(message, &Signature::from_bytes(&sig))
            .map_err(|_| IdentityError::BadSignature { id: *self })
    }
}

impl fmt::Display for PublicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PublicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicId({})", self.short())
    }
}

/// An actor's key pair.
pub struct Identity {
    key: SigningKey,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({})", self.id().short())
    }
}

impl Identity {
    /// A fresh random key pair.
    pub fn generate() -> Self {
        let secret: [u8; 32] = rand::random();
        Self {
            key: SigningKey::from_bytes(&secret),
        }
    }

    pub fn from_secret(secret: [u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(&secret),
        }
    }

    /// Loads the key at `path`, creating it (mode 0600, written atomically) on first run.
    pub fn load_or_create(path: &Path) -> Result<Self, IdentityError> {
        let shown = path.display().to_string();
        match std::fs::read(path) {
            Ok(bytes) => {
                let secret: [u8; 32] =
                    bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| IdentityError::Malformed {
                            path: shown.clone(),
                            len: bytes.len(),
                        })?;
                Ok(Self::from_secret(secret))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let identity = Self::generate();
                identity
                    .write_new(path)
                    .map_err(|source| IdentityError::Write {
                        path: shown,
                        source,
                    })?;
                Ok(identity)
            }
            Err(source) => Err(IdentityError::Read {
                path: shown,
                source,
            }),
        }
    }

    fn write_new(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(self.key.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    }

    pub fn id(&self) -> PublicId {
        PublicId(self.key.verifying_key().to_bytes())
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

/// What a worker signs to prove its id at registration: bound to the coordinator's nonce and to the id,
/// under a context no other signature in dualrig uses.
pub fn registration_message(nonce: &[u8], worker_id: &PublicId) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(REGISTRATION_CONTEXT);
    hasher.update(nonce);
    hasher.update(worker_id.as_bytes());
    *hasher.finalize().as_bytes()
}

/// Which end of a coordinator link signs (PROTOCOL §8.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRole {
    /// The coordinator that opened the link.
    Dialer,
    /// The coordinator it was opened to.
    Acceptor,
}

/// What each end of a coordinator link signs: its role, both keys and both nonces, under a context no
/// other signature in dualrig uses. A signature made for one link, one role or one pair of keys is
/// worth nothing on another.
pub fn link_message(
    role: LinkRole,
    dialer: &PublicId,
    acceptor: &PublicId,
    dialer_nonce: &[u8],
    acceptor_nonce: &[u8],
) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(LINK_CONTEXT);
    hasher.update(match role {
        LinkRole::Dialer => b"dialer",
        LinkRole::Acceptor => b"accept",
    });
    hasher.update(dialer.as_bytes());
    hasher.update(acceptor.as_bytes());
    hasher.update(&(dialer_nonce.len() as u64).to_le_bytes());
    hasher.update(dialer_nonce);
    hasher.update(acceptor_nonce);
    *hasher.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_once_and_reloaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys/worker.key");
        let first = Identity::load_or_create(&path).expect("create");
        let again = Identity::load_or_create(&path).expect("reload");
        assert_eq!(first.id(), again.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn malformed_key_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.key");
        std::fs::write(&path, b"short").expect("write");
        assert!(matches!(
            Identity::load_or_create(&path),
            Err(IdentityError::Malformed { len: 5, .. })
        ));
    }

    #[test]
    fn registration_signature_binds_nonce_and_id() {
        let worker = Identity::generate();
        let nonce = [7u8; 32];
        let sig = worker.sign(&registration_message(&nonce, &worker.id()));
        worker
            .id()
            .verify(&registration_message(&nonce, &worker.id()), &sig)
            .expect("verifies");
        let other_nonce = [8u8; 32];
        assert!(
            worker
                .id()
                .verify(&registration_message(&other_nonce, &worker.id()), &sig)
                .is_err()
        );
        let impostor = Identity::generate();
        assert!(
            impostor
                .id()
                .verify(&registration_message(&nonce, &impostor.id()), &sig)
                .is_err()
        );
    }
}
