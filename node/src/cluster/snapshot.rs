//! Catch-up by snapshot: a node that starts, restarts or rejoins fetches the whole
//! shared state from a live peer over HTTP instead of waiting for gossip to trickle it
//! in, and reports ready only once it has applied it.
//!
//! Both directions are sealed with the cluster key (see [`Sealer`]): the request
//! carries a sealed, timestamped marker, the response body is a sealed bincode
//! [`Snapshot`]. Peers and on-path observers without the secret can neither fetch nor
//! read nor forge one.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::gossip::{
    install_keys, merge_revocations, merge_spends, Members, NotJournaled, Peers,
    PublishRevocations, Source,
};
use super::seal::Sealer;
use super::transport::REPLAY_WINDOW_MS;
use super::wire;
use crate::issuer::{ListSpends, PeerSpend};
use crate::keys::PublicKeyRecord;
use crate::metrics as m;
use crate::node::Handles;
use crate::revocation::Revocation;

/// Path of the snapshot endpoint.
pub const PATH: &str = "/cluster/v1/snapshot";
/// Header carrying the sealed request marker.
pub const HEADER: &str = "x-portcullis-cluster";
const REQUEST_MARKER: &[u8] = b"portcullis snapshot request v1";
/// Largest snapshot accepted (about ten million revocations).
const MAX_SNAPSHOT: usize = 1 << 30;

/// Everything a node needs to enforce what the cluster knows.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// Node that produced it.
    pub node_id: String,
    /// Every live revocation it holds, whoever originated it.
    pub revocations: Vec<Revocation>,
    /// The latest spent generation of every family it knows.
    pub spends: Vec<PeerSpend>,
    /// Every node's public keys it trusts, by owner.
    pub keys: Vec<(String, Vec<PublicKeyRecord>)>,
}

/// The sealed header value for a snapshot request made now.
pub fn request_header(sealer: &Sealer, now_ms: u64) -> String {
    URL_SAFE_NO_PAD.encode(sealer.seal_message(REQUEST_MARKER, now_ms))
}

/// Whether a request header is a fresh, authentic snapshot request.
pub fn request_is_authentic(sealer: &Sealer, header: &str, now_ms: u64) -> bool {
    let Ok(sealed) = URL_SAFE_NO_PAD.decode(header) else {
        return false;
    };
    match sealer.open(&sealed) {
        Ok((_, sent_at, marker)) => {
            marker == REQUEST_MARKER && sent_at.abs_diff(now_ms) <= REPLAY_WINDOW_MS
        }
        Err(_) => false,
    }
}

/// Builds this node's snapshot.
pub async fn build(node: &Handles) -> Snapshot {
    let spends = node.issuer.send(ListSpends).await.unwrap_or_default();
    let mut keys: Vec<(String, Vec<PublicKeyRecord>)> = Vec::new();
    for key in node.view.keys().published() {
        match keys.iter_mut().find(|(owner, _)| *owner == key.owner) {
            Some((_, records)) => records.push(key.record()),
            None => keys.push((key.owner.clone(), vec![key.record()])),
        }
    }
    Snapshot {
        node_id: node.node_id.clone(),
        revocations: node.view.deny.snapshot(),
        spends,
        keys,
    }
}

/// Seals a snapshot for the wire.
pub fn seal(sealer: &Sealer, snapshot: &Snapshot, now_ms: u64) -> Vec<u8> {
    let bytes = bincode::serde::encode_to_vec(snapshot, bincode::config::standard())
        .expect("snapshots always encode");
    sealer.seal_message(&bytes, now_ms)
}

fn open(sealer: &Sealer, body: &[u8], now_ms: u64) -> Result<Snapshot, String> {
    let (_, sent_at, bytes) = sealer
        .open(body)
        .map_err(|e| format!("snapshot rejected: {e}"))?;
    if sent_at.abs_diff(now_ms) > REPLAY_WINDOW_MS {
        return Err("snapshot is stale".into());
    }
    let config = bincode::config::standard().with_limit::<MAX_SNAPSHOT>();
    let (snapshot, _): (Snapshot, usize) = bincode::serde::decode_from_slice(&bytes, config)
        .map_err(|e| format!("snapshot undecodable: {e}"))?;
    Ok(snapshot)
}

/// Gossip intervals a joining node waits, after its last newly live peer, before it
/// reports ready: peers a seed knows of turn live on this node a round or two apart.
pub const SETTLE_INTERVALS: u32 = 5;

/// Counts of what a catch-up applied.
#[derive(Debug, Default)]
pub struct Applied {
    /// Revocations in the snapshot.
    pub revocations: usize,
    /// Spends in the snapshot.
    pub spends: usize,
    /// Peers whose keys were installed.
    pub key_owners: usize,
}

/// Applies a peer's snapshot through the same durable paths as gossip. Returns what it
/// held and the families found forked, whose revocations the caller must publish.
pub async fn apply(
    snapshot: Snapshot,
    peers: &Peers,
    own_id: &str,
) -> Result<(Applied, Vec<Revocation>), NotJournaled> {
    let others: Vec<(String, Vec<PublicKeyRecord>)> = snapshot
        .keys
        .into_iter()
        .filter(|(owner, _)| owner != own_id)
        .collect();
    let applied = Applied {
        revocations: snapshot.revocations.len(),
        spends: snapshot.spends.len(),
        key_owners: others.len(),
    };
    for (owner, keys) in others {
        install_keys(owner, wire::consistent_keys(keys), peers).await?;
    }
    merge_revocations(snapshot.revocations, peers, Source::Snapshot).await?;
    let forks = merge_spends(snapshot.spends, peers).await?;
    if !forks.is_empty() {
        tracing::warn!(
            forks = forks.len(),
            "snapshot shows families spent here and elsewhere"
        );
    }
    Ok((applied, forks))
}

/// Waits for a live peer, fetches its snapshot, applies it and marks the node ready.
///
/// A joining node learns its peers one by one (each must be heard from before it counts
/// as live), so the first live peer is often not the only one, and may be the one that
/// holds least. Readiness therefore waits until every peer that became live has been
/// caught up from, and no new one has appeared for `settle`. Gives up waiting after
/// `timeout` and serves with what it has (logged and counted).
pub async fn catch_up(
    node: Arc<Handles>,
    peers: Peers,
    sealer: Arc<Sealer>,
    timeout: Duration,
    settle: Duration,
) {
    let started = Instant::now();
    let mut done: HashSet<String> = HashSet::new();
    let mut last_new = Instant::now();
    while started.elapsed() < timeout {
        let fresh: Vec<String> = peer_urls(&node)
            .await
            .into_iter()
            .filter(|url| !done.contains(url))
            .collect();
        let caught_up = catch_up_from(&node, &peers, &sealer, &fresh).await;
        if !caught_up.is_empty() {
            last_new = Instant::now();
            done.extend(caught_up);
        }
        if !done.is_empty() && last_new.elapsed() >= settle {
            node.ready.store(true, Ordering::Relaxed);
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if done.is_empty() {
        metrics::counter!(m::CATCHUPS, "outcome" => "timeout").increment(1);
        tracing::warn!("no peer answered for catch-up; serving with local state only");
    }
    node.ready.store(true, Ordering::Relaxed);
}

/// Re-runs a catch-up each time chitchat reports that this node fell so far behind
/// that a peer reset its view of it (the signal arrives on `resets`).
pub async fn catch_up_on_reset(
    node: Arc<Handles>,
    peers: Peers,
    sealer: Arc<Sealer>,
    mut resets: tokio::sync::mpsc::UnboundedReceiver<()>,
) {
    while resets.recv().await.is_some() {
        while resets.try_recv().is_ok() {}
        tracing::info!("gossip reports this node lagging; catching up by snapshot");
        catch_up_once(&node, &peers, &sealer).await;
    }
}

/// One pass over the live peers, applying every snapshot obtained (one peer may lag
/// behind another, so the union is what counts); true if at least one was applied.
async fn catch_up_once(node: &Handles, peers: &Peers, sealer: &Sealer) -> bool {
    let urls = peer_urls(node).await;
    !catch_up_from(node, peers, sealer, &urls).await.is_empty()
}

/// Fetches and applies the snapshot of each peer in `urls`; returns those applied.
async fn catch_up_from(
    node: &Handles,
    peers: &Peers,
    sealer: &Sealer,
    urls: &[String],
) -> Vec<String> {
    // While a joining node settles, most passes have no new peer to ask.
    if urls.is_empty() {
        return Vec::new();
    }
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a plain HTTP client always builds");
    let mut applied_from = Vec::new();
    for url in urls {
        match fetch(&client, sealer, url, peers).await {
            Ok(snapshot) => {
                let from = snapshot.node_id.clone();
                let Ok((applied, forks)) = apply(snapshot, peers, &node.node_id).await else {
                    metrics::counter!(m::CATCHUPS, "outcome" => "failed").increment(1);
                    tracing::warn!(peer = %url, "catch-up from peer failed: journal write");
                    continue;
                };
                if let (Some(gossip), false) = (&node.gossip, forks.is_empty()) {
                    gossip.do_send(PublishRevocations(forks));
                }
                metrics::counter!(m::CATCHUPS, "outcome" => "ok").increment(1);
                tracing::info!(
                    from = %from,
                    revocations = applied.revocations,
                    spends = applied.spends,
                    peers_keys = applied.key_owners,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "catch-up from peer complete"
                );
                applied_from.push(url.clone());
            }
            Err(error) => {
                metrics::counter!(m::CATCHUPS, "outcome" => "failed").increment(1);
                tracing::warn!(peer = %url, %error, "catch-up from peer failed");
            }
        }
    }
    applied_from
}

async fn peer_urls(node: &Handles) -> Vec<String> {
    let Some(gossip) = &node.gossip else {
        return Vec::new();
    };
    let members = gossip.send(Members).await.unwrap_or_default();
    members
        .into_iter()
        .filter(|m| m.state == "live")
        .filter_map(|m| m.http)
        .collect()
}

async fn fetch(
    client: &reqwest::Client,
    sealer: &Sealer,
    base: &str,
    peers: &Peers,
) -> Result<Snapshot, String> {
    let url = format!("{}{PATH}", base.trim_end_matches('/'));
    let header = request_header(sealer, peers.clock.now_ms());
    let response = client
        .get(&url)
        .header(HEADER, header)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    if response
        .content_length()
        .is_some_and(|len| len > MAX_SNAPSHOT as u64)
    {
        return Err("snapshot larger than the limit".into());
    }
    let mut response = response;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_SNAPSHOT {
            return Err("snapshot larger than the limit".into());
        }
        body.extend_from_slice(&chunk);
    }
    open(sealer, &body, peers.clock.now_ms())
}
