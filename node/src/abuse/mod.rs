//! The anti-abuse layer: request budgets, the login-flood defence, bans and the
//! token-lifecycle heuristics.
//!
//! - [`window`]: sliding-window counts kept as two numbered fixed windows.
//! - [`table`]: the bounded counter map every signal keeps its state in; it evicts cold,
//!   light entries first, so attacker-chosen keys cannot grow memory or hide a hot key.
//! - [`budget`]: per-lineage budgets on `/v1/check` and introspection.
//! - [`login`]: the password grant's flood defence and ban decisions.
//! - [`heuristics`]: network spread, bad-token denial, issuance caps.
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
pub mod table;
pub mod window;

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::Config;
use budget::Budgets;
use heuristics::Heuristics;
use login::LoginGuard;

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
        }
    }

    /// Live members including this node.
    pub fn members(&self) -> usize {
        self.members.load(Ordering::Relaxed).max(1)
    }

    /// Records the live member count (the gossip actor calls this each round).
    pub fn set_members(&self, members: usize) {
        self.members.store(members.max(1), Ordering::Relaxed);
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
