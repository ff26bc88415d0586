//! The anti-abuse layer over HTTP on one node, with an injected clock: budgets and their
//! headers, abuse revocation, the login-flood defence and bans, the heuristics, and the
//! admin API that shows and lifts them. Client addresses are varied with
//! `X-Forwarded-For`, which the node believes because loopback is a trusted proxy here.

mod common;

use std::time::Duration;

use common::*;
use reqwest::blocking::Response;
use serde_json::Value;

/// Loopback is the trusted proxy, so `X-Forwarded-For` names the client.
const TRUST_LOOPBACK: &str = r#"trusted_proxies = ["127.0.0.1/32"]"#;

fn start(sections: &str) -> TestNode {
    TestNode::start_with(&format!("{TRUST_LOOPBACK}\n{sections}"))
}

fn service_token(base: &str) -> String {
    let body = token_ok(base, WEB, &[("grant_type", "client_credentials")]);
    body["access_token"]
        .as_str()
        .expect("access token")
        .to_owned()
}

fn from(ip: &str) -> [(&'static str, String); 1] {
    [("x-forwarded-for", ip.to_owned())]
}

fn check_from(base: &str, token: &str, ip: &str) -> Response {
    let [(name, value)] = from(ip);
    check(base, token, &[(name, &value)])
}

fn login_from(base: &str, ip: &str, user: &str, password: &str) -> Response {
    http()
        .post(format!("{base}/oauth/token"))
        .basic_auth(WEB.0, Some(WEB.1))
        .header("x-forwarded-for", ip)
        .form(&[
            ("grant_type", "password"),
            ("username", user),
            ("password", password),
        ])
        .send()
        .expect("token request sent")
}

fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("{name} header present"))
        .to_str()
        .expect("ASCII header")
        .to_owned()
}

fn admin_get(base: &str, path: &str) -> Value {
    let token = admin_token(base);
    let response = http()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .expect("admin request sent");
    assert_eq!(response.status(), 200);
    response.json().expect("JSON")
}

fn metric(base: &str, series: &str) -> f64 {
    let text = http()
        .get(format!("{base}/metrics"))
        .send()
        .expect("metrics")
        .text()
        .expect("text");
    text.lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().expect("a number"))
}

#[test]
fn a_token_within_budget_sees_its_quota_and_over_budget_gets_429() {
    let node = start("[rate_limits]\nper_minute = 5\nabuse_factor = 100\n");
    let token = service_token(&node.base);
    for remaining in (0..5).rev() {
        let response = check(&node.base, &token, &[]);
        assert_eq!(response.status(), 200);
        assert_eq!(
            header(&response, "ratelimit-policy"),
            "\"lineage\";q=5;w=60"
        );
        let quota = header(&response, "ratelimit");
        assert!(
            quota.starts_with(&format!("\"lineage\";r={remaining};t=")),
            "{quota}"
        );
    }
    let response = check(&node.base, &token, &[]);
    assert_eq!(response.status(), 429);
    let retry: u64 = header(&response, "retry-after").parse().expect("seconds");
    assert!((1..=60).contains(&retry));
    assert!(header(&response, "ratelimit").starts_with("\"lineage\";r=0;"));
    assert_error(response, 429, "rate_limited", &token);

    // A fresh token of the same client is the same lineage: no new budget.
    let reminted = service_token(&node.base);
    assert_eq!(check(&node.base, &reminted, &[]).status(), 429);
    // Two minutes on, the window has slid past.
    node.clock.advance(Duration::from_secs(120));
    assert_eq!(check(&node.base, &reminted, &[]).status(), 200);
}

#[test]
fn refreshing_does_not_reset_a_families_budget_and_abuse_revokes_it() {
    let node = start("[rate_limits]\nper_minute = 4\nabuse_factor = 2\n");
    let pair = alice_tokens(&node.base, Some("read"));
    let access = pair["access_token"].as_str().expect("access").to_owned();
    let refresh = pair["refresh_token"].as_str().expect("refresh").to_owned();
    for _ in 0..4 {
        assert_eq!(check(&node.base, &access, &[]).status(), 200);
    }
    let renewed = token_ok(
        &node.base,
        WEB,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    );
    let renewed = renewed["access_token"].as_str().expect("access").to_owned();
    assert_eq!(check(&node.base, &renewed, &[]).status(), 429);

    // Past 2 × 4 presentations the family is revoked: 429 for the abusive request,
    // 401 (revoked) from then on, even after the window has passed.
    let statuses: Vec<u16> = (0..5)
        .map(|_| check(&node.base, &renewed, &[]).status().as_u16())
        .collect();
    assert_eq!(statuses, vec![429, 429, 429, 429, 401]);
    node.clock.advance(Duration::from_secs(180));
    assert_error(
        check(&node.base, &access, &[]),
        401,
        "invalid_token",
        &access,
    );

    let abuse = admin_get(&node.base, "/admin/v1/abuse");
    assert_eq!(abuse["revocations_by_reason"]["rate_abuse"], 1, "{abuse}");
    let decision = &abuse["recent_decisions"][0];
    assert_eq!(decision["reason"], "rate_abuse");
    assert_eq!(decision["subject"], "alice");
    assert_eq!(
        (
            decision["observed"].as_u64(),
            decision["threshold"].as_u64()
        ),
        (Some(9), Some(8))
    );
    assert_eq!(
        metric(
            &node.base,
            "portcullis_abuse_decisions_total{decision=\"rate_abuse_revoked\"}"
        ),
        1.0
    );
}

#[test]
fn a_login_flood_from_one_address_is_refused_before_hashing_and_banned() {
    let node = start("[login]\nper_address = 50\nban_after_failures = 5\n");
    let bot = "198.51.100.9";
    let statuses: Vec<u16> = (0..40)
        .map(|i| {
            login_from(&node.base, bot, &format!("guess{i}"), "wrong")
                .status()
                .as_u16()
        })
        .collect();
    assert!(statuses[..5].iter().all(|s| *s == 400), "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    // Only the five failures reached argon2 (400 comes after the password check; 429
    // before it).
    // Real users elsewhere are untouched.
    assert_eq!(
        login_from(&node.base, "192.0.2.1", "alice", "alice-password").status(),
        200
    );

    let response = login_from(&node.base, bot, "alice", "alice-password");
    let retry: u64 = header(&response, "retry-after").parse().expect("seconds");
    assert!(
        (1..=60).contains(&retry),
        "first ban is one minute: {retry}"
    );
    assert_error(response, 429, "rate_limited", "");

    let bans = admin_get(&node.base, "/admin/v1/bans");
    let ban = &bans["bans"][0];
    assert_eq!(
        (ban["address"].as_str(), ban["scope"].as_str()),
        (Some(bot), Some("login"))
    );
    assert_eq!(
        (ban["reason"].as_str(), ban["offence"].as_u64()),
        (Some("login_flood"), Some(1))
    );

    // The ban ends on its own; the next one lasts ten minutes.
    node.clock.advance(Duration::from_secs(61));
    for _ in 0..5 {
        login_from(&node.base, bot, "alice", "wrong");
    }
    let retry: u64 = header(&login_from(&node.base, bot, "alice", "x"), "retry-after")
        .parse()
        .expect("seconds");
    assert!(
        (540..=600).contains(&retry),
        "second ban is ten minutes: {retry}"
    );

    // An admin lifts it everywhere.
    let lifted = http()
        .delete(node.url(&format!("/admin/v1/bans/{bot}")))
        .bearer_auth(admin_token(&node.base))
        .send()
        .expect("lift sent");
    assert_eq!(lifted.status(), 200);
    assert_eq!(
        login_from(&node.base, bot, "alice", "alice-password").status(),
        200
    );
    assert_eq!(
        admin_get(&node.base, "/admin/v1/bans")["bans"],
        serde_json::json!([])
    );
}

#[test]
fn an_attacked_user_still_logs_in_from_a_network_it_used_before() {
    let node = start("[login]\nper_user = 10\nban_after_failures = 1000\n");
    assert_eq!(
        login_from(&node.base, "192.0.2.10", "alice", "alice-password").status(),
        200
    );
    // A botnet: each address a few guesses at alice.
    for i in 0..60 {
        let bot = format!("203.0.113.{}", i + 1);
        login_from(&node.base, &bot, "alice", "guess");
    }
    let refused = metric(
        &node.base,
        "portcullis_logins_total{outcome=\"user_limit\"}",
    );
    // Her own first login from a new network counted as one of the ten.
    assert_eq!(refused, 51.0, "all but nine guesses stopped before hashing");
    // From her own network, another address of it, she still gets in.
    assert_eq!(
        login_from(&node.base, "192.0.2.77", "alice", "alice-password").status(),
        200
    );
    // From a network she never used, the attacked name is held back for now ...
    assert_eq!(
        login_from(&node.base, "198.51.100.1", "alice", "alice-password").status(),
        429
    );
    // ... and nobody else is.
    assert_eq!(
        login_from(&node.base, "198.51.100.1", "bob", "bob-password").status(),
        200
    );
    // Unknown users are counted the same way, without revealing that they are unknown.
    let unknown = login_from(&node.base, "198.51.100.2", "mallory", "x");
    let wrong = login_from(&node.base, "198.51.100.2", "bob", "x");
    assert_eq!(
        (unknown.status().as_u16(), wrong.status().as_u16()),
        (400, 400)
    );
    let (unknown, wrong): (Value, Value) =
        (unknown.json().expect("JSON"), wrong.json().expect("JSON"));
    assert_eq!(unknown, wrong);
}

#[test]
fn an_address_presenting_bad_tokens_is_denied_without_verifying() {
    let node = start("[heuristics]\nbad_tokens = 5\nbad_token_denial = \"2m\"\n");
    let good = service_token(&node.base);
    let forged = format!("{}x", &good[..good.len() - 1]);
    let attacker = "198.51.100.66";
    for _ in 0..5 {
        assert_eq!(check_from(&node.base, &forged, attacker).status(), 401);
    }
    // Denied now, even with a valid token, and counted as such.
    let denied = check_from(&node.base, &good, attacker);
    let body = assert_error(denied, 401, "invalid_token", &good);
    assert!(body["error_description"]
        .as_str()
        .is_some_and(|d| d.contains("address")));
    // (Metrics are process-wide and other tests deny addresses too.)
    assert!(
        metric(
            &node.base,
            "portcullis_verifications_total{outcome=\"address_denied\"}"
        ) >= 1.0
    );
    // Others are unaffected, and the attacker may still log in for fresh tokens.
    assert_eq!(check_from(&node.base, &good, "192.0.2.5").status(), 200);
    assert_eq!(
        login_from(&node.base, attacker, "alice", "alice-password").status(),
        200
    );
    let bans = admin_get(&node.base, "/admin/v1/bans");
    assert_eq!(bans["bans"][0]["scope"], "gate");
    // The denial expires on its own.
    node.clock.advance(Duration::from_secs(121));
    assert_eq!(check_from(&node.base, &good, attacker).status(), 200);
}

#[test]
fn a_lineage_used_from_too_many_networks_is_revoked_as_stolen() {
    let node = start("[heuristics]\nspread_networks = 3\n");
    let token = service_token(&node.base);
    // Many addresses in one /24 are one network.
    for host in 1..20 {
        assert_eq!(
            check_from(&node.base, &token, &format!("10.1.0.{host}")).status(),
            200
        );
    }
    assert_eq!(check_from(&node.base, &token, "10.2.0.1").status(), 200);
    assert_eq!(check_from(&node.base, &token, "10.3.0.1").status(), 200);
    assert_eq!(check_from(&node.base, &token, "10.4.0.1").status(), 401);
    assert_eq!(check_from(&node.base, &token, "10.1.0.1").status(), 401);
    let abuse = admin_get(&node.base, "/admin/v1/abuse");
    assert_eq!(abuse["revocations_by_reason"]["ip_spread"], 1, "{abuse}");
}

#[test]
fn token_issuance_is_capped_per_address() {
    let node = start("[heuristics]\nissuance_per_address = 3\n");
    for _ in 0..3 {
        service_token(&node.base);
    }
    let response = token_request(&node.base, WEB, &[("grant_type", "client_credentials")]);
    assert_error(response, 429, "rate_limited", "");
    let response = http()
        .post(node.url("/oauth/token"))
        .basic_auth(WEB.0, Some(WEB.1))
        .header("x-forwarded-for", "192.0.2.200")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .expect("sent");
    assert_eq!(response.status(), 200);
}

#[test]
fn an_admin_ban_holds_on_the_gate_and_for_logins_until_lifted() {
    let node = start("");
    let admin = admin_token(&node.base);
    let token = service_token(&node.base);
    let banned = http()
        .post(node.url("/admin/v1/bans"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({ "address": "2001:db8:5:6::1", "duration": "10m" }))
        .send()
        .expect("ban sent");
    assert_eq!(banned.status(), 201);
    // The whole /64 is banned.
    assert_eq!(
        check_from(&node.base, &token, "2001:db8:5:6::99").status(),
        401
    );
    assert_eq!(
        login_from(
            &node.base,
            "2001:db8:5:6:ffff::1",
            "alice",
            "alice-password"
        )
        .status(),
        429
    );
    assert_eq!(
        check_from(&node.base, &token, "2001:db8:5:7::1").status(),
        200
    );
    let bad = http()
        .post(node.url("/admin/v1/bans"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({ "address": "not-an-ip", "duration": "10m" }))
        .send()
        .expect("sent");
    assert_error(bad, 400, "invalid_request", "");
    let lifted = http()
        .delete(node.url("/admin/v1/bans/2001:db8:5:6::/64"))
        .bearer_auth(&admin)
        .send()
        .expect("lift sent");
    assert_eq!(lifted.status(), 200);
    assert_eq!(
        check_from(&node.base, &token, "2001:db8:5:6::99").status(),
        200
    );
    let again = http()
        .delete(node.url("/admin/v1/bans/2001:db8:5:6::/64"))
        .bearer_auth(&admin)
        .send()
        .expect("lift sent");
    assert_error(again, 404, "not_found", "");
}
