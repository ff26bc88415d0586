//! nginx `auth_request` in front of a real node, configured with the documented
//! `docs/forward-auth/nginx.conf` (only its addresses replaced by free ports): 401, 200
//! with the identity at the upstream, 403 and 429 all reach the client with their
//! headers. Skipped, with a message, when `nginx` is not on `PATH`; CI installs it.

mod common;

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{config_toml, http, spawn_binary, token_ok, wait_until, WEB};
use reqwest::blocking::Response;
use reqwest::Method;
use serde_json::Value;

/// The documented configuration, as the operator page shows it.
const DOCUMENTED: &str = include_str!("../../docs/forward-auth/nginx.conf");

/// The addresses the documented configuration uses, in this order: nginx itself, the
/// Portcullis node, the protected API.
const DOCUMENTED_ADDRESSES: [&str; 3] = ["127.0.0.1:8000", "127.0.0.1:8080", "127.0.0.1:9000"];

/// Top-level settings for the node: nginx on loopback is a trusted proxy, and a budget
/// of three checks a minute that runs out quickly without revoking anything.
const NODE_EXTRA: &str = r#"
trusted_proxies = ["127.0.0.1/32"]

[rate_limits]
per_minute = 3
abuse_factor = 100
"#;

#[test]
fn nginx_passes_the_gate_answers_through_to_the_client() {
    let Some(nginx) = find_on_path("nginx") else {
        eprintln!("skipped: `nginx` is not on PATH (CI installs it; see .ci/run)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start_node(dir.path());
    let proxy = Nginx::start(&nginx, node.base.trim_start_matches("http://"));
    let token = token_ok(&node.base, WEB, &[("grant_type", "client_credentials")]);
    let token = token["access_token"].as_str().expect("access token");

    let missing = proxy.get("/api/things", None);
    assert_eq!(missing.status(), 401);
    assert!(challenge(&missing).contains(r#"error="invalid_token""#));

    // The client's own X-Auth-Subject must not reach the upstream.
    let allowed = proxy.request(
        Method::GET,
        "/api/things",
        Some(token),
        &[("X-Auth-Subject", "mallory")],
    );
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        header(&allowed, "ratelimit-policy"),
        r#""lineage";q=3;w=60"#
    );
    let seen = allowed.text().expect("upstream body");
    assert!(seen.contains("subject=web client=web scope=read"), "{seen}");

    // A route rule in the node's configuration: POST /api/orders needs `write`.
    let by_route = proxy.request(Method::POST, "/api/orders", Some(token), &[]);
    assert_eq!(by_route.status(), 403);
    assert!(challenge(&by_route).contains(r#"error="insufficient_scope", scope="write""#));

    // `?scope=` set by the /admin/ location of the nginx configuration.
    let by_query = proxy.get("/admin/users", Some(token));
    assert_eq!(by_query.status(), 403);
    assert!(challenge(&by_query).contains(r#"scope="portcullis:admin""#));

    assert_rate_limited(&proxy, token);
}

/// The three checks above spent the budget, so the next is refused with a real 429.
/// Should a window boundary fall in between, the sliding estimate may let one more
/// through; a second try is then over budget whatever the timing.
fn assert_rate_limited(proxy: &Nginx, token: &str) {
    let mut limited = proxy.get("/api/things", Some(token));
    if limited.status() == 200 {
        limited = proxy.get("/api/things", Some(token));
    }
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = header(&limited, "retry-after")
        .parse()
        .expect("Retry-After is whole seconds");
    assert!(
        (1..=60).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    assert_eq!(
        header(&limited, "ratelimit-policy"),
        r#""lineage";q=3;w=60"#
    );
    assert!(header(&limited, "ratelimit").starts_with(r#""lineage";r=0;t="#));
    let body: Value = limited.json().expect("JSON body");
    assert_eq!(body["error"], "rate_limited", "{body}");
}

/// A `portcullis` process with the test configuration and `NODE_EXTRA`.
fn start_node(dir: &Path) -> common::Process {
    let path = dir.join("portcullis.toml");
    std::fs::write(&path, config_toml(&dir.join("data"), NODE_EXTRA)).expect("write config");
    let path = path.to_str().expect("utf-8 temp path");
    spawn_binary(&["serve", "--config", path], dir, &[])
}

/// A real nginx (master and one worker) with everything it writes in a temp prefix.
/// Dropping it stops nginx, also when an assertion failed.
struct Nginx {
    binary: PathBuf,
    child: Child,
    base: String,
    prefix: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx with the documented configuration in front of the node at `node`
    /// (`host:port`) and waits until it and its stand-in upstream answer.
    fn start(binary: &Path, node: &str) -> Self {
        let prefix = tempfile::tempdir().expect("nginx prefix");
        // Run as root, nginx's worker is `nobody` and must reach its temp directories.
        let open = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(prefix.path(), open).expect("chmod prefix");

        let listen = free_address();
        let upstream = free_address();
        let config = substitute(DOCUMENTED, [&listen, node, &upstream]);
        std::fs::write(prefix.path().join("nginx.conf"), config).expect("write nginx.conf");
        let stderr = File::create(prefix.path().join("stderr.log")).expect("stderr log");
        let child = Command::new(binary)
            .args(Self::args(prefix.path()))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("nginx starts");
        let mut nginx = Self {
            binary: binary.to_owned(),
            child,
            base: format!("http://{listen}"),
            prefix,
        };
        nginx.wait_ready(&upstream);
        nginx
    }

    /// Prefix, configuration and start-up log, as both starting and stopping take them.
    fn args(prefix: &Path) -> Vec<String> {
        let prefix = format!("{}/", prefix.display());
        let config = format!("{prefix}nginx.conf");
        ["-p", &prefix, "-c", &config, "-e", "stderr"]
            .map(String::from)
            .to_vec()
    }

    /// Polls until the stand-in upstream answers 200 through a worker, failing early
    /// with nginx's logs if it exited.
    fn wait_ready(&mut self, upstream: &str) {
        let url = format!("http://{upstream}/");
        wait_until("nginx to answer", Duration::from_secs(10), || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("nginx exited with {status}:\n{}", self.logs());
            }
            http().get(&url).send().is_ok_and(|r| r.status() == 200)
        });
    }

    fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::GET, path, token, &[])
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut request = http().request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().expect("request through nginx")
    }

    /// nginx's start-up output and error log, for failure messages.
    fn logs(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.prefix.path().join(name)).unwrap_or_default();
        ["stderr.log", "error.log", "access.log"]
            .map(|name| format!("--- {name}\n{}", read(name)))
            .join("\n")
    }
}

impl Drop for Nginx {
    /// `nginx -s stop` has the master stop its worker too; a killed master would leave
    /// the worker behind. Falls back to SIGKILL if nginx does not exit in time.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("nginx logs:\n{}", self.logs());
        }
        let _ = Command::new(&self.binary)
            .args(Self::args(self.prefix.path()))
            .args(["-s", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The documented configuration with its addresses replaced, each of which must be
/// there: a renamed address in the docs should fail here, not test something else.
fn substitute(config: &str, addresses: [&str; 3]) -> String {
    let mut config = config.to_owned();
    for (documented, actual) in DOCUMENTED_ADDRESSES.iter().zip(addresses) {
        assert!(
            config.contains(documented),
            "docs/forward-auth/nginx.conf no longer uses {documented}"
        );
        config = config.replace(documented, actual);
    }
    config
}

/// A loopback address with a port that was free a moment ago.
fn free_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local address").to_string()
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("ASCII header")
        .to_owned()
}

fn challenge(response: &Response) -> String {
    header(response, "www-authenticate")
}
