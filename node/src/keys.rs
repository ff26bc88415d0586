//! The signing-key ring: which Ed25519 keys exist, which one signs, and when each is
//! published, retired and removed.
//!
//! A key moves through four phases, decided by the clock alone:
//! *next* (published in the JWKS, not yet signing) → *current* (signing) → *retiring*
//! (verifying what it signed) → removed. A new key is published `jwks_max_age` before it
//! signs, so every verifier that honours our cache lifetime has it in time; a retired key
//! stays until the last token it signed has expired.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::SigningKey;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fsutil::write_atomic;

/// File name of the key ring inside the data directory.
pub const KEYS_FILE: &str = "signing-keys.bin";
/// Format version written in front of the key ring.
const FORMAT: u8 = 1;

/// One signing key and its schedule. Times are Unix milliseconds.
#[derive(Clone, Serialize, Deserialize)]
pub struct KeyRecord {
    /// RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// The Ed25519 secret seed. Never leaves this file or the signer.
    seed: [u8; 32],
    /// When the key was created and published.
    pub created_ms: u64,
    /// From when it signs.
    pub activate_ms: u64,
    /// From when it no longer signs; set when its successor is scheduled.
    pub retire_ms: Option<u64>,
    /// From when it is no longer published or trusted.
    pub expire_ms: Option<u64>,
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Where a key is in its life at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Published, not yet signing.
    Next,
    /// Signing.
    Current,
    /// Verifying only.
    Retiring,
    /// Gone.
    Expired,
}

impl KeyRecord {
    fn generate(now_ms: u64, activate_ms: u64) -> Self {
        let signing = SigningKey::generate(&mut OsRng);
        let seed = signing.to_bytes();
        Self {
            kid: thumbprint(signing.verifying_key().as_bytes()),
            seed,
            created_ms: now_ms,
            activate_ms,
            retire_ms: None,
            expire_ms: None,
        }
    }

    /// The public half with its schedule.
    pub fn public_record(&self) -> PublicKeyRecord {
        PublicKeyRecord {
            kid: self.kid.clone(),
            public: self.public_key(),
            activate_ms: self.activate_ms,
            retire_ms: self.retire_ms,
            expire_ms: self.expire_ms,
        }
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        SigningKey::from_bytes(&self.seed)
            .verifying_key()
            .to_bytes()
    }

    /// The 64-byte secret||public key pair, the form jwt-simple loads.
    pub fn keypair_bytes(&self) -> [u8; 64] {
        SigningKey::from_bytes(&self.seed).to_keypair_bytes()
    }

    /// This key's phase at `now_ms`.
    pub fn phase(&self, now_ms: u64) -> Phase {
        phase_at(self.activate_ms, self.retire_ms, self.expire_ms, now_ms)
    }
}

/// The public half of a key with its schedule: what peers gossip and persist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyRecord {
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// Raw Ed25519 public key.
    pub public: [u8; 32],
    /// From when it signs, Unix ms.
    pub activate_ms: u64,
    /// From when it no longer signs, once scheduled.
    pub retire_ms: Option<u64>,
    /// From when it is no longer trusted, once scheduled.
    pub expire_ms: Option<u64>,
}

impl PublicKeyRecord {
    /// Whether the key's published public half matches its kid (a peer could lie).
    pub fn is_consistent(&self) -> bool {
        thumbprint(&self.public) == self.kid
            && ed25519_dalek::VerifyingKey::from_bytes(&self.public).is_ok()
    }
}

/// The phase of a key with this schedule at `now_ms`.
pub fn phase_at(
    activate_ms: u64,
    retire_ms: Option<u64>,
    expire_ms: Option<u64>,
    now_ms: u64,
) -> Phase {
    if expire_ms.is_some_and(|t| now_ms >= t) {
        Phase::Expired
    } else if retire_ms.is_some_and(|t| now_ms >= t) {
        Phase::Retiring
    } else if now_ms >= activate_ms {
        Phase::Current
    } else {
        Phase::Next
    }
}

/// RFC 7638 JWK thumbprint of an Ed25519 public key (RFC 8037 §2).
pub fn thumbprint(public: &[u8; 32]) -> String {
    let x = URL_SAFE_NO_PAD.encode(public);
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// How long keys live around a rotation.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Time a key signs before its successor takes over.
    pub rotation_period_ms: u64,
    /// Publication lead time: the advertised JWKS cache lifetime.
    pub publish_ahead_ms: u64,
    /// Longest lifetime of anything a key signs, plus leeway.
    pub verify_after_ms: u64,
}

/// Why a rotation was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RotateError {
    /// A successor is already published and waiting to sign.
    #[error("a rotation is already pending: key {0} starts signing soon")]
    AlreadyPending(String),
}

/// The ordered set of keys, persisted in the data directory with mode 0600.
#[derive(Debug)]
pub struct KeyRing {
    keys: Vec<KeyRecord>,
    path: PathBuf,
}

/// Errors reading or writing the key ring.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    /// The file could not be read or written.
    #[error("key ring {path}: {source}")]
    Io {
        /// The key ring file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The file exists but is not a key ring this version understands.
    #[error("key ring {0} is corrupt or from an unknown version; restore it from backup")]
    Corrupt(PathBuf),
}

impl KeyRing {
    /// Loads the ring from `dir`, or creates one with a first key that signs at once.
    pub fn load_or_create(dir: &Path, now_ms: u64) -> Result<Self, KeyRingError> {
        let path = dir.join(KEYS_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let keys = decode(&bytes).ok_or_else(|| KeyRingError::Corrupt(path.clone()))?;
                Ok(Self { keys, path })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let ring = Self {
                    keys: vec![KeyRecord::generate(now_ms, now_ms)],
                    path,
                };
                ring.save()?;
                Ok(ring)
            }
            Err(source) => Err(KeyRingError::Io { path, source }),
        }
    }

    /// Writes the ring atomically with mode 0600.
    pub fn save(&self) -> Result<(), KeyRingError> {
        let mut bytes = vec![FORMAT];
        let body = bincode::serde::encode_to_vec(&self.keys, bincode::config::standard())
            .expect("key records always encode");
        bytes.extend(body);
        write_atomic(&self.path, &bytes, 0o600).map_err(|source| KeyRingError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Every key not yet expired, oldest first.
    pub fn live(&self, now_ms: u64) -> impl Iterator<Item = &KeyRecord> {
        self.keys
            .iter()
            .filter(move |k| k.phase(now_ms) != Phase::Expired)
    }

    /// The key that signs at `now_ms`: the most recently activated current key.
    pub fn signing(&self, now_ms: u64) -> Option<&KeyRecord> {
        self.keys
            .iter()
            .filter(|k| k.phase(now_ms) == Phase::Current)
            .max_by_key(|k| k.activate_ms)
    }

    /// Whether the schedule calls for a new key now.
    pub fn rotation_due(&self, now_ms: u64, schedule: &Schedule) -> bool {
        if self.pending(now_ms).is_some() {
            return false;
        }
        match self.signing(now_ms) {
            None => true,
            Some(key) => {
                let next_activation = key.activate_ms + schedule.rotation_period_ms;
                now_ms + schedule.publish_ahead_ms >= next_activation
            }
        }
    }

    fn pending(&self, now_ms: u64) -> Option<&KeyRecord> {
        self.keys.iter().find(|k| k.phase(now_ms) == Phase::Next)
    }

    /// Publishes a new key that signs `publish_ahead_ms` from now and schedules the
    /// current key's retirement at that moment.
    pub fn rotate(&mut self, now_ms: u64, schedule: &Schedule) -> Result<&KeyRecord, RotateError> {
        if let Some(pending) = self.pending(now_ms) {
            return Err(RotateError::AlreadyPending(pending.kid.clone()));
        }
        let activate_ms = now_ms + schedule.publish_ahead_ms;
        for key in self.keys.iter_mut().filter(|k| k.retire_ms.is_none()) {
            key.retire_ms = Some(activate_ms);
            key.expire_ms = Some(activate_ms + schedule.verify_after_ms);
        }
        self.keys.push(KeyRecord::generate(now_ms, activate_ms));
        Ok(self.keys.last().expect("just pushed"))
    }

    /// Undoes a rotation that could not be persisted.
    pub fn unrotate(&mut self, kid: &str) {
        let Some(pos) = self.keys.iter().position(|k| k.kid == kid) else {
            return;
        };
        let activate_ms = self.keys.remove(pos).activate_ms;
        for key in self
            .keys
            .iter_mut()
            .filter(|k| k.retire_ms == Some(activate_ms))
        {
            key.retire_ms = None;
            key.expire_ms = None;
        }
    }

    /// Drops expired keys; returns whether anything changed.
    pub fn prune(&mut self, now_ms: u64) -> bool {
        let before = self.keys.len();
        self.keys.retain(|k| k.phase(now_ms) != Phase::Expired);
        self.keys.len() != before
    }
}

fn decode(bytes: &[u8]) -> Option<Vec<KeyRecord>> {
    let (&format, body) = bytes.split_first()?;
    if format != FORMAT {
        return None;
    }
    let config = bincode::config::standard().with_limit::<{ 1 << 20 }>();
    let (keys, used): (Vec<KeyRecord>, usize) =
        bincode::serde::decode_from_slice(body, config).ok()?;
    (used == body.len() && !keys.is_empty()).then_some(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const SCHEDULE: Schedule = Schedule {
        rotation_period_ms: 10_000,
        publish_ahead_ms: 1_000,
        verify_after_ms: 5_000,
    };

    #[test]
    fn new_key_is_published_before_it_signs_and_old_key_outlives_its_tokens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ring = KeyRing::load_or_create(dir.path(), 0).expect("create");
        let first = ring
            .signing(0)
            .expect("first key signs at once")
            .kid
            .clone();

        assert!(!ring.rotation_due(8_999, &SCHEDULE));
        assert!(ring.rotation_due(9_000, &SCHEDULE));
        let second = ring.rotate(9_000, &SCHEDULE).expect("rotate").kid.clone();

        assert_eq!(ring.live(9_500).count(), 2);
        assert_eq!(
            ring.signing(9_999).map(|k| k.kid.clone()),
            Some(first.clone())
        );
        assert_eq!(
            ring.signing(10_000).map(|k| k.kid.clone()),
            Some(second.clone())
        );
        assert!(ring.live(14_999).any(|k| k.kid == first));
        assert!(!ring.prune(14_999));
        assert!(ring.prune(15_000));
        assert_eq!(
            ring.live(15_000).map(|k| k.kid.clone()).collect::<Vec<_>>(),
            [second]
        );
    }

    #[test]
    fn refuses_a_second_rotation_while_one_is_pending() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ring = KeyRing::load_or_create(dir.path(), 0).expect("create");
        ring.rotate(100, &SCHEDULE).expect("first rotation");
        assert!(matches!(
            ring.rotate(200, &SCHEDULE),
            Err(RotateError::AlreadyPending(_))
        ));
    }

    #[test]
    fn survives_a_reload_with_private_permissions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ring = KeyRing::load_or_create(dir.path(), 0).expect("create");
        let kid = ring.signing(0).map(|k| k.kid.clone());
        let mode = std::fs::metadata(dir.path().join(KEYS_FILE))
            .expect("stat")
            .permissions();
        assert_eq!(mode.mode() & 0o777, 0o600);
        let again = KeyRing::load_or_create(dir.path(), 1).expect("reload");
        assert_eq!(again.signing(1).map(|k| k.kid.clone()), kid);
    }

    #[test]
    fn rejects_a_corrupt_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(KEYS_FILE), b"\x01garbage").expect("write");
        assert!(matches!(
            KeyRing::load_or_create(dir.path(), 0),
            Err(KeyRingError::Corrupt(_))
        ));
    }
}
