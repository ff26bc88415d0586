//! Attack simulation: the abuse a Portcullis cluster is built to absorb, played against
//! real nodes on loopback addresses, with every attacker and user connecting from a
//! source address of its own (all of 127.0.0.0/8 is local on Linux).
//!
//! | scenario | what it plays | goal |
//! |---|---|---|
//! | `login` | one address, 2,000 guessed logins a minute against one user name, while 50 real users log in | ≤ 1% of attempts reach hashing; ≥ 99% of real logins succeed; the attacked user logs in |
//! | `botnet` | the same from 500 addresses in 500 networks | ≤ 5% reach hashing; ≥ 99% of real logins succeed |
//! | `revocation` | a lineage past twice its budget, spread over three nodes | every node rejects it ≤ 300 ms (p99) after the threshold is crossed |
//! | `overshoot` | a fresh lineage hammered on every node, fast and strict, 3 and 5 nodes | strict: 0 admitted past the budget; fast: within (N − 1) × R × d |
//! | `accounting` | `/v1/check` with budget accounting on and off (`wrk`) | ≤ 10% throughput cost |
//! | `memory` | 100,000 addresses presenting bad tokens and logins | counters stay within their cap; a hot address keeps its count |
//!
//! It prints one table and exits with 1 when a goal is missed. Each scenario starts its
//! own cluster and is bounded in time.
//!
//! Usage: `cargo run --release -p cluster-tests --example attack [SCENARIO…]` with
//! `CLUSTER_TESTS_BIN=target/release/portcullis`; `scripts/attack-sim.sh` does both.
//! Settings (environment): `ATTACK_SECONDS` (login scenarios, default 60),
//! `ATTACK_TRIALS` (revocation trials, default 40), `ATTACK_WRK_SECONDS` (default 8).

mod budget;
#[path = "../common/mod.rs"]
mod common;
mod cost;
mod login;
mod population;

use std::process::ExitCode;

use common::banner;

/// One goal's line in the final table.
pub struct Goal {
    /// The scenario it belongs to.
    pub scenario: &'static str,
    /// What was measured, as printed.
    pub measured: String,
    /// The goal, as printed.
    pub goal: String,
    /// Whether it was met.
    pub met: bool,
}

impl Goal {
    fn new(scenario: &'static str, measured: String, goal: impl Into<String>, met: bool) -> Self {
        Self {
            scenario,
            measured,
            goal: goal.into(),
            met,
        }
    }
}

const SCENARIOS: [&str; 6] = [
    "login",
    "botnet",
    "revocation",
    "overshoot",
    "accounting",
    "memory",
];

fn main() -> ExitCode {
    let chosen: Vec<String> = std::env::args().skip(1).collect();
    for name in &chosen {
        assert!(
            SCENARIOS.contains(&name.as_str()),
            "unknown scenario {name}; known: {SCENARIOS:?}"
        );
    }
    let run = |name: &str| chosen.is_empty() || chosen.iter().any(|c| c == name);
    banner("attack simulation");
    let mut goals = Vec::new();
    if run("login") {
        goals.extend(login::single_address());
    }
    if run("botnet") {
        goals.extend(login::botnet());
    }
    if run("revocation") {
        goals.extend(budget::revocation());
    }
    if run("overshoot") {
        goals.extend(budget::overshoot());
    }
    if run("accounting") {
        goals.extend(cost::accounting());
    }
    if run("memory") {
        goals.extend(cost::memory());
    }
    report(&goals)
}

fn report(goals: &[Goal]) -> ExitCode {
    println!();
    println!(
        "{:<11} {:<58} {:<34} result",
        "scenario", "measured", "goal"
    );
    for goal in goals {
        let verdict = if goal.met { "met" } else { "MISSED" };
        println!(
            "{:<11} {:<58} {:<34} {verdict}",
            goal.scenario, goal.measured, goal.goal
        );
    }
    let missed = goals.iter().filter(|g| !g.met).count();
    if missed == 0 {
        println!("\nevery goal met");
        ExitCode::SUCCESS
    } else {
        println!("\n{missed} goal(s) missed");
        ExitCode::FAILURE
    }
}

/// A setting from the environment, or its default.
pub fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map_or(default, |v| v.parse().expect("settings are numbers"))
}
