//! Assembling a node: open the data directory, replay the journal, start the actors and
//! the HTTP server.
//!
//! [`start`] must run inside an actix `System`. It returns the bound address and the
//! server future; `main` awaits it, tests spawn it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use arc_swap::ArcSwap;
use metrics_exporter_prometheus::PrometheusHandle;

use chitchat::{spawn_chitchat, ChitchatConfig, ChitchatId, FailureDetectorConfig};

use crate::abuse::Shield;
use crate::clock::SharedClock;
use crate::cluster::gossip::{Gossip, Originated, Peers, PublishRevocations};
use crate::cluster::seal::Sealer;
use crate::cluster::snapshot::{catch_up, catch_up_on_reset, SETTLE_INTERVALS};
use crate::cluster::transport::SealedTransport;
use crate::cluster::wire;
use crate::config::{ClusterSettings, Config};
use crate::fsutil::{ensure_private_dir, write_atomic};
use crate::issuer::{Issuer, SignerSlot};
use crate::journal::{Journal, Record};
use crate::keys::{KeyRing, KeyRingError, Schedule};
use crate::metrics as m;
use crate::revocation::Revocation;
use crate::secrets::random_id;
use crate::store::{Append, Store};
use crate::verifier::actor::{Deny, Verifier};
use crate::verifier::VerifyView;

/// What request handlers share: configuration, the verification view and the actors.
pub struct Handles {
    /// Validated configuration.
    pub config: Arc<Config>,
    /// The node's clock.
    pub clock: SharedClock,
    /// Lock-free verification state.
    pub view: Arc<VerifyView>,
    /// The key that signs now.
    pub signer: SignerSlot,
    /// Keys and refresh families.
    pub issuer: Addr<Issuer>,
    /// The durable journal.
    pub store: Addr<Store>,
    /// Writer of the verification view.
    pub verifier: Addr<Verifier>,
    /// Prometheus exporter.
    pub metrics: PrometheusHandle,
    /// Whether `/readyz` reports ready.
    pub ready: AtomicBool,
    /// This node's id in the cluster (also used alone, as the spender of refreshes).
    pub node_id: String,
    /// The gossip actor, when the node is part of a cluster.
    pub gossip: Option<Addr<Gossip>>,
    /// Seals snapshots for peers, when the node is part of a cluster.
    pub sealer: Option<Arc<Sealer>>,
    /// Budgets, login defence and heuristics.
    pub shield: Arc<Shield>,
}

/// A revocation could not be made durable, so it was not applied or acknowledged.
#[derive(Debug, thiserror::Error)]
#[error("revocation not durable")]
pub struct NotDurable;

impl Handles {
    /// The one revocation path: journal (fsync) first, then the deny list and, in a
    /// cluster, the gossip queue. Returns only once the entry is durable and enforced
    /// here, so a caller may acknowledge it.
    pub async fn revoke(&self, entries: Vec<Revocation>) -> Result<(), NotDurable> {
        let records = entries.iter().cloned().map(Record::RevokeOwn).collect();
        match self.store.send(Append(records)).await {
            Ok(Ok(())) => {}
            _ => return Err(NotDurable),
        }
        for entry in &entries {
            let labels = [
                ("kind", entry.target.kind()),
                ("reason", entry.reason.as_str()),
            ];
            metrics::counter!(m::REVOCATIONS, &labels).increment(1);
        }
        if let Some(gossip) = &self.gossip {
            gossip.do_send(PublishRevocations(entries.clone()));
        }
        self.verifier
            .send(Deny(entries))
            .await
            .map_err(|_| NotDurable)?;
        Ok(())
    }

    /// Until when state about a refresh family ending at `family_expires_secs` must be
    /// kept: its last access token may be minted just before the end and live on.
    pub fn family_retention_ms(&self, family_expires_secs: u64) -> u64 {
        let tail = self.config.tokens.access_lifetime + self.config.tokens.leeway;
        family_expires_secs * 1000 + tail.as_millis() as u64
    }

    /// Until when a revocation of everything issued now must be kept.
    pub fn covering_expiry_ms(&self) -> u64 {
        let longest = self.config.longest_token_lifetime() + self.config.tokens.leeway;
        self.clock.now_ms() + longest.as_millis() as u64
    }
}

/// File holding the node id inside the data directory.
pub const NODE_ID_FILE: &str = "node-id";

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be created or secured.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The key ring is unreadable.
    #[error(transparent)]
    Keys(#[from] KeyRingError),
    /// The journal is unreadable.
    #[error("journal: {0}")]
    Journal(std::io::Error),
    /// Gossip could not start (e.g. its UDP port is taken).
    #[error("gossip: {0}")]
    Gossip(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The failure.
        source: std::io::Error,
    },
}

/// A started node.
pub struct RunningNode {
    /// The bound HTTP address (useful with port 0).
    pub addr: SocketAddr,
    /// Shared state, for tests and the binary.
    pub handles: Arc<Handles>,
    /// The HTTP server; await it to run until stopped.
    pub server: actix_web::dev::Server,
}

/// Starts a node. Must be called from within an actix system.
pub async fn start(config: Config, clock: SharedClock) -> Result<RunningNode, StartError> {
    let Recovered {
        journal,
        records,
        ring,
        node_id,
    } = recover(&config, clock.now_ms())?;
    let now = clock.now_ms();
    let view = Arc::new(VerifyView::new(
        &config.issuer,
        &config.audiences,
        config.tokens.leeway.as_secs(),
        config.verify_cache_entries,
        clock.clone(),
    ));
    let mut peer_keys = HashMap::new();
    for record in &records {
        match record {
            Record::Revoke(entry) | Record::RevokeOwn(entry) => {
                view.deny.insert(entry.clone());
            }
            Record::PeerKeys { node_id, keys } => {
                peer_keys.insert(node_id.clone(), keys.clone());
            }
            Record::RefreshUsed { .. } => {}
        }
    }

    // Actors: the verifier publishes keys at once, the store gets a thread of its own.
    let signer =
        Issuer::signer_for(&ring, now).expect("a loaded key ring always has a signing key");
    let signer: SignerSlot = Arc::new(ArcSwap::from_pointee(signer));
    let local_keys = Issuer::published(&ring, &node_id, now);
    let verifier = Verifier::new(view.clone(), local_keys, peer_keys, clock.clone()).start();
    let issuer = Issuer::new(
        ring,
        schedule(&config),
        &records,
        signer.clone(),
        verifier.clone(),
        clock.clone(),
        node_id.clone(),
    );
    let issuer = issuer.start();
    let own = Originated::from_journal(&records, &node_id);
    let store = Store::new(journal, records, clock.clone());
    let store = Store::start_in_arbiter(&Arbiter::new().handle(), move |_| store);
    let shield = Arc::new(Shield::new(&config));
    let peers = Peers {
        store: store.clone(),
        verifier: verifier.clone(),
        issuer: issuer.clone(),
        view: view.clone(),
        clock: clock.clone(),
        shield: shield.clone(),
    };
    let sealer = config
        .cluster
        .as_ref()
        .map(|c| Arc::new(Sealer::new(&c.secret, &c.cluster_id)));
    // A node with peers to learn from serves only once it has caught up with them.
    let must_catch_up = config.cluster.as_ref().is_some_and(has_other_seeds);
    let (resets_tx, resets) = tokio::sync::mpsc::unbounded_channel();

    let mut handles = Handles {
        config: Arc::new(config),
        clock,
        view,
        signer,
        issuer,
        store,
        verifier,
        gossip: None,
        sealer,
        node_id,
        metrics: m::install(),
        ready: AtomicBool::new(!must_catch_up),
        shield,
    };
    // Bind first: the gossip state advertises the bound HTTP address.
    let listen = handles.config.listen;
    let listener = std::net::TcpListener::bind(listen).map_err(|source| StartError::Bind {
        addr: listen,
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: listen,
        source,
    })?;
    if let Some(cluster) = handles.config.cluster.clone() {
        let http = cluster
            .http_advertise
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        let clock = handles.clock.clone();
        let gossip = start_gossip(
            &cluster,
            &handles.node_id,
            &http,
            peers.clone(),
            clock,
            resets_tx,
            own,
        )
        .await?;
        handles.gossip = Some(gossip);
    }
    let handles = Arc::new(handles);
    let server = crate::http::serve(handles.clone(), listener)?;
    actix_web::rt::spawn(tend_shield(handles.clone()));
    if let Some(sealer) = handles.sealer.clone() {
        let task = catch_up_on_reset(handles.clone(), peers.clone(), sealer, resets);
        actix_web::rt::spawn(task);
    }
    if must_catch_up {
        let cluster = handles
            .config
            .cluster
            .as_ref()
            .expect("must_catch_up implies a cluster");
        let sealer = handles.sealer.clone().expect("a cluster has a sealer");
        let settle = cluster.gossip_interval * SETTLE_INTERVALS;
        let task = catch_up(
            handles.clone(),
            peers,
            sealer,
            cluster.catchup_timeout,
            settle,
        );
        actix_web::rt::spawn(task);
    }
    Ok(RunningNode {
        addr,
        handles,
        server,
    })
}

/// How often stale anti-abuse counters are dropped and their gauges refreshed.
const SHIELD_TENDING: Duration = Duration::from_secs(10);

/// Drops anti-abuse counters whose windows have passed and refreshes their gauges.
async fn tend_shield(handles: Arc<Handles>) {
    let mut ticks = tokio::time::interval(SHIELD_TENDING);
    loop {
        ticks.tick().await;
        let now_ms = handles.clock.now_ms();
        handles.shield.prune(now_ms);
        let bans = handles
            .view
            .deny
            .addresses()
            .iter()
            .filter(|entry| match &entry.target {
                crate::revocation::Target::Address { address, .. } => {
                    handles.view.deny.ban(address, now_ms).is_some()
                }
                _ => false,
            })
            .count();
        metrics::gauge!(m::BANS_ACTIVE).set(bans as f64);
        metrics::gauge!(m::ABUSE_COUNTERS).set(handles.shield.entries() as f64);
    }
}

/// Joins the cluster: chitchat over the sealed transport, driven by the gossip actor.
async fn start_gossip(
    cluster: &ClusterSettings,
    node_id: &str,
    http: &str,
    peers: Peers,
    clock: SharedClock,
    resets: tokio::sync::mpsc::UnboundedSender<()>,
    own: Originated,
) -> Result<Addr<Gossip>, StartError> {
    let sealer = Arc::new(Sealer::new(&cluster.secret, &cluster.cluster_id));
    let transport = SealedTransport::new(sealer, clock.clone());
    let chitchat_id = ChitchatId {
        node_id: node_id.into(),
        // A new incarnation on every start, so peers take our fresh state over the old.
        generation_id: clock.now_ms(),
        gossip_advertise_addr: cluster.gossip_advertise,
    };
    let failure_detector_config = FailureDetectorConfig {
        initial_interval: cluster.gossip_interval * 10,
        dead_node_grace_period: Duration::from_secs(3600),
        ..FailureDetectorConfig::default()
    };
    let config = ChitchatConfig {
        chitchat_id,
        cluster_id: cluster.cluster_id.clone(),
        gossip_interval: cluster.gossip_interval,
        listen_addr: cluster.gossip_listen,
        seed_nodes: cluster.seeds.clone(),
        failure_detector_config,
        marked_for_deletion_grace_period: Duration::from_secs(3600),
        catchup_callback: Some(Box::new(move || {
            let _ = resets.send(());
        })),
        extra_liveness_predicate: None,
    };
    let initial = vec![
        (wire::REGION.to_owned(), cluster.region.clone()),
        (wire::HTTP.to_owned(), http.to_owned()),
    ];
    let handle = spawn_chitchat(config, initial, &transport)
        .await
        .map_err(|e| StartError::Gossip(format!("{e:#}")))?;
    tracing::info!(
        node.id = node_id,
        gossip = %cluster.gossip_listen,
        region = %cluster.region,
        seeds = cluster.seeds.len(),
        "gossip started"
    );
    let gossip = Gossip::new(
        handle,
        node_id.to_owned(),
        cluster.gossip_interval,
        peers,
        own,
    );
    Ok(gossip.start())
}

/// Whether any seed is someone other than this node (a lone first node has nobody to
/// catch up from).
fn has_other_seeds(cluster: &ClusterSettings) -> bool {
    let own = [
        cluster.gossip_advertise.to_string(),
        cluster.gossip_listen.to_string(),
    ];
    cluster.seeds.iter().any(|seed| !own.contains(seed))
}

/// What a node finds in its data directory.
struct Recovered {
    journal: Journal,
    /// Journal records that have not expired.
    records: Vec<Record>,
    ring: KeyRing,
    node_id: String,
}

/// Opens the data directory: secures it, replays the journal, loads (or creates) keys
/// and the node id.
fn recover(config: &Config, now: u64) -> Result<Recovered, StartError> {
    let dir = &config.data_dir;
    let io = |source| StartError::DataDir {
        path: dir.clone(),
        source,
    };
    ensure_private_dir(dir).map_err(io)?;
    let configured = config.cluster.as_ref().and_then(|c| c.node_id.clone());
    let node_id = node_id(dir, configured).map_err(io)?;
    let (journal, records) = Journal::open(dir).map_err(StartError::Journal)?;
    let records: Vec<Record> = records
        .into_iter()
        .filter(|r| r.expires_ms() > now)
        .collect();
    let ring = KeyRing::load_or_create(dir, now)?;
    tracing::info!(
        data_dir = %dir.display(),
        node.id = %node_id,
        records = records.len(),
        keys = ring.live(now).count(),
        "state recovered"
    );
    Ok(Recovered {
        journal,
        records,
        ring,
        node_id,
    })
}

/// The configured node id, or the one kept in the data directory (created once).
fn node_id(dir: &Path, configured: Option<String>) -> std::io::Result<String> {
    if let Some(id) = configured {
        return Ok(id);
    }
    let path = dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let id = format!("node-{}", &random_id()[..12]);
    write_atomic(&path, id.as_bytes(), 0o600)?;
    Ok(id)
}

fn schedule(config: &Config) -> Schedule {
    let longest_signed = config
        .tokens
        .access_lifetime
        .max(config.tokens.refresh_lifetime);
    Schedule {
        rotation_period_ms: config.keys.rotation_period.as_millis() as u64,
        publish_ahead_ms: config.keys.jwks_max_age.as_millis() as u64,
        verify_after_ms: (longest_signed + config.tokens.leeway).as_millis() as u64,
    }
}
