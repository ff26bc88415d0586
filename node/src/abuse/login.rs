//! The password grant's flood defence, checked before argon2 runs.
//!
//! Every attempt is counted per address, per (address, user name) and, when it comes
//! from a network where that user has not logged in recently, per user name. Any count
//! past its limit refuses the attempt in microseconds; only the survivors queue for a
//! hashing permit, and when every permit is taken the attempt is refused at once
//! rather than queued. Failures per address lead to escalating bans (see
//! [`crate::revocation`] for how bans are stored and shared).
//!
//! The configured limits are cluster-wide: with N live members each node enforces
//! ⌈limit / N⌉ of them, so an attacker spreading attempts over every node gets no more
//! password checks than the limit says, and one that sticks to one node gets fewer.
//!
//! Nothing here locks an account: the per-user limit skips networks where the user
//! logged in successfully within the trusted-network lifetime. A node gossips the
//! networks it trusted in the last minute ([`LoginGuard::recent_trust`]), so the user's
//! next login is recognised on every node. See `docs/abuse.md`.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::net::{address_key, network_key};
use super::table::{Table, Weigh};
use super::window::{Instant, Sliding};
use crate::config::LoginSettings;
use crate::revocation::{DenyList, Reason, Revocation, Target};

/// Login counters are per minute.
const WINDOW_MS: u64 = 60_000;
/// How long a network this node trusted stays in its gossiped value.
const TRUST_GOSSIP_MS: u64 = 60_000;
/// Most trusted networks one node gossips at a time (the newest win).
const TRUST_GOSSIP_MAX: usize = 128;

/// A network a user logged in from successfully, as one node tells the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustGrant {
    /// The user name.
    pub user: String,
    /// The network key (`/24` or `/64`).
    pub network: String,
    /// When the trust ends, Unix ms.
    pub until_ms: u64,
}

/// Why a login attempt was refused before its password was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The address is banned until the given Unix ms.
    Banned {
        /// End of the ban.
        until_ms: u64,
    },
    /// Too many attempts from this address.
    AddressLimit,
    /// Too many attempts for this user name from this address.
    AddressUserLimit,
    /// Too many attempts for this user name from networks it has not logged in from.
    UserLimit,
    /// Every password-hashing permit is in use.
    HashingSaturated,
}

impl Refusal {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Banned { .. } => "banned",
            Self::AddressLimit => "address_limit",
            Self::AddressUserLimit => "address_user_limit",
            Self::UserLimit => "user_limit",
            Self::HashingSaturated => "hashing_saturated",
        }
    }

    /// Seconds the client should wait before trying again.
    pub fn retry_after_secs(self, now_ms: u64) -> u64 {
        match self {
            Self::Banned { until_ms } => until_ms.saturating_sub(now_ms).div_ceil(1000).max(1),
            Self::HashingSaturated => 1,
            _ => Instant::at(now_ms, WINDOW_MS).remaining_ms().div_ceil(1000),
        }
    }
}

/// A per-minute count.
#[derive(Debug, Default)]
struct Count(Sliding);

impl Count {
    fn add(&mut self, now_ms: u64) -> u64 {
        let at = Instant::at(now_ms, WINDOW_MS);
        self.0.add(at, 1);
        self.0.estimate(at)
    }
}

impl Weigh for Count {
    fn weight(&self, now_ms: u64) -> u64 {
        self.0.estimate(Instant::at(now_ms, WINDOW_MS))
    }
}

/// When a user's network stops being trusted.
#[derive(Debug, Default)]
struct Trusted {
    until_ms: u64,
}

impl Weigh for Trusted {
    fn weight(&self, now_ms: u64) -> u64 {
        u64::from(self.until_ms > now_ms)
    }
}

/// Failures from one address, and the ban they last led to.
#[derive(Debug, Default)]
struct Failures {
    count: Count,
    /// End of the ban this node last issued, so concurrent failures issue one ban.
    banned_until_ms: u64,
}

impl Weigh for Failures {
    fn weight(&self, now_ms: u64) -> u64 {
        self.count.weight(now_ms)
    }
}

/// The login counters of one node.
pub struct LoginGuard {
    settings: LoginSettings,
    per_address: Table<String, Count>,
    per_address_user: Table<(String, String), Count>,
    per_user: Table<String, Count>,
    trusted: Table<(String, String), Trusted>,
    failures: Table<String, Failures>,
    hashing: Arc<Semaphore>,
    /// Live cluster members, this node included: the divisor of every limit.
    members: AtomicUsize,
    /// Networks trusted here lately, oldest first, with when: what this node gossips.
    granted: Mutex<VecDeque<(u64, TrustGrant)>>,
}

impl LoginGuard {
    /// Empty counters, each table holding at most `max_entries`.
    pub fn new(settings: LoginSettings, max_entries: usize) -> Self {
        let hashing = Arc::new(Semaphore::new(settings.hashing_concurrency));
        Self {
            settings,
            per_address: Table::new(max_entries),
            per_address_user: Table::new(max_entries),
            per_user: Table::new(max_entries),
            trusted: Table::new(max_entries),
            failures: Table::new(max_entries),
            hashing,
            members: AtomicUsize::new(1),
            granted: Mutex::new(VecDeque::new()),
        }
    }

    /// Sets the live member count the cluster-wide limits are divided by.
    pub fn set_members(&self, members: usize) {
        self.members.store(members.max(1), Ordering::Relaxed);
    }

    /// Failures from one address that earn a ban on this node now.
    pub fn ban_threshold(&self) -> u64 {
        self.share(self.settings.ban_after_failures)
    }

    /// This node's part of a cluster-wide limit.
    fn share(&self, limit: u64) -> u64 {
        let members = self.members.load(Ordering::Relaxed).max(1) as u64;
        limit.div_ceil(members)
    }

    /// The limits in force.
    pub fn settings(&self) -> &LoginSettings {
        &self.settings
    }

    /// Counts an attempt by `user` from `ip` and decides whether its password may be
    /// checked. A refused attempt still counts, so hammering keeps the limit shut.
    pub fn admit(
        &self,
        ip: IpAddr,
        user: &str,
        now_ms: u64,
        deny: &DenyList,
    ) -> Result<(), Refusal> {
        let address = address_key(ip);
        if let Some(ban) = deny.ban(&address, now_ms) {
            return Err(Refusal::Banned {
                until_ms: ban.until_ms,
            });
        }
        let from_address = self.per_address.update(&address, now_ms, |c| c.add(now_ms));
        let pair = (address, user.to_owned());
        let for_pair = self
            .per_address_user
            .update(&pair, now_ms, |c| c.add(now_ms));
        let for_user = if self.is_trusted(ip, user, now_ms) {
            0
        } else {
            self.per_user.update(&pair.1, now_ms, |c| c.add(now_ms))
        };
        if from_address > self.share(self.settings.per_address) {
            Err(Refusal::AddressLimit)
        } else if for_pair > self.share(self.settings.per_address_user) {
            Err(Refusal::AddressUserLimit)
        } else if for_user > self.share(self.settings.per_user) {
            Err(Refusal::UserLimit)
        } else {
            Ok(())
        }
    }

    /// A permit to run one password check, or `None` when all are in use.
    pub fn hashing_permit(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.hashing).try_acquire_owned().ok()
    }

    /// Records a successful login: the user's network is trusted from now on, here and,
    /// once gossiped, on every node.
    pub fn succeeded(&self, ip: IpAddr, user: &str, now_ms: u64) {
        let grant = TrustGrant {
            user: user.to_owned(),
            network: network_key(ip),
            until_ms: now_ms + self.settings.trusted_network_ttl.as_millis() as u64,
        };
        self.trust_one(&grant, now_ms);
        let mut granted = self.granted.lock().unwrap_or_else(|p| p.into_inner());
        granted.retain(|(_, g)| g.user != grant.user || g.network != grant.network);
        if granted.len() == TRUST_GOSSIP_MAX {
            granted.pop_front();
        }
        granted.push_back((now_ms, grant));
    }

    /// The networks this node trusted in the last minute, for its `trust` gossip key.
    /// Empty when nobody logged in lately, so a quiet node gossips nothing new.
    pub fn recent_trust(&self, now_ms: u64) -> Vec<TrustGrant> {
        let mut granted = self.granted.lock().unwrap_or_else(|p| p.into_inner());
        while granted
            .front()
            .is_some_and(|(at, _)| at + TRUST_GOSSIP_MS <= now_ms)
        {
            granted.pop_front();
        }
        granted.iter().map(|(_, g)| g.clone()).collect()
    }

    /// Takes in the networks a peer trusted. A grant never lasts longer than this
    /// node's own trusted-network lifetime.
    pub fn trust(&self, grants: &[TrustGrant], now_ms: u64) {
        let longest = now_ms + self.settings.trusted_network_ttl.as_millis() as u64;
        for grant in grants.iter().filter(|g| g.until_ms > now_ms) {
            let grant = TrustGrant {
                until_ms: grant.until_ms.min(longest),
                ..grant.clone()
            };
            self.trust_one(&grant, now_ms);
        }
    }

    fn trust_one(&self, grant: &TrustGrant, now_ms: u64) {
        let key = (grant.user.clone(), grant.network.clone());
        self.trusted.update(&key, now_ms, |t| {
            t.until_ms = t.until_ms.max(grant.until_ms);
        });
    }

    /// Records a failed login (wrong password or unknown user). Returns the ban to issue
    /// when the address has now failed too often.
    pub fn failed(&self, ip: IpAddr, now_ms: u64, deny: &DenyList) -> Option<Revocation> {
        let address = address_key(ip);
        let threshold = self.ban_threshold();
        let offence = deny.offences(&address) + 1;
        let step = (offence as usize - 1).min(self.settings.ban_steps.len() - 1);
        let until_ms = now_ms + self.settings.ban_steps[step].as_millis() as u64;
        let ban = self.failures.update(&address, now_ms, |f| {
            let failures = f.count.add(now_ms);
            let due = failures >= threshold && f.banned_until_ms <= now_ms;
            if due {
                f.banned_until_ms = until_ms;
            }
            due
        });
        ban.then(|| Revocation {
            target: Target::Address {
                address,
                until_ms,
                offence,
            },
            reason: Reason::LoginFlood,
            created_ms: now_ms,
            expires_ms: until_ms.max(now_ms + self.settings.ban_memory.as_millis() as u64),
        })
    }

    /// Forgets an address's failures, once an admin lifted its ban.
    pub fn forgive(&self, address: &str) {
        self.failures.remove(&address.to_owned());
        self.per_address.remove(&address.to_owned());
    }

    /// Entries held across the login tables.
    pub fn entries(&self) -> usize {
        self.per_address.len()
            + self.per_address_user.len()
            + self.per_user.len()
            + self.trusted.len()
            + self.failures.len()
    }

    /// Drops entries whose windows have passed.
    pub fn prune(&self, now_ms: u64) {
        self.per_address.prune(now_ms);
        self.per_address_user.prune(now_ms);
        self.per_user.prune(now_ms);
        self.trusted.prune(now_ms);
        self.failures.prune(now_ms);
    }

    fn is_trusted(&self, ip: IpAddr, user: &str, now_ms: u64) -> bool {
        let key = (user.to_owned(), network_key(ip));
        self.trusted
            .peek(&key, |t| t.until_ms > now_ms)
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests;
