//! Benchmark: a cluster holding 1,000,000 active revocations. Resident memory per node,
//! catch-up time of a fresh node joining, and `/v1/check` throughput with the full deny
//! list against a node with an empty one.
//!
//! 1. Three nodes start with empty deny lists and twenty marker tokens are minted.
//! 2. Every node is stopped. Node 1's journal is given `BENCH_MILLION` (default
//!    1,000,000) token revocations written directly with `portcullis::journal`, plus the
//!    markers' (as scenario 9 does); node 3's data directory is wiped. Nodes 1 and 2
//!    restart: node 1 replays its journal, node 2 catches up from node 1 by snapshot.
//! 3. Node 3 joins fresh; the time from its launch until it is ready, holds every
//!    revocation and rejects every marker is the catch-up time.
//! 4. A separate one-node cluster with an empty deny list starts beside it (same binary
//!    and settings). `wrk` measures `/v1/check` on it and on node 2 alternately, in
//!    `ROUNDS` rounds, with one repeated token and with distinct tokens, and the
//!    medians are compared. Every distinct-token run presents tokens that node has
//!    never seen (`BENCH_WRK_TOKENS`, default 150,000, per run), so each request pays a
//!    full signature verification; the repeated token is served from the verification
//!    cache. Both paths consult the deny list.
//!
//! Memory is `VmRSS` (and the peak, `VmHWM`) from `/proc/<pid>/status`. For the `wrk`
//! runs both measured nodes are pinned to CPU 0 and `wrk` (one thread) to CPU 1 with
//! `taskset`; alternating the two nodes spreads the machine's noise over both.
//!
//! Usage: `cargo run --release -p cluster-tests --example million`, with
//! `CLUSTER_TESTS_BIN=target/release/portcullis`. Needs `wrk` and `taskset`.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cluster_tests::{api, wait_until, Cluster, Node, Options};
use common::wrk::{median_of, paired_ratio, pin, wrk, Run};
use common::{banner, mint_tokens, proc_status_kib, Conn};
use portcullis::journal::{Journal, Record};
use portcullis::revocation::{Reason, Revocation, Target};

/// Revocations written, unless `BENCH_MILLION` says otherwise.
const MILLION: usize = 1_000_000;
/// Distinct tokens per distinct-token run, unless `BENCH_WRK_TOKENS` says otherwise:
/// more than a 10 s run gets through (a cache miss costs the node ~100 µs of CPU), so
/// that no request hits the verification cache.
const WRK_TOKENS: usize = 150_000;
/// Seconds per `wrk` run, unless `BENCH_WRK_SECONDS` says otherwise.
const WRK_SECONDS: u64 = 10;
/// Alternating rounds of `wrk` runs (each: both nodes, both token modes).
const ROUNDS: usize = 5;
/// `wrk` keep-alive connections.
const WRK_CONNECTIONS: usize = 16;
/// Revoked tokens every node must reject once it holds the million.
const MARKERS: usize = 20;
/// Long enough for a node to replay, and its peers to serve, a million revocations.
const CATCHUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Resident memory goal per node, MiB.
const RSS_GOAL_MIB: u64 = 512;
/// Fresh-node catch-up goal.
const CATCHUP_GOAL: Duration = Duration::from_secs(10);

/// A `wrk` script presenting the next token of a file on every request.
const DISTINCT_LUA: &str = r#"
local tokens = {}
local position = 0
function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then tokens[#tokens + 1] = "Bearer " .. line end
  end
end
function request()
  position = position % #tokens + 1
  return wrk.format("GET", "/v1/check", { ["Authorization"] = tokens[position] })
end
"#;

fn main() {
    let million = setting("BENCH_MILLION", MILLION);
    let wrk = Wrk {
        dir: tempfile::tempdir().expect("a scratch directory"),
        seconds: setting("BENCH_WRK_SECONDS", WRK_SECONDS as usize) as u64,
        tokens: setting("BENCH_WRK_TOKENS", WRK_TOKENS),
    };
    banner("1,000,000 active revocations");
    println!(
        "   {million} revocations; wrk: {ROUNDS} rounds of {} s runs, {WRK_CONNECTIONS} \
         connections, 1 thread",
        wrk.seconds
    );

    let options = Options {
        catchup_timeout: CATCHUP_TIMEOUT,
        ..Options::unlimited()
    };
    let mut cluster = Cluster::start(3, options.clone());
    cluster.wait_converged();
    let markers = mint_tokens(cluster.node(1).base(), MARKERS, 1);
    let empty_rss = rss_table(&cluster);

    let filled = fill(&mut cluster, million, &markers);
    let loaded_rss = rss_table(&cluster);
    let catch_up = join_fresh(&mut cluster, filled, &markers);
    let joined_rss = rss_table(&cluster);

    let reference = Cluster::start(1, options);
    let runs = wrk.compare(reference.node(1), cluster.node(2), cluster.node(1));
    let after_rss = rss_table(&cluster);

    println!();
    print_rss("RSS, empty deny lists", &empty_rss);
    print_rss(
        "RSS, nodes 1-2 holding the revocations (before node 3 joins)",
        &loaded_rss,
    );
    print_rss("RSS, after node 3 caught up", &joined_rss);
    print_rss(
        "RSS, after the wrk runs (node 2's cache holds 100,000 tokens)",
        &after_rss,
    );
    let loaded: Vec<_> = joined_rss.into_iter().chain(after_rss).collect();
    report(million, &loaded, &catch_up, &runs);
}

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map_or(default, |v| v.parse().expect("settings are numbers"))
}

fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    since.expect("the clock is after 1970").as_millis() as u64
}

/// Stops every node, writes the revocations into node 1's journal, wipes node 3 and
/// restarts nodes 1 and 2 until both hold everything. Returns the deny-list size.
fn fill(cluster: &mut Cluster, million: usize, markers: &[String]) -> u64 {
    cluster.kill_all();
    std::fs::remove_dir_all(cluster.node(3).data_dir()).expect("node 3's data can be wiped");
    let writing = Instant::now();
    let now = now_ms();
    let revocation = |jti: String| {
        Record::Revoke(Revocation {
            target: Target::Token { jti },
            reason: Reason::Admin,
            created_ms: now,
            expires_ms: now + 3_600_000,
        })
    };
    let mut records: Vec<Record> = (0..million)
        .map(|_| revocation(portcullis::secrets::random_id()))
        .collect();
    records.extend(markers.iter().map(|t| revocation(jti_of(t))));
    let (mut journal, _) = Journal::open(&cluster.node(1).data_dir()).expect("journal opens");
    journal.append(&records).expect("journal append");
    let bytes = journal.len();
    drop((journal, records));
    println!(
        "wrote {million} revocations ({:.1} MiB of journal) in {:.2} s",
        bytes as f64 / 1048576.0,
        writing.elapsed().as_secs_f64()
    );

    let restarting = Instant::now();
    cluster.restart(&[1, 2]);
    cluster.wait_ready(&[1, 2]);
    let total = (million + markers.len()) as u64;
    for i in [1, 2] {
        let node = cluster.node(i);
        let admin = api::admin_token(node.base());
        wait_until(
            "nodes 1 and 2 to hold every revocation",
            CATCHUP_TIMEOUT,
            || deny_size(node, &admin) >= total,
        );
    }
    println!(
        "nodes 1 (journal replay) and 2 (snapshot) ready and holding {total} after {:.2} s",
        restarting.elapsed().as_secs_f64()
    );
    total
}

fn jti_of(token: &str) -> String {
    let claims = api::claims(token);
    claims["jti"]
        .as_str()
        .expect("tokens carry a jti")
        .to_owned()
}

fn deny_size(node: &Node, admin: &str) -> u64 {
    let view = api::cluster_view(node.base(), admin);
    view["deny_list_entries"].as_u64().unwrap_or_default()
}

/// When the fresh node 3 was ready, and when it held and enforced everything, counted
/// from its launch.
struct CatchUp {
    ready: Duration,
    enforcing: Duration,
}

fn join_fresh(cluster: &mut Cluster, total: u64, markers: &[String]) -> CatchUp {
    let started = Instant::now();
    cluster.restart(&[3]);
    let n3 = cluster.node(3);
    let ready = wait_until("the fresh node to be ready", CATCHUP_TIMEOUT, || {
        api::ready(n3.base())
    });
    let admin = api::admin_token(n3.base());
    wait_until("the fresh node to hold everything", CATCHUP_TIMEOUT, || {
        deny_size(n3, &admin) >= total
    });
    let mut conn = Conn::open(n3.base());
    for marker in markers {
        assert_eq!(
            conn.check(marker),
            401,
            "the fresh node rejects every marker"
        );
    }
    let enforcing = started.elapsed();
    println!(
        "fresh node 3: ready after {:.2} s, holding {total} and enforcing after {:.2} s",
        ready.as_secs_f64(),
        enforcing.as_secs_f64()
    );
    CatchUp { ready, enforcing }
}

/// Per node: (id, VmRSS KiB, VmHWM KiB).
fn rss_table(cluster: &Cluster) -> Vec<(String, u64, u64)> {
    cluster
        .nodes()
        .iter()
        .filter_map(|node| {
            let pid = node.pid()?;
            let rss = proc_status_kib(pid, "VmRSS");
            Some((node.id().to_owned(), rss, proc_status_kib(pid, "VmHWM")))
        })
        .collect()
}

fn print_rss(title: &str, table: &[(String, u64, u64)]) {
    let cells: Vec<String> = table
        .iter()
        .map(|(id, rss, hwm)| format!("{id} {} MiB (peak {} MiB)", rss / 1024, hwm / 1024))
        .collect();
    println!("{title}: {}", cells.join(", "));
}

/// `wrk` runs, pinned apart from the nodes they load.
struct Wrk {
    /// Holds the script and the token files.
    dir: tempfile::TempDir,
    seconds: u64,
    /// Distinct tokens per distinct-token run.
    tokens: usize,
}

/// Every run, by mode (repeated, distinct) and node (empty, full).
struct Runs {
    repeated: [Vec<Run>; 2],
    distinct: [Vec<Run>; 2],
}

impl Wrk {
    /// Alternates runs on `empty` and `full`, repeated then distinct, `ROUNDS` times;
    /// the order of the two nodes flips every round. Each round's distinct tokens are
    /// minted just before it, so that they are fresh to the node. `full_minter` signs the tokens
    /// `full` is given (a node whose keys it trusts).
    fn compare(&self, empty: &Node, full: &Node, full_minter: &Node) -> Runs {
        let script = self.dir.path().join("check_distinct.lua");
        std::fs::write(&script, DISTINCT_LUA).expect("the wrk script can be written");
        let minters = [empty, full_minter];
        let repeated = minters.map(|m| mint_tokens(m.base(), 1, 1).remove(0));
        for node in [empty, full] {
            pin(node.pid().expect("the node runs"), "0");
        }

        let nodes = [empty, full];
        let mut runs = Runs {
            repeated: [Vec::new(), Vec::new()],
            distinct: [Vec::new(), Vec::new()],
        };
        for round in 0..ROUNDS {
            let files = [0, 1].map(|which| self.token_file(minters[which], which, round));
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for which in order {
                let auth = format!("Authorization: Bearer {}", repeated[which]);
                let url = nodes[which].url("/v1/check");
                let label = format!("round {} {} repeated", round + 1, NODE_NAMES[which]);
                let run = self.run(nodes[which], &label, &["-H", &auth, &url]);
                runs.repeated[which].push(run);
            }
            for which in order {
                let url = nodes[which].url("/v1/check");
                let args = ["-s", script.to_str().expect("a UTF-8 path"), &url, "--"];
                let label = format!("round {} {} distinct", round + 1, NODE_NAMES[which]);
                let args = [&args[..], &[files[which].as_str()]].concat();
                let run = self.run(nodes[which], &label, &args);
                if run.requests > self.tokens as f64 {
                    println!(
                        "    (this run wrapped around its tokens: later requests hit the cache)"
                    );
                }
                runs.distinct[which].push(run);
            }
        }
        runs
    }

    /// Mints one run's distinct tokens on `minter` and writes them to a file.
    fn token_file(&self, minter: &Node, which: usize, round: usize) -> String {
        let tokens = mint_tokens(minter.base(), self.tokens, 4);
        let name = format!("{}-{round}.txt", NODE_NAMES[which]);
        let path = self.dir.path().join(name).display().to_string();
        std::fs::write(&path, tokens.join("\n") + "\n").expect("tokens can be written");
        path
    }

    fn run(&self, node: &Node, label: &str, args: &[&str]) -> Run {
        let pid = node.pid().expect("the node runs");
        wrk(pid, self.seconds, WRK_CONNECTIONS, label, args)
    }
}

/// How the two measured nodes are named in the output.
const NODE_NAMES: [&str; 2] = ["empty", "full"];

fn report(million: usize, rss: &[(String, u64, u64)], catch_up: &CatchUp, runs: &Runs) {
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let rps: fn(&Run) -> f64 = |r| r.rps;
    let cpu: fn(&Run) -> f64 = |r| r.cpu_us;
    println!();
    println!(
        "{:<16} {:>12} {:>12} {:>12} {:>13} {:>13} {:>12}",
        "/v1/check",
        "empty req/s",
        "full req/s",
        "paired ratio",
        "empty CPU µs",
        "full CPU µs",
        "paired ratio"
    );
    let modes = [
        ("repeated token", &runs.repeated),
        ("distinct tokens", &runs.distinct),
    ];
    for (name, [empty, full]) in modes {
        println!(
            "{name:<16} {:>12.0} {:>12.0} {:>11.1}% {:>13.1} {:>13.1} {:>11.1}%",
            median_of(empty, rps),
            median_of(full, rps),
            100.0 * paired_ratio(empty, full, rps),
            median_of(empty, cpu),
            median_of(full, cpu),
            100.0 * paired_ratio(empty, full, cpu),
        );
    }
    println!(
        "(medians of {ROUNDS} runs; paired ratio: median over rounds of full ÷ empty from the"
    );
    println!(" two adjacent runs of a round; CPU µs: the node's CPU time per request)");
    println!();
    let worst = rss.iter().map(|(_, rss, _)| rss / 1024).max().unwrap_or(0);
    let peak = rss.iter().map(|(_, _, hwm)| hwm / 1024).max().unwrap_or(0);
    println!(
        "goal RSS ≤ {RSS_GOAL_MIB} MiB per node with {million}: at rest largest {worst} MiB \
         — {}; peak (VmHWM) largest {peak} MiB — {}",
        verdict(worst <= RSS_GOAL_MIB),
        verdict(peak <= RSS_GOAL_MIB)
    );
    println!(
        "goal fresh-node catch-up ≤ {} s: ready {:.2} s, enforcing {:.2} s — {}",
        CATCHUP_GOAL.as_secs(),
        catch_up.ready.as_secs_f64(),
        catch_up.enforcing.as_secs_f64(),
        verdict(catch_up.enforcing <= CATCHUP_GOAL)
    );
    let modes = [("repeated", &runs.repeated), ("distinct", &runs.distinct)];
    for (name, [empty, full]) in modes {
        let ratio = paired_ratio(empty, full, rps);
        println!(
            "goal /v1/check throughput within 10% of empty ({name}, paired ratio): {:.1}% — {}",
            100.0 * ratio,
            verdict(ratio >= 0.9)
        );
    }
}
