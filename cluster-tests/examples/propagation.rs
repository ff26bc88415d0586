//! Benchmark: how long a revocation made on one node takes to be enforced by every other
//! node, across 3 and 5 real nodes.
//!
//! For each of `BENCH_REVOCATIONS` (default 200) client-credentials tokens minted
//! beforehand on node 1, and accepted by every node first, it revokes the token on node
//! 1 (`POST /oauth/revoke`) and measures from the answer until every other node answers
//! 401 on `/v1/check`. Each other node is polled in turn, in a tight loop, over a
//! keep-alive connection of its own; the mean time of one pass over the nodes still
//! accepting is the polling resolution, printed with the figures. Between revocations
//! it waits a random fraction of the gossip interval so that revocations do not fall
//! in step with the gossip rounds.
//!
//! The revocations are spread over `BENCH_STARTS` (default 4) freshly started clusters
//! of each size. Every node's gossip timers keep the phase they got at startup, so one
//! cluster samples one alignment of the timers a revocation passes through; several
//! starts sample several, as a fleet of clusters would.
//!
//! Usage: `cargo run --release -p cluster-tests --example propagation [SIZES…]` (sizes
//! default to `3 5`), with `CLUSTER_TESTS_BIN=target/release/portcullis`.

mod common;

use std::time::{Duration, Instant};

use cluster_tests::{api, Cluster, Options, PROPAGATION};
use common::{banner, mint_tokens, ms, quantile, Conn, Jitter};

/// Revocations measured per cluster size, unless `BENCH_REVOCATIONS` says otherwise.
const REVOCATIONS: usize = 200;
/// Clusters started per size, unless `BENCH_STARTS` says otherwise.
const STARTS: usize = 4;

/// What one cluster size measured.
struct Outcome {
    /// Per revocation: revoke answered → the last other node rejects.
    all: Vec<Duration>,
    /// Per revocation and other node: revoke answered → that node rejects.
    each: Vec<Duration>,
    /// Mean time of one polling pass over the nodes still accepting.
    pass: Duration,
    /// Mean origin-to-apply lag the receiving nodes recorded in their own histogram.
    node_lag: Duration,
    /// Per cluster started: the p50 of `all`.
    start_p50s: Vec<Duration>,
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("cluster sizes are numbers"))
        .collect();
    let sizes = if sizes.is_empty() { vec![3, 5] } else { sizes };
    let count = setting("BENCH_REVOCATIONS", REVOCATIONS);
    let starts = setting("BENCH_STARTS", STARTS);
    let options = Options::unlimited();
    banner("revocation propagation");
    println!(
        "   gossip interval {} ms; {count} revocations per cluster size, over {starts} \
         cluster starts",
        options.gossip_interval.as_millis()
    );

    let mut rows = Vec::new();
    for n in sizes {
        let share = |i: usize| count / starts + usize::from(i < count % starts);
        let outcomes: Vec<Outcome> = (0..starts)
            .map(|i| measure(n, share(i), i, options.clone()))
            .collect();
        rows.push((n, merge(outcomes)));
    }
    report(&rows, options.gossip_interval);
}

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map_or(default, |v| v.parse().expect("settings are numbers"))
}

/// One cluster start's outcomes pooled with the others of the same size.
fn merge(outcomes: Vec<Outcome>) -> Outcome {
    let starts = outcomes.len() as u32;
    let mut pooled = Outcome {
        all: Vec::new(),
        each: Vec::new(),
        pass: Duration::ZERO,
        node_lag: Duration::ZERO,
        start_p50s: Vec::new(),
    };
    for outcome in outcomes {
        pooled.all.extend(outcome.all);
        pooled.each.extend(outcome.each);
        pooled.pass += outcome.pass / starts;
        pooled.node_lag += outcome.node_lag / starts;
        pooled.start_p50s.extend(outcome.start_p50s);
    }
    pooled
}

fn measure(n: usize, count: usize, start: usize, options: Options) -> Outcome {
    assert!(n >= 2, "propagation needs at least two nodes");
    let interval = options.gossip_interval;
    let cluster = Cluster::start(n, options);
    cluster.wait_converged();
    let origin = cluster.node(1).base().to_owned();
    let tokens = mint_tokens(&origin, count, 2);

    // Every other node accepts every token first, as it would while the token is in use.
    let mut pollers: Vec<Conn> = (2..=n)
        .map(|i| Conn::open(cluster.node(i).base()))
        .collect();
    for token in &tokens {
        for poller in &mut pollers {
            assert_eq!(poller.check(token), 200, "a fresh token passes everywhere");
        }
    }

    let mut revoker = Conn::open(&origin);
    let mut jitter = Jitter::new(0x5eed_0000 + (n * 100 + start) as u64);
    let (mut all, mut each) = (Vec::new(), Vec::new());
    let (mut passes, mut polling) = (0u32, Duration::ZERO);
    for token in &tokens {
        std::thread::sleep(jitter.below(interval));
        assert_eq!(revoker.revoke(token), 200, "revoke on node 1");
        let answered = Instant::now();
        let (lags, spent) = poll_until_rejected(&mut pollers, token, answered);
        all.push(answered.elapsed());
        each.extend(lags);
        passes += spent.0;
        polling += spent.1;
    }

    let node_lag = recorded_lag(&cluster, n);
    let mut sorted = all.clone();
    sorted.sort();
    Outcome {
        start_p50s: vec![quantile(&sorted, 0.5)],
        all,
        each,
        pass: polling / passes.max(1),
        node_lag,
    }
}

/// Polls every node in turn until each rejects `token`. Returns each node's lag from
/// `answered`, and the number and total time of the polling passes.
fn poll_until_rejected(
    pollers: &mut [Conn],
    token: &str,
    answered: Instant,
) -> (Vec<Duration>, (u32, Duration)) {
    let mut lags = Vec::new();
    let (mut passes, mut polling) = (0, Duration::ZERO);
    let mut pending: Vec<usize> = (0..pollers.len()).collect();
    while !pending.is_empty() {
        let pass = Instant::now();
        pending.retain(|&i| match pollers[i].check(token) {
            401 => {
                lags.push(answered.elapsed());
                false
            }
            200 => true,
            other => panic!("/v1/check answered {other}"),
        });
        passes += 1;
        polling += pass.elapsed();
        assert!(
            answered.elapsed() < PROPAGATION,
            "a revocation never spread"
        );
    }
    (lags, (passes, polling))
}

/// The mean of `portcullis_revocation_propagation_seconds` over the receiving nodes.
fn recorded_lag(cluster: &Cluster, n: usize) -> Duration {
    let (mut sum, mut count) = (0.0, 0.0);
    for i in 2..=n {
        let text = api::metrics(cluster.node(i).base());
        sum += api::metric(&text, "portcullis_revocation_propagation_seconds_sum", &[]);
        count += api::metric(
            &text,
            "portcullis_revocation_propagation_seconds_count",
            &[],
        );
    }
    Duration::from_secs_f64(if count > 0.0 { sum / count } else { 0.0 })
}

fn report(rows: &[(usize, Outcome)], interval: Duration) {
    println!();
    println!(
        "{:>5} {:>5} {:>8} {:>8} {:>8} {:>13} {:>14} {:>10} {:>10}",
        "nodes",
        "revs",
        "p50 ms",
        "p99 ms",
        "max ms",
        "per-node p50",
        "p50 per start",
        "poll pass",
        "node-seen"
    );
    for (n, outcome) in rows {
        let mut all = outcome.all.clone();
        all.sort();
        let mut each = outcome.each.clone();
        each.sort();
        let mut starts = outcome.start_p50s.clone();
        starts.sort();
        let spread = format!(
            "{:.0}–{:.0}",
            starts[0].as_secs_f64() * 1000.0,
            starts[starts.len() - 1].as_secs_f64() * 1000.0
        );
        println!(
            "{n:>5} {:>5} {:>8} {:>8} {:>8} {:>13} {spread:>14} {:>10} {:>10}",
            all.len(),
            ms(quantile(&all, 0.50)),
            ms(quantile(&all, 0.99)),
            ms(quantile(&all, 1.0)),
            ms(quantile(&each, 0.50)),
            ms(outcome.pass),
            ms(outcome.node_lag),
        );
    }
    println!();
    println!("p50/p99/max: revoke answered on node 1 → every other node answers 401, pooled");
    println!("  over every cluster start; per-node p50: the same, for each other node alone;");
    println!("  p50 per start: lowest and highest p50 of the separate cluster starts.");
    println!("poll pass: mean time of one round of /v1/check over the nodes still accepting;");
    println!("  each figure may be late by up to one pass.");
    println!("node-seen: mean origin-to-apply lag from the nodes' own propagation histogram.");
    let goal = interval * 2;
    for (n, outcome) in rows {
        let mut all = outcome.all.clone();
        all.sort();
        let p99 = quantile(&all, 0.99);
        let verdict = if p99 <= goal { "met" } else { "MISSED" };
        println!(
            "goal p99 ≤ 2 × gossip interval ({} ms), {n} nodes: {} ms — {verdict}",
            goal.as_millis(),
            ms(p99)
        );
    }
}
