//! The OAuth endpoints: token (RFC 6749), revocation (RFC 7009), introspection
//! (RFC 7662).

use std::net::IpAddr;
use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::error::{rate_limit_headers, ApiError};
use super::form::{authenticate_client, Form};
use super::gate::client_ip;
use super::shield;
use crate::cluster::gossip::PublishSpend;
use crate::cluster::wire::Spend;
use crate::config::{Client, Grant};
use crate::grants::{client_allowance, narrows, resolve, user_allowance};
use crate::issuer::{IsUnspent, SpendRefresh, Unspend};
use crate::journal::Record;
use crate::metrics as m;
use crate::node::Handles;
use crate::revocation::{Reason, Revocation, Target};
use crate::secrets::{random_id, verify_password};
use crate::store::Append;
use crate::tokens::{self, FamilyLink};
use crate::verifier::{RefreshToken, Rejection};

/// A successful token response (RFC 6749 §5.1).
#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

/// `POST /oauth/token`.
pub async fn token(
    req: HttpRequest,
    payload: web::Payload,
    node: web::Data<Handles>,
) -> Result<HttpResponse, ApiError> {
    let result = token_inner(&req, payload, &node).await;
    match &result {
        Ok((grant, _)) => {
            metrics::counter!(m::TOKENS_ISSUED, "grant" => grant.as_str()).increment(1)
        }
        Err(error) => metrics::counter!(m::TOKEN_ERRORS, "error" => error.code()).increment(1),
    }
    let (_, body) = result?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body))
}

async fn token_inner(
    req: &HttpRequest,
    payload: web::Payload,
    node: &Arc<Handles>,
) -> Result<(Grant, TokenResponse), ApiError> {
    let form = Form::read(req, payload).await?;
    let grant_type = form.require("grant_type")?;
    let grant = Grant::parse(grant_type).ok_or_else(|| {
        ApiError::oauth(
            "unsupported_grant_type",
            "supported: password, client_credentials, refresh_token",
        )
    })?;
    let client = authenticate_client(req, &form, &node.config)?;
    if !client.grants.contains(&grant) {
        return Err(ApiError::oauth(
            "unauthorized_client",
            format!("this client may not use the {} grant", grant.as_str()),
        ));
    }
    let ip = client_ip(req, &node.config);
    let response = match grant {
        Grant::ClientCredentials => client_credentials(&form, client, node, ip)?,
        Grant::Password => password(&form, client, node, ip).await?,
        Grant::RefreshToken => refresh(&form, client, node, ip).await?,
    };
    Ok((grant, response))
}

fn client_credentials(
    form: &Form,
    client: &Client,
    node: &Handles,
    ip: Option<IpAddr>,
) -> Result<TokenResponse, ApiError> {
    let (allowed, default) = client_allowance(&node.config, client);
    let scope = resolve(form.get("scope"), &allowed, &default).map_err(invalid_scope)?;
    shield::issuance(node, ip, &client.id)?;
    let grant = tokens::Grant {
        subject: client.id.clone(),
        client_id: client.id.clone(),
        scope,
    };
    Ok(issue(node, &grant, None))
}

async fn password(
    form: &Form,
    client: &Client,
    node: &Arc<Handles>,
    ip: Option<IpAddr>,
) -> Result<TokenResponse, ApiError> {
    let username = form.require("username")?.to_owned();
    let password = form.require("password")?.to_owned();
    // Counted and limited before argon2 runs, known user or not.
    let permit = shield::login_admission(node, ip, &username)?;
    let user = node.config.user(&username).cloned();
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    // Unknown users verify against a dummy hash: same path, same cost.
    let valid = web::block(move || {
        let _permit = permit;
        verify_password(stored.as_deref(), &password)
    })
    .await
    .map_err(|_| ApiError::Internal("password hashing task failed".into()))?;
    shield::login_outcome(node, ip, &username, user.is_some() && valid).await;
    let (Some(user), true) = (user, valid) else {
        return Err(ApiError::oauth(
            "invalid_grant",
            "invalid username or password",
        ));
    };
    let (allowed, default) = user_allowance(&node.config, client, &user);
    let scope = resolve(form.get("scope"), &allowed, &default).map_err(invalid_scope)?;
    let grant = tokens::Grant {
        subject: user.name.clone(),
        client_id: client.id.clone(),
        scope,
    };
    shield::issuance(node, ip, &client.id)?;
    if !client.grants.contains(&Grant::RefreshToken) {
        return Ok(issue(node, &grant, None));
    }
    let family = random_id();
    let now = node.clock.now_secs();
    let family_expires = now + node.config.tokens.family_lifetime.as_secs();
    let mut response = issue(node, &grant, Some(&family));
    response.refresh_token = Some(refresh_token(node, &grant, &family, 0, family_expires));
    Ok(response)
}

async fn refresh(
    form: &Form,
    client: &Client,
    node: &Arc<Handles>,
    ip: Option<IpAddr>,
) -> Result<TokenResponse, ApiError> {
    let presented = form.require("refresh_token")?;
    let token = node
        .view
        .verify_refresh(presented)
        .map_err(|r| ApiError::oauth("invalid_grant", format!("refresh token rejected: {r}")))?;
    if node.clock.now_secs() > token.extra.fexp {
        // No leeway past the family's end: its last access token must be minted by then.
        return Err(ApiError::oauth(
            "invalid_grant",
            "the session has reached its maximum lifetime",
        ));
    }
    if token.extra.client_id != client.id {
        return Err(ApiError::oauth(
            "invalid_grant",
            "refresh token was issued to another client",
        ));
    }
    let scope = match form.get("scope") {
        Some(requested) if !narrows(requested, &token.extra.scope) => {
            return Err(ApiError::oauth(
                "invalid_scope",
                "a refresh may only narrow the scope",
            ))
        }
        Some(requested) => resolve(
            Some(requested),
            &scope_set(&token.extra.scope),
            &Default::default(),
        )
        .map_err(invalid_scope)?,
        None => token.extra.scope.clone(),
    };
    shield::issuance(node, ip, &client.id)?;
    spend(node, &token).await?;

    let family = &token.extra.fam;
    let family_grant = tokens::Grant {
        subject: token.subject.clone(),
        client_id: client.id.clone(),
        scope: token.extra.scope.clone(),
    };
    let access_grant = tokens::Grant {
        scope,
        ..family_grant.clone()
    };
    let mut response = issue(node, &access_grant, Some(family));
    let next = token.extra.gen + 1;
    response.refresh_token = Some(refresh_token(
        node,
        &family_grant,
        family,
        next,
        token.extra.fexp,
    ));
    Ok(response)
}

/// Spends the presented generation durably; a second presentation revokes the family.
async fn spend(node: &Handles, token: &RefreshToken) -> Result<(), ApiError> {
    let expires_ms = node.family_retention_ms(token.extra.fexp);
    let family = token.extra.fam.clone();
    let spend = SpendRefresh {
        family: family.clone(),
        generation: token.extra.gen,
        expires_ms,
    };
    let spent = node
        .issuer
        .send(spend)
        .await
        .map_err(|_| ApiError::Unavailable)?;
    if spent.is_err() {
        metrics::counter!(m::REFRESH_REUSE).increment(1);
        tracing::warn!(client = %token.extra.client_id, subject = %token.subject, "refresh token reuse; family revoked");
        let entry = Revocation {
            target: Target::Family { family },
            reason: Reason::RefreshReuse,
            created_ms: node.clock.now_ms(),
            expires_ms,
        };
        node.revoke(vec![entry])
            .await
            .map_err(|_| ApiError::Unavailable)?;
        return Err(ApiError::oauth(
            "invalid_grant",
            "refresh token was already used; the whole session has been revoked",
        ));
    }
    let generation = token.extra.gen;
    let spender = node.node_id.clone();
    let record = Record::RefreshUsed {
        family: family.clone(),
        generation,
        expires_ms,
        spender,
    };
    match node.store.send(Append(vec![record])).await {
        Ok(Ok(())) => {
            if let Some(gossip) = &node.gossip {
                let spend = Spend {
                    family: token.extra.fam.clone(),
                    generation,
                    expires_ms,
                };
                gossip.do_send(PublishSpend(spend));
            }
            Ok(())
        }
        _ => {
            // Not durable, so not spent: the client may retry without being taken for a thief.
            node.issuer.do_send(Unspend { family, generation });
            Err(ApiError::Unavailable)
        }
    }
}

fn issue(node: &Handles, grant: &tokens::Grant, family: Option<&str>) -> TokenResponse {
    let lifetime = node.config.tokens.access_lifetime.as_secs();
    let signer = node.signer.load();
    let config = &node.config;
    let now = node.clock.now_secs();
    let access_token = signer.access_token(
        &config.issuer,
        &config.audiences,
        grant,
        family,
        now,
        lifetime,
    );
    TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: lifetime,
        scope: grant.scope.clone(),
        refresh_token: None,
    }
}

fn refresh_token(
    node: &Handles,
    grant: &tokens::Grant,
    family: &str,
    generation: u32,
    family_expires: u64,
) -> String {
    let lifetime = node.config.tokens.refresh_lifetime.as_secs();
    let now = node.clock.now_secs();
    let link = FamilyLink {
        family,
        generation,
        expires_secs: family_expires,
    };
    node.signer
        .load()
        .refresh_token(&node.config.issuer, grant, &link, now, lifetime)
}

fn scope_set(scope: &str) -> std::collections::BTreeSet<String> {
    scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn invalid_scope(scope: String) -> ApiError {
    ApiError::oauth(
        "invalid_scope",
        format!("scope `{scope}` may not be granted to this request"),
    )
}

/// `POST /oauth/revoke` (RFC 7009).
pub async fn revoke(
    req: HttpRequest,
    payload: web::Payload,
    node: web::Data<Handles>,
) -> Result<HttpResponse, ApiError> {
    let form = Form::read(&req, payload).await?;
    let client = authenticate_client(&req, &form, &node.config)?;
    let presented = form.require("token")?;
    let now = node.clock.now_ms();
    let leeway_ms = node.config.tokens.leeway.as_millis() as u64;
    let (owner, entry) = if let Ok(rt) = node.view.verify_refresh(presented) {
        let target = Target::Family {
            family: rt.extra.fam.clone(),
        };
        (
            rt.extra.client_id.clone(),
            (target, node.family_retention_ms(rt.extra.fexp)),
        )
    } else if let Ok(at) = node.view.verify_access(presented) {
        let target = Target::Token {
            jti: at.jti.clone(),
        };
        (
            at.client_id.clone(),
            (target, at.expires_at * 1000 + leeway_ms),
        )
    } else {
        // RFC 7009 §2.2: an invalid, expired or already revoked token is not an error.
        return Ok(HttpResponse::Ok().finish());
    };
    if owner != client.id {
        return Err(ApiError::oauth(
            "unauthorized_client",
            "the token was issued to another client",
        ));
    }
    let (target, expires_ms) = entry;
    let entry = Revocation {
        target,
        reason: Reason::ClientRequest,
        created_ms: now,
        expires_ms,
    };
    node.revoke(vec![entry])
        .await
        .map_err(|_| ApiError::Unavailable)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// `POST /oauth/introspect` (RFC 7662). Refresh tokens are reported only to the client
/// they were issued to, and only while their generation is unspent.
pub async fn introspect(
    req: HttpRequest,
    payload: web::Payload,
    node: web::Data<Handles>,
) -> Result<HttpResponse, ApiError> {
    let form = Form::read(&req, payload).await?;
    let client = authenticate_client(&req, &form, &node.config)?;
    let presented = form.require("token")?;
    let inactive = serde_json::json!({ "active": false });
    let verified = node.view.verify_access(presented);
    // Introspection spends the token's budget like the gate; the caller is a resource
    // server, so its address says nothing about where the token travels.
    let quota = match &verified {
        Ok(at) => shield::charge(&node, at, None).await?,
        Err(_) => None,
    };
    let body = match verified {
        Ok(at) => serde_json::json!({
            "active": true,
            "token_type": "Bearer",
            "scope": at.scope,
            "client_id": at.client_id,
            "sub": at.subject,
            "aud": at.audiences,
            "iss": node.config.issuer,
            "exp": at.expires_at,
            "iat": at.issued_at,
            "jti": at.jti,
        }),
        Err(Rejection::WrongType) => match node.view.verify_refresh(presented) {
            Ok(rt) if rt.extra.client_id == client.id && unspent(&node, &rt).await => {
                serde_json::json!({
                    "active": true,
                    "token_type": "refresh_token",
                    "scope": rt.extra.scope,
                    "client_id": rt.extra.client_id,
                    "sub": rt.subject,
                    "iss": node.config.issuer,
                    "exp": rt.expires_at,
                    "iat": rt.issued_at,
                    "jti": rt.jti,
                })
            }
            _ => inactive,
        },
        Err(rejection) => {
            metrics::counter!(m::VERIFICATIONS, "outcome" => rejection.label()).increment(1);
            inactive
        }
    };
    let mut response = HttpResponse::Ok();
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    for (name, value) in quota.iter().flat_map(rate_limit_headers) {
        response.insert_header((name, value));
    }
    Ok(response.json(body))
}

async fn unspent(node: &Handles, token: &RefreshToken) -> bool {
    let query = IsUnspent {
        family: token.extra.fam.clone(),
        generation: token.extra.gen,
    };
    node.issuer.send(query).await.unwrap_or(false)
}
