//! Key rotation driven by an injected clock: a new key is published before it signs,
//! old tokens keep verifying until they expire, then the old key is removed.

mod common;

use std::time::Duration;

use common::*;
use portcullis::issuer::Tick;
use serde_json::Value;

fn jwks_kids(node: &TestNode) -> Vec<String> {
    let jwks: Value = jwks(node);
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str().map(String::from))
        .collect()
}

fn signing_kid(node: &TestNode) -> String {
    let body = token_ok(&node.base, WEB, &[("grant_type", "client_credentials")]);
    let (header, _) = decode_jwt(body["access_token"].as_str().expect("token"));
    header["kid"].as_str().expect("kid").to_owned()
}

/// Runs the key schedule now, so a check after it sees its effect deterministically.
fn tick(node: &TestNode) {
    futures::executor::block_on(node.handles.issuer.send(Tick)).expect("issuer is running");
}

const DEADLINE: Duration = Duration::from_secs(10);

#[test]
fn on_demand_rotation_publishes_first_signs_later_and_retires_after_expiry() {
    let node = TestNode::start();
    let old_kid = signing_kid(&node);
    let old_token = alice_tokens(&node.base, None)["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let admin = admin_token(&node.base);

    let rotated = http()
        .post(node.url("/admin/v1/keys/rotate"))
        .bearer_auth(&admin)
        .send()
        .expect("sent");
    assert_eq!(rotated.status(), 201);
    let new_kid = rotated.json::<Value>().expect("json")["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    let again = http()
        .post(node.url("/admin/v1/keys/rotate"))
        .bearer_auth(&admin)
        .send()
        .expect("sent");
    assert_error(again, 409, "rotation_pending", "");

    // Published at once, but the old key still signs for the whole JWKS cache lifetime.
    assert_eq!(jwks_kids(&node), [old_kid.clone(), new_kid.clone()]);
    assert_eq!(signing_kid(&node), old_kid);
    node.clock.advance(Duration::from_secs(299));
    tick(&node);
    assert_eq!(
        signing_kid(&node),
        old_kid,
        "must not sign before max-age has passed"
    );

    node.clock.advance(Duration::from_secs(1));
    wait_until("the new key to sign", DEADLINE, || {
        signing_kid(&node) == new_kid
    });
    assert_eq!(
        check(&node.base, &old_token, &[]).status(),
        200,
        "old tokens keep verifying"
    );

    // The old key stays until everything it signed (refresh tokens: 1 h) has expired.
    node.clock.advance(Duration::from_secs(3600 + 30 - 1));
    tick(&node);
    assert!(jwks_kids(&node).contains(&old_kid));
    node.clock.advance(Duration::from_secs(1));
    wait_until("the old key to be removed", DEADLINE, || {
        jwks_kids(&node) == [new_kid.clone()]
    });
}

#[test]
fn rotation_happens_on_schedule() {
    let node = TestNode::start();
    let first = signing_kid(&node);
    // rotation_period is 1 day and keys are published 5 minutes ahead.
    node.clock.advance(Duration::from_secs(24 * 3600 - 300));
    wait_until("the successor to be published", DEADLINE, || {
        jwks_kids(&node).len() == 2
    });
    assert_eq!(signing_kid(&node), first);
    node.clock.advance(Duration::from_secs(300));
    wait_until("the successor to sign", DEADLINE, || {
        signing_kid(&node) != first
    });
}
