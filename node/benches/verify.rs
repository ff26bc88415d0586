//! In-process benchmarks of the token hot paths, the bound the HTTP benchmark is judged by.
//!
//! Groups and what each one isolates (see `docs/benchmarks.md` for the figures):
//! - `raw/*`: one Ed25519 signature check over the signing input of a real access token
//!   (about 300 bytes), once with ed25519-dalek (`verify_strict`, what the verifier
//!   uses: the signature bound) and once with ed25519-compact, jwt-simple's backend.
//! - `raw_batch/*`: the gate's batch equation (`verifier::batch`) over 8, 32 and 64
//!   distinct tokens signed by one key, reported per signature.
//! - `jws/jwt_simple_verify_token`: jwt-simple's own decode + signature + claim checks,
//!   the verifier's former path, for comparison.
//! - `verify_access/*`: [`VerifyView::verify_access`], the whole strict path, once on
//!   distinct tokens with the cache disabled and once on a repeated token with the cache
//!   on (the usual case: a client reuses its token until it expires).
//! - `sign/access_token`: [`Signer::access_token`], the signing half of a grant.
//!
//! Every group reports elements per second (one element = one token or signature).

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use criterion::{black_box, BenchmarkGroup, Criterion};
use criterion::{measurement::WallTime, Throughput};
use ed25519_dalek::{Signature, VerifyingKey};
use jwt_simple::algorithms::{EdDSAKeyPairLike, EdDSAPublicKeyLike};
use jwt_simple::prelude::{Ed25519KeyPair, NoCustomClaims, VerificationOptions};
use portcullis::clock::{Clock, ManualClock};
use portcullis::issuer::Issuer;
use portcullis::keys::KeyRing;
use portcullis::tokens::{Grant, Signer};
use portcullis::verifier::batch::{self, SignatureCheck, MAX_BATCH};
use portcullis::verifier::{KeySet, PublishedKey, VerifyView};

const ISSUER: &str = "https://auth.bench";
const AUDIENCE: &str = "api";
/// Distinct tokens cycled through by the uncached benchmark; more than any cache would
/// ever see in one measurement, so the order never repeats in a way that helps.
const DISTINCT_TOKENS: usize = 4_096;
/// Access-token lifetime; the manual clock never moves, so tokens never expire.
const LIFETIME_SECS: u64 = 300;

/// A signer and the published form of its key, from one freshly created key ring.
struct Fixture {
    signer: Signer,
    /// The ring's keys as a verifier trusts them.
    published: Vec<PublishedKey>,
    /// The signing key pair (secret || public), the form jwt-simple loads.
    key_pair: [u8; 64],
    clock: ManualClock,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory can be created");
        let clock = ManualClock::new(1_700_000_000_000);
        let ring = KeyRing::load_or_create(dir.path(), clock.now_ms())
            .expect("a new key ring can be created in an empty directory");
        let record = ring
            .signing(clock.now_ms())
            .expect("a new key ring has a signing key");
        Self {
            signer: Signer::new(record),
            published: Issuer::published(&ring, "bench", clock.now_ms()),
            key_pair: record.keypair_bytes(),
            clock,
            _dir: dir,
        }
    }

    /// A verify view trusting the fixture's key, with a cache of `capacity` entries.
    fn view(&self, capacity: usize) -> VerifyView {
        let audiences = [AUDIENCE.to_owned()];
        let clock = Arc::new(self.clock.clone());
        let view = VerifyView::new(ISSUER, &audiences, 30, capacity, clock);
        view.set_keys(KeySet::new(self.published.clone()));
        view
    }

    fn access_token(&self) -> String {
        let grant = Grant {
            subject: "service-account".into(),
            client_id: "billing-worker".into(),
            scope: "orders:read orders:write".into(),
        };
        let now = self.clock.now_secs();
        let audiences = [AUDIENCE.to_owned()];
        self.signer
            .access_token(ISSUER, &audiences, &grant, None, now, LIFETIME_SECS)
    }
}

/// A compact JWS split into its signing input and decoded signature.
fn split_jws(token: &str) -> (&[u8], [u8; 64]) {
    let dot = token
        .rfind('.')
        .expect("a compact JWS has a signature part");
    let signature = URL_SAFE_NO_PAD
        .decode(&token[dot + 1..])
        .expect("the signature part is base64url");
    let signature = signature
        .try_into()
        .expect("an Ed25519 signature is 64 bytes");
    (&token.as_bytes()[..dot], signature)
}

fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    group
}

fn raw_signature(c: &mut Criterion) {
    let fixture = Fixture::new();
    let token = fixture.access_token();
    let (message, signature) = split_jws(&token);
    let mut group = group(c, "raw");

    let public: [u8; 32] = fixture.key_pair[32..]
        .try_into()
        .expect("the second half of a key pair is the 32-byte public key");
    let dalek = VerifyingKey::from_bytes(&public).expect("the ring's public key is valid");
    let dalek_signature = Signature::from_bytes(&signature);
    dalek
        .verify_strict(message, &dalek_signature)
        .expect("the node's own signature verifies");
    group.bench_function("ed25519_dalek_verify", |b| {
        b.iter(|| {
            dalek
                .verify_strict(black_box(message), black_box(&dalek_signature))
                .expect("the node's own signature verifies")
        })
    });

    // ed25519-compact is not a direct dependency; jwt-simple exposes its key types, and
    // its signature type is reached by inference, then overwritten with the token's own.
    let jwt_key = Ed25519KeyPair::from_bytes(&fixture.key_pair).expect("valid key pair bytes");
    let compact = jwt_key.key_pair().as_ref();
    let mut compact_signature = compact.sk.sign(message, None);
    compact_signature.copy_from_slice(&signature);
    group.bench_function("ed25519_compact_verify", |b| {
        b.iter(|| {
            compact
                .pk
                .verify(black_box(message), black_box(&compact_signature))
                .expect("the node's own signature verifies")
        })
    });
    group.finish();
}

/// The gate's batch equation over distinct tokens from one key, per signature.
fn raw_batch(c: &mut Criterion) {
    let fixture = Fixture::new();
    let public: [u8; 32] = fixture.key_pair[32..]
        .try_into()
        .expect("the second half of a key pair is the 32-byte public key");
    let key = VerifyingKey::from_bytes(&public).expect("the ring's public key is valid");
    let mut group = c.benchmark_group("raw_batch");
    for size in [8usize, 32, MAX_BATCH] {
        let checks: Vec<SignatureCheck> = (0..size)
            .map(|_| {
                let token = fixture.access_token();
                let (message, signature) = split_jws(&token);
                SignatureCheck {
                    message: message.to_vec(),
                    signature,
                    key,
                }
            })
            .collect();
        assert!(
            batch::verify_all(&checks),
            "the node's own signatures verify"
        );
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(format!("ed25519_batch_{size}"), |b| {
            b.iter(|| assert!(batch::verify_all(black_box(&checks))))
        });
    }
    group.finish();
}

fn jws_library(c: &mut Criterion) {
    let fixture = Fixture::new();
    let token = fixture.access_token();
    let jwt_key = Ed25519KeyPair::from_bytes(&fixture.key_pair).expect("valid key pair bytes");
    let public = jwt_key.public_key();
    let options = VerificationOptions {
        artificial_time: Some(jwt_simple::prelude::Duration::from_secs(
            fixture.clock.now_secs(),
        )),
        ..VerificationOptions::default()
    };
    let mut group = group(c, "jws");
    group.bench_function("jwt_simple_verify_token", |b| {
        b.iter(|| {
            public
                .verify_token::<NoCustomClaims>(black_box(&token), Some(options.clone()))
                .expect("the node's own token verifies")
        })
    });
    group.finish();
}

fn verify_access(c: &mut Criterion) {
    let fixture = Fixture::new();
    let mut group = group(c, "verify_access");

    let uncached = fixture.view(0);
    let tokens: Vec<String> = (0..DISTINCT_TOKENS)
        .map(|_| fixture.access_token())
        .collect();
    let mut next = tokens.iter().cycle();
    group.bench_function("distinct_tokens_no_cache", |b| {
        b.iter(|| {
            let token = next.next().expect("a cycle never ends");
            uncached
                .verify_access(black_box(token))
                .expect("a fresh token verifies")
        })
    });

    let cached = fixture.view(1_000);
    let token = fixture.access_token();
    group.bench_function("repeated_token_cached", |b| {
        b.iter(|| {
            cached
                .verify_access(black_box(&token))
                .expect("a fresh token verifies")
        })
    });
    group.finish();
}

fn sign_access(c: &mut Criterion) {
    let fixture = Fixture::new();
    let mut group = group(c, "sign");
    group.bench_function("access_token", |b| b.iter(|| fixture.access_token()));
    group.finish();
}

/// Short runs: the figures are stable to a few percent well within these bounds, and the
/// whole suite stays around a minute on a 2-core machine.
fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
}

// Written out rather than via `criterion_group!`, whose generated function has no doc
// comment for the workspace's `missing_docs` lint.
fn main() {
    let mut criterion = config().configure_from_args();
    raw_signature(&mut criterion);
    raw_batch(&mut criterion);
    jws_library(&mut criterion);
    verify_access(&mut criterion);
    sign_access(&mut criterion);
    criterion.final_summary();
}
