//! Where the HTTP handlers consult the anti-abuse layer ([`crate::abuse`]).
//!
//! The handlers stay about their protocol; the decisions, their metrics, their logs and
//! the revocations and bans they lead to are made here. Revocations and bans go through
//! the node's one durable path, so they survive restarts and reach every peer.

use std::net::IpAddr;

use actix_web::http::StatusCode;

use super::error::ApiError;
use crate::abuse::budget::{Lineage, Quota, Verdict};
use crate::abuse::heuristics::IssuanceCap;
use crate::abuse::login::Refusal;
use crate::abuse::Decision;
use crate::metrics as m;
use crate::node::Handles;
use crate::revocation::{Reason, Revocation, Target};
use crate::verifier::{AccessToken, Rejection};

/// Refuses a gate request from an address denied for bad tokens (or banned by an
/// admin), before its token is looked at.
pub fn gate_denied(node: &Handles, ip: Option<IpAddr>) -> Result<(), Rejection> {
    let Some(ip) = ip else { return Ok(()) };
    if node
        .shield
        .heuristics
        .denied(ip, node.clock.now_ms(), &node.view.deny)
    {
        decision("address_denied");
        return Err(Rejection::AddressDenied);
    }
    Ok(())
}

/// Counts a refused token against the address that presented it, and denies the
/// address once it has presented too many.
pub async fn bad_token(node: &Handles, ip: Option<IpAddr>, rejection: Rejection) {
    let (Some(ip), true) = (ip, counts_as_bad(rejection)) else {
        return;
    };
    let now_ms = node.clock.now_ms();
    let Some(denial) = node
        .shield
        .heuristics
        .bad_token(ip, now_ms, &node.view.deny)
    else {
        return;
    };
    decision("bad_token_denial");
    tracing::info!(client.ip = %ip, "address denied on the gate after too many bad tokens");
    let threshold = node.shield.heuristics.settings().bad_tokens;
    record_address(node, &denial, threshold);
    persist(node, denial).await;
}

/// Missing credentials are not evidence of anything; a denied address was not looked at.
fn counts_as_bad(rejection: Rejection) -> bool {
    !matches!(rejection, Rejection::Missing | Rejection::AddressDenied)
}

/// Charges one presentation of a verified token to its lineage's budget and watches
/// where the lineage is used from. Returns the quota for the `RateLimit` headers, or
/// the refusal: 429 over budget, 401 once the lineage has been revoked.
pub async fn charge(
    node: &Handles,
    token: &AccessToken,
    ip: Option<IpAddr>,
) -> Result<Option<Quota>, ApiError> {
    let now_ms = node.clock.now_ms();
    let lineage = Lineage::of(token);
    if let Some(ip) = ip {
        if node.shield.heuristics.spread(&lineage, ip, now_ms) {
            decision("ip_spread_revoked");
            tracing::warn!(
                client.id = %token.client_id,
                subject = %token.subject,
                "lineage used from too many networks; revoked as stolen"
            );
            let limit = node.shield.heuristics.settings().spread_networks;
            record_lineage(node, token, &lineage, Reason::IpSpread, limit + 1, limit);
            revoke_lineage(node, &lineage, Reason::IpSpread).await;
            return Err(Rejection::Revoked.into());
        }
    }
    if !node.shield.budgets.enabled() {
        return Ok(None);
    }
    match node
        .shield
        .budgets
        .charge(token, now_ms, node.shield.seat())
    {
        Verdict::Allow(quota) => Ok(Some(quota)),
        Verdict::Limit(quota) => {
            decision("rate_limited");
            Err(over_budget(quota))
        }
        Verdict::Abuse(quota) => {
            decision("rate_abuse_revoked");
            tracing::warn!(
                client.id = %token.client_id,
                subject = %token.subject,
                requests = quota.used,
                budget = quota.limit,
                "lineage past its abuse threshold; revoked"
            );
            let threshold = node.shield.budgets.abuse_threshold(quota.limit);
            record_lineage(
                node,
                token,
                &lineage,
                Reason::RateAbuse,
                quota.used,
                threshold,
            );
            revoke_lineage(node, &lineage, Reason::RateAbuse).await;
            Err(over_budget(quota))
        }
    }
}

fn over_budget(quota: Quota) -> ApiError {
    ApiError::Limited {
        status: StatusCode::TOO_MANY_REQUESTS,
        code: "rate_limited",
        description: "this token's request budget is spent; retry later".into(),
        retry_after: quota.reset_secs.max(1),
        quota: Some(quota),
    }
}

/// Revokes every token of a lineage: the refresh family, or everything the client was
/// issued until now.
async fn revoke_lineage(node: &Handles, lineage: &Lineage, reason: Reason) {
    let target = match lineage {
        Lineage::Family(family) => Target::Family {
            family: family.clone(),
        },
        Lineage::Client(client_id) => Target::Client {
            client_id: client_id.clone(),
            before: node.clock.now_secs(),
        },
    };
    let entry = Revocation {
        target,
        reason,
        created_ms: node.clock.now_ms(),
        expires_ms: node.covering_expiry_ms(),
    };
    persist(node, entry).await;
}

/// Makes a revocation or ban durable and shared. A failure is logged: the request that
/// triggered it is refused either way, and the counters will trigger it again.
async fn persist(node: &Handles, entry: Revocation) {
    if node.revoke(vec![entry]).await.is_err() {
        tracing::error!("an abuse revocation or ban could not be made durable");
    }
}

/// Checks a password-grant attempt before its password is hashed; on success returns
/// the hashing permit to hold while argon2 runs.
pub fn login_admission(
    node: &Handles,
    ip: Option<IpAddr>,
    username: &str,
) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, ApiError> {
    let now_ms = node.clock.now_ms();
    let shield = &node.shield.login;
    let admitted = match ip {
        Some(ip) => shield.admit(ip, username, now_ms, &node.view.deny),
        None => Ok(()),
    };
    let refusal = match admitted {
        Ok(()) => match shield.hashing_permit() {
            Some(permit) => return Ok(Some(permit)),
            None => Refusal::HashingSaturated,
        },
        Err(refusal) => refusal,
    };
    metrics::counter!(m::LOGINS, "outcome" => refusal.label()).increment(1);
    let retry_after = refusal.retry_after_secs(now_ms);
    Err(match refusal {
        Refusal::HashingSaturated => ApiError::Limited {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "temporarily_unavailable",
            description: "too many logins in progress; retry shortly".into(),
            retry_after,
            quota: None,
        },
        _ => ApiError::Limited {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limited",
            description: "too many login attempts; retry later".into(),
            retry_after,
            quota: None,
        },
    })
}

/// Records a password check's outcome: trust the network on success; count the
/// failure, and ban the address when it has failed too often.
pub async fn login_outcome(node: &Handles, ip: Option<IpAddr>, username: &str, success: bool) {
    let outcome = if success { "success" } else { "failure" };
    metrics::counter!(m::LOGINS, "outcome" => outcome).increment(1);
    let Some(ip) = ip else { return };
    let now_ms = node.clock.now_ms();
    if success {
        node.shield.login.succeeded(ip, username, now_ms);
        return;
    }
    if let Some(ban) = node.shield.login.failed(ip, now_ms, &node.view.deny) {
        decision("login_ban");
        tracing::info!(client.ip = %ip, "address banned after repeated login failures");
        let threshold = node.shield.login.ban_threshold();
        record_address(node, &ban, threshold);
        persist(node, ban).await;
    }
}

/// Counts a token about to be issued, or refuses it with 429.
pub fn issuance(node: &Handles, ip: Option<IpAddr>, client_id: &str) -> Result<(), ApiError> {
    let Some(ip) = ip else { return Ok(()) };
    let now_ms = node.clock.now_ms();
    node.shield
        .heuristics
        .issue(ip, client_id, now_ms)
        .map_err(|cap| {
            decision(cap.label());
            let whom = match cap {
                IssuanceCap::Address => "this address",
                IssuanceCap::Client => "this client",
            };
            ApiError::Limited {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: "rate_limited",
                description: format!("too many tokens issued to {whom} this minute"),
                retry_after: 60 - (now_ms / 1000) % 60,
                quota: None,
            }
        })
}

fn record_lineage(
    node: &Handles,
    token: &AccessToken,
    lineage: &Lineage,
    reason: Reason,
    observed: u64,
    threshold: u64,
) {
    node.shield.record(Decision {
        at_ms: node.clock.now_ms(),
        reason: reason.as_str(),
        target: lineage.to_string(),
        client_id: Some(token.client_id.clone()),
        subject: Some(token.subject.clone()),
        observed,
        threshold,
    });
}

/// Keeps an address decision for the admin API; it was taken as the count reached
/// its threshold.
fn record_address(node: &Handles, ban: &Revocation, threshold: u64) {
    let Target::Address { address, .. } = &ban.target else {
        return;
    };
    node.shield.record(Decision {
        at_ms: ban.created_ms,
        reason: ban.reason.as_str(),
        target: address.clone(),
        client_id: None,
        subject: None,
        observed: threshold,
        threshold,
    });
}

fn decision(label: &'static str) {
    metrics::counter!(m::ABUSE_DECISIONS, "decision" => label).increment(1);
}
