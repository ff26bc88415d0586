//! Request budgets under attack: how soon an abusive lineage is refused everywhere,
//! and how many requests a cluster admits past a budget in fast and in strict mode.
//!
//! Both scenarios hammer one token on every node at once: per node a thread with a
//! keep-alive connection of its own, sending at a fixed pace and recording when each
//! request was sent, when it was answered and how.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cluster_tests::{Cluster, Options};

use super::common::{ms, quantile, Conn};
use super::population::{home, sleep_until, times, Population, USERS};
use super::{setting, Goal};

/// One request of a hammering run.
#[derive(Clone, Copy)]
struct Shot {
    node: usize,
    sent: Duration,
    answered: Duration,
    status: u16,
}

/// The /24 the next hammering run sends from, `127.80.n.0/24`: one network per run, so
/// that no run trips the spread heuristic (one network is one network however many
/// nodes it reaches) and no run inherits the bad-token count of the one before it (a
/// revoked token is a bad token once refused).
fn next_network() -> u8 {
    static NEXT: AtomicU8 = AtomicU8::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Sends `token` to every node in `bases`, one request per `gap` per node, each node's
/// thread from an address of a fresh network of its own run, until `done(shots so far
/// on that node)` says that node is finished.
fn hammer(
    bases: &[String],
    token: &str,
    gap: Duration,
    done: impl Fn(&[Shot]) -> bool + Sync,
) -> (Instant, Vec<Shot>) {
    let network = next_network();
    let start = Instant::now() + Duration::from_millis(50);
    let shots = std::thread::scope(|scope| {
        let threads: Vec<_> = bases
            .iter()
            .enumerate()
            .map(|(node, base)| {
                let done = &done;
                scope.spawn(move || {
                    let source = Ipv4Addr::new(127, 80, network, node as u8 + 1);
                    let mut conn = Conn::open_from(base, Some(source));
                    let mut shots = Vec::new();
                    // Nodes start a fraction of a gap apart, as independent clients would.
                    let phase = gap * u32::try_from(node).unwrap_or(0) / bases.len() as u32;
                    for i in 0.. {
                        sleep_until(start + phase + times(gap, i));
                        let sent = start.elapsed();
                        let status = conn.check(token);
                        let answered = start.elapsed();
                        shots.push(Shot {
                            node,
                            sent,
                            answered,
                            status,
                        });
                        if done(&shots) {
                            break;
                        }
                    }
                    shots
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("a hammering thread does not panic"))
            .collect()
    });
    (start, shots)
}

/// A fresh lineage: a password login of user `k`, from their home network.
fn fresh_token(base: &str, population: &Population, k: usize) -> String {
    let (user, password) = &population.users[k % USERS];
    let mut conn = Conn::open_from(base, Some(home(k % USERS, 1 + k / USERS)));
    let (status, body) = conn.post_as_web(
        "/oauth/token",
        &format!("grant_type=password&username={user}&password={password}"),
    );
    assert_eq!(status, 200, "login of {user}");
    let json: serde_json::Value = serde_json::from_slice(&body).expect("a JSON token response");
    json["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

/// Scenario 3: time from crossing the abuse threshold until every node rejects.
pub fn revocation() -> Vec<Goal> {
    const BUDGET: u64 = 150;
    const NODES: usize = 3;
    let gap = Duration::from_millis(10);
    let trials = setting("ATTACK_TRIALS", 40) as usize;
    let population = Population::new();
    let options = Options {
        sections: format!(
            "[rate_limits]\nper_minute = {BUDGET}\n{}",
            population.sections
        ),
        ..Options::default()
    };
    let cluster = Cluster::start(NODES, options.clone());
    cluster.wait_converged();
    let bases = cluster.bases();
    let threshold = 2 * BUDGET as usize;
    println!(
        "\n-- abuse revocation: budget {BUDGET}/min, abuse past {threshold}; {NODES} nodes each \
         sent one request per {} ms ({} req/s in all); {trials} lineages; gossip interval {} ms",
        gap.as_millis(),
        NODES as u128 * 1000 / gap.as_millis(),
        options.gossip_interval.as_millis()
    );
    let mut delays = Vec::new();
    for trial in 0..trials {
        let token = fresh_token(&bases[trial % NODES], &population, trial);
        let deadline = Duration::from_secs(20);
        let (_, mut shots) = hammer(&bases, &token, gap, |shots| {
            shots
                .last()
                .is_some_and(|s| s.status == 401 || s.sent > deadline)
        });
        shots.sort_by_key(|s| s.sent);
        // The request that took the cluster-wide count past the threshold.
        let Some(crossing) = shots.get(threshold).map(|s| s.sent) else {
            println!(
                "   lineage {trial}: refused after {} requests, before its threshold",
                shots.len()
            );
            delays.push(deadline);
            continue;
        };
        let rejected: Vec<Duration> = (0..NODES)
            .map(|node| {
                shots
                    .iter()
                    .find(|s| s.node == node && s.status == 401)
                    .map_or(deadline, |s| s.answered)
            })
            .collect();
        let all = rejected.iter().max().copied().unwrap_or(deadline);
        delays.push(all.saturating_sub(crossing));
    }
    delays.sort();
    let (p50, p99) = (quantile(&delays, 0.5), quantile(&delays, 0.99));
    println!(
        "   threshold crossed → every node answers 401: p50 {} ms, p99 {} ms, max {} ms",
        ms(p50),
        ms(p99),
        ms(delays[delays.len() - 1])
    );
    vec![Goal::new(
        "revocation",
        format!(
            "crossing → all {NODES} nodes reject: p50 {} ms, p99 {} ms",
            ms(p50),
            ms(p99)
        ),
        "p99 ≤ 300 ms",
        p99 <= Duration::from_millis(300),
    )]
}

/// Scenario 4: requests admitted past the budget, fast and strict, 3 and 5 nodes.
pub fn overshoot() -> Vec<Goal> {
    const BUDGET: u64 = 300;
    /// Requests per second over the whole cluster.
    const RATE: u32 = 600;
    const SPAN: Duration = Duration::from_secs(2);
    let trials = setting("ATTACK_OVERSHOOT_TRIALS", 6) as usize;
    let population = Population::new();
    let mut goals = Vec::new();
    println!(
        "\n-- overshoot: budget {BUDGET}/min, a fresh lineage hammered at {RATE} req/s spread \
         over every node for {} s, {trials} lineages per row (abuse factor raised so that no \
         lineage is revoked)",
        SPAN.as_secs()
    );
    for nodes in [3usize, 5] {
        for mode in ["fast", "strict"] {
            let options = Options {
                sections: format!(
                    "[rate_limits]\nper_minute = {BUDGET}\nmode = \"{mode}\"\nabuse_factor = 1000\n{}",
                    population.sections
                ),
                ..Options::default()
            };
            let interval = options.gossip_interval;
            let cluster = Cluster::start(nodes, options);
            cluster.wait_converged();
            let bases = cluster.bases();
            let gap = Duration::from_secs(1) * nodes as u32 / RATE;
            let mut overs = Vec::new();
            for trial in 0..trials {
                let token = fresh_token(&bases[trial % nodes], &population, trial);
                inside_one_window(SPAN + Duration::from_secs(1));
                let (_, shots) = hammer(&bases, &token, gap, |shots| {
                    shots.last().is_some_and(|s| s.sent >= SPAN)
                });
                let admitted = shots.iter().filter(|s| s.status == 200).count() as u64;
                overs.push(admitted.saturating_sub(BUDGET));
            }
            // d: a report waits up to one local round to be published, up to one gossip
            // interval (and another for a relay through a third node) to arrive, and one
            // round to be merged: 2 × interval + 2 × round.
            let d = 2 * interval + interval / 2;
            let bound = (nodes as f64 - 1.0) * f64::from(RATE) * d.as_secs_f64();
            let worst = overs.iter().max().copied().unwrap_or(0);
            let mean = overs.iter().sum::<u64>() as f64 / overs.len() as f64;
            println!(
                "   {nodes} nodes, {mode:<6}: admitted past the budget per lineage {overs:?} \
                 (mean {mean:.1}, max {worst}); bound (N − 1) × R × d = {bound:.0} with d = {} ms",
                d.as_millis()
            );
            let (goal, met) = if mode == "strict" {
                ("0".to_owned(), worst == 0)
            } else {
                (format!("≤ {bound:.0} = (N−1)×R×d"), worst as f64 <= bound)
            };
            goals.push(Goal::new(
                "overshoot",
                format!("{nodes} nodes {mode}: max {worst}, mean {mean:.1} past {BUDGET}"),
                goal,
                met,
            ));
        }
    }
    goals
}

/// Waits, when needed, so that the next `span` falls inside one budget window (a
/// Unix minute): a burst that straddles two windows is counted in both.
fn inside_one_window(span: Duration) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is past 1970");
    let into = Duration::from_millis((now.as_millis() % 60_000) as u64);
    let left = Duration::from_secs(60) - into;
    if left < span {
        std::thread::sleep(left + Duration::from_millis(100));
    }
}
