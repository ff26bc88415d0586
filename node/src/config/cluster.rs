//! The `[cluster]` section: identity, gossip addresses, seeds and the shared secret.
//!
//! A node without this section runs alone. With it, the node gossips with its seeds;
//! outside dev mode a cluster secret of at least 32 bytes is mandatory, because gossip
//! carries revocations and signing keys and must not accept datagrams from strangers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::reader::Reader;
use super::Mode;

/// Default cluster id; nodes with different ids never merge.
pub const DEFAULT_CLUSTER_ID: &str = "portcullis";
/// Default gossip round interval.
pub const DEFAULT_GOSSIP_INTERVAL: Duration = Duration::from_millis(100);
/// Default region label.
pub const DEFAULT_REGION: &str = "default";
/// How long a restarting node waits for a peer's snapshot before serving anyway.
pub const DEFAULT_CATCHUP_TIMEOUT: Duration = Duration::from_secs(15);
/// Shortest accepted cluster secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;
/// The secret dev mode uses when none is given. Public, so dev clusters only.
pub const DEV_SECRET: &str = "portcullis-dev-cluster-secret-not-for-production";

/// Cluster membership settings.
#[derive(Clone)]
pub struct ClusterSettings {
    /// Stable node id; `None` means generate one and keep it in the data directory.
    pub node_id: Option<String>,
    /// Nodes merge only with nodes of the same cluster id.
    pub cluster_id: String,
    /// UDP address gossip binds.
    pub gossip_listen: SocketAddr,
    /// UDP address peers are told to gossip with.
    pub gossip_advertise: SocketAddr,
    /// Base URL peers use to fetch this node's snapshot; `None` means the bound
    /// HTTP address.
    pub http_advertise: Option<String>,
    /// Seed peers, `host:port` (DNS names allowed).
    pub seeds: Vec<String>,
    /// Gossip round interval.
    pub gossip_interval: Duration,
    /// Region label shown to operators.
    pub region: String,
    /// The shared secret that authenticates gossip and snapshots.
    pub secret: Vec<u8>,
    /// How long to wait for a snapshot from a peer before becoming ready regardless.
    pub catchup_timeout: Duration,
}

impl std::fmt::Debug for ClusterSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSettings")
            .field("cluster_id", &self.cluster_id)
            .field("gossip_listen", &self.gossip_listen)
            .field("seeds", &self.seeds)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// Reads `[cluster]`; `listen` is the HTTP listen address, for the advertised URL.
pub fn read_cluster(r: &mut Reader<'_>, mode: Mode, listen: SocketAddr) -> ClusterSettings {
    let gossip_listen = socket(r, "gossip_listen").unwrap_or_else(|| {
        if !r.has_problem("gossip_listen") {
            r.problem(
                "gossip_listen",
                "is required: the UDP address gossip binds (ip:port)",
            );
        }
        ([127, 0, 0, 1], 0).into()
    });
    if gossip_listen.port() == 0 && !r.has_problem("gossip_listen") {
        r.problem(
            "gossip_listen",
            "needs a fixed port: peers are told this address",
        );
    }
    let gossip_advertise = socket(r, "gossip_advertise").unwrap_or(gossip_listen);
    if gossip_advertise.port() == 0 && !r.has_problem("gossip_listen") {
        r.problem("gossip_advertise", "needs a fixed port");
    }
    if gossip_advertise.ip().is_unspecified() {
        r.problem(
            "gossip_advertise",
            "must be an address peers can reach (set it when gossip_listen is 0.0.0.0)",
        );
    }
    let http_advertise = r.opt_string("http_advertise");
    if listen.ip().is_unspecified() && http_advertise.is_none() {
        r.problem(
            "http_advertise",
            "must be a URL peers can reach (set it when listen is 0.0.0.0)",
        );
    }
    let secret = read_secret(r, mode);
    let settings = ClusterSettings {
        node_id: r.opt_string("node_id"),
        cluster_id: r
            .opt_string("cluster_id")
            .unwrap_or_else(|| DEFAULT_CLUSTER_ID.into()),
        gossip_listen,
        gossip_advertise,
        http_advertise,
        seeds: r.string_list("seeds").unwrap_or_default(),
        gossip_interval: r.duration("gossip_interval", DEFAULT_GOSSIP_INTERVAL),
        region: r
            .opt_string("region")
            .unwrap_or_else(|| DEFAULT_REGION.into()),
        secret,
        catchup_timeout: r.duration("catchup_timeout", DEFAULT_CATCHUP_TIMEOUT),
    };
    if settings.gossip_interval < Duration::from_millis(10) {
        r.problem("gossip_interval", "must be at least 10ms");
    }
    if settings
        .node_id
        .as_deref()
        .is_some_and(|id| id.is_empty() || id.len() > 64)
    {
        r.problem("node_id", "must be 1-64 characters");
    }
    settings
}

fn socket(r: &mut Reader<'_>, key: &str) -> Option<SocketAddr> {
    let text = r.opt_string(key)?;
    text.parse()
        .map_err(|_| r.problem(key, format!("`{text}` is not a socket address (ip:port)")))
        .ok()
}

fn read_secret(r: &mut Reader<'_>, mode: Mode) -> Vec<u8> {
    let inline = r.opt_string("secret");
    let file = r.opt_string("secret_file").map(PathBuf::from);
    let secret = match (inline, file) {
        (Some(_), Some(_)) => {
            r.problem("secret_file", "set either secret or secret_file, not both");
            return Vec::new();
        }
        (Some(secret), None) => secret.into_bytes(),
        (None, Some(path)) => match std::fs::read(&path) {
            Ok(bytes) => trim_newline(bytes),
            Err(e) => {
                r.problem(
                    "secret_file",
                    format!("cannot read {}: {e}", path.display()),
                );
                return Vec::new();
            }
        },
        (None, None) if mode == Mode::Dev => DEV_SECRET.as_bytes().to_vec(),
        (None, None) => {
            r.problem(
                "secret",
                "a cluster secret is required outside dev mode (secret or secret_file)",
            );
            return Vec::new();
        }
    };
    if secret.len() < MIN_SECRET_BYTES {
        r.problem(
            "secret",
            format!("must be at least {MIN_SECRET_BYTES} bytes"),
        );
    }
    secret
}

fn trim_newline(mut bytes: Vec<u8>) -> Vec<u8> {
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    bytes
}
