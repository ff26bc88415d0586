//! The HTTP surface: routes, body limits, JSON error bodies and per-endpoint latency.
//!
//! | route | module |
//! |---|---|
//! | `POST /oauth/token`, `/oauth/revoke`, `/oauth/introspect` | [`oauth`] |
//! | `GET /v1/check[/{path}]` | [`gate`] |
//! | `/admin/v1/…` | [`admin`]; bans and abuse in [`admin_abuse`] |
//! | `/.well-known/…`, `/metrics`, `/healthz`, `/readyz` | [`ops`] |
//! | `GET /cluster/v1/snapshot` (peers only, sealed) | [`peer`] |

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
use actix_web::http::StatusCode;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{web, App, HttpServer};
use futures_util::FutureExt;
use tracing::Instrument;

use self::error::ApiError;
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
            .configure(routes)
    })
    .workers(workers)
    .shutdown_timeout(10)
    .listen(listener)
    .map_err(|source| StartError::Bind { addr, source })?;
    Ok(server.run())
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(endpoint("/oauth/token").route(web::post().to(oauth::token)))
        .service(endpoint("/oauth/revoke").route(web::post().to(oauth::revoke)))
        .service(endpoint("/oauth/introspect").route(web::post().to(oauth::introspect)))
        .service(endpoint("/v1/check").route(web::route().to(gate::check)))
        .service(endpoint("/v1/check/{path:.*}").route(web::route().to(gate::check)))
        .service(endpoint("/.well-known/jwks.json").route(web::get().to(ops::jwks)))
        .service(
            endpoint("/.well-known/oauth-authorization-server").route(web::get().to(ops::metadata)),
        )
        .service(endpoint("/metrics").route(web::get().to(ops::metrics)))
        .service(endpoint("/healthz").route(web::get().to(ops::healthz)))
        .service(endpoint("/readyz").route(web::get().to(ops::readyz)))
        .service(endpoint(crate::cluster::snapshot::PATH).route(web::get().to(peer::snapshot)))
        .service(
            web::scope("/admin/v1")
                .service(
                    endpoint("/revocations")
                        .route(web::post().to(admin::revoke))
                        .route(web::get().to(admin::list_revocations)),
                )
                .service(endpoint("/keys").route(web::get().to(admin::keys)))
                .service(endpoint("/cluster").route(web::get().to(admin::cluster)))
                .service(endpoint("/keys/rotate").route(web::post().to(admin::rotate)))
                .service(
                    endpoint("/bans")
                        .route(web::get().to(admin_abuse::list_bans))
                        .route(web::post().to(admin_abuse::ban)),
                )
                .service(endpoint("/bans/{address:.+}").route(web::delete().to(admin_abuse::lift)))
                .service(endpoint("/abuse").route(web::get().to(admin_abuse::abuse)))
                .service(
                    endpoint("/abuse/budgets/{kind}/{id}")
                        .route(web::delete().to(admin_abuse::clear_budget)),
                ),
        );
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
