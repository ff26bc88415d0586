//! Node-to-node HTTP: the sealed snapshot a catching-up peer fetches.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::error::ApiError;
use crate::cluster::snapshot::{self, HEADER};
use crate::node::Handles;

/// `GET /cluster/v1/snapshot`: everything this node enforces, sealed with the cluster
/// key, for a request sealed with the same key.
pub async fn snapshot(
    req: HttpRequest,
    node: web::Data<Handles>,
) -> Result<HttpResponse, ApiError> {
    let Some(sealer) = node.sealer.clone() else {
        return Err(ApiError::bad_request(
            StatusCode::NOT_FOUND,
            "not_found",
            "this node is not in a cluster",
        ));
    };
    let header = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !snapshot::request_is_authentic(&sealer, header, node.clock.now_ms()) {
        return Err(ApiError::bad_request(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "snapshot requests must be sealed with the cluster secret",
        ));
    }
    let built = snapshot::build(&node).await;
    let now = node.clock.now_ms();
    let body = web::block(move || snapshot::seal(&sealer, &built, now))
        .await
        .map_err(|_| ApiError::Internal("snapshot sealing task failed".into()))?;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .body(body))
}
