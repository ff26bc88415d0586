//! Budget decisions with an explicit clock: windows, tightest budget, abuse, gossip.

use std::collections::BTreeMap;

use super::*;
use crate::abuse::shares::Seat;
use crate::config::BudgetMode;

const T0: u64 = 1_700_000_080_000; // 40 s into a minute window

fn settings(per_minute: u64) -> RateLimitSettings {
    RateLimitSettings {
        enabled: true,
        mode: BudgetMode::Fast,
        per_minute,
        clients: BTreeMap::from([("tight-client".into(), 5)]),
        scopes: BTreeMap::from([("orders:write".into(), 3)]),
        abuse_factor: 2.0,
        max_counters: 1_000,
    }
}

fn token(jti: &str, family: Option<&str>, client: &str, scope: &str) -> AccessToken {
    AccessToken {
        jti: jti.into(),
        subject: "alice".into(),
        client_id: client.into(),
        scope: scope.into(),
        family: family.map(String::from),
        issued_at: T0 / 1000,
        expires_at: T0 / 1000 + 300,
        audiences: vec!["api".into()],
        kid: "k".into(),
    }
}

fn seat(members: usize) -> Seat {
    Seat { index: 0, members }
}

fn charge_n(budgets: &Budgets, token: &AccessToken, n: u64, now_ms: u64) -> Vec<Verdict> {
    (0..n)
        .map(|_| budgets.charge(token, now_ms, seat(1)))
        .collect()
}

#[test]
fn admits_the_budget_then_limits_with_a_reset_hint() {
    let budgets = Budgets::new(settings(10));
    let user = token("j1", Some("fam"), "web", "orders:read");
    let verdicts = charge_n(&budgets, &user, 11, T0);
    assert!(verdicts[..10]
        .iter()
        .all(|v| matches!(v, Verdict::Allow(_))));
    let Verdict::Limit(quota) = verdicts[10] else {
        panic!("the 11th request is over budget: {:?}", verdicts[10]);
    };
    assert_eq!(
        (quota.limit, quota.remaining, quota.reset_secs),
        (10, 0, 20)
    );
    let Verdict::Allow(first) = verdicts[0] else {
        unreachable!()
    };
    assert_eq!(first.remaining, 9);
}

#[test]
fn a_new_token_of_the_same_lineage_does_not_reset_the_budget() {
    let budgets = Budgets::new(settings(4));
    charge_n(&budgets, &token("old", Some("fam"), "web", ""), 4, T0);
    let refreshed = token("new", Some("fam"), "web", "");
    assert!(matches!(
        budgets.charge(&refreshed, T0, seat(1)),
        Verdict::Limit(_)
    ));
    // Another family of the same client has its own budget.
    let other = token("x", Some("fam-2"), "web", "");
    assert!(matches!(
        budgets.charge(&other, T0, seat(1)),
        Verdict::Allow(_)
    ));
    // Client-credentials tokens share the client's lineage.
    let service = token("s1", None, "svc", "");
    charge_n(&budgets, &service, 4, T0);
    let reminted = token("s2", None, "svc", "");
    assert!(matches!(
        budgets.charge(&reminted, T0, seat(1)),
        Verdict::Limit(_)
    ));
}

#[test]
fn the_tightest_of_default_client_and_scope_budgets_applies() {
    let budgets = Budgets::new(settings(100));
    let limit_of = |t: &AccessToken| match budgets.charge(t, T0, seat(1)) {
        Verdict::Allow(q) | Verdict::Limit(q) | Verdict::Abuse(q) => q.limit,
    };
    assert_eq!(limit_of(&token("a", Some("f1"), "web", "orders:read")), 100);
    assert_eq!(limit_of(&token("b", Some("f2"), "tight-client", "x")), 5);
    assert_eq!(
        limit_of(&token("c", Some("f3"), "web", "a orders:write")),
        3
    );
    assert_eq!(
        limit_of(&token("d", Some("f4"), "tight-client", "orders:write")),
        3
    );
}

#[test]
fn the_window_slides_and_then_forgets() {
    let budgets = Budgets::new(settings(10));
    let user = token("j", Some("fam"), "web", "");
    charge_n(&budgets, &user, 10, T0);
    assert!(matches!(
        budgets.charge(&user, T0, seat(1)),
        Verdict::Limit(_)
    ));
    // 30 s into the next window, half of the old count still weighs: 11 / 2 = 5 used.
    let next = T0 + 50_000;
    let Verdict::Allow(quota) = budgets.charge(&user, next, seat(1)) else {
        panic!("half the old window has slid out");
    };
    assert_eq!(quota.remaining, 10 - 5 - 1);
    // Two windows later the lineage starts afresh.
    let Verdict::Allow(quota) = budgets.charge(&user, T0 + 140_000, seat(1)) else {
        panic!("old windows are forgotten");
    };
    assert_eq!(quota.remaining, 9);
}

#[test]
fn past_the_abuse_factor_the_lineage_is_flagged_once_per_window() {
    let budgets = Budgets::new(settings(10));
    let user = token("j", Some("fam"), "web", "");
    let verdicts = charge_n(&budgets, &user, 25, T0);
    let abuse: Vec<usize> = verdicts
        .iter()
        .enumerate()
        .filter(|(_, v)| matches!(v, Verdict::Abuse(_)))
        .map(|(i, _)| i)
        .collect();
    // Request 21 is the first past 2 × 10.
    assert_eq!(abuse, vec![20]);
    assert!(matches!(verdicts[24], Verdict::Limit(_)));
}

#[test]
fn peer_totals_count_against_the_budget() {
    let budgets = Budgets::new(settings(10));
    let user = token("j", Some("fam"), "web", "");
    let lineage = Lineage::of(&user);
    let window = T0 / WINDOW_MS;
    budgets.set_peer_total(&lineage, window, 9, T0);
    assert!(matches!(
        budgets.charge(&user, T0, seat(3)),
        Verdict::Allow(_)
    ));
    assert!(matches!(
        budgets.charge(&user, T0, seat(3)),
        Verdict::Limit(_)
    ));
    budgets.set_peer_total(&lineage, window, 30, T0);
    assert!(matches!(
        budgets.charge(&user, T0, seat(3)),
        Verdict::Abuse(_)
    ));
}

#[test]
fn only_lineages_near_their_share_are_reported() {
    let budgets = Budgets::new(settings(60));
    let quiet = token("q", Some("quiet"), "web", "");
    let busy = token("b", Some("busy"), "web", "");
    budgets.charge(&quiet, T0, seat(3));
    // Three members: a share is 20, hot from 10 local requests.
    charge_n(&budgets, &busy, 9, T0);
    assert!(budgets.take_hot().is_empty());
    budgets.charge(&busy, T0, seat(3));
    let hot = budgets.take_hot();
    assert_eq!(hot, vec![Lineage::Family("busy".into())]);
    let reports = budgets.report(&hot[0], T0, 3).expect("still hot");
    assert_eq!(
        reports,
        vec![Report {
            lineage: hot[0].clone(),
            window: T0 / WINDOW_MS,
            count: 10,
        }]
    );
    assert!(budgets.report(&Lineage::of(&quiet), T0, 3).is_none());
    // Two windows on it has cooled and stops being reported.
    assert!(budgets.report(&hot[0], T0 + 2 * WINDOW_MS, 3).is_none());
}

#[test]
fn counter_memory_stays_under_the_cap_under_address_rotation() {
    let budgets = Budgets::new(settings(10));
    for i in 0..100_000 {
        let family = format!("fam-{i}");
        budgets.charge(&token("j", Some(&family), "web", ""), T0, seat(1));
    }
    let (held, cap) = budgets.occupancy();
    assert!(held <= cap && cap <= 1_024, "{held} entries, cap {cap}");
}

#[test]
fn strict_mode_admits_only_this_nodes_share() {
    let mut strict = settings(30);
    strict.mode = BudgetMode::Strict;
    let budgets = Budgets::new(strict);
    let user = token("j", Some("fam"), "web", "");
    let second_of_three = Seat {
        index: 1,
        members: 3,
    };
    let verdicts: Vec<Verdict> = (0..12)
        .map(|_| budgets.charge(&user, T0, second_of_three))
        .collect();
    assert!(verdicts[..10]
        .iter()
        .all(|v| matches!(v, Verdict::Allow(_))));
    let Verdict::Limit(quota) = verdicts[10] else {
        panic!("past its share of 10: {:?}", verdicts[10]);
    };
    assert_eq!((quota.limit, quota.remaining), (30, 0));
    // The refusals are published as need, for peers to answer with handoffs.
    let reports = budgets.shares.reports(T0 / WINDOW_MS);
    assert_eq!(reports.len(), 1);
    assert_eq!((reports[0].need, reports[0].budget), (2, 30));
}
