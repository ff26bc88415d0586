//! Sealing gossip datagrams: XChaCha20-Poly1305 under a key derived from the cluster
//! secret, a timestamp against replay, and fragmentation so that sealing never pushes a
//! full chitchat delta past the 65,507-byte UDP payload limit.
//!
//! A sealed message is `nonce (24) || AEAD(key, nonce, aad = cluster tag,
//! plaintext = sent_at_ms (8) || chitchat envelope)`. It travels in one or more frames:
//! `magic "PCG1" (4) || message id (4) || index (1) || count (1) || bytes`. Frames carry
//! no authentication of their own; the reassembled message is authenticated whole, so a
//! forged or mixed-up frame only makes its message fail to open.

use std::collections::VecDeque;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Largest UDP payload over IPv4.
pub const MAX_DATAGRAM: usize = 65_507;
const MAGIC: &[u8; 4] = b"PCG1";
const FRAME_HEADER: usize = 10;
const NONCE: usize = 24;
const TAG: usize = 16;
const TIMESTAMP: usize = 8;
/// Most frames one message may span; chitchat's own payload is at most one datagram,
/// so two always suffice. The margin bounds reassembly memory.
const MAX_FRAMES: usize = 4;
/// Partially received messages kept at once; the oldest is dropped beyond this.
const MAX_PARTIAL: usize = 64;

/// Why an incoming datagram was dropped. Each variant is a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// Not a frame of ours: wrong magic, bad header, impossible sizes.
    #[error("malformed frame")]
    Malformed,
    /// The message did not authenticate: wrong secret, wrong cluster or tampered.
    #[error("authentication failed")]
    BadMac,
    /// Authentic, but sent too long ago or too far in the future.
    #[error("outside the replay window")]
    Stale,
    /// Authentic and recent, but seen before.
    #[error("replayed")]
    Replayed,
    /// Authentic, but the chitchat payload does not decode.
    #[error("undecodable payload")]
    Undecodable,
}

impl Rejected {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::BadMac => "bad_mac",
            Self::Stale => "stale",
            Self::Replayed => "replayed",
            Self::Undecodable => "undecodable",
        }
    }
}

/// The cluster's shared key and the tag binding messages to one cluster id.
pub struct Sealer {
    cipher: XChaCha20Poly1305,
    cluster_tag: [u8; 32],
}

impl Sealer {
    /// Derives the key from the cluster secret; messages are bound to `cluster_id`.
    pub fn new(secret: &[u8], cluster_id: &str) -> Self {
        let key: [u8; 32] = Sha256::new()
            .chain_update(b"portcullis gossip key v1\0")
            .chain_update(secret)
            .finalize()
            .into();
        let cluster_tag = Sha256::new()
            .chain_update(b"portcullis cluster id v1\0")
            .chain_update(cluster_id.as_bytes())
            .finalize()
            .into();
        Self {
            cipher: XChaCha20Poly1305::new(&key.into()),
            cluster_tag,
        }
    }

    /// Seals `payload` sent at `now_ms` and splits it into datagrams.
    pub fn seal(&self, payload: &[u8], now_ms: u64, message_id: u32) -> Vec<Vec<u8>> {
        frames(&self.seal_message(payload, now_ms), message_id)
    }

    /// Seals `payload` as one message (`nonce || ciphertext`), for HTTP bodies.
    pub fn seal_message(&self, payload: &[u8], now_ms: u64) -> Vec<u8> {
        let mut nonce = [0u8; NONCE];
        rand::thread_rng().fill_bytes(&mut nonce);
        let mut plaintext = Vec::with_capacity(TIMESTAMP + payload.len());
        plaintext.extend_from_slice(&now_ms.to_le_bytes());
        plaintext.extend_from_slice(payload);
        let aead = Payload {
            msg: &plaintext,
            aad: &self.cluster_tag,
        };
        let ciphertext = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), aead)
            .expect("XChaCha20-Poly1305 encrypts any message under 256 GiB");
        let mut sealed = Vec::with_capacity(NONCE + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// Opens a reassembled message: returns its nonce, send time and payload.
    pub fn open(&self, sealed: &[u8]) -> Result<([u8; NONCE], u64, Vec<u8>), Rejected> {
        if sealed.len() < NONCE + TAG + TIMESTAMP {
            return Err(Rejected::Malformed);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE);
        let aead = Payload {
            msg: ciphertext,
            aad: &self.cluster_tag,
        };
        let plaintext = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), aead)
            .map_err(|_| Rejected::BadMac)?;
        let (sent_at, payload) = plaintext.split_at(TIMESTAMP);
        let sent_at = u64::from_le_bytes(sent_at.try_into().expect("split at 8"));
        let nonce: [u8; NONCE] = nonce.try_into().expect("split at 24");
        Ok((nonce, sent_at, payload.to_vec()))
    }
}

/// Largest sealed message: one full chitchat datagram plus our overhead, framed.
pub const MAX_SEALED: usize = MAX_FRAMES * (MAX_DATAGRAM - FRAME_HEADER);

fn frames(sealed: &[u8], message_id: u32) -> Vec<Vec<u8>> {
    let chunk = MAX_DATAGRAM - FRAME_HEADER;
    let count = sealed.len().div_ceil(chunk).max(1);
    sealed
        .chunks(chunk)
        .enumerate()
        .map(|(index, bytes)| {
            let mut frame = Vec::with_capacity(FRAME_HEADER + bytes.len());
            frame.extend_from_slice(MAGIC);
            frame.extend_from_slice(&message_id.to_le_bytes());
            frame.push(index as u8);
            frame.push(count as u8);
            frame.extend_from_slice(bytes);
            frame
        })
        .collect()
}

/// One partially received message.
struct Partial {
    from: std::net::SocketAddr,
    message_id: u32,
    parts: Vec<Option<Vec<u8>>>,
}

/// Reassembles frames into sealed messages, with bounded memory.
#[derive(Default)]
pub struct Reassembler {
    partial: VecDeque<Partial>,
}

impl Reassembler {
    /// Accepts one datagram; returns a complete sealed message when one is ready.
    pub fn push(
        &mut self,
        from: std::net::SocketAddr,
        datagram: &[u8],
    ) -> Result<Option<Vec<u8>>, Rejected> {
        if datagram.len() <= FRAME_HEADER || &datagram[..4] != MAGIC {
            return Err(Rejected::Malformed);
        }
        let message_id = u32::from_le_bytes(datagram[4..8].try_into().expect("4 bytes"));
        let (index, count) = (datagram[8] as usize, datagram[9] as usize);
        if count == 0 || count > MAX_FRAMES || index >= count {
            return Err(Rejected::Malformed);
        }
        let bytes = &datagram[FRAME_HEADER..];
        if count == 1 {
            return Ok(Some(bytes.to_vec()));
        }
        let slot = self
            .partial
            .iter()
            .position(|p| p.from == from && p.message_id == message_id);
        let slot = match slot {
            Some(slot) => slot,
            None => {
                if self.partial.len() == MAX_PARTIAL {
                    self.partial.pop_front();
                }
                self.partial.push_back(Partial {
                    from,
                    message_id,
                    parts: vec![None; count],
                });
                self.partial.len() - 1
            }
        };
        let partial = &mut self.partial[slot];
        if partial.parts.len() != count {
            return Err(Rejected::Malformed);
        }
        partial.parts[index] = Some(bytes.to_vec());
        if partial.parts.iter().any(Option::is_none) {
            return Ok(None);
        }
        let done = self.partial.remove(slot).expect("slot exists");
        Ok(Some(done.parts.into_iter().flatten().flatten().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> std::net::SocketAddr {
        "127.0.0.1:9".parse().expect("addr")
    }

    #[test]
    fn seals_and_opens_a_small_message_in_one_frame() {
        let sealer = Sealer::new(b"secret", "c1");
        let frames = sealer.seal(b"hello", 42, 7);
        assert_eq!(frames.len(), 1);
        let sealed = Reassembler::default()
            .push(addr(), &frames[0])
            .expect("ok")
            .expect("whole");
        let (_, sent_at, payload) = sealer.open(&sealed).expect("opens");
        assert_eq!((sent_at, payload.as_slice()), (42, &b"hello"[..]));
    }

    #[test]
    fn a_full_chitchat_datagram_plus_overhead_fits_in_two_frames() {
        let sealer = Sealer::new(b"secret", "c1");
        let payload = vec![0xab; MAX_DATAGRAM];
        let frames = sealer.seal(&payload, 1, 1);
        assert_eq!(frames.len(), 2);
        assert!(frames.iter().all(|f| f.len() <= MAX_DATAGRAM));
        let mut reassembler = Reassembler::default();
        assert_eq!(
            reassembler.push(addr(), &frames[1]),
            Ok(None),
            "out of order is fine"
        );
        let sealed = reassembler
            .push(addr(), &frames[0])
            .expect("ok")
            .expect("whole");
        assert_eq!(sealer.open(&sealed).expect("opens").2, payload);
    }

    #[test]
    fn another_secret_or_cluster_cannot_open_and_tampering_is_detected() {
        let sealer = Sealer::new(b"secret", "c1");
        let frames = sealer.seal(b"revoke everything", 1, 1);
        let sealed = &frames[0][FRAME_HEADER..];
        assert_eq!(
            Sealer::new(b"guess", "c1").open(sealed).err(),
            Some(Rejected::BadMac)
        );
        assert_eq!(
            Sealer::new(b"secret", "c2").open(sealed).err(),
            Some(Rejected::BadMac)
        );
        let mut tampered = sealed.to_vec();
        tampered[NONCE + 3] ^= 1;
        assert_eq!(sealer.open(&tampered).err(), Some(Rejected::BadMac));
    }

    #[test]
    fn garbage_frames_are_malformed_and_partials_are_bounded() {
        let mut reassembler = Reassembler::default();
        assert_eq!(
            reassembler.push(addr(), b"nonsense"),
            Err(Rejected::Malformed)
        );
        let mut frame = b"PCG1\x01\x00\x00\x00\x05\x02xx".to_vec();
        assert_eq!(
            reassembler.push(addr(), &frame),
            Err(Rejected::Malformed),
            "index >= count"
        );
        for id in 0..1000u32 {
            frame[4..8].copy_from_slice(&id.to_le_bytes());
            frame[8] = 0;
            assert_eq!(reassembler.push(addr(), &frame), Ok(None));
        }
        assert_eq!(reassembler.partial.len(), MAX_PARTIAL);
    }
}
