//! Strict reading of `application/x-www-form-urlencoded` request bodies and OAuth client
//! authentication (RFC 6749 §2.3.1).

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use futures_util::StreamExt;

use super::error::ApiError;
use crate::config::{Client, Config};

/// Largest form body accepted by the OAuth endpoints.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// Parameters of a form body; each name appears at most once.
#[derive(Debug, Default)]
pub struct Form(HashMap<String, String>);

impl Form {
    /// Reads the body of `req`, enforcing content type, size and unique parameters.
    pub async fn read(req: &HttpRequest, mut payload: web::Payload) -> Result<Self, ApiError> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Err(ApiError::bad_request(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request",
                "content type must be application/x-www-form-urlencoded",
            ));
        }
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk =
                chunk.map_err(|_| ApiError::invalid_request("request body is unreadable"))?;
            if body.len() + chunk.len() > MAX_FORM_BYTES {
                return Err(ApiError::bad_request(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "invalid_request",
                    format!("request body exceeds {MAX_FORM_BYTES} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Self::parse(&body)
    }

    /// Parses a form body; a repeated parameter is an error (RFC 6749 §3.1).
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        if std::str::from_utf8(body).is_err() {
            return Err(ApiError::invalid_request("request body is not UTF-8"));
        }
        let mut params = HashMap::new();
        for (name, value) in form_urlencoded::parse(body) {
            if params
                .insert(name.to_string(), value.into_owned())
                .is_some()
            {
                return Err(ApiError::invalid_request(format!(
                    "parameter `{}` is repeated",
                    printable(&name)
                )));
            }
        }
        Ok(Self(params))
    }

    /// A parameter; an empty value counts as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A parameter that must be present.
    pub fn require(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .ok_or_else(|| ApiError::invalid_request(format!("missing `{name}`")))
    }
}

/// A name safe to repeat in an error: at most 64 printable characters.
fn printable(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// Authenticates the calling client by HTTP Basic or by `client_id`/`client_secret`
/// form fields, never both.
pub fn authenticate_client<'c>(
    req: &HttpRequest,
    form: &Form,
    config: &'c Config,
) -> Result<&'c Client, ApiError> {
    let basic = basic_credentials(req)?;
    let in_form = form.get("client_secret").is_some();
    let (id, secret, used_basic) = match (basic, in_form) {
        (Some(_), true) => {
            return Err(ApiError::invalid_request(
                "use one client authentication method, not two",
            ))
        }
        (Some((id, secret)), false) => (id, secret, true),
        (None, true) => {
            let id = form.require("client_id")?.to_owned();
            (id, form.require("client_secret")?.to_owned(), false)
        }
        (None, false) => {
            let description = "client authentication required (HTTP Basic or client_secret)";
            return Err(ApiError::OAuth {
                code: "invalid_client",
                description: description.into(),
                basic: true,
            });
        }
    };
    if let Some(form_id) = form.get("client_id") {
        if used_basic && form_id != id {
            return Err(ApiError::invalid_request(
                "client_id does not match the credentials",
            ));
        }
    }
    match config.client(&id) {
        Some(client) if client.secret_hash.matches(&secret) => Ok(client),
        _ => Err(ApiError::OAuth {
            code: "invalid_client",
            description: "client authentication failed".into(),
            basic: used_basic,
        }),
    }
}

/// `Authorization: Basic` credentials, form-urlencoded per RFC 6749 §2.3.1.
fn basic_credentials(req: &HttpRequest) -> Result<Option<(String, String)>, ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || ApiError::OAuth {
        code: "invalid_client",
        description: "malformed Basic credentials".into(),
        basic: true,
    };
    let text = value.to_str().map_err(|_| malformed())?;
    let Some((scheme, encoded)) = text.split_once(' ') else {
        return Err(malformed());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(malformed());
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let unescape = |s: &str| -> String {
        form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(Form::parse(b"a=1&a=2").is_err());
        let form = Form::parse(b"a=1&b=&c=x%20y").expect("valid form");
        assert_eq!(form.get("a"), Some("1"));
        assert_eq!(form.get("b"), None, "empty values count as absent");
        assert_eq!(form.get("c"), Some("x y"));
    }

    #[test]
    fn non_utf8_bodies_are_refused() {
        assert!(Form::parse(&[0x61, 0x3d, 0xff]).is_err());
    }
}
