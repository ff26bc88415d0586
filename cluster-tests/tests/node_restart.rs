//! Scenario 5: a node SIGKILLed while the cluster carries on, then restarted over the
//! same data directory and addresses, catches up with what it missed before reporting
//! ready, and has lost nothing it knew: its keys, earlier revocations, refresh spends.

use cluster_tests::api;
use cluster_tests::{wait_until, Cluster, Options, PROPAGATION};
use serde_json::json;

#[test]
fn a_killed_node_restarts_catches_up_and_has_lost_nothing() {
    let mut cluster = Cluster::start(3, Options::default());
    let kids = cluster.wait_converged();
    let own_token = api::alice(cluster.node(3).base()).access;
    let own_kid = api::kid_of(&own_token);

    // Known to node 3 before it dies: a revocation made on node 1.
    let early = api::bob(cluster.node(2).base()).access;
    api::revoke(cluster.node(1).base(), &early);
    let n3 = cluster.node(3);
    wait_until("node 3 to learn the early revocation", PROPAGATION, || {
        api::rejects(n3.base(), &early)
    });

    let admin = api::admin_token(cluster.node(1).base());
    let mut generation = 0;
    wait_until("node 1 to see node 3 live", PROPAGATION, || {
        let seen = api::live_generation(cluster.node(1).base(), &admin, "n3");
        generation = seen.unwrap_or_default();
        seen.is_some()
    });

    // Made while node 3 is down: revocations on nodes 1 and 2, and a refresh spend.
    let session = api::alice(cluster.node(1).base());
    let by_client = api::client_token(cluster.node(1).base());
    let by_admin = api::alice(cluster.node(2).base()).access;
    cluster.node_mut(3).kill();
    let (n1, n2) = (cluster.node(1), cluster.node(2));
    api::revoke(n1.base(), &by_client);
    let jti = api::claims(&by_admin)["jti"].clone();
    api::admin_revoke(n2.base(), &admin, &json!({"kind": "token", "jti": jti}));
    api::refresh(n1.base(), session.refresh()).expect("the refresh is accepted on node 1");

    cluster.node_mut(3).restart();
    let ready = cluster.wait_ready(&[3]);
    eprintln!("node 3 was ready {ready:?} after it listened again");

    // Ready means caught up: no waiting from here on.
    let n3 = cluster.node(3);
    assert!(
        api::rejects(n3.base(), &early),
        "the early revocation survived"
    );
    assert!(
        api::rejects(n3.base(), &by_client),
        "the revocation made on node 1"
    );
    assert!(
        api::rejects(n3.base(), &by_admin),
        "the revocation made on node 2"
    );
    let replay = api::refresh(n3.base(), session.refresh()).expect_err("a spent refresh token");
    assert_eq!(replay.error, "invalid_grant");

    // Same keys: node 3 signs with the key it had, and its old tokens pass everywhere.
    assert_eq!(api::jwks_kids(n3.base()), kids);
    assert_eq!(api::signing_kid(n3.base()), own_kid);
    for node in cluster.nodes() {
        assert!(
            api::accepts(node.base(), &own_token),
            "node 3's token on {}",
            node.id()
        );
    }

    // It rejoined as a new incarnation, and gossips again, both ways.
    let (n1, n2) = (cluster.node(1), cluster.node(2));
    for node in [n1, n2] {
        let what = format!("{} to see node 3 live again", node.id());
        wait_until(&what, PROPAGATION, || {
            api::live_generation(node.base(), &admin, "n3").is_some_and(|g| g > generation)
        });
    }
    let from_3 = api::client_token(n3.base());
    api::revoke(n3.base(), &from_3);
    let from_1 = api::client_token(n1.base());
    api::revoke(n1.base(), &from_1);
    wait_until(
        "node 1 and 2 to learn node 3's revocation",
        PROPAGATION,
        || api::rejects(n1.base(), &from_3) && api::rejects(n2.base(), &from_3),
    );
    wait_until(
        "node 3 to learn node 1's new revocation",
        PROPAGATION,
        || api::rejects(n3.base(), &from_1),
    );
}
