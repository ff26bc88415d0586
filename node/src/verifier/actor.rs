//! The verifier actor: the single writer of the [`VerifyView`].
//!
//! It installs key sets (today the local issuer's; with gossip, the union with every
//! peer's), applies revocations to the deny list once they are durable, and prunes
//! expired entries from the deny list and the verification cache.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::{KeySet, PublishedKey, VerifyView};
use crate::clock::SharedClock;
use crate::keys::{Phase, PublicKeyRecord};
use crate::metrics as m;
use crate::revocation::Revocation;

/// How often expired revocations and cache entries are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(5);

/// Owns every write to the shared verification view.
pub struct Verifier {
    view: Arc<VerifyView>,
    local_keys: Vec<PublishedKey>,
    /// Each peer's key records as last heard, by node id.
    peer_keys: HashMap<String, Vec<PublicKeyRecord>>,
    clock: SharedClock,
}

impl Verifier {
    /// A verifier publishing `local_keys` and the peers' keys into `view` at once.
    pub fn new(
        view: Arc<VerifyView>,
        local_keys: Vec<PublishedKey>,
        peer_keys: HashMap<String, Vec<PublicKeyRecord>>,
        clock: SharedClock,
    ) -> Self {
        let verifier = Self {
            view,
            local_keys,
            peer_keys,
            clock,
        };
        verifier.publish_keys();
        verifier
    }

    /// Installs the union of local and peer keys that are not expired.
    fn publish_keys(&self) {
        let now = self.clock.now_ms();
        let peers = self.peer_keys.iter().flat_map(|(owner, records)| {
            records
                .iter()
                .map(move |r| PublishedKey::from_record(r, owner, now))
        });
        let mut keys: Vec<PublishedKey> = self.local_keys.iter().cloned().chain(peers).collect();
        keys.retain(|k| k.phase != Phase::Expired);
        keys.sort_by(|a, b| (a.activate_ms, &a.kid).cmp(&(b.activate_ms, &b.kid)));
        keys.dedup_by(|a, b| a.kid == b.kid);
        self.view.set_keys(KeySet::new(keys));
    }

    fn prune(&mut self) {
        let now_ms = self.clock.now_ms();
        let removed = self.view.deny.prune(now_ms);
        if removed > 0 {
            tracing::debug!(removed, "pruned expired revocations");
        }
        self.view.cache().prune(now_ms / 1000);
        metrics::gauge!(m::DENY_LIST_ENTRIES).set(self.view.deny.len() as f64);
        metrics::gauge!(m::VERIFY_CACHE_ENTRIES).set(self.view.cache().len() as f64);
        // Phases move with time: retired peer keys drop out of the JWKS here.
        self.publish_keys();
    }
}

impl Actor for Verifier {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(PRUNE_EVERY, |this, _| this.prune());
    }
}

/// Replace the local issuer's published keys.
#[derive(Message)]
#[rtype(result = "()")]
pub struct InstallLocalKeys(pub Vec<PublishedKey>);

impl Handler<InstallLocalKeys> for Verifier {
    type Result = ();

    fn handle(&mut self, msg: InstallLocalKeys, _: &mut Self::Context) {
        self.local_keys = msg.0;
        self.publish_keys();
    }
}

/// Replace one peer's published keys (already journaled).
#[derive(Message)]
#[rtype(result = "()")]
pub struct InstallPeerKeys {
    /// The peer's node id.
    pub node_id: String,
    /// Its key records; their kids have been checked against their public keys.
    pub keys: Vec<PublicKeyRecord>,
}

impl Handler<InstallPeerKeys> for Verifier {
    type Result = ();

    fn handle(&mut self, msg: InstallPeerKeys, _: &mut Self::Context) {
        self.peer_keys.insert(msg.node_id, msg.keys);
        self.publish_keys();
    }
}

/// Apply durable revocations to the deny list. Answers how many changed it.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Deny(pub Vec<Revocation>);

impl Handler<Deny> for Verifier {
    type Result = usize;

    fn handle(&mut self, msg: Deny, _: &mut Self::Context) -> usize {
        let now_ms = self.clock.now_ms();
        let changed = msg
            .0
            .into_iter()
            .filter(|r| r.expires_ms > now_ms)
            .filter(|r| self.view.deny.insert(r.clone()))
            .count();
        metrics::gauge!(m::DENY_LIST_ENTRIES).set(self.view.deny.len() as f64);
        changed
    }
}
