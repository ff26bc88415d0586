//! The admin API client: a blocking HTTP client with a bounded timeout, the admin token
//! from the environment, and the node's error answers turned into [`CliError`].

use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::Method;
use serde_json::Value;

/// The variable holding the admin access token.
pub const TOKEN_VAR: &str = "PORTCULLIS_TOKEN";
/// How long one admin request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest error body quoted back to the operator.
const MAX_QUOTED: usize = 300;

/// Why an admin command failed, by whose fault.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The operator gave no token.
    #[error(
        "{TOKEN_VAR} is not set: export an access token with the admin scope, e.g. from \
         `curl -u CLIENT:SECRET -d grant_type=client_credentials URL/oauth/token`"
    )]
    MissingToken,
    /// The node could not be reached, or did not answer in time.
    #[error("cannot reach {url}: {detail}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// What the transport reported.
        detail: String,
    },
    /// The node refused the request (a 4xx or 5xx with its JSON error body).
    #[error("the node answered {status}: {code}: {description}")]
    Refused {
        /// HTTP status line.
        status: String,
        /// The `error` code, or `-` when the body had none.
        code: String,
        /// The `error_description`, or the start of the body.
        description: String,
        /// The body as JSON, when it was JSON (printed with `--json`).
        body: Option<Value>,
    },
    /// The node answered 2xx with something that is not JSON.
    #[error("the node answered {status} with a body that is not JSON: {start}")]
    NotJson {
        /// HTTP status line.
        status: String,
        /// The start of the body.
        start: String,
    },
}

/// A node's admin API, reached with one token.
pub struct AdminClient {
    http: Client,
    base: String,
    token: String,
}

impl AdminClient {
    /// A client for the node at `base`, with the token from [`TOKEN_VAR`].
    pub fn from_env(base: &str) -> Result<Self, CliError> {
        let token = std::env::var(TOKEN_VAR).unwrap_or_default();
        let token = token.trim().to_owned();
        if token.is_empty() {
            return Err(CliError::MissingToken);
        }
        let http = Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| CliError::Unreachable {
                url: base.to_owned(),
                detail: format!("cannot build an HTTP client: {e}"),
            })?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// `GET path`, answering JSON.
    pub fn get(&self, path: &str) -> Result<Value, CliError> {
        self.send(self.request(Method::GET, path), path)
    }

    /// `POST path` with a JSON body (or none).
    pub fn post(&self, path: &str, body: Option<&Value>) -> Result<Value, CliError> {
        let request = self.request(Method::POST, path);
        let request = match body {
            Some(body) => request.json(body),
            None => request,
        };
        self.send(request, path)
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Result<Value, CliError> {
        self.send(self.request(Method::DELETE, path), path)
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    fn send(&self, request: RequestBuilder, path: &str) -> Result<Value, CliError> {
        let response = request.send().map_err(|e| CliError::Unreachable {
            url: format!("{}{path}", self.base),
            detail: describe(&e),
        })?;
        let status = response.status();
        let text = response.text().unwrap_or_default();
        let parsed = serde_json::from_str::<Value>(&text).ok();
        if !status.is_success() {
            return Err(refused(status.to_string(), parsed, &text));
        }
        parsed.ok_or_else(|| CliError::NotJson {
            status: status.to_string(),
            start: quoted(&text),
        })
    }
}

/// The node's error answer, with its OAuth-style `error` and `error_description`.
fn refused(status: String, body: Option<Value>, text: &str) -> CliError {
    let field = |name: &str| {
        body.as_ref()
            .and_then(|b| b[name].as_str())
            .map(str::to_owned)
    };
    CliError::Refused {
        status,
        code: field("error").unwrap_or_else(|| "-".into()),
        description: field("error_description").unwrap_or_else(|| quoted(text)),
        body,
    }
}

fn quoted(text: &str) -> String {
    let start: String = text.trim().chars().take(MAX_QUOTED).collect();
    if start.is_empty() {
        "(empty body)".into()
    } else {
        start
    }
}

/// A transport error in a few words: refused, timed out, or what reqwest says.
pub fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_builder() {
        "invalid URL"
    } else {
        "request failed"
    };
    // The innermost cause says why (e.g. "Connection refused (os error 111)").
    let mut cause: &dyn std::error::Error = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    format!("{kind} ({cause})")
}
