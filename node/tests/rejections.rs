//! Every class of bad token and bad request, over HTTP: a 4xx with a JSON body that
//! says what was wrong, never a 500 and never the token echoed back.

mod common;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use jwt_simple::prelude::*;
use serde_json::json;

fn invalid(node: &TestNode, token: &str) {
    let response = check(&node.base, token, &[]);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert_error(response, 401, "invalid_token", token);
}

fn access(node: &TestNode) -> String {
    alice_tokens(&node.base, None)["access_token"]
        .as_str()
        .expect("access")
        .to_owned()
}

fn segment(value: serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

#[test]
fn missing_and_malformed_tokens_are_invalid() {
    let node = TestNode::start();
    let none = http().get(node.url("/v1/check")).send().expect("sent");
    assert_error(none, 401, "invalid_token", "");
    let basic = http()
        .get(node.url("/v1/check"))
        .basic_auth("a", Some("b"))
        .send()
        .expect("sent");
    assert_error(basic, 401, "invalid_token", "");
    for junk in [
        "x",
        "a.b",
        "a.b.c.d",
        "eyJhbGciOiJFZERTQSJ9.e30.AAAA",
        ".....",
    ] {
        invalid(&node, junk);
    }
}

#[test]
fn expired_tokens_are_invalid_past_the_leeway() {
    let node = TestNode::start();
    let token = access(&node);
    node.clock.advance(Duration::from_secs(300 + 31));
    invalid(&node, &token);
}

#[test]
fn revoked_tokens_are_invalid() {
    let node = TestNode::start();
    let token = access(&node);
    let response = http()
        .post(node.url("/oauth/revoke"))
        .basic_auth("web", Some("web-secret"))
        .form(&[("token", token.as_str())])
        .send()
        .expect("sent");
    assert_eq!(response.status(), 200);
    invalid(&node, &token);
}

#[test]
fn tokens_from_another_issuer_or_key_are_invalid() {
    let node = TestNode::start();
    let genuine = access(&node);
    let (header, claims) = decode_jwt(&genuine);
    let kid = header["kid"].as_str().expect("kid");

    // Same claims and kid, signed by a key the node never published.
    let stranger = Ed25519KeyPair::generate().with_key_id(kid);
    let options = HeaderOptions {
        signature_type: Some("at+jwt".into()),
        ..Default::default()
    };
    let forged_claims = Claims::with_custom_claims(
        json!({"client_id": "web", "scope": "read"}),
        jwt_simple::prelude::Duration::from_mins(5),
    )
    .with_issuer("http://portcullis.test")
    .with_audience("api")
    .with_subject("alice")
    .with_jwt_id("forged");
    let foreign_sig = stranger
        .sign_with_options(forged_claims.clone(), &options)
        .expect("signs");
    invalid(&node, &foreign_sig);

    // A foreign key with its own kid.
    let foreign_kid = Ed25519KeyPair::generate().with_key_id("theirs");
    invalid(
        &node,
        &foreign_kid
            .sign_with_options(forged_claims, &options)
            .expect("signs"),
    );

    // Genuine signature, but claims swapped: the signature no longer covers them.
    let mut parts = genuine.split('.');
    let (h, _, s) = (
        parts.next().expect("h"),
        parts.next(),
        parts.next().expect("s"),
    );
    let mut claims = claims;
    claims["scope"] = json!("read write portcullis:admin");
    invalid(&node, &format!("{h}.{}.{s}", segment(claims)));
}

#[test]
fn alg_none_and_hs256_with_the_public_key_are_rejected() {
    let node = TestNode::start();
    let genuine = access(&node);
    let (header, claims) = decode_jwt(&genuine);
    let kid = header["kid"].as_str().expect("kid").to_owned();

    let none_header = segment(json!({"alg": "none", "typ": "at+jwt", "kid": kid}));
    invalid(
        &node,
        &format!("{none_header}.{}.", segment(claims.clone())),
    );

    let jwks: serde_json::Value = http()
        .get(node.url("/.well-known/jwks.json"))
        .send()
        .expect("jwks")
        .json()
        .expect("json");
    let x = URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["x"].as_str().expect("x"))
        .expect("b64");
    let hmac = HS256Key::from_bytes(&x).with_key_id(&kid);
    let options = HeaderOptions {
        signature_type: Some("at+jwt".into()),
        ..Default::default()
    };
    let claims = Claims::with_custom_claims(claims, jwt_simple::prelude::Duration::from_mins(5));
    invalid(
        &node,
        &hmac
            .authenticate_with_options(claims, &options)
            .expect("hmac"),
    );
}

#[test]
fn refresh_and_access_tokens_cannot_stand_in_for_each_other() {
    let node = TestNode::start();
    let pair = alice_tokens(&node.base, None);
    let refresh = pair["refresh_token"].as_str().expect("refresh");
    let access = pair["access_token"].as_str().expect("access");
    invalid(&node, refresh);
    let response = token_request(
        &node.base,
        WEB,
        &[("grant_type", "refresh_token"), ("refresh_token", access)],
    );
    assert_error(response, 400, "invalid_grant", access);
}

#[test]
fn oversized_tokens_and_headers_are_rejected_before_parsing() {
    let node = TestNode::start();
    let huge = format!(
        "{}.{}.{}",
        "e".repeat(3000),
        "e".repeat(3000),
        "e".repeat(3000)
    );
    invalid(&node, &huge);
}

#[test]
fn token_endpoint_rejects_malformed_requests_with_json_errors() {
    let node = TestNode::start();
    let post = |content_type: &str, body: Vec<u8>| {
        http()
            .post(node.url("/oauth/token"))
            .basic_auth("web", Some("web-secret"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .expect("sent")
    };
    let json_body = br#"{"grant_type":"client_credentials"}"#.to_vec();
    assert_error(
        post("application/json", json_body),
        415,
        "invalid_request",
        "",
    );
    let form = "application/x-www-form-urlencoded";
    assert_error(
        post(
            form,
            b"grant_type=password&grant_type=client_credentials".to_vec(),
        ),
        400,
        "invalid_request",
        "",
    );
    assert_error(
        post(form, b"grant_type=password&username=alice".to_vec()),
        400,
        "invalid_request",
        "",
    );
    assert_error(
        post(form, vec![0xff, 0xfe, 0x3d]),
        400,
        "invalid_request",
        "",
    );
    let big = format!("grant_type=client_credentials&pad={}", "x".repeat(20_000));
    assert_error(post(form, big.into_bytes()), 413, "invalid_request", "");
    let malformed_basic = http()
        .post(node.url("/oauth/token"))
        .header("authorization", "Basic !!!")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .expect("sent");
    assert_error(malformed_basic, 401, "invalid_client", "");
}

#[test]
fn unknown_routes_and_methods_get_json_errors() {
    let node = TestNode::start();
    assert_error(
        http().get(node.url("/nope")).send().expect("sent"),
        404,
        "not_found",
        "",
    );
    let get_token = http().get(node.url("/oauth/token")).send().expect("sent");
    assert_error(get_token, 405, "method_not_allowed", "");
    let delete = http().delete(node.url("/healthz")).send().expect("sent");
    assert_error(delete, 405, "method_not_allowed", "");
}

#[test]
fn rejections_are_counted_by_reason() {
    let node = TestNode::start();
    invalid(&node, "x.y.z");
    let metrics = http()
        .get(node.url("/metrics"))
        .send()
        .expect("metrics")
        .text()
        .expect("text");
    assert!(
        metrics.contains(r#"portcullis_verifications_total{outcome="malformed"}"#),
        "{metrics}"
    );
}
