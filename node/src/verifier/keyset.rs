//! The public keys this node trusts, and the JWKS document built from them.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::VerifyingKey;
use serde::Serialize;

use crate::keys::{phase_at, Phase, PublicKeyRecord};

/// A public key as published: what the JWKS shows and the admin API lists.
#[derive(Debug, Clone, Serialize)]
pub struct PublishedKey {
    /// Node id of the node that signs with it.
    pub owner: String,
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// Raw Ed25519 public key.
    #[serde(skip)]
    pub public: [u8; 32],
    /// Phase when the set was built.
    pub phase: Phase,
    /// When it starts signing, Unix ms.
    pub activate_ms: u64,
    /// When it stops signing, Unix ms, once scheduled.
    pub retire_ms: Option<u64>,
    /// When it stops being trusted, Unix ms, once scheduled.
    pub expire_ms: Option<u64>,
}

impl PublishedKey {
    /// A key record as seen at `now_ms`, owned by node `owner`.
    pub fn from_record(record: &PublicKeyRecord, owner: &str, now_ms: u64) -> Self {
        let phase = phase_at(
            record.activate_ms,
            record.retire_ms,
            record.expire_ms,
            now_ms,
        );
        Self {
            owner: owner.to_owned(),
            kid: record.kid.clone(),
            public: record.public,
            phase,
            activate_ms: record.activate_ms,
            retire_ms: record.retire_ms,
            expire_ms: record.expire_ms,
        }
    }

    /// The record peers gossip and persist.
    pub fn record(&self) -> PublicKeyRecord {
        PublicKeyRecord {
            kid: self.kid.clone(),
            public: self.public,
            activate_ms: self.activate_ms,
            retire_ms: self.retire_ms,
            expire_ms: self.expire_ms,
        }
    }
}

/// An immutable set of trusted keys; replaced whole when anything changes.
#[derive(Default)]
pub struct KeySet {
    by_kid: HashMap<String, VerifyingKey>,
    published: Vec<PublishedKey>,
    jwks: String,
}

#[derive(Serialize)]
struct Jwk<'a> {
    kty: &'static str,
    crv: &'static str,
    x: String,
    kid: &'a str,
    alg: &'static str,
    #[serde(rename = "use")]
    use_: &'static str,
}

impl KeySet {
    /// Builds the set and its JWKS document from published keys.
    pub fn new(published: Vec<PublishedKey>) -> Self {
        let by_kid = published
            .iter()
            .map(|k| {
                let key = VerifyingKey::from_bytes(&k.public)
                    .expect("published keys are checked valid Ed25519 points");
                (k.kid.clone(), key)
            })
            .collect();
        let keys: Vec<Jwk<'_>> = published
            .iter()
            .map(|k| Jwk {
                kty: "OKP",
                crv: "Ed25519",
                x: URL_SAFE_NO_PAD.encode(k.public),
                kid: &k.kid,
                alg: "EdDSA",
                use_: "sig",
            })
            .collect();
        let jwks = serde_json::json!({ "keys": keys }).to_string();
        Self {
            by_kid,
            published,
            jwks,
        }
    }

    /// The verification key for `kid`.
    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.by_kid.get(kid)
    }

    /// Whether `kid` is trusted.
    pub fn contains(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// The JWKS document (RFC 7517, RFC 8037 OKP keys).
    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    /// The keys with their schedule.
    pub fn published(&self) -> &[PublishedKey] {
        &self.published
    }
}
