//! Batched Ed25519 verification for the gate.
//!
//! A `/v1/check` burst presents many distinct tokens at once, nearly all signed by the
//! same one or two keys. Checking them together costs far less than one by one: every
//! signature contributes one point to a single multi-scalar multiplication, and the
//! terms for a shared public key collapse into one. A batch that fails is re-checked one
//! signature at a time, so a forged token costs its sender's neighbours a second check
//! but never makes a good token fail.
//!
//! The batch keeps `verify_strict`'s refusals: a non-canonical `S`, a non-canonical or
//! small-order `R` and a small-order key are refused before the equation is formed. The
//! equation is the cofactorless one `verify_strict` uses, weighted by random 128-bit
//! scalars. It can differ from the single check only for a signature whose `R` carries a
//! torsion component, and only a holder of the private key can produce one of those.
//!
//! [`verify`] is the request-path entry: it queues a check on the worker thread and
//! runs the queue once every request that was ready in the same scheduler pass has
//! joined it, so under light load a batch is one signature checked the ordinary way.

use std::cell::RefCell;
use std::rc::Rc;

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_dalek::{Signature, VerifyingKey};
use rand::RngCore;
use sha2::{Digest, Sha512};
use tokio::sync::oneshot;

use crate::metrics as m;

/// Most signatures checked in one equation. Larger batches gain little per signature
/// and hold the worker thread longer.
pub const MAX_BATCH: usize = 64;

/// One signature to check: the signing input, the signature and the key it names.
pub struct SignatureCheck {
    /// The JWS signing input (`header.claims`).
    pub message: Vec<u8>,
    /// `R || S`.
    pub signature: [u8; 64],
    /// The trusted key the token's `kid` names.
    pub key: VerifyingKey,
}

impl SignatureCheck {
    /// The ordinary single-signature check.
    pub fn verify_one(&self) -> bool {
        self.key
            .verify_strict(&self.message, &Signature::from_bytes(&self.signature))
            .is_ok()
    }
}

/// Whether every signature in `checks` is valid (true for an empty batch).
pub fn verify_all(checks: &[SignatureCheck]) -> bool {
    let mut rng = rand::thread_rng();
    let mut scalars = Vec::with_capacity(checks.len() + 3);
    let mut points = Vec::with_capacity(checks.len() + 3);
    // Coefficient of the base point, and one coefficient per distinct key.
    let mut base = Scalar::ZERO;
    let mut keys: Vec<(&VerifyingKey, Scalar)> = Vec::with_capacity(2);

    for check in checks {
        let Some(term) = Term::parse(check) else {
            return false;
        };
        let weight = random_weight(&mut rng);
        base += weight * term.s;
        scalars.push(weight);
        points.push(term.r);
        let key_coefficient = weight * term.challenge;
        match keys.iter_mut().find(|(key, _)| *key == &check.key) {
            Some((_, coefficient)) => *coefficient += key_coefficient,
            None => keys.push((&check.key, key_coefficient)),
        }
    }

    scalars.push(-base);
    points.push(ED25519_BASEPOINT_POINT);
    for (key, coefficient) in keys {
        scalars.push(coefficient);
        points.push(key.to_edwards());
    }
    EdwardsPoint::vartime_multiscalar_mul(scalars, points).is_identity()
}

/// Each signature's validity: one batch equation when they all hold, one check each
/// when any fails.
pub fn verify_each(checks: &[SignatureCheck]) -> Vec<bool> {
    match checks {
        [] => Vec::new(),
        [one] => vec![one.verify_one()],
        _ if verify_all(checks) => vec![true; checks.len()],
        _ => {
            metrics::counter!(m::VERIFY_BATCH_FALLBACKS).increment(1);
            checks.iter().map(SignatureCheck::verify_one).collect()
        }
    }
}

/// What one signature contributes to the batch equation
/// `Σ zᵢ·Rᵢ + Σ zᵢ·kᵢ·A − (Σ zᵢ·sᵢ)·B = 0`.
struct Term {
    r: EdwardsPoint,
    s: Scalar,
    /// `k = SHA-512(R || A || M) mod ℓ`.
    challenge: Scalar,
}

impl Term {
    /// The signature's parts, or `None` where `verify_strict` would refuse it outright.
    fn parse(check: &SignatureCheck) -> Option<Self> {
        let (r_bytes, s_bytes) = check.signature.split_at(32);
        let r_bytes: [u8; 32] = r_bytes.try_into().ok()?;
        let s: Option<Scalar> = Scalar::from_canonical_bytes(s_bytes.try_into().ok()?).into();
        let s = s?;
        if !is_canonical_y(&r_bytes) || check.key.is_weak() {
            return None;
        }
        let r = CompressedEdwardsY(r_bytes).decompress()?;
        if r.is_small_order() {
            return None;
        }
        let digest = Sha512::new()
            .chain_update(r_bytes)
            .chain_update(check.key.as_bytes())
            .chain_update(&check.message)
            .finalize();
        let challenge = Scalar::from_bytes_mod_order_wide(&digest.into());
        Some(Self { r, s, challenge })
    }
}

/// Whether the encoded y coordinate is below p = 2²⁵⁵ − 19. The single check refuses a
/// non-canonical `R` by comparing encodings; the batch decompresses `R`, which would
/// accept one, so it is refused here. (The sign bit of an x = 0 point can also be
/// non-canonical, but those points have small order and are refused anyway.)
fn is_canonical_y(encoded: &[u8; 32]) -> bool {
    let top = encoded[31] & 0x7f;
    let middle_all_ones = encoded[1..31].iter().all(|&b| b == 0xff);
    !(top == 0x7f && middle_all_ones && encoded[0] >= 0xed)
}

/// A uniformly random 128-bit weight, unpredictable to whoever chose the signatures.
fn random_weight(rng: &mut impl RngCore) -> Scalar {
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes[..16]);
    Scalar::from_bytes_mod_order(bytes)
}

/// Checks waiting on this worker thread for the next batch.
struct Job {
    check: SignatureCheck,
    answer: oneshot::Sender<bool>,
}

thread_local! {
    static QUEUE: Rc<RefCell<Vec<Job>>> = Rc::new(RefCell::new(Vec::new()));
}

/// Checks `check` together with whatever else this worker thread is checking now.
///
/// Must run inside a local task set (every actix-web worker is one): the first check to
/// arrive spawns the task that runs the batch.
pub async fn verify(check: SignatureCheck) -> bool {
    let (answer, result) = oneshot::channel();
    let queue = QUEUE.with(Rc::clone);
    let first = {
        let mut jobs = queue.borrow_mut();
        jobs.push(Job { check, answer });
        jobs.len() == 1
    };
    if first {
        tokio::task::spawn_local(run_queue(queue));
    }
    // The runner answers every job it takes; a dropped sender would mean it panicked.
    result.await.unwrap_or(false)
}

/// Lets every request already runnable on this thread join the queue, then checks the
/// queue in batches of at most [`MAX_BATCH`].
async fn run_queue(queue: Rc<RefCell<Vec<Job>>>) {
    tokio::task::yield_now().await;
    let jobs = std::mem::take(&mut *queue.borrow_mut());
    let mut jobs = jobs.into_iter().peekable();
    while jobs.peek().is_some() {
        let (checks, answers): (Vec<_>, Vec<_>) = jobs
            .by_ref()
            .take(MAX_BATCH)
            .map(|job| (job.check, job.answer))
            .unzip();
        metrics::histogram!(m::VERIFY_BATCH_SIZE).record(checks.len() as f64);
        #[cfg(test)]
        tests::BATCH_SIZES.with(|sizes| sizes.borrow_mut().push(checks.len()));
        for (answer, valid) in answers.into_iter().zip(verify_each(&checks)) {
            // The request may have gone away meanwhile; nothing to tell it then.
            let _ = answer.send(valid);
        }
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    thread_local! {
        /// The size of every batch [`run_queue`] ran on this thread.
        pub(super) static BATCH_SIZES: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    }

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn check(signer: &SigningKey, message: &str) -> SignatureCheck {
        SignatureCheck {
            message: message.as_bytes().to_vec(),
            signature: signer.sign(message.as_bytes()).to_bytes(),
            key: signer.verifying_key(),
        }
    }

    fn batch(count: usize) -> Vec<SignatureCheck> {
        let (a, b) = (key(1), key(2));
        (0..count)
            .map(|i| check(if i % 3 == 0 { &b } else { &a }, &format!("token {i}")))
            .collect()
    }

    #[test]
    fn accepts_a_batch_of_valid_signatures_from_two_keys() {
        let checks = batch(40);
        assert!(verify_all(&checks));
        assert_eq!(verify_each(&checks), vec![true; 40]);
    }

    #[test]
    fn singles_out_the_forged_signature_in_a_failing_batch() {
        let mut checks = batch(10);
        checks[4].message = b"token 4, altered".to_vec();
        checks[7].key = key(3).verifying_key();
        assert!(!verify_all(&checks));
        let expected: Vec<bool> = (0..10).map(|i| i != 4 && i != 7).collect();
        assert_eq!(verify_each(&checks), expected);
    }

    #[test]
    fn refuses_a_non_canonical_s() {
        let mut checks = batch(3);
        // S + ℓ verifies under the plain equation but is malleated.
        let s =
            Scalar::from_canonical_bytes(checks[1].signature[32..].try_into().expect("32 bytes"))
                .expect("a signature's S is canonical");
        let mut s_plus_l = s.to_bytes();
        add_group_order(&mut s_plus_l);
        checks[1].signature[32..].copy_from_slice(&s_plus_l);
        assert!(!verify_all(&checks));
        assert!(!checks[1].verify_one());
    }

    #[test]
    fn refuses_a_small_order_r_and_a_weak_key() {
        let identity = CompressedEdwardsY::from_slice(&{
            let mut y = [0u8; 32];
            y[0] = 1;
            y
        })
        .expect("32 bytes");
        let mut checks = batch(3);
        checks[0].signature[..32].copy_from_slice(identity.as_bytes());
        assert!(!verify_all(&checks));

        let mut checks = batch(3);
        checks[2].key =
            VerifyingKey::from_bytes(identity.as_bytes()).expect("the identity decodes");
        assert!(!verify_all(&checks));
    }

    #[test]
    fn refuses_a_non_canonical_r_encoding() {
        // y = p + 1 decodes to the same point as y = 1 but is not its encoding.
        let mut encoded = [0xffu8; 32];
        encoded[0] = 0xee;
        encoded[31] = 0x7f;
        assert!(!is_canonical_y(&encoded));
        let mut canonical = [0u8; 32];
        canonical[0] = 0xec;
        canonical[1..31].fill(0xff);
        canonical[31] = 0x7f;
        assert!(is_canonical_y(&canonical));
        let mut checks = batch(2);
        checks[0].signature[..32].copy_from_slice(&encoded);
        assert!(!verify_all(&checks));
    }

    #[actix_web::test]
    async fn concurrent_checks_on_one_thread_share_a_batch() {
        let checks = batch(70);
        let mut forged = check(&key(1), "token x");
        forged.message = b"token y".to_vec();
        let all = checks.into_iter().chain(std::iter::once(forged));
        let results = futures_util::future::join_all(all.map(verify)).await;
        let mut expected = vec![true; 70];
        expected.push(false);
        assert_eq!(results, expected);
        let sizes = BATCH_SIZES.with(|sizes| sizes.borrow().clone());
        assert_eq!(sizes, vec![MAX_BATCH, 71 - MAX_BATCH]);

        // Alone, a check is a batch of one.
        assert!(verify(check(&key(1), "alone")).await);
        let sizes = BATCH_SIZES.with(|sizes| sizes.borrow().clone());
        assert_eq!(sizes.last(), Some(&1));
    }

    /// Adds ℓ = 2²⁵² + 27742317777372353535851937790883648493 to a little-endian value.
    fn add_group_order(bytes: &mut [u8; 32]) {
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut carry = 0u16;
        for (byte, l) in bytes.iter_mut().zip(L) {
            let sum = u16::from(*byte) + u16::from(l) + carry;
            *byte = sum as u8;
            carry = sum >> 8;
        }
    }
}
