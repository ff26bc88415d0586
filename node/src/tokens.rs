//! Token formats: RFC 9068 access tokens and Portcullis refresh tokens, both EdDSA JWS.
//!
//! The two are told apart by their `typ` header (`at+jwt` and `rt+jwt`) and audience (the
//! API audiences and the issuer itself), so neither can be accepted as the other.
//! Refresh tokens are self-contained and carry their family and generation; only the
//! fact that a generation was spent needs to be stored, which is what lets a cluster
//! share refresh state as small records.

use std::collections::HashSet;

use jwt_simple::algorithms::{Ed25519KeyPair, EdDSAKeyPairLike};
use jwt_simple::claims::{Audiences, JWTClaims};
use jwt_simple::common::HeaderOptions;
use jwt_simple::prelude::Duration as JwtDuration;
use serde::{Deserialize, Serialize};

use crate::keys::KeyRecord;
use crate::secrets::random_id;

/// `typ` of an access token (RFC 9068 §2.1).
pub const ACCESS_TYP: &str = "at+jwt";
/// `typ` of a refresh token.
pub const REFRESH_TYP: &str = "rt+jwt";
/// Tokens longer than this are rejected before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The only signing algorithm accepted.
pub const ALG: &str = "EdDSA";

/// Claims an access token carries beyond the registered ones.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessExtra {
    /// The client the token was issued to.
    #[serde(default)]
    pub client_id: String,
    /// Granted scopes, space-separated.
    #[serde(default)]
    pub scope: String,
    /// The refresh family the token descends from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// Claims a refresh token carries beyond the registered ones.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshExtra {
    /// The client the family belongs to.
    pub client_id: String,
    /// Scopes of the family, space-separated.
    pub scope: String,
    /// The family id.
    pub fam: String,
    /// Position in the family: 0 for the password grant, +1 per refresh.
    pub gen: u32,
    /// Absolute end of the family, Unix seconds.
    pub fexp: u64,
}

/// What the issuer needs to mint a token pair.
#[derive(Debug, Clone)]
pub struct Grant {
    /// `sub`: the user, or the client for `client_credentials`.
    pub subject: String,
    /// `client_id`.
    pub client_id: String,
    /// Granted scopes, space-separated.
    pub scope: String,
}

/// One link of a refresh family: which family, which generation, until when.
#[derive(Debug, Clone, Copy)]
pub struct FamilyLink<'a> {
    /// The family id.
    pub family: &'a str,
    /// 0 for the password grant, +1 per refresh.
    pub generation: u32,
    /// Absolute end of the family, Unix seconds.
    pub expires_secs: u64,
}

/// The signing half of the current key, shared by every request handler.
pub struct Signer {
    key: Ed25519KeyPair,
    kid: String,
}

impl Signer {
    /// A signer for a key ring record.
    pub fn new(record: &KeyRecord) -> Self {
        let key = Ed25519KeyPair::from_bytes(&record.keypair_bytes())
            .expect("a key ring record always holds a valid Ed25519 key pair")
            .with_key_id(&record.kid);
        Self {
            key,
            kid: record.kid.clone(),
        }
    }

    /// The key id this signer puts in the header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Mints an access token valid from `now_secs` for `lifetime_secs`.
    pub fn access_token(
        &self,
        issuer: &str,
        audiences: &[String],
        grant: &Grant,
        family: Option<&str>,
        now_secs: u64,
        lifetime_secs: u64,
    ) -> String {
        let extra = AccessExtra {
            client_id: grant.client_id.clone(),
            scope: grant.scope.clone(),
            sid: family.map(str::to_owned),
        };
        let audiences = Audiences::AsSet(audiences.iter().cloned().collect::<HashSet<_>>());
        let claims = claims(
            issuer,
            &grant.subject,
            audiences,
            now_secs,
            lifetime_secs,
            extra,
        );
        self.sign(claims, ACCESS_TYP)
    }

    /// Mints the refresh token for `link`, addressed to the issuer itself. It never
    /// outlives its family.
    pub fn refresh_token(
        &self,
        issuer: &str,
        grant: &Grant,
        link: &FamilyLink<'_>,
        now_secs: u64,
        lifetime_secs: u64,
    ) -> String {
        let extra = RefreshExtra {
            client_id: grant.client_id.clone(),
            scope: grant.scope.clone(),
            fam: link.family.to_owned(),
            gen: link.generation,
            fexp: link.expires_secs,
        };
        let lifetime = lifetime_secs.min(link.expires_secs.saturating_sub(now_secs));
        let audience = Audiences::AsString(issuer.to_owned());
        let claims = claims(issuer, &grant.subject, audience, now_secs, lifetime, extra);
        self.sign(claims, REFRESH_TYP)
    }

    fn sign<T: Serialize>(&self, claims: JWTClaims<T>, typ: &str) -> String {
        let options = HeaderOptions {
            signature_type: Some(typ.to_owned()),
            ..HeaderOptions::default()
        };
        self.key
            .sign_with_options(claims, &options)
            .expect("signing serialisable claims with a valid key cannot fail")
    }
}

fn claims<T>(
    issuer: &str,
    subject: &str,
    audiences: Audiences,
    now_secs: u64,
    lifetime_secs: u64,
    custom: T,
) -> JWTClaims<T> {
    JWTClaims {
        issued_at: Some(JwtDuration::from_secs(now_secs)),
        expires_at: Some(JwtDuration::from_secs(now_secs + lifetime_secs)),
        invalid_before: Some(JwtDuration::from_secs(now_secs)),
        issuer: Some(issuer.to_owned()),
        subject: Some(subject.to_owned()),
        audiences: Some(audiences),
        jwt_id: Some(random_id()),
        nonce: None,
        custom,
    }
}
