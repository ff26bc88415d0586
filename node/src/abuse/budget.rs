//! Per-lineage request budgets ("abuse it and it's gone").
//!
//! A budget belongs to a token's lineage, not to the token: the refresh family for user
//! tokens, the client for `client_credentials` tokens, so refreshing or minting a new
//! token does not reset it. Every presentation is counted, admitted or not; past the
//! budget the answer is 429, and past `abuse_factor` × budget the lineage is revoked.
//!
//! Counts are this node's own plus the totals peers gossip (fast mode). A lineage is
//! gossiped only once it is near its budget on this node (see [`Budgets::hot`]), so
//! quiet tokens cost no gossip at all.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::shares::{Seat, ShareBook};
use super::table::{Table, Weigh};
use super::window::{Instant, Sliding};
use crate::config::{BudgetMode, RateLimitSettings};
use crate::verifier::AccessToken;

/// Budgets are per minute.
pub const WINDOW_MS: u64 = 60_000;

/// Whose budget a token spends.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Lineage {
    /// A user token's refresh family.
    Family(String),
    /// A client's `client_credentials` tokens.
    Client(String),
}

impl std::fmt::Display for Lineage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Family(id) => write!(f, "family:{id}"),
            Self::Client(id) => write!(f, "client:{id}"),
        }
    }
}

impl Lineage {
    /// The lineage of a verified access token.
    pub fn of(token: &AccessToken) -> Self {
        match &token.family {
            Some(family) => Self::Family(family.clone()),
            None => Self::Client(token.client_id.clone()),
        }
    }
}

/// One lineage's counts.
#[derive(Debug, Default)]
pub struct Usage {
    local: Sliding,
    /// Sum of the peers' gossiped counts.
    peers: Sliding,
    /// The budget last applied, for gossip thresholds.
    limit: u64,
    /// Window in which the lineage was revoked for abuse, so it is revoked once.
    revoked_in: Option<u64>,
    /// Whether the lineage is on the hot list awaiting gossip.
    hot: bool,
}

impl Weigh for Usage {
    fn weight(&self, now_ms: u64) -> u64 {
        let at = Instant::at(now_ms, WINDOW_MS);
        self.local.estimate(at) + self.peers.estimate(at)
    }
}

/// What the budget says about one presentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// The lineage's budget per minute.
    pub limit: u64,
    /// Requests left in the sliding window after this one.
    pub remaining: u64,
    /// Presentations counted in the sliding window, this one included, cluster-wide as
    /// far as this node knows.
    pub used: u64,
    /// Seconds until the current window ends (the RateLimit `t` parameter).
    pub reset_secs: u64,
}

/// The decision for one presentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within budget.
    Allow(Quota),
    /// Over budget: refuse with 429.
    Limit(Quota),
    /// Past the abuse threshold for the first time in this window: refuse and revoke.
    Abuse(Quota),
}

/// A lineage's count on this node in one window, as gossiped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The lineage.
    pub lineage: Lineage,
    /// Window number (Unix ms / [`WINDOW_MS`]).
    pub window: u64,
    /// Presentations counted on the reporting node in that window.
    pub count: u64,
}

/// Every lineage's counts on this node, bounded.
pub struct Budgets {
    settings: RateLimitSettings,
    usage: Table<Lineage, Usage>,
    /// Lineages that became hot since the gossip actor last looked.
    hot: Mutex<Vec<Lineage>>,
    /// Strict mode's shares (unused in fast mode).
    pub shares: ShareBook,
}

impl Budgets {
    /// Empty budgets under `settings`.
    pub fn new(settings: RateLimitSettings) -> Self {
        let usage = Table::new(settings.max_counters);
        let shares = ShareBook::new(settings.max_counters);
        Self {
            settings,
            usage,
            hot: Mutex::new(Vec::new()),
            shares,
        }
    }

    /// Whether budgets are enforced.
    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    /// The count past which a lineage with budget `limit` is revoked.
    pub fn abuse_threshold(&self, limit: u64) -> u64 {
        (limit as f64 * self.settings.abuse_factor).ceil() as u64
    }

    /// Whether budgets are shared strictly.
    pub fn strict(&self) -> bool {
        self.settings.mode == BudgetMode::Strict
    }

    /// Counts one presentation of `token` at `now_ms` and decides. `seat` is this node's
    /// place among the live members: their number sets how early a lineage is gossiped,
    /// and in strict mode both set this node's base share.
    pub fn charge(&self, token: &AccessToken, now_ms: u64, seat: Seat) -> Verdict {
        let limit = self
            .settings
            .budget_for(&token.client_id, token.scope.split(' '));
        let lineage = Lineage::of(token);
        let at = Instant::at(now_ms, WINDOW_MS);
        let abuse_at = self.abuse_threshold(limit);
        let members = seat.members;
        let strict = self
            .strict()
            .then(|| self.shares.admit(&lineage, limit, seat, at.window, now_ms));
        let (verdict, became_hot) = self.usage.update(&lineage, now_ms, |usage| {
            usage.limit = limit;
            usage.local.add(at, 1);
            let used = usage.local.estimate(at) + usage.peers.estimate(at);
            let (within, remaining) = match strict {
                // Strict: this node's share decides; the rest of the budget is elsewhere.
                Some(admission) => (
                    admission.admitted,
                    admission.share.saturating_sub(admission.admitted_count),
                ),
                None => (used <= limit, limit.saturating_sub(used)),
            };
            let quota = Quota {
                limit,
                remaining,
                used,
                reset_secs: at.remaining_ms().div_ceil(1000),
            };
            let verdict = if used > abuse_at && usage.revoked_in.is_none() {
                usage.revoked_in = Some(at.window);
                Verdict::Abuse(quota)
            } else if !within {
                Verdict::Limit(quota)
            } else {
                Verdict::Allow(quota)
            };
            let became_hot = !usage.hot && is_hot(usage.local.estimate(at), limit, members);
            usage.hot |= became_hot;
            (verdict, became_hot)
        });
        if became_hot {
            lock(&self.hot).push(lineage);
        }
        verdict
    }

    /// Lineages that became hot since the last call; the gossip actor reports them
    /// until they cool down.
    pub fn take_hot(&self) -> Vec<Lineage> {
        std::mem::take(&mut *lock(&self.hot))
    }

    /// This node's counts of `lineage` in the current and previous windows, or `None`
    /// once it has cooled (and is no longer marked hot).
    pub fn report(&self, lineage: &Lineage, now_ms: u64, members: usize) -> Option<Vec<Report>> {
        let at = Instant::at(now_ms, WINDOW_MS);
        self.usage
            .update(lineage, now_ms, |usage| {
                if !is_hot(usage.local.estimate(at), usage.limit, members) {
                    usage.hot = false;
                    return None;
                }
                let reports = [at.window.saturating_sub(1), at.window]
                    .into_iter()
                    .map(|window| (window, usage.local.count_in(window)))
                    .filter(|&(_, count)| count > 0)
                    .map(|(window, count)| Report {
                        lineage: lineage.clone(),
                        window,
                        count,
                    })
                    .collect();
                Some(reports)
            })
            .filter(|reports: &Vec<Report>| !reports.is_empty())
    }

    /// Sets the peers' total for `lineage` in `window` (the gossip actor sums the
    /// latest report of every live peer).
    pub fn set_peer_total(&self, lineage: &Lineage, window: u64, total: u64, now_ms: u64) {
        self.usage
            .update(lineage, now_ms, |usage| usage.peers.set(window, total));
    }

    /// Forgets this node's counts of `lineage` (an admin lifting its 429s here).
    /// Returns whether there were any.
    pub fn clear(&self, lineage: &Lineage) -> bool {
        self.usage.remove(lineage).is_some()
    }

    /// Counter entries held, and the cap.
    pub fn occupancy(&self) -> (usize, usize) {
        (self.usage.len(), self.usage.capacity())
    }

    /// Drops lineages whose windows have passed.
    pub fn prune(&self, now_ms: u64) {
        self.usage.prune(now_ms);
        self.shares.prune(now_ms);
    }
}

/// A lineage is hot on this node once its local count reaches half of this node's
/// even share of the budget: with `members` nodes splitting traffic evenly, peers hear
/// of it well before the cluster-wide total reaches the budget.
fn is_hot(local: u64, limit: u64, members: usize) -> bool {
    let share = limit / members.max(1) as u64;
    local > 0 && local * 2 >= share.max(1)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests;
