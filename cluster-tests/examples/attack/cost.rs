//! What the defences cost: `/v1/check` throughput with budget accounting on and off,
//! and counter memory under an address-rotation attack.

use std::net::Ipv4Addr;
use std::time::Duration;

use cluster_tests::{api, Cluster, Options};

use super::common::wrk::{median_of, paired_ratio, pin, wrk, Run};
use super::common::{mint_tokens, proc_status_kib, Conn};
use super::{setting, Goal};

/// Alternating `wrk` rounds (each: both nodes, in flipped order).
const ROUNDS: usize = 3;
/// `wrk` keep-alive connections.
const CONNECTIONS: usize = 16;

/// Scenario 5: two single nodes, one counting budgets and one not, measured in turn.
pub fn accounting() -> Vec<Goal> {
    let seconds = setting("ATTACK_WRK_SECONDS", 8);
    let metered = Options::unlimited();
    let unmetered = Options {
        sections: metered.sections.replacen(
            "[rate_limits]\n",
            "[rate_limits]\nenabled = false\n",
            1,
        ),
        ..Options::unlimited()
    };
    let on = Cluster::start(1, metered);
    let off = Cluster::start(1, unmetered);
    let nodes = [off.node(1), on.node(1)];
    let tokens = nodes.map(|n| mint_tokens(n.base(), 1, 1).remove(0));
    for node in nodes {
        pin(node.pid().expect("the node runs"), "0");
    }
    println!(
        "\n-- budget accounting cost: /v1/check, one repeated token, accounting off vs on; \
         each node pinned to CPU 0, wrk to CPU 1; {ROUNDS} rounds of {seconds} s runs"
    );
    let mut runs: [Vec<Run>; 2] = [Vec::new(), Vec::new()];
    for round in 0..ROUNDS {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let auth = format!("Authorization: Bearer {}", tokens[which]);
            let url = nodes[which].url("/v1/check");
            let label = format!("round {} accounting {}", round + 1, ["off", "on"][which]);
            let pid = nodes[which].pid().expect("the node runs");
            runs[which].push(wrk(pid, seconds, CONNECTIONS, &label, &["-H", &auth, &url]));
        }
    }
    let rps: fn(&Run) -> f64 = |r| r.rps;
    let cpu: fn(&Run) -> f64 = |r| r.cpu_us;
    let ratio = paired_ratio(&runs[0], &runs[1], rps);
    let cost = 1.0 - ratio;
    let cpu_ratio = paired_ratio(&runs[0], &runs[1], cpu);
    println!(
        "   off {:.0} req/s, on {:.0} req/s (medians); paired on ÷ off {:.1}%; node CPU per \
         request on ÷ off {:.1}%",
        median_of(&runs[0], rps),
        median_of(&runs[1], rps),
        100.0 * ratio,
        100.0 * cpu_ratio
    );
    vec![Goal::new(
        "accounting",
        format!(
            "throughput cost {:.1}% ({:.0} vs {:.0} req/s)",
            100.0 * cost,
            median_of(&runs[1], rps),
            median_of(&runs[0], rps)
        ),
        "≤ 10%",
        cost <= 0.10,
    )]
}

/// Scenario 6: 100,000 addresses, each presenting a forged token and a login attempt,
/// against a node whose tables hold at most `CAP` entries each. One hot address keeps
/// presenting forged tokens throughout and must be denied at exactly its threshold.
pub fn memory() -> Vec<Goal> {
    const CAP: u64 = 10_000;
    const KEYS: usize = 100_000;
    const THREADS: usize = 8;
    /// Counter tables: budgets, shares, five login tables, four heuristics tables.
    const TABLES: u64 = 11;
    /// Default `[heuristics] bad_tokens`.
    const BAD_TOKENS: usize = 20;
    let options = Options {
        // A long bad-token window, so that the hot address's count cannot slide out of
        // it while the flood runs; only eviction could lose it.
        sections: format!(
            "[rate_limits]\nmax_counters = {CAP}\n\n[heuristics]\nbad_token_window = \"1h\"\n"
        ),
        ..Options::default()
    };
    let cluster = Cluster::start(1, options);
    let node = cluster.node(1);
    let base = node.base().to_owned();
    let pid = node.pid().expect("the node runs");
    let admin = api::admin_token(&base);
    let valid = api::client_token(&base);
    let forged = forge(&valid);
    stay_inside_hour(Duration::from_secs(180));
    let rss_before = proc_status_kib(pid, "VmRSS");
    println!(
        "\n-- address rotation: {KEYS} source addresses, each one forged token on /v1/check and \
         one login attempt; max_counters = {CAP} per table"
    );

    // The hot address presents BAD_TOKENS − 1 forged tokens spread over the flood.
    let hot = Ipv4Addr::new(127, 90, 0, 1);
    let every = KEYS / BAD_TOKENS;
    let started = std::time::Instant::now();
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (base, forged) = (&base, &forged);
            scope.spawn(move || {
                for i in (t..KEYS).step_by(THREADS) {
                    let source = rotating(i);
                    let mut conn = Conn::open_from(base, Some(source));
                    assert_eq!(conn.check(forged), 401);
                    let status = conn.login("nobody", "guess");
                    assert!(matches!(status, 400 | 429 | 503), "login answered {status}");
                    if i % every == every / 2 && i / every < BAD_TOKENS - 1 {
                        assert_eq!(Conn::open_from(base, Some(hot)).check(forged), 401);
                    }
                }
            });
        }
    });
    let flood = started.elapsed();
    let abuse = api::admin_get(&base, &admin, "/admin/v1/abuse");
    let entries = abuse["counters"]["entries"]
        .as_u64()
        .expect("a counter count");
    let rss_after = proc_status_kib(pid, "VmRSS");
    // The threshold-th forged token denies the address: a valid token is then refused.
    let mut hot_conn = Conn::open_from(&base, Some(hot));
    let before_last = hot_conn.check(&valid);
    assert_eq!(hot_conn.check(&forged), 401);
    // The denial is durable before that answer; allow for nothing more than a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let denied = loop {
        if hot_conn.check(&valid) == 401 {
            break true;
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    println!(
        "   flood took {:.1} s; counter entries {entries} (bound {TABLES} tables × {CAP}); RSS \
         {} → {} MiB",
        flood.as_secs_f64(),
        rss_before / 1024,
        rss_after / 1024
    );
    println!(
        "   hot address: valid token before its {BAD_TOKENS}th forged one → {before_last}; \
         after it: {}",
        if denied {
            "denied (401)"
        } else {
            "still admitted"
        }
    );
    vec![
        Goal::new(
            "memory",
            format!(
                "{entries} counter entries after {KEYS} keys; RSS +{} MiB",
                rss_after.saturating_sub(rss_before) / 1024
            ),
            format!("≤ {} ({TABLES} × {CAP})", TABLES * CAP),
            entries <= TABLES * CAP,
        ),
        Goal::new(
            "memory",
            format!("hot address denied at its {BAD_TOKENS}th bad token: {denied}"),
            "a hot key keeps its count",
            denied && before_last == 200,
        ),
    ]
}

/// The `i`-th address of the rotation: 127.100.0.1 onwards, skipping .0 and .251–.255.
fn rotating(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(
        127,
        100 + (i / 62_500) as u8,
        ((i / 250) % 250) as u8,
        (i % 250 + 1) as u8,
    )
}

/// `token` with its signature altered: well-formed, correctly signed by nobody.
fn forge(token: &str) -> String {
    let (head, signature) = token.rsplit_once('.').expect("a JWS");
    let mut bytes: Vec<u8> = signature.bytes().collect();
    bytes[0] = if bytes[0] == b'A' { b'B' } else { b'A' };
    format!(
        "{head}.{}",
        String::from_utf8(bytes).expect("base64url is ASCII")
    )
}

/// Waits, when needed, so that the next `span` falls inside one Unix hour: the
/// bad-token window of this scenario.
fn stay_inside_hour(span: Duration) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is past 1970");
    let left = Duration::from_secs(3600 - now.as_secs() % 3600);
    if left < span {
        println!("   (waiting {} s for the next hour)", left.as_secs());
        std::thread::sleep(left + Duration::from_secs(1));
    }
}
