//! Login floods: one address, then a botnet, guessing one user's password at 2,000
//! attempts a minute over a three-node cluster while fifty real users log in as usual.
//!
//! Every real user logged in once before the attack, from their home network, on one
//! node (trust is gossiped to the others). During the attack each logs in every ten
//! seconds from another address of that network, to a node chosen in rotation, as a
//! client behind a regional load balancer would. An attempt "reached hashing" when the
//! node answered `400 invalid_grant` (only a password check answers that); the nodes'
//! own failure counters are read as a cross-check.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use cluster_tests::{api, Cluster, Options};

use super::common::Conn;
use super::population::{home, sleep_until, times, Population};
use super::{setting, Goal};

/// Attack attempts per minute, whatever the number of sources.
const PER_MINUTE: u64 = 2_000;
/// Threads sending the attack, so that slow answers do not hold back the schedule.
const ATTACK_THREADS: usize = 8;
/// How often each real user logs in during the attack.
const USER_PERIOD: Duration = Duration::from_secs(10);

/// What one flood measured.
struct Flood {
    attempts: usize,
    /// Answered `400`: the password was checked.
    hashed: usize,
    /// Password checks that failed, by the nodes' own counters.
    node_failures: f64,
    /// Answered `429` or `503` before hashing.
    refused: usize,
    /// Any other answer.
    other: usize,
    /// The achieved attack rate.
    per_minute: f64,
    real_ok: usize,
    real_total: usize,
    victim_ok: usize,
    victim_total: usize,
}

/// Scenario 1: one address.
pub fn single_address() -> Vec<Goal> {
    let flood = run("one address", &[Ipv4Addr::new(127, 66, 0, 1)]);
    goals("login", &flood, 0.01)
}

/// Scenario 2: 500 addresses, each in a /24 of its own.
pub fn botnet() -> Vec<Goal> {
    let bots: Vec<Ipv4Addr> = (0..500u32)
        .map(|i| Ipv4Addr::new(127, 70 + (i / 250) as u8, (i % 250) as u8, 1))
        .collect();
    let flood = run("500 addresses", &bots);
    goals("botnet", &flood, 0.05)
}

fn goals(scenario: &'static str, flood: &Flood, hashed_goal: f64) -> Vec<Goal> {
    let hashed = flood.hashed.max(flood.node_failures as usize);
    let share = hashed as f64 / flood.attempts as f64;
    let real = flood.real_ok as f64 / flood.real_total as f64;
    vec![
        Goal::new(
            scenario,
            format!(
                "{hashed} of {} attempts hashed ({:.2}%), {:.0}/min",
                flood.attempts,
                100.0 * share,
                flood.per_minute
            ),
            format!("≤ {:.0}% reach hashing", 100.0 * hashed_goal),
            share <= hashed_goal,
        ),
        Goal::new(
            scenario,
            format!(
                "{} of {} real logins succeeded ({:.1}%)",
                flood.real_ok,
                flood.real_total,
                100.0 * real
            ),
            "≥ 99% of real logins succeed",
            real >= 0.99,
        ),
        Goal::new(
            scenario,
            format!(
                "attacked user: {} of {} logins succeeded",
                flood.victim_ok, flood.victim_total
            ),
            "the attacked user logs in",
            flood.victim_ok > 0 && flood.victim_ok == flood.victim_total,
        ),
    ]
}

fn run(what: &str, bots: &[Ipv4Addr]) -> Flood {
    let seconds = setting("ATTACK_SECONDS", 60);
    let population = Population::new();
    let options = Options {
        sections: population.sections.clone(),
        ..Options::default()
    };
    let cluster = Cluster::start(3, options);
    cluster.wait_converged();
    let bases = cluster.bases();
    println!(
        "\n-- login flood from {what}: {PER_MINUTE} attempts/min for {seconds} s against \
         {}, {} real users, 3 nodes, default [login] settings",
        population.victim(),
        population.users.len()
    );

    // Yesterday: every user logged in from home.
    for (k, (user, password)) in population.users.iter().enumerate() {
        let status =
            Conn::open_from(&bases[k % bases.len()], Some(home(k, 1))).login(user, password);
        assert_eq!(status, 200, "{user}'s first login");
    }
    let failures_before = node_failures(&bases);

    let attempts = (PER_MINUTE * seconds / 60) as usize;
    let spacing = Duration::from_secs(60) / PER_MINUTE as u32;
    let start = Instant::now() + Duration::from_millis(200);
    let (attack, users) = std::thread::scope(|scope| {
        let attackers: Vec<_> = (0..ATTACK_THREADS)
            .map(|t| {
                let (bases, victim) = (&bases, population.victim());
                scope.spawn(move || {
                    let mut statuses = Vec::new();
                    for i in (t..attempts).step_by(ATTACK_THREADS) {
                        sleep_until(start + times(spacing, i));
                        let base = &bases[i % bases.len()];
                        let source = bots[i % bots.len()];
                        let guess = format!("guess-{i}");
                        statuses.push(Conn::open_from(base, Some(source)).login(victim, &guess));
                    }
                    statuses
                })
            })
            .collect();
        let logins = (seconds * 1000 / USER_PERIOD.as_millis() as u64) as usize;
        let users: Vec<_> = population
            .users
            .iter()
            .enumerate()
            .map(|(k, (user, password))| {
                let bases = &bases;
                scope.spawn(move || {
                    let offset = times(USER_PERIOD, k) / population_size();
                    (0..logins)
                        .map(|m| {
                            sleep_until(start + offset + times(USER_PERIOD, m));
                            let base = &bases[(k + m + 1) % bases.len()];
                            let status =
                                Conn::open_from(base, Some(home(k, 2 + m))).login(user, password);
                            (k, status)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let attack: Vec<u16> = attackers
            .into_iter()
            .flat_map(|a| a.join().expect("an attacker thread does not panic"))
            .collect();
        let users: Vec<(usize, u16)> = users
            .into_iter()
            .flat_map(|u| u.join().expect("a user thread does not panic"))
            .collect();
        (attack, users)
    });
    let elapsed = start.elapsed().as_secs_f64();

    let count = |wanted: &[u16]| attack.iter().filter(|s| wanted.contains(s)).count();
    let flood = Flood {
        attempts: attack.len(),
        hashed: count(&[400]),
        node_failures: node_failures(&bases) - failures_before,
        refused: count(&[429, 503]),
        other: attack.len() - count(&[400, 429, 503]),
        per_minute: attack.len() as f64 * 60.0 / elapsed,
        real_ok: users.iter().filter(|(_, s)| *s == 200).count(),
        real_total: users.len(),
        victim_ok: users.iter().filter(|(k, s)| *k == 0 && *s == 200).count(),
        victim_total: users.iter().filter(|(k, _)| *k == 0).count(),
    };
    let refused_real: Vec<u16> = users.iter().map(|u| u.1).filter(|s| *s != 200).collect();
    println!(
        "   attack: {} attempts, {} answered 400 (hashed), {} refused (429/503), {} other; \
         nodes counted {} failed password checks",
        flood.attempts, flood.hashed, flood.refused, flood.other, flood.node_failures
    );
    println!(
        "   real users: {}/{} logins succeeded; statuses of the others: {refused_real:?}",
        flood.real_ok, flood.real_total
    );
    let admin = api::admin_token(&bases[0]);
    let bans = api::admin_get(&bases[0], &admin, "/admin/v1/bans");
    let listed = bans["bans"].as_array().map_or(0, Vec::len);
    println!("   bans listed on n1 at the end: {listed}");
    flood
}

fn population_size() -> u32 {
    super::population::USERS as u32
}

/// Failed password checks counted by every node so far.
fn node_failures(bases: &[String]) -> f64 {
    bases
        .iter()
        .map(|base| {
            let text = api::metrics(base);
            api::metric(&text, "portcullis_logins_total", &[("outcome", "failure")])
        })
        .sum()
}
