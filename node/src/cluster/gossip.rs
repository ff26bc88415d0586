//! The gossip actor: publishes what this node originates into its chitchat state and
//! merges what peers publish into the local deny list, key set and refresh families.
//!
//! Each round it (1) writes pending revocation and spend batches as new immutable keys
//! and the current public keys, (2) collects every peer key whose version is newer than
//! what it has processed, and (3) applies them: revocations are journaled before they
//! enter the deny list, exactly as local ones; spends are merged by the issuer, which
//! reports forks; key sets are journaled and installed in the verifier. The round runs
//! with the actor's mailbox held, so rounds never overlap.
//!
//! On [`Leave`] (graceful shutdown) it publishes what is pending, marks this incarnation
//! as left and pushes that to the live peers; they show it as `left`, not `dead`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chitchat::{Chitchat, ChitchatHandle, ChitchatId};
use tokio::sync::Mutex;

pub use super::merge::{install_keys, merge_revocations, merge_spends, NotJournaled, Source};
use super::rates::RateExchange;
use super::wire::{self, Spend};
use crate::abuse::budget::Report;
use crate::abuse::login::TrustGrant;
use crate::abuse::shares::{Seat, ShareReport};
use crate::abuse::Shield;
use crate::clock::SharedClock;
use crate::issuer::{Issuer, ListKeys};
use crate::journal::Record;
use crate::keys::PublicKeyRecord;
use crate::metrics as m;
use crate::revocation::Revocation;
use crate::store::Store;
use crate::verifier::actor::Verifier;
use crate::verifier::{PublishedKey, VerifyView};

/// Local rounds (publish and merge) per chitchat gossip interval.
const ROUNDS_PER_INTERVAL: u32 = 4;
/// Shortest pause between local rounds.
const MIN_ROUND: Duration = Duration::from_millis(5);

/// The actors and views a gossip round talks to.
#[derive(Clone)]
pub struct Peers {
    /// Durable journal.
    pub store: Addr<Store>,
    /// Deny list and key set writer.
    pub verifier: Addr<Verifier>,
    /// Keys and refresh families.
    pub issuer: Addr<Issuer>,
    /// Read side, to skip revocations already known.
    pub view: Arc<VerifyView>,
    /// Clock for lag measurement.
    pub clock: SharedClock,
    /// Budgets whose near-limit counts are gossiped.
    pub shield: Arc<Shield>,
}

/// What this node originated, replayed from its journal at start.
#[derive(Debug, Default)]
pub struct Originated {
    /// Live revocations it made.
    pub revocations: Vec<Revocation>,
    /// Live refresh spends it accepted.
    pub spends: Vec<Spend>,
}

impl Originated {
    /// Picks this node's own live records out of a journal replay.
    pub fn from_journal(records: &[Record], node_id: &str) -> Self {
        let mut own = Self::default();
        for record in records {
            match record {
                Record::RevokeOwn(entry) => own.revocations.push(entry.clone()),
                Record::RefreshUsed {
                    family,
                    generation,
                    expires_ms,
                    spender,
                } if spender == node_id => {
                    let spend = Spend {
                        family: family.clone(),
                        generation: *generation,
                        expires_ms: *expires_ms,
                    };
                    own.spends.push(spend);
                }
                _ => {}
            }
        }
        own
    }
}

/// One member as the admin API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Member {
    /// Node id.
    pub node_id: String,
    /// Restart generation.
    pub generation: u64,
    /// Gossip address.
    pub gossip_addr: String,
    /// Region label.
    pub region: Option<String>,
    /// Base URL of its HTTP API, for snapshots.
    pub http: Option<String>,
    /// `live`, `dead`, `left` (it said goodbye) or `self`.
    pub state: &'static str,
    /// When its heartbeat last advanced, Unix ms (this node's view).
    pub last_heard_ms: Option<u64>,
    /// Key ids it publishes.
    pub kids: Vec<String>,
    /// Highest state version seen from it.
    pub max_version: u64,
}

/// Owns the chitchat instance and the bookkeeping of what was merged.
pub struct Gossip {
    chitchat: Arc<Mutex<Chitchat>>,
    /// The gossip server; shared with the leave sequence, which pushes and stops it.
    handle: Arc<ChitchatHandle>,
    /// Set once leaving began: no more rounds.
    leaving: bool,
    node_id: String,
    interval: Duration,
    peers: Peers,
    pending_revocations: Vec<Revocation>,
    pending_spends: Vec<Spend>,
    next_seq: u64,
    /// This node's batch keys and when their last entry expires.
    own_batches: Vec<(String, u64)>,
    /// Per peer incarnation, the highest key version already merged.
    merged: HashMap<ChitchatId, u64>,
    /// Per member, last heartbeat seen and when it advanced.
    heard: HashMap<ChitchatId, (String, u64)>,
    live: Vec<ChitchatId>,
    members: Vec<Member>,
    /// Budget counts sent and received.
    rates: RateExchange,
}

impl Gossip {
    /// An actor over a started chitchat. `own` is what this node originated before a
    /// restart (from its journal): published again, since a crash may have come before
    /// gossip carried it. Peers that already have it drop it as known.
    pub fn new(
        handle: ChitchatHandle,
        node_id: String,
        interval: Duration,
        peers: Peers,
        own: Originated,
    ) -> Self {
        Self {
            chitchat: handle.chitchat(),
            handle: Arc::new(handle),
            leaving: false,
            node_id,
            interval,
            peers,
            pending_revocations: own.revocations,
            pending_spends: own.spends,
            next_seq: 0,
            own_batches: Vec::new(),
            merged: HashMap::new(),
            heard: HashMap::new(),
            live: Vec::new(),
            members: Vec::new(),
            rates: RateExchange::default(),
        }
    }

    fn round(&mut self, ctx: &mut Context<Self>) {
        if self.leaving {
            return;
        }
        let outgoing = self.take_outgoing();
        let merged = self.merged.clone();
        let chitchat = self.chitchat.clone();
        let peers = self.peers.clone();
        let exchange = async move {
            let keys = peers.issuer.send(ListKeys).await.unwrap_or_default();
            let keys: Vec<PublicKeyRecord> = keys.iter().map(PublishedKey::record).collect();
            let mut chitchat = chitchat.lock().await;
            publish(&mut chitchat, outgoing, &keys);
            collect(&chitchat, &merged)
        };
        let apply = exchange.into_actor(self).then(|mut round, this, _| {
            this.observe(&round);
            let marks: Vec<(ChitchatId, u64)> = round
                .updates
                .iter()
                .map(|u| (u.from.clone(), u.version))
                .collect();
            this.merge_exchanges(&mut round.updates);
            let peers = this.peers.clone();
            let own_id = this.node_id.clone();
            async move { (apply(round.updates, &peers, &own_id).await, marks) }.into_actor(this)
        });
        let finish = apply.map(|(applied, marks), this, _| {
            // Advance only past what is durable; a failed round is merged again.
            let Ok(forks) = applied else { return };
            this.pending_revocations.extend(forks);
            for (from, version) in marks {
                let mark = this.merged.entry(from).or_default();
                *mark = (*mark).max(version);
            }
        });
        ctx.wait(finish);
    }

    /// New batch keys to write, and this node's batch keys whose every entry has
    /// expired (deleted so that gossip state stays bounded).
    fn take_outgoing(&mut self) -> Outgoing {
        let mut out = Outgoing::default();
        let revocations = std::mem::take(&mut self.pending_revocations);
        for (value, range) in wire::batches(&revocations) {
            let expires = revocations[range]
                .iter()
                .map(|r| r.expires_ms)
                .max()
                .unwrap_or(0);
            self.add_batch(&mut out, wire::REVOCATIONS, value, expires);
        }
        let spends = std::mem::take(&mut self.pending_spends);
        for (value, range) in wire::batches(&spends) {
            let expires = spends[range]
                .iter()
                .map(|s| s.expires_ms)
                .max()
                .unwrap_or(0);
            self.add_batch(&mut out, wire::SPENDS, value, expires);
        }
        let now = self.peers.clock.now_ms();
        out.rates = self.rates.outgoing(&self.peers.shield, now);
        out.shares = self.rates.shares_out(&self.peers.shield, now);
        out.trust = wire::encode(&self.peers.shield.login.recent_trust(now));
        let (expired, live) = std::mem::take(&mut self.own_batches)
            .into_iter()
            .partition(|(_, expires)| *expires <= now);
        self.own_batches = live;
        out.delete = expired.into_iter().map(|(key, _)| key).collect();
        out
    }

    fn add_batch(&mut self, out: &mut Outgoing, prefix: &str, value: String, expires: u64) {
        let key = format!("{prefix}{:08}", self.next_seq);
        self.next_seq += 1;
        self.own_batches.push((key.clone(), expires));
        out.set.push((key, value));
    }

    /// Takes the peers' budget reports and trusted login networks out of `updates` and
    /// applies them at once: they need no journal, only the latest of each peer counts.
    fn merge_exchanges(&mut self, updates: &mut Vec<Update>) {
        let now = self.peers.clock.now_ms();
        let shield = self.peers.shield.clone();
        let own_id = self.node_id.clone();
        updates.retain(|update| {
            let from: &str = &update.from.node_id;
            let decoded = match update.key.as_str() {
                wire::RATES => wire::decode::<Vec<Report>>(&update.value)
                    .map(|reports| self.rates.incoming(from, reports, &shield, now)),
                wire::SHARES => wire::decode::<Vec<ShareReport>>(&update.value)
                    .map(|reports| self.rates.shares_in(from, &own_id, reports, &shield, now)),
                wire::TRUST => wire::decode::<Vec<TrustGrant>>(&update.value)
                    .map(|grants| shield.login.trust(&grants, now)),
                _ => return true,
            };
            if decoded.is_none() {
                metrics::counter!(m::GOSSIP_REJECTED, "reason" => "bad_value").increment(1);
            }
            false
        });
    }

    /// Updates membership views and logs joins, departures and deaths.
    fn observe(&mut self, round: &Round) {
        let now = self.peers.clock.now_ms();
        if self.live.is_empty() && !round.live.is_empty() {
            tracing::info!(peers = round.live.len(), "joined the cluster");
        }
        for id in round.live.iter().filter(|id| !self.live.contains(id)) {
            tracing::info!(node.id = %id.node_id, addr = %id.gossip_advertise_addr, "node joined");
        }
        for id in self.live.iter().filter(|id| !round.live.contains(id)) {
            if round.left.contains(id) {
                tracing::info!(node.id = %id.node_id, "node left");
            } else {
                tracing::info!(node.id = %id.node_id, "node declared dead");
            }
        }
        self.live = round.live.clone();
        for (id, heartbeat) in &round.heartbeats {
            let entry = self.heard.entry(id.clone()).or_insert((String::new(), now));
            if entry.0 != *heartbeat {
                *entry = (heartbeat.clone(), now);
            }
        }
        self.members = round
            .members
            .iter()
            .cloned()
            .map(|mut member| {
                let key = round.ids.iter().find(|id| {
                    *id.node_id == member.node_id && id.generation_id == member.generation
                });
                member.last_heard_ms = key.and_then(|id| self.heard.get(id)).map(|h| h.1);
                member
            })
            .collect();
        self.peers
            .shield
            .set_seat(seat(&self.members, &self.node_id));
        for (state, count) in super::leave::census(&self.members) {
            metrics::gauge!(m::CLUSTER_MEMBERS, "state" => state).set(count as f64);
        }
    }
}

impl Actor for Gossip {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Rounds run four times per gossip interval: what a node originates enters its
        // gossip state, and what peers deliver is applied, a quarter interval after it
        // arrives instead of up to a whole one; chitchat's own exchanges keep the interval.
        let cadence = (self.interval / ROUNDS_PER_INTERVAL).max(MIN_ROUND);
        ctx.run_interval(cadence, |this, ctx| this.round(ctx));
    }
}

/// This node's place among the live members, sorted by node id: what strict budgets
/// derive base shares from.
fn seat(members: &[Member], own_id: &str) -> Seat {
    let mut ids: Vec<&str> = members
        .iter()
        .filter(|m| m.state == "live" || m.state == "self")
        .map(|m| m.node_id.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let index = ids.iter().position(|id| *id == own_id).unwrap_or(0);
    Seat {
        index,
        members: ids.len().max(1),
    }
}

/// One value a peer wrote, not yet merged.
struct Update {
    from: ChitchatId,
    key: String,
    value: String,
    version: u64,
}

/// What one round collected under the chitchat lock.
struct Round {
    updates: Vec<Update>,
    /// Live peers: the failure detector's, less those that said they left.
    live: Vec<ChitchatId>,
    /// Peers that said they left.
    left: Vec<ChitchatId>,
    ids: Vec<ChitchatId>,
    heartbeats: Vec<(ChitchatId, String)>,
    members: Vec<Member>,
}

/// Keys this node writes in a round, and keys it deletes.
#[derive(Default)]
struct Outgoing {
    set: Vec<(String, String)>,
    delete: Vec<String>,
    /// The `rate` value, written when it changed.
    rates: String,
    /// The `share` value (strict mode only), written when it changed.
    shares: Option<String>,
    /// The `trust` value, written when it changed.
    trust: String,
}

fn publish(chitchat: &mut Chitchat, outgoing: Outgoing, keys: &[PublicKeyRecord]) {
    let state = chitchat.self_node_state();
    for (key, value) in outgoing.set {
        state.set(key, value);
    }
    for key in outgoing.delete {
        state.delete(&key);
    }
    if state.get(wire::RATES) != Some(outgoing.rates.as_str()) {
        state.set(wire::RATES, outgoing.rates);
    }
    if let Some(shares) = outgoing.shares {
        if state.get(wire::SHARES) != Some(shares.as_str()) {
            state.set(wire::SHARES, shares);
        }
    }
    if state.get(wire::TRUST) != Some(outgoing.trust.as_str()) {
        state.set(wire::TRUST, outgoing.trust);
    }
    let keys = wire::encode(&keys.to_vec());
    if state.get(wire::KEYS) != Some(keys.as_str()) {
        state.set(wire::KEYS, keys);
    }
}

fn collect(chitchat: &Chitchat, merged: &HashMap<ChitchatId, u64>) -> Round {
    let own = chitchat.self_chitchat_id().clone();
    let left = super::leave::departed(chitchat);
    let live: Vec<ChitchatId> = chitchat
        .live_nodes()
        .filter(|id| **id != own && !left.contains(id))
        .cloned()
        .collect();
    let mut round = Round {
        updates: Vec::new(),
        live,
        left,
        ids: Vec::new(),
        heartbeats: Vec::new(),
        members: Vec::new(),
    };
    for (id, state) in chitchat.node_states() {
        round.ids.push(id.clone());
        round
            .heartbeats
            .push((id.clone(), format!("{:?}", state.heartbeat())));
        round.members.push(member(id, state, &own, &round.live));
        if *id == own {
            continue;
        }
        let mark = merged.get(id).copied().unwrap_or(0);
        for (key, versioned) in state.key_values_including_deleted() {
            if versioned.version > mark && !versioned.is_deleted() {
                let (key, value) = (key.to_owned(), versioned.value.clone());
                round.updates.push(Update {
                    from: id.clone(),
                    key,
                    value,
                    version: versioned.version,
                });
            }
        }
    }
    round
}

fn member(
    id: &ChitchatId,
    state: &chitchat::NodeState,
    own: &ChitchatId,
    live: &[ChitchatId],
) -> Member {
    let kids = state
        .get(wire::KEYS)
        .and_then(wire::decode::<Vec<PublicKeyRecord>>)
        .map(|keys| keys.into_iter().map(|k| k.kid).collect())
        .unwrap_or_default();
    let status = if id == own {
        "self"
    } else if super::leave::has_left(state) {
        "left"
    } else if live.contains(id) {
        "live"
    } else {
        "dead"
    };
    Member {
        node_id: id.node_id.to_string(),
        generation: id.generation_id,
        gossip_addr: id.gossip_advertise_addr.to_string(),
        region: state.get(wire::REGION).map(str::to_owned),
        http: state.get(wire::HTTP).map(str::to_owned),
        state: status,
        last_heard_ms: None,
        kids,
        max_version: state.max_version(),
    }
}

/// Merges peers' updates; returns fork revocations that must be published in turn.
async fn apply(
    updates: Vec<Update>,
    peers: &Peers,
    own_id: &str,
) -> Result<Vec<Revocation>, NotJournaled> {
    let mut revocations = Vec::new();
    let mut spends = Vec::new();
    let mut keys = Vec::new();
    for update in updates {
        let from: &str = &update.from.node_id;
        if from == own_id {
            continue;
        }
        let decoded = if update.key.starts_with(wire::REVOCATIONS) {
            wire::decode::<Vec<Revocation>>(&update.value).map(|batch| revocations.extend(batch))
        } else if update.key.starts_with(wire::SPENDS) {
            let batch = wire::decode::<Vec<Spend>>(&update.value);
            batch.map(|b| spends.extend(b.into_iter().map(|s| s.by(from))))
        } else if update.key == wire::KEYS {
            let decoded = wire::decode::<Vec<PublicKeyRecord>>(&update.value);
            decoded.map(|k| keys.push((from.to_owned(), wire::consistent_keys(k))))
        } else {
            Some(())
        };
        if decoded.is_none() {
            metrics::counter!(m::GOSSIP_REJECTED, "reason" => "bad_value").increment(1);
            tracing::warn!(node.id = from, key = %update.key, "undecodable gossip value ignored");
        }
    }
    for (owner, owner_keys) in keys {
        install_keys(owner, owner_keys, peers).await?;
    }
    merge_revocations(revocations, peers, Source::Gossip).await?;
    merge_spends(spends, peers).await
}

/// Publish revocations this node made.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PublishRevocations(pub Vec<Revocation>);

impl Handler<PublishRevocations> for Gossip {
    type Result = ();

    fn handle(&mut self, msg: PublishRevocations, _: &mut Self::Context) {
        self.pending_revocations.extend(msg.0);
    }
}

/// Publish a refresh generation this node accepted.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PublishSpend(pub Spend);

impl Handler<PublishSpend> for Gossip {
    type Result = ();

    fn handle(&mut self, msg: PublishSpend, _: &mut Self::Context) {
        self.pending_spends.push(msg.0);
    }
}

/// The membership as last observed.
#[derive(Message)]
#[rtype(result = "Vec<Member>")]
pub struct Members;

impl Handler<Members> for Gossip {
    type Result = MessageResult<Members>;

    fn handle(&mut self, _: Members, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.members.clone())
    }
}

/// Leave the cluster (graceful shutdown): publish what is pending, mark this
/// incarnation as left, push that to every live peer a few times, then stop gossiping.
/// Answers how many live peers were told.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Leave;

impl Handler<Leave> for Gossip {
    type Result = ResponseFuture<usize>;

    fn handle(&mut self, _: Leave, _: &mut Self::Context) -> Self::Result {
        self.leaving = true;
        let outgoing = self.take_outgoing();
        let chitchat = self.chitchat.clone();
        let issuer = self.peers.issuer.clone();
        let handle = self.handle.clone();
        let interval = self.interval;
        let now_ms = self.peers.clock.now_ms();
        Box::pin(async move {
            let keys = issuer.send(ListKeys).await.unwrap_or_default();
            let keys: Vec<PublicKeyRecord> = keys.iter().map(PublishedKey::record).collect();
            let peers = {
                let mut chitchat = chitchat.lock().await;
                publish(&mut chitchat, outgoing, &keys);
                super::leave::announce(&mut chitchat, now_ms)
            };
            super::leave::push(&handle, &peers, interval).await;
            peers.len()
        })
    }
}
