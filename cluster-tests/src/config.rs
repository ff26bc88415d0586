//! The configuration every test node is given, and the credentials it knows.
//!
//! All nodes of a cluster share the issuer, audiences, users, clients and cluster
//! secret, so a token issued by one verifies on every other; each has its own node id,
//! addresses and data directory.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use portcullis::secrets::{hash_password, ClientSecretHash};

/// The issuer every node signs as.
pub const ISSUER: &str = "http://portcullis.cluster-test";
/// The audience every access token carries.
pub const AUDIENCE: &str = "api";
/// The shared gossip secret (at least 32 bytes, as the node requires).
pub const CLUSTER_SECRET: &str = "cluster-tests-shared-secret-0123456789abcdef";

/// A client that may use every grant, including `client_credentials`.
pub const WEB: (&str, &str) = ("web", "web-secret");
/// The admin client: `client_credentials` with the admin scope.
pub const OPS: (&str, &str) = ("ops", "ops-secret");
/// A user allowed `read` and `write`.
pub const ALICE: (&str, &str) = ("alice", "alice-password");
/// A second user, for revocations that must not touch Alice.
pub const BOB: (&str, &str) = ("bob", "bob-password");

/// What differs between the nodes of one cluster.
pub struct NodeConfig<'a> {
    /// Configured node id (`n1`, `n2`, …).
    pub node_id: &'a str,
    /// Shared by the cluster; unique per test so that clusters never merge.
    pub cluster_id: &'a str,
    /// The loopback address HTTP and gossip bind.
    pub ip: Ipv4Addr,
    /// The UDP gossip address (a concrete port).
    pub gossip: SocketAddr,
    /// The other nodes' gossip addresses.
    pub seeds: &'a [SocketAddr],
    /// Region label.
    pub region: &'a str,
    /// The node's data directory.
    pub data_dir: &'a Path,
    /// `[keys] jwks_max_age`: how long a new key is published before it signs.
    pub jwks_max_age: Duration,
    /// How long a starting node waits for a peer's snapshot before serving anyway.
    pub catchup_timeout: Duration,
    /// Gossip round interval.
    pub gossip_interval: Duration,
    /// Extra TOML sections appended as they are.
    pub sections: &'a str,
}

/// The node's TOML configuration.
pub fn node_toml(node: &NodeConfig<'_>) -> String {
    let seeds: Vec<String> = node.seeds.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        r#"listen = "{ip}:0"
issuer = "{ISSUER}"
audiences = ["{AUDIENCE}"]
data_dir = "{dir}"
admin_clients = ["ops"]
workers = 2

[tokens]
access_lifetime = "5m"
refresh_lifetime = "1h"
family_lifetime = "1d"
leeway = "30s"

[keys]
rotation_period = "1h"
jwks_max_age = "{jwks_max_age}ms"

[cluster]
node_id = "{node_id}"
cluster_id = "{cluster_id}"
gossip_listen = "{gossip}"
seeds = [{seeds}]
gossip_interval = "{interval}ms"
region = "{region}"
secret = "{CLUSTER_SECRET}"
catchup_timeout = "{catchup}ms"
{credentials}
{sections}"#,
        ip = node.ip,
        dir = node.data_dir.display(),
        jwks_max_age = node.jwks_max_age.as_millis(),
        node_id = node.node_id,
        cluster_id = node.cluster_id,
        gossip = node.gossip,
        seeds = seeds.join(", "),
        interval = node.gossip_interval.as_millis(),
        region = node.region,
        catchup = node.catchup_timeout.as_millis(),
        credentials = credentials(),
        sections = node.sections,
    )
}

/// The `[[users]]` and `[[clients]]` tables, hashed once per test process.
fn credentials() -> &'static str {
    static TABLES: OnceLock<String> = OnceLock::new();
    TABLES.get_or_init(|| {
        let client = |secret: &str| ClientSecretHash::of(secret).to_string();
        format!(
            r#"
[[users]]
name = "{alice}"
password_hash = "{alice_hash}"
scopes = ["read", "write"]

[[users]]
name = "{bob}"
password_hash = "{bob_hash}"
scopes = ["read"]

[[clients]]
id = "{web}"
secret_hash = "{web_hash}"
grants = ["password", "refresh_token", "client_credentials"]
scopes = ["read", "write"]
default_scopes = ["read"]

[[clients]]
id = "{ops}"
secret_hash = "{ops_hash}"
grants = ["client_credentials"]
scopes = ["portcullis:admin"]
default_scopes = ["portcullis:admin"]
"#,
            alice = ALICE.0,
            alice_hash = hash_password(ALICE.1),
            bob = BOB.0,
            bob_hash = hash_password(BOB.1),
            web = WEB.0,
            web_hash = client(WEB.1),
            ops = OPS.0,
            ops_hash = client(OPS.1),
        )
    })
}
