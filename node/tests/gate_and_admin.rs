//! The forward-auth gate and the admin API over HTTP.

mod common;

use common::*;
use serde_json::{json, Value};

fn alice(node: &TestNode, scope: &str) -> String {
    alice_tokens(&node.base, Some(scope))["access_token"]
        .as_str()
        .expect("access")
        .to_owned()
}

#[test]
fn a_valid_token_passes_with_identity_headers() {
    let node = TestNode::start();
    let token = alice(&node, "read write");
    let response = check(&node.base, &token, &[]);
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["x-auth-subject"], "alice");
    assert_eq!(headers["x-auth-client"], "web");
    assert_eq!(headers["x-auth-scope"], "read write");
}

#[test]
fn a_required_scope_in_the_query_is_enforced_with_insufficient_scope() {
    let node = TestNode::start();
    let token = alice(&node, "read");
    assert_eq!(
        check_path(&node.base, "/v1/check?scope=read", &token, &[]).status(),
        200
    );
    let response = check_path(&node.base, "/v1/check?scope=read%20write", &token, &[]);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(challenge.contains(r#"scope="read write""#), "{challenge}");
    assert_error(response, 403, "insufficient_scope", &token);
}

#[test]
fn route_rules_apply_to_the_forwarded_method_and_normalised_uri() {
    let node = TestNode::start();
    let reader = alice(&node, "read");
    let writer = alice(&node, "read write");
    let forwarded = |token: &str, method: &str, uri: &str| {
        check(
            &node.base,
            token,
            &[("X-Forwarded-Method", method), ("X-Forwarded-Uri", uri)],
        )
        .status()
        .as_u16()
    };
    assert_eq!(forwarded(&reader, "GET", "/api/orders/1"), 200);
    assert_eq!(forwarded(&reader, "POST", "/api/orders?x=1"), 403);
    assert_eq!(forwarded(&writer, "POST", "/api/orders/9"), 200);
    assert_eq!(
        forwarded(&reader, "POST", "/api/x/../orders"),
        403,
        "dot segments resolved"
    );
    assert_eq!(forwarded(&reader, "GET", "//internal/stats"), 403);
    assert_eq!(
        forwarded(&reader, "GET", "/%69nternal"),
        403,
        "percent-encoding decoded"
    );
    assert_eq!(
        forwarded(&reader, "GET", "/a%2f..%2finternal"),
        400,
        "encoded slash refused"
    );
}

#[test]
fn envoy_path_prefix_form_uses_the_request_method_and_tail() {
    let node = TestNode::start();
    let reader = alice(&node, "read");
    let response = reqwest::blocking::Client::new()
        .post(node.url("/v1/check/api/orders/3"))
        .bearer_auth(&reader)
        .send()
        .expect("sent");
    assert_eq!(response.status(), 403);
    assert_eq!(
        check_path(&node.base, "/v1/check/api/orders/3", &reader, &[]).status(),
        200
    );
}

#[test]
fn the_admin_api_requires_a_token_with_the_admin_scope() {
    let node = TestNode::start();
    let anonymous = http().get(node.url("/admin/v1/keys")).send().expect("sent");
    assert_error(anonymous, 401, "invalid_token", "");
    let anonymous_post = http()
        .post(node.url("/admin/v1/revocations"))
        .body("{garbage")
        .send()
        .expect("sent");
    assert_error(anonymous_post, 401, "invalid_token", "");
    let user = alice(&node, "read");
    let response = http()
        .get(node.url("/admin/v1/keys"))
        .bearer_auth(&user)
        .send()
        .expect("sent");
    assert_error(response, 403, "insufficient_scope", &user);
    let admin = admin_token(&node.base);
    let keys: Value = http()
        .get(node.url("/admin/v1/keys"))
        .bearer_auth(&admin)
        .send()
        .expect("sent")
        .json()
        .expect("json");
    assert_eq!(keys["keys"].as_array().map(Vec::len), Some(1));
    assert_eq!(keys["keys"][0]["phase"], "current");
    assert_eq!(keys["signing_kid"], keys["keys"][0]["kid"]);
}

#[test]
fn admin_revocations_by_jti_subject_and_client_take_effect_at_once() {
    let node = TestNode::start();
    let admin = admin_token(&node.base);
    let revoke = |body: Value| {
        http()
            .post(node.url("/admin/v1/revocations"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .expect("sent")
    };

    let by_jti = alice(&node, "read");
    let (_, claims) = decode_jwt(&by_jti);
    let created = revoke(json!({"kind": "token", "jti": claims["jti"]}));
    assert_eq!(created.status(), 201);
    assert_error(
        check(&node.base, &by_jti, &[]),
        401,
        "invalid_token",
        &by_jti,
    );

    let alice_token = alice(&node, "read");
    let machine = token_ok(&node.base, WEB, &[("grant_type", "client_credentials")]);
    let machine = machine["access_token"].as_str().expect("token").to_owned();
    assert_eq!(
        revoke(json!({"kind": "subject", "subject": "alice"})).status(),
        201
    );
    assert_eq!(check(&node.base, &alice_token, &[]).status(), 401);
    assert_eq!(
        check(&node.base, &machine, &[]).status(),
        200,
        "other subjects unaffected"
    );

    assert_eq!(
        revoke(json!({"kind": "client", "client_id": "web"})).status(),
        201
    );
    assert_eq!(check(&node.base, &machine, &[]).status(), 401);

    let list: Value = http()
        .get(node.url("/admin/v1/revocations"))
        .bearer_auth(&admin)
        .send()
        .expect("sent")
        .json()
        .expect("json");
    let kinds: Vec<&str> = list["revocations"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    for kind in ["token", "subject", "client"] {
        assert!(kinds.contains(&kind), "{list}");
    }
    assert!(list["revocations"]
        .as_array()
        .expect("array")
        .iter()
        .all(|r| r["reason"] == "admin"));
}

#[test]
fn admin_requests_with_bad_bodies_get_json_errors() {
    let node = TestNode::start();
    let admin = admin_token(&node.base);
    let post = |body: &str, content_type: &str| {
        http()
            .post(node.url("/admin/v1/revocations"))
            .bearer_auth(&admin)
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .expect("sent")
    };
    assert_error(
        post("{not json", "application/json"),
        400,
        "invalid_request",
        &admin,
    );
    assert_error(
        post(r#"{"kind":"planet","name":"x"}"#, "application/json"),
        400,
        "invalid_request",
        &admin,
    );
    assert_error(
        post(r#"{"kind":"token"}"#, "application/json"),
        400,
        "invalid_request",
        &admin,
    );
    assert_error(
        post(r#"{"kind":"token","jti":""}"#, "application/json"),
        400,
        "invalid_request",
        &admin,
    );
    assert_error(
        post(r#"{"kind":"token","jti":"x"}"#, "text/plain"),
        415,
        "invalid_request",
        &admin,
    );
    let huge = format!(r#"{{"kind":"token","jti":"{}"}}"#, "x".repeat(20_000));
    assert_error(
        post(&huge, "application/json"),
        413,
        "invalid_request",
        &admin,
    );
}
