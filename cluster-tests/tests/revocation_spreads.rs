//! Scenario 2: a revocation made on one node is enforced by every other node within the
//! propagation bound, and touches nothing else.

use cluster_tests::api;
use cluster_tests::{wait_until, Cluster, Options, PROPAGATION};
use serde_json::json;

#[test]
fn a_revocation_on_one_node_is_enforced_by_every_other_node() {
    let cluster = Cluster::start(3, Options::default());
    cluster.wait_converged();
    let (n1, n2, n3) = (cluster.node(1), cluster.node(2), cluster.node(3));

    // A token issued on node 2, revoked by its client on node 1.
    let revoked = api::alice(n2.base()).access;
    let untouched = api::alice(n3.base()).access;
    api::revoke(n1.base(), &revoked);
    assert!(
        api::rejects(n1.base(), &revoked),
        "enforced where it was made"
    );
    for node in [n2, n3] {
        let lag = wait_until(
            &format!("{} to reject the revoked token", node.id()),
            PROPAGATION,
            || api::rejects(node.base(), &revoked),
        );
        eprintln!("token revocation reached {} after {lag:?}", node.id());
    }

    // An admin revocation of a subject, made on node 1, covers Bob's tokens from node 3.
    let bobs = api::bob(n3.base()).access;
    let admin = api::admin_token(n1.base());
    api::admin_revoke(
        n1.base(),
        &admin,
        &json!({"kind": "subject", "subject": "bob"}),
    );
    for node in cluster.nodes() {
        wait_until(
            &format!("{} to reject Bob's token", node.id()),
            PROPAGATION,
            || api::rejects(node.base(), &bobs),
        );
    }

    // Nothing else was revoked, and the receivers measured the propagation lag.
    for node in cluster.nodes() {
        assert!(api::accepts(node.base(), &untouched), "{}", node.id());
    }
    for node in [n2, n3] {
        let text = api::metrics(node.base());
        let learned = api::metric(
            &text,
            "portcullis_revocation_propagation_seconds_count",
            &[],
        );
        assert!(
            learned >= 2.0,
            "{} measured {learned} propagations",
            node.id()
        );
    }
}
