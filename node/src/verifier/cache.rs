//! A bounded cache of successful signature verifications.
//!
//! Clients reuse their access token for minutes, so most `/v1/check` calls present a
//! token already seen. The cache is keyed by the SHA-256 of the whole token, so a hit
//! proves the exact bytes were verified before. A hit still goes through the expiry,
//! key and deny-list checks: the cache only saves the signature and parsing work.

use std::sync::Arc;

use dashmap::DashMap;
use sha2::{Digest, Sha256};

use super::AccessToken;

/// Digest of a token's bytes, the cache key.
pub type TokenDigest = [u8; 32];

/// Verified tokens by digest, at most `capacity` of them.
pub struct VerifyCache {
    entries: DashMap<TokenDigest, Arc<AccessToken>>,
    capacity: usize,
}

impl VerifyCache {
    /// An empty cache; a capacity of 0 disables it.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: DashMap::new(),
            capacity,
        }
    }

    /// The cache key of `token`.
    pub fn digest(token: &str) -> TokenDigest {
        Sha256::digest(token.as_bytes()).into()
    }

    /// A previously verified token with this digest.
    pub fn get(&self, digest: &TokenDigest) -> Option<Arc<AccessToken>> {
        self.entries.get(digest).map(|e| Arc::clone(e.value()))
    }

    /// Remembers a verified token unless the cache is full; full caches are emptied of
    /// expired entries by [`VerifyCache::prune`].
    pub fn insert(&self, digest: TokenDigest, token: Arc<AccessToken>) {
        if self.entries.len() < self.capacity {
            self.entries.insert(digest, token);
        }
    }

    /// Forgets one entry.
    pub fn remove(&self, digest: &TokenDigest) {
        self.entries.remove(digest);
    }

    /// Drops entries whose token expired before `now_secs`.
    pub fn prune(&self, now_secs: u64) {
        self.entries.retain(|_, t| t.expires_at >= now_secs);
    }

    /// Number of cached tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
