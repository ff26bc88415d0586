//! The environment a test container is configured by: the image's own file supplies
//! `listen` and `data_dir`, everything else arrives as `PORTCULLIS_*` variables, as an
//! operator without a configuration file of their own would set them.
//!
//! The credentials, issuer and audience are those of the process harness
//! ([`crate::config`]), so the same [`crate::api`] helpers drive both.

use std::net::Ipv4Addr;
use std::sync::OnceLock;

use portcullis::secrets::{hash_password, ClientSecretHash};

use crate::config::{ALICE, AUDIENCE, BOB, ISSUER, OPS, WEB};

/// Where the cluster secret is mounted, as compose mounts its secrets.
pub const SECRET_PATH: &str = "/run/secrets/cluster_secret";
/// The gossip port inside every container (the image EXPOSEs it).
pub const GOSSIP_PORT: u16 = 7946;
/// The HTTP port inside every container (the image's configuration listens on it).
pub const HTTP_PORT: u16 = 8080;

/// Limits lifted far above what a scenario's load generator sends from its one
/// address, so that a fault test sees faults, not budgets.
const UNLIMITED: &[(&str, &str)] = &[
    ("RATE_LIMITS__PER_MINUTE", "1000000000"),
    ("LOGIN__PER_ADDRESS", "1000000000"),
    ("LOGIN__PER_ADDRESS_USER", "1000000000"),
    ("LOGIN__PER_USER", "1000000000"),
    ("LOGIN__BAN_AFTER_FAILURES", "1000000000"),
    ("HEURISTICS__ISSUANCE_PER_ADDRESS", "1000000000"),
    ("HEURISTICS__ISSUANCE_PER_CLIENT", "1000000000"),
    ("HEURISTICS__BAD_TOKENS", "1000000000"),
    ("HEURISTICS__SPREAD_NETWORKS", "1000000000"),
];

/// What differs between the containers of one cluster.
pub struct NodeEnv<'a> {
    /// Node id and region label (`eu`, `us`, `ap`).
    pub region: &'a str,
    /// Shared by the cluster; unique per run.
    pub cluster_id: &'a str,
    /// The container's name, which is also its DNS name on the shared network.
    pub name: &'a str,
    /// Its fixed address on the shared network, advertised for gossip.
    pub mesh_ip: Ipv4Addr,
    /// The other containers' names.
    pub peers: &'a [String],
    /// The host's address on the container's access network: the one proxy believed,
    /// so that scenarios can play client addresses with `X-Forwarded-For`.
    pub proxy: Ipv4Addr,
}

/// `KEY=value` pairs for `docker create -e`.
pub fn node_env(node: &NodeEnv<'_>) -> Vec<String> {
    let seeds: Vec<String> = node
        .peers
        .iter()
        .map(|peer| format!("{peer}:{GOSSIP_PORT}"))
        .collect();
    let (users, clients) = credentials();
    let settings: Vec<(&str, String)> = vec![
        ("ISSUER", ISSUER.into()),
        ("AUDIENCES", AUDIENCE.into()),
        ("ADMIN_CLIENTS", OPS.0.into()),
        ("WORKERS", "2".into()),
        ("TRUSTED_PROXIES", node.proxy.to_string()),
        ("USERS", users.clone()),
        ("CLIENTS", clients.clone()),
        ("KEYS__ROTATION_PERIOD", "1h".into()),
        ("KEYS__JWKS_MAX_AGE", "3s".into()),
        ("CLUSTER__NODE_ID", node.region.into()),
        ("CLUSTER__REGION", node.region.into()),
        ("CLUSTER__CLUSTER_ID", node.cluster_id.into()),
        ("CLUSTER__GOSSIP_LISTEN", format!("0.0.0.0:{GOSSIP_PORT}")),
        (
            "CLUSTER__GOSSIP_ADVERTISE",
            format!("{}:{GOSSIP_PORT}", node.mesh_ip),
        ),
        (
            "CLUSTER__HTTP_ADVERTISE",
            format!("http://{}:{HTTP_PORT}", node.name),
        ),
        ("CLUSTER__SEEDS", seeds.join(",")),
        ("CLUSTER__SECRET_FILE", SECRET_PATH.into()),
        ("CLUSTER__GOSSIP_INTERVAL", "100ms".into()),
    ];
    let mut env: Vec<String> = settings
        .into_iter()
        .map(|(key, value)| format!("PORTCULLIS_{key}={value}"))
        .collect();
    env.extend(
        UNLIMITED
            .iter()
            .map(|(key, value)| format!("PORTCULLIS_{key}={value}")),
    );
    env.push("PORTCULLIS_LOG=info".into());
    env
}

/// `users` and `clients` as TOML inline-table arrays, hashed once per process.
fn credentials() -> &'static (String, String) {
    static TABLES: OnceLock<(String, String)> = OnceLock::new();
    TABLES.get_or_init(|| {
        let user = |(name, password): (&str, &str), scopes: &str| {
            let hash = hash_password(password);
            format!(r#"{{ name = "{name}", password_hash = "{hash}", scopes = [{scopes}] }}"#)
        };
        let users = format!(
            "[{}, {}]",
            user(ALICE, r#""read", "write""#),
            user(BOB, r#""read""#)
        );
        // Inline tables must stay on one line.
        let client = |(id, secret): (&str, &str), grants: &str, scopes: &str| {
            let hash = ClientSecretHash::of(secret);
            format!(
                "{{ id = \"{id}\", secret_hash = \"{hash}\", grants = [{grants}], \
                 scopes = [{scopes}], default_scopes = [{scopes}] }}"
            )
        };
        let web = client(
            WEB,
            r#""password", "refresh_token", "client_credentials""#,
            r#""read""#,
        );
        let ops = client(OPS, r#""client_credentials""#, r#""portcullis:admin""#);
        (users, format!("[{web}, {ops}]"))
    })
}
