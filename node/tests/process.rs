//! The `portcullis` binary as operators run it: dev mode, the CLI helpers, refusal of
//! bad configuration, and durability across SIGKILL.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

fn write_config(dir: &Path, extra: &str) -> String {
    let path = dir.join("portcullis.toml");
    std::fs::write(&path, config_toml(&dir.join("data"), extra)).expect("write config");
    path.display().to_string()
}

fn serve(config: &str) -> Process {
    spawn_binary(&["serve", "--config", config], Path::new("/"), &[])
}

#[test]
fn dev_mode_starts_with_no_arguments_and_works_with_the_printed_credentials() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let node = spawn_binary(
        &["serve"],
        cwd.path(),
        &[("PORTCULLIS_LISTEN", "127.0.0.1:0")],
    );
    let printed = node.stdout.join("\n");
    for expected in ["NOT for production", "demo-password", "demo-secret", "curl"] {
        assert!(
            printed.contains(expected),
            "dev banner lacks {expected}: {printed}"
        );
    }
    let body = token_ok(
        &node.base,
        ("demo-client", "demo-secret"),
        &[
            ("grant_type", "password"),
            ("username", "demo"),
            ("password", "demo-password"),
        ],
    );
    let token = body["access_token"].as_str().expect("token");
    assert_eq!(check(&node.base, token, &[]).status(), 200);

    let data = cwd.path().join("portcullis-data");
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("signing-keys.bin")), 0o600);
}

#[test]
fn a_bad_configuration_is_refused_with_every_problem_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "listen = \"nowhere\"\naudiences = []\ncolour = \"blue\"\n",
    )
    .expect("write");
    let output = Command::new(BIN)
        .args(["serve", "--config", &path.display().to_string()])
        .env("PORTCULLIS_TOKENS__LEEWAY", "1h")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for key in [
        "listen",
        "issuer",
        "audiences",
        "data_dir",
        "colour",
        "PORTCULLIS_TOKENS__LEEWAY",
    ] {
        assert!(
            stderr.contains(key),
            "problem with {key} not reported: {stderr}"
        );
    }
}

#[test]
fn check_config_validates_without_starting_or_touching_the_data_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write_config(dir.path(), "");
    let output = Command::new(BIN)
        .args(["check-config", "--config", &good])
        .env("PORTCULLIS_ISSUER", "https://auth.checked.test")
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains(": ok"), "{stdout}");
    // The summary shows the configuration as overridden by the environment.
    assert!(stdout.contains("https://auth.checked.test"), "{stdout}");
    assert!(
        !dir.path().join("data").exists(),
        "check-config created the data dir"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "listen = \"nowhere\"\ncolour = \"blue\"\n").expect("write");
    let output = Command::new(BIN)
        .args(["check-config", "--config", &bad.display().to_string()])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for key in ["listen", "issuer", "colour"] {
        assert!(
            stderr.contains(key),
            "problem with {key} not reported: {stderr}"
        );
    }
}

#[test]
fn environment_variables_override_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), "");
    let node = spawn_binary(
        &["serve", "--config", &config],
        Path::new("/"),
        &[("PORTCULLIS_TOKENS__ACCESS_LIFETIME", "2m")],
    );
    let body = token_ok(&node.base, WEB, &[("grant_type", "client_credentials")]);
    assert_eq!(body["expires_in"], 120);
}

#[test]
fn cli_helpers_produce_credentials_the_node_accepts() {
    let mut hasher = Command::new(BIN)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("runs");
    hasher
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"s3cret pass\n")
        .expect("write");
    let hashed = hasher.wait_with_output().expect("finishes");
    assert!(hashed.status.success());
    let phc = String::from_utf8(hashed.stdout)
        .expect("utf8")
        .trim()
        .to_owned();
    assert!(phc.starts_with("$argon2id$"), "{phc}");

    let minted = Command::new(BIN)
        .arg("mint-client-secret")
        .output()
        .expect("runs");
    let minted = String::from_utf8(minted.stdout).expect("utf8");
    let value = |key: &str| -> String {
        let line = minted
            .lines()
            .find(|l| l.starts_with(key))
            .expect("line present");
        line.split('=')
            .nth(1)
            .expect("value")
            .trim()
            .trim_matches('"')
            .to_owned()
    };
    let (secret, hash) = (value("client_secret"), value("secret_hash"));

    let dir = tempfile::tempdir().expect("tempdir");
    let extra = format!(
        "[[users]]\nname = \"carol\"\npassword_hash = \"{phc}\"\nscopes = [\"read\"]\n\n\
         [[clients]]\nid = \"minted\"\nsecret_hash = \"{hash}\"\ngrants = [\"password\"]\n\
         scopes = [\"read\"]\n"
    );
    let path = dir.path().join("portcullis.toml");
    let base = config_toml(&dir.path().join("data"), "");
    std::fs::write(&path, format!("{base}\n{extra}")).expect("write");
    let node = serve(&path.display().to_string());
    token_ok(
        &node.base,
        ("minted", &secret),
        &[
            ("grant_type", "password"),
            ("username", "carol"),
            ("password", "s3cret pass"),
        ],
    );
}

#[test]
fn revocations_spent_refresh_tokens_and_keys_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), "");
    let node = serve(&config);

    let revoked = alice_tokens(&node.base, None)["access_token"]
        .as_str()
        .expect("a")
        .to_owned();
    let kept = token_ok(&node.base, WEB, &[("grant_type", "client_credentials")]);
    let kept = kept["access_token"].as_str().expect("kept").to_owned();
    let pair = alice_tokens(&node.base, None);
    let refresh1 = pair["refresh_token"].as_str().expect("r1").to_owned();
    let rotated = token_ok(
        &node.base,
        WEB,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh1),
        ],
    );
    let refresh2 = rotated["refresh_token"].as_str().expect("r2").to_owned();

    let response = http()
        .post(format!("{}/oauth/revoke", node.base))
        .basic_auth("web", Some("web-secret"))
        .form(&[("token", revoked.as_str())])
        .send()
        .expect("sent");
    assert_eq!(response.status(), 200);
    let admin = admin_token(&node.base);
    let by_subject = http()
        .post(format!("{}/admin/v1/revocations", node.base))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"kind": "subject", "subject": "bob"}))
        .send()
        .expect("sent");
    assert_eq!(by_subject.status(), 201);
    node.kill(); // acknowledged means durable: no graceful flush happens here

    let node = serve(&config);
    assert_eq!(
        check(&node.base, &revoked, &[]).status(),
        401,
        "revocation survived"
    );
    assert_eq!(
        check(&node.base, &kept, &[]).status(),
        200,
        "signing key survived"
    );
    let list: Value = http()
        .get(format!("{}/admin/v1/revocations", node.base))
        .bearer_auth(&admin)
        .send()
        .expect("sent")
        .json()
        .expect("json");
    assert!(
        list["revocations"].to_string().contains("\"bob\""),
        "{list}"
    );

    let replay = token_request(
        &node.base,
        WEB,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh1),
        ],
    );
    assert_error(replay, 400, "invalid_grant", &refresh1);
    let after = token_request(
        &node.base,
        WEB,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh2),
        ],
    );
    assert_error(after, 400, "invalid_grant", &refresh2);
}
