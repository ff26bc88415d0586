//! Heuristics tied to the token lifecycle: a lineage seen from too many networks, an
//! address presenting too many bad tokens, and issuance caps per address and client.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;

use super::budget::Lineage;
use super::net::{gate_key, network_key};
use super::table::{Table, Weigh};
use super::window::{Instant, Sliding};
use crate::config::HeuristicSettings;
use crate::revocation::{DenyList, Reason, Revocation, Target};

/// Issuance caps are per minute.
const ISSUANCE_WINDOW_MS: u64 = 60_000;

/// The networks one lineage was seen from, newest sighting of each.
#[derive(Debug, Default)]
struct Spread {
    /// (hash of the network, last seen Unix ms); at most K + 1 entries.
    networks: Vec<(u64, u64)>,
    window_ms: u64,
    /// Set once the lineage has been reported, so it is revoked once.
    flagged: bool,
}

impl Weigh for Spread {
    fn weight(&self, now_ms: u64) -> u64 {
        let since = now_ms.saturating_sub(self.window_ms);
        self.networks
            .iter()
            .filter(|(_, seen)| *seen > since)
            .count() as u64
    }
}

/// A count over a configurable window.
#[derive(Debug, Default)]
struct Count {
    sliding: Sliding,
    window_ms: u64,
    /// End of the denial this node last issued, so concurrent reports issue one.
    denied_until_ms: u64,
}

impl Count {
    fn add(&mut self, now_ms: u64, window_ms: u64) -> u64 {
        self.window_ms = window_ms;
        let at = Instant::at(now_ms, window_ms);
        self.sliding.add(at, 1);
        self.sliding.estimate(at)
    }

    fn current(&self, now_ms: u64, window_ms: u64) -> u64 {
        self.sliding.estimate(Instant::at(now_ms, window_ms))
    }
}

impl Weigh for Count {
    fn weight(&self, now_ms: u64) -> u64 {
        self.current(now_ms, self.window_ms.max(1))
    }
}

/// Which issuance cap refused a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssuanceCap {
    /// Too many tokens to one address.
    Address,
    /// Too many tokens to one client.
    Client,
}

impl IssuanceCap {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Address => "issuance_address",
            Self::Client => "issuance_client",
        }
    }
}

/// The heuristics' counters on one node.
pub struct Heuristics {
    settings: HeuristicSettings,
    spread: Table<Lineage, Spread>,
    bad_tokens: Table<String, Count>,
    issued_to_address: Table<String, Count>,
    issued_to_client: Table<String, Count>,
    hasher: RandomState,
}

impl Heuristics {
    /// Empty counters, each table holding at most `max_entries`.
    pub fn new(settings: HeuristicSettings, max_entries: usize) -> Self {
        Self {
            settings,
            spread: Table::new(max_entries),
            bad_tokens: Table::new(max_entries),
            issued_to_address: Table::new(max_entries),
            issued_to_client: Table::new(max_entries),
            hasher: RandomState::new(),
        }
    }

    /// The thresholds in force.
    pub fn settings(&self) -> &HeuristicSettings {
        &self.settings
    }

    /// Records that `lineage` was presented from `ip`. Returns true the first time it
    /// has been seen from more than K networks within the window: revoke it as stolen.
    pub fn spread(&self, lineage: &Lineage, ip: IpAddr, now_ms: u64) -> bool {
        let network = self.hasher.hash_one(network_key(ip));
        let limit = self.settings.spread_networks as usize;
        let window_ms = self.settings.spread_window.as_millis() as u64;
        let since = now_ms.saturating_sub(window_ms);
        self.spread.update(lineage, now_ms, |spread| {
            spread.window_ms = window_ms;
            spread.networks.retain(|(_, seen)| *seen > since);
            match spread.networks.iter_mut().find(|(n, _)| *n == network) {
                Some(entry) => entry.1 = now_ms,
                None => spread.networks.push((network, now_ms)),
            }
            if spread.networks.len() > limit + 1 {
                // Only "more than K" matters; keep the newest K + 1.
                spread
                    .networks
                    .sort_by_key(|(_, seen)| std::cmp::Reverse(*seen));
                spread.networks.truncate(limit + 1);
            }
            let over = spread.networks.len() > limit && !spread.flagged;
            spread.flagged |= over;
            over
        })
    }

    /// Whether `ip` is denied on the gate at `now_ms` (after bad tokens, or by an
    /// admin); such requests are refused without verifying.
    pub fn denied(&self, ip: IpAddr, now_ms: u64, deny: &DenyList) -> bool {
        deny.ban(&gate_key(ip), now_ms).is_some()
    }

    /// Records a bad token from `ip`. Returns the denial to issue when the address has
    /// now presented too many.
    pub fn bad_token(&self, ip: IpAddr, now_ms: u64, deny: &DenyList) -> Option<Revocation> {
        let address = gate_key(ip);
        let window_ms = self.settings.bad_token_window.as_millis() as u64;
        let denial_ms = self.settings.bad_token_denial.as_millis() as u64;
        let threshold = self.settings.bad_tokens;
        let due = self.bad_tokens.update(&address, now_ms, |count| {
            let due = count.add(now_ms, window_ms) >= threshold && count.denied_until_ms <= now_ms;
            if due {
                count.denied_until_ms = now_ms + denial_ms;
            }
            due
        });
        due.then(|| Revocation {
            target: Target::Address {
                offence: deny.offences(&address) + 1,
                address,
                until_ms: now_ms + denial_ms,
            },
            reason: Reason::BadTokens,
            created_ms: now_ms,
            expires_ms: now_ms + denial_ms,
        })
    }

    /// Counts one token about to be issued to `client_id` at `ip`, or refuses it.
    pub fn issue(&self, ip: IpAddr, client_id: &str, now_ms: u64) -> Result<(), IssuanceCap> {
        let per_address = self.settings.issuance_per_address;
        let per_client = self.settings.issuance_per_client;
        let window = ISSUANCE_WINDOW_MS;
        let address = super::net::address_key(ip);
        let to_address = self
            .issued_to_address
            .update(&address, now_ms, |c| c.current(now_ms, window));
        if to_address >= per_address {
            return Err(IssuanceCap::Address);
        }
        let client = client_id.to_owned();
        let to_client = self
            .issued_to_client
            .update(&client, now_ms, |c| c.current(now_ms, window));
        if to_client >= per_client {
            return Err(IssuanceCap::Client);
        }
        self.issued_to_address
            .update(&address, now_ms, |c| c.add(now_ms, window));
        self.issued_to_client
            .update(&client, now_ms, |c| c.add(now_ms, window));
        Ok(())
    }

    /// Forgets an address's bad-token count, once an admin lifted its denial.
    pub fn forgive(&self, address: &str) {
        self.bad_tokens.remove(&address.to_owned());
    }

    /// Entries held across the heuristics' tables.
    pub fn entries(&self) -> usize {
        self.spread.len()
            + self.bad_tokens.len()
            + self.issued_to_address.len()
            + self.issued_to_client.len()
    }

    /// Drops entries whose windows have passed.
    pub fn prune(&self, now_ms: u64) {
        self.spread.prune(now_ms);
        self.bad_tokens.prune(now_ms);
        self.issued_to_address.prune(now_ms);
        self.issued_to_client.prune(now_ms);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const T0: u64 = 1_700_000_040_000;

    fn heuristics() -> Heuristics {
        let settings = HeuristicSettings {
            spread_networks: 3,
            spread_window: Duration::from_secs(600),
            bad_tokens: 5,
            bad_token_window: Duration::from_secs(60),
            bad_token_denial: Duration::from_secs(300),
            issuance_per_address: 4,
            issuance_per_client: 6,
        };
        Heuristics::new(settings, 1_000)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    #[test]
    fn a_lineage_seen_from_more_than_k_networks_is_flagged_once() {
        let h = heuristics();
        let lineage = Lineage::Family("f".into());
        // Many addresses of one /24 are one network.
        for i in 1..50 {
            assert!(!h.spread(&lineage, ip(&format!("10.0.0.{i}")), T0));
        }
        assert!(!h.spread(&lineage, ip("10.0.1.1"), T0));
        assert!(!h.spread(&lineage, ip("10.0.2.1"), T0));
        assert!(h.spread(&lineage, ip("10.0.3.1"), T0 + 1));
        assert!(!h.spread(&lineage, ip("10.0.4.1"), T0 + 2));
    }

    #[test]
    fn networks_outside_the_window_do_not_count() {
        let h = heuristics();
        let lineage = Lineage::Client("svc".into());
        for (i, net) in ["10.0.1.1", "10.0.2.1", "10.0.3.1"].iter().enumerate() {
            assert!(!h.spread(&lineage, ip(net), T0 + i as u64 * 400_000));
        }
        // Eleven minutes after the first sighting, only two others are within 10 min.
        assert!(!h.spread(&lineage, ip("10.0.4.1"), T0 + 900_000));
    }

    #[test]
    fn an_address_presenting_bad_tokens_is_denied_for_a_period() {
        let h = heuristics();
        let deny = DenyList::default();
        let bad = ip("198.51.100.7");
        let denials: Vec<Revocation> = (0..20)
            .filter_map(|_| h.bad_token(bad, T0, &deny))
            .collect();
        assert_eq!(denials.len(), 1);
        assert!(!h.denied(bad, T0, &deny));
        deny.insert(denials[0].clone());
        assert!(h.denied(bad, T0 + 1, &deny));
        assert!(!h.denied(ip("198.51.100.8"), T0 + 1, &deny));
        assert!(!h.denied(bad, T0 + 300_001, &deny));
    }

    #[test]
    fn issuance_is_capped_per_address_and_per_client() {
        let h = heuristics();
        let one = ip("192.0.2.1");
        for _ in 0..4 {
            assert_eq!(h.issue(one, "web", T0), Ok(()));
        }
        assert_eq!(h.issue(one, "web", T0), Err(IssuanceCap::Address));
        assert_eq!(h.issue(ip("192.0.2.2"), "web", T0), Ok(()));
        assert_eq!(h.issue(ip("192.0.2.3"), "web", T0), Ok(()));
        assert_eq!(
            h.issue(ip("192.0.2.4"), "web", T0),
            Err(IssuanceCap::Client)
        );
        assert_eq!(h.issue(ip("192.0.2.4"), "other", T0), Ok(()));
        // A refused request is not counted, and the next window starts afresh.
        assert_eq!(h.issue(one, "web", T0 + 120_000), Ok(()));
    }
}
