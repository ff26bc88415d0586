//! The one place that turns failures into HTTP responses.
//!
//! Every error body is JSON with an RFC 6749-style `error` code and a human
//! `error_description`. Descriptions are written here or by handlers from fixed text;
//! they never contain token material or secrets.

use actix_web::body::BoxBody;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::abuse::budget::Quota;
use crate::verifier::Rejection;

/// A request that cannot be served, with whose fault it is.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// An OAuth endpoint error (RFC 6749 §5.2, RFC 7009, RFC 7662).
    #[error("{code}: {description}")]
    OAuth {
        /// RFC 6749 error code.
        code: &'static str,
        /// What was wrong.
        description: String,
        /// Whether the client tried HTTP Basic (then a 401 carries a Basic challenge).
        basic: bool,
    },
    /// A bearer token was missing, invalid or lacks scope (RFC 6750 §3).
    #[error("bearer: {0}")]
    Bearer(BearerError),
    /// The request itself is malformed (wrong content type, bad JSON, too large).
    #[error("{code}: {description}")]
    BadRequest {
        /// HTTP status (4xx).
        status: StatusCode,
        /// Short error code.
        code: &'static str,
        /// What was wrong.
        description: String,
    },
    /// Refused to protect the node or its users: a budget, a login limit, a ban or a
    /// saturated password hasher. The client should wait `retry_after` seconds.
    #[error("{code}: {description}")]
    Limited {
        /// 429, or 503 when the node itself is saturated.
        status: StatusCode,
        /// Short error code.
        code: &'static str,
        /// What was wrong.
        description: String,
        /// Seconds to wait (`Retry-After`).
        retry_after: u64,
        /// The budget, when a lineage budget refused the request (`RateLimit` headers).
        quota: Option<Quota>,
    },
    /// Durable storage failed; nothing was acknowledged.
    #[error("storage unavailable")]
    Unavailable,
    /// A bug or a broken invariant; details are logged, not returned.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why a bearer-authenticated request was refused.
#[derive(Debug)]
pub enum BearerError {
    /// The token did not verify.
    Invalid(Rejection),
    /// The token is valid but lacks these scopes.
    InsufficientScope(String),
}

impl std::fmt::Display for BearerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(r) => write!(f, "{r}"),
            Self::InsufficientScope(s) => write!(f, "requires scope `{s}`"),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl ApiError {
    /// An OAuth error with a description.
    pub fn oauth(code: &'static str, description: impl Into<String>) -> Self {
        Self::OAuth {
            code,
            description: description.into(),
            basic: false,
        }
    }

    /// `invalid_request` with a description.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::oauth("invalid_request", description)
    }

    /// A malformed request outside the OAuth endpoints.
    pub fn bad_request(status: StatusCode, code: &'static str, desc: impl Into<String>) -> Self {
        Self::BadRequest {
            status,
            code,
            description: desc.into(),
        }
    }

    /// The OAuth error code or short code, for metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::OAuth { code, .. }
            | Self::BadRequest { code, .. }
            | Self::Limited { code, .. } => code,
            Self::Bearer(BearerError::Invalid(_)) => "invalid_token",
            Self::Bearer(BearerError::InsufficientScope(_)) => "insufficient_scope",
            Self::Unavailable => "temporarily_unavailable",
            Self::Internal(_) => "server_error",
        }
    }
}

fn oauth_status(code: &str) -> StatusCode {
    match code {
        "invalid_client" => StatusCode::UNAUTHORIZED,
        "slow_down" => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::OAuth { code, .. } => oauth_status(code),
            Self::Bearer(BearerError::Invalid(_)) => StatusCode::UNAUTHORIZED,
            Self::Bearer(BearerError::InsufficientScope(_)) => StatusCode::FORBIDDEN,
            Self::BadRequest { status, .. } | Self::Limited { status, .. } => *status,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        let description = match self {
            Self::OAuth { description, .. }
            | Self::BadRequest { description, .. }
            | Self::Limited { description, .. } => description.clone(),
            Self::Bearer(e) => e.to_string(),
            Self::Unavailable => "durable storage is unavailable; retry later".into(),
            Self::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                "internal error".into()
            }
        };
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        if let Some(challenge) = self.challenge(&description) {
            response.insert_header((header::WWW_AUTHENTICATE, challenge));
        }
        if let Self::Limited {
            retry_after, quota, ..
        } = self
        {
            response.insert_header((header::RETRY_AFTER, retry_after.to_string()));
            if let Some(quota) = quota {
                for (name, value) in rate_limit_headers(quota) {
                    response.insert_header((name, value));
                }
            }
        }
        response.json(Body {
            error: self.code(),
            error_description: &description,
        })
    }
}

impl ApiError {
    fn challenge(&self, description: &str) -> Option<HeaderValue> {
        let text = match self {
            Self::OAuth {
                code: "invalid_client",
                basic: true,
                ..
            } => r#"Basic realm="portcullis""#.to_owned(),
            Self::Bearer(BearerError::Invalid(_)) => format!(
                r#"Bearer realm="portcullis", error="invalid_token", error_description="{description}""#
            ),
            Self::Bearer(BearerError::InsufficientScope(scope)) => {
                format!(r#"Bearer realm="portcullis", error="insufficient_scope", scope="{scope}""#)
            }
            _ => return None,
        };
        HeaderValue::from_str(&text).ok()
    }
}

/// The `RateLimit-Policy` and `RateLimit` fields of the IETF httpapi ratelimit-headers
/// draft for a lineage budget: quota per 60-second window, remaining, seconds to reset.
pub fn rate_limit_headers(quota: &Quota) -> [(&'static str, String); 2] {
    [
        (
            "RateLimit-Policy",
            format!("\"lineage\";q={};w=60", quota.limit),
        ),
        (
            "RateLimit",
            format!("\"lineage\";r={};t={}", quota.remaining, quota.reset_secs),
        ),
    ]
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        Self::Bearer(BearerError::Invalid(rejection))
    }
}
