//! The operator subcommands run as the real `portcullis` binary against a real node:
//! `healthcheck` (the container HEALTHCHECK) and every `admin` subcommand, in table and
//! `--json` form, with the effect of each checked through the HTTP API.

mod common;

use std::process::{Command, Output};
use std::sync::atomic::Ordering;

use common::*;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// Runs the binary with `args`, with no `PORTCULLIS_*` variable but those in `env`.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command.args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PORTCULLIS_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    command.output().expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A port nothing listens on: bound, then released.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

#[test]
fn healthcheck_passes_on_a_ready_node_and_fails_with_a_reason_otherwise() {
    let node = TestNode::start();
    let readyz = node.url("/readyz");
    let ok = run(&["healthcheck", "--url", &readyz], &[]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert!(stdout(&ok).contains("200"), "{}", stdout(&ok));

    // Not ready (still catching up, say): 503, so unhealthy, and the body says why.
    node.handles.ready.store(false, Ordering::Relaxed);
    let not_ready = run(&["healthcheck", "--url", &readyz], &[]);
    assert_eq!(not_ready.status.code(), Some(1));
    let why = stderr(&not_ready);
    assert!(why.contains("503") && why.contains("not_ready"), "{why}");
    node.handles.ready.store(true, Ordering::Relaxed);

    // Nothing listening: unhealthy, refused.
    let url = format!("http://127.0.0.1:{}/readyz", closed_port());
    let down = run(&["healthcheck", "--url", &url, "--timeout", "2s"], &[]);
    assert_eq!(down.status.code(), Some(1));
    assert!(stderr(&down).contains("refused"), "{}", stderr(&down));

    // Any other status is unhealthy too.
    let missing = run(&["healthcheck", "--url", &node.url("/nowhere")], &[]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("404"), "{}", stderr(&missing));
}

#[test]
fn healthcheck_gives_up_after_its_timeout() {
    // A listener that accepts (the kernel does, from its backlog) but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/readyz", silent.local_addr().expect("addr"));
    let started = std::time::Instant::now();
    let output = run(&["healthcheck", "--url", &url, "--timeout", "300ms"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("timed out"), "{}", stderr(&output));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[allow(dead_code)]
fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("--json printed JSON: {}", stdout(output)))
}
