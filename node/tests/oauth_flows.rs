//! Every OAuth flow over HTTP against a real node on port 0.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde_json::Value;

#[test]
fn password_grant_issues_an_rfc9068_token_that_verifies_against_the_jwks() {
    let node = TestNode::start();
    let body = alice_tokens(&node.base, None);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(
        body["scope"], "read",
        "no scope requested gives the client's default set"
    );
    let access = body["access_token"].as_str().expect("access token");

    let (header, claims) = decode_jwt(access);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "at+jwt");
    for claim in [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "nbf",
        "jti",
        "client_id",
        "scope",
    ] {
        assert!(!claims[claim].is_null(), "missing {claim}: {claims}");
    }
    assert_eq!(claims["iss"], "http://portcullis.test");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["client_id"], "web");
    assert_eq!(
        claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat"),
        300
    );

    // An external verifier needs nothing but the JWKS.
    let jwks: Value = jwks(&node);
    let jwk = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("signing key is published");
    let x: [u8; 32] = URL_SAFE_NO_PAD
        .decode(jwk["x"].as_str().expect("x"))
        .expect("b64")
        .try_into()
        .expect("32 bytes");
    let key = VerifyingKey::from_bytes(&x).expect("valid key");
    let (signed, sig) = access.rsplit_once('.').expect("three parts");
    let sig: [u8; 64] = URL_SAFE_NO_PAD
        .decode(sig)
        .expect("b64")
        .try_into()
        .expect("64 bytes");
    key.verify(signed.as_bytes(), &Signature::from_bytes(&sig))
        .expect("signature verifies");
}

#[test]
fn client_credentials_authenticates_by_basic_and_by_form_fields() {
    let node = TestNode::start();
    let basic = token_ok(&node.base, WEB, &[("grant_type", "client_credentials")]);
    assert!(
        basic["refresh_token"].is_null(),
        "no refresh token for client credentials"
    );
    let (_, claims) = decode_jwt(basic["access_token"].as_str().expect("token"));
    assert_eq!(claims["sub"], "web");

    let form = http()
        .post(node.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "web"),
            ("client_secret", "web-secret"),
        ])
        .send()
        .expect("sent");
    assert_eq!(form.status(), 200);

    let both = http()
        .post(node.url("/oauth/token"))
        .basic_auth("web", Some("web-secret"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "web"),
            ("client_secret", "web-secret"),
        ])
        .send()
        .expect("sent");
    assert_error(both, 400, "invalid_request", "");
}

#[test]
fn scopes_are_least_privilege() {
    let node = TestNode::start();
    let body = alice_tokens(&node.base, Some("write read"));
    assert_eq!(body["scope"], "read write");

    let bob = token_request(
        &node.base,
        WEB,
        &[
            ("grant_type", "password"),
            ("username", "bob"),
            ("password", "bob-password"),
            ("scope", "write"),
        ],
    );
    assert_error(bob, 400, "invalid_scope", "");

    let undefined = token_request(
        &node.base,
        WEB,
        &[("grant_type", "client_credentials"), ("scope", "root")],
    );
    assert_error(undefined, 400, "invalid_scope", "");
}

#[test]
fn only_admin_clients_may_obtain_the_admin_scope() {
    let node = TestNode::start();
    let web = token_request(
        &node.base,
        WEB,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "portcullis:admin"),
        ],
    );
    assert_error(web, 400, "invalid_scope", "");
    let ops = token_ok(&node.base, OPS, &[("grant_type", "client_credentials")]);
    assert_eq!(ops["scope"], "portcullis:admin");
}

#[test]
fn wrong_password_and_unknown_user_get_the_same_answer() {
    let node = TestNode::start();
    let wrong = token_request(
        &node.base,
        WEB,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "nope"),
        ],
    );
    let wrong = assert_error(wrong, 400, "invalid_grant", "");
    let unknown = token_request(
        &node.base,
        WEB,
        &[
            ("grant_type", "password"),
            ("username", "mallory"),
            ("password", "nope"),
        ],
    );
    let unknown = assert_error(unknown, 400, "invalid_grant", "");
    assert_eq!(wrong, unknown);
}

#[test]
fn client_authentication_failures_are_invalid_client() {
    let node = TestNode::start();
    let response = token_request(
        &node.base,
        ("web", "guess"),
        &[("grant_type", "client_credentials")],
    );
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Basic realm="portcullis""#
    );
    assert_error(response, 401, "invalid_client", "");

    let anonymous = http()
        .post(node.url("/oauth/token"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .expect("sent");
    assert_error(anonymous, 401, "invalid_client", "");
}

#[test]
fn grant_type_must_be_supported_and_allowed_for_the_client() {
    let node = TestNode::start();
    let implicit = token_request(&node.base, WEB, &[("grant_type", "implicit")]);
    assert_error(implicit, 400, "unsupported_grant_type", "");
    let not_allowed = token_request(&node.base, OTHER, &[("grant_type", "client_credentials")]);
    assert_error(not_allowed, 400, "unauthorized_client", "");
    let missing = token_request(&node.base, WEB, &[("scope", "read")]);
    assert_error(missing, 400, "invalid_request", "");
}

#[test]
fn refresh_rotates_and_a_replayed_refresh_token_revokes_the_whole_family() {
    let node = TestNode::start();
    let first = alice_tokens(&node.base, Some("read write"));
    let refresh1 = first["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();

    let second = token_ok(
        &node.base,
        WEB,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh1),
        ],
    );
    let refresh2 = second["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_owned();
    assert_ne!(refresh1, refresh2);
    assert_eq!(second["scope"], "read write");
    let access2 = second["access_token"].as_str().expect("access").to_owned();
    assert_eq!(check(&node.base, &access2, &[]).status(), 200);

    let replay = token_request(
        &node.base,
        WEB,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh1),
        ],
    );
    assert_error(replay, 400, "invalid_grant", &refresh1);

    for access in [
        first["access_token"].as_str().expect("a1"),
        access2.as_str(),
    ] {
        assert_error(check(&node.base, access, &[]), 401, "invalid_token", access);
    }
    let descendant = token_request(
        &node.base,
        WEB,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh2),
        ],
    );
    assert_error(descendant, 400, "invalid_grant", &refresh2);

    let admin = admin_token(&node.base);
    let list: Value = http()
        .get(node.url("/admin/v1/revocations"))
        .bearer_auth(&admin)
        .send()
        .expect("list")
        .json()
        .expect("json");
    assert!(list["revocations"]
        .as_array()
        .expect("array")
        .iter()
        .any(|r| r["reason"] == "refresh_reuse"));
}

#[test]
fn refresh_may_narrow_scope_but_not_widen_it_and_belongs_to_its_client() {
    let node = TestNode::start();
    let pair = alice_tokens(&node.base, Some("read write"));
    let refresh = pair["refresh_token"].as_str().expect("refresh").to_owned();

    let stolen = token_request(
        &node.base,
        OTHER,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    );
    assert_error(stolen, 400, "invalid_grant", &refresh);

    let wider = token_request(
        &node.base,
        WEB,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("scope", "read portcullis:admin"),
        ],
    );
    assert_error(wider, 400, "invalid_scope", &refresh);

    let narrower = token_ok(
        &node.base,
        WEB,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("scope", "read"),
        ],
    );
    assert_eq!(narrower["scope"], "read");
    let next = narrower["refresh_token"].as_str().expect("rotated");
    let again = token_ok(
        &node.base,
        WEB,
        &[("grant_type", "refresh_token"), ("refresh_token", next)],
    );
    assert_eq!(
        again["scope"], "read write",
        "the family keeps its original scope"
    );
}

#[test]
fn revocation_endpoint_revokes_access_and_refresh_tokens_of_the_calling_client() {
    let node = TestNode::start();
    let pair = alice_tokens(&node.base, None);
    let access = pair["access_token"].as_str().expect("access");
    let refresh = pair["refresh_token"].as_str().expect("refresh");
    let revoke = |client: (&str, &str), token: &str| {
        http()
            .post(node.url("/oauth/revoke"))
            .basic_auth(client.0, Some(client.1))
            .form(&[("token", token)])
            .send()
            .expect("revoke sent")
    };

    assert_error(revoke(OTHER, access), 400, "unauthorized_client", access);
    assert_eq!(check(&node.base, access, &[]).status(), 200);

    assert_eq!(revoke(WEB, access).status(), 200);
    assert_error(check(&node.base, access, &[]), 401, "invalid_token", access);
    assert_eq!(
        revoke(WEB, "not-a-token").status(),
        200,
        "RFC 7009: invalid tokens are not an error"
    );

    assert_eq!(revoke(WEB, refresh).status(), 200);
    let refreshed = token_request(
        &node.base,
        WEB,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
    );
    assert_error(refreshed, 400, "invalid_grant", refresh);

    let unauthenticated = http()
        .post(node.url("/oauth/revoke"))
        .form(&[("token", access)])
        .send()
        .expect("sent");
    assert_error(unauthenticated, 401, "invalid_client", access);
}

#[test]
fn introspection_reports_active_tokens_and_requires_client_authentication() {
    let node = TestNode::start();
    let access = alice_tokens(&node.base, None)["access_token"]
        .as_str()
        .expect("access")
        .to_owned();
    let introspect = |token: &str| -> Value {
        http()
            .post(node.url("/oauth/introspect"))
            .basic_auth("web", Some("web-secret"))
            .form(&[("token", token)])
            .send()
            .expect("sent")
            .json()
            .expect("json")
    };
    let active = introspect(&access);
    assert_eq!(active["active"], true);
    assert_eq!(active["sub"], "alice");
    assert_eq!(active["client_id"], "web");
    assert_eq!(active["scope"], "read");
    assert_eq!(introspect("garbage"), serde_json::json!({"active": false}));

    let anonymous = http()
        .post(node.url("/oauth/introspect"))
        .form(&[("token", access.as_str())])
        .send()
        .expect("sent");
    assert_error(anonymous, 401, "invalid_client", &access);
}

#[test]
fn refresh_tokens_are_introspectable_only_by_their_client_and_only_while_unspent() {
    let node = TestNode::start();
    let refresh = alice_tokens(&node.base, None)["refresh_token"]
        .as_str()
        .expect("rt")
        .to_owned();
    let introspect = |client: (&str, &str)| -> Value {
        http()
            .post(node.url("/oauth/introspect"))
            .basic_auth(client.0, Some(client.1))
            .form(&[("token", refresh.as_str())])
            .send()
            .expect("sent")
            .json()
            .expect("json")
    };
    let own = introspect(WEB);
    assert_eq!(own["active"], true);
    assert_eq!(own["token_type"], "refresh_token");
    assert_eq!(introspect(OTHER)["active"], false);
    token_ok(
        &node.base,
        WEB,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    );
    assert_eq!(
        introspect(WEB)["active"],
        false,
        "a spent generation is no longer active"
    );
}

#[test]
fn a_client_without_the_refresh_grant_gets_no_refresh_token() {
    let node = TestNode::start();
    let body = token_ok(
        &node.base,
        ("legacy", "legacy-secret"),
        &[
            ("grant_type", "password"),
            ("username", "bob"),
            ("password", "bob-password"),
        ],
    );
    assert!(body["refresh_token"].is_null(), "{body}");
    let (_, claims) = decode_jwt(body["access_token"].as_str().expect("token"));
    assert!(claims["sid"].is_null(), "no family without a refresh token");
}

#[test]
fn discovery_documents_list_every_endpoint_and_eddsa() {
    let node = TestNode::start();
    let jwks = http()
        .get(node.url("/.well-known/jwks.json"))
        .send()
        .expect("jwks");
    assert_eq!(jwks.headers()["cache-control"], "public, max-age=300");
    let jwks: Value = jwks.json().expect("json");
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    assert_eq!(
        (key["alg"].as_str(), key["use"].as_str()),
        (Some("EdDSA"), Some("sig"))
    );
    assert!(key["kid"].is_string() && key["x"].is_string());

    let meta: Value = http()
        .get(node.url("/.well-known/oauth-authorization-server"))
        .send()
        .expect("metadata")
        .json()
        .expect("json");
    assert_eq!(meta["issuer"], "http://portcullis.test");
    for endpoint in [
        "token_endpoint",
        "jwks_uri",
        "revocation_endpoint",
        "introspection_endpoint",
    ] {
        assert!(meta[endpoint]
            .as_str()
            .is_some_and(|u| u.starts_with("http://portcullis.test/")));
    }
    let grants = meta["grant_types_supported"].to_string();
    for grant in ["password", "client_credentials", "refresh_token"] {
        assert!(grants.contains(grant), "{grants}");
    }
    assert!(meta["token_endpoint_auth_methods_supported"]
        .to_string()
        .contains("client_secret_basic"));
    assert!(meta["scopes_supported"].to_string().contains("write"));
    assert_eq!(
        meta["access_token_signing_alg_values_supported"],
        serde_json::json!(["EdDSA"])
    );
}

#[test]
fn health_readiness_and_metrics_answer() {
    let node = TestNode::start();
    alice_tokens(&node.base, None);
    assert_eq!(
        http()
            .get(node.url("/healthz"))
            .send()
            .expect("healthz")
            .status(),
        200
    );
    assert_eq!(
        http()
            .get(node.url("/readyz"))
            .send()
            .expect("readyz")
            .status(),
        200
    );
    let metrics = http()
        .get(node.url("/metrics"))
        .send()
        .expect("metrics")
        .text()
        .expect("text");
    assert!(
        metrics.contains("portcullis_tokens_issued_total{grant=\"password\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_http_request_duration_seconds_bucket"),
        "{metrics}"
    );
}

#[test]
fn a_family_cannot_be_refreshed_past_its_absolute_lifetime() {
    let node = TestNode::start();
    let mut refresh = alice_tokens(&node.base, None)["refresh_token"]
        .as_str()
        .expect("rt")
        .to_owned();
    // family_lifetime is 1 day; refresh_lifetime 1 hour: keep refreshing within the hour.
    for _ in 0..24 {
        node.clock.advance(std::time::Duration::from_secs(3590));
        let body = token_ok(
            &node.base,
            WEB,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        );
        refresh = body["refresh_token"].as_str().expect("rt").to_owned();
    }
    // 86,160 s in; the last refresh token expires with the family at 86,400 s. Ten seconds
    // later it still verifies within the 30 s leeway, but the family has ended.
    node.clock.advance(std::time::Duration::from_secs(250));
    let late = token_request(
        &node.base,
        WEB,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    );
    let body = assert_error(late, 400, "invalid_grant", &refresh);
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("maximum lifetime")),
        "{body}"
    );
}
