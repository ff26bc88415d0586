//! Benchmark: gossip traffic per node, at idle and under a steady 100 revocations/s.
//!
//! For each cluster size it reads `portcullis_gossip_bytes_total` and
//! `portcullis_gossip_datagrams_total` (both directions) from every node's `/metrics`
//! before and after a fixed window of `BENCH_TRAFFIC_SECONDS` (default 10) and prints
//! the rates. The idle window comes first; then node 1 revokes tokens minted beforehand
//! at 100/s on a fixed schedule through the next window. Bytes are UDP payloads as the
//! transport sends and receives them (sealed, framed), without IP and UDP headers.
//!
//! Usage: `cargo run --release -p cluster-tests --example gossip_traffic [SIZES…]`
//! (sizes default to `3 5`), with `CLUSTER_TESTS_BIN=target/release/portcullis`.

mod common;

use std::time::{Duration, Instant};

use cluster_tests::{api, Cluster, Options};
use common::{banner, mint_tokens, Conn};

/// Measurement window, unless `BENCH_TRAFFIC_SECONDS` says otherwise.
const WINDOW_SECONDS: u64 = 10;
/// Revocations per second in the loaded window.
const RATE: u64 = 100;
/// Let membership and key sets settle before the idle window.
const SETTLE: Duration = Duration::from_secs(2);

/// One node's gossip counters at a moment.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    bytes_in: f64,
    bytes_out: f64,
    datagrams_in: f64,
    datagrams_out: f64,
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("cluster sizes are numbers"))
        .collect();
    let sizes = if sizes.is_empty() { vec![3, 5] } else { sizes };
    let seconds = std::env::var("BENCH_TRAFFIC_SECONDS")
        .ok()
        .map_or(WINDOW_SECONDS, |v| {
            v.parse().expect("BENCH_TRAFFIC_SECONDS is a number")
        });
    let window = Duration::from_secs(seconds);
    let options = Options::unlimited();
    banner("gossip traffic per node");
    println!(
        "   gossip interval {} ms; {seconds} s windows; load: {RATE} revocations/s on node 1",
        options.gossip_interval.as_millis()
    );
    for n in sizes {
        measure(n, window, options.clone());
    }
}

fn measure(n: usize, window: Duration, options: Options) {
    let cluster = Cluster::start(n, options);
    cluster.wait_converged();
    let tokens = mint_tokens(
        cluster.node(1).base(),
        (RATE * window.as_secs()) as usize,
        2,
    );
    std::thread::sleep(SETTLE);

    let before = read_all(&cluster);
    let started = Instant::now();
    std::thread::sleep(window);
    let idle = rates(&before, &read_all(&cluster), started.elapsed());

    let before = read_all(&cluster);
    let started = Instant::now();
    revoke_steadily(cluster.node(1).base(), &tokens, window);
    let loaded = rates(&before, &read_all(&cluster), started.elapsed());

    println!();
    println!("{n} nodes");
    println!(
        "{:>5} {:>8} {:>11} {:>11} {:>9} {:>9}",
        "node", "window", "in B/s", "out B/s", "in dg/s", "out dg/s"
    );
    for (name, table) in [("idle", &idle), ("100 rev/s", &loaded)] {
        for (i, r) in table.iter().enumerate() {
            println!(
                "{:>5} {name:>8} {:>11.0} {:>11.0} {:>9.1} {:>9.1}",
                format!("n{}", i + 1),
                r.bytes_in,
                r.bytes_out,
                r.datagrams_in,
                r.datagrams_out
            );
        }
    }
}

/// Revokes `tokens` on `base`, one every `window / tokens.len()`, on a fixed schedule
/// (a late call is followed at once by the next, so the average rate holds).
fn revoke_steadily(base: &str, tokens: &[String], window: Duration) {
    let mut conn = Conn::open(base);
    let step = window / tokens.len() as u32;
    let started = Instant::now();
    for (i, token) in tokens.iter().enumerate() {
        let due = started + step * i as u32;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        assert_eq!(conn.revoke(token), 200, "revoke on node 1");
    }
    std::thread::sleep((started + window).saturating_duration_since(Instant::now()));
}

fn read_all(cluster: &Cluster) -> Vec<Counters> {
    cluster
        .nodes()
        .iter()
        .map(|node| {
            let text = api::metrics(node.base());
            let read =
                |name: &str, direction: &str| api::metric(&text, name, &[("direction", direction)]);
            Counters {
                bytes_in: read("portcullis_gossip_bytes_total", "in"),
                bytes_out: read("portcullis_gossip_bytes_total", "out"),
                datagrams_in: read("portcullis_gossip_datagrams_total", "in"),
                datagrams_out: read("portcullis_gossip_datagrams_total", "out"),
            }
        })
        .collect()
}

/// Per-second rates between two readings.
fn rates(before: &[Counters], after: &[Counters], elapsed: Duration) -> Vec<Counters> {
    let secs = elapsed.as_secs_f64();
    before
        .iter()
        .zip(after)
        .map(|(b, a)| Counters {
            bytes_in: (a.bytes_in - b.bytes_in) / secs,
            bytes_out: (a.bytes_out - b.bytes_out) / secs,
            datagrams_in: (a.datagrams_in - b.datagrams_in) / secs,
            datagrams_out: (a.datagrams_out - b.datagrams_out) / secs,
        })
        .collect()
}
