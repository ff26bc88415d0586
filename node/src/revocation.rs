//! What a revocation is, and the deny list every verification consults.
//!
//! A revocation names a target (one token, a refresh family, everything a subject or a
//! client was issued before a moment) and carries its own expiry: the moment the
//! longest-lived token it covers would have expired anyway. After that the entry is
//! useless and is pruned, which keeps the list bounded.
//!
//! Address bans travel the same way (journal, gossip, snapshots) as a target of their
//! own. A ban is enforced until its `until_ms`, but its entry is kept for the ban memory
//! beyond, so the next ban of the same address, on any node and after a restart, knows
//! how many came before it and lasts longer. An admin lifts a ban with a newer entry for
//! the same address; between two entries for an address, the newer one wins.

use dashmap::DashMap;
use serde::{Deserialize, Serialize};

/// What a revocation covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// One token, by `jti`.
    Token {
        /// The token's `jti`.
        jti: String,
    },
    /// A refresh family and every access token issued from it.
    Family {
        /// The family id (`sid` in access tokens).
        family: String,
    },
    /// Every token of a subject issued at or before `before` (Unix seconds).
    Subject {
        /// The `sub` claim.
        subject: String,
        /// Tokens with `iat` at or before this are revoked.
        before: u64,
    },
    /// Every token of a client issued at or before `before` (Unix seconds).
    Client {
        /// The `client_id` claim.
        client_id: String,
        /// Tokens with `iat` at or before this are revoked.
        before: u64,
    },
    /// A client address (IPv4) or network (IPv6 /64) banned until `until_ms`.
    Address {
        /// Canonical form: `203.0.113.7` or `2001:db8:1:2::/64`.
        address: String,
        /// End of the ban, Unix ms.
        until_ms: u64,
        /// How many bans in a row this is (1 for the first), for escalation.
        offence: u32,
    },
}

impl Target {
    /// The metric label for this kind of target.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Token { .. } => "token",
            Self::Family { .. } => "family",
            Self::Subject { .. } => "subject",
            Self::Client { .. } => "client",
            Self::Address { .. } => "address",
        }
    }
}

/// Why something was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// An administrator revoked it through the admin API.
    Admin,
    /// A client revoked its own token (RFC 7009).
    ClientRequest,
    /// A refresh token was presented twice; the family is presumed stolen.
    RefreshReuse,
    /// The lineage went past its request budget by the abuse factor.
    RateAbuse,
    /// The lineage was used from more networks than a token plausibly travels.
    IpSpread,
    /// The address failed too many logins.
    LoginFlood,
    /// The address presented too many invalid tokens.
    BadTokens,
    /// An administrator lifted the ban this entry replaces.
    Lifted,
}

impl Reason {
    /// The wire and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::ClientRequest => "client_request",
            Self::RefreshReuse => "refresh_reuse",
            Self::RateAbuse => "rate_abuse",
            Self::IpSpread => "ip_spread",
            Self::LoginFlood => "login_flood",
            Self::BadTokens => "bad_tokens",
            Self::Lifted => "lifted",
        }
    }
}

/// One revocation, as stored, listed and (later) gossiped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// What is revoked.
    pub target: Target,
    /// Why.
    pub reason: Reason,
    /// When it was made, Unix milliseconds.
    pub created_ms: u64,
    /// When it can be forgotten, Unix milliseconds.
    pub expires_ms: u64,
}

/// The facts about a verified token that revocations are matched against.
#[derive(Debug, Clone, Copy)]
pub struct TokenFacts<'a> {
    /// `jti`.
    pub jti: &'a str,
    /// `sub`.
    pub subject: &'a str,
    /// `client_id`.
    pub client_id: &'a str,
    /// Refresh family, if the token came from one.
    pub family: Option<&'a str>,
    /// `iat`, Unix seconds.
    pub issued_at: u64,
}

/// The set of live revocations, readable from every worker without a global lock.
///
/// Only the verifier actor writes it; request handlers read it concurrently.
#[derive(Debug, Default)]
pub struct DenyList {
    tokens: DashMap<String, Revocation>,
    families: DashMap<String, Revocation>,
    subjects: DashMap<String, Revocation>,
    clients: DashMap<String, Revocation>,
    addresses: DashMap<String, Revocation>,
}

/// A ban in force on an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    /// Why it was banned.
    pub reason: Reason,
    /// End of the ban, Unix ms.
    pub until_ms: u64,
    /// Its place in the address's run of bans.
    pub offence: u32,
}

impl DenyList {
    /// Whether any live revocation covers the token.
    pub fn covers(&self, token: &TokenFacts<'_>) -> bool {
        let before = |r: &Revocation| match r.target {
            Target::Subject { before, .. } | Target::Client { before, .. } => before,
            _ => u64::MAX,
        };
        self.tokens.contains_key(token.jti)
            || token.family.is_some_and(|f| self.families.contains_key(f))
            || self
                .subjects
                .get(token.subject)
                .is_some_and(|r| token.issued_at <= before(&r))
            || self
                .clients
                .get(token.client_id)
                .is_some_and(|r| token.issued_at <= before(&r))
    }

    /// The ban in force on `address` at `now_ms`, if any.
    pub fn ban(&self, address: &str, now_ms: u64) -> Option<Ban> {
        let entry = self.addresses.get(address)?;
        match entry.target {
            Target::Address {
                until_ms, offence, ..
            } if until_ms > now_ms && entry.reason != Reason::Lifted => Some(Ban {
                reason: entry.reason,
                until_ms,
                offence,
            }),
            _ => None,
        }
    }

    /// How many bans `address` has had within the ban memory (0 after a lift).
    pub fn offences(&self, address: &str) -> u32 {
        self.addresses
            .get(address)
            .filter(|entry| entry.reason != Reason::Lifted)
            .map_or(0, |entry| match entry.target {
                Target::Address { offence, .. } => offence,
                _ => 0,
            })
    }

    /// Every address entry (bans in force, past bans still remembered, lifts).
    pub fn addresses(&self) -> Vec<Revocation> {
        let mut all: Vec<Revocation> = self.addresses.iter().map(|e| e.value().clone()).collect();
        all.sort_by_key(|r| std::cmp::Reverse(r.created_ms));
        all
    }

    /// Whether a refresh family is revoked.
    pub fn family_revoked(&self, family: &str) -> bool {
        self.families.contains_key(family)
    }

    /// Whether `entry` is already covered: the same target, with a cut at least as late.
    pub fn knows(&self, entry: &Revocation) -> bool {
        let (map, key) = self.slot(&entry.target);
        map.get(key)
            .is_some_and(|existing| merge(&existing, entry) == *existing)
    }

    /// Adds a revocation; a later one for the same subject or client widens the cut.
    /// Returns whether the list changed.
    pub fn insert(&self, entry: Revocation) -> bool {
        let (map, key) = self.slot(&entry.target);
        let key = key.to_owned();
        match map.get_mut(&key) {
            Some(mut existing) => {
                let merged = merge(&existing, &entry);
                let changed = merged != *existing;
                *existing = merged;
                changed
            }
            None => {
                map.insert(key, entry);
                true
            }
        }
    }

    /// Forgets entries that expired at or before `now_ms`; returns how many.
    pub fn prune(&self, now_ms: u64) -> usize {
        let mut removed = 0;
        for map in self.maps() {
            let before = map.len();
            map.retain(|_, r| r.expires_ms > now_ms);
            removed += before - map.len();
        }
        removed
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.maps().iter().map(|m| m.len()).sum()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of every entry, newest first.
    pub fn snapshot(&self) -> Vec<Revocation> {
        let mut all: Vec<Revocation> = self
            .maps()
            .iter()
            .flat_map(|m| m.iter().map(|e| e.value().clone()))
            .collect();
        all.sort_by_key(|r| std::cmp::Reverse(r.created_ms));
        all
    }

    fn maps(&self) -> [&DashMap<String, Revocation>; 5] {
        [
            &self.tokens,
            &self.families,
            &self.subjects,
            &self.clients,
            &self.addresses,
        ]
    }

    fn slot<'t>(&self, target: &'t Target) -> (&DashMap<String, Revocation>, &'t str) {
        match target {
            Target::Token { jti } => (&self.tokens, jti),
            Target::Family { family } => (&self.families, family),
            Target::Subject { subject, .. } => (&self.subjects, subject),
            Target::Client { client_id, .. } => (&self.clients, client_id),
            Target::Address { address, .. } => (&self.addresses, address),
        }
    }
}

/// The union of two revocations of the same target: the later cut and the later
/// expiry, so that no second entry can shorten or narrow the first. For addresses the
/// newer entry wins whole (a lift, or a longer ban), ties going to the later end.
fn merge(kept: &Revocation, new: &Revocation) -> Revocation {
    if let (
        Target::Address {
            until_ms: kept_until,
            ..
        },
        Target::Address { until_ms, .. },
    ) = (&kept.target, &new.target)
    {
        let newer = (new.created_ms, *until_ms) > (kept.created_ms, *kept_until);
        return if newer { new.clone() } else { kept.clone() };
    }
    let mut merged = kept.clone();
    merged.expires_ms = kept.expires_ms.max(new.expires_ms);
    if let (
        Target::Subject {
            before: kept_cut, ..
        }
        | Target::Client {
            before: kept_cut, ..
        },
        Target::Subject {
            before: new_cut, ..
        }
        | Target::Client {
            before: new_cut, ..
        },
    ) = (&mut merged.target, &new.target)
    {
        if *new_cut > *kept_cut {
            *kept_cut = *new_cut;
            merged.reason = new.reason;
            merged.created_ms = new.created_ms;
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(target: Target, expires_ms: u64) -> Revocation {
        Revocation {
            target,
            reason: Reason::Admin,
            created_ms: 0,
            expires_ms,
        }
    }

    fn facts<'a>(jti: &'a str, family: Option<&'a str>, issued_at: u64) -> TokenFacts<'a> {
        TokenFacts {
            jti,
            subject: "alice",
            client_id: "web",
            family,
            issued_at,
        }
    }

    #[test]
    fn matches_each_kind_of_target() {
        let deny = DenyList::default();
        deny.insert(entry(Target::Token { jti: "j1".into() }, 10));
        deny.insert(entry(
            Target::Family {
                family: "f1".into(),
            },
            10,
        ));
        assert!(deny.covers(&facts("j1", None, 0)));
        assert!(deny.covers(&facts("j2", Some("f1"), 0)));
        assert!(!deny.covers(&facts("j2", Some("f2"), 0)));

        deny.insert(entry(
            Target::Subject {
                subject: "alice".into(),
                before: 100,
            },
            10,
        ));
        assert!(deny.covers(&facts("j3", None, 100)));
        assert!(
            !deny.covers(&facts("j3", None, 101)),
            "tokens issued after the cut pass"
        );
    }

    #[test]
    fn a_later_cut_widens_and_an_earlier_one_is_ignored() {
        let deny = DenyList::default();
        assert!(deny.insert(entry(
            Target::Client {
                client_id: "web".into(),
                before: 50
            },
            10
        )));
        assert!(!deny.insert(entry(
            Target::Client {
                client_id: "web".into(),
                before: 40
            },
            10
        )));
        assert!(deny.insert(entry(
            Target::Client {
                client_id: "web".into(),
                before: 60
            },
            10
        )));
        assert!(deny.covers(&facts("j", None, 60)));
        assert_eq!(deny.len(), 1);
    }

    #[test]
    fn a_second_entry_never_shortens_or_narrows_the_first() {
        let deny = DenyList::default();
        deny.insert(entry(
            Target::Client {
                client_id: "web".into(),
                before: 50,
            },
            1_000,
        ));
        let later_but_short = entry(
            Target::Client {
                client_id: "web".into(),
                before: 60,
            },
            1,
        );
        assert!(!deny.knows(&later_but_short));
        assert!(deny.insert(later_but_short));
        assert_eq!(deny.prune(500), 0, "the earlier, longer entry still holds");
        assert!(
            deny.covers(&facts("j", None, 60)),
            "and the later cut applies"
        );
    }

    #[test]
    fn prunes_only_expired_entries() {
        let deny = DenyList::default();
        deny.insert(entry(Target::Token { jti: "old".into() }, 10));
        deny.insert(entry(Target::Token { jti: "new".into() }, 20));
        assert_eq!(deny.prune(10), 1);
        assert_eq!(deny.snapshot().len(), 1);
        assert!(deny.covers(&facts("new", None, 0)));
    }
}
