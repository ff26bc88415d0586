//! Debian's Prometheus against a real local cluster: every node's `/metrics` passes
//! `promtool check metrics`; Prometheus scrapes the three nodes and sees the key series
//! with sane values; the alert and dashboard rule files load and evaluate without error;
//! no alert is pending on the healthy cluster; a 503 fires the 5xx alert; every
//! expression of the Grafana dashboard returns data; and stopping a node makes the
//! membership alerts go pending.
//!
//! Needs `prometheus` and `promtool` on the PATH (Debian's `prometheus` package, which
//! .ci/run installs).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cluster_tests::api;
use cluster_tests::config::ALICE;
use cluster_tests::{holds_throughout, wait_until, Cluster, Options, PROPAGATION};
use serde_json::Value;

/// A low login-ban threshold, so a few bad passwords earn a ban (and 429s); a small
/// budget, so a hammered token earns a 429; one password check at a time, so concurrent
/// logins earn a 503.
const SECTIONS: &str = "[login]\nban_after_failures = 3\nhashing_concurrency = 1\n\n\
                        [rate_limits]\nper_minute = 20\n";
/// How long scraping and rule evaluation get to show a condition; Prometheus scrapes and
/// evaluates every second, so this is dozens of rounds.
const SCRAPED: Duration = Duration::from_secs(60);
/// The harness's `[keys] rotation_period`.
const ROTATION_PERIOD_SECS: f64 = 3600.0;

/// The repository's deploy/prometheus directory.
fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus")
}

/// The Grafana dashboard's JSON.
fn dashboard() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/grafana/dashboards/portcullis-abuse.json");
    let text = std::fs::read_to_string(&path).expect("the dashboard can be read");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every `expr` string anywhere in `value`, in document order.
fn expressions(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(expr)) = map.get("expr") {
                out.push(expr.clone());
            }
            map.values().for_each(|v| expressions(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| expressions(v, out)),
        _ => {}
    }
}

/// The names after `key` (`- alert:` or `- record:`) in a rule file.
fn rule_names(file: &str, key: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(rules_dir().join(file)).expect("the rule file can be read");
    text.lines()
        .filter_map(|line| line.trim().strip_prefix(key))
        .map(|name| name.trim().to_owned())
        .collect()
}

/// A Prometheus server with its own storage and port; killed on drop.
struct Prometheus {
    child: Child,
    base: String,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (`host:port`) every second, with the
    /// repository's rule files, and waits until it is ready.
    fn start(targets: &[String]) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = free_tcp_port();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, scrape_config(targets)).expect("the config can be written");
        let log = File::create(dir.path().join("prometheus.log")).expect("a log file");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log handle clones"))
            .stderr(log)
            .spawn()
            .expect("prometheus can be started (apt-get install prometheus)");
        let mut prometheus = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
        };
        prometheus.wait_ready();
        prometheus
    }

    /// Waits for `/-/ready`; a Prometheus that exits (a bad config, a taken port) fails
    /// at once, with its log.
    fn wait_ready(&mut self) {
        let ready = format!("{}/-/ready", self.base);
        let mut exited = None;
        let answered = || {
            exited = self.child.try_wait().ok().flatten();
            let response = api::client().get(&ready).send();
            exited.is_some() || response.is_ok_and(|r| r.status() == 200)
        };
        let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_until("prometheus to be ready", SCRAPED, answered)
        }));
        if waited.is_err() || exited.is_some() {
            panic!(
                "prometheus did not become ready ({exited:?}):\n{}",
                self.log()
            );
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/<path>` with query parameters; the `data` member of a success.
    fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let response = api::client()
            .get(format!("{}/api/v1/{path}", self.base))
            .query(params)
            .send()
            .unwrap_or_else(|e| panic!("prometheus /api/v1/{path} failed: {e}"));
        let body: Value = response.json().expect("prometheus answers JSON");
        assert_eq!(
            body["status"], "success",
            "/api/v1/{path} {params:?}: {body}"
        );
        body["data"].clone()
    }

    /// An instant query's samples as (labels, value).
    fn query(&self, expr: &str) -> Vec<(Value, f64)> {
        let data = self.api("query", &[("query", expr)]);
        let samples = data["result"].as_array().cloned().unwrap_or_default();
        samples
            .into_iter()
            .map(|s| {
                let value = s["value"][1].as_str().and_then(|v| v.parse().ok());
                (s["metric"].clone(), value.unwrap_or(f64::NAN))
            })
            .collect()
    }

    /// Polls `expr` until its samples satisfy `sane` and returns how long that took;
    /// panics with the last answer.
    fn wait_for(&self, expr: &str, what: &str, sane: impl Fn(&[(Value, f64)]) -> bool) -> Duration {
        let mut last = Vec::new();
        let held = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_until(what, SCRAPED, || {
                last = self.query(expr);
                sane(&last)
            })
        }));
        held.unwrap_or_else(|_| panic!("{what}: `{expr}` last answered {last:?}"))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The generated configuration: one scrape job named like the deployed one, so the
/// alert expressions (`up{job="portcullis"}`) apply unchanged.
fn scrape_config(targets: &[String]) -> String {
    let dir = rules_dir();
    let quoted: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    let lines = [
        "global:".to_owned(),
        "  scrape_interval: 1s".to_owned(),
        "  scrape_timeout: 1s".to_owned(),
        "  evaluation_interval: 1s".to_owned(),
        "rule_files:".to_owned(),
        format!("  - {}", dir.join("alerts.yml").display()),
        format!("  - {}", dir.join("dashboard_rules.yml").display()),
        "scrape_configs:".to_owned(),
        "  - job_name: portcullis".to_owned(),
        "    static_configs:".to_owned(),
        format!("      - targets: [{}]", quoted.join(", ")),
    ];
    lines.join("\n") + "\n"
}

/// A TCP port free on loopback just now.
fn free_tcp_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port can be bound");
    listener
        .local_addr()
        .expect("a bound socket has an address")
        .port()
}

/// `host:port` of a node, as Prometheus's `instance` label shows it.
fn target(base: &str) -> String {
    base.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

/// Logins (good and refused), checks, a revocation that gossips, a budget 429 and a
/// login ban: enough for every dashboard series to exist.
fn generate_traffic(cluster: &Cluster) {
    for node in cluster.nodes() {
        let session = api::alice(node.base());
        assert!(api::accepts(node.base(), &session.access));
    }
    let revoked = api::client_token(cluster.node(1).base());
    api::revoke(cluster.node(1).base(), &revoked);
    for node in &cluster.nodes()[1..] {
        wait_until("the revocation to reach every node", PROPAGATION, || {
            api::rejects(node.base(), &revoked)
        });
    }
    hammer_until_refused(cluster.node(2).base());
    ban_an_attacker(cluster.node(3).base());
}

/// Checks one token until its budget runs out (429).
fn hammer_until_refused(base: &str) {
    let token = api::client_token(base);
    wait_until(
        "the budget to refuse a hammering token",
        PROPAGATION,
        || api::check(base, &token) == 429,
    );
}

/// Wrong passwords from one address until it is banned and refused (429).
fn ban_an_attacker(base: &str) {
    let attacker = api::client_from(Ipv4Addr::new(127, 254, 6, 1));
    wait_until("the attacker's address to be refused", PROPAGATION, || {
        api::login_status(base, &attacker, (ALICE.0, "not-the-password")) == 429
    });
}

/// Password logins for unknown users from fresh addresses, eight at once, until one is
/// turned away with 503 because the single hashing permit is taken.
fn saturate_hashing(base: &str) {
    let mut bursts = 0u8;
    wait_until(
        "a login turned away for saturated hashing",
        PROPAGATION,
        || {
            bursts = bursts.checked_add(1).expect("fewer than 256 bursts");
            login_burst(base, bursts).contains(&503)
        },
    );
    eprintln!("hashing saturated after {bursts} burst(s) of eight logins");
}

/// The statuses of eight concurrent logins, each from its own address of block `burst`.
fn login_burst(base: &str, burst: u8) -> Vec<u16> {
    std::thread::scope(|scope| {
        let logins: Vec<_> = (1..=8u8)
            .map(|i| {
                scope.spawn(move || {
                    let source = api::client_from(Ipv4Addr::new(127, 253, burst, i));
                    api::login_status(base, &source, (&format!("nobody-{i}"), "x"))
                })
            })
            .collect();
        logins
            .into_iter()
            .map(|l| l.join().expect("a login thread"))
            .collect()
    })
}

/// `promtool check metrics` on the node's exposition; panics with promtool's findings.
fn promtool_check_metrics(base: &str) {
    let text = api::metrics(base);
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool can be started (apt-get install prometheus)");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text.as_bytes())
        .expect("promtool reads the metrics");
    let output = child.wait_with_output().expect("promtool finishes");
    assert!(
        output.status.success(),
        "promtool check metrics on {base}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every sample's value satisfies `ok`, and there are `n` of them.
fn each(n: usize, ok: impl Fn(f64) -> bool) -> impl Fn(&[(Value, f64)]) -> bool {
    move |samples| samples.len() == n && samples.iter().all(|(_, v)| ok(*v))
}

/// The key series, as Prometheus scraped them.
fn assert_key_series(prometheus: &Prometheus) {
    let p = prometheus;
    p.wait_for(
        r#"up{job="portcullis"}"#,
        "all three nodes up",
        each(3, |v| v == 1.0),
    );
    let live = r#"portcullis_cluster_members{state="live"}"#;
    p.wait_for(
        live,
        "three live members seen by each node",
        each(3, |v| v == 3.0),
    );
    let issued = "sum(portcullis_tokens_issued_total)";
    // Three password logins and two client_credentials tokens.
    p.wait_for(issued, "five tokens issued", each(1, |v| v == 5.0));
    let logins = r#"sum(portcullis_logins_total{outcome="success"})"#;
    p.wait_for(logins, "three good logins", each(1, |v| v == 3.0));
    let refused = r#"sum(portcullis_logins_total{outcome="banned"})"#;
    p.wait_for(refused, "logins refused for a ban", each(1, |v| v >= 1.0));
    let limited = r#"sum(portcullis_abuse_decisions_total{decision="rate_limited"})"#;
    p.wait_for(limited, "a budget 429", each(1, |v| v >= 1.0));
    let bans = "portcullis_bans_active";
    p.wait_for(
        bans,
        "the ban in force on every node",
        each(3, |v| v >= 1.0),
    );
    let deny = "portcullis_deny_list_entries";
    p.wait_for(
        deny,
        "revocations in every deny list",
        each(3, |v| v >= 1.0),
    );
    let learned = "sum(portcullis_revocation_propagation_seconds_count)";
    p.wait_for(
        learned,
        "revocations learned by gossip",
        each(1, |v| v >= 2.0),
    );
    let period = "portcullis_key_rotation_period_seconds";
    p.wait_for(
        period,
        "the rotation period",
        each(3, |v| v == ROTATION_PERIOD_SECS),
    );
    let age = "time() - portcullis_signing_key_activated_timestamp_seconds";
    p.wait_for(
        age,
        "a fresh signing key",
        each(3, |v| (-5.0..600.0).contains(&v)),
    );
}

/// Every dashboard expression returns at least one sample.
fn assert_dashboard_returns_data(prometheus: &Prometheus) {
    let mut exprs = Vec::new();
    expressions(&dashboard(), &mut exprs);
    assert!(
        exprs.len() >= 10,
        "the dashboard has its panels: {}",
        exprs.len()
    );
    for expr in &exprs {
        prometheus.wait_for(expr, "a dashboard expression to return data", |s| {
            !s.is_empty()
        });
    }
    eprintln!("{} dashboard expressions returned data", exprs.len());
}

/// Both rule files loaded, and every rule evaluated without error.
fn assert_rules_loaded(prometheus: &Prometheus) {
    let expected: BTreeSet<String> = rule_names("alerts.yml", "- alert:")
        .into_iter()
        .chain(rule_names("dashboard_rules.yml", "- record:"))
        .collect();
    let mut last = Value::Null;
    let healthy = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until("every rule to evaluate healthily", SCRAPED, || {
            last = prometheus.api("rules", &[]);
            let rules = loaded_rules(&last);
            let names: BTreeSet<String> = rules.iter().map(|r| r.0.clone()).collect();
            names == expected && rules.iter().all(|r| r.1 == "ok")
        })
    }));
    assert!(
        healthy.is_ok(),
        "rules: expected {expected:?}, Prometheus reports {last}"
    );
    eprintln!("{} rules loaded and healthy", expected.len());
}

/// (name, health) of every rule Prometheus reports.
fn loaded_rules(data: &Value) -> Vec<(String, String)> {
    let groups = data["groups"].as_array().cloned().unwrap_or_default();
    groups
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .map(|r| {
            let name = r["name"].as_str().unwrap_or_default().to_owned();
            (name, r["health"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

/// On the healthy cluster, the traffic made (a ban, a budget revocation, a few refused
/// logins) stays under every threshold: no alert is even pending.
fn assert_quiet(prometheus: &Prometheus) {
    let quiet = || {
        let alerts = prometheus.query("ALERTS");
        assert!(alerts.is_empty(), "alerts on a healthy cluster: {alerts:?}");
        true
    };
    holds_throughout(
        "no alert on the healthy cluster",
        Duration::from_secs(3),
        quiet,
    );
}

/// A 503 on node 1's token endpoint fires the 5xx alert at once, for that node and
/// endpoint only.
fn assert_server_error_alert(cluster: &Cluster, prometheus: &Prometheus) {
    saturate_hashing(cluster.node(1).base());
    let instance = target(cluster.node(1).base());
    let firing = r#"ALERTS{alertname="PortcullisServerErrors",alertstate="firing"}"#;
    prometheus.wait_for(firing, "the 5xx alert for node 1's token endpoint", |s| {
        s.len() == 1
            && s[0].0["instance"] == instance.as_str()
            && s[0].0["endpoint"] == "/oauth/token"
    });
}

/// With node 3 stopped, the node-down and member alerts go pending (they fire only
/// after their `for`).
fn assert_membership_alerts(cluster: &mut Cluster, prometheus: &Prometheus) {
    let stopped = target(cluster.node(3).base());
    cluster.node_mut(3).kill();
    let down = r#"ALERTS{alertname="PortcullisNodeDown"}"#;
    prometheus.wait_for(down, "the node-down alert for node 3", |s| {
        s.len() == 1 && s[0].0["instance"] == stopped.as_str()
    });
    let members = r#"ALERTS{alertname="PortcullisMembersBelowExpected"}"#;
    let took = prometheus.wait_for(members, "the member alert on both survivors", |s| {
        s.len() == 2
    });
    eprintln!("member alerts pending {took:?} after node 3 was killed");
}

#[test]
fn prometheus_scrapes_the_cluster_and_every_dashboard_expression_returns_data() {
    let mut cluster = Cluster::start(
        3,
        Options {
            sections: SECTIONS.to_owned(),
            ..Options::default()
        },
    );
    cluster.wait_converged();
    generate_traffic(&cluster);
    for node in cluster.nodes() {
        promtool_check_metrics(node.base());
    }

    let targets: Vec<String> = cluster.nodes().iter().map(|n| target(n.base())).collect();
    let prometheus = Prometheus::start(&targets);
    assert_key_series(&prometheus);
    assert_rules_loaded(&prometheus);
    assert_quiet(&prometheus);
    assert_server_error_alert(&cluster, &prometheus);
    assert_dashboard_returns_data(&prometheus);
    assert_membership_alerts(&mut cluster, &prometheus);
}
