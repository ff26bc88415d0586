//! Budget counts shared between nodes (fast mode).
//!
//! Each node writes one gossip key, `rate`, holding its own counts of the lineages that
//! are hot on it: near their per-node share of the budget (see
//! [`crate::abuse::budget::Budgets::report`]). Counts are absolute per window, so a
//! peer simply keeps every node's latest report and sets a lineage's peer total to the
//! sum; a lost or repeated update changes nothing. Quiet lineages are never written, so
//! gossip volume follows the number of lineages near their budget, and the value is cut
//! to the hottest entries that fit one gossip value.

use std::collections::{BTreeSet, HashMap};

use crate::abuse::budget::{Lineage, Report};
use crate::abuse::Shield;

use super::wire;

/// Peer reports and this node's hot lineages, owned by the gossip actor.
#[derive(Default)]
pub struct RateExchange {
    /// Lineages this node reports until they cool down.
    hot: BTreeSet<Lineage>,
    /// Every peer's latest report, by node id.
    peers: HashMap<String, Vec<Report>>,
}

impl RateExchange {
    /// The value of this node's `rate` key now: its hot lineages' counts, hottest
    /// first, cut to fit one gossip value.
    pub fn outgoing(&mut self, shield: &Shield, now_ms: u64) -> String {
        self.hot.extend(shield.budgets.take_hot());
        let members = shield.members();
        let mut reports = Vec::new();
        self.hot.retain(
            |lineage| match shield.budgets.report(lineage, now_ms, members) {
                Some(found) => {
                    reports.extend(found);
                    true
                }
                None => false,
            },
        );
        reports.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.lineage.cmp(&b.lineage))
        });
        let mut value = wire::encode(&reports);
        while value.len() > wire::MAX_VALUE_BYTES {
            // Rare: thousands of hot lineages at once. Keep the hottest that fit.
            reports.truncate(reports.len() / 2);
            value = wire::encode(&reports);
        }
        value
    }

    /// Takes in `from`'s latest report and sets the peer totals of every lineage it
    /// names now or named before.
    pub fn incoming(&mut self, from: &str, reports: Vec<Report>, shield: &Shield, now_ms: u64) {
        let previous = self.peers.insert(from.to_owned(), reports);
        let mut totals: HashMap<(&Lineage, u64), u64> = HashMap::new();
        for report in self.peers.values().flatten() {
            *totals.entry((&report.lineage, report.window)).or_default() += report.count;
        }
        let named_now = self.peers[from].iter();
        for report in previous.iter().flatten().chain(named_now) {
            let key = (&report.lineage, report.window);
            let total = totals.get(&key).copied().unwrap_or(0);
            shield
                .budgets
                .set_peer_total(&report.lineage, report.window, total, now_ms);
        }
    }
}
