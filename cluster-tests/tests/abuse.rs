//! Anti-abuse across a cluster of real processes: a lineage hammering every node past
//! its budget is refused and revoked everywhere; a login ban made on one node holds on
//! the others; a token used from many networks (distinct loopback source addresses) is
//! revoked as stolen.

use std::net::Ipv4Addr;

use cluster_tests::api;
use cluster_tests::config::ALICE;
use cluster_tests::{wait_until, Cluster, Options, PROPAGATION};

fn options(sections: &str) -> Options {
    Options {
        sections: sections.to_owned(),
        ..Options::default()
    }
}

/// Revocations with this reason, as `node` lists them.
fn revoked_for(base: &str, admin: &str, reason: &str) -> usize {
    api::revocations(base, admin)
        .iter()
        .filter(|r| r["reason"] == reason)
        .count()
}

#[test]
fn a_lineage_hammering_every_node_past_its_budget_is_revoked_everywhere() {
    let cluster = Cluster::start(3, options("[rate_limits]\nper_minute = 30\n"));
    cluster.wait_converged();
    let session = api::alice(cluster.node(1).base());
    let nodes = cluster.nodes();

    // Round-robin over the three nodes until every one refuses the token; about 60
    // requests (2 × the budget) are needed, the deadline bounds the rest.
    let mut sent = 0usize;
    let mut admitted = 0usize;
    let mut refused = [false; 3];
    wait_until(
        "every node to refuse the hammering token",
        PROPAGATION,
        || {
            for (i, node) in nodes.iter().enumerate() {
                let ok = api::check(node.base(), &session.access) == 200;
                refused[i] = !ok;
                admitted += usize::from(ok);
                sent += 1;
            }
            refused.iter().all(|r| *r)
        },
    );
    eprintln!("refused by all three after {sent} requests, {admitted} admitted");
    assert!(
        admitted >= 30,
        "the budget admitted its 30 first: {admitted}"
    );
    // Nodes counting alone would admit 3 × 30; gossiped counts must cut that short.
    assert!(
        admitted < 90,
        "peers' counts were not taken into account: {admitted}"
    );

    // The family is revoked (401, not just 429) on every node, with its reason.
    let admin = api::admin_token(cluster.node(2).base());
    for node in nodes {
        wait_until(
            &format!("{} to hold the rate_abuse revocation", node.id()),
            PROPAGATION,
            || {
                api::rejects(node.base(), &session.access)
                    && revoked_for(node.base(), &admin, "rate_abuse") == 1
            },
        );
    }
    // The refresh token is of the same family: refused too.
    let refreshed = api::refresh(cluster.node(3).base(), session.refresh());
    assert_eq!(
        refreshed.map(|_| ()).map_err(|e| e.error),
        Err("invalid_grant".into())
    );
}

#[test]
fn a_login_ban_made_on_one_node_holds_on_the_others() {
    // Limits are cluster-wide: each of the three nodes bans at ⌈15 / 3⌉ = 5 failures
    // (and the attempts for one user from one address are let up to 10 here).
    let login = "[login]\nban_after_failures = 15\nper_address_user = 30\n";
    let cluster = Cluster::start(3, options(login));
    cluster.wait_converged();
    let bot = api::client_from(Ipv4Addr::new(127, 250, 1, 9));
    let n1 = cluster.node(1).base();
    let wrong = (ALICE.0, "not-her-password");
    let statuses: Vec<u16> = (0..8).map(|_| api::login_status(n1, &bot, wrong)).collect();
    assert_eq!(statuses, vec![400, 400, 400, 400, 400, 429, 429, 429]);

    for node in &cluster.nodes()[1..] {
        wait_until(
            &format!("{} to enforce the ban", node.id()),
            PROPAGATION,
            || api::login_status(node.base(), &bot, ALICE) == 429,
        );
    }
    // Alice herself, from her own address, logs in anywhere.
    let home = api::client_from(Ipv4Addr::new(127, 251, 1, 1));
    for node in cluster.nodes() {
        assert_eq!(
            api::login_status(node.base(), &home, ALICE),
            200,
            "{}",
            node.id()
        );
    }
    let admin = api::admin_token(cluster.node(3).base());
    let bans = api::admin_get(cluster.node(3).base(), &admin, "/admin/v1/bans");
    assert_eq!(bans["bans"][0]["address"], "127.250.1.9", "{bans}");
    assert_eq!(bans["bans"][0]["reason"], "login_flood", "{bans}");
}

#[test]
fn a_network_trusted_on_one_node_is_trusted_on_the_others_under_attack() {
    // Each node lets ⌈6 / 3⌉ = 2 attempts a minute for one user name through from
    // networks the user has not logged in from.
    let cluster = Cluster::start(3, options("[login]\nper_user = 6\n"));
    cluster.wait_converged();
    let home = api::client_from(Ipv4Addr::new(127, 251, 2, 1));
    assert_eq!(api::login_status(cluster.node(1).base(), &home, ALICE), 200);

    // A botnet guesses Alice's password on node 3 until her per-user limit is shut.
    let n3 = cluster.node(3).base();
    let wrong = (ALICE.0, "guess");
    let statuses: Vec<u16> = (1..=6)
        .map(|i| api::login_status(n3, &api::client_from(Ipv4Addr::new(127, 250, 2, i)), wrong))
        .collect();
    assert_eq!(statuses, vec![400, 400, 429, 429, 429, 429]);
    let elsewhere = api::client_from(Ipv4Addr::new(127, 251, 3, 1));
    assert_eq!(
        api::login_status(n3, &elsewhere, ALICE),
        429,
        "an untrusted network"
    );

    // Alice never logged in on node 3, but node 1 gossiped her network: another address
    // of it gets through.
    let laptop = api::client_from(Ipv4Addr::new(127, 251, 2, 2));
    wait_until("node 3 to trust Alice's network", PROPAGATION, || {
        api::login_status(n3, &laptop, ALICE) == 200
    });
}

#[test]
fn a_token_used_from_many_networks_is_revoked_as_stolen() {
    let cluster = Cluster::start(3, options("[heuristics]\nspread_networks = 3\n"));
    cluster.wait_converged();
    let session = api::alice(cluster.node(1).base());
    // Four /24 networks presenting the token to one node (spread is counted per node;
    // see docs/abuse.md): the fourth is one too many.
    let networks: Vec<_> = (1..=4)
        .map(|n| api::client_from(Ipv4Addr::new(127, 240, n, 7)))
        .collect();
    let n2 = cluster.node(2).base();
    for source in &networks[..3] {
        assert_eq!(api::check_with(n2, source, &session.access), 200);
    }
    assert_eq!(api::check_with(n2, &networks[3], &session.access), 401);
    let admin = api::admin_token(n2);
    for node in cluster.nodes() {
        wait_until(
            &format!("{} to reject the stolen token", node.id()),
            PROPAGATION,
            || {
                api::rejects(node.base(), &session.access)
                    && revoked_for(node.base(), &admin, "ip_spread") == 1
            },
        );
    }
}
