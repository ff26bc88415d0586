//! Scenario 4: a refresh token is single-use across the whole cluster. Replaying a spent
//! one on another node revokes its family everywhere; two nodes accepting the same
//! generation before hearing of each other (a fork) revoke the family once they do.

use std::sync::Barrier;

use cluster_tests::api::{self, OAuthError, Tokens};
use std::time::Duration;

use cluster_tests::{holds_throughout, wait_until, Cluster, Options, Partition, PROPAGATION};

/// Waits until no node accepts any of `tokens`.
fn wait_revoked_everywhere(cluster: &Cluster, what: &str, tokens: &[&str]) {
    for node in cluster.nodes() {
        for token in tokens {
            let what = format!("{} to reject {what}", node.id());
            wait_until(&what, PROPAGATION, || api::rejects(node.base(), token));
        }
    }
}

/// Presents `refresh_token` on each of `nodes` at the same instant.
fn refresh_at_once(
    cluster: &Cluster,
    nodes: &[usize],
    refresh_token: &str,
) -> Vec<Result<Tokens, OAuthError>> {
    let start = Barrier::new(nodes.len());
    std::thread::scope(|scope| {
        let threads: Vec<_> = nodes
            .iter()
            .map(|i| {
                let (base, start) = (cluster.node(*i).base(), &start);
                scope.spawn(move || {
                    start.wait();
                    api::refresh(base, refresh_token)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|thread| thread.join().expect("a refresh thread does not panic"))
            .collect()
    })
}

fn assert_invalid_grant(outcome: Result<Tokens, OAuthError>, what: &str) {
    let error = outcome.expect_err(what);
    assert_eq!(
        (error.status, error.error.as_str()),
        (400, "invalid_grant"),
        "{what}"
    );
}

#[test]
fn a_refresh_token_replayed_on_another_node_revokes_its_family_on_all_nodes() {
    let cluster = Cluster::start(3, Options::default());
    cluster.wait_converged();
    let (n1, n2, n3) = (cluster.node(1), cluster.node(2), cluster.node(3));
    let first = api::alice(n1.base());
    let other_session = api::alice(n1.base());

    let second = api::refresh(n1.base(), first.refresh()).expect("the first use is accepted");
    cluster.wait_merged(1);
    let replay = api::refresh(n2.base(), first.refresh());
    assert_invalid_grant(replay, "a spent refresh token replayed on node 2");

    wait_revoked_everywhere(
        &cluster,
        "the family's tokens",
        &[&first.access, &second.access],
    );
    let next = api::refresh(n3.base(), second.refresh());
    assert_invalid_grant(next, "the family's latest refresh token on node 3");
    for node in cluster.nodes() {
        assert!(
            api::accepts(node.base(), &other_session.access),
            "another session of the same user is untouched on {}",
            node.id()
        );
    }
}

#[test]
fn a_generation_accepted_on_both_sides_of_a_partition_revokes_the_family_after_the_heal() {
    let cluster = Cluster::start(3, Options::default());
    cluster.wait_converged();
    let (n1, n2) = (cluster.node(1), cluster.node(2));
    let first = api::alice(n1.base());

    // Cut off, neither side can know the other spent the same generation: the partition
    // stretches the gossip window so that both accept it, every time.
    let partition = Partition::cut(&cluster.ips(&[1]), &cluster.ips(&[2, 3]));
    let on_1 = api::refresh(n1.base(), first.refresh()).expect("node 1 accepts");
    let on_2 = api::refresh(n2.base(), first.refresh()).expect("node 2 accepts too: a fork");
    partition.heal();

    let all = [&*first.access, &*on_1.access, &*on_2.access];
    wait_revoked_everywhere(&cluster, "the forked family's tokens", &all);
    assert_invalid_grant(api::refresh(n1.base(), on_1.refresh()), "node 1's branch");
    assert_invalid_grant(api::refresh(n2.base(), on_2.refresh()), "node 2's branch");
}

#[test]
fn the_same_generation_refreshed_at_once_on_two_nodes_ends_with_the_family_revoked() {
    let cluster = Cluster::start(3, Options::default());
    cluster.wait_converged();
    let first = api::alice(cluster.node(1).base());

    // Both requests leave together; each node accepts (a fork, found by gossip) or, if
    // it already heard of the other's spend, refuses (a replay). Either way the family
    // must end revoked.
    let outcomes = refresh_at_once(&cluster, &[1, 2], first.refresh());
    let summary: Vec<_> = outcomes
        .iter()
        .map(|o| o.as_ref().map(|_| "accepted"))
        .collect();
    eprintln!("concurrent refresh outcomes: {summary:?}");
    assert!(
        outcomes.iter().any(Result::is_ok),
        "at least one node accepts"
    );

    let mut tokens = vec![first.access.clone()];
    tokens.extend(outcomes.iter().flatten().map(|t| t.access.clone()));
    let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
    wait_revoked_everywhere(&cluster, "the family's tokens", &tokens);
    for (i, outcome) in outcomes.iter().enumerate() {
        if let Ok(branch) = outcome {
            let node = cluster.node(i + 1);
            let what = format!("the branch node {} issued", node.id());
            assert_invalid_grant(api::refresh(node.base(), branch.refresh()), &what);
        }
    }
}

#[test]
fn a_client_that_switches_nodes_right_after_a_refresh_keeps_its_session() {
    let cluster = Cluster::start(3, Options::default());
    cluster.wait_converged();
    let first = api::alice(cluster.node(1).base());
    // Refresh on node 1, then at once use the new refresh token on node 2, before
    // node 1's spend can have reached it: a newer generation is proof, not reuse.
    let second = api::refresh(cluster.node(1).base(), first.refresh()).expect("refresh on 1");
    let third = api::refresh(cluster.node(2).base(), second.refresh()).expect("refresh on 2");
    // Once both spends have crossed, no node may take this for a fork.
    holds_throughout(
        "every node to keep accepting the session",
        Duration::from_secs(1),
        || {
            cluster
                .nodes()
                .iter()
                .all(|node| api::accepts(node.base(), &third.access))
        },
    );
}
