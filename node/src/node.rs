//! Assembling a node: open the data directory, replay the journal, start the actors and
//! the HTTP server.
//!
//! [`start`] must run inside an actix `System`. It returns the bound address and the
//! server future; `main` awaits it, tests spawn it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use actix::prelude::*;
use arc_swap::ArcSwap;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::fsutil::ensure_private_dir;
use crate::issuer::{Issuer, SignerSlot};
use crate::journal::{Journal, Record};
use crate::keys::{KeyRing, KeyRingError, Schedule};
use crate::metrics as m;
use crate::revocation::Revocation;
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
}

/// A revocation could not be made durable, so it was not applied or acknowledged.
#[derive(Debug, thiserror::Error)]
#[error("revocation not durable")]
pub struct NotDurable;

impl Handles {
    /// The one revocation path: journal (fsync) first, then the deny list. Returns only
    /// once both are done, so a caller may acknowledge the revocation.
    pub async fn revoke(&self, entries: Vec<Revocation>) -> Result<(), NotDurable> {
        let records = entries.iter().cloned().map(Record::Revoke).collect();
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
    } = recover(&config, clock.now_ms())?;
    let now = clock.now_ms();
    let view = Arc::new(VerifyView::new(
        &config.issuer,
        &config.audiences,
        config.tokens.leeway.as_secs(),
        config.verify_cache_entries,
        clock.clone(),
    ));
    for record in &records {
        if let Record::Revoke(entry) = record {
            view.deny.insert(entry.clone());
        }
    }

    // Actors: the verifier publishes keys at once, the store gets a thread of its own.
    let signer =
        Issuer::signer_for(&ring, now).expect("a loaded key ring always has a signing key");
    let signer: SignerSlot = Arc::new(ArcSwap::from_pointee(signer));
    let verifier =
        Verifier::new(view.clone(), Issuer::published(&ring, now), clock.clone()).start();
    let issuer = Issuer::new(
        ring,
        schedule(&config),
        &records,
        signer.clone(),
        verifier.clone(),
        clock.clone(),
    );
    let issuer = issuer.start();
    let store = Store::new(journal, records, clock.clone());
    let store = Store::start_in_arbiter(&Arbiter::new().handle(), move |_| store);

    let handles = Arc::new(Handles {
        config: Arc::new(config),
        clock,
        view,
        signer,
        issuer,
        store,
        verifier,
        metrics: m::install(),
        ready: AtomicBool::new(true),
    });
    let (addr, server) = crate::http::serve(handles.clone())?;
    Ok(RunningNode {
        addr,
        handles,
        server,
    })
}

/// What a node finds in its data directory.
struct Recovered {
    journal: Journal,
    /// Journal records that have not expired.
    records: Vec<Record>,
    ring: KeyRing,
}

/// Opens the data directory: secures it, replays the journal, loads (or creates) keys.
fn recover(config: &Config, now: u64) -> Result<Recovered, StartError> {
    let dir = &config.data_dir;
    ensure_private_dir(dir).map_err(|source| StartError::DataDir {
        path: dir.clone(),
        source,
    })?;
    let (journal, records) = Journal::open(dir).map_err(StartError::Journal)?;
    let records: Vec<Record> = records
        .into_iter()
        .filter(|r| r.expires_ms() > now)
        .collect();
    let ring = KeyRing::load_or_create(dir, now)?;
    tracing::info!(
        data_dir = %dir.display(),
        records = records.len(),
        keys = ring.live(now).count(),
        "state recovered"
    );
    Ok(Recovered {
        journal,
        records,
        ring,
    })
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
