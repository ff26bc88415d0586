//! Scenario 9: a new node joining a cluster that holds 100,000 active revocations is
//! ready, and enforcing all of them, within 10 s: it catches up by snapshot instead of
//! waiting for gossip to carry megabytes of state.

use std::time::{Duration, Instant};

use cluster_tests::api;
use cluster_tests::{wait_until, Cluster, Options};
use portcullis::journal::{Journal, Record};
use portcullis::revocation::{Reason, Revocation, Target};

const REVOCATIONS: usize = 100_000;

fn revocation(jti: String, now_ms: u64) -> Record {
    Record::Revoke(Revocation {
        target: Target::Token { jti },
        reason: Reason::Admin,
        created_ms: now_ms,
        expires_ms: now_ms + 3_600_000,
    })
}

#[test]
fn a_node_joining_a_cluster_with_100k_revocations_is_ready_and_enforcing_within_10s() {
    let mut cluster = Cluster::start(3, Options::default());
    cluster.wait_converged();
    let tokens: Vec<String> = (0..20)
        .map(|_| api::client_token(cluster.node(1).base()))
        .collect();

    // Node 3 leaves for good; node 1 is stopped and its journal given 100k revocations
    // (written directly, as an operator's backup restore would), covering our tokens.
    cluster.node_mut(3).kill();
    std::fs::remove_dir_all(cluster.node(3).data_dir()).expect("wipe node 3");
    cluster.node_mut(1).kill();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64;
    let (mut journal, _) = Journal::open(&cluster.node(1).data_dir()).expect("journal opens");
    let mut records: Vec<Record> = (0..REVOCATIONS)
        .map(|i| revocation(format!("synthetic-{i:08}"), now_ms))
        .collect();
    records.extend(tokens.iter().map(|t| {
        revocation(
            api::claims(t)["jti"].as_str().expect("jti").to_owned(),
            now_ms,
        )
    }));
    journal.append(&records).expect("journal append");
    drop(journal);
    cluster.restart(&[1]);
    cluster.wait_ready(&[1]);
    let admin = api::admin_token(cluster.node(1).base());
    let held = api::cluster_view(cluster.node(1).base(), &admin)["deny_list_entries"].as_u64();
    assert!(
        held >= Some(REVOCATIONS as u64),
        "node 1 holds {held:?} revocations"
    );

    // A fresh node 3 joins.
    let started = Instant::now();
    cluster.restart(&[3]);
    let n3 = cluster.node(3);
    wait_until(
        "the new node to report ready",
        Duration::from_secs(10),
        || api::ready(n3.base()),
    );
    let entries = api::cluster_view(n3.base(), &api::admin_token(n3.base()))["deny_list_entries"]
        .as_u64()
        .unwrap_or_default();
    assert!(
        entries >= (REVOCATIONS + tokens.len()) as u64,
        "new node holds only {entries}"
    );
    for token in &tokens {
        assert!(
            api::rejects(n3.base(), token),
            "a revoked token passed on the new node"
        );
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed <= Duration::from_secs(10),
        "ready and enforcing after {elapsed:?}"
    );
    eprintln!("joined, ready and enforcing {entries} revocations after {elapsed:?}");
}
