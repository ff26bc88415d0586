//! Tests of configuration loading: defaults, all problems at once, environment overrides.

use super::*;

const HASH: &str = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn minimal() -> String {
    format!(
        r#"
issuer = "https://auth.example.com"
audiences = ["api"]
data_dir = "/var/lib/portcullis"

[[clients]]
id = "web"
secret_hash = "{HASH}"
grants = ["client_credentials"]
scopes = ["read"]
"#
    )
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let table: Table = toml::from_str(text).expect("test TOML parses");
    Config::from_table(table, Mode::Production, vars(env))
}

#[test]
fn a_minimal_file_gets_the_documented_defaults() {
    let config = load(&minimal(), &[]).expect("valid");
    assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(config.tokens.access_lifetime, DEFAULT_ACCESS_LIFETIME);
    assert_eq!(config.tokens.refresh_lifetime, DEFAULT_REFRESH_LIFETIME);
    assert_eq!(config.keys.jwks_max_age, DEFAULT_JWKS_MAX_AGE);
    assert_eq!(config.admin_scope, DEFAULT_ADMIN_SCOPE);
    assert!(config
        .client("web")
        .is_some_and(|c| c.secret_hash.matches("test")));
}

#[test]
fn every_problem_is_reported_at_once_with_its_key() {
    let text = format!(
        r#"
listen = "nowhere"
issuer = "ftp://x"
audiences = []
data_dir = "/d"
admin_clients = ["ghost"]
colour = "blue"

[tokens]
access_lifetime = "5 fortnights"
family_lifetime = "1s"

[[users]]
name = "alice"
password_hash = "plain"

[[clients]]
id = "web"
secret_hash = "{HASH}"
grants = ["implicit"]
"#
    );
    let Err(ConfigError(problems)) = load(&text, &[]) else {
        panic!("configuration should be refused");
    };
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    for expected in [
        "listen",
        "issuer",
        "audiences",
        "tokens.access_lifetime",
        "tokens.family_lifetime",
        "users[0].password_hash",
        "clients[0].grants",
        "admin_clients",
        "colour",
    ] {
        assert!(
            keys.contains(&expected),
            "missing problem for {expected}: {keys:?}"
        );
    }
}

#[test]
fn environment_overrides_the_file_and_is_named_in_errors() {
    let config = load(
        &minimal(),
        &[
            ("PORTCULLIS_TOKENS__ACCESS_LIFETIME", "10m"),
            ("PORTCULLIS_AUDIENCES", "a,b"),
        ],
    )
    .expect("valid");
    assert_eq!(config.tokens.access_lifetime, Duration::from_secs(600));
    assert_eq!(config.audiences, ["a", "b"]);

    let Err(ConfigError(problems)) = load(&minimal(), &[("PORTCULLIS_LISTEN", "bad")]) else {
        panic!("bad listen address should be refused");
    };
    assert!(
        problems[0].message.contains("PORTCULLIS_LISTEN"),
        "{:?}",
        problems[0]
    );
}

#[test]
fn a_misspelt_variable_is_an_unknown_setting() {
    let Err(ConfigError(problems)) = load(&minimal(), &[("PORTCULLIS_LISTN", "x")]) else {
        panic!("unknown variable should be refused");
    };
    assert_eq!(problems[0].key, "listn");
}

#[test]
fn production_requires_an_issuer_but_dev_derives_one() {
    let Err(ConfigError(problems)) = load("audiences = [\"a\"]\ndata_dir = \"/d\"", &[]) else {
        panic!("missing issuer should be refused");
    };
    assert_eq!(problems[0].key, "issuer");
    let dev = Config::from_table(dev::dev_table(), Mode::Dev, vars(&[])).expect("dev is valid");
    assert_eq!(dev.issuer, "http://127.0.0.1:8080");
    assert!(dev.admin_clients.contains("demo-admin"));
}

#[test]
fn a_cluster_outside_dev_mode_needs_a_long_secret() {
    let with = |section: &str| load(&format!("{}\n[cluster]\n{section}", minimal()), &[]);
    let Err(ConfigError(problems)) = with("gossip_listen = \"127.0.0.1:7946\"") else {
        panic!("a cluster without a secret should be refused");
    };
    assert_eq!(problems[0].key, "cluster.secret");
    let Err(ConfigError(problems)) = with("gossip_listen = \"127.0.0.1:7946\"\nsecret = \"short\"")
    else {
        panic!("a short secret should be refused");
    };
    assert_eq!(problems[0].key, "cluster.secret");
    let secret = "s".repeat(32);
    let config = with(&format!(
        "gossip_listen = \"127.0.0.1:7946\"\nsecret = \"{secret}\"\nseeds = \"a:1,b:2\""
    ))
    .expect("valid");
    let cluster = config.cluster.expect("cluster configured");
    assert_eq!(cluster.seeds, ["a:1", "b:2"]);
    assert_eq!(cluster.gossip_advertise, cluster.gossip_listen);
    assert_eq!(cluster.gossip_interval, Duration::from_millis(100));
}

#[test]
fn a_wildcard_gossip_address_needs_an_advertised_one() {
    let text = format!(
        "{}\n[cluster]\ngossip_listen = \"0.0.0.0:7946\"\nsecret = \"{}\"",
        minimal(),
        "s".repeat(32)
    );
    let Err(ConfigError(problems)) = load(&text, &[]) else {
        panic!("unreachable advertise address should be refused");
    };
    assert_eq!(problems[0].key, "cluster.gossip_advertise");
}

#[test]
fn dev_mode_clusters_use_the_dev_secret() {
    let vars = vars(&[("PORTCULLIS_CLUSTER__GOSSIP_LISTEN", "127.0.0.1:7946")]);
    let dev = Config::from_table(dev::dev_table(), Mode::Dev, vars).expect("dev is valid");
    assert_eq!(dev.cluster.expect("cluster").secret, DEV_SECRET.as_bytes());
    assert!(Config::from_table(dev::dev_table(), Mode::Dev, Vec::new())
        .expect("valid")
        .cluster
        .is_none());
}
