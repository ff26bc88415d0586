//! A node process's lifecycle as an operator and a log shipper see it: SIGTERM and
//! SIGINT stop it gracefully with exit status 0, a request in flight is answered, a
//! second signal cuts the drain short, and with `log_format = "json"` every line on
//! stderr is one JSON object, the lifecycle (recovered, listening, key rotated, ban
//! issued, shutting down, stopped) one line per event. Text stays the default.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
/// How long a node gets to exit after SIGTERM.
const EXIT_DEADLINE: Duration = Duration::from_secs(15);

/// A node process whose stderr goes to a file.
struct Logged {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Logged {
    /// Starts `serve --config` over a fresh configuration with `extra` top-level TOML.
    fn start(dir: &Path, extra: &str, env: &[(&str, &str)]) -> Self {
        let config = dir.join("portcullis.toml");
        std::fs::write(&config, config_toml(&dir.join("data"), extra)).expect("write config");
        let log = dir.join("stderr.log");
        let mut child = command(&config, &log, env)
            .stdout(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("a listening line")
                .expect("stdout is text");
            if let Some(base) = line.strip_prefix("portcullis: listening on ") {
                break base.to_owned();
            }
        };
        // Keep draining stdout so that the node never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, base, log }
    }

    /// SIGTERM, then waits for the exit.
    fn terminate(mut self) -> (ExitStatus, Vec<String>) {
        self.signal("TERM");
        self.wait_exit()
    }

    /// Sends `SIG<name>`.
    fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let flag = format!("-{name}");
        let sent = Command::new("kill")
            .args([&flag, &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill {flag} {pid}");
    }

    /// Waits for the process to exit; returns its status and its log.
    fn wait_exit(&mut self) -> (ExitStatus, Vec<String>) {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("pollable") {
                break status;
            }
            assert!(
                started.elapsed() < EXIT_DEADLINE,
                "no exit after the signal"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        (status, read_lines(&self.log))
    }

    /// Waits until the log has a line containing `text`.
    fn await_line(&self, text: &str) {
        let started = Instant::now();
        while !read_lines(&self.log).iter().any(|l| l.contains(text)) {
            assert!(started.elapsed() < EXIT_DEADLINE, "no `{text}` in the log");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `serve --config` with stderr to `log` and no `PORTCULLIS_*` but `env`.
fn command(config: &Path, log: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stderr(File::create(log).expect("log file"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PORTCULLIS_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    command
}

fn read_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("the log is readable");
    text.lines().map(str::to_owned).collect()
}

/// Every line parsed as a JSON object; panics naming the first that is not.
fn parse_all(lines: &[String]) -> Vec<Value> {
    assert!(!lines.is_empty(), "the node logged nothing");
    lines
        .iter()
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            assert!(value.is_object(), "not an object: {line}");
            value
        })
        .collect()
}

#[test]
fn with_the_json_setting_every_stderr_line_is_a_json_lifecycle_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Logged::start(dir.path(), "log_format = \"json\"", &[]);
    let admin = admin_token(&node.base);
    let client = http();
    let rotated = client
        .post(format!("{}/admin/v1/keys/rotate", node.base))
        .bearer_auth(&admin)
        .send()
        .expect("rotate");
    assert_eq!(rotated.status(), 201);
    let banned = client
        .post(format!("{}/admin/v1/bans", node.base))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"address": "192.0.2.9", "duration": "5m"}))
        .send()
        .expect("ban");
    assert_eq!(banned.status(), 201);

    let (status, lines) = node.terminate();
    assert!(status.success(), "exit status {status}");
    let events = parse_all(&lines);
    for event in &events {
        for field in ["timestamp", "level", "target", "message"] {
            assert!(event[field].is_string(), "no {field}: {event}");
        }
    }
    let messages: Vec<&str> = events
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    for lifecycle in [
        "state recovered",
        "listening",
        "signing key rotated",
        "address banned by admin",
        "shutting down",
        "in-flight requests finished",
        "stopped",
    ] {
        let count = messages.iter().filter(|m| **m == lifecycle).count();
        assert_eq!(count, 1, "`{lifecycle}` logged {count} times: {messages:?}");
    }
    // Fields stand at the top level, where shippers index them.
    let listening = events
        .iter()
        .find(|e| e["message"] == "listening")
        .expect("listening");
    assert_eq!(listening["level"], "INFO");
    assert!(
        listening["addr"].as_str().is_some_and(node_addr),
        "{listening}"
    );
    let shutting = events
        .iter()
        .find(|e| e["message"] == "shutting down")
        .expect("shutdown");
    assert_eq!(shutting["signal"], "SIGTERM");
}

fn node_addr(text: &str) -> bool {
    text.parse::<std::net::SocketAddr>().is_ok()
}

#[test]
fn the_environment_selects_json_and_a_refused_configuration_is_one_json_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [("PORTCULLIS_LOG_FORMAT", "json")];
    let node = Logged::start(dir.path(), "", &env);
    let (status, lines) = node.terminate();
    assert!(status.success());
    parse_all(&lines);

    // Refused before any log_format from the file is known: the variable decides.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "listen = \"nowhere\"\n").expect("write");
    let log = dir.path().join("refused.log");
    let status = command(&bad, &log, &env).status().expect("runs");
    assert_eq!(status.code(), Some(2));
    let events = parse_all(&read_lines(&log));
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["message"], "refusing to start");
    assert_eq!(events[0]["level"], "ERROR");
    assert!(events[0]["problems"]
        .as_str()
        .is_some_and(|p| p.contains("listen")));
}

#[test]
fn text_is_the_default_and_an_unknown_format_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Logged::start(dir.path(), "", &[]);
    let (status, lines) = node.terminate();
    assert!(status.success());
    assert!(
        lines
            .iter()
            .any(|l| l.contains("INFO") && l.contains("stopped")),
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| !l.starts_with('{')), "{lines:?}");
    // Not a terminal, so no colour codes either.
    assert!(lines.iter().all(|l| !l.contains('\u{1b}')), "{lines:?}");

    let config = dir.path().join("portcullis.toml");
    let log = dir.path().join("refused.log");
    let env = [("PORTCULLIS_LOG_FORMAT", "xml")];
    let status = command(&config, &log, &env).status().expect("runs");
    assert_eq!(status.code(), Some(2));
    let refused = read_lines(&log).join("\n");
    assert!(
        refused.contains("log_format") && refused.contains("PORTCULLIS_LOG_FORMAT"),
        "{refused}"
    );
}

#[test]
fn sigint_stops_the_node_gracefully_like_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = Logged::start(dir.path(), "log_format = \"json\"", &[]);
    node.signal("INT");
    let (status, lines) = node.wait_exit();
    assert_eq!(status.code(), Some(0), "{lines:?}");
    let events = parse_all(&lines);
    let shutting = events
        .iter()
        .find(|e| e["message"] == "shutting down")
        .expect("logged");
    assert_eq!(shutting["signal"], "SIGINT");
    assert_eq!(
        events.last().map(|e| e["message"].clone()),
        Some("stopped".into())
    );
}

/// A token request sent up to its body's eighth byte: accepted, waiting for the rest.
///
/// The connection first carries a whole request and its answer, so that the node has
/// certainly accepted it: a connection still in the kernel's backlog when the listener
/// closes is reset, not served.
fn half_sent_token_request(base: &str) -> (std::net::TcpStream, &'static [u8]) {
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let probe = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    stream.write_all(probe.as_bytes()).expect("send");
    let answer = read_answer(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let body: &'static [u8] = b"grant_type=client_credentials";
    let basic = "d2ViOndlYi1zZWNyZXQ="; // web:web-secret
    let head = format!(
        "POST /oauth/token HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Authorization: Basic {basic}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut first = head.into_bytes();
    first.extend_from_slice(&body[..8]);
    stream.write_all(&first).expect("send");
    (stream, &body[8..])
}

/// Reads one answer with a `content-length` from a kept-alive connection.
fn read_answer(stream: &mut std::net::TcpStream) -> String {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .expect("a content-length");
            if body.len() >= length {
                return text;
            }
        }
        let read = stream.read(&mut chunk).expect("readable");
        assert!(read > 0, "closed mid-answer: {text}");
        bytes.extend_from_slice(&chunk[..read]);
    }
}

#[test]
fn a_request_in_flight_at_sigterm_is_answered_before_the_node_exits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = Logged::start(dir.path(), "", &[]);
    let (mut stream, rest) = half_sent_token_request(&node.base);
    node.signal("TERM");
    node.await_line("shutting down");
    stream.write_all(rest).expect("send the rest");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("an answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (status, lines) = node.wait_exit();
    assert_eq!(status.code(), Some(0), "{lines:?}");
}

#[test]
fn a_second_signal_cuts_the_drain_short_with_status_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = Logged::start(dir.path(), "", &[]);
    // The rest of the body never comes: the drain would wait its full 10 seconds.
    let (_held, _) = half_sent_token_request(&node.base);
    node.signal("TERM");
    node.await_line("shutting down");
    let cut = Instant::now();
    node.signal("TERM");
    let (status, lines) = node.wait_exit();
    assert_eq!(status.code(), Some(1), "{lines:?}");
    assert!(
        cut.elapsed() < Duration::from_secs(5),
        "{:?}",
        cut.elapsed()
    );
    assert!(
        lines.iter().any(|l| l.contains("second signal")),
        "{lines:?}"
    );
    let stopped = |l: &String| l.contains("portcullis::shutdown: stopped");
    assert!(!lines.iter().any(stopped), "{lines:?}");
}
