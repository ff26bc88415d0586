//! Test harness: real nodes on loopback port 0, in-process (with a manual clock) or as
//! `portcullis` processes, and a small blocking HTTP client.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use portcullis::clock::ManualClock;
use portcullis::config::Config;
use portcullis::node::Handles;
use portcullis::secrets::{hash_password, ClientSecretHash};
use reqwest::blocking::{Client, Response};
use serde_json::Value;

/// Waits for `condition` to hold, polling, failing after `deadline`.
pub fn wait_until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn hashes() -> &'static (String, String) {
    static HASHES: OnceLock<(String, String)> = OnceLock::new();
    HASHES.get_or_init(|| {
        (
            hash_password("alice-password"),
            hash_password("bob-password"),
        )
    })
}

/// A production configuration for tests, with `data_dir` and any extra TOML appended.
pub fn config_toml(data_dir: &Path, extra: &str) -> String {
    let (alice, bob) = hashes();
    let secret = |s: &str| ClientSecretHash::of(s).to_string();
    format!(
        r#"
listen = "127.0.0.1:0"
issuer = "http://portcullis.test"
audiences = ["api"]
data_dir = "{dir}"
admin_clients = ["ops"]
workers = 1
{extra}

[tokens]
access_lifetime = "5m"
refresh_lifetime = "1h"
family_lifetime = "1d"
leeway = "30s"

[keys]
rotation_period = "1d"
jwks_max_age = "5m"

[[users]]
name = "alice"
password_hash = "{alice}"
scopes = ["read", "write", "portcullis:admin"]

[[users]]
name = "bob"
password_hash = "{bob}"
scopes = ["read"]

[[clients]]
id = "web"
secret_hash = "{web}"
grants = ["password", "refresh_token", "client_credentials"]
scopes = ["read", "write", "portcullis:admin"]
default_scopes = ["read"]

[[clients]]
id = "other"
secret_hash = "{other}"
grants = ["password", "refresh_token"]
scopes = ["read"]
default_scopes = ["read"]

[[clients]]
id = "legacy"
secret_hash = "{legacy}"
grants = ["password"]
scopes = ["read"]
default_scopes = ["read"]

[[clients]]
id = "ops"
secret_hash = "{ops}"
grants = ["client_credentials"]
scopes = ["portcullis:admin"]
default_scopes = ["portcullis:admin"]

[[routes]]
method = "POST"
prefix = "/api/orders"
scopes = ["write"]

[[routes]]
prefix = "/internal"
scopes = ["portcullis:admin"]
"#,
        dir = data_dir.display(),
        web = secret("web-secret"),
        other = secret("other-secret"),
        ops = secret("ops-secret"),
        legacy = secret("legacy-secret"),
    )
}

/// A node running in this process on its own actix system thread.
pub struct TestNode {
    pub base: String,
    pub handles: Arc<Handles>,
    pub clock: ManualClock,
    pub dir: PathBuf,
    server: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    _tmp: Option<tempfile::TempDir>,
}

impl TestNode {
    /// A fresh node with its own data directory and a manual clock.
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// A fresh node whose configuration has `extra` top-level TOML.
    pub fn start_with(extra: &str) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut node = Self::start_in(tmp.path(), extra, ManualClock::starting_now());
        node._tmp = Some(tmp);
        node
    }

    /// A node over an existing data directory and clock (for restarts).
    pub fn start_in(dir: &Path, extra: &str, clock: ManualClock) -> Self {
        let config = Config::from_toml(&config_toml(dir, extra)).expect("test config is valid");
        let (tx, rx) = mpsc::channel();
        let node_clock = clock.clone();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let node = portcullis::node::start(config, Arc::new(node_clock))
                    .await
                    .expect("node starts");
                let handle = node.server.handle();
                tx.send((node.addr, node.handles.clone(), handle))
                    .expect("test is waiting");
                let _ = node.server.await;
            });
        });
        let (addr, handles, server) = rx.recv().expect("node reported its address");
        Self {
            base: format!("http://{addr}"),
            handles,
            clock,
            dir: dir.to_owned(),
            server,
            thread: Some(thread),
            _tmp: None,
        }
    }

    /// Stops the server and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        futures::executor::block_on(self.server.stop(false));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shutdown();
        }
    }
}

/// A blocking client with no redirects and a short timeout.
pub fn http() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client builds")
}

/// The node's published key set (`GET /.well-known/jwks.json`).
pub fn jwks(node: &TestNode) -> Value {
    http()
        .get(node.url("/.well-known/jwks.json"))
        .send()
        .expect("jwks")
        .json()
        .expect("json")
}

/// POSTs a form to the token endpoint with HTTP Basic client authentication.
pub fn token_request(base: &str, client: (&str, &str), form: &[(&str, &str)]) -> Response {
    http()
        .post(format!("{base}/oauth/token"))
        .basic_auth(client.0, Some(client.1))
        .form(form)
        .send()
        .expect("token request sent")
}

/// A successful token response as JSON; panics with the body otherwise.
pub fn token_ok(base: &str, client: (&str, &str), form: &[(&str, &str)]) -> Value {
    let response = token_request(base, client, form);
    let status = response.status();
    let body: Value = response.json().expect("token endpoint answers JSON");
    assert_eq!(status, 200, "token request failed: {body}");
    body
}

pub const WEB: (&str, &str) = ("web", "web-secret");
pub const OTHER: (&str, &str) = ("other", "other-secret");
pub const OPS: (&str, &str) = ("ops", "ops-secret");

/// Alice's token pair through the `web` client.
pub fn alice_tokens(base: &str, scope: Option<&str>) -> Value {
    let mut form = vec![
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", "alice-password"),
    ];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    token_ok(base, WEB, &form)
}

/// An admin token from the `ops` client.
pub fn admin_token(base: &str) -> String {
    let body = token_ok(base, OPS, &[("grant_type", "client_credentials")]);
    body["access_token"]
        .as_str()
        .expect("access token")
        .to_owned()
}

/// `GET /v1/check` with a bearer token and extra headers.
pub fn check(base: &str, token: &str, headers: &[(&str, &str)]) -> Response {
    check_path(base, "/v1/check", token, headers)
}

pub fn check_path(base: &str, path: &str, token: &str, headers: &[(&str, &str)]) -> Response {
    let mut request = http().get(format!("{base}{path}")).bearer_auth(token);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().expect("check sent")
}

/// The JSON header and claims of a compact JWS.
pub fn decode_jwt(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut part = || {
        let raw = URL_SAFE_NO_PAD
            .decode(parts.next().expect("part"))
            .expect("base64url");
        serde_json::from_slice::<Value>(&raw).expect("json")
    };
    (part(), part())
}

/// Asserts a JSON error with this status and `error` code, and that no token leaked.
pub fn assert_error(response: Response, status: u16, code: &str, secret: &str) -> Value {
    assert_eq!(response.status().as_u16(), status);
    let text = response.text().expect("body");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body: {text}"));
    assert_eq!(body["error"], code, "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    if secret.len() > 16 {
        assert!(
            !text.contains(&secret[secret.len() - 16..]),
            "token material echoed: {text}"
        );
    }
    body
}

/// A `portcullis` process.
pub struct Process {
    pub child: Child,
    pub base: String,
    pub stdout: Vec<String>,
}

/// Starts the binary with `args` in `cwd` and waits for its listening line.
pub fn spawn_binary(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Process {
    let mut command = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    command
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let child = command.spawn().expect("binary starts");
    // Owned by `Process` from here, so a failed start is still killed and reaped.
    let mut process = Process {
        child,
        base: String::new(),
        stdout: Vec::new(),
    };
    let stdout = process.child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while process.base.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("node printed its listening line in time");
        if let Some(addr) = line.strip_prefix("portcullis: listening on ") {
            process.base = addr.to_owned();
        }
        process.stdout.push(line);
    }
    process
}

impl Process {
    /// SIGKILL: no chance to flush anything.
    pub fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("reap");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
