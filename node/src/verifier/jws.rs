//! Compact JWS parsing and EdDSA signature verification.
//!
//! jwt-simple signs our tokens, but verification is done here with ed25519-dalek: its
//! curve backend is markedly faster on this path (see docs/benchmarks.md), and the
//! checks are ours anyway. The order is fixed so that nothing expensive happens before
//! the cheap refusals: split, header (algorithm pinned to EdDSA, `typ`, no `crit`, a
//! known `kid`), signature (`verify_strict`, which refuses small-order keys and
//! non-canonical signatures, alone or in a [`super::batch`]), and only then the claims
//! are decoded.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwt_simple::claims::JWTClaims;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::batch::SignatureCheck;
use super::{KeySet, Rejection};
use crate::tokens::ALG;

/// Longest encoded header considered.
const MAX_HEADER_B64: usize = 1024;

/// The header fields we act on; anything else in the header is ignored.
#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Vec<String>>,
}

/// A compact JWS whose header passed every check and whose signature is still to be
/// checked.
pub struct Signed<'a> {
    /// The `kid` it names, a key in the trusted set.
    pub kid: String,
    /// The signature check, ready to run alone or in a batch.
    pub check: SignatureCheck,
    /// The claims, decoded only once the signature holds.
    pub claims: EncodedClaims<'a>,
}

/// The base64url claims segment of a JWS.
pub struct EncodedClaims<'a>(&'a str);

impl EncodedClaims<'_> {
    /// The decoded (not yet validated) claims. Call only after the signature held.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<JWTClaims<T>, Rejection> {
        decode_json(self.0)
    }
}

/// Verifies `token` as a JWS of type `typ` signed by a key in `keys`. Returns the `kid`
/// and the decoded (not yet validated) claims.
pub fn verify<T: DeserializeOwned>(
    token: &str,
    typ: &str,
    keys: &KeySet,
) -> Result<(String, JWTClaims<T>), Rejection> {
    let signed = parse(token, typ, keys)?;
    if !signed.check.verify_one() {
        return Err(Rejection::BadSignature);
    }
    let claims = signed.claims.decode()?;
    Ok((signed.kid, claims))
}

/// Splits `token` and checks its header: algorithm pinned to EdDSA, `typ`, no `crit`,
/// a `kid` in `keys`, a signature of the right length. The signature itself is left to
/// the caller.
pub fn parse<'a>(token: &'a str, typ: &str, keys: &KeySet) -> Result<Signed<'a>, Rejection> {
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejection::Malformed);
    };
    if header_b64.len() > MAX_HEADER_B64 {
        return Err(Rejection::Malformed);
    }
    let header: Header = decode_json(header_b64)?;
    // We understand no extension, and RFC 7515 forbids an empty list: any `crit` fails.
    if header.crit.is_some() {
        return Err(Rejection::Malformed);
    }
    if header.alg != ALG {
        return Err(Rejection::UnsupportedAlg);
    }
    let typ_ok = header.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case(typ)
            || t.strip_prefix("application/")
                .is_some_and(|t| t.eq_ignore_ascii_case(typ))
    });
    if !typ_ok {
        return Err(Rejection::WrongType);
    }
    let kid = header.kid.ok_or(Rejection::UnknownKey)?;
    let key = *keys.get(&kid).ok_or(Rejection::UnknownKey)?;

    let mut signature = [0u8; 64];
    let decoded = URL_SAFE_NO_PAD
        .decode_slice(signature_b64, &mut signature)
        .map_err(|_| Rejection::BadSignature)?;
    if decoded != signature.len() {
        return Err(Rejection::BadSignature);
    }
    let signing_input = &token[..header_b64.len() + 1 + claims_b64.len()];
    Ok(Signed {
        kid,
        check: SignatureCheck {
            message: signing_input.as_bytes().to_vec(),
            signature,
            key,
        },
        claims: EncodedClaims(claims_b64),
    })
}

fn decode_json<T: DeserializeOwned>(segment: &str) -> Result<T, Rejection> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| Rejection::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| Rejection::Malformed)
}
