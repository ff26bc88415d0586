//! Budget counts shared between nodes (fast mode).
//!
//! Each node writes one gossip key, `rate`, holding its own counts of the lineages that
//! are hot on it: near their per-node share of the budget (see
//! [`crate::abuse::budget::Budgets::report`]). Counts are absolute per window, so a
//! peer simply keeps every node's latest report and sets a lineage's peer total to the
//! sum; a lost or repeated update changes nothing. Quiet lineages are never written, so
//! gossip volume follows the number of lineages near their budget, and the value is cut
//! to the hottest entries that fit one gossip value.
//!
//! In strict mode each node also writes `share`: its cumulative handoffs and unmet need
//! per lineage for the current window (see [`crate::abuse::shares`]). A node hears a
//! peer's need and, if it has unused share, hands part of it over in its own next value;
//! it hears handoffs addressed to it and raises its share by them.

use std::collections::{BTreeSet, HashMap};

use crate::abuse::budget::{Lineage, Report, WINDOW_MS};
use crate::abuse::shares::ShareReport;
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

    /// The value of this node's `share` key now; `None` in fast mode, which writes no
    /// such key.
    pub fn shares_out(&self, shield: &Shield, now_ms: u64) -> Option<String> {
        if !shield.budgets.strict() {
            return None;
        }
        let mut reports = shield.budgets.shares.reports(now_ms / WINDOW_MS);
        reports.sort_by(|a, b| b.need.cmp(&a.need).then_with(|| a.lineage.cmp(&b.lineage)));
        let mut value = wire::encode(&reports);
        while value.len() > wire::MAX_VALUE_BYTES {
            reports.truncate(reports.len() / 2);
            value = wire::encode(&reports);
        }
        Some(value)
    }

    /// Takes in `from`'s share value: handoffs addressed to this node raise its share;
    /// needs are answered from unused share, to be published in this node's next value.
    pub fn shares_in(
        &mut self,
        from: &str,
        own_id: &str,
        reports: Vec<ShareReport>,
        shield: &Shield,
        now_ms: u64,
    ) {
        if !shield.budgets.strict() {
            return;
        }
        let window = now_ms / WINDOW_MS;
        let seat = shield.seat();
        let book = &shield.budgets.shares;
        for report in reports.into_iter().filter(|r| r.window == window) {
            for (to, total) in &report.given {
                if to == own_id {
                    tracing::debug!(node.id = from, total, "budget share handed over to us");
                    book.receive(&report.lineage, window, from, *total, now_ms);
                }
            }
            let base = seat.base(report.budget);
            let given = book.grant(&report.lineage, window, base, (from, report.need), now_ms);
            if let Some(total) = given {
                tracing::debug!(
                    node.id = from,
                    need = report.need,
                    total,
                    "budget share handed over"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abuse::budget::Verdict;
    use crate::abuse::shares::Seat;
    use crate::config::Config;
    use crate::verifier::AccessToken;

    const NOW_MS: u64 = 1_700_000_040_000;

    fn shield(index: usize, mode: &str) -> Shield {
        let config = Config::from_toml(&format!(
            "issuer = \"http://x\"\naudiences = [\"a\"]\ndata_dir = \"/d\"\n\
             [rate_limits]\nmode = \"{mode}\"\nper_minute = 10\nabuse_factor = 100\n"
        ))
        .expect("valid config");
        let shield = Shield::new(&config);
        shield.set_seat(Seat { index, members: 2 });
        shield
    }

    fn token() -> AccessToken {
        AccessToken {
            jti: "j".into(),
            subject: "alice".into(),
            client_id: "web".into(),
            scope: String::new(),
            family: Some("fam".into()),
            issued_at: NOW_MS / 1000,
            expires_at: NOW_MS / 1000 + 300,
            audiences: vec!["a".into()],
            kid: "k".into(),
        }
    }

    fn admitted(shield: &Shield, n: usize) -> usize {
        (0..n)
            .filter(|_| {
                let verdict = shield.budgets.charge(&token(), NOW_MS, shield.seat());
                matches!(verdict, Verdict::Allow(_))
            })
            .count()
    }

    #[test]
    fn a_needy_node_gets_share_from_an_idle_one_through_gossip_values() {
        let (a, b) = (shield(0, "strict"), shield(1, "strict"));
        let (mut at_a, mut at_b) = (RateExchange::default(), RateExchange::default());
        let mut total_a = admitted(&a, 8);
        assert_eq!(total_a, 5, "node a starts with half of 10");
        for _ in 0..4 {
            let from_a = at_a
                .shares_out(&a, NOW_MS)
                .expect("strict mode writes shares");
            let reports = wire::decode(&from_a).expect("decodes");
            at_b.shares_in("a", "b", reports, &b, NOW_MS);
            let from_b = at_b
                .shares_out(&b, NOW_MS)
                .expect("strict mode writes shares");
            let reports = wire::decode(&from_b).expect("decodes");
            at_a.shares_in("b", "a", reports, &a, NOW_MS);
            total_a += admitted(&a, 2);
        }
        let left_at_b = admitted(&b, 10);
        assert!(total_a > 5, "node a was handed share: {total_a}");
        assert!(total_a + left_at_b <= 10, "{total_a} + {left_at_b}");
    }

    #[test]
    fn peers_counts_of_a_hot_lineage_travel_in_the_rate_value() {
        let (a, b) = (shield(0, "fast"), shield(1, "fast"));
        let mut at_a = RateExchange::default();
        let mut at_b = RateExchange::default();
        admitted(&a, 4);
        let value = at_a.outgoing(&a, NOW_MS);
        let reports: Vec<Report> = wire::decode(&value).expect("decodes");
        assert_eq!(reports.len(), 1, "hot once at half its share");
        at_b.incoming("a", reports, &b, NOW_MS);
        // Node b counts a's four: its own sixth request is the budget's eleventh.
        let seat = b.seat();
        let verdicts: Vec<Verdict> = (0..7)
            .map(|_| b.budgets.charge(&token(), NOW_MS, seat))
            .collect();
        assert!(matches!(verdicts[5], Verdict::Allow(q) if q.used == 10));
        assert!(matches!(verdicts[6], Verdict::Limit(q) if q.used == 11));
    }
}
