//! Tests of the sealed transport: delivery, and every kind of hostile datagram dropped.

use std::time::Duration;

use chitchat::ChitchatMessage;

use super::*;
use crate::clock::{Clock, ManualClock};

fn envelope() -> ChitchatMessage {
    ChitchatMessage::BadCluster
}

async fn pair(clock: &ManualClock) -> (Box<dyn Socket>, Box<dyn Socket>, SocketAddr) {
    let sealer = Arc::new(Sealer::new(b"cluster secret", "test"));
    let transport = SealedTransport::new(sealer, Arc::new(clock.clone()));
    let b_addr = free_udp_addr();
    let a = transport.open(free_udp_addr()).await.expect("bind a");
    let b = transport.open(b_addr).await.expect("bind b");
    (a, b, b_addr)
}

/// chitchat 0.11 sockets do not report their address, so pick a free port first.
fn free_udp_addr() -> SocketAddr {
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    probe.local_addr().expect("addr")
}

async fn recv_within(socket: &mut Box<dyn Socket>) -> Option<(SocketAddr, ChitchatMessage)> {
    tokio::time::timeout(Duration::from_millis(300), socket.recv())
        .await
        .ok()
        .map(|r| r.expect("recv"))
}

#[tokio::test]
async fn authentic_envelopes_arrive_intact() {
    let clock = ManualClock::starting_now();
    let (mut a, mut b, b_addr) = pair(&clock).await;
    a.send(b_addr, envelope()).await.expect("send");
    let got = recv_within(&mut b).await.expect("delivered");
    assert_eq!(got.1, envelope());
}

#[tokio::test]
async fn forged_garbage_and_replayed_datagrams_are_dropped() {
    let clock = ManualClock::starting_now();
    let (_, mut b, b_addr) = pair(&clock).await;
    let raw = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");

    let payload = envelope().serialize_to_vec();
    let forger = Sealer::new(b"guessed secret", "test");
    for frame in forger.seal(&payload, clock.now_ms(), 1) {
        raw.send_to(&frame, b_addr).await.expect("send");
    }
    raw.send_to(b"\x00garbage", b_addr).await.expect("send");
    let genuine = Sealer::new(b"cluster secret", "test").seal(&payload, clock.now_ms(), 2);
    raw.send_to(&genuine[0], b_addr).await.expect("send");
    raw.send_to(&genuine[0], b_addr).await.expect("replay");
    let stale = Sealer::new(b"cluster secret", "test").seal(&payload, clock.now_ms() - 120_000, 3);
    raw.send_to(&stale[0], b_addr).await.expect("send");

    assert!(
        recv_within(&mut b).await.is_some(),
        "the genuine datagram gets through once"
    );
    assert!(
        recv_within(&mut b).await.is_none(),
        "forged, garbage, replayed and stale are dropped"
    );
}

#[test]
fn each_rejection_has_its_reason() {
    let sealer = Sealer::new(b"s", "c");
    let mut guard = ReplayGuard::default();
    let (nonce, sent_at, _) = sealer
        .open(&sealer.seal(b"x", 5, 1)[0][10..])
        .expect("opens");
    assert!(guard.first_sighting(nonce, sent_at, 5));
    assert!(!guard.first_sighting(nonce, sent_at, 6));
    assert!(
        guard.first_sighting(nonce, sent_at, 5 + REPLAY_WINDOW_MS + 10),
        "forgotten once stale"
    );
}
