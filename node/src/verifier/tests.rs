//! Tests of strict verification: each rejection class, and what a cache hit still checks.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwt_simple::algorithms::{HS256Key, MACLike};
use jwt_simple::claims::Claims;

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::issuer::Issuer;
use crate::keys::KeyRing;
use crate::revocation::{Reason, Revocation, Target};
use crate::tokens::{FamilyLink, Grant, Signer};

const ISSUER: &str = "https://auth.test";

struct Fixture {
    view: VerifyView,
    signer: Signer,
    clock: ManualClock,
    public: [u8; 32],
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_700_000_000_000);
    let ring = KeyRing::load_or_create(dir.path(), clock.now_ms()).expect("key ring");
    let record = ring.signing(clock.now_ms()).expect("signing key");
    let view = VerifyView::new(ISSUER, &["api".into()], 30, 100, Arc::new(clock.clone()));
    view.set_keys(KeySet::new(Issuer::published(&ring, "n1", clock.now_ms())));
    Fixture {
        signer: Signer::new(record),
        public: record.public_key(),
        view,
        clock,
        _dir: dir,
    }
}

fn grant() -> Grant {
    Grant {
        subject: "alice".into(),
        client_id: "web".into(),
        scope: "read".into(),
    }
}

impl Fixture {
    fn access(&self) -> String {
        let now = self.clock.now_secs();
        self.signer
            .access_token(ISSUER, &["api".into()], &grant(), Some("fam"), now, 300)
    }

    fn refresh(&self) -> String {
        let now = self.clock.now_secs();
        let link = FamilyLink {
            family: "fam",
            generation: 0,
            expires_secs: now + 3600,
        };
        self.signer.refresh_token(ISSUER, &grant(), &link, now, 600)
    }

    /// A token with our header and signature over arbitrary header and claims.
    fn forged(&self, header: serde_json::Value, claims: serde_json::Value) -> String {
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        let c = URL_SAFE_NO_PAD.encode(claims.to_string());
        format!("{h}.{c}.{}", URL_SAFE_NO_PAD.encode([0u8; 64]))
    }
}

#[test]
fn accepts_a_fresh_access_token_and_reports_its_claims() {
    let f = fixture();
    let token = f.view.verify_access(&f.access()).expect("valid");
    assert_eq!(token.subject, "alice");
    assert_eq!(token.client_id, "web");
    assert_eq!(token.family.as_deref(), Some("fam"));
    assert!(token.has_scope("read"));
}

#[test]
fn rejects_alg_none_and_hs256_signed_with_the_public_key() {
    let f = fixture();
    let kid = f.signer.kid().to_owned();
    let claims = serde_json::json!({"iss": ISSUER, "sub": "mallory", "aud": "api"});
    let none = f.forged(
        serde_json::json!({"alg": "none", "typ": "at+jwt", "kid": kid}),
        claims,
    );
    assert_eq!(
        f.view.verify_access(&none).err(),
        Some(Rejection::UnsupportedAlg)
    );

    let hmac = HS256Key::from_bytes(&f.public).with_key_id(&kid);
    let claims = Claims::create(jwt_simple::prelude::Duration::from_mins(5))
        .with_issuer(ISSUER)
        .with_audience("api")
        .with_subject("mallory");
    let hs256 = hmac.authenticate(claims).expect("hmac signs");
    assert_eq!(
        f.view.verify_access(&hs256).err(),
        Some(Rejection::UnsupportedAlg)
    );
}

#[test]
fn rejects_wrong_type_unknown_key_and_bad_signature() {
    let f = fixture();
    assert_eq!(
        f.view.verify_access(&f.refresh()).err(),
        Some(Rejection::WrongType)
    );
    assert_eq!(
        f.view.verify_refresh(&f.access()).err(),
        Some(Rejection::WrongType)
    );

    let claims = serde_json::json!({"iss": ISSUER});
    let unknown = f.forged(
        serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "nope"}),
        claims.clone(),
    );
    assert_eq!(
        f.view.verify_access(&unknown).err(),
        Some(Rejection::UnknownKey)
    );
    let no_kid = f.forged(
        serde_json::json!({"alg": "EdDSA", "typ": "at+jwt"}),
        claims.clone(),
    );
    assert_eq!(
        f.view.verify_access(&no_kid).err(),
        Some(Rejection::UnknownKey)
    );
    let header = serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": f.signer.kid()});
    assert_eq!(
        f.view.verify_access(&f.forged(header, claims)).err(),
        Some(Rejection::BadSignature)
    );

    let mut tampered = f.access().into_bytes();
    let dot = tampered.iter().position(|&b| b == b'.').expect("has a dot");
    tampered[dot + 5] ^= 1;
    let tampered = String::from_utf8(tampered).expect("still ascii");
    assert!(f.view.verify_access(&tampered).is_err());
}

#[test]
fn rejects_malformed_and_oversized_tokens_before_verifying() {
    let f = fixture();
    for junk in ["", "abc", "a.b", "a.b.c.d", "!!!.???.***"] {
        assert_eq!(
            f.view.verify_access(junk).err(),
            Some(Rejection::Malformed),
            "{junk}"
        );
    }
    let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
    assert_eq!(
        f.view.verify_access(&huge).err(),
        Some(Rejection::Oversized)
    );
}

#[test]
fn honours_expiry_and_not_before_with_leeway() {
    let f = fixture();
    let token = f.access();
    f.clock.advance(Duration::from_secs(300 + 30));
    assert!(f.view.verify_access(&token).is_ok(), "inside the leeway");
    f.clock.advance(Duration::from_secs(1));
    assert_eq!(f.view.verify_access(&token).err(), Some(Rejection::Expired));

    let early = {
        let now = f.clock.now_secs() + 120;
        f.signer
            .access_token(ISSUER, &["api".into()], &grant(), None, now, 300)
    };
    let rejected = f.view.verify_access(&early).err();
    assert!(matches!(
        rejected,
        Some(Rejection::NotYetValid | Rejection::IssuedInFuture)
    ));
}

#[test]
fn rejects_foreign_issuer_and_audience() {
    let f = fixture();
    let now = f.clock.now_secs();
    let foreign = f
        .signer
        .access_token("https://evil", &["api".into()], &grant(), None, now, 60);
    assert_eq!(
        f.view.verify_access(&foreign).err(),
        Some(Rejection::WrongIssuer)
    );
    let other_api = f
        .signer
        .access_token(ISSUER, &["other".into()], &grant(), None, now, 60);
    assert_eq!(
        f.view.verify_access(&other_api).err(),
        Some(Rejection::WrongAudience)
    );
}

#[test]
fn a_cached_token_is_still_refused_once_revoked_or_expired() {
    let f = fixture();
    let token = f.access();
    f.view.verify_access(&token).expect("valid");
    assert_eq!(f.view.cache().len(), 1);
    f.view.verify_access(&token).expect("served from cache");

    f.view.deny.insert(Revocation {
        target: Target::Family {
            family: "fam".into(),
        },
        reason: Reason::Admin,
        created_ms: 0,
        expires_ms: u64::MAX,
    });
    assert_eq!(f.view.verify_access(&token).err(), Some(Rejection::Revoked));

    let other = {
        let now = f.clock.now_secs();
        f.signer
            .access_token(ISSUER, &["api".into()], &grant(), None, now, 300)
    };
    f.view.verify_access(&other).expect("valid");
    f.clock.advance(Duration::from_secs(400));
    assert_eq!(f.view.verify_access(&other).err(), Some(Rejection::Expired));
}

#[test]
fn a_cached_token_is_refused_once_its_key_is_gone() {
    let f = fixture();
    let token = f.access();
    f.view.verify_access(&token).expect("valid");
    f.view.set_keys(KeySet::default());
    assert_eq!(
        f.view.verify_access(&token).err(),
        Some(Rejection::UnknownKey)
    );
}

#[test]
fn rejects_critical_headers_padding_and_truncated_signatures() {
    let f = fixture();
    let genuine = f.access();
    let (header_b64, rest) = genuine.split_once('.').expect("compact JWS");
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header_b64).expect("b64")).expect("json");

    let mut crit = header.clone();
    crit["crit"] = serde_json::json!(["exp"]);
    let with_crit = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(crit.to_string()));
    assert_eq!(
        f.view.verify_access(&with_crit).err(),
        Some(Rejection::Malformed)
    );

    let padded = format!("{header_b64}=.{rest}");
    assert_eq!(
        f.view.verify_access(&padded).err(),
        Some(Rejection::Malformed)
    );

    let (signed, signature) = genuine.rsplit_once('.').expect("three parts");
    let short = format!("{signed}.{}", &signature[..signature.len() - 4]);
    assert_eq!(
        f.view.verify_access(&short).err(),
        Some(Rejection::BadSignature)
    );
    assert!(f.view.verify_access(&genuine).is_ok());
}
