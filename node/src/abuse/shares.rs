//! Strict budgets: each node admits only within its own share, and share moves between
//! nodes only by a handoff that the giver publishes before the receiver can use it.
//!
//! Per lineage and fixed one-minute window, node `i` of `n` live members (sorted by node
//! id) starts with a base share: the budget split evenly, the remainder going to the
//! first members. Its share is then
//!
//! ```text
//! share_i = base_i − Σ_j given_i→j + Σ_j seen_j→i
//! ```
//!
//! where `given_i→j` is a counter only node `i` raises, and only out of its unused share,
//! lowering its own share at that moment, before publishing it; and `seen_j→i` is the
//! latest value of `given_j→i` node `i` has received by gossip, never more than `j`
//! published. Node `i` admits a request only while `admitted_i < share_i`, so
//!
//! ```text
//! Σ admitted_i ≤ Σ share_i = Σ base_i − Σ (given − seen) ≤ Σ base_i = budget
//! ```
//!
//! whatever the order and delay of gossip, as long as every node computes its base from
//! the same membership. `docs/rate-limits.md` gives the argument in full, with what
//! happens when membership changes or a node dies holding share.
//!
//! Shares follow demand: a node that refuses requests for lack of share publishes its
//! unmet need, and nodes with unused share give part of it (see [`ShareBook::grant`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::budget::Lineage;
use super::table::{Table, Weigh};

/// One lineage's share bookkeeping on this node, for one fixed window.
#[derive(Debug, Default)]
pub struct ShareState {
    window: u64,
    /// The lineage's budget as last charged here, published so givers know their base.
    budget: u64,
    admitted: u64,
    /// Requests refused for lack of share in this window.
    refused: u64,
    /// What this node has handed to each peer, cumulative over the window.
    given: BTreeMap<String, u64>,
    /// The latest cumulative handoff each peer has been seen to make to this node.
    seen: BTreeMap<String, u64>,
}

impl ShareState {
    /// Starts the window afresh when `window` is newer.
    fn at(&mut self, window: u64) -> &mut Self {
        if window > self.window {
            *self = Self {
                window,
                ..Self::default()
            };
        }
        self
    }

    fn share(&self, base: u64) -> u64 {
        let given: u64 = self.given.values().sum();
        let seen: u64 = self.seen.values().sum();
        (base + seen).saturating_sub(given)
    }

    /// Unmet demand: refusals not yet made up for by what peers handed over.
    fn need(&self) -> u64 {
        let seen: u64 = self.seen.values().sum();
        self.refused.saturating_sub(seen)
    }
}

impl Weigh for ShareState {
    fn weight(&self, now_ms: u64) -> u64 {
        let current = now_ms / super::budget::WINDOW_MS;
        if self.window + 1 < current {
            return 0;
        }
        // Entries holding handoffs weigh more than their count: dropping one would
        // forget share that peers have already subtracted.
        self.admitted + self.refused + 1_000 * (self.given.len() + self.seen.len()) as u64
    }
}

/// Where this node stands among the live members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seat {
    /// Position in the sorted member list.
    pub index: usize,
    /// Number of live members.
    pub members: usize,
}

impl Seat {
    /// The base share of `budget` for this seat.
    pub fn base(self, budget: u64) -> u64 {
        let members = self.members.max(1) as u64;
        let extra = u64::from((self.index as u64) < budget % members);
        budget / members + extra
    }
}

/// A lineage's handoffs and need as one node publishes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareReport {
    /// The lineage.
    pub lineage: Lineage,
    /// Fixed window number.
    pub window: u64,
    /// Cumulative handoffs to each peer in the window.
    pub given: Vec<(String, u64)>,
    /// Unmet demand on the publishing node.
    pub need: u64,
    /// The lineage's budget, from which every node derives its base share.
    pub budget: u64,
}

/// The outcome of one strict admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Whether the request is admitted.
    pub admitted: bool,
    /// This node's share now.
    pub share: u64,
    /// Requests admitted here in the window, this one included if admitted.
    pub admitted_count: u64,
}

/// Every lineage's share state on this node, bounded like every counter table.
pub struct ShareBook {
    states: Table<Lineage, ShareState>,
}

impl ShareBook {
    /// An empty book holding at most `capacity` lineages.
    pub fn new(capacity: usize) -> Self {
        Self {
            states: Table::new(capacity),
        }
    }

    /// Admits one request of `lineage` (whose budget is `budget`) in `window` if this
    /// node's share has room.
    pub fn admit(
        &self,
        lineage: &Lineage,
        budget: u64,
        seat: Seat,
        window: u64,
        now_ms: u64,
    ) -> Admission {
        self.states.update(lineage, now_ms, |state| {
            let state = state.at(window);
            state.budget = budget;
            let share = state.share(seat.base(budget));
            let admitted = window == state.window && state.admitted < share;
            if admitted {
                state.admitted += 1;
            } else {
                state.refused += 1;
            }
            Admission {
                admitted,
                share,
                admitted_count: state.admitted,
            }
        })
    }

    /// Hands part of this node's unused share to `to`, which published `need`. Gives at
    /// most half of what is unused (so a node keeps room for its own clients) and never
    /// more than the need. Returns the new cumulative amount given to `to`, to publish,
    /// or `None` when nothing was given. The share is lowered here, before anything is
    /// published, which is what keeps the cluster-wide sum within the budget.
    pub fn grant(
        &self,
        lineage: &Lineage,
        window: u64,
        base: u64,
        (to, need): (&str, u64),
        now_ms: u64,
    ) -> Option<u64> {
        self.states.update(lineage, now_ms, |state| {
            let state = state.at(window);
            if state.window != window || need == 0 {
                return None;
            }
            let unused = state.share(base).saturating_sub(state.admitted);
            let offer = (unused / 2).max(unused.min(1));
            let gift = need.min(offer);
            if gift == 0 {
                return None;
            }
            let total = state.given.entry(to.to_owned()).or_default();
            *total += gift;
            Some(*total)
        })
    }

    /// Takes in `from`'s cumulative handoff to this node. Only ever raises what was seen.
    pub fn receive(&self, lineage: &Lineage, window: u64, from: &str, total: u64, now_ms: u64) {
        self.states.update(lineage, now_ms, |state| {
            let state = state.at(window);
            if state.window == window {
                let seen = state.seen.entry(from.to_owned()).or_default();
                *seen = (*seen).max(total);
            }
        });
    }

    /// What this node publishes for `window`: every lineage with handoffs or unmet need.
    pub fn reports(&self, window: u64) -> Vec<ShareReport> {
        self.states.collect(|lineage, state| {
            let live = state.window == window && (state.need() > 0 || !state.given.is_empty());
            live.then(|| ShareReport {
                lineage: lineage.clone(),
                window,
                given: state.given.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                need: state.need(),
                budget: state.budget,
            })
        })
    }

    /// Drops lineages whose windows have passed.
    pub fn prune(&self, now_ms: u64) {
        self.states.prune(now_ms);
    }
}

#[cfg(test)]
mod tests;
