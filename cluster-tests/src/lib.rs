//! A harness for multi-process cluster scenarios: it starts real `portcullis` processes,
//! each with its own loopback address, gossip port and data directory, kills them with
//! SIGKILL, restarts them, and cuts UDP between them with iptables.
//!
//! Map of the crate:
//! - [`cluster`]: [`Cluster`] of [`Node`]s and the [`Options`] they start with.
//! - [`node`]: one node process: spawn, wait for its listening line, kill, restart.
//! - [`config`]: the TOML each node is given, and the credentials it knows.
//! - [`api`]: blocking HTTP helpers for the endpoints the scenarios use.
//! - [`partition`]: [`Partition`], a guard that cuts gossip between sets of nodes.
//! - [`wait`]: polling with a deadline instead of fixed sleeps.
//! - [`docker`]: [`docker::DockerCluster`], three containers of the `portcullis:local`
//!   image (built by `scripts/build-image.sh`) for the Docker fault tests.
//!
//! The binary under test is `target/debug/portcullis` (or `$CARGO_TARGET_DIR/debug/…`,
//! or `$CLUSTER_TESTS_BIN`). `cargo test --workspace` builds it; `cargo test -p
//! cluster-tests` alone does not, so run `cargo build -p portcullis` first. A stale
//! binary is not detected.
//!
//! Tests must run as root: partitions are iptables rules.

pub mod api;
pub mod cluster;
pub mod config;
pub mod docker;
pub mod node;
pub mod partition;
pub mod wait;

pub use cluster::{Cluster, Options};
pub use node::Node;
pub use partition::Partition;
pub use wait::{holds_throughout, wait_until, PROPAGATION};
