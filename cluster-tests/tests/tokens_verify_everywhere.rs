//! Scenario 1: a token issued on any node passes `/v1/check` on every node, and every
//! node serves the same JWKS: the union of all nodes' keys.

use cluster_tests::api;
use cluster_tests::{wait_until, Cluster, Options, PROPAGATION};

#[test]
fn a_token_issued_on_one_node_passes_on_every_node_and_all_jwks_agree() {
    let cluster = Cluster::start(3, Options::default());
    let kids = cluster.wait_converged();
    assert_eq!(kids.len(), 3, "one signing key per node: {kids:?}");

    // The JWKS documents agree key for key, not only by kid.
    let first = api::jwks(cluster.node(1).base());
    for node in cluster.nodes() {
        assert_eq!(api::jwks(node.base()), first, "JWKS of {}", node.id());
    }

    // Every node signs with its own key, and every node accepts every node's tokens.
    let mut signing = std::collections::BTreeSet::new();
    for issuer in cluster.nodes() {
        let token = api::alice(issuer.base()).access;
        let kid = api::kid_of(&token);
        assert!(
            kids.contains(&kid),
            "{} signs with a published key",
            issuer.id()
        );
        signing.insert(kid);
        for verifier in cluster.nodes() {
            assert_eq!(
                api::check(verifier.base(), &token),
                200,
                "a token from {} on {}",
                issuer.id(),
                verifier.id()
            );
        }
    }
    assert_eq!(signing, kids, "each node signs with a key of its own");

    // And every node sees the two others live.
    let admin = api::admin_token(cluster.node(1).base());
    for node in cluster.nodes() {
        for peer in cluster.nodes().iter().filter(|p| p.id() != node.id()) {
            let what = format!("{} to see {} live", node.id(), peer.id());
            wait_until(&what, PROPAGATION, || {
                api::live_generation(node.base(), &admin, peer.id()).is_some()
            });
        }
    }
}
