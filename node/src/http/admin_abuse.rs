//! The admin API's anti-abuse part: bans (list, impose, lift) and abuse decisions.
//!
//! | route | what |
//! |---|---|
//! | `GET /admin/v1/bans` | address bans and denials in force, cluster-wide |
//! | `POST /admin/v1/bans` | ban an address from logins and the gate for a while (`{"address", "duration"}`) |
//! | `DELETE /admin/v1/bans/{address}` | lift the address's login ban and gate denial on every node |
//! | `GET /admin/v1/abuse` | abuse revocations by reason, this node's recent decisions with their evidence, counter occupancy |
//! | `DELETE /admin/v1/abuse/budgets/{family\|client}/{id}` | forget this node's counts of a lineage (lifts its 429s here) |

use std::net::IpAddr;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::admin::{authorize, parse_json, RevocationView};
use super::error::ApiError;
use crate::abuse::budget::Lineage;
use crate::abuse::net::{address_key, GATE_PREFIX};
use crate::config::parse_duration;
use crate::node::Handles;
use crate::revocation::{Reason, Revocation, Target};

/// Longest ban an admin may impose in one request.
const MAX_ADMIN_BAN: Duration = Duration::from_secs(30 * 24 * 3600);

/// A ban as the admin API shows it.
#[derive(Debug, Serialize)]
struct BanView {
    address: String,
    /// `login` (the token endpoint) or `gate` (`/v1/check`).
    scope: &'static str,
    reason: &'static str,
    until_ms: u64,
    offence: u32,
    created_ms: u64,
}

/// `GET /admin/v1/bans`.
pub async fn list_bans(
    req: HttpRequest,
    node: web::Data<Handles>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &node)?;
    let now_ms = node.clock.now_ms();
    let bans: Vec<BanView> = node
        .view
        .deny
        .addresses()
        .into_iter()
        .filter_map(|entry| {
            let Target::Address { address, .. } = &entry.target else {
                return None;
            };
            let ban = node.view.deny.ban(address, now_ms)?;
            let (scope, shown) = match address.strip_prefix(GATE_PREFIX) {
                Some(rest) => ("gate", rest),
                None => ("login", address.as_str()),
            };
            Some(BanView {
                address: shown.to_owned(),
                scope,
                reason: ban.reason.as_str(),
                until_ms: ban.until_ms,
                offence: ban.offence,
                created_ms: entry.created_ms,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "bans": bans })))
}

/// Body of `POST /admin/v1/bans`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BanRequest {
    /// An IPv4 or IPv6 address (IPv6 bans cover its /64).
    address: String,
    /// `"10m"`, `"2h"`, …
    duration: String,
}

/// `POST /admin/v1/bans`: bans an address on every node, on the gate and for logins.
pub async fn ban(
    req: HttpRequest,
    body: web::Bytes,
    node: web::Data<Handles>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &node)?;
    let body: BanRequest = parse_json(&req, &body)?;
    let address = parse_address(&body.address)?;
    let duration = parse_duration(&body.duration)
        .ok()
        .filter(|d| !d.is_zero() && *d <= MAX_ADMIN_BAN)
        .ok_or_else(|| invalid("duration must be like \"10m\" or \"2h\", at most 30d"))?;
    let now_ms = node.clock.now_ms();
    let until_ms = now_ms + duration.as_millis() as u64;
    let entries: Vec<Revocation> = [address.clone(), format!("{GATE_PREFIX}{address}")]
        .into_iter()
        .map(|key| Revocation {
            target: Target::Address {
                offence: node.view.deny.offences(&key) + 1,
                address: key,
                until_ms,
            },
            reason: Reason::Admin,
            created_ms: now_ms,
            expires_ms: until_ms,
        })
        .collect();
    tracing::info!(address = %address, "address banned by admin");
    node.revoke(entries.clone())
        .await
        .map_err(|_| ApiError::Unavailable)?;
    let views: Vec<RevocationView> = entries.iter().map(RevocationView::from).collect();
    Ok(HttpResponse::Created().json(serde_json::json!({ "bans": views })))
}

/// `DELETE /admin/v1/bans/{address}`: lifts the ban in force, on every node, and
/// forgives this node's failure counts for the address.
pub async fn lift(
    req: HttpRequest,
    path: web::Path<String>,
    node: web::Data<Handles>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &node)?;
    let address = parse_address(&path)?;
    let now_ms = node.clock.now_ms();
    let keys = [address.clone(), format!("{GATE_PREFIX}{address}")];
    let lifts: Vec<Revocation> = node
        .view
        .deny
        .addresses()
        .into_iter()
        .filter(|e| matches!(&e.target, Target::Address { address: a, .. } if keys.contains(a)))
        .filter_map(|existing| lifting(&existing, now_ms, &node))
        .collect();
    if lifts.is_empty() {
        return Err(ApiError::bad_request(
            StatusCode::NOT_FOUND,
            "not_found",
            "no ban is in force on this address",
        ));
    }
    tracing::info!(address = %address, "ban lifted by admin");
    node.revoke(lifts.clone())
        .await
        .map_err(|_| ApiError::Unavailable)?;
    node.shield.login.forgive(&address);
    node.shield.heuristics.forgive(&keys[1]);
    let views: Vec<RevocationView> = lifts.iter().map(RevocationView::from).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "lifted": views })))
}

/// The entry that lifts `existing`, if it is a ban in force: newer than the ban it
/// replaces and kept as long, so that no stale copy of the ban revives it.
fn lifting(existing: &Revocation, now_ms: u64, node: &Handles) -> Option<Revocation> {
    let Target::Address { address, .. } = &existing.target else {
        return None;
    };
    node.view.deny.ban(address, now_ms)?;
    let created_ms = now_ms.max(existing.created_ms + 1);
    Some(Revocation {
        target: Target::Address {
            address: address.clone(),
            until_ms: created_ms,
            offence: 0,
        },
        reason: Reason::Lifted,
        created_ms,
        expires_ms: existing.expires_ms.max(created_ms + 1),
    })
}

/// `GET /admin/v1/abuse`.
pub async fn abuse(req: HttpRequest, node: web::Data<Handles>) -> Result<HttpResponse, ApiError> {
    authorize(&req, &node)?;
    let abusive = [
        Reason::RateAbuse,
        Reason::IpSpread,
        Reason::RefreshReuse,
        Reason::LoginFlood,
        Reason::BadTokens,
    ];
    let revocations: Vec<Revocation> = node
        .view
        .deny
        .snapshot()
        .into_iter()
        .filter(|r| abusive.contains(&r.reason))
        .collect();
    let mut by_reason = serde_json::Map::new();
    for reason in abusive {
        let count = revocations.iter().filter(|r| r.reason == reason).count();
        by_reason.insert(reason.as_str().into(), count.into());
    }
    let listed: Vec<RevocationView> = revocations
        .iter()
        .take(500)
        .map(RevocationView::from)
        .collect();
    let (budget_entries, budget_cap) = node.shield.budgets.occupancy();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "revocations_by_reason": by_reason,
        "revocations": listed,
        "recent_decisions": node.shield.recent(),
        "counters": {
            "entries": node.shield.entries(),
            "budget_entries": budget_entries,
            "budget_capacity": budget_cap,
        },
    })))
}

/// `DELETE /admin/v1/abuse/budgets/{kind}/{id}`.
pub async fn clear_budget(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    node: web::Data<Handles>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &node)?;
    let (kind, id) = path.into_inner();
    let lineage = match kind.as_str() {
        "family" => Lineage::Family(id),
        "client" => Lineage::Client(id),
        _ => return Err(invalid("the lineage kind is `family` or `client`")),
    };
    let cleared = node.shield.budgets.clear(&lineage);
    Ok(HttpResponse::Ok().json(serde_json::json!({ "cleared": cleared })))
}

/// An address or an IPv6 `/64` as a ban key.
fn parse_address(text: &str) -> Result<String, ApiError> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(address_key(ip));
    }
    match text.split_once('/') {
        Some((ip, "64")) => match ip.parse::<IpAddr>() {
            Ok(ip @ IpAddr::V6(_)) => Ok(address_key(ip)),
            _ => Err(invalid("address must be an IP address or an IPv6 /64")),
        },
        _ => Err(invalid("address must be an IP address or an IPv6 /64")),
    }
}

fn invalid(description: &str) -> ApiError {
    ApiError::bad_request(StatusCode::BAD_REQUEST, "invalid_request", description)
}
