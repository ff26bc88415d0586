//! Credentials at rest: argon2id for user passwords, SHA-256 for client secrets.
//!
//! User passwords are low-entropy and need a slow, memory-hard hash. Client secrets are
//! minted by [`mint_client_secret`] with 256 bits of entropy, so a single fast hash is
//! enough to make a stolen configuration useless, and it keeps `client_credentials`
//! grants cheap.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix of a client secret hash in configuration.
const CLIENT_HASH_PREFIX: &str = "sha256:";

/// Hashes a user password with argon2id and a random salt, in PHC string form.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters accepts any password and a fresh salt")
        .to_string()
}

/// Checks that `phc` is an argon2id hash in PHC string form.
pub fn validate_password_hash(phc: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(phc).map_err(|e| format!("not a PHC string: {e}"))?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(format!(
            "algorithm is {}, expected argon2id",
            parsed.algorithm
        ));
    }
    Ok(())
}

/// Verifies `password` against a stored PHC hash. `None` stands for an unknown user:
/// a dummy hash is verified instead so that both paths cost the same.
pub fn verify_password(stored: Option<&str>, password: &str) -> bool {
    let phc = stored.unwrap_or_else(|| dummy_hash());
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let matches = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    matches && stored.is_some()
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut random = [0u8; 32];
        OsRng.fill_bytes(&mut random);
        hash_password(&URL_SAFE_NO_PAD.encode(random))
    })
}

/// A stored client secret: the SHA-256 digest of the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecretHash([u8; 32]);

impl std::fmt::Debug for ClientSecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecretHash(..)")
    }
}

impl ClientSecretHash {
    /// The hash of `secret`.
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Parses the `sha256:<64 hex digits>` form used in configuration.
    pub fn parse(text: &str) -> Result<Self, String> {
        let hex = text.strip_prefix(CLIENT_HASH_PREFIX).ok_or(
            "expected `sha256:` followed by 64 hex digits (see `portcullis mint-client-secret`)",
        )?;
        if hex.len() != 64 {
            return Err(format!(
                "expected 64 hex digits after `sha256:`, found {}",
                hex.len()
            ));
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|_| "not a hexadecimal digest".to_string())?;
        }
        Ok(Self(out))
    }

    /// Whether `secret` hashes to this value, compared in constant time.
    pub fn matches(&self, secret: &str) -> bool {
        let candidate: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        candidate.ct_eq(&self.0).into()
    }
}

impl std::fmt::Display for ClientSecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(CLIENT_HASH_PREFIX)?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// A fresh client secret (256 random bits, base64url) and its configuration hash.
pub fn mint_client_secret() -> (String, ClientSecretHash) {
    let mut random = [0u8; 32];
    OsRng.fill_bytes(&mut random);
    let secret = URL_SAFE_NO_PAD.encode(random);
    let hash = ClientSecretHash::of(&secret);
    (secret, hash)
}

/// A random identifier with 128 bits of entropy, base64url without padding.
pub fn random_id() -> String {
    let mut random = [0u8; 16];
    OsRng.fill_bytes(&mut random);
    URL_SAFE_NO_PAD.encode(random)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_round_trip_and_unknown_user_never_matches() {
        let phc = hash_password("correct horse");
        assert!(validate_password_hash(&phc).is_ok());
        assert!(verify_password(Some(&phc), "correct horse"));
        assert!(!verify_password(Some(&phc), "wrong"));
        assert!(!verify_password(None, "correct horse"));
    }

    #[test]
    fn client_secret_hash_round_trips_through_its_text_form() {
        let (secret, hash) = mint_client_secret();
        let parsed = ClientSecretHash::parse(&hash.to_string()).expect("own output parses");
        assert!(parsed.matches(&secret));
        assert!(!parsed.matches("guess"));
        assert!(ClientSecretHash::parse("sha256:zz").is_err());
        assert!(ClientSecretHash::parse("md5:00").is_err());
    }

    #[test]
    fn rejects_non_argon2id_hashes() {
        assert!(validate_password_hash("plaintext").is_err());
        let argon2i = "$argon2i$v=19$m=16,t=2,p=1$c29tZXNhbHQ$2Vt7Mft3IcNMcdVMkBLaOw";
        assert!(validate_password_hash(argon2i).is_err());
    }
}
