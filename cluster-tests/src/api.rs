//! Blocking HTTP helpers for the endpoints the scenarios use. Each takes a node's base
//! URL and panics, with the response body, when the node answers unexpectedly: a
//! scenario asserts outcomes, not transport details.

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::blocking::{Client, Response};
use serde_json::Value;

use crate::config::{ALICE, BOB, OPS, WEB};

/// A request that takes longer than this is a failure, not something to wait for.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The shared client: no redirects, a bounded timeout.
pub fn client() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the HTTP client builds")
    })
}

/// A client whose connections come from `source`, a loopback address of the caller's
/// choosing (every 127.0.0.0/8 address is local on Linux): how scenarios play many
/// client networks from one host.
pub fn client_from(source: std::net::Ipv4Addr) -> Client {
    Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .local_address(std::net::IpAddr::V4(source))
        .build()
        .expect("the HTTP client builds")
}

/// The status of a password login for `user` from `source`, through the `web` client.
pub fn login_status(base: &str, source: &Client, user: (&str, &str)) -> u16 {
    let form = [
        ("grant_type", "password"),
        ("username", user.0),
        ("password", user.1),
    ];
    source
        .post(format!("{base}/oauth/token"))
        .basic_auth(WEB.0, Some(WEB.1))
        .form(&form)
        .send()
        .unwrap_or_else(|e| panic!("login at {base} failed: {e}"))
        .status()
        .as_u16()
}

/// The status `GET /v1/check` answers for this token, sent by `source`.
pub fn check_with(base: &str, source: &Client, token: &str) -> u16 {
    source
        .get(format!("{base}/v1/check"))
        .bearer_auth(token)
        .send()
        .unwrap_or_else(|e| panic!("check at {base} failed: {e}"))
        .status()
        .as_u16()
}

/// `GET` an admin path as JSON.
pub fn admin_get(base: &str, admin: &str, path: &str) -> Value {
    let response = client()
        .get(format!("{base}{path}"))
        .bearer_auth(admin)
        .send()
        .unwrap_or_else(|e| panic!("GET {path} at {base} failed: {e}"));
    assert_eq!(response.status(), 200, "GET {path} at {base}");
    json(response)
}

/// An access token and, for grants that have one, its refresh token.
#[derive(Clone)]
pub struct Tokens {
    /// The access token.
    pub access: String,
    /// The refresh token, if the grant issues one.
    pub refresh: Option<String>,
}

impl Tokens {
    /// The refresh token, which this grant must have issued.
    pub fn refresh(&self) -> &str {
        self.refresh
            .as_deref()
            .expect("the grant issued a refresh token")
    }
}

/// Shows which key signed the tokens, never the tokens themselves.
impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("kid", &kid_of(&self.access))
            .field("refresh", &self.refresh.is_some())
            .finish()
    }
}

/// An OAuth error answer from the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// HTTP status.
    pub status: u16,
    /// The `error` code.
    pub error: String,
}

/// POSTs a token request with HTTP Basic client authentication.
pub fn token_request(
    base: &str,
    client_auth: (&str, &str),
    form: &[(&str, &str)],
) -> Result<Tokens, OAuthError> {
    let response = client()
        .post(format!("{base}/oauth/token"))
        .basic_auth(client_auth.0, Some(client_auth.1))
        .form(form)
        .send()
        .unwrap_or_else(|e| panic!("token request to {base} failed: {e}"));
    let status = response.status().as_u16();
    let body = json(response);
    if status != 200 {
        let error = body["error"].as_str().unwrap_or_default().to_owned();
        return Err(OAuthError { status, error });
    }
    let access = body["access_token"].as_str().expect("an access token");
    Ok(Tokens {
        access: access.to_owned(),
        refresh: body["refresh_token"].as_str().map(str::to_owned),
    })
}

/// A session for `user` through the `web` client: access and refresh tokens.
pub fn login(base: &str, user: (&str, &str)) -> Tokens {
    let form = [
        ("grant_type", "password"),
        ("username", user.0),
        ("password", user.1),
    ];
    token_request(base, WEB, &form).unwrap_or_else(|e| panic!("login at {base}: {e:?}"))
}

/// A session for Alice.
pub fn alice(base: &str) -> Tokens {
    login(base, ALICE)
}

/// A session for Bob.
pub fn bob(base: &str) -> Tokens {
    login(base, BOB)
}

/// A cheap access token for the `web` client itself (no password hashing involved).
pub fn client_token(base: &str) -> String {
    let form = [("grant_type", "client_credentials")];
    let tokens = token_request(base, WEB, &form);
    tokens
        .unwrap_or_else(|e| panic!("client_credentials at {base}: {e:?}"))
        .access
}

/// An admin access token from the `ops` client.
pub fn admin_token(base: &str) -> String {
    let form = [("grant_type", "client_credentials")];
    let tokens = token_request(base, OPS, &form);
    tokens
        .unwrap_or_else(|e| panic!("admin token at {base}: {e:?}"))
        .access
}

/// Spends `refresh_token` for a new pair.
pub fn refresh(base: &str, refresh_token: &str) -> Result<Tokens, OAuthError> {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    token_request(base, WEB, &form)
}

/// The status `GET /v1/check` answers for this bearer token.
pub fn check(base: &str, token: &str) -> u16 {
    let response = client()
        .get(format!("{base}/v1/check"))
        .bearer_auth(token)
        .send()
        .unwrap_or_else(|e| panic!("check at {base} failed: {e}"));
    response.status().as_u16()
}

/// Whether the node accepts the token.
pub fn accepts(base: &str, token: &str) -> bool {
    check(base, token) == 200
}

/// Whether the node rejects the token as invalid (401).
pub fn rejects(base: &str, token: &str) -> bool {
    check(base, token) == 401
}

/// Revokes a token the `web` client holds (RFC 7009), on this node.
pub fn revoke(base: &str, token: &str) {
    let response = client()
        .post(format!("{base}/oauth/revoke"))
        .basic_auth(WEB.0, Some(WEB.1))
        .form(&[("token", token)])
        .send()
        .unwrap_or_else(|e| panic!("revoke at {base} failed: {e}"));
    expect_status(response, 200, "revoke");
}

/// `POST /admin/v1/revocations` with `body` (e.g. `{"kind": "subject", …}`).
pub fn admin_revoke(base: &str, admin: &str, body: &Value) -> Value {
    let response = client()
        .post(format!("{base}/admin/v1/revocations"))
        .bearer_auth(admin)
        .json(body)
        .send()
        .unwrap_or_else(|e| panic!("admin revoke at {base} failed: {e}"));
    expect_status(response, 201, "admin revoke")
}

/// The revocations the node holds, from `GET /admin/v1/revocations`.
pub fn revocations(base: &str, admin: &str) -> Vec<Value> {
    let response = client()
        .get(format!("{base}/admin/v1/revocations"))
        .bearer_auth(admin)
        .send()
        .unwrap_or_else(|e| panic!("listing revocations at {base} failed: {e}"));
    let body = expect_status(response, 200, "list revocations");
    body["revocations"].as_array().cloned().unwrap_or_default()
}

/// `GET /admin/v1/cluster`: the node's view of the membership.
pub fn cluster_view(base: &str, admin: &str) -> Value {
    let response = client()
        .get(format!("{base}/admin/v1/cluster"))
        .bearer_auth(admin)
        .send()
        .unwrap_or_else(|e| panic!("cluster view at {base} failed: {e}"));
    expect_status(response, 200, "cluster view")
}

/// The generation of `node_id` if the node at `base` sees it live.
pub fn live_generation(base: &str, admin: &str, node_id: &str) -> Option<u64> {
    let view = cluster_view(base, admin);
    let members = view["members"].as_array().cloned().unwrap_or_default();
    members
        .iter()
        .find(|m| m["node_id"] == node_id && m["state"] == "live")
        .and_then(|m| m["generation"].as_u64())
}

/// `POST /admin/v1/keys/rotate`; returns the new key's id.
pub fn rotate_key(base: &str, admin: &str) -> String {
    let response = client()
        .post(format!("{base}/admin/v1/keys/rotate"))
        .bearer_auth(admin)
        .send()
        .unwrap_or_else(|e| panic!("rotate at {base} failed: {e}"));
    let body = expect_status(response, 201, "rotate");
    body["kid"].as_str().expect("the new key's kid").to_owned()
}

/// The node's JWKS keys, sorted by `kid`.
pub fn jwks(base: &str) -> Vec<Value> {
    let response = client()
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .unwrap_or_else(|e| panic!("JWKS at {base} failed: {e}"));
    let body = expect_status(response, 200, "JWKS");
    let mut keys = body["keys"].as_array().cloned().unwrap_or_default();
    keys.sort_by(|a, b| a["kid"].as_str().cmp(&b["kid"].as_str()));
    keys
}

/// The key ids in the node's JWKS.
pub fn jwks_kids(base: &str) -> BTreeSet<String> {
    jwks(base)
        .iter()
        .filter_map(|key| key["kid"].as_str().map(str::to_owned))
        .collect()
}

/// The `kid` in a compact JWS header.
pub fn kid_of(token: &str) -> String {
    let header = jws_part(token, 0);
    header["kid"]
        .as_str()
        .expect("the header names its key")
        .to_owned()
}

/// The claims of a compact JWS (not verified: for naming what a test revokes).
pub fn claims(token: &str) -> Value {
    jws_part(token, 1)
}

fn jws_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("a JWS has three parts");
    let part = URL_SAFE_NO_PAD
        .decode(part)
        .expect("JWS parts are base64url");
    serde_json::from_slice(&part).expect("JWS header and claims are JSON")
}

/// The key the node signs with now, read from a fresh token's header.
pub fn signing_kid(base: &str) -> String {
    kid_of(&client_token(base))
}

/// Whether `/readyz` answers 200; a node that cannot be reached is not ready.
pub fn ready(base: &str) -> bool {
    let response = client().get(format!("{base}/readyz")).send();
    response.is_ok_and(|r| r.status() == 200)
}

/// The node's `/metrics` text.
pub fn metrics(base: &str) -> String {
    let response = client()
        .get(format!("{base}/metrics"))
        .send()
        .unwrap_or_else(|e| panic!("metrics at {base} failed: {e}"));
    assert_eq!(response.status(), 200, "metrics at {base}");
    response.text().expect("the metrics body is text")
}

/// The sum of the samples of `name` whose labels include all of `labels`; 0 when there
/// is none (a counter never incremented is not exported).
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let has = |(k, v): &(&str, &str)| {
                series_labels
                    .split(',')
                    .any(|pair| pair == format!("{k}=\"{v}\""))
            };
            (series_name == name && labels.iter().all(has)).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

fn json(response: Response) -> Value {
    let text = response.text().expect("a response body");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("a JSON body, got: {text}"))
}

fn expect_status(response: Response, status: u16, what: &str) -> Value {
    let actual = response.status().as_u16();
    let text = response.text().expect("a response body");
    assert_eq!(actual, status, "{what} answered {actual}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::metric;

    #[test]
    fn metric_sums_the_series_that_carry_the_labels() {
        let text = "# HELP x a counter\n\
                    x{reason=\"stale\"} 2\n\
                    x{reason=\"bad_mac\",side=\"in\"} 3\n\
                    x{reason=\"bad_mac\",side=\"out\"} 4\n\
                    y 7\n";
        assert_eq!(metric(text, "x", &[("reason", "bad_mac")]), 7.0);
        assert_eq!(metric(text, "x", &[("reason", "stale")]), 2.0);
        assert_eq!(metric(text, "x", &[("reason", "replayed")]), 0.0);
        assert_eq!(metric(text, "y", &[]), 7.0);
    }
}
