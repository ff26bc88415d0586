//! The strict-mode invariant under random interleavings, and shares following demand.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const WINDOW: u64 = 28_333_334;
const NOW_MS: u64 = WINDOW * 60_000 + 1;

fn lineage() -> Lineage {
    Lineage::Family("f".into())
}

/// A simulated cluster: books, what each node has published so far, and what each node
/// has heard of its peers' needs.
struct Sim {
    ids: Vec<String>,
    books: Vec<ShareBook>,
    /// Every snapshot each node published, oldest first.
    published: Vec<Vec<Vec<ShareReport>>>,
    /// needs[m][k]: the latest need of node k that node m has heard.
    needs: Vec<BTreeMap<usize, u64>>,
    admitted: Vec<u64>,
    budget: u64,
}

impl Sim {
    fn new(members: usize, budget: u64) -> Self {
        Self {
            ids: (1..=members).map(|i| format!("n{i}")).collect(),
            books: (0..members).map(|_| ShareBook::new(64)).collect(),
            published: vec![Vec::new(); members],
            needs: vec![BTreeMap::new(); members],
            admitted: vec![0; members],
            budget,
        }
    }

    fn seat(&self, k: usize) -> Seat {
        Seat {
            index: k,
            members: self.ids.len(),
        }
    }

    fn request(&mut self, k: usize) -> bool {
        let seat = self.seat(k);
        let admission = self.books[k].admit(&lineage(), self.budget, seat, WINDOW, NOW_MS);
        self.admitted[k] += u64::from(admission.admitted);
        admission.admitted
    }

    fn publish(&mut self, k: usize) {
        let reports = self.books[k].reports(WINDOW);
        self.published[k].push(reports);
    }

    /// Delivers snapshot `which` of node k's history to node m (any snapshot: gossip may
    /// deliver late or out of order, but never something not yet published).
    fn deliver(&mut self, k: usize, m: usize, which: usize) {
        let Some(snapshot) = self.published[k].get(which) else {
            return;
        };
        for report in snapshot.clone() {
            for (to, total) in &report.given {
                if *to == self.ids[m] {
                    self.books[m].receive(&report.lineage, WINDOW, &self.ids[k], *total, NOW_MS);
                }
            }
            self.needs[m].insert(k, report.need);
        }
    }

    fn grant(&mut self, m: usize) {
        let needs: Vec<(usize, u64)> = self.needs[m].iter().map(|(k, n)| (*k, *n)).collect();
        for (k, need) in needs {
            let base = self.seat(m).base(self.budget);
            let to = (self.ids[k].as_str(), need);
            self.books[m].grant(&lineage(), WINDOW, base, to, NOW_MS);
        }
    }

    fn total(&self) -> u64 {
        self.admitted.iter().sum()
    }
}

#[test]
fn base_shares_add_up_to_the_budget() {
    for members in 1..=7 {
        for budget in 0..50 {
            let sum: u64 = (0..members)
                .map(|index| Seat { index, members }.base(budget))
                .sum();
            assert_eq!(sum, budget, "{members} members, budget {budget}");
        }
    }
}

#[test]
fn the_cluster_never_admits_more_than_the_budget_under_random_interleavings() {
    let mut moved = 0;
    for seed in 0..300u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let members = if seed % 2 == 0 { 3 } else { 5 };
        let budget = rng.gen_range(1..60);
        let mut sim = Sim::new(members, budget);
        for _ in 0..2_000 {
            let k = rng.gen_range(0..members);
            match rng.gen_range(0..10) {
                0..=4 => {
                    // Skewed demand, so that share has a reason to move.
                    let at = if rng.gen_bool(0.6) { 0 } else { k };
                    sim.request(at);
                }
                5 | 6 => sim.publish(k),
                7 | 8 => {
                    let m = rng.gen_range(0..members);
                    let history = sim.published[k].len();
                    if m != k && history > 0 {
                        sim.deliver(k, m, rng.gen_range(0..history));
                    }
                }
                _ => sim.grant(k),
            }
            assert!(
                sim.total() <= budget,
                "seed {seed}: admitted {} of a budget of {budget}",
                sim.total()
            );
        }
        let over_base = (0..members).any(|k| sim.admitted[k] > sim.seat(k).base(budget));
        moved += usize::from(over_base);
    }
    // The property is only worth something if share did move in many runs.
    assert!(moved >= 100, "share moved in only {moved} of 300 runs");
}

#[test]
fn share_follows_a_client_that_sticks_to_one_node() {
    let mut sim = Sim::new(3, 90);
    // Node 0 alone sees the client; its base share is 30.
    let first: u64 = (0..60).map(|_| u64::from(sim.request(0))).sum();
    assert_eq!(first, 30);
    // A few gossip rounds: node 0 publishes its need, peers hand over, node 0 hears.
    for _ in 0..12 {
        sim.publish(0);
        for m in 1..3 {
            let latest = sim.published[0].len() - 1;
            sim.deliver(0, m, latest);
            sim.grant(m);
            sim.publish(m);
            let theirs = sim.published[m].len() - 1;
            sim.deliver(m, 0, theirs);
        }
        for _ in 0..10 {
            sim.request(0);
        }
    }
    assert!(sim.admitted[0] >= 85, "node 0 admitted {}", sim.admitted[0]);
    assert!(sim.total() <= 90);
}

#[test]
fn a_new_window_starts_from_the_base_share() {
    let book = ShareBook::new(16);
    let seat = Seat {
        index: 0,
        members: 2,
    };
    let admitted: u64 = (0..10)
        .map(|_| u64::from(book.admit(&lineage(), 10, seat, WINDOW, NOW_MS).admitted))
        .sum();
    assert_eq!(admitted, 5);
    book.grant(&lineage(), WINDOW, seat.base(10), ("n2", 3), NOW_MS);
    let next = book.admit(&lineage(), 10, seat, WINDOW + 1, NOW_MS + 60_000);
    assert_eq!((next.admitted, next.share), (true, 5));
    assert!(book.reports(WINDOW + 1).is_empty());
}
