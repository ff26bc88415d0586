//! The harness itself: a partition really drops UDP between its sides, leaves other
//! traffic alone, and leaves no iptables rule behind, even when the test panics.

use std::net::{Ipv4Addr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use cluster_tests::Partition;

fn socket(ip: Ipv4Addr) -> UdpSocket {
    let socket = UdpSocket::bind((ip, 0)).expect("a loopback UDP socket binds");
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("a read timeout can be set");
    socket
}

/// Whether a datagram from `from` reaches `to` (loopback neither loses nor delays).
fn delivers(from: &UdpSocket, to: &UdpSocket) -> bool {
    let target = to.local_addr().expect("bound");
    from.send_to(b"ping", target).expect("loopback send");
    let mut buf = [0u8; 16];
    to.recv_from(&mut buf).is_ok()
}

fn chain_exists(chain: &str) -> bool {
    let output = Command::new("iptables")
        .args(["-w", "-S"])
        .output()
        .expect("iptables runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .any(|line| line == format!("-N {chain}"))
}

#[test]
fn a_partition_drops_udp_between_its_sides_only_until_it_is_healed() {
    let base = 200 + (std::process::id() % 50) as u8;
    let [a, b, c] = [1, 2, 3].map(|last| Ipv4Addr::new(127, base, 77, last));
    let (sa, sb, sc) = (socket(a), socket(b), socket(c));
    assert!(delivers(&sa, &sb), "traffic flows before the partition");

    let partition = Partition::cut(&[a], &[b]);
    let chain = partition.chain().to_owned();
    assert!(!delivers(&sa, &sb), "a to b is cut");
    assert!(!delivers(&sb, &sa), "b to a is cut");
    assert!(delivers(&sa, &sc), "a to c is untouched");
    assert!(delivers(&sb, &sc), "b to c is untouched");

    partition.heal();
    assert!(!chain_exists(&chain), "the chain is deleted on heal");
    assert!(delivers(&sa, &sb), "traffic flows again after the heal");
}

#[test]
fn a_partition_is_removed_when_the_test_panics() {
    let base = 200 + (std::process::id() % 50) as u8;
    let (a, b) = (
        Ipv4Addr::new(127, base, 78, 1),
        Ipv4Addr::new(127, base, 78, 2),
    );
    let outcome = std::panic::catch_unwind(|| {
        let partition = Partition::cut(&[a], &[b]);
        panic!("test failed while {} was in place", partition.chain());
    });
    let message = outcome.expect_err("the closure panics");
    let message = message
        .downcast_ref::<String>()
        .expect("a formatted message");
    let chain = message
        .split_whitespace()
        .nth(3)
        .expect("the message names the chain");
    assert!(chain.starts_with("PCT-"), "{message}");
    assert!(!chain_exists(chain), "{chain} was left behind");
    assert!(delivers(&socket(a), &socket(b)));
}
