//! A revocation acknowledged by a node that is SIGKILLed before gossip carries it is
//! not lost: the node republishes its own journaled revocations when it restarts.

use cluster_tests::api;
use cluster_tests::{wait_until, Cluster, Options, Partition, PROPAGATION};

#[test]
fn a_revocation_acknowledged_just_before_a_crash_reaches_every_node_after_restart() {
    let mut cluster = Cluster::start(3, Options::default());
    cluster.wait_converged();
    let token = api::client_token(cluster.node(2).base());
    // Cut node 1 off so that its gossip cannot carry the revocation before the crash.
    let partition = Partition::cut(&cluster.ips(&[1]), &cluster.ips(&[2, 3]));
    api::revoke(cluster.node(1).base(), &token);
    cluster.node_mut(1).kill();
    drop(partition);
    assert!(
        api::accepts(cluster.node(2).base(), &token),
        "node 2 heard of it too early"
    );

    cluster.restart(&[1]);
    cluster.wait_ready(&[1]);
    for node in cluster.nodes() {
        let what = format!("{} to reject the token revoked before the crash", node.id());
        wait_until(&what, PROPAGATION, || api::rejects(node.base(), &token));
    }
}
