//! Strict budgets across real processes: hammered round-robin, the cluster admits no
//! more than the budget in any window; a client sticking to one node soon gets more
//! than that node's base share, as the others hand theirs over.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cluster_tests::api;
use cluster_tests::{wait_until, Cluster, Options};

const BUDGET: u64 = 30;

fn strict() -> Options {
    Options {
        sections: format!(
            "[rate_limits]\nmode = \"strict\"\nper_minute = {BUDGET}\nabuse_factor = 1000\n"
        ),
        ..Options::default()
    }
}

fn window_now() -> u64 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64;
    ms / 60_000
}

#[test]
fn strict_budgets_admit_no_more_than_the_budget_across_the_cluster() {
    let cluster = Cluster::start(3, strict());
    cluster.wait_converged();
    let token = api::alice(cluster.node(1).base()).access;
    // Admissions per one-minute window (a run may straddle a boundary).
    let mut admitted: BTreeMap<u64, u64> = BTreeMap::new();
    for round in 0..60 {
        for node in cluster.nodes() {
            let before = window_now();
            let status = api::check(node.base(), &token);
            let after = window_now();
            assert!(status == 200 || status == 429, "round {round}: {status}");
            if status == 200 {
                // Attribute an admission at a boundary to both windows: the bound must
                // hold even counting it twice.
                for window in before..=after {
                    *admitted.entry(window).or_default() += 1;
                }
            }
        }
    }
    eprintln!("admitted per window: {admitted:?}");
    for (window, count) in &admitted {
        assert!(*count <= BUDGET + 1, "window {window}: {count} admitted");
    }
    assert!(admitted.values().any(|c| *c >= BUDGET / 2), "{admitted:?}");
}

#[test]
fn share_follows_a_client_that_sticks_to_one_node() {
    let cluster = Cluster::start(3, strict());
    cluster.wait_converged();
    let token = api::alice(cluster.node(1).base()).access;
    let base = cluster.node(1).base();
    let mut admitted: BTreeMap<u64, u64> = BTreeMap::new();
    // Node 1's base share is 10 of 30; handoffs from the idle nodes raise it.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(
            "node 1 to admit more than its base share",
            Duration::from_secs(8),
            || {
                let window = window_now();
                if api::check(base, &token) == 200 {
                    *admitted.entry(window).or_default() += 1;
                }
                admitted.values().any(|c| *c > BUDGET / 3 + 5)
            },
        )
    }));
    eprintln!("admitted per window on node 1: {admitted:?}");
    assert!(admitted.values().all(|c| *c <= BUDGET));
}
