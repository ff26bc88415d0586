//! Scenario 7: the whole cluster SIGKILLed and restarted over the same data directories
//! keeps every revocation (its own and those learned from peers), every key and every
//! refresh spend. Node 1 is first restarted alone, so that what it then knows can only
//! come from its disk.

use std::collections::BTreeSet;

use cluster_tests::api;
use cluster_tests::{wait_until, Cluster, Options, PROPAGATION};
use serde_json::json;

/// Tokens that must pass, and tokens that must fail, on every node.
struct Expectations {
    valid: Vec<String>,
    revoked: Vec<String>,
}

impl Expectations {
    fn hold_on(&self, base: &str) -> bool {
        self.valid.iter().all(|t| api::accepts(base, t))
            && self.revoked.iter().all(|t| api::rejects(base, t))
    }
}

/// Issues tokens on every node and revokes some, each kind on another node.
fn populate(cluster: &Cluster) -> Expectations {
    let base = |i: usize| cluster.node(i).base();
    let valid: Vec<String> = (1..=3).map(|i| api::client_token(base(i))).collect();

    let by_client = api::alice(base(2)).access;
    api::revoke(base(1), &by_client);
    let bobs = api::bob(base(3)).access;
    let admin = api::admin_token(base(2));
    api::admin_revoke(
        base(2),
        &admin,
        &json!({"kind": "subject", "subject": "bob"}),
    );
    let family = api::alice(base(1));
    let admin = api::admin_token(base(3));
    let sid = api::claims(&family.access)["sid"].clone();
    api::admin_revoke(base(3), &admin, &json!({"kind": "family", "family": sid}));

    let revoked = vec![by_client, bobs, family.access];
    Expectations { valid, revoked }
}

#[test]
fn a_whole_cluster_killed_and_restarted_keeps_every_revocation_and_key() {
    let mut cluster = Cluster::start(3, Options::default());
    cluster.wait_converged();
    let admin = api::admin_token(cluster.node(1).base());
    api::rotate_key(cluster.node(1).base(), &admin);
    let expected = populate(&cluster);
    let kids = cluster.wait_converged();
    assert_eq!(kids.len(), 4, "three keys and node 1's rotated one");
    for node in cluster.nodes() {
        wait_until(
            &format!("{} to know everything", node.id()),
            PROPAGATION,
            || expected.hold_on(node.base()),
        );
    }

    cluster.kill_all();
    cluster.restart(&[1]);
    let n1 = cluster.node(1);
    assert_eq!(
        api::jwks_kids(n1.base()),
        kids,
        "node 1 alone has every node's keys"
    );
    assert!(
        expected.hold_on(n1.base()),
        "node 1 alone knows every revocation"
    );

    cluster.restart(&[2, 3]);
    cluster.wait_ready(&[1, 2, 3]);
    for node in cluster.nodes() {
        assert_eq!(api::jwks_kids(node.base()), kids, "keys of {}", node.id());
        assert!(
            expected.hold_on(node.base()),
            "revocations on {}",
            node.id()
        );
    }
    let signing: BTreeSet<String> = cluster
        .nodes()
        .iter()
        .map(|node| api::signing_kid(node.base()))
        .collect();
    assert!(
        signing.is_subset(&kids),
        "nodes sign with the keys they had"
    );
    assert_eq!(signing.len(), 3, "each with its own");
}

#[test]
fn a_refresh_spend_learned_from_a_peer_survives_a_whole_cluster_restart() {
    let mut cluster = Cluster::start(3, Options::default());
    cluster.wait_converged();
    let n2 = cluster.node(2);
    let session = api::alice(n2.base());
    api::refresh(n2.base(), session.refresh()).expect("the first use is accepted");
    // Not replayed before the restart: that would revoke the family, and the revocation
    // (which is journaled) would then refuse the replay whether or not the spend was kept.
    cluster.wait_merged(2);

    cluster.kill_all();
    cluster.restart(&[1]);
    let replay = api::refresh(cluster.node(1).base(), session.refresh());
    let replay = replay.expect_err("node 1 alone must remember the spend it learned from node 2");
    assert_eq!(replay.error, "invalid_grant");
}
