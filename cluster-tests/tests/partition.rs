//! Scenario 6: partition {1} | {2,3}. A revocation made on node 2 during the partition
//! spreads to node 3 but not to node 1, which proves the cut is real; the partition lasts
//! until node 1 declares the others dead. After the heal node 1 sees them live again and
//! enforces the revocation within the propagation bound. The same holds the other way
//! for a revocation made on the isolated node.

use std::time::Duration;

use cluster_tests::api;
use cluster_tests::{holds_throughout, wait_until, Cluster, Options, Partition, PROPAGATION};

/// How long node 1 must keep accepting the token while cut off: ten gossip rounds.
const CUT_OFF_WINDOW: Duration = Duration::from_secs(1);
/// Bound on the failure detector declaring silent peers dead (about 2 s observed).
const DETECTION: Duration = Duration::from_secs(15);

/// Cluster members in `state` as the node's metrics count them (itself included).
fn members(base: &str, state: &str) -> f64 {
    let text = api::metrics(base);
    api::metric(&text, "portcullis_cluster_members", &[("state", state)])
}

#[test]
fn a_revocation_made_during_a_partition_reaches_the_cut_off_node_after_the_heal() {
    let cluster = Cluster::start(3, Options::default());
    cluster.wait_converged();
    let (n1, n2, n3) = (cluster.node(1), cluster.node(2), cluster.node(3));
    let majority_revokes = api::alice(n1.base()).access;
    let minority_revokes = api::alice(n3.base()).access;
    for node in cluster.nodes() {
        assert!(
            api::accepts(node.base(), &majority_revokes),
            "{}",
            node.id()
        );
    }

    let partition = Partition::cut(&cluster.ips(&[1]), &cluster.ips(&[2, 3]));
    api::revoke(n2.base(), &majority_revokes);
    api::revoke(n1.base(), &minority_revokes);
    wait_until("node 3 to learn node 2's revocation", PROPAGATION, || {
        api::rejects(n3.base(), &majority_revokes)
    });
    holds_throughout(
        "node 1 accepting the token revoked beyond the cut",
        CUT_OFF_WINDOW,
        || api::accepts(n1.base(), &majority_revokes),
    );
    // Long enough for node 1's failure detector to give up on the others: the heal
    // must also bring back peers already declared dead.
    wait_until("node 1 to declare nodes 2 and 3 dead", DETECTION, || {
        members(n1.base(), "dead") == 2.0
    });
    assert!(
        api::accepts(n1.base(), &majority_revokes),
        "still not learned"
    );
    for node in [n2, n3] {
        let what = format!(
            "{} accepting the token revoked on the isolated node",
            node.id()
        );
        assert!(api::accepts(node.base(), &minority_revokes), "{what}");
    }

    partition.heal();
    let lag = wait_until("node 1 to learn node 2's revocation", PROPAGATION, || {
        api::rejects(n1.base(), &majority_revokes)
    });
    eprintln!("node 1 enforced the revocation {lag:?} after the heal");
    wait_until(
        "node 1 to see nodes 2 and 3 live again",
        PROPAGATION,
        || members(n1.base(), "dead") == 0.0 && members(n1.base(), "live") == 3.0,
    );
    for node in [n2, n3] {
        wait_until(
            &format!("{} to learn node 1's revocation", node.id()),
            PROPAGATION,
            || api::rejects(node.base(), &minority_revokes),
        );
    }
}
