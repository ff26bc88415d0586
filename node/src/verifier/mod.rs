//! Strict token verification on the request path.
//!
//! [`VerifyView`] is what every HTTP worker reads: the trusted key set (swapped whole on
//! change), the deny list (sharded), and the verification cache. Nothing on this path
//! waits on an actor or a global lock; the [`actor::Verifier`] owns every write. The JWS
//! itself is checked by [`jws`].

pub mod actor;
pub mod batch;
mod cache;
mod jws;
mod keyset;

use std::collections::HashSet;
use std::sync::Arc;

use arc_swap::ArcSwap;
use jwt_simple::claims::{Audiences, JWTClaims};
use serde::de::DeserializeOwned;

pub use cache::{TokenDigest, VerifyCache};
pub use keyset::{KeySet, PublishedKey};

use crate::clock::SharedClock;
use crate::revocation::{DenyList, TokenFacts};
use crate::tokens::{AccessExtra, RefreshExtra, ACCESS_TYP, MAX_TOKEN_BYTES, REFRESH_TYP};

/// Why a token was refused. Each variant is a metric label and an error description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No bearer token was presented.
    #[error("no bearer token")]
    Missing,
    /// The token is longer than the limit.
    #[error("token exceeds 8 KiB")]
    Oversized,
    /// Not a well-formed compact JWS with a JSON header and claims.
    #[error("token is malformed")]
    Malformed,
    /// `alg` is not EdDSA.
    #[error("token algorithm is not EdDSA")]
    UnsupportedAlg,
    /// `typ` is not the one expected here.
    #[error("token type is not accepted here")]
    WrongType,
    /// `kid` missing or not a key we trust.
    #[error("token signing key is unknown")]
    UnknownKey,
    /// The signature does not verify.
    #[error("token signature is invalid")]
    BadSignature,
    /// `exp` has passed.
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iat` is in the future.
    #[error("token was issued in the future")]
    IssuedInFuture,
    /// `iss` is not this issuer.
    #[error("token issuer is not accepted")]
    WrongIssuer,
    /// `aud` names none of our audiences.
    #[error("token audience is not accepted")]
    WrongAudience,
    /// A required claim is absent.
    #[error("token lacks a required claim")]
    MissingClaim,
    /// A revocation covers the token.
    #[error("token has been revoked")]
    Revoked,
    /// The client's address is denied after presenting too many bad tokens; the token
    /// was not looked at.
    #[error("requests from this address are temporarily denied")]
    AddressDenied,
}

impl Rejection {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Oversized => "oversized",
            Self::Malformed => "malformed",
            Self::UnsupportedAlg => "unsupported_alg",
            Self::WrongType => "wrong_type",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "issued_in_future",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::MissingClaim => "missing_claim",
            Self::Revoked => "revoked",
            Self::AddressDenied => "address_denied",
        }
    }
}

/// A verified access token.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// `jti`.
    pub jti: String,
    /// `sub`.
    pub subject: String,
    /// `client_id`.
    pub client_id: String,
    /// `scope`, space-separated.
    pub scope: String,
    /// Refresh family (`sid`), if any.
    pub family: Option<String>,
    /// `iat`, Unix seconds.
    pub issued_at: u64,
    /// `exp`, Unix seconds.
    pub expires_at: u64,
    /// `aud`.
    pub audiences: Vec<String>,
    /// `kid` of the signing key.
    pub kid: String,
}

impl AccessToken {
    /// Whether the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|s| s == scope)
    }

    fn facts(&self) -> TokenFacts<'_> {
        TokenFacts {
            jti: &self.jti,
            subject: &self.subject,
            client_id: &self.client_id,
            family: self.family.as_deref(),
            issued_at: self.issued_at,
        }
    }
}

/// A verified refresh token.
#[derive(Debug, Clone)]
pub struct RefreshToken {
    /// `jti`.
    pub jti: String,
    /// `sub`.
    pub subject: String,
    /// The claims that describe the family.
    pub extra: RefreshExtra,
    /// `iat`, Unix seconds.
    pub issued_at: u64,
    /// `exp`, Unix seconds.
    pub expires_at: u64,
}

/// What the cache knows of an access token.
enum Lookup<'a> {
    /// Verified before, and still valid.
    Cached(Arc<AccessToken>),
    /// Not seen before: the header passed, the signature is still to be checked.
    Unverified(Box<Unverified<'a>>),
}

/// An access token on its way through the full check.
struct Unverified<'a> {
    signed: jws::Signed<'a>,
    digest: TokenDigest,
    /// Unix seconds when the check began.
    now: u64,
}

/// The read side of verification, shared by every worker.
pub struct VerifyView {
    keys: ArcSwap<KeySet>,
    /// Live revocations.
    pub deny: DenyList,
    cache: VerifyCache,
    issuer: String,
    audiences: HashSet<String>,
    leeway_secs: u64,
    clock: SharedClock,
}

impl VerifyView {
    /// An empty view: no keys, no revocations.
    pub fn new(
        issuer: &str,
        audiences: &[String],
        leeway_secs: u64,
        cache_capacity: usize,
        clock: SharedClock,
    ) -> Self {
        Self {
            keys: ArcSwap::from_pointee(KeySet::default()),
            deny: DenyList::default(),
            cache: VerifyCache::new(cache_capacity),
            issuer: issuer.to_owned(),
            audiences: audiences.iter().cloned().collect(),
            leeway_secs,
            clock,
        }
    }

    /// The trusted key set right now.
    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.load_full()
    }

    /// Replaces the trusted key set. The verifier actor is its only writer in a node.
    pub fn set_keys(&self, keys: KeySet) {
        self.keys.store(Arc::new(keys));
    }

    /// The verification cache.
    pub fn cache(&self) -> &VerifyCache {
        &self.cache
    }

    /// Verifies an access token presented to an API, with every check.
    pub fn verify_access(&self, token: &str) -> Result<Arc<AccessToken>, Rejection> {
        let Unverified {
            signed,
            digest,
            now,
        } = match self.lookup_access(token)? {
            Lookup::Cached(hit) => return Ok(hit),
            Lookup::Unverified(unverified) => *unverified,
        };
        if !signed.check.verify_one() {
            return Err(Rejection::BadSignature);
        }
        self.accept_access(signed.kid, &signed.claims, digest, now)
    }

    /// [`Self::verify_access`], with the signature checked in a batch together with the
    /// other tokens this worker thread is verifying at the same moment (see
    /// [`batch::verify`]). For the request path of an actix-web worker.
    pub async fn verify_access_batched(&self, token: &str) -> Result<Arc<AccessToken>, Rejection> {
        let Unverified {
            signed,
            digest,
            now,
        } = match self.lookup_access(token)? {
            Lookup::Cached(hit) => return Ok(hit),
            Lookup::Unverified(unverified) => *unverified,
        };
        let jws::Signed { kid, check, claims } = signed;
        if !batch::verify(check).await {
            return Err(Rejection::BadSignature);
        }
        self.accept_access(kid, &claims, digest, now)
    }

    /// The cache answer for `token`, or the parsed token whose signature is to be checked.
    fn lookup_access<'a>(&self, token: &'a str) -> Result<Lookup<'a>, Rejection> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Rejection::Oversized);
        }
        let digest = VerifyCache::digest(token);
        let now = self.clock.now_secs();
        if let Some(hit) = self.cache.get(&digest) {
            metrics::counter!(crate::metrics::VERIFY_CACHE, "result" => "hit").increment(1);
            return self.recheck(hit, &digest, now).map(Lookup::Cached);
        }
        metrics::counter!(crate::metrics::VERIFY_CACHE, "result" => "miss").increment(1);
        let signed = jws::parse(token, ACCESS_TYP, &self.keys.load())?;
        Ok(Lookup::Unverified(Box::new(Unverified {
            signed,
            digest,
            now,
        })))
    }

    /// The claim checks of an access token whose signature held, then the deny list;
    /// a token that passes is cached.
    fn accept_access(
        &self,
        kid: String,
        claims: &jws::EncodedClaims<'_>,
        digest: TokenDigest,
        now: u64,
    ) -> Result<Arc<AccessToken>, Rejection> {
        let claims = self.check_registered(claims.decode::<AccessExtra>()?, now)?;
        let audiences = audiences_of(&claims)?;
        if !audiences.iter().any(|a| self.audiences.contains(a)) {
            return Err(Rejection::WrongAudience);
        }
        let (jti, subject, issued_at, expires_at) = registered(&claims)?;
        let extra = claims.custom;
        if extra.client_id.is_empty() {
            return Err(Rejection::MissingClaim);
        }
        let verified = Arc::new(AccessToken {
            jti,
            subject,
            client_id: extra.client_id,
            scope: extra.scope,
            family: extra.sid,
            issued_at,
            expires_at,
            audiences,
            kid,
        });
        if self.deny.covers(&verified.facts()) {
            return Err(Rejection::Revoked);
        }
        self.cache.insert(digest, Arc::clone(&verified));
        Ok(verified)
    }

    /// Verifies a refresh token presented to the token endpoint. Whether its
    /// generation is still unspent is the issuer's question, not this one's.
    pub fn verify_refresh(&self, token: &str) -> Result<RefreshToken, Rejection> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Rejection::Oversized);
        }
        let now = self.clock.now_secs();
        let (_, claims) = self.verify_jws::<RefreshExtra>(token, REFRESH_TYP)?;
        let claims = self.check_registered(claims, now)?;
        if !audiences_of(&claims)?.iter().any(|a| a == &self.issuer) {
            return Err(Rejection::WrongAudience);
        }
        let (jti, subject, issued_at, expires_at) = registered(&claims)?;
        let extra = claims.custom;
        let facts = TokenFacts {
            jti: &jti,
            subject: &subject,
            client_id: &extra.client_id,
            family: Some(&extra.fam),
            issued_at,
        };
        if self.deny.covers(&facts) {
            return Err(Rejection::Revoked);
        }
        Ok(RefreshToken {
            jti,
            subject,
            extra,
            issued_at,
            expires_at,
        })
    }

    /// A cache hit is only as good as the checks that can change after verification.
    fn recheck(
        &self,
        hit: Arc<AccessToken>,
        digest: &TokenDigest,
        now: u64,
    ) -> Result<Arc<AccessToken>, Rejection> {
        if now > hit.expires_at + self.leeway_secs {
            self.cache.remove(digest);
            return Err(Rejection::Expired);
        }
        if !self.keys.load().contains(&hit.kid) {
            self.cache.remove(digest);
            return Err(Rejection::UnknownKey);
        }
        if self.deny.covers(&hit.facts()) {
            return Err(Rejection::Revoked);
        }
        Ok(hit)
    }

    /// Header checks (alg pinned, typ, known kid), then the signature.
    fn verify_jws<T: DeserializeOwned>(
        &self,
        token: &str,
        typ: &str,
    ) -> Result<(String, JWTClaims<T>), Rejection> {
        jws::verify(token, typ, &self.keys.load())
    }

    /// Time claims (all required, checked with the leeway), then the issuer.
    fn check_registered<T>(
        &self,
        claims: JWTClaims<T>,
        now: u64,
    ) -> Result<JWTClaims<T>, Rejection> {
        let (Some(exp), Some(iat), Some(nbf)) =
            (claims.expires_at, claims.issued_at, claims.invalid_before)
        else {
            return Err(Rejection::MissingClaim);
        };
        let leeway = self.leeway_secs;
        if now > exp.as_secs().saturating_add(leeway) {
            return Err(Rejection::Expired);
        }
        if nbf.as_secs() > now + leeway {
            return Err(Rejection::NotYetValid);
        }
        if iat.as_secs() > now + leeway {
            return Err(Rejection::IssuedInFuture);
        }
        if claims.issuer.as_deref() != Some(self.issuer.as_str()) {
            return Err(Rejection::WrongIssuer);
        }
        Ok(claims)
    }
}

fn registered<T>(claims: &JWTClaims<T>) -> Result<(String, String, u64, u64), Rejection> {
    let jti = claims
        .jwt_id
        .clone()
        .filter(|j| !j.is_empty())
        .ok_or(Rejection::MissingClaim)?;
    let sub = claims
        .subject
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or(Rejection::MissingClaim)?;
    let iat = claims.issued_at.ok_or(Rejection::MissingClaim)?.as_secs();
    let exp = claims.expires_at.ok_or(Rejection::MissingClaim)?.as_secs();
    Ok((jti, sub, iat, exp))
}

fn audiences_of<T>(claims: &JWTClaims<T>) -> Result<Vec<String>, Rejection> {
    match &claims.audiences {
        Some(Audiences::AsString(a)) => Ok(vec![a.clone()]),
        Some(Audiences::AsSet(set)) => Ok(set.iter().cloned().collect()),
        None => Err(Rejection::MissingClaim),
    }
}

#[cfg(test)]
mod tests;
