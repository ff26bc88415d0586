//! SIGTERM on one node of three: requests in flight are answered, new connections are
//! refused, the process exits 0 in bounded time, the other nodes show it as `left` (not
//! `dead`) in `/admin/v1/cluster`, in their metrics and in `portcullis admin cluster`,
//! and what it acknowledged, right before the signal or during the drain, is enforced
//! by its peers and again by itself after a restart.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cluster_tests::config::WEB;
use cluster_tests::{api, holds_throughout, wait_until, Cluster, Node, Options, PROPAGATION};
use serde_json::{json, Value};

/// Drain (at most the server's 10 s shutdown timeout) plus leaving (about a second).
const EXIT_DEADLINE: Duration = Duration::from_secs(15);
/// How long a left node must go on being shown as left rather than dead: well past the
/// point where the failure detector stops hearing it (a second or two at 100 ms gossip).
const STAYS_LEFT: Duration = Duration::from_secs(4);
/// Requests held open, half sent, across the signal.
const SLOW_REQUESTS: usize = 4;
/// Pause between the check stream's requests: a steady trickle, well inside the
/// client's request budget.
const STREAM_PACE: Duration = Duration::from_millis(25);
/// Answers the check stream has had before the signal.
const STREAM_WARMUP: usize = 10;

#[test]
fn a_terminated_node_drains_leaves_and_keeps_what_it_acknowledged() {
    let mut cluster = Cluster::start(3, Options::default());
    cluster.wait_converged();
    let admin = api::admin_token(cluster.node(1).base());
    let generation = live_everywhere(&cluster, &admin);

    // Acknowledged right before the signal.
    let n3 = cluster.node(3);
    let acked = api::client_token(n3.base());
    api::revoke(n3.base(), &acked);
    // In flight across it: requests whose bodies are only half sent, one of them a
    // revocation made during the drain.
    let in_drain = api::alice(cluster.node(1).base()).access;
    let n3_admin = api::admin_token(n3.base());
    let slow = slow_requests(n3, &n3_admin, &in_drain);
    let stream = CheckStream::start(n3.base(), api::client_token(n3.base()));

    n3.sigterm();
    let addr = n3.base().trim_start_matches("http://").to_owned();
    wait_until(
        "node 3 to stop accepting connections",
        EXIT_DEADLINE,
        || TcpStream::connect(&addr).is_err(),
    );
    for (what, request) in slow {
        let (status, body) = request.finish();
        assert!(
            (200..300).contains(&status),
            "{what} in flight answered {status}: {body}"
        );
    }
    let answers = stream.stop();
    eprintln!("the check stream got {answers} answers, all 200");
    let (status, took) = cluster.node_mut(3).wait_exit(EXIT_DEADLINE);
    eprintln!("node 3 exited {status} {took:?} after its in-flight requests completed");
    assert!(status.success(), "exit status {status}");

    shown_as_left(&cluster, &admin);
    logged_as_left(&cluster);
    for node in [cluster.node(1), cluster.node(2)] {
        for (what, token) in [
            ("before the signal", &acked),
            ("during the drain", &in_drain),
        ] {
            let rejected = api::rejects(node.base(), token);
            assert!(rejected, "{} accepts the token revoked {what}", node.id());
        }
    }

    cluster.node_mut(3).restart();
    cluster.wait_ready(&[3]);
    let n3 = cluster.node(3);
    assert!(
        api::rejects(n3.base(), &acked),
        "revoked before SIGTERM, lost"
    );
    assert!(
        api::rejects(n3.base(), &in_drain),
        "revoked during the drain, lost"
    );
    rejoined(&cluster, &admin, generation);
}

/// Waits until nodes 1 and 2 see node 3 live; returns its generation.
fn live_everywhere(cluster: &Cluster, admin: &str) -> u64 {
    let mut generation = 0;
    for node in [cluster.node(1), cluster.node(2)] {
        let what = format!("{} to see node 3 live", node.id());
        wait_until(&what, PROPAGATION, || {
            let seen = api::live_generation(node.base(), admin, "n3");
            generation = seen.unwrap_or_default();
            seen.is_some()
        });
    }
    generation
}

/// Nodes 1 and 2 show node 3 as left in the API, the metrics and the CLI, and go on
/// doing so after their failure detectors have stopped hearing it.
fn shown_as_left(cluster: &Cluster, admin: &str) {
    let peers = [cluster.node(1), cluster.node(2)];
    for node in peers {
        let what = format!("{} to show node 3 as left", node.id());
        let took = wait_until(&what, PROPAGATION, || state_of_n3(node, admin) == "left");
        eprintln!(
            "{} showed node 3 as left {took:?} after it exited",
            node.id()
        );
    }
    holds_throughout("node 3 shown as left, not dead", STAYS_LEFT, || {
        peers.iter().all(|node| {
            let metrics = api::metrics(node.base());
            let count =
                |state| api::metric(&metrics, "portcullis_cluster_members", &[("state", state)]);
            state_of_n3(node, admin) == "left"
                && count("left") == 1.0
                && count("dead") == 0.0
                && count("live") == 2.0
        })
    });

    let output = Command::new(cluster_tests::node::binary())
        .args(["admin", "--node", cluster.node(1).base(), "cluster"])
        .env("PORTCULLIS_TOKEN", admin)
        .output()
        .expect("the CLI runs");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let row = table
        .lines()
        .find(|l| l.starts_with("n3 "))
        .expect("a row for node 3");
    assert!(row.contains(" left "), "{table}");
}

/// Node 3 logged each step of its stop; its peers logged that it left, not that it died.
fn logged_as_left(cluster: &Cluster) {
    let log = |node: &Node| std::fs::read_to_string(node.log_path()).expect("a node log");
    let own = log(cluster.node(3));
    for step in [
        "shutting down",
        "in-flight requests finished",
        "left the cluster peers=2",
    ] {
        assert_eq!(
            own.matches(step).count(),
            1,
            "`{step}` in node 3's log:\n{own}"
        );
    }
    assert!(own.trim_end().ends_with("stopped"), "node 3's log:\n{own}");
    for node in [cluster.node(1), cluster.node(2)] {
        let text = log(node);
        assert!(
            text.contains("node left node.id=n3"),
            "{}:\n{text}",
            node.id()
        );
        assert!(
            !text.contains("node declared dead"),
            "{}:\n{text}",
            node.id()
        );
    }
}

/// After its restart node 3 is one live member again on its peers.
fn rejoined(cluster: &Cluster, admin: &str, old_generation: u64) {
    for node in [cluster.node(1), cluster.node(2)] {
        let what = format!("{} to see node 3 live again", node.id());
        wait_until(&what, PROPAGATION, || {
            let live = api::live_generation(node.base(), admin, "n3");
            let metrics = api::metrics(node.base());
            let count =
                |state| api::metric(&metrics, "portcullis_cluster_members", &[("state", state)]);
            live.is_some_and(|g| g > old_generation) && count("live") == 3.0 && count("left") == 0.0
        });
    }
}

/// The state of node 3's newest incarnation as `node` sees it.
fn state_of_n3(node: &Node, admin: &str) -> String {
    let view = api::cluster_view(node.base(), admin);
    let members = view["members"].as_array().cloned().unwrap_or_default();
    members
        .iter()
        .filter(|m| m["node_id"] == "n3")
        .max_by_key(|m| m["generation"].as_u64())
        .and_then(|m| m["state"].as_str())
        .unwrap_or("absent")
        .to_owned()
}

/// Starts token requests and an admin revocation of `revoke` on `node`, each with half
/// its body sent.
fn slow_requests(node: &Node, admin: &str, revoke: &str) -> Vec<(String, SlowRequest)> {
    let jti = api::claims(revoke)["jti"]
        .as_str()
        .expect("a jti")
        .to_owned();
    let body = json!({"kind": "token", "jti": jti}).to_string();
    let mut requests = vec![(
        "an admin revocation".to_owned(),
        SlowRequest::start(
            node.base(),
            "POST /admin/v1/revocations",
            &[
                format!("Authorization: Bearer {admin}"),
                "Content-Type: application/json".into(),
            ],
            body.as_bytes(),
        ),
    )];
    let basic = STANDARD.encode(format!("{}:{}", WEB.0, WEB.1));
    for i in 1..SLOW_REQUESTS {
        let request = SlowRequest::start(
            node.base(),
            "POST /oauth/token",
            &[
                format!("Authorization: Basic {basic}"),
                "Content-Type: application/x-www-form-urlencoded".into(),
            ],
            b"grant_type=client_credentials",
        );
        requests.push((format!("token request {i}"), request));
    }
    requests
}

/// An HTTP/1.1 request sent by hand, stopped halfway through its body: the node has
/// accepted it and is waiting for the rest. The connection first carries a whole
/// request, so that it is certainly accepted: one still in the kernel's backlog when
/// the listener closes is reset, not served.
struct SlowRequest {
    stream: TcpStream,
    rest: Vec<u8>,
}

impl SlowRequest {
    fn start(base: &str, line: &str, headers: &[String], body: &[u8]) -> Self {
        let addr = base.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).expect("the node accepts a connection");
        stream
            .set_read_timeout(Some(EXIT_DEADLINE))
            .expect("a read timeout can be set");
        warm_up(&mut stream, addr);
        let mut head = format!("{line} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for header in headers {
            head.push_str(&format!("{header}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let half = body.len() / 2;
        let mut first = head.into_bytes();
        first.extend_from_slice(&body[..half]);
        stream.write_all(&first).expect("the first half is sent");
        Self {
            stream,
            rest: body[half..].to_vec(),
        }
    }

    /// Sends the rest of the body and reads the answer: its status and body.
    fn finish(mut self) -> (u16, String) {
        self.stream
            .write_all(&self.rest)
            .expect("the rest of the body is sent to a draining node");
        let mut answer = Vec::new();
        self.stream
            .read_to_end(&mut answer)
            .expect("a draining node answers");
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
        let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        (status, body.to_owned())
    }
}

/// Sends `GET /healthz` on a kept-alive connection and reads its whole answer.
fn warm_up(stream: &mut TcpStream, addr: &str) {
    let probe = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    stream
        .write_all(probe.as_bytes())
        .expect("the probe is sent");
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            assert!(head.starts_with("HTTP/1.1 200"), "{text}");
            let length = head
                .lines()
                .filter_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(str::to_owned)
                })
                .find_map(|v| v.trim().parse::<usize>().ok())
                .expect("a content-length");
            if body.len() >= length {
                return;
            }
        }
        let read = stream.read(&mut chunk).expect("the probe is answered");
        assert!(read > 0, "closed mid-answer: {text}");
        bytes.extend_from_slice(&chunk[..read]);
    }
}

/// `/v1/check` in a loop on fresh connections until the node stops accepting: every
/// answer it gets must be 200 (a draining node does not fail requests it took).
struct CheckStream {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<usize>,
}

impl CheckStream {
    /// Starts the loop and returns once it has had [`STREAM_WARMUP`] answers.
    fn start(base: &str, token: String) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        let url = format!("{base}/v1/check");
        let (flag, count) = (stop.clone(), answered.clone());
        let thread = std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(EXIT_DEADLINE)
                .build()
                .expect("the client builds");
            while !flag.load(Ordering::Relaxed) {
                let Ok(response) = client.get(&url).bearer_auth(&token).send() else {
                    break;
                };
                let status = response.status().as_u16();
                let body: Value = response.json().unwrap_or(Value::Null);
                assert_eq!(
                    status, 200,
                    "a check answered {status} during shutdown: {body}"
                );
                count.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(STREAM_PACE);
            }
            count.load(Ordering::Relaxed)
        });
        wait_until("the check stream's first answers", PROPAGATION, || {
            answered.load(Ordering::Relaxed) >= STREAM_WARMUP
        });
        Self { stop, thread }
    }

    /// Stops the loop; returns how many answers it got.
    fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("no check failed")
    }
}
