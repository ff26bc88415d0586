//! The anti-abuse layer: request budgets, the login-flood defence, bans and the
//! token-lifecycle heuristics.
//!
//! - [`window`]: sliding-window counts kept as two numbered fixed windows.
//! - [`table`]: the bounded counter map every signal keeps its state in; it evicts cold,
//!   light entries first, so attacker-chosen keys cannot grow memory or hide a hot key.
//! - [`budget`]: per-lineage budgets on `/v1/check` and introspection.
//! - [`login`]: the password grant's flood defence and ban decisions.
//! - [`heuristics`]: network spread, bad-token denial, issuance caps.
//! - [`shares`]: strict-mode budget shares and their handoffs.
//! - [`net`]: how addresses are grouped into ban keys and networks.
//!
//! Request handlers read and update these structures directly (sharded locks, held for
//! one lookup). Decisions that must outlive the node or reach other nodes (revocations,
//! bans) go through the node's one revocation path; budget counts near their limit are
//! gossiped by the gossip actor.

pub mod budget;
pub mod heuristics;
pub mod login;
pub mod net;
pub mod shares;
pub mod table;
pub mod window;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use crate::config::Config;
use budget::Budgets;
use heuristics::Heuristics;
use login::LoginGuard;
use shares::Seat;

/// Every anti-abuse structure of one node.
pub struct Shield {
    /// Per-lineage request budgets.
    pub budgets: Budgets,
    /// Login-flood defence.
    pub login: LoginGuard,
    /// Spread, bad tokens, issuance caps.
    pub heuristics: Heuristics,
    /// Live cluster members including this node (1 when alone).
    members: AtomicUsize,
    /// This node's position among them, sorted by node id.
    index: AtomicUsize,
    /// The latest decisions that revoked, banned or denied, newest last.
    recent: Mutex<VecDeque<Decision>>,
}

/// Most decisions kept for the admin API.
const RECENT_DECISIONS: usize = 1_000;

/// A decision that revoked a lineage, or banned or denied an address, with the evidence
/// it was taken on. Kept in memory on the node that took it, for `/admin/v1/abuse`.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// Unix ms.
    pub at_ms: u64,
    /// `rate_abuse`, `ip_spread`, `login_flood` or `bad_tokens`.
    pub reason: &'static str,
    /// `family:<id>`, `client:<id>` or the address key.
    pub target: String,
    /// The client, when a token was involved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The subject, when a token was involved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// What was counted: requests in the window, networks, failures, bad tokens.
    pub observed: u64,
    /// The threshold it crossed.
    pub threshold: u64,
}

impl Shield {
    /// Empty counters under `config`'s limits.
    pub fn new(config: &Config) -> Self {
        let cap = config.rate_limits.max_counters;
        Self {
            budgets: Budgets::new(config.rate_limits.clone()),
            login: LoginGuard::new(config.login.clone(), cap),
            heuristics: Heuristics::new(config.heuristics.clone(), cap),
            members: AtomicUsize::new(1),
            index: AtomicUsize::new(0),
            recent: Mutex::new(VecDeque::new()),
        }
    }

    /// Keeps `decision` for the admin API, dropping the oldest past the limit.
    pub fn record(&self, decision: Decision) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == RECENT_DECISIONS {
            recent.pop_front();
        }
        recent.push_back(decision);
    }

    /// The decisions kept, newest first.
    pub fn recent(&self) -> Vec<Decision> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().rev().cloned().collect()
    }

    /// Live members including this node.
    pub fn members(&self) -> usize {
        self.members.load(Ordering::Relaxed).max(1)
    }

    /// This node's seat among the live members.
    pub fn seat(&self) -> Seat {
        let members = self.members();
        let index = self.index.load(Ordering::Relaxed).min(members - 1);
        Seat { index, members }
    }

    /// Records this node's seat (the gossip actor calls this each round).
    pub fn set_seat(&self, seat: Seat) {
        self.index.store(seat.index, Ordering::Relaxed);
        self.members.store(seat.members.max(1), Ordering::Relaxed);
        self.login.set_members(seat.members);
    }

    /// Drops every counter whose windows have passed.
    pub fn prune(&self, now_ms: u64) {
        self.budgets.prune(now_ms);
        self.login.prune(now_ms);
        self.heuristics.prune(now_ms);
    }

    /// Counter entries held across every table.
    pub fn entries(&self) -> usize {
        self.budgets.occupancy().0 + self.login.entries() + self.heuristics.entries()
    }
}
