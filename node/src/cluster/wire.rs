//! What each gossip key holds, and how values are encoded.
//!
//! chitchat values are strings that must stay under 65,535 bytes (chitchat does not
//! check), so structured values are bincode, base64-encoded, and batches and the `rate`
//! and `share` lists are cut at [`MAX_VALUE_BYTES`]; `keys` and `trust` stay under the
//! limit by what they hold (one record per live key; at most 128 grants). Every node
//! writes only its own keys:
//!
//! | key | value |
//! |---|---|
//! | `region` | region label |
//! | `http` | base URL for snapshots |
//! | `keys` | the node's public signing keys with their schedule |
//! | `rev.<seq>` | a batch of revocations this node originated, never rewritten |
//! | `spent.<seq>` | a batch of refresh generations this node accepted, never rewritten |
//! | `rate` | this node's counts of the lineages near their budget, rewritten as they change |
//! | `share` | strict mode: this node's budget handoffs and unmet needs, rewritten as they change |
//! | `trust` | the networks users logged in from successfully on this node in the last minute |
//! | `left` | set once, on graceful shutdown: when this incarnation left (Unix ms, decimal) |

use std::ops::Range;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::issuer::PeerSpend;
use crate::keys::PublicKeyRecord;
use crate::revocation::Revocation;

/// Region label key.
pub const REGION: &str = "region";
/// Snapshot base URL key.
pub const HTTP: &str = "http";
/// Public keys key.
pub const KEYS: &str = "keys";
/// Prefix of revocation batch keys.
pub const REVOCATIONS: &str = "rev.";
/// Prefix of spent-generation batch keys.
pub const SPENDS: &str = "spent.";
/// Budget counts key.
pub const RATES: &str = "rate";
/// Strict-mode share handoffs key.
pub const SHARES: &str = "share";
/// Recently trusted login networks key.
pub const TRUST: &str = "trust";
/// Set by a node leaving on purpose (see [`super::leave`]).
pub const LEFT: &str = "left";
/// Largest encoded value written; well under chitchat's 65,535-byte limit so that a
/// value plus its key and framing always fits one datagram.
pub const MAX_VALUE_BYTES: usize = 48 * 1024;
/// Decoder limit for one value.
const MAX_DECODED: usize = 64 * 1024;

/// A spent refresh generation as gossiped (the spender is the node that owns the key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spend {
    /// Family id.
    pub family: String,
    /// Generation spent.
    pub generation: u32,
    /// Retention end, Unix ms.
    pub expires_ms: u64,
}

impl Spend {
    /// The spend attributed to `spender`.
    pub fn by(self, spender: &str) -> PeerSpend {
        PeerSpend {
            family: self.family,
            generation: self.generation,
            expires_ms: self.expires_ms,
            spender: spender.to_owned(),
        }
    }
}

/// Encodes a value for a gossip key.
pub fn encode<T: Serialize>(value: &T) -> String {
    let bytes = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .expect("gossip values always encode");
    STANDARD.encode(bytes)
}

/// Decodes a gossip value; `None` for anything malformed (counted by the caller).
pub fn decode<T: DeserializeOwned>(text: &str) -> Option<T> {
    if text.len() > MAX_DECODED * 4 / 3 + 4 {
        return None;
    }
    let bytes = STANDARD.decode(text).ok()?;
    let config = bincode::config::standard().with_limit::<MAX_DECODED>();
    let (value, used) = bincode::serde::decode_from_slice(&bytes, config).ok()?;
    (used == bytes.len()).then_some(value)
}

/// Splits `items` into encoded batches each under [`MAX_VALUE_BYTES`], with the
/// range of items each holds.
pub fn batches<T: Serialize + Clone>(items: &[T]) -> Vec<(String, Range<usize>)> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < items.len() {
        let mut end = items.len();
        let mut value = encode(&items[start..end].to_vec());
        while value.len() > MAX_VALUE_BYTES && end - start > 1 {
            end = start + (end - start) / 2;
            value = encode(&items[start..end].to_vec());
        }
        out.push((value, start..end));
        start = end;
    }
    out
}

/// Keeps only key records whose kid matches their public key.
pub fn consistent_keys(keys: Vec<PublicKeyRecord>) -> Vec<PublicKeyRecord> {
    keys.into_iter()
        .filter(PublicKeyRecord::is_consistent)
        .collect()
}

/// Decoded revocation batch.
pub fn revocations(text: &str) -> Option<Vec<Revocation>> {
    decode(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocation::{Reason, Target};

    fn revocation(i: usize) -> Revocation {
        Revocation {
            target: Target::Token {
                jti: format!("{i:0>40}"),
            },
            reason: Reason::Admin,
            created_ms: i as u64,
            expires_ms: u64::MAX,
        }
    }

    #[test]
    fn large_sets_are_cut_into_values_under_the_limit() {
        let all: Vec<Revocation> = (0..5_000).map(revocation).collect();
        let values = batches(&all);
        assert!(values.len() > 1);
        assert!(values.iter().all(|(v, _)| v.len() <= MAX_VALUE_BYTES));
        let back: Vec<Revocation> = values
            .iter()
            .flat_map(|(v, _)| revocations(v).expect("decodes"))
            .collect();
        assert_eq!(back, all);
    }

    #[test]
    fn malformed_values_decode_to_nothing() {
        assert!(revocations("not base64!").is_none());
        assert!(revocations(&STANDARD.encode([0xff; 10])).is_none());
        assert!(revocations(&"A".repeat(200_000)).is_none());
    }
}
