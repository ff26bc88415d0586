//! Discovery and operations endpoints: JWKS, authorization-server metadata, metrics,
//! liveness and readiness.

use std::sync::atomic::Ordering;

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::config::Grant;
use crate::node::Handles;

/// `GET /.well-known/jwks.json`.
pub async fn jwks(node: web::Data<Handles>) -> HttpResponse {
    let max_age = node.config.keys.jwks_max_age.as_secs();
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, format!("public, max-age={max_age}")))
        .content_type("application/jwk-set+json")
        .body(node.view.keys().jwks().to_owned())
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
pub async fn metadata(node: web::Data<Handles>) -> HttpResponse {
    let issuer = node.config.issuer.trim_end_matches('/');
    let auth_methods = ["client_secret_basic", "client_secret_post"];
    let body = serde_json::json!({
        "issuer": node.config.issuer,
        "token_endpoint": format!("{issuer}/oauth/token"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "grant_types_supported": Grant::ALL.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "scopes_supported": node.config.all_scopes(),
        "access_token_signing_alg_values_supported": ["EdDSA"],
    });
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(body)
}

/// `GET /metrics` in Prometheus text format.
pub async fn metrics(node: web::Data<Handles>) -> HttpResponse {
    node.metrics.run_upkeep();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(node.metrics.render())
}

/// `GET /healthz`: the process serves HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`: the node has recovered its state and may take traffic.
pub async fn readyz(node: web::Data<Handles>) -> HttpResponse {
    if node.ready.load(Ordering::Relaxed) {
        HttpResponse::Ok().json(serde_json::json!({ "status": "ready" }))
    } else {
        HttpResponse::ServiceUnavailable().json(serde_json::json!({ "status": "not_ready" }))
    }
}
