//! Node configuration: one TOML file, every setting overridable by `PORTCULLIS_*`
//! environment variables, validated as a whole.
//!
//! [`Config::load`] reports every problem it finds at once, each named by its key, and
//! the node refuses to start if there is any. Defaults sit beside the code that reads
//! them. [`known_keys`] lists every setting; `docs/operations.md` documents them all,
//! which `tests/config_docs.rs` checks.

mod abuse;
mod cluster;
mod dev;
mod env;
mod reader;

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use toml::Table;

pub use abuse::{BudgetMode, HeuristicSettings, LoginSettings, RateLimitSettings};
pub use cluster::{ClusterSettings, DEV_SECRET};
pub use dev::{DevCredentials, DEV};
use reader::Reader;
pub use reader::{parse_duration, Problem};

pub use crate::logging::LogFormat;
use crate::secrets::{validate_password_hash, ClientSecretHash};

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default access-token lifetime.
pub const DEFAULT_ACCESS_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// Default refresh-token lifetime (one link of a family).
pub const DEFAULT_REFRESH_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Default absolute lifetime of a refresh family, however often it is refreshed.
pub const DEFAULT_FAMILY_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default tolerance for clock skew when checking `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Default interval between scheduled signing-key rotations.
pub const DEFAULT_ROTATION_PERIOD: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default JWKS `Cache-Control: max-age`; a new key is published this long before use.
pub const DEFAULT_JWKS_MAX_AGE: Duration = Duration::from_secs(5 * 60);
/// Default scope that grants the admin API.
pub const DEFAULT_ADMIN_SCOPE: &str = "portcullis:admin";
/// Default number of verified tokens kept in the verification cache.
pub const DEFAULT_VERIFY_CACHE_ENTRIES: u64 = 100_000;

/// Whether the node runs on the embedded development defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `portcullis serve` without `--config`: demo credentials, not for production.
    Dev,
    /// A configuration file was given.
    Production,
}

/// An OAuth grant a client may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grant {
    /// Resource-owner password credentials (RFC 6749 §4.3).
    Password,
    /// Client credentials (RFC 6749 §4.4).
    ClientCredentials,
    /// Refresh token (RFC 6749 §6).
    RefreshToken,
}

impl Grant {
    /// The `grant_type` value on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::ClientCredentials => "client_credentials",
            Self::RefreshToken => "refresh_token",
        }
    }

    /// Every grant, in wire order.
    pub const ALL: [Grant; 3] = [Self::Password, Self::ClientCredentials, Self::RefreshToken];

    /// Parses a `grant_type` value.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == text)
    }
}

/// Token lifetimes and verification tolerance.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// Lifetime of an access token.
    pub access_lifetime: Duration,
    /// Lifetime of one refresh token; each refresh issues a new one.
    pub refresh_lifetime: Duration,
    /// Hard limit on a refresh family, counted from the password grant.
    pub family_lifetime: Duration,
    /// Clock-skew tolerance for time claims.
    pub leeway: Duration,
}

/// Signing-key lifecycle.
#[derive(Debug, Clone)]
pub struct KeySettings {
    /// How long a key signs before the next one takes over.
    pub rotation_period: Duration,
    /// Advertised JWKS cache lifetime; also how long a new key is published before use.
    pub jwks_max_age: Duration,
}

/// A user allowed the password grant.
#[derive(Debug, Clone)]
pub struct User {
    /// Login name; becomes the token `sub`.
    pub name: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Scopes this user may be granted.
    pub scopes: BTreeSet<String>,
}

/// An OAuth client.
#[derive(Debug, Clone)]
pub struct Client {
    /// `client_id`.
    pub id: String,
    /// Hash of the client secret.
    pub secret_hash: ClientSecretHash,
    /// Grants this client may use.
    pub grants: BTreeSet<Grant>,
    /// Scopes this client may obtain.
    pub scopes: BTreeSet<String>,
    /// Scopes granted when a request names none; a subset of `scopes`.
    pub default_scopes: BTreeSet<String>,
}

/// Forward-auth rule: requests matching method and path prefix need these scopes.
#[derive(Debug, Clone)]
pub struct RouteRule {
    /// Upper-case HTTP method, or `None` for any.
    pub method: Option<String>,
    /// Path prefix, starting with `/`; the longest matching prefix wins.
    pub prefix: String,
    /// Every scope the token must carry.
    pub scopes: BTreeSet<String>,
}

/// The validated configuration of one node.
#[derive(Debug, Clone)]
pub struct Config {
    /// Dev or production.
    pub mode: Mode,
    /// HTTP listen address; port 0 picks a free port.
    pub listen: SocketAddr,
    /// `iss` of every token and the base of the metadata document.
    pub issuer: String,
    /// `aud` of access tokens; a token must name one of these to pass.
    pub audiences: Vec<String>,
    /// Where keys and the revocation journal live.
    pub data_dir: PathBuf,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Token lifetimes.
    pub tokens: TokenSettings,
    /// Key rotation.
    pub keys: KeySettings,
    /// Scope that opens the admin API.
    pub admin_scope: String,
    /// Clients that may be granted `admin_scope`.
    pub admin_clients: BTreeSet<String>,
    /// Users for the password grant.
    pub users: Vec<User>,
    /// OAuth clients.
    pub clients: Vec<Client>,
    /// Forward-auth route rules.
    pub routes: Vec<RouteRule>,
    /// Capacity of the verification cache; 0 disables it.
    pub verify_cache_entries: usize,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// How log lines are written on stderr.
    pub log_format: LogFormat,
    /// Cluster membership; `None` runs a single node.
    pub cluster: Option<ClusterSettings>,
    /// Per-lineage request budgets.
    pub rate_limits: RateLimitSettings,
    /// Password-grant flood defence and bans.
    pub login: LoginSettings,
    /// Token-lifecycle heuristics.
    pub heuristics: HeuristicSettings,
}

/// Every problem found, for the operator to fix in one go.
#[derive(Debug, thiserror::Error)]
#[error("{} configuration problem(s):\n{}", .0.len(), render(.0))]
pub struct ConfigError(pub Vec<Problem>);

fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Config {
    /// Loads `path` (or the dev defaults when `None`) with the process environment laid
    /// over it.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let (table, mode) = match path {
            Some(path) => (read_file(path)?, Mode::Production),
            None => (dev::dev_table(), Mode::Dev),
        };
        Self::from_table(table, mode, std::env::vars())
    }

    /// Builds a configuration from a parsed table and a set of environment variables.
    pub fn from_table(
        mut table: Table,
        mode: Mode,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let from_env = env::overlay(&mut table, vars, &mut problems);
        let config = read_config(table, mode, &mut problems, &mut BTreeSet::new());
        if problems.is_empty() {
            return Ok(config);
        }
        for problem in &mut problems {
            if let Some((_, var)) = from_env
                .iter()
                .find(|(path, _)| problem.key.starts_with(path))
            {
                problem.message.push_str(&format!(" (set by {var})"));
            }
        }
        Err(ConfigError(problems))
    }

    /// Parses TOML text as a production configuration, ignoring the environment.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let table = parse_toml(text)?;
        Self::from_table(table, Mode::Production, std::iter::empty())
    }

    /// The longest-lived token any revocation may have to cover.
    pub fn longest_token_lifetime(&self) -> Duration {
        self.tokens.family_lifetime.max(self.tokens.access_lifetime)
    }

    /// The client with this id.
    pub fn client(&self, id: &str) -> Option<&Client> {
        self.clients.iter().find(|c| c.id == id)
    }

    /// The user with this name.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    /// Every scope any client may obtain, for the metadata document.
    pub fn all_scopes(&self) -> BTreeSet<String> {
        self.clients
            .iter()
            .flat_map(|c| c.scopes.iter().cloned())
            .collect()
    }
}

fn read_file(path: &Path) -> Result<Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(vec![Problem {
            key: path.display().to_string(),
            message: format!("cannot read configuration file: {e}"),
        }])
    })?;
    parse_toml(&text)
}

fn parse_toml(text: &str) -> Result<Table, ConfigError> {
    toml::from_str(text).map_err(|e| {
        ConfigError(vec![Problem {
            key: "(file)".into(),
            message: format!("invalid TOML: {e}"),
        }])
    })
}

/// Every setting the parser accepts, as key paths: `listen`, `tokens.leeway`,
/// `clients[].id`. Found by reading a configuration that has every section and one
/// element of each table array, and noting the keys asked for; tables that only
/// hold settings (`tokens`, `clients`) are left out, tables of free names
/// (`rate_limits.clients`) are settings themselves.
pub fn known_keys() -> BTreeSet<String> {
    let probe: Table = toml::from_str("[cluster]\n[[users]]\n[[clients]]\n[[routes]]\n")
        .expect("the probe is valid TOML");
    let mut asked = BTreeSet::new();
    read_config(probe, Mode::Production, &mut Vec::new(), &mut asked);
    let holds_settings = |key: &String| {
        asked.iter().any(|other| {
            other.starts_with(&format!("{key}.")) || other.starts_with(&format!("{key}["))
        })
    };
    asked
        .iter()
        .filter(|key| !holds_settings(key))
        .cloned()
        .collect()
}

fn read_config(
    table: Table,
    mode: Mode,
    problems: &mut Vec<Problem>,
    asked: &mut BTreeSet<String>,
) -> Config {
    let mut r = Reader::new(table, "", problems, asked);
    let listen = r
        .opt_string("listen")
        .unwrap_or_else(|| DEFAULT_LISTEN.into());
    let listen = listen.parse().unwrap_or_else(|_| {
        r.problem(
            "listen",
            format!("`{listen}` is not a socket address (host:port)"),
        );
        SocketAddr::from(([127, 0, 0, 1], 8080))
    });
    let issuer = match mode {
        Mode::Dev => r
            .opt_string("issuer")
            .unwrap_or_else(|| format!("http://{listen}")),
        Mode::Production => r.required_string("issuer").unwrap_or_default(),
    };
    if !(issuer.is_empty() || issuer.starts_with("https://") || issuer.starts_with("http://")) {
        r.problem("issuer", "must be an http(s) URL");
    }
    let audiences = r.string_list("audiences").unwrap_or_default();
    if audiences.is_empty() {
        r.problem("audiences", "at least one audience is required");
    }
    let data_dir = PathBuf::from(r.required_string("data_dir").unwrap_or_default());
    let trusted_proxies = read_proxies(&mut r);
    let tokens = r.section("tokens", read_tokens);
    let keys = r.section("keys", |k| read_keys(k, &tokens));
    let admin_scope = r
        .opt_string("admin_scope")
        .unwrap_or_else(|| DEFAULT_ADMIN_SCOPE.into());
    let admin_clients: BTreeSet<String> = r
        .string_list("admin_clients")
        .unwrap_or_default()
        .into_iter()
        .collect();
    let users = r.table_array("users", read_user);
    let clients = r.table_array("clients", read_client);
    let routes = r.table_array("routes", read_route);
    let verify_cache_entries = r.count("verify_cache_entries", DEFAULT_VERIFY_CACHE_ENTRIES);
    let cluster = r
        .has("cluster")
        .then(|| r.section("cluster", |c| cluster::read_cluster(c, mode, listen)));
    let workers = r.count("workers", 0);
    let log_format = read_log_format(&mut r);
    let rate_limits = r.section("rate_limits", abuse::read_rate_limits);
    let login = r.section("login", abuse::read_login);
    let heuristics = r.section("heuristics", abuse::read_heuristics);

    check_unique(&mut r, "users", users.iter().map(|u| u.name.as_str()));
    check_unique(&mut r, "clients", clients.iter().map(|c| c.id.as_str()));
    for id in &admin_clients {
        if !clients.iter().any(|c| &c.id == id) {
            r.problem(
                "admin_clients",
                format!("`{id}` is not a configured client"),
            );
        }
    }
    r.finish();

    Config {
        mode,
        listen,
        issuer,
        audiences,
        data_dir,
        trusted_proxies,
        tokens,
        keys,
        admin_scope,
        admin_clients,
        users,
        clients,
        routes,
        verify_cache_entries: verify_cache_entries as usize,
        workers: workers as usize,
        log_format,
        cluster,
        rate_limits,
        login,
        heuristics,
    }
}

fn read_log_format(r: &mut Reader<'_>) -> LogFormat {
    let Some(text) = r.opt_string("log_format") else {
        return LogFormat::default();
    };
    LogFormat::parse(&text).unwrap_or_else(|| {
        r.problem("log_format", format!("must be {}", LogFormat::NAMES));
        LogFormat::default()
    })
}

fn read_proxies(r: &mut Reader<'_>) -> Vec<IpNet> {
    let mut out = Vec::new();
    for text in r.string_list("trusted_proxies").unwrap_or_default() {
        match text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        {
            Ok(net) => out.push(net),
            Err(_) => r.problem(
                "trusted_proxies",
                format!("`{text}` is not a CIDR or address"),
            ),
        }
    }
    out
}

fn read_tokens(r: &mut Reader<'_>) -> TokenSettings {
    let settings = TokenSettings {
        access_lifetime: r.duration("access_lifetime", DEFAULT_ACCESS_LIFETIME),
        refresh_lifetime: r.duration("refresh_lifetime", DEFAULT_REFRESH_LIFETIME),
        family_lifetime: r.duration("family_lifetime", DEFAULT_FAMILY_LIFETIME),
        leeway: r.duration("leeway", DEFAULT_LEEWAY),
    };
    if settings.access_lifetime < Duration::from_secs(1) {
        r.problem("access_lifetime", "must be at least 1s");
    }
    if settings.refresh_lifetime < Duration::from_secs(1) {
        r.problem("refresh_lifetime", "must be at least 1s");
    }
    if settings.family_lifetime < settings.refresh_lifetime {
        r.problem("family_lifetime", "must be at least refresh_lifetime");
    }
    if settings.leeway > Duration::from_secs(300) {
        r.problem("leeway", "must be at most 5m; fix the clocks instead");
    }
    settings
}

fn read_keys(r: &mut Reader<'_>, tokens: &TokenSettings) -> KeySettings {
    let settings = KeySettings {
        rotation_period: r.duration("rotation_period", DEFAULT_ROTATION_PERIOD),
        jwks_max_age: r.duration("jwks_max_age", DEFAULT_JWKS_MAX_AGE),
    };
    if settings.rotation_period <= settings.jwks_max_age {
        r.problem("rotation_period", "must be longer than jwks_max_age");
    }
    if settings.jwks_max_age > tokens.access_lifetime.max(Duration::from_secs(3600)) {
        r.problem(
            "jwks_max_age",
            "must be at most 1h (or the access lifetime if longer)",
        );
    }
    settings
}

fn scope_set(r: &mut Reader<'_>, key: &str) -> BTreeSet<String> {
    let scopes: BTreeSet<String> = r.string_list(key).unwrap_or_default().into_iter().collect();
    for scope in &scopes {
        if scope.is_empty()
            || !scope
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        {
            r.problem(
                key,
                format!("`{scope}` is not a valid scope token (RFC 6749 §3.3)"),
            );
        }
    }
    scopes
}

fn read_name(r: &mut Reader<'_>, key: &str) -> Option<String> {
    let name = r.required_string(key)?;
    if name.is_empty() || name.len() > 256 || !name.bytes().all(|b| b.is_ascii_graphic()) {
        r.problem(
            key,
            "must be 1-256 printable ASCII characters without spaces",
        );
        return None;
    }
    Some(name)
}

fn read_user(r: &mut Reader<'_>) -> Option<User> {
    let name = read_name(r, "name");
    let password_hash = r.required_string("password_hash");
    if let Some(Err(message)) = password_hash.as_deref().map(validate_password_hash) {
        r.problem(
            "password_hash",
            format!("{message} (see `portcullis hash-password`)"),
        );
    }
    let scopes = scope_set(r, "scopes");
    Some(User {
        name: name?,
        password_hash: password_hash?,
        scopes,
    })
}

fn read_client(r: &mut Reader<'_>) -> Option<Client> {
    let id = read_name(r, "id");
    let secret_hash = r.required_string("secret_hash").and_then(|text| {
        ClientSecretHash::parse(&text)
            .map_err(|message| r.problem("secret_hash", message))
            .ok()
    });
    let mut grants = BTreeSet::new();
    for text in r.string_list("grants").unwrap_or_default() {
        match Grant::parse(&text) {
            Some(grant) => {
                grants.insert(grant);
            }
            None => r.problem("grants", format!("unknown grant `{text}`")),
        }
    }
    if grants.is_empty() {
        r.problem("grants", "at least one grant is required");
    }
    let scopes = scope_set(r, "scopes");
    let default_scopes = scope_set(r, "default_scopes");
    if !default_scopes.is_subset(&scopes) {
        r.problem("default_scopes", "must be a subset of scopes");
    }
    Some(Client {
        id: id?,
        secret_hash: secret_hash?,
        grants,
        scopes,
        default_scopes,
    })
}

fn read_route(r: &mut Reader<'_>) -> Option<RouteRule> {
    let method = r
        .opt_string("method")
        .map(|m| m.to_ascii_uppercase())
        .filter(|m| m != "*");
    if let Some(m) = &method {
        if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()) {
            r.problem("method", format!("`{m}` is not an HTTP method"));
        }
    }
    let prefix = r.required_string("prefix");
    if prefix.as_deref().is_some_and(|p| !p.starts_with('/')) {
        r.problem("prefix", "must start with `/`");
    }
    let scopes = scope_set(r, "scopes");
    if scopes.is_empty() {
        r.problem("scopes", "a route rule needs at least one scope");
    }
    Some(RouteRule {
        method,
        prefix: prefix?,
        scopes,
    })
}

fn check_unique<'a>(r: &mut Reader<'_>, key: &str, names: impl Iterator<Item = &'a str>) {
    let mut seen = HashSet::new();
    for name in names {
        if !seen.insert(name) {
            r.problem(key, format!("`{name}` appears more than once"));
        }
    }
}

#[cfg(test)]
mod tests;
