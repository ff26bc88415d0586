//! The admin API under `/admin/v1/`: revoke, list revocations, rotate and show keys.
//! Every call needs an access token carrying the configured admin scope.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, BearerError};
use super::gate::bearer_token;
use crate::cluster::gossip::Members;
use crate::issuer::{ListKeys, Rotate, RotateFailure};
use crate::keys::RotateError;
use crate::node::Handles;
use crate::revocation::{Reason, Revocation, Target};
use crate::verifier::PublishedKey;

/// Longest identifier accepted in a revocation request.
const MAX_ID: usize = 512;

/// Body of `POST /admin/v1/revocations`.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RevokeRequest {
    /// One token by `jti`.
    Token {
        /// The `jti`.
        jti: String,
    },
    /// Everything issued to a subject until now.
    Subject {
        /// The `sub`.
        subject: String,
    },
    /// Everything issued to a client until now.
    Client {
        /// The `client_id`.
        client_id: String,
    },
    /// A refresh family and its access tokens.
    Family {
        /// The family id (`sid`).
        family: String,
    },
}

/// A revocation as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct RevocationView {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    family: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_before: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    until_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offence: Option<u32>,
    reason: &'static str,
    created_ms: u64,
    expires_ms: u64,
}

impl From<&Revocation> for RevocationView {
    fn from(r: &Revocation) -> Self {
        let mut view = Self {
            kind: r.target.kind(),
            jti: None,
            family: None,
            subject: None,
            client_id: None,
            issued_before: None,
            address: None,
            until_ms: None,
            offence: None,
            reason: r.reason.as_str(),
            created_ms: r.created_ms,
            expires_ms: r.expires_ms,
        };
        match &r.target {
            Target::Token { jti } => view.jti = Some(jti.clone()),
            Target::Family { family } => view.family = Some(family.clone()),
            Target::Subject { subject, before } => {
                view.subject = Some(subject.clone());
                view.issued_before = Some(*before);
            }
            Target::Client { client_id, before } => {
                view.client_id = Some(client_id.clone());
                view.issued_before = Some(*before);
            }
            Target::Address {
                address,
                until_ms,
                offence,
            } => {
                view.address = Some(address.clone());
                view.until_ms = Some(*until_ms);
                view.offence = Some(*offence);
            }
        }
        view
    }
}

pub(super) fn authorize(req: &HttpRequest, node: &Handles) -> Result<(), ApiError> {
    let token = bearer_token(req.headers())?;
    let verified = node.view.verify_access(token)?;
    if !verified.has_scope(&node.config.admin_scope) {
        return Err(ApiError::Bearer(BearerError::InsufficientScope(
            node.config.admin_scope.clone(),
        )));
    }
    Ok(())
}

/// `POST /admin/v1/revocations`.
pub async fn revoke(
    req: HttpRequest,
    body: web::Bytes,
    node: web::Data<Handles>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &node)?;
    let body: RevokeRequest = parse_json(&req, &body)?;
    let now_ms = node.clock.now_ms();
    let before = node.clock.now_secs();
    let target = match body {
        RevokeRequest::Token { jti } => Target::Token { jti: checked(jti)? },
        RevokeRequest::Subject { subject } => Target::Subject {
            subject: checked(subject)?,
            before,
        },
        RevokeRequest::Client { client_id } => Target::Client {
            client_id: checked(client_id)?,
            before,
        },
        RevokeRequest::Family { family } => Target::Family {
            family: checked(family)?,
        },
    };
    let entry = Revocation {
        target,
        reason: Reason::Admin,
        created_ms: now_ms,
        expires_ms: node.covering_expiry_ms(),
    };
    tracing::info!(kind = entry.target.kind(), "revocation made by admin");
    node.revoke(vec![entry.clone()])
        .await
        .map_err(|_| ApiError::Unavailable)?;
    Ok(HttpResponse::Created().json(RevocationView::from(&entry)))
}

/// Parses a JSON body once the caller is known to be an admin.
pub(super) fn parse_json<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    body: &[u8],
) -> Result<T, ApiError> {
    let is_json = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim() == "application/json")
        });
    if !is_json {
        return Err(ApiError::bad_request(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request",
            "content type must be application/json",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("invalid JSON body: {e}"),
        )
    })
}

fn checked(id: String) -> Result<String, ApiError> {
    if id.is_empty() || id.len() > MAX_ID || id.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("identifier must be 1-{MAX_ID} characters without control characters"),
        ));
    }
    Ok(id)
}

/// `GET /admin/v1/revocations`.
pub async fn list_revocations(
    req: HttpRequest,
    node: web::Data<Handles>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &node)?;
    let entries: Vec<RevocationView> = node
        .view
        .deny
        .snapshot()
        .iter()
        .map(RevocationView::from)
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "revocations": entries })))
}

/// `POST /admin/v1/keys/rotate`.
pub async fn rotate(req: HttpRequest, node: web::Data<Handles>) -> Result<HttpResponse, ApiError> {
    authorize(&req, &node)?;
    let result = node
        .issuer
        .send(Rotate)
        .await
        .map_err(|_| ApiError::Unavailable)?;
    match result {
        Ok(key) => Ok(HttpResponse::Created().json(key)),
        Err(RotateFailure::Refused(RotateError::AlreadyPending(kid))) => {
            Err(ApiError::bad_request(
                StatusCode::CONFLICT,
                "rotation_pending",
                format!("key {kid} is already published and waiting to sign"),
            ))
        }
        Err(RotateFailure::Storage) => Err(ApiError::Unavailable),
    }
}

/// `GET /admin/v1/keys`.
pub async fn keys(req: HttpRequest, node: web::Data<Handles>) -> Result<HttpResponse, ApiError> {
    authorize(&req, &node)?;
    let keys: Vec<PublishedKey> = node
        .issuer
        .send(ListKeys)
        .await
        .map_err(|_| ApiError::Unavailable)?;
    let signing = node.signer.load().kid().to_owned();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "signing_kid": signing, "keys": keys })))
}

/// `GET /admin/v1/cluster`: membership as this node sees it, with its own state sizes.
pub async fn cluster(req: HttpRequest, node: web::Data<Handles>) -> Result<HttpResponse, ApiError> {
    authorize(&req, &node)?;
    let members = match &node.gossip {
        Some(gossip) => gossip
            .send(Members)
            .await
            .map_err(|_| ApiError::Unavailable)?,
        None => Vec::new(),
    };
    let keys = node.view.keys();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "node_id": node.node_id,
        "clustered": node.gossip.is_some(),
        "region": node.config.cluster.as_ref().map(|c| c.region.clone()),
        "ready": node.ready.load(std::sync::atomic::Ordering::Relaxed),
        "deny_list_entries": node.view.deny.len(),
        "trusted_keys": keys.published(),
        "members": members,
    })))
}
