//! Benchmark: a burst of 10,000 revocations on one node, and how long until every node
//! enforces all of them.
//!
//! It mints `BENCH_BURST` (default 10,000) client-credentials tokens on node 1, then
//! revokes them all through `POST /oauth/revoke` on node 1 over `BENCH_BURST_CONNECTIONS`
//! (default 4) keep-alive connections, as fast as the node answers (each revocation is
//! fsynced before its answer). A watcher polls `deny_list_entries` from
//! `GET /admin/v1/cluster` on every other node every `WATCH` and notes when each holds
//! them all; every other node is then spot-checked with tokens spread over the burst.
//!
//! Usage: `cargo run --release -p cluster-tests --example burst [NODES]` (default 3),
//! with `CLUSTER_TESTS_BIN=target/release/portcullis`.

mod common;

use std::time::{Duration, Instant};

use cluster_tests::{api, Cluster, Options};
use common::{banner, mint_tokens, ms, quantile, Conn};

/// Revocations in the burst, unless `BENCH_BURST` says otherwise.
const BURST: usize = 10_000;
/// Parallel revoke connections, unless `BENCH_BURST_CONNECTIONS` says otherwise.
const CONNECTIONS: usize = 4;
/// How often the watcher asks each node for its deny-list size.
const WATCH: Duration = Duration::from_millis(10);
/// Give up if the cluster has not converged this long after the burst.
const GIVE_UP: Duration = Duration::from_secs(120);
/// Tokens per node checked after convergence, spread evenly over the burst.
const SPOT_CHECKS: usize = 200;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(3, |a| a.parse().expect("the node count is a number"));
    let burst = setting("BENCH_BURST", BURST);
    let connections = setting("BENCH_BURST_CONNECTIONS", CONNECTIONS);
    banner("burst of revocations on one node");
    println!("   {n} nodes, {burst} revocations over {connections} connections to node 1");

    let cluster = Cluster::start(n, Options::unlimited());
    cluster.wait_converged();
    let admins: Vec<String> = (1..=n)
        .map(|i| api::admin_token(cluster.node(i).base()))
        .collect();
    let before = deny_sizes(&cluster, &admins);
    let origin = cluster.node(1).base().to_owned();

    let minting = Instant::now();
    let tokens = mint_tokens(&origin, burst, connections);
    println!(
        "minted {burst} tokens in {:.2} s",
        minting.elapsed().as_secs_f64()
    );

    let targets: Vec<u64> = before.iter().map(|b| b + burst as u64).collect();
    let (burst_out, reached) = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| watch(&cluster, &admins, &targets));
        let out = revoke_all(&origin, &tokens, connections);
        (out, watcher.join().expect("the watcher does not panic"))
    });
    spot_check(&cluster, &tokens);
    report(n, burst, &burst_out, &reached);
}

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map_or(default, |v| v.parse().expect("settings are numbers"))
}

/// What the revoking side saw.
struct Burst {
    started: Instant,
    /// When the last revoke was answered.
    finished: Instant,
    /// Each call's latency.
    latencies: Vec<Duration>,
}

fn revoke_all(origin: &str, tokens: &[String], connections: usize) -> Burst {
    let chunk = tokens.len().div_ceil(connections);
    let started = Instant::now();
    let mut latencies: Vec<Duration> = std::thread::scope(|scope| {
        let workers: Vec<_> = tokens
            .chunks(chunk)
            .map(|share| {
                scope.spawn(move || {
                    let mut conn = Conn::open(origin);
                    share
                        .iter()
                        .map(|token| {
                            let call = Instant::now();
                            assert_eq!(conn.revoke(token), 200, "revoke on node 1");
                            call.elapsed()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a revoking thread does not panic"))
            .collect()
    });
    let finished = Instant::now();
    latencies.sort();
    Burst {
        started,
        finished,
        latencies,
    }
}

/// The deny-list size each node reports.
fn deny_sizes(cluster: &Cluster, admins: &[String]) -> Vec<u64> {
    cluster
        .nodes()
        .iter()
        .zip(admins)
        .map(|(node, admin)| {
            api::cluster_view(node.base(), admin)["deny_list_entries"]
                .as_u64()
                .expect("the cluster view counts deny-list entries")
        })
        .collect()
}

/// Polls every node's deny-list size until each reaches its target; returns when each
/// did (node 1 included: it applies its own revocations as it answers them).
fn watch(cluster: &Cluster, admins: &[String], targets: &[u64]) -> Vec<Instant> {
    let started = Instant::now();
    let mut reached: Vec<Option<Instant>> = vec![None; targets.len()];
    while reached.iter().any(Option::is_none) {
        for (i, node) in cluster.nodes().iter().enumerate() {
            if reached[i].is_some() {
                continue;
            }
            let view = api::cluster_view(node.base(), &admins[i]);
            let size = view["deny_list_entries"].as_u64().unwrap_or_default();
            if size >= targets[i] {
                reached[i] = Some(Instant::now());
            }
        }
        assert!(
            started.elapsed() < GIVE_UP,
            "the burst never reached every node"
        );
        std::thread::sleep(WATCH);
    }
    reached.into_iter().flatten().collect()
}

/// Every node rejects tokens from the whole burst, the last one included.
fn spot_check(cluster: &Cluster, tokens: &[String]) {
    let step = (tokens.len() / SPOT_CHECKS).max(1);
    let mut sample: Vec<&String> = tokens.iter().step_by(step).collect();
    sample.extend(tokens.last());
    for node in cluster.nodes() {
        let mut conn = Conn::open(node.base());
        for token in &sample {
            assert_eq!(
                conn.check(token),
                401,
                "{} accepts a revoked token",
                node.id()
            );
        }
    }
    println!(
        "spot check: {} tokens from across the burst rejected by all {} nodes",
        sample.len(),
        cluster.nodes().len()
    );
}

fn report(n: usize, burst: usize, out: &Burst, reached: &[Instant]) {
    let calls = out.finished - out.started;
    println!();
    println!(
        "revoke calls: {burst} in {:.2} s = {:.0}/s; per call p50 {} ms, p99 {} ms, max {} ms",
        calls.as_secs_f64(),
        burst as f64 / calls.as_secs_f64(),
        ms(quantile(&out.latencies, 0.50)),
        ms(quantile(&out.latencies, 0.99)),
        ms(quantile(&out.latencies, 1.0)),
    );
    println!(
        "{:>5} {:>22} {:>24}",
        "node", "from first revoke, s", "after last answer, ms"
    );
    for (i, at) in reached.iter().enumerate() {
        println!(
            "{:>5} {:>22.2} {:>24}",
            format!("n{}", i + 1),
            (*at - out.started).as_secs_f64(),
            signed_ms(*at, out.finished),
        );
    }
    let last = reached.iter().max().copied().unwrap_or(out.finished);
    let total = last - out.started;
    let tail = last.saturating_duration_since(out.finished);
    println!("(deny-list sizes polled every {} ms)", WATCH.as_millis());
    let verdict = if total <= Duration::from_secs(5) {
        "met"
    } else {
        "MISSED"
    };
    println!(
        "goal all {n} nodes enforce all {burst} ≤ 5 s from the first revoke: {:.2} s — {verdict}",
        total.as_secs_f64()
    );
    println!(
        "    of which after the last revoke was answered: {} ms",
        ms(tail)
    );
}

/// `at - reference` in ms, negative when `at` came first.
fn signed_ms(at: Instant, reference: Instant) -> String {
    match at.checked_duration_since(reference) {
        Some(after) => ms(after),
        None => format!("-{}", ms(reference - at)),
    }
}
