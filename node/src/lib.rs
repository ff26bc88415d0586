//! Portcullis: an auth and anti-abuse node.
//!
//! It issues short-lived Ed25519 access tokens (RFC 9068) and rotating refresh tokens,
//! verifies them strictly, and gates HTTP APIs as a forward-auth service.
//!
//! Map of the crate:
//! - [`config`]: the TOML file, `PORTCULLIS_*` overrides and validation.
//! - [`node`]: assembly of a running node; [`http`]: its HTTP surface.
//! - Actors that own state: [`issuer`] (keys, rotation, refresh families),
//!   [`verifier::actor`] (key set and deny list), [`store`] (the durable journal).
//! - The read path every request takes: [`verifier`] over [`revocation::DenyList`].
//! - The cluster: [`cluster`] (sealed gossip transport, the gossip actor, snapshots).
//! - Formats and persistence: [`tokens`], [`keys`], [`journal`], [`secrets`].
//! - Anti-abuse: [`abuse`] (budgets, login-flood defence, bans, heuristics).
//! - Cross-cutting: [`clock`] (injected time), [`metrics`] (every metric, described),
//!   [`logging`] (text or JSON lines on stderr).
//! - Lifecycle: [`shutdown`] (SIGTERM: drain, leave the cluster, exit).

pub mod abuse;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod fsutil;
pub mod grants;
pub mod http;
pub mod issuer;
pub mod journal;
pub mod keys;
pub mod logging;
pub mod metrics;
pub mod node;
pub mod revocation;
pub mod secrets;
pub mod shutdown;
pub mod store;
pub mod tokens;
pub mod verifier;
