//! The login defence with an explicit clock: limits, trusted networks, bans.

use std::time::Duration;

use super::*;

const T0: u64 = 1_700_000_040_000;
const MINUTE: u64 = 60_000;

fn settings() -> LoginSettings {
    LoginSettings {
        per_address: 20,
        per_address_user: 5,
        per_user: 8,
        trusted_network_ttl: Duration::from_secs(3600),
        hashing_concurrency: 2,
        ban_after_failures: 10,
        ban_steps: vec![
            Duration::from_secs(60),
            Duration::from_secs(600),
            Duration::from_secs(3600),
        ],
        ban_memory: Duration::from_secs(24 * 3600),
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address")
}

#[test]
fn one_address_is_cut_off_at_its_limit_and_stays_cut_off_while_it_hammers() {
    let guard = LoginGuard::new(settings(), 1_000);
    let deny = DenyList::default();
    let bot = ip("198.51.100.9");
    let results: Vec<_> = (0..100)
        .map(|i| guard.admit(bot, &format!("user{i}"), T0, &deny))
        .collect();
    assert!(results[..20].iter().all(Result::is_ok));
    assert!(results[20..]
        .iter()
        .all(|r| *r == Err(Refusal::AddressLimit)));
    // A minute later the refused attempts still weigh on the sliding window.
    assert_eq!(
        guard.admit(bot, "x", T0 + MINUTE / 2, &deny),
        Err(Refusal::AddressLimit)
    );
}

#[test]
fn one_user_name_from_one_address_has_a_tighter_limit() {
    let guard = LoginGuard::new(settings(), 1_000);
    let deny = DenyList::default();
    let addr = ip("198.51.100.9");
    for _ in 0..5 {
        assert_eq!(guard.admit(addr, "alice", T0, &deny), Ok(()));
    }
    assert_eq!(
        guard.admit(addr, "alice", T0, &deny),
        Err(Refusal::AddressUserLimit)
    );
    assert_eq!(guard.admit(addr, "bob", T0, &deny), Ok(()));
}

#[test]
fn an_attacked_user_still_logs_in_from_a_network_it_used_before() {
    let guard = LoginGuard::new(settings(), 1_000);
    let deny = DenyList::default();
    let home = ip("192.0.2.10");
    guard.succeeded(home, "alice", T0 - 1_000);
    // A botnet: many addresses, a few attempts each, all at alice.
    for i in 0..200 {
        let bot = ip(&format!("203.0.{}.{}", i / 200, i % 200 + 1));
        let _ = guard.admit(bot, "alice", T0, &deny);
    }
    let fresh = ip("203.0.113.250");
    assert_eq!(
        guard.admit(fresh, "alice", T0, &deny),
        Err(Refusal::UserLimit)
    );
    // Her own network (same /24, another address) is not held back.
    assert_eq!(guard.admit(ip("192.0.2.77"), "alice", T0, &deny), Ok(()));
    // Other users are unaffected.
    assert_eq!(guard.admit(fresh, "bob", T0, &deny), Ok(()));
    // Trust ends with its lifetime.
    let later = T0 + 2 * 3_600_000;
    for i in 0..10 {
        let bot = ip(&format!("203.0.1.{}", i + 1));
        let _ = guard.admit(bot, "alice", later, &deny);
    }
    assert_eq!(
        guard.admit(ip("192.0.2.77"), "alice", later, &deny),
        Err(Refusal::UserLimit)
    );
}

#[test]
fn failures_earn_bans_that_escalate_and_expire() {
    let guard = LoginGuard::new(settings(), 1_000);
    let deny = DenyList::default();
    let bot = ip("198.51.100.9");
    let mut now = T0;
    let mut lengths = Vec::new();
    for _ in 0..4 {
        let bans: Vec<Revocation> = (0..10)
            .filter_map(|_| guard.failed(bot, now, &deny))
            .collect();
        assert_eq!(bans.len(), 1, "the tenth failure issues exactly one ban");
        let ban = bans.into_iter().next().expect("one ban");
        let Target::Address { until_ms, .. } = ban.target else {
            panic!("a login ban targets an address");
        };
        assert_eq!(ban.reason, Reason::LoginFlood);
        assert!(
            ban.expires_ms >= now + 24 * 3_600_000,
            "kept for the ban memory"
        );
        lengths.push((until_ms - now) / 1000);
        deny.insert(ban);
        assert!(matches!(
            guard.admit(bot, "x", now + 1, &deny),
            Err(Refusal::Banned { .. })
        ));
        // The ban ends on its own.
        now = until_ms + 1;
        assert!(deny.ban("198.51.100.9", now).is_none());
        now += 2 * MINUTE;
    }
    assert_eq!(lengths, vec![60, 600, 3600, 3600]);
}

#[test]
fn a_lifted_ban_stops_at_once_and_resets_the_escalation() {
    let guard = LoginGuard::new(settings(), 1_000);
    let deny = DenyList::default();
    let bot = ip("198.51.100.9");
    let ban = (0..10)
        .find_map(|_| guard.failed(bot, T0, &deny))
        .expect("ten failures ban");
    deny.insert(ban);
    deny.insert(Revocation {
        target: Target::Address {
            address: "198.51.100.9".into(),
            until_ms: T0 + 5,
            offence: 0,
        },
        reason: Reason::Lifted,
        created_ms: T0 + 5,
        expires_ms: T0 + 24 * 3_600_000,
    });
    guard.forgive("198.51.100.9");
    assert!(deny.ban("198.51.100.9", T0 + 10).is_none());
    assert_eq!(deny.offences("198.51.100.9"), 0);
    assert_eq!(guard.admit(bot, "x", T0 + 10, &deny), Ok(()));
}

#[test]
fn hashing_permits_run_out_instead_of_queueing() {
    let guard = LoginGuard::new(settings(), 1_000);
    let first = guard.hashing_permit().expect("a free permit");
    let _second = guard.hashing_permit().expect("a second permit");
    assert!(guard.hashing_permit().is_none());
    drop(first);
    assert!(guard.hashing_permit().is_some());
}

#[test]
fn limits_are_cluster_wide_so_each_node_enforces_its_share() {
    // Three nodes, each a guard of its own: a bot spreading attempts over all of them
    // gets no more than the configured limits in total.
    let nodes: Vec<LoginGuard> = (0..3).map(|_| LoginGuard::new(settings(), 1_000)).collect();
    for node in &nodes {
        node.set_members(3);
    }
    let deny = DenyList::default();
    let bot = ip("198.51.100.9");
    let admitted = (0..300)
        .filter(|i| nodes[i % 3].admit(bot, &format!("u{i}"), T0, &deny).is_ok())
        .count();
    assert_eq!(admitted, 21, "⌈20 / 3⌉ = 7 per node");
    let bans = (0..30)
        .filter_map(|i| nodes[i % 3].failed(bot, T0, &deny))
        .count();
    assert_eq!(
        bans, 3,
        "each node bans at its share, ⌈10 / 3⌉ = 4 failures"
    );
    let first = (0..4).position(|_| nodes[0].failed(ip("192.0.2.1"), T0, &deny).is_some());
    assert_eq!(first, Some(3), "one node alone bans at the fourth failure");
    assert_eq!(nodes[0].ban_threshold(), 4);
    nodes[0].set_members(1);
    assert_eq!(nodes[0].ban_threshold(), 10, "alone again, the full limit");
}

#[test]
fn trusted_networks_gossiped_by_one_node_open_the_others() {
    let here = LoginGuard::new(settings(), 1_000);
    let there = LoginGuard::new(settings(), 1_000);
    let deny = DenyList::default();
    let home = ip("192.0.2.10");
    here.succeeded(home, "alice", T0);
    here.succeeded(home, "alice", T0 + 1);
    let grants = here.recent_trust(T0 + 2);
    assert_eq!(
        grants.len(),
        1,
        "a repeated success is one grant: {grants:?}"
    );
    assert_eq!(grants[0].network, "192.0.2.0/24");
    there.trust(&grants, T0 + 2);
    // A botnet exhausts Alice's per-user limit on the other node.
    for i in 0..50 {
        let _ = there.admit(ip(&format!("203.0.113.{i}")), "alice", T0 + 3, &deny);
    }
    assert_eq!(
        there.admit(ip("203.0.113.200"), "alice", T0 + 3, &deny),
        Err(Refusal::UserLimit)
    );
    assert_eq!(
        there.admit(ip("192.0.2.77"), "alice", T0 + 3, &deny),
        Ok(())
    );
    // The grant leaves the gossiped value after a minute; the trust itself stays.
    assert!(here.recent_trust(T0 + 1 + MINUTE).is_empty());
}

#[test]
fn a_peer_grant_cannot_outlast_the_local_trusted_lifetime() {
    let guard = LoginGuard::new(settings(), 1_000);
    let deny = DenyList::default();
    let forever = TrustGrant {
        user: "alice".into(),
        network: "192.0.2.0/24".into(),
        until_ms: u64::MAX,
    };
    guard.trust(&[forever], T0);
    let after_ttl = T0 + 3_600_000 + 1;
    for i in 0..50 {
        let _ = guard.admit(ip(&format!("203.0.113.{i}")), "alice", after_ttl, &deny);
    }
    assert_eq!(
        guard.admit(ip("192.0.2.77"), "alice", after_ttl, &deny),
        Err(Refusal::UserLimit),
        "trust past the local lifetime was capped"
    );
}
