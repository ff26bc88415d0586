//! Scenario 3: a key rotated on node 2 is in every node's JWKS before node 2 signs with
//! it, and tokens signed with the old key keep passing everywhere after the switch.

use cluster_tests::api;
use cluster_tests::{wait_until, Cluster, Options, PROPAGATION};

#[test]
fn a_rotated_key_reaches_every_jwks_before_its_owner_signs_with_it() {
    let options = Options::default();
    let cluster = Cluster::start(3, options.clone());
    let before = cluster.wait_converged();
    let n2 = cluster.node(2);
    let old_token = api::alice(n2.base()).access;
    let old_kid = api::kid_of(&old_token);

    let admin = api::admin_token(n2.base());
    let new_kid = api::rotate_key(n2.base(), &admin);
    assert!(!before.contains(&new_kid), "a fresh key");

    // Published everywhere while node 2 still signs with the old key: jwks_max_age (3 s)
    // is far longer than the propagation bound, so this is not a race the test could
    // lose by luck.
    let published = wait_until("every JWKS to hold the new key", PROPAGATION, || {
        cluster
            .nodes()
            .iter()
            .all(|node| api::jwks_kids(node.base()).contains(&new_kid))
    });
    assert_eq!(
        api::signing_kid(n2.base()),
        old_kid,
        "node 2 signs with the new key only after every JWKS has it"
    );
    eprintln!("the new key was in every JWKS {published:?} after the rotation");

    // Then node 2 switches; its new tokens verify everywhere, and so do the old ones.
    let deadline = options.jwks_max_age + PROPAGATION;
    wait_until("node 2 to sign with the new key", deadline, || {
        api::signing_kid(n2.base()) == new_kid
    });
    let new_token = api::alice(n2.base()).access;
    assert_eq!(api::kid_of(&new_token), new_kid);
    for node in cluster.nodes() {
        assert!(
            api::accepts(node.base(), &new_token),
            "new token on {}",
            node.id()
        );
        assert!(
            api::accepts(node.base(), &old_token),
            "old token on {}",
            node.id()
        );
        let kids = api::jwks_kids(node.base());
        assert!(
            kids.contains(&old_kid),
            "{} still publishes the old key",
            node.id()
        );
    }
    let mut expected = before;
    expected.insert(new_kid);
    assert_eq!(cluster.wait_converged(), expected, "the JWKS agree again");
}
