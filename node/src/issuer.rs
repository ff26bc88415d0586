//! The issuer actor: owns the signing-key ring and the state of refresh families.
//!
//! Signing itself happens in the request handlers with the [`Signer`] this actor
//! publishes, so issuing an access token never waits on the actor. What must be
//! decided in one place goes through it: key rotation, and whether a refresh
//! token's generation is still unspent.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use arc_swap::ArcSwap;

use crate::clock::SharedClock;
use crate::journal::Record;
use crate::keys::{KeyRing, RotateError, Schedule};
use crate::metrics as m;
use crate::tokens::Signer;
use crate::verifier::actor::{InstallLocalKeys, Verifier};
use crate::verifier::PublishedKey;

/// How often the key schedule is checked.
const TICK: Duration = Duration::from_secs(1);

/// The signer request handlers use; swapped when a new key starts signing.
pub type SignerSlot = Arc<ArcSwap<Signer>>;

/// What is known about a family whose tokens have been refreshed.
#[derive(Debug, Clone)]
struct FamilyState {
    /// The lowest generation that may be spent next; anything older is reuse.
    next_generation: u32,
    /// The node that spent `next_generation - 1` (empty if unknown); another spender of
    /// it is a fork.
    spender: String,
    /// When the state can be dropped, Unix ms (family end plus its last token's life).
    expires_ms: u64,
}

/// Owns keys and refresh families.
pub struct Issuer {
    ring: KeyRing,
    schedule: Schedule,
    families: HashMap<String, FamilyState>,
    signer: SignerSlot,
    verifier: Addr<Verifier>,
    clock: SharedClock,
    /// This node's id, recorded as the spender of refreshes it accepts.
    node_id: String,
}

impl Issuer {
    /// An issuer over a loaded key ring, with the spent generations replayed from the
    /// journal.
    pub fn new(
        ring: KeyRing,
        schedule: Schedule,
        replayed: &[Record],
        signer: SignerSlot,
        verifier: Addr<Verifier>,
        clock: SharedClock,
        node_id: String,
    ) -> Self {
        let families = HashMap::new();
        let mut issuer = Self {
            ring,
            schedule,
            families,
            signer,
            verifier,
            clock,
            node_id,
        };
        for record in replayed {
            if let Record::RefreshUsed {
                family,
                generation,
                expires_ms,
                spender,
            } = record
            {
                issuer.spend(family, *generation, *expires_ms, spender);
            }
        }
        issuer
    }

    /// The key ring's live keys as published by node `owner`.
    pub fn published(ring: &KeyRing, owner: &str, now_ms: u64) -> Vec<PublishedKey> {
        ring.live(now_ms)
            .map(|k| PublishedKey::from_record(&k.public_record(), owner, now_ms))
            .collect()
    }

    /// The signer for the key that signs at `now_ms`.
    pub fn signer_for(ring: &KeyRing, now_ms: u64) -> Option<Signer> {
        ring.signing(now_ms).map(Signer::new)
    }

    fn spend(&mut self, family: &str, generation: u32, expires_ms: u64, spender: &str) {
        let state = self
            .families
            .entry(family.to_owned())
            .or_insert(FamilyState {
                next_generation: 0,
                spender: String::new(),
                expires_ms,
            });
        if generation + 1 > state.next_generation {
            state.next_generation = generation + 1;
            spender.clone_into(&mut state.spender);
        }
    }

    /// Applies the schedule: rotate if due, retire expired keys, switch the signer.
    fn tick(&mut self) {
        let now = self.clock.now_ms();
        let mut changed = false;
        if self.ring.rotation_due(now, &self.schedule) {
            changed |= self.rotate(now).is_ok();
        }
        let before = self.ring.live(now).count();
        if self.ring.prune(now) {
            changed = true;
            if let Err(error) = self.ring.save() {
                tracing::error!(%error, "could not persist key ring after retiring a key");
            }
            tracing::info!(
                retired = before - self.ring.live(now).count(),
                "signing key removed"
            );
        }
        if let Some(signing) = self.ring.signing(now) {
            if signing.kid != self.signer.load().kid() {
                tracing::info!(kid = %signing.kid, "new signing key active");
                self.signer.store(Arc::new(Signer::new(signing)));
                changed = true;
            }
        }
        if changed {
            self.verifier.do_send(InstallLocalKeys(Self::published(
                &self.ring,
                &self.node_id,
                now,
            )));
        }
        self.families.retain(|_, f| f.expires_ms > now);
        self.export_key_gauges(now);
    }

    /// Publishes when the signing key took over and the rotation period, from which an
    /// alert can tell that a scheduled rotation is overdue.
    fn export_key_gauges(&self, now: u64) {
        if let Some(signing) = self.ring.signing(now) {
            let activated = signing.activate_ms as f64 / 1000.0;
            metrics::gauge!(m::SIGNING_KEY_ACTIVATED).set(activated);
        }
        let period = self.schedule.rotation_period_ms as f64 / 1000.0;
        metrics::gauge!(m::KEY_ROTATION_PERIOD).set(period);
    }

    /// Publishes a successor key; persists the ring before anything can use it.
    fn rotate(&mut self, now: u64) -> Result<PublishedKey, RotateFailure> {
        let kid = self.ring.rotate(now, &self.schedule)?.kid.clone();
        if let Err(error) = self.ring.save() {
            tracing::error!(%error, "could not persist rotated key ring; rotation undone");
            self.ring.unrotate(&kid);
            return Err(RotateFailure::Storage);
        }
        metrics::counter!(m::KEY_ROTATIONS).increment(1);
        tracing::info!(%kid, activates_in_ms = self.schedule.publish_ahead_ms, "signing key rotated");
        let published = Self::published(&self.ring, &self.node_id, now);
        self.verifier.do_send(InstallLocalKeys(published.clone()));
        Ok(published
            .into_iter()
            .find(|k| k.kid == kid)
            .expect("rotated key is live"))
    }
}

impl Actor for Issuer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.export_key_gauges(self.clock.now_ms());
        ctx.run_interval(TICK, |this, _| this.tick());
    }
}

/// Why a rotation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RotateFailure {
    /// Refused by the schedule.
    #[error(transparent)]
    Refused(#[from] RotateError),
    /// The key ring could not be written.
    #[error("the key ring could not be written to disk")]
    Storage,
}

/// Rotate now (admin API).
#[derive(Message)]
#[rtype(result = "Result<PublishedKey, RotateFailure>")]
pub struct Rotate;

impl Handler<Rotate> for Issuer {
    type Result = Result<PublishedKey, RotateFailure>;

    fn handle(&mut self, _: Rotate, _: &mut Self::Context) -> Self::Result {
        self.rotate(self.clock.now_ms())
    }
}

/// Apply the key schedule now rather than at the next tick.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Tick;

impl Handler<Tick> for Issuer {
    type Result = ();

    fn handle(&mut self, _: Tick, _: &mut Self::Context) {
        self.tick();
    }
}

/// The live keys with their schedule.
#[derive(Message)]
#[rtype(result = "Vec<PublishedKey>")]
pub struct ListKeys;

impl Handler<ListKeys> for Issuer {
    type Result = MessageResult<ListKeys>;

    fn handle(&mut self, _: ListKeys, _: &mut Self::Context) -> Self::Result {
        MessageResult(Self::published(
            &self.ring,
            &self.node_id,
            self.clock.now_ms(),
        ))
    }
}

/// Spend one refresh-token generation. `Err` means it was spent before: reuse.
#[derive(Message)]
#[rtype(result = "Result<(), RefreshReused>")]
pub struct SpendRefresh {
    /// Family id.
    pub family: String,
    /// Generation presented.
    pub generation: u32,
    /// When the family's state can be forgotten, Unix ms.
    pub expires_ms: u64,
}

/// The generation presented was already spent.
#[derive(Debug, thiserror::Error)]
#[error("refresh token was already used")]
pub struct RefreshReused;

impl Handler<SpendRefresh> for Issuer {
    type Result = Result<(), RefreshReused>;

    fn handle(&mut self, msg: SpendRefresh, _: &mut Self::Context) -> Self::Result {
        let expected = self
            .families
            .get(&msg.family)
            .map_or(0, |f| f.next_generation);
        // Only an older generation is reuse. A newer one proves its predecessor was
        // spent on another node whose spend has not reached us yet: accept it.
        if msg.generation < expected {
            return Err(RefreshReused);
        }
        let node_id = self.node_id.clone();
        self.spend(&msg.family, msg.generation, msg.expires_ms, &node_id);
        Ok(())
    }
}

/// Whether a refresh-token generation may still be spent (for introspection).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct IsUnspent {
    /// Family id.
    pub family: String,
    /// Generation presented.
    pub generation: u32,
}

impl Handler<IsUnspent> for Issuer {
    type Result = bool;

    fn handle(&mut self, msg: IsUnspent, _: &mut Self::Context) -> bool {
        let expected = self
            .families
            .get(&msg.family)
            .map_or(0, |f| f.next_generation);
        msg.generation >= expected
    }
}

/// Undo a spend whose record could not be made durable.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unspend {
    /// Family id.
    pub family: String,
    /// The generation that was spent.
    pub generation: u32,
}

impl Handler<Unspend> for Issuer {
    type Result = ();

    fn handle(&mut self, msg: Unspend, _: &mut Self::Context) {
        if let Some(state) = self.families.get_mut(&msg.family) {
            if state.next_generation == msg.generation + 1 {
                // Who spent the generation before is no longer known here.
                state.next_generation = msg.generation;
                state.spender.clear();
            }
        }
    }
}

/// A spend another node accepted, learned by gossip.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerSpend {
    /// Family id.
    pub family: String,
    /// Generation spent.
    pub generation: u32,
    /// Retention end, Unix ms.
    pub expires_ms: u64,
    /// The node that accepted it.
    pub spender: String,
}

impl PeerSpend {
    /// The journal record of this spend.
    pub fn record(&self) -> Record {
        Record::RefreshUsed {
            family: self.family.clone(),
            generation: self.generation,
            expires_ms: self.expires_ms,
            spender: self.spender.clone(),
        }
    }
}

/// Merge peers' spends. Answers the families that forked: one generation spent by two
/// different nodes inside the gossip window. Those must be revoked.
#[derive(Message)]
#[rtype(result = "Vec<PeerSpend>")]
pub struct MergeSpends(pub Vec<PeerSpend>);

impl Handler<MergeSpends> for Issuer {
    type Result = MessageResult<MergeSpends>;

    fn handle(&mut self, msg: MergeSpends, _: &mut Self::Context) -> Self::Result {
        let mut forks = Vec::new();
        for spend in msg.0 {
            let known = self.families.get(&spend.family);
            let forked = known.is_some_and(|state| {
                state.next_generation == spend.generation + 1
                    && !state.spender.is_empty()
                    && state.spender != spend.spender
            });
            if forked {
                forks.push(spend);
                continue;
            }
            self.spend(
                &spend.family,
                spend.generation,
                spend.expires_ms,
                &spend.spender,
            );
        }
        MessageResult(forks)
    }
}

/// Every family's latest spend, for a catch-up snapshot.
#[derive(Message)]
#[rtype(result = "Vec<PeerSpend>")]
pub struct ListSpends;

impl Handler<ListSpends> for Issuer {
    type Result = MessageResult<ListSpends>;

    fn handle(&mut self, _: ListSpends, _: &mut Self::Context) -> Self::Result {
        let spends = self
            .families
            .iter()
            .filter(|(_, state)| state.next_generation > 0)
            .map(|(family, state)| PeerSpend {
                family: family.clone(),
                generation: state.next_generation - 1,
                expires_ms: state.expires_ms,
                spender: state.spender.clone(),
            })
            .collect();
        MessageResult(spends)
    }
}
