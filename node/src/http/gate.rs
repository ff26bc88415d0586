//! `GET /v1/check`: the forward-auth gate for nginx `auth_request`, Traefik
//! ForwardAuth and Envoy `ext_authz`.
//!
//! The original request is described by `X-Forwarded-Method` and `X-Forwarded-Uri`
//! (or, for Envoy's path-prefix mode, by this request's own method and the path after
//! `/v1/check`). The required scopes are the union of `?scope=` and the route rule that
//! matches the original request.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use actix_web::http::header::{self, HeaderMap};
use actix_web::{web, HttpRequest, HttpResponse};

use super::error::{rate_limit_headers, ApiError, BearerError};
use super::path::normalize;
use super::shield;
use crate::config::{Config, RouteRule};
use crate::metrics as m;
use crate::node::Handles;
use crate::tokens::MAX_TOKEN_BYTES;
use crate::verifier::{AccessToken, Rejection};

/// Longest `Authorization` header considered: `Bearer ` plus the token limit.
const MAX_AUTHORIZATION: usize = MAX_TOKEN_BYTES + 16;

/// `GET /v1/check[/{path}]`.
pub async fn check(req: HttpRequest, node: web::Data<Handles>) -> Result<HttpResponse, ApiError> {
    let outcome = check_inner(&req, &node).await;
    let label = match &outcome {
        Ok(_) => "valid",
        Err(ApiError::Bearer(BearerError::Invalid(r))) => r.label(),
        Err(ApiError::Bearer(BearerError::InsufficientScope(_))) => "insufficient_scope",
        Err(ApiError::Limited { .. }) => "rate_limited",
        Err(_) => "bad_request",
    };
    metrics::counter!(m::VERIFICATIONS, "outcome" => label).increment(1);
    outcome
}

async fn check_inner(req: &HttpRequest, node: &Handles) -> Result<HttpResponse, ApiError> {
    let client_ip = client_ip(req, &node.config);
    tracing::debug!(client.ip = ?client_ip, "forward-auth check");
    shield::gate_denied(node, client_ip)?;
    let verified = match verify(req, node).await {
        Ok(verified) => verified,
        Err(rejection) => {
            shield::bad_token(node, client_ip, rejection).await;
            return Err(rejection.into());
        }
    };
    let quota = shield::charge(node, &verified, client_ip).await?;

    let required = required_scopes(req, &node.config)?;
    let missing: Vec<&str> = required
        .iter()
        .map(String::as_str)
        .filter(|s| !verified.has_scope(s))
        .collect();
    if !missing.is_empty() {
        let needed = required
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        return Err(ApiError::Bearer(BearerError::InsufficientScope(needed)));
    }
    let mut response = HttpResponse::Ok();
    response
        .insert_header(("X-Auth-Subject", verified.subject.as_str()))
        .insert_header(("X-Auth-Client", verified.client_id.as_str()))
        .insert_header(("X-Auth-Scope", verified.scope.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    for (name, value) in quota.iter().flat_map(rate_limit_headers) {
        response.insert_header((name, value));
    }
    Ok(response.finish())
}

async fn verify(req: &HttpRequest, node: &Handles) -> Result<Arc<AccessToken>, Rejection> {
    let token = bearer_token(req.headers())?;
    node.view.verify_access_batched(token).await
}

/// The token from `Authorization: Bearer`, checked for size before anything else.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, Rejection> {
    let mut values = headers.get_all(header::AUTHORIZATION);
    let Some(value) = values.next() else {
        return Err(Rejection::Missing);
    };
    if values.next().is_some() {
        return Err(Rejection::Malformed);
    }
    if value.len() > MAX_AUTHORIZATION {
        return Err(Rejection::Oversized);
    }
    let text = value.to_str().map_err(|_| Rejection::Malformed)?;
    let (scheme, token) = text.split_once(' ').ok_or(Rejection::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Rejection::Missing);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(Rejection::Missing);
    }
    Ok(token)
}

fn required_scopes(req: &HttpRequest, config: &Config) -> Result<BTreeSet<String>, ApiError> {
    let mut required = BTreeSet::new();
    for (name, value) in form_urlencoded::parse(req.query_string().as_bytes()) {
        if name == "scope" {
            required.extend(value.split(' ').filter(|s| !s.is_empty()).map(String::from));
        }
    }
    let headers = req.headers();
    let method = header_str(headers, "x-forwarded-method").unwrap_or(req.method().as_str());
    let uri = match header_str(headers, "x-forwarded-uri") {
        Some(uri) => uri.to_owned(),
        None => req
            .match_info()
            .get("path")
            .map(|p| format!("/{p}"))
            .unwrap_or_default(),
    };
    if !uri.is_empty() {
        let path = uri.split(['?', '#']).next().unwrap_or_default();
        let path = normalize(path).ok_or_else(|| {
            ApiError::bad_request(
                actix_web::http::StatusCode::BAD_REQUEST,
                "invalid_request",
                "the forwarded URI is not a valid path",
            )
        })?;
        if let Some(rule) = matching_rule(&config.routes, method, &path) {
            required.extend(rule.scopes.iter().cloned());
        }
    }
    Ok(required)
}

/// The rule with the longest prefix matching `path` on a segment boundary.
pub fn matching_rule<'r>(
    rules: &'r [RouteRule],
    method: &str,
    path: &str,
) -> Option<&'r RouteRule> {
    rules
        .iter()
        .filter(|r| {
            r.method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
        })
        .filter(|r| prefix_matches(&r.prefix, path))
        .max_by_key(|r| r.prefix.len())
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'))
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

/// The client address: the socket peer, or, when the peer is a trusted proxy, the
/// right-most untrusted address in `X-Forwarded-For`.
pub fn client_ip(req: &HttpRequest, config: &Config) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let trusted = |ip: &IpAddr| config.trusted_proxies.iter().any(|net| net.contains(ip));
    if !trusted(&peer) {
        return Some(peer);
    }
    let mut chain: Vec<IpAddr> = Vec::new();
    for value in req.headers().get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else {
            return Some(peer);
        };
        for part in text.split(',') {
            match part.trim().parse() {
                Ok(ip) => chain.push(ip),
                Err(_) => return Some(peer),
            }
        }
    }
    Some(
        chain
            .into_iter()
            .rev()
            .find(|ip| !trusted(ip))
            .unwrap_or(peer),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(method: Option<&str>, prefix: &str, scope: &str) -> RouteRule {
        RouteRule {
            method: method.map(String::from),
            prefix: prefix.into(),
            scopes: [scope.to_string()].into_iter().collect(),
        }
    }

    fn config_trusting(proxies: &[&str]) -> Config {
        let mut config = Config::from_table(
            toml::from_str("issuer = \"http://x\"\naudiences = [\"a\"]\ndata_dir = \"/d\"")
                .expect("valid toml"),
            crate::config::Mode::Production,
            std::iter::empty(),
        )
        .expect("valid config");
        config.trusted_proxies = proxies.iter().map(|p| p.parse().expect("cidr")).collect();
        config
    }

    fn ip_of(peer: &str, xff: Option<&str>, config: &Config) -> Option<IpAddr> {
        let mut req =
            actix_web::test::TestRequest::default().peer_addr(peer.parse().expect("addr"));
        if let Some(xff) = xff {
            req = req.insert_header(("x-forwarded-for", xff));
        }
        client_ip(&req.to_http_request(), config)
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let config = config_trusting(&["10.0.0.0/8"]);
        let ip = |s: &str| Some(s.parse::<IpAddr>().expect("ip"));
        assert_eq!(
            ip_of("203.0.113.9:1", Some("1.2.3.4"), &config),
            ip("203.0.113.9")
        );
        assert_eq!(ip_of("10.0.0.2:1", Some("1.2.3.4"), &config), ip("1.2.3.4"));
        assert_eq!(
            ip_of("10.0.0.2:1", Some("6.6.6.6, 1.2.3.4, 10.0.0.7"), &config),
            ip("1.2.3.4")
        );
        assert_eq!(
            ip_of("10.0.0.2:1", Some("garbage"), &config),
            ip("10.0.0.2")
        );
        assert_eq!(ip_of("10.0.0.2:1", None, &config), ip("10.0.0.2"));
    }

    #[test]
    fn longest_prefix_on_a_segment_boundary_wins() {
        let rules = [
            rule(None, "/api", "api"),
            rule(Some("POST"), "/api/orders", "orders:write"),
        ];
        let scope = |m: &str, p: &str| {
            matching_rule(&rules, m, p).map(|r| r.scopes.iter().next().cloned().unwrap_or_default())
        };
        assert_eq!(scope("POST", "/api/orders/7"), Some("orders:write".into()));
        assert_eq!(scope("GET", "/api/orders/7"), Some("api".into()));
        assert_eq!(scope("POST", "/api/ordersx"), Some("api".into()));
        assert_eq!(scope("GET", "/apix"), None);
    }
}
