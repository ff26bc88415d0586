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

    // A proxy in the environment is not used: the check is of this host.
    let proxied = run(
        &["healthcheck", "--url", &readyz],
        &[
            ("http_proxy", "http://127.0.0.1:9"),
            ("HTTP_PROXY", "http://127.0.0.1:9"),
        ],
    );
    assert_eq!(proxied.status.code(), Some(0), "{}", stderr(&proxied));

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

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("--json printed JSON: {}", stdout(output)))
}

/// Runs `portcullis admin ARGS` against `node` with `token`; asserts it succeeded.
fn admin(node: &TestNode, token: &str, args: &[&str]) -> Output {
    let output = admin_any(node, token, args);
    assert_eq!(
        output.status.code(),
        Some(0),
        "admin {args:?} failed: {}",
        stderr(&output)
    );
    output
}

/// Runs `portcullis admin ARGS` against `node` with `token`, whatever the outcome.
fn admin_any(node: &TestNode, token: &str, args: &[&str]) -> Output {
    let mut all = vec!["admin", "--node", node.base.as_str()];
    all.extend_from_slice(args);
    run(&all, &[("PORTCULLIS_TOKEN", token)])
}

fn jti(token: &str) -> String {
    let (_, claims) = decode_jwt(token);
    claims["jti"].as_str().expect("a jti").to_owned()
}

fn access(body: &Value) -> String {
    body["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

#[test]
fn admin_revokes_by_jti_subject_and_client_and_lists_what_it_revoked() {
    let node = TestNode::start();
    let token = admin_token(&node.base);
    let by_jti = access(&alice_tokens(&node.base, None));
    let form = [
        ("grant_type", "password"),
        ("username", "bob"),
        ("password", "bob-password"),
    ];
    let bob = access(&token_ok(&node.base, WEB, &form));
    let alice_via_other = token_ok(
        &node.base,
        OTHER,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "alice-password"),
        ],
    );
    let by_client = access(&alice_via_other);
    for t in [&by_jti, &bob, &by_client] {
        assert_eq!(check(&node.base, t, &[]).status(), 200);
    }

    // Table form: a header, then the one revocation made.
    let id = jti(&by_jti);
    let shown = stdout(&admin(&node, &token, &["revoke", "jti", &id]));
    assert!(shown.starts_with("revoked:\nKIND"), "{shown}");
    assert!(shown.contains(&format!("token  {id}  admin")), "{shown}");
    assert_eq!(check(&node.base, &by_jti, &[]).status(), 401);

    // JSON form: the node's answer as it is.
    let made = json(&admin(
        &node,
        &token,
        &["--json", "revoke", "subject", "bob"],
    ));
    assert_eq!(made["kind"], "subject");
    assert_eq!(made["subject"], "bob");
    assert_eq!(check(&node.base, &bob, &[]).status(), 401);
    let made = json(&admin(
        &node,
        &token,
        &["revoke", "client", "other", "--json"],
    ));
    assert_eq!(made["client_id"], "other");
    assert_eq!(check(&node.base, &by_client, &[]).status(), 401);
    // Alice's tokens through `web` are untouched.
    let kept = access(&alice_tokens(&node.base, None));
    assert_eq!(check(&node.base, &kept, &[]).status(), 200);

    let listed = stdout(&admin(&node, &token, &["revocations"]));
    let lines: Vec<&str> = listed.lines().collect();
    assert!(
        lines[0].starts_with("KIND") && lines[0].contains("EXPIRES"),
        "{listed}"
    );
    for (kind, target) in [
        ("token", id.as_str()),
        ("subject", "bob"),
        ("client", "other"),
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(kind) && l.contains(target)),
            "{kind} {target} not listed: {listed}"
        );
    }
    let listed = json(&admin(&node, &token, &["revocations", "--json"]));
    let entries = listed["revocations"].as_array().expect("a list");
    assert_eq!(entries.len(), 3, "{listed}");

    // A base64url jti may start with `-`: it is an identifier, not an option.
    let made = json(&admin(
        &node,
        &token,
        &["revoke", "jti", "-bFneqm0Z3hi", "--json"],
    ));
    assert_eq!(made["jti"], "-bFneqm0Z3hi");
}

#[test]
fn admin_bans_an_address_lists_the_ban_and_lifts_it() {
    let node = TestNode::start();
    let token = admin_token(&node.base);
    assert_eq!(stdout(&admin(&node, &token, &["bans"])), "no bans\n");

    let banned = stdout(&admin(&node, &token, &["ban", "192.0.2.7", "--for", "10m"]));
    assert!(banned.starts_with("banned:\nADDRESS"), "{banned}");
    for scope in ["login", "gate"] {
        assert!(banned.contains(&format!("192.0.2.7  {scope}")), "{banned}");
    }
    let listed = stdout(&admin(&node, &token, &["bans"]));
    assert!(listed.starts_with("ADDRESS"), "{listed}");
    assert_eq!(listed.matches("192.0.2.7").count(), 2, "{listed}");
    let listed = json(&admin(&node, &token, &["--json", "bans"]));
    let bans = listed["bans"].as_array().expect("a list");
    assert_eq!(bans.len(), 2, "{listed}");
    assert!(bans.iter().all(|b| b["address"] == "192.0.2.7"), "{listed}");
    let until = bans[0]["until_ms"].as_u64().expect("until_ms");
    let ten_minutes = node.handles.clock.now_ms() + 600_000;
    assert_eq!(until, ten_minutes);

    let lifted = stdout(&admin(&node, &token, &["unban", "192.0.2.7"]));
    assert!(lifted.starts_with("lifted:\nADDRESS"), "{lifted}");
    assert_eq!(stdout(&admin(&node, &token, &["bans"])), "no bans\n");
    let listed = json(&admin(&node, &token, &["bans", "--json"]));
    assert_eq!(listed["bans"], serde_json::json!([]));

    // Lifting again: the node's 404 is reported, and the exit status says it failed.
    let again = admin_any(&node, &token, &["unban", "192.0.2.7"]);
    assert_eq!(again.status.code(), Some(1));
    let why = stderr(&again);
    assert!(why.contains("404") && why.contains("not_found"), "{why}");
}

#[test]
fn admin_rotates_keys_and_shows_the_new_key() {
    let node = TestNode::start();
    let token = admin_token(&node.base);
    let before = json(&admin(&node, &token, &["keys", "--json"]));
    let signing = before["signing_kid"]
        .as_str()
        .expect("signing kid")
        .to_owned();
    let kids = |body: &Value| -> Vec<String> {
        let keys = body["keys"].as_array().expect("a key list");
        keys.iter()
            .map(|k| k["kid"].as_str().expect("kid").to_owned())
            .collect()
    };
    assert_eq!(kids(&before), std::slice::from_ref(&signing));
    let shown = stdout(&admin(&node, &token, &["keys"]));
    assert!(
        shown.starts_with(&format!("this node signs with {signing}\nKID")),
        "{shown}"
    );
    assert!(shown.contains(&format!("{signing} *")), "{shown}");
    assert!(shown.contains("current"), "{shown}");

    let rotated = stdout(&admin(&node, &token, &["rotate-keys"]));
    assert!(rotated.starts_with("new key published"), "{rotated}");
    assert!(rotated.contains("next"), "{rotated}");
    let after = json(&admin(&node, &token, &["keys", "--json"]));
    let new: Vec<String> = kids(&after).into_iter().filter(|k| *k != signing).collect();
    assert_eq!(new.len(), 1, "rotation adds one kid: {after}");
    assert!(rotated.contains(&new[0]), "{rotated}");
    // It is published in the JWKS too, before it signs.
    let jwks: Value = jwks(&node);
    assert!(jwks.to_string().contains(&new[0]), "{jwks}");

    // A second rotation while one is pending is refused: 409 with the node's reason.
    let refused = admin_any(&node, &token, &["rotate-keys", "--json"]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(json(&refused)["error"], "rotation_pending");
    assert!(stderr(&refused).contains("409"), "{}", stderr(&refused));
}

#[test]
fn admin_shows_a_single_node_as_unclustered() {
    let node = TestNode::start();
    let token = admin_token(&node.base);
    let shown = stdout(&admin(&node, &token, &["cluster"]));
    let node_id = node.handles.node_id.clone();
    assert!(
        shown.contains(&format!("node               {node_id}")),
        "{shown}"
    );
    assert!(shown.contains("clustered          false"), "{shown}");
    assert!(shown.contains("ready              true"), "{shown}");
    let view = json(&admin(&node, &token, &["cluster", "--json"]));
    assert_eq!(view["node_id"], node_id.as_str());
    assert_eq!(view["members"], serde_json::json!([]));

    // The node may come from the environment instead of --node.
    let env = [
        ("PORTCULLIS_TOKEN", token.as_str()),
        ("PORTCULLIS_NODE", &node.base),
    ];
    let output = run(&["admin", "cluster", "--json"], &env);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(json(&output)["node_id"], node_id.as_str());
}

#[test]
fn admin_reports_a_missing_token_a_refused_token_and_bad_input_clearly() {
    let node = TestNode::start();
    let missing = run(&["admin", "--node", &node.base, "bans"], &[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("PORTCULLIS_TOKEN is not set"),
        "{}",
        stderr(&missing)
    );
    assert!(missing.stdout.is_empty());

    let invalid = admin_any(&node, "not-a-token", &["bans"]);
    assert_eq!(invalid.status.code(), Some(1));
    let why = stderr(&invalid);
    assert!(
        why.contains("401") && why.contains("invalid_token"),
        "{why}"
    );

    // A valid token without the admin scope: 403, and --json prints the node's body.
    let reader = access(&alice_tokens(&node.base, Some("read")));
    let forbidden = admin_any(&node, &reader, &["--json", "revocations"]);
    assert_eq!(forbidden.status.code(), Some(1));
    assert_eq!(json(&forbidden)["error"], "insufficient_scope");
    assert!(stderr(&forbidden).contains("403"), "{}", stderr(&forbidden));

    let token = admin_token(&node.base);
    let bad = admin_any(&node, &token, &["ban", "not-an-address"]);
    assert_eq!(bad.status.code(), Some(1));
    let why = stderr(&bad);
    assert!(
        why.contains("400") && why.contains("invalid_request"),
        "{why}"
    );
    let bad = admin_any(&node, &token, &["ban", "192.0.2.8", "--for", "forever"]);
    assert!(stderr(&bad).contains("duration"), "{}", stderr(&bad));

    let url = format!("http://127.0.0.1:{}", closed_port());
    let down = run(
        &["admin", "--node", &url, "keys"],
        &[("PORTCULLIS_TOKEN", &token)],
    );
    assert_eq!(down.status.code(), Some(1));
    assert!(stderr(&down).contains("cannot reach"), "{}", stderr(&down));
}
