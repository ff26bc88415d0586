//! The HTTP surface: routes, body limits, JSON error bodies and per-endpoint latency.
//!
//! | route | module |
//! |---|---|
//! | `POST /oauth/token`, `/oauth/revoke`, `/oauth/introspect` | [`oauth`] |
//! | `/v1/check[/{path}]`, any method | [`gate`] |
//! | `/admin/v1/…` | [`admin`]; bans and abuse in [`admin_abuse`] |
//! | `/.well-known/…`, `/metrics`, `/healthz`, `/readyz` | [`ops`] |
//! | `GET /cluster/v1/snapshot` (peers only, sealed) | [`peer`] |
//!
//! Every route is one line of `ROUTES`; [`routes`] lists them, so that a test can hold
//! `docs/openapi.yaml` and `docs/api.md` to what is actually served.

mod admin;
mod admin_abuse;
pub mod error;
mod form;
pub mod gate;
mod oauth;
mod ops;
mod path;
mod peer;
mod shield;

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::{BoxBody, EitherBody};
use actix_web::dev::{Server, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{web, App, HttpServer, Route};
use futures_util::FutureExt;
use tracing::Instrument;

use self::error::ApiError;
use crate::cluster::snapshot;
use crate::metrics as m;
use crate::node::{Handles, StartError};

/// Largest body the admin API accepts.
const MAX_JSON_BYTES: usize = 16 * 1024;

/// Builds the server on a bound listener (not yet polled).
pub fn serve(node: Arc<Handles>, listener: std::net::TcpListener) -> Result<Server, StartError> {
    let addr = node.config.listen;
    let workers = match node.config.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let data = web::Data::from(node);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(MAX_JSON_BYTES))
            .wrap(error_bodies())
            .wrap_fn(|req, srv| {
                use actix_web::dev::Service;
                let endpoint = req.match_pattern().unwrap_or_else(|| "unmatched".into());
                let span = tracing::debug_span!("request", method = %req.method(), %endpoint);
                let started = Instant::now();
                srv.call(req).instrument(span).map(move |res| {
                    let status = res.as_ref().map_or(500, |r| r.status().as_u16());
                    let class = status_class(status);
                    metrics::histogram!(m::HTTP_DURATION, "endpoint" => endpoint, "status" => class)
                        .record(started.elapsed().as_secs_f64());
                    res
                })
            })
            .configure(register)
    })
    .workers(workers)
    .shutdown_timeout(10)
    // SIGTERM and SIGINT are handled by `crate::shutdown`, which leaves the cluster after
    // the drain; actix's own handlers would stop the whole system first.
    .disable_signals()
    .listen(listener)
    .map_err(|source| StartError::Bind { addr, source })?;
    Ok(server.run())
}

/// Attaches a handler to a route whose method guard is already set.
type Attach = fn(Route) -> Route;

const GET: Option<Method> = Some(Method::GET);
const POST: Option<Method> = Some(Method::POST);
const DELETE: Option<Method> = Some(Method::DELETE);
/// The route answers every method.
const ANY: Option<Method> = None;

/// Every route the node serves: method, actix path pattern and handler. The one list
/// both [`register`] and [`routes`] read, so the documented API can be checked against
/// what is served. Routes sharing a path become one resource.
#[rustfmt::skip]
const ROUTES: &[(Option<Method>, &str, Attach)] = &[
    (POST,   "/oauth/token",                            |r| r.to(oauth::token)),
    (POST,   "/oauth/revoke",                           |r| r.to(oauth::revoke)),
    (POST,   "/oauth/introspect",                       |r| r.to(oauth::introspect)),
    (ANY,    "/v1/check",                               |r| r.to(gate::check)),
    (ANY,    "/v1/check/{path:.*}",                     |r| r.to(gate::check)),
    (GET,    "/.well-known/jwks.json",                  |r| r.to(ops::jwks)),
    (GET,    "/.well-known/oauth-authorization-server", |r| r.to(ops::metadata)),
    (GET,    "/metrics",                                |r| r.to(ops::metrics)),
    (GET,    "/healthz",                                |r| r.to(ops::healthz)),
    (GET,    "/readyz",                                 |r| r.to(ops::readyz)),
    (GET,    snapshot::PATH,                            |r| r.to(peer::snapshot)),
    (POST,   "/admin/v1/revocations",                   |r| r.to(admin::revoke)),
    (GET,    "/admin/v1/revocations",                   |r| r.to(admin::list_revocations)),
    (GET,    "/admin/v1/keys",                          |r| r.to(admin::keys)),
    (POST,   "/admin/v1/keys/rotate",                   |r| r.to(admin::rotate)),
    (GET,    "/admin/v1/cluster",                       |r| r.to(admin::cluster)),
    (GET,    "/admin/v1/bans",                          |r| r.to(admin_abuse::list_bans)),
    (POST,   "/admin/v1/bans",                          |r| r.to(admin_abuse::ban)),
    (DELETE, "/admin/v1/bans/{address:.+}",             |r| r.to(admin_abuse::lift)),
    (GET,    "/admin/v1/abuse",                         |r| r.to(admin_abuse::abuse)),
    (DELETE, "/admin/v1/abuse/budgets/{kind}/{id}",     |r| r.to(admin_abuse::clear_budget)),
];

/// A route the node serves, as [`routes`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedRoute {
    /// The method it answers; `None` for a route that answers every method.
    pub method: Option<Method>,
    /// The actix path pattern, e.g. `/admin/v1/bans/{address:.+}`.
    pub pattern: &'static str,
}

/// Every route the node serves, in registration order.
pub fn routes() -> Vec<ServedRoute> {
    ROUTES
        .iter()
        .map(|(method, pattern, _)| ServedRoute {
            method: method.clone(),
            pattern,
        })
        .collect()
}

/// Registers [`ROUTES`], one resource per path so that each answers all its methods.
fn register(cfg: &mut web::ServiceConfig) {
    for (i, (_, path, _)) in ROUTES.iter().enumerate() {
        if ROUTES[..i].iter().any(|(_, p, _)| p == path) {
            continue;
        }
        let mut resource = endpoint(path);
        for (method, _, attach) in ROUTES[i..].iter().filter(|(_, p, _)| p == path) {
            let route = match method {
                Some(method) => web::route().method(method.clone()),
                None => web::route(),
            };
            resource = resource.route(attach(route));
        }
        cfg.service(resource);
    }
}

/// A resource that answers methods it does not route with a JSON 405.
fn endpoint(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(|| async {
        Err::<actix_web::HttpResponse, _>(ApiError::bad_request(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this endpoint does not accept that method",
        ))
    }))
}

fn status_class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Responses the framework produces on its own (404, 405, 413 …) get JSON bodies too.
fn error_bodies() -> ErrorHandlers<BoxBody> {
    let mut handlers = ErrorHandlers::new();
    for (status, code, text) in [
        (StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed here",
        ),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "request body too large",
        ),
        (
            StatusCode::URI_TOO_LONG,
            "invalid_request",
            "request URI too long",
        ),
        (
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "malformed request",
        ),
    ] {
        handlers = handlers.handler(status, move |res| json_error(res, code, text));
    }
    handlers
}

fn json_error(
    res: ServiceResponse<BoxBody>,
    code: &'static str,
    text: &'static str,
) -> actix_web::Result<ErrorHandlerResponse<BoxBody>> {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let body = serde_json::json!({ "error": code, "error_description": text }).to_string();
    let (req, mut res) = res.into_parts();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let res = res.set_body(body).map_into_boxed_body();
    let res: ServiceResponse<EitherBody<BoxBody>> =
        ServiceResponse::new(req, res).map_into_right_body();
    Ok(ErrorHandlerResponse::Response(res))
}

#[cfg(test)]
mod tests {
    use super::routes;

    #[test]
    fn no_route_shadows_another() {
        let routes = routes();
        for (i, route) in routes.iter().enumerate() {
            for earlier in &routes[..i] {
                let same_path = earlier.pattern == route.pattern;
                let overlap = earlier.method.is_none()
                    || route.method.is_none()
                    || earlier.method == route.method;
                assert!(
                    !(same_path && overlap),
                    "{route:?} is shadowed by {earlier:?}"
                );
            }
        }
    }
}
