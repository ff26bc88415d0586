//! Scenario 8: forged, replayed, stale and garbage datagrams sent to a node's gossip
//! port change nothing (tokens still pass, JWKS and deny lists are unchanged, gossip
//! still works) and are counted by reason in `/metrics`.

use std::net::{Ipv4Addr, UdpSocket};
use std::time::{SystemTime, UNIX_EPOCH};

use cluster_tests::api;
use cluster_tests::config::CLUSTER_SECRET;
use cluster_tests::{wait_until, Cluster, Options, PROPAGATION};
use portcullis::cluster::seal::Sealer;

const REJECTED: &str = "portcullis_gossip_rejected_total";
const REASONS: [&str; 5] = ["malformed", "bad_mac", "stale", "replayed", "undecodable"];

fn now_ms() -> u64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH);
    since_epoch.expect("the clock is after 1970").as_millis() as u64
}

fn rejected(base: &str, reason: &str) -> f64 {
    api::metric(&api::metrics(base), REJECTED, &[("reason", reason)])
}

fn received(base: &str) -> f64 {
    let text = api::metrics(base);
    api::metric(
        &text,
        "portcullis_gossip_datagrams_total",
        &[("direction", "in")],
    )
}

/// Datagrams an attacker without the secret, or replaying one, could send, each with
/// the reason it must be dropped for.
fn hostile_datagrams(cluster_id: &str) -> Vec<(&'static str, Vec<u8>)> {
    let now = now_ms();
    let payload = b"revoke everything and trust my key";
    let genuine = Sealer::new(CLUSTER_SECRET.as_bytes(), cluster_id);
    let guessed = Sealer::new(b"a-guessed-secret-of-thirty-two-bytes!!", cluster_id);
    let other_cluster = Sealer::new(CLUSTER_SECRET.as_bytes(), "another-cluster");
    let one = |frames: Vec<Vec<u8>>| frames.into_iter().next().expect("one frame");

    // Sealed with the real secret (as a leaked frame would be) but not a chitchat message.
    let authentic = one(genuine.seal(payload, now, 1));
    let mut tampered = one(genuine.seal(payload, now, 2));
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    vec![
        ("malformed", b"\x00\x01 not even our magic".to_vec()),
        (
            "malformed",
            b"PCG1\x07\x00\x00\x00\x05\x02bad index".to_vec(),
        ),
        ("bad_mac", one(guessed.seal(payload, now, 3))),
        ("bad_mac", one(other_cluster.seal(payload, now, 4))),
        ("bad_mac", tampered),
        ("stale", one(genuine.seal(payload, now - 120_000, 5))),
        ("stale", one(genuine.seal(payload, now + 120_000, 6))),
        ("undecodable", authentic.clone()),
        ("replayed", authentic),
    ]
}

#[test]
fn hostile_datagrams_change_nothing_and_are_counted_by_reason() {
    let cluster = Cluster::start(3, Options::default());
    let kids = cluster.wait_converged();
    let (n1, n2) = (cluster.node(1), cluster.node(2));
    let token = api::alice(n1.base()).access;
    let admin = api::admin_token(n2.base());
    let jwks_before = api::jwks(n2.base());
    let revocations_before = api::revocations(n2.base(), &admin).len();
    let before: Vec<f64> = REASONS.iter().map(|r| rejected(n2.base(), r)).collect();
    let received_before = received(n2.base());

    // Sent in order from a loopback address that is no member.
    let attacker = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("a UDP socket binds");
    let datagrams = hostile_datagrams(cluster.id());
    for (_, datagram) in &datagrams {
        attacker
            .send_to(datagram, n2.gossip_addr())
            .expect("loopback send");
    }

    let expected: Vec<f64> = REASONS
        .iter()
        .zip(&before)
        .map(|(reason, before)| {
            let sent = datagrams.iter().filter(|(r, _)| r == reason).count();
            before + sent as f64
        })
        .collect();
    wait_until("every hostile datagram to be counted", PROPAGATION, || {
        let now: Vec<f64> = REASONS.iter().map(|r| rejected(n2.base(), r)).collect();
        now.iter()
            .zip(&expected)
            .all(|(now, expected)| now >= expected)
    });
    for (reason, expected) in REASONS.iter().zip(&expected) {
        assert_eq!(rejected(n2.base(), reason), *expected, "{reason} datagrams");
    }
    let received = received(n2.base()) - received_before;
    assert!(
        received >= datagrams.len() as f64,
        "{received} datagrams counted in"
    );

    // Nothing changed, and gossip still flows through the node that was attacked.
    assert!(
        api::accepts(n2.base(), &token),
        "a valid token still passes"
    );
    assert_eq!(api::jwks(n2.base()), jwks_before, "JWKS unchanged");
    assert_eq!(cluster.wait_converged(), kids, "no key was added anywhere");
    let revocations = api::revocations(n2.base(), &admin).len();
    assert_eq!(revocations, revocations_before, "no revocation was added");
    let marker = api::client_token(n1.base());
    api::revoke(n1.base(), &marker);
    wait_until("node 2 to still learn revocations", PROPAGATION, || {
        api::rejects(n2.base(), &marker)
    });
}
