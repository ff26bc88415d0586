//! Merging what peers publish through the same durable paths as local changes: every
//! revocation, spend and key set learned from a peer (by gossip or by snapshot) is
//! journaled before it takes effect, so a restart never forgets what was enforced.

use crate::issuer::{MergeSpends, PeerSpend};
use crate::journal::Record;
use crate::keys::PublicKeyRecord;
use crate::metrics as m;
use crate::revocation::{Reason, Revocation, Target};
use crate::store::Append;
use crate::verifier::actor::{Deny, InstallPeerKeys};

use super::gossip::Peers;

/// A journal write failed while merging; the round's watermarks are not advanced, so
/// the same updates are merged again next round (merging is idempotent).
#[derive(Debug, Clone, Copy)]
pub struct NotJournaled;

/// Journals, then installs, one peer's key set.
pub async fn install_keys(
    owner: String,
    keys: Vec<PublicKeyRecord>,
    peers: &Peers,
) -> Result<(), NotJournaled> {
    let record = Record::PeerKeys {
        node_id: owner.clone(),
        keys: keys.clone(),
    };
    if !matches!(peers.store.send(Append(vec![record])).await, Ok(Ok(()))) {
        tracing::error!(node.id = %owner, "could not journal a peer's keys; retrying next round");
        return Err(NotJournaled);
    }
    let _ = peers
        .verifier
        .send(InstallPeerKeys {
            node_id: owner,
            keys,
        })
        .await;
    Ok(())
}

/// Where revocations being merged come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A peer's gossip: origin-to-here lag is measured.
    Gossip,
    /// A peer's snapshot: entries are old by nature, so no lag is measured.
    Snapshot,
    /// Made here (a detected fork): journaled as our own, to republish after a restart.
    Own,
}

/// Journals, then applies, the revocations this node has not seen yet.
pub async fn merge_revocations(
    batch: Vec<Revocation>,
    peers: &Peers,
    source: Source,
) -> Result<(), NotJournaled> {
    let now = peers.clock.now_ms();
    let fresh: Vec<Revocation> = batch
        .into_iter()
        .filter(|r| r.expires_ms > now && !peers.view.deny.knows(r))
        .collect();
    if fresh.is_empty() {
        return Ok(());
    }
    let record = if source == Source::Own {
        Record::RevokeOwn
    } else {
        Record::Revoke
    };
    let records = fresh.iter().cloned().map(record).collect();
    if !matches!(peers.store.send(Append(records)).await, Ok(Ok(()))) {
        tracing::error!(
            count = fresh.len(),
            "could not journal learned revocations; retrying"
        );
        return Err(NotJournaled);
    }
    if source == Source::Gossip {
        for entry in &fresh {
            let lag = now.saturating_sub(entry.created_ms) as f64 / 1000.0;
            metrics::histogram!(m::PROPAGATION_LAG).record(lag);
        }
    }
    let _ = peers.verifier.send(Deny(fresh)).await;
    Ok(())
}

/// Journals and merges spends; revokes (durably, locally) and returns the families that
/// forked.
pub async fn merge_spends(
    spends: Vec<PeerSpend>,
    peers: &Peers,
) -> Result<Vec<Revocation>, NotJournaled> {
    if spends.is_empty() {
        return Ok(Vec::new());
    }
    // Journal first, so that a restart remembers what peers spent.
    let records = spends.iter().map(PeerSpend::record).collect();
    if !matches!(peers.store.send(Append(records)).await, Ok(Ok(()))) {
        tracing::error!(
            count = spends.len(),
            "could not journal learned refresh spends; retrying"
        );
        return Err(NotJournaled);
    }
    let forks = peers
        .issuer
        .send(MergeSpends(spends))
        .await
        .unwrap_or_default();
    let now = peers.clock.now_ms();
    let revocations: Vec<Revocation> = forks
        .into_iter()
        .map(|fork| {
            metrics::counter!(m::REFRESH_REUSE).increment(1);
            tracing::warn!(spender = %fork.spender, "refresh family forked across nodes; revoked");
            Revocation {
                target: Target::Family {
                    family: fork.family,
                },
                reason: Reason::RefreshReuse,
                created_ms: now,
                expires_ms: fork.expires_ms,
            }
        })
        .collect();
    merge_revocations(revocations.clone(), peers, Source::Own).await?;
    Ok(revocations)
}
